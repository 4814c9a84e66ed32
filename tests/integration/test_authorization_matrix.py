"""Every role against every endpoint of intake, dispatch and notify's admin API: who is let
through the door.

The table is the access policy, written down by hand from the issues (supervision centre
files, supervisors verify and check, departments answer for their own cases, the command
centre dispatches, its shift lead (值班长) alone decides requests and urges departments
(督办); admins own the webhooks, which the command centre
may read and replay; the audit trail is for admins and the supervision centre). A denial is
a 401 without a token, or a 403 on the `Authorization` header; anything else (404 for a case
that does not exist, 409, 422) means the caller got past the door. Requests carry empty
bodies: nothing is created.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from pymongo import AsyncMongoClient

from gridloop.auth import CredentialStore, Role
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.http import HttpLimits
from gridloop.kafka import EventProducer, ensure_topics
from gridloop.mongo import Document
from services.dispatch.api import create_app as dispatch_app
from services.dispatch.handlers import Dispatch
from services.intake.api import Intake, follow_key
from services.intake.api import create_app as intake_app
from services.notify.admin import create_app as notify_app
from services.notify.store import DeliveryStore
from tests.conftest import Servers

R = Role
STAFF: set[Role | None] = {
    R.supervisor,
    R.supervision_centre,
    R.command_centre,
    R.hotline,
    R.department,
    R.admin,
}
EVERYONE: set[Role | None] = {*R, None}
DEPARTMENT: set[Role | None] = {R.department}
LEAD: set[Role | None] = {R.shift_lead}
TIERS: set[Role | None] = {R.tier_office, R.grid_staff}  # who mediates disputes
CASE = "/cases/C-none"
DEPT = "/departments/WATER/cases/C-none"

INTAKE: list[tuple[str, str, set[Role | None]]] = [
    ("GET", f"{CASE}", STAFF),
    ("GET", f"{CASE}/public", EVERYONE),
    ("POST", "/reports/batch", EVERYONE),  # a report's channel names its roles (the body's)
    ("POST", f"{CASE}/verification", {R.supervisor}),
    ("POST", f"{CASE}/check", {R.supervisor}),
    # 自处置: supervisors and grid staff fix a minor problem of their own grid on the spot.
    ("POST", "/self-handling", {R.supervisor, R.grid_staff}),
    ("POST", f"{CASE}/file", {R.supervision_centre}),
    ("POST", f"{CASE}/void", {R.supervision_centre}),
    ("POST", f"{CASE}/merge", {R.supervision_centre}),
    ("POST", f"{CASE}/split", {R.supervision_centre}),
    # The reporter (follow token or own credential: past the door, then 404) and hotline.
    ("POST", f"{CASE}/feedback", {None, R.public, R.hotline}),
    # 回访: the hotline's queue, its calls and the residents' answers.
    ("GET", "/callbacks", {R.hotline}),
    ("POST", f"{CASE}/callback", {R.hotline}),
    ("POST", f"{CASE}/callback/unreached", {R.hotline}),
    # Erasing a reporter's contact: the hotline (for the resident) and the roles that see it.
    ("POST", f"{CASE}/contact/erasure", {R.hotline, R.supervision_centre, R.admin}),
    # The knowledge base and answering a consultation from it (直接答复): who takes calls.
    ("GET", "/knowledge?q=供暖", {R.hotline, R.supervision_centre}),
    ("POST", f"{CASE}/answer", {R.hotline, R.supervision_centre}),
    ("POST", f"{CASE}/contact/opt-out", {None, R.public, R.hotline}),
    ("GET", "/tasks/verification", {R.supervisor, R.supervision_centre}),
    ("GET", "/tasks/check", {R.supervisor, R.supervision_centre}),  # 核查 (the handheld)
    ("GET", "/tasks/filing", {R.supervision_centre}),
    ("GET", "/media/none", STAFF),
    ("GET", "/media/none/signed?department=WATER&expires=1&signature=x", EVERYONE),
    ("GET", "/open311/v2/services.json", EVERYONE),
    ("GET", "/audit", {R.admin, R.supervision_centre}),
]
DISPATCH: list[tuple[str, str, set[Role | None]]] = [
    *[
        ("POST", f"{path}/{action}", DEPARTMENT)
        for path in (DEPT, "/department/cases/C-none")  # the old path and the credential's
        for action in (
            "acknowledge",
            "handled",
            "return",
            "extension",
            "parking",
            "resume",
            "explanation",
            "urge-reply",
        )
    ],
    ("POST", f"{CASE}/dispatch", {R.command_centre}),
    *[
        ("POST", f"{CASE}/{kind}/{verb}", LEAD)
        for kind in ("extension", "parking", "return")
        for verb in ("approve", "deny")
    ],
    ("POST", f"{CASE}/urge", LEAD),
    ("POST", f"{CASE}/resume", {R.command_centre}),
    ("GET", f"{CASE}", {R.command_centre, R.shift_lead}),
    # Disputes (矛盾纠纷): the tier offices and, at the grid tier, the grid's staff.
    ("GET", "/disputes", TIERS),
    *[
        ("POST", f"/disputes/C-none/{action}", TIERS)
        for action in ("escalate", "explanation", "confirm", "close")
    ],
]
OPERATORS: set[Role | None] = {R.admin, R.command_centre}
HOOK = "/departments/WATER/webhook"
NOTIFY: list[tuple[str, str, set[Role | None]]] = [
    ("PUT", HOOK, {R.admin}),  # sets a URL and shows its new secret
    ("GET", HOOK, OPERATORS),
    ("POST", f"{HOOK}/enable", {R.admin}),
    ("GET", "/deliveries", OPERATORS),
    ("GET", "/deliveries/none", OPERATORS),
    ("POST", "/deliveries/none/replay", OPERATORS),
    ("POST", "/deliveries/replay", OPERATORS),
    ("GET", "/department/deliveries", DEPARTMENT),
    ("GET", "/department/deliveries/none", DEPARTMENT),
]
SUBJECT = {R.department: "WATER"}  # the department in the paths above
# The public's rate limit is not what this test is about: room for every request.
ROOMY = HttpLimits(public_rate="10000/minute")


@dataclass
class Door:
    http: httpx.AsyncClient
    tokens: dict[Role, str]

    async def passes(self, method: str, path: str, role: Role | None) -> bool:
        headers = {"Authorization": f"Bearer {self.tokens[role]}"} if role else {}
        response = await self.http.request(method, path, headers=headers, json={})
        if response.status_code == 401:
            return False
        if response.status_code == 403:
            return bool(response.json()["detail"][0]["loc"] != ["header", "Authorization"])
        assert response.status_code < 500, (method, path, role, response.text)
        return True


@pytest.fixture
async def doors(servers: Servers) -> AsyncIterator[dict[str, Door]]:
    await ensure_topics(servers.kafka)
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = mongo[f"test_{uuid.uuid4().hex[:12]}"]
    producer = EventProducer(servers.kafka)
    await producer.start()
    pack = load_city_pack(DEMO_CITY_PACK)
    credentials = CredentialStore(db)
    tokens = {role: await credentials.issue(role, SUBJECT.get(role, f"{role}-1")) for role in R}
    intake = Intake(pack, producer, db, await follow_key(db))
    dispatch = Dispatch.on(pack, db, producer)
    apps = {
        "intake": intake_app(intake, ROOMY),
        "dispatch": dispatch_app(dispatch, credentials, ROOMY),
        "notify": notify_app(pack, DeliveryStore(db), credentials, ROOMY),
    }
    clients = {
        name: httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")
        for name, app in apps.items()
    }
    yield {name: Door(client, tokens) for name, client in clients.items()}
    for client in clients.values():
        await client.aclose()
    await producer.stop()
    await mongo.close()


@pytest.mark.parametrize(
    ("service", "table"), [("intake", INTAKE), ("dispatch", DISPATCH), ("notify", NOTIFY)]
)
async def test_every_role_against_every_endpoint(
    doors: dict[str, Door], service: str, table: list[tuple[str, str, set[Role | None]]]
) -> None:
    wrong: list[str] = []
    for method, path, allowed in table:
        for role in EVERYONE:
            passed = await doors[service].passes(method, path, role)
            if passed != (role in allowed):
                verdict = "let in" if passed else "kept out"
                wrong.append(f"{method} {path}: {role or 'no token'} was {verdict}")
    assert wrong == []


async def test_a_department_cannot_act_for_another(doors: dict[str, Door]) -> None:
    door = doors["dispatch"]
    headers = {"Authorization": f"Bearer {door.tokens[R.department]}"}  # WATER's
    response = await door.http.post(
        "/departments/SANITATION/cases/C-none/handled",
        headers=headers,
        json={"handler_id": "crew-1"},
    )
    assert response.status_code == 403
    assert response.json()["detail"][0]["loc"] == ["path", "department"]
