"""The commands that work on a running system: `status`, `credentials`, `department`,
`webhooks`, `audit`. Each finds the system as `gridloop.running` says (from any directory;
`--data-dir` or GRIDLOOP_DATA_DIR to choose), says in one line when it is not there (exit
code 1, never a traceback), and prints one JSON document with `--json`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic_core import to_jsonable_python
from rich.console import Console
from rich.table import Table

from gridloop import running
from gridloop.config import Settings
from gridloop.mongo import Document

console = Console()
errors = Console(stderr=True)

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        file_okay=False,
        help="The data directory of the `gridloop up` to work on (default: GRIDLOOP_DATA_DIR; "
        "else MONGODB_URI/KAFKA_BOOTSTRAP_SERVERS; else the running one)",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document")]


def emit(document: Any) -> None:
    """Print `document` as JSON, unwrapped and uncoloured (for programs)."""
    text = json.dumps(to_jsonable_python(document, fallback=str), ensure_ascii=False, indent=2)
    sys.stdout.write(text + "\n")


def fail(message: str) -> typer.Exit:
    errors.print(message, markup=False, highlight=False, soft_wrap=True)
    return typer.Exit(1)


@contextlib.contextmanager
def on_system(data_dir: Path | None) -> Iterator[Settings]:
    """The settings of the system to work on; its absence as one line and exit code 1."""
    try:
        settings = running.locate(data_dir)
        with running.reaching(settings):
            yield settings
    except running.Unavailable as exc:
        raise fail(str(exc)) from None


def status(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Where the running system listens (from the state file `gridloop up` writes)."""
    try:
        state = running.find(data_dir)
    except running.Unavailable as exc:
        raise fail(str(exc)) from None
    if as_json:
        emit(state.model_dump(mode="json"))
        return
    if state.address:
        console.print(f"gridloop is at {state.address}  (the workbench; the API under /v1)")
    table = Table(title=f"gridloop is up (pid {state.pid}, since {state.started_at:%H:%M:%S})")
    table.add_column("component")
    table.add_column("listens on", overflow="fold")
    table.add_row("kafka", state.kafka_bootstrap_servers or "-")
    table.add_row("mongodb", state.mongodb_uri or "-")
    for name, url in state.services.items():
        table.add_row(name, url)
    console.print(table)
    console.print(f"Data: {state.data_dir}  city pack: {state.city_pack}", soft_wrap=True)
    if state.demo_credentials:
        console.print(f"Demo credentials: {state.demo_credentials}", soft_wrap=True)


credentials_app = typer.Typer(help="Credentials: bearer tokens with a role.")


@credentials_app.command("issue")
def credentials_issue(
    role: Annotated[
        str,
        typer.Argument(
            help="hotline, supervisor, supervision_centre, command_centre, department or admin"
        ),
    ],
    subject: Annotated[
        str,
        typer.Argument(help="Who holds it: a supervisor id, a department code, an operator's name"),
    ],
    note: str = "",
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Issue a token (printed once; only its hash is stored)."""
    from gridloop.auth import CredentialStore, Role
    from gridloop.mongo import connect, database

    try:
        chosen = Role(role)
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise typer.BadParameter(f"one of {roles}", param_hint="ROLE") from None

    async def issue(settings: Settings) -> str:
        client = connect(settings)
        try:
            return await CredentialStore(database(client, settings)).issue(chosen, subject, note)
        finally:
            await client.close()

    with on_system(data_dir) as settings:
        token = asyncio.run(issue(settings))
    if as_json:
        emit({"role": chosen.value, "subject": subject, "note": note, "token": token})
    else:
        console.print(token)


department_app = typer.Typer(help="Departments: webhook endpoints and their secrets.")
webhooks_app = typer.Typer(help="Webhook deliveries: dead letters and replay.")


@department_app.command("list")
def department_list(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Every department of the city pack: where its webhooks go (set by an admin or the
    pack's), whether they are disabled, the signing secrets, deliveries waiting and dead."""
    with on_system(data_dir) as settings:
        rows = asyncio.run(_departments(settings))
    if as_json:
        emit(rows)
        return
    table = Table(title=f"{len(rows)} departments")
    for column in ("department", "name", "webhook", "source", "disabled", "pending", "dead"):
        table.add_column(column, overflow="fold")
    for r in rows:
        cells = (r["department"], r["name"], r["url"] or "-", r["source"], r["disabled"] or "")
        table.add_row(*cells, str(r["pending"]), str(r["dead"]))
    console.print(table)


async def _departments(settings: Settings) -> list[dict[str, Any]]:
    from gridloop.citypack import load_city_pack
    from gridloop.mongo import connect, database
    from services.notify.store import DeliveryStore

    pack = load_city_pack(settings.city_pack)
    client = connect(settings)
    try:
        store = DeliveryStore(database(client, settings))
        endpoints = await store.all_endpoints(pack)
        set_by_admin = {d["_id"] async for d in store.endpoints.find({}) if d.get("url")}
        counts: dict[tuple[str, str], int] = {}
        waiting: Document = {"status": {"$in": ["pending", "dead"]}}
        async for doc in store.deliveries.find(waiting, {"department": 1, "status": 1}):
            key = (doc["department"], doc["status"])
            counts[key] = counts.get(key, 0) + 1
    finally:
        await client.close()
    rows: list[dict[str, Any]] = []
    for code, dept in pack.departments.items():
        endpoint = endpoints.get(code)
        rows.append(
            {
                "department": code,
                "name": dept.name,
                "url": endpoint.url if endpoint else None,
                "source": "admin" if code in set_by_admin else "city pack",
                "disabled": endpoint.disabled if endpoint else None,
                "signing_secrets": len(endpoint.secrets) if endpoint else 0,
                "pending": counts.get((code, "pending"), 0),
                "dead": counts.get((code, "dead"), 0),
            }
        )
    return rows


@department_app.command("set-webhook")
def department_set_webhook(
    code: Annotated[str, typer.Argument(help="The department's code in the city pack")],
    url: Annotated[str, typer.Argument(help="Where its webhooks go")],
    previous_secret_hours: Annotated[
        float, typer.Option(help="How long the previous secrets keep signing (key rotation)")
    ] = 24.0,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Set a department's webhook URL with a new secret, printed once."""
    from gridloop.citypack import load_city_pack
    from gridloop.mongo import connect, database
    from gridloop.refusal import Refused
    from services.notify.admin import set_webhook
    from services.notify.store import DeliveryStore

    async def work(settings: Settings) -> str:
        client = connect(settings)
        try:
            store = DeliveryStore(database(client, settings))
            pack = load_city_pack(settings.city_pack)
            overlap = timedelta(hours=previous_secret_hours)
            return await set_webhook(pack, store, code, url, overlap)
        finally:
            await client.close()

    with on_system(data_dir) as settings:
        try:
            secret = asyncio.run(work(settings))
        except Refused as exc:
            raise fail(f"refused {'.'.join(exc.loc)}: {exc.reason}") from None
    if as_json:  # the admin API's answer (PUT /departments/{code}/webhook)
        emit({"department": code, "url": url, "secret": secret})
        return
    console.print(f"{code} → {url}")
    console.print("secret (shown once; give it to the department):")
    console.print(secret, soft_wrap=True)


@webhooks_app.command("replay")
def webhooks_replay(
    webhook_id: Annotated[str | None, typer.Option("--id", help="One delivery")] = None,
    department: Annotated[str | None, typer.Option(help="Every dead delivery of one")] = None,
    case_id: Annotated[str | None, typer.Option(help="Every dead delivery of one case")] = None,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Send dead-lettered webhook deliveries again (same webhook-id); the running notify
    service picks them up."""
    from gridloop.mongo import connect, database
    from services.notify.store import DeliveryStore

    query = {
        k: v
        for k, v in (("_id", webhook_id), ("department", department), ("case_id", case_id))
        if v
    }

    async def work(settings: Settings) -> int:
        client = connect(settings)
        try:
            return await DeliveryStore(database(client, settings)).replay(query)
        finally:
            await client.close()

    with on_system(data_dir) as settings:
        count = asyncio.run(work(settings))
    if as_json:  # the admin API's answer (POST /deliveries/replay)
        emit({"replayed": count})
    else:
        console.print(f"replaying {count} delivery(ies)" if count != 1 else "replaying 1 delivery")


def audit(
    case: Annotated[str | None, typer.Option("--case", help="One case's trail")] = None,
    subject: Annotated[
        str | None, typer.Option(help="Who acted: an actor id or a credential's subject")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Records at or after this time (UTC if no offset)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """The audit trail, oldest first: accepted actions, refused attempts and reads of
    reporters' personal data (who, role, what, which case, when, why)."""
    from gridloop.audit import AuditTrail
    from gridloop.mongo import connect, database

    if since is not None and since.utcoffset() is None:
        since = since.replace(tzinfo=UTC)

    async def work(settings: Settings) -> list[dict[str, Any]]:
        client = connect(settings)
        try:
            return await AuditTrail(database(client, settings)).find(case, subject, since, limit)
        finally:
            await client.close()

    with on_system(data_dir) as settings:
        records = asyncio.run(work(settings))
    if as_json:
        emit(records)  # as GET /audit answers
        return
    # One line a record (at, kind, role/who, action, case, status, why or fields shown):
    # easy to read, to grep and to keep.
    for r in records:
        actor = r.get("actor") or {}
        why = r.get("reason") or ", ".join(r.get("fields") or [])
        line = [
            r["at"].isoformat(timespec="seconds"),
            r["kind"],
            f"{actor.get('role') or '-'}/{actor.get('id') or '-'}",
            r["action"],
            r.get("case_id") or "-",
            str(r.get("status") or ""),
            why or "",
        ]
        console.print("  ".join(line).rstrip(), soft_wrap=True, markup=False, highlight=False)
