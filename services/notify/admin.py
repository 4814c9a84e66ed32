"""Department endpoints and deliveries: the admin API of the notify service, and the
functions the CLI shares with it (`gridloop department set-webhook`, `gridloop webhooks
replay`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel, ConfigDict, Field

from gridloop.auth import CredentialStore, Principal, Role, require
from gridloop.citypack import CityPack
from gridloop.errors import install_error_handlers, refusals
from gridloop.http import HttpLimits, harden
from gridloop.mongo import Document
from gridloop.refusal import conflict, invalid, not_found
from gridloop.runtime import add_ops_routes
from schemas.limits import CASE_ID, CASE_ID_MAX, DEPARTMENT_CODE, CaseRef, DepartmentCode, WebUrl
from services.notify import own
from services.notify.addresses import address_problem, url_problem
from services.notify.service import resolve
from services.notify.store import DeliveryStore

DEFAULT_OVERLAP = timedelta(hours=24)


class WebhookIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: WebUrl
    # How long the previous secrets keep signing beside the new one (key rotation).
    previous_secret_hours: Annotated[float, Field(ge=0, le=24 * 30)] = 24.0


class ReplayIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    department: DepartmentCode | None = None
    case_id: CaseRef | None = None


async def check_webhook_url(pack: CityPack, url: str) -> None:
    """Refuse (422, `url`) a URL that is malformed or reaches a private or loopback
    address the city pack does not allow, or a link-local one (server-side request
    forgery, `addresses.py`). The delivery checks again at each attempt."""
    problem = url_problem(url)
    if problem is None:
        parts = urlsplit(url)
        addresses = await resolve(parts.hostname or "", parts.port)
        allow = pack.routing.webhooks.allow_private_addresses
        problem = address_problem(addresses, allow)
    if problem is not None:
        raise invalid(("body", "url"), f"webhook URL refused: {problem}", "url_refused")


def _known(pack: CityPack, department: str) -> None:
    if department not in pack.departments:
        raise not_found(("path", "department"), f"no department {department}")


async def set_webhook(
    pack: CityPack, store: DeliveryStore, department: str, url: str, overlap: timedelta
) -> str:
    """Validate and set the department's URL with a new secret; return the secret."""
    _known(pack, department)
    await check_webhook_url(pack, url)
    return await store.set_webhook(pack, department, url, overlap)


def _store(request: Request) -> DeliveryStore:
    store: DeliveryStore = request.app.state.deliveries
    return store


def _pack(request: Request) -> CityPack:
    pack: CityPack = request.app.state.pack
    return pack


Store = Annotated[DeliveryStore, Depends(_store)]
Pack = Annotated[CityPack, Depends(_pack)]
Admin = Annotated[Principal, Depends(require(Role.admin))]
Operator = Annotated[Principal, Depends(require(Role.admin, Role.command_centre))]
router = APIRouter()


@router.put("/departments/{department}/webhook", responses=refusals(400, 401, 403, 404))
async def put_webhook(
    department: str, hook: WebhookIn, _: Admin, store: Store, pack: Pack
) -> dict[str, Any]:
    """Set the department's webhook URL; a new secret is generated and shown only here."""
    overlap = timedelta(hours=hook.previous_secret_hours)
    secret = await set_webhook(pack, store, department, hook.url, overlap)
    return {"department": department, "url": hook.url, "secret": secret}


@router.get("/departments/{department}/webhook", responses=refusals(401, 403, 404))
async def get_webhook(department: str, _: Operator, store: Store, pack: Pack) -> dict[str, Any]:
    """The department's endpoint and its health; secrets are never shown again."""
    _known(pack, department)
    endpoint = await store.endpoint(pack, department)
    info = await store.endpoint_info(department) or {}
    return {
        "department": department,
        "url": endpoint.url if endpoint else None,
        "source": "admin" if info.get("url") else "city pack",
        "disabled": endpoint.disabled if endpoint else None,
        "signing_secrets": len(endpoint.secrets) if endpoint else 0,
        "pending": await store.deliveries.count_documents(
            {"department": department, "status": "pending"}
        ),
        "dead": await store.deliveries.count_documents(
            {"department": department, "status": "dead"}
        ),
    }


@router.post("/departments/{department}/webhook/enable", responses=refusals(401, 403, 404))
async def enable_webhook(department: str, _: Admin, store: Store, pack: Pack) -> dict[str, Any]:
    """Enable an endpoint disabled by a 410 Gone; waiting messages flow again."""
    _known(pack, department)
    await store.enable(department)
    return {"department": department, "disabled": None}


@router.get("/deliveries", responses=refusals(401, 403))
async def list_deliveries(
    _: Operator,
    store: Store,
    department: Annotated[str | None, Query(pattern=DEPARTMENT_CODE)] = None,
    status: Annotated[str | None, Query(pattern="^(pending|delivered|dead)$")] = None,
    case_id: Annotated[str | None, Query(max_length=CASE_ID_MAX, pattern=CASE_ID)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    query: Document = {
        k: v for k, v in (("department", department), ("status", status), ("case_id", case_id)) if v
    }
    return [_public(d) for d in await store.find(query, limit)]


@router.get("/deliveries/{delivery_id}", responses=refusals(401, 403, 404))
async def read_delivery(delivery_id: str, _: Operator, store: Store) -> dict[str, Any]:
    """A delivery with every attempt."""
    doc = await store.get(delivery_id)
    if doc is None:
        raise not_found(("path", "delivery_id"), f"no delivery {delivery_id}")
    return _public(doc)


@router.post(
    "/deliveries/{delivery_id}/replay", status_code=202, responses=refusals(401, 403, 404, 409)
)
async def replay_one(delivery_id: str, _: Operator, store: Store) -> dict[str, Any]:
    """Send a dead-lettered delivery again, with the same webhook id."""
    doc = await store.get(delivery_id)
    if doc is None:
        raise not_found(("path", "delivery_id"), f"no delivery {delivery_id}")
    if doc["status"] != "dead":
        raise conflict(
            ("path", "delivery_id"), f"delivery is {doc['status']}, not dead", "not_dead"
        )
    return {"replayed": await store.replay({"_id": delivery_id})}


@router.post("/deliveries/replay", status_code=202, responses=refusals(400, 401, 403))
async def replay_many(filters: ReplayIn, _: Operator, store: Store) -> dict[str, Any]:
    """Send every dead-lettered delivery matching the filters again."""
    return {"replayed": await store.replay(filters.model_dump(exclude_none=True))}


def _public(doc: Document) -> dict[str, Any]:
    doc = {k: v for k, v in doc.items() if k not in ("lease_owner", "lease_until")}
    doc["webhook_id"] = doc.pop("_id")
    encoded: dict[str, Any] = jsonable_encoder(doc)
    return encoded


def create_app(
    pack: CityPack,
    store: DeliveryStore,
    credentials: CredentialStore,
    limits: HttpLimits | None = None,
) -> FastAPI:
    app = FastAPI(title="gridloop notify: department webhooks", version="0.1.0")
    app.state.pack, app.state.deliveries, app.state.credentials = pack, store, credentials
    app.include_router(router)
    app.include_router(own.router)
    install_error_handlers(app)
    harden(app, "notify", limits or HttpLimits())
    add_ops_routes(app)
    return app
