"""The department desk: a stand-in for a department's own system, for the demo and tests.

It receives webhooks, verifies each signature with the `standardwebhooks` library and the
department's secret from the city pack, drops repeated deliveries by `webhook-id`, and
shows what arrived (`GET /hooks`). A real department runs its own receiver. Beside it, the
stand-in message gateway takes the reporters' SMS and WeChat messages (`GET
/gateway/messages`, and `<data dir>/gateway/messages.jsonl`).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from fastapi import FastAPI, HTTPException, Request
from rich.console import Console
from standardwebhooks import Webhook, WebhookVerificationError

from gridloop.citypack import CityPack, load_city_pack
from gridloop.citypack.messages import MESSAGES_FILE
from gridloop.config import Settings
from gridloop.runtime import add_ops_routes, serve
from system.gateway import Gateway

GATEWAY_DIR = "gateway"  # in the data directory: what the stand-in gateway would have sent

console = Console(stderr=True)


def pack_for_receivers(pack_dir: Path, target: Path, hooks: str) -> Path:
    """The pack with every department's webhook at `hooks`/CODE and every reporters'
    provider channel at the stand-in gateway beside it (`…/gateway/KIND`): `city.yaml` and
    `messages.yaml` rewritten, the other files linked (a generated district's inventory is
    large)."""
    if target.exists():
        shutil.rmtree(target)
    target.mkdir(parents=True)
    rewritten = ("city.yaml", MESSAGES_FILE)
    for path in pack_dir.iterdir():
        if path.name not in rewritten and path.is_file():
            (target / path.name).symlink_to(path.resolve())
    if (pack_dir / MESSAGES_FILE).exists():
        gateway = hooks.rstrip("/").removesuffix("/hooks") + "/gateway"
        _gateway_channels(pack_dir / MESSAGES_FILE, target / MESSAGES_FILE, gateway)
    city: dict[str, Any] = yaml.safe_load((pack_dir / "city.yaml").read_text(encoding="utf-8"))
    for dept in city["departments"]:
        if dept.get("webhook"):
            dept["webhook"]["url"] = f"{hooks.rstrip('/')}/{dept['code']}"
    text = yaml.safe_dump(city, allow_unicode=True, sort_keys=False)
    (target / "city.yaml").write_text(text, encoding="utf-8")
    return target


def _gateway_channels(source: Path, target: Path, gateway: str) -> None:
    messages: dict[str, Any] = yaml.safe_load(source.read_text(encoding="utf-8"))
    for channel in messages.get("channels") or []:
        if channel.get("url"):
            channel["url"] = f"{gateway}/{channel['kind']}"
    text = yaml.safe_dump(messages, allow_unicode=True, sort_keys=False)
    target.write_text(text, encoding="utf-8")


def create_desk(pack: CityPack, echo: bool = True, gateway: Path | None = None) -> FastAPI:
    """The desk; with the stand-in message gateway (`system/gateway.py`), recording into
    the directory `gateway`."""
    app = FastAPI(title="gridloop department desk (demo)")
    received: dict[str, dict[str, Any]] = {}
    add_ops_routes(app)
    Gateway(pack, gateway).add_routes(app)

    @app.post("/hooks/{department}", status_code=204)
    async def receive(department: str, request: Request) -> None:
        dept = pack.departments.get(department)
        if dept is None or dept.webhook is None:
            raise HTTPException(404, f"no department {department} with a webhook")
        body = await request.body()
        try:
            Webhook(dept.webhook.secret).verify(body, dict(request.headers))
        except WebhookVerificationError as exc:
            raise HTTPException(401, f"bad signature: {exc}") from exc
        webhook_id = request.headers["webhook-id"]
        if webhook_id in received:
            return  # a retry of a delivery we already have
        message = json.loads(body)
        received[webhook_id] = {"department": department, "webhook_id": webhook_id, **message}
        if echo:
            data = message.get("data", {})
            console.print(
                f"[green]webhook[/] {department} ← {message.get('type')} "
                f"case {data.get('case_id')} due {data.get('deadline')}"
            )

    @app.get("/hooks")
    async def listing() -> list[dict[str, Any]]:
        return list(received.values())

    return app


async def run(settings: Settings) -> None:
    gateway = settings.data_dir / GATEWAY_DIR
    desk = create_desk(load_city_pack(settings.city_pack), gateway=gateway)
    await serve(desk, settings.host, settings.desk_port, [])
