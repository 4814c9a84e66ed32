"""The race test's clients (tests/integration/test_command_races.py): intake and dispatch
over HTTP with the world's tokens, and cases built through the API up to the state a race
needs, waited for through the command centre's `GET /cases/{id}`."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import httpx

from tests.integration.race_audit import Answer, Shot
from tests.integration.race_world import HarnessError, RaceWorld

PATIENCE = 90.0  # for a case to reach the state a race needs
BATCH = 500  # reports a `POST /reports/batch`
T = TypeVar("T")
R = TypeVar("R")
Doc = dict[str, Any]


@dataclass(frozen=True)
class Case:
    """A case ready for a race: its version then, its department, a pending request."""

    case_id: str
    version: int
    department: str = ""
    request_id: str = ""


def _json(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return response.text


class Desk:
    """The race's clients: intake and dispatch over HTTP, with the world's tokens."""

    def __init__(self, world: RaceWorld, http: dict[str, httpx.AsyncClient]) -> None:
        self.world, self.http = world, http
        self.gate = asyncio.Semaphore(16)  # preparation and polling requests in flight

    async def post(
        self, service: str, path: str, body: Doc | list[Doc], holder: str, key: str = ""
    ) -> Answer:
        headers = {"Authorization": f"Bearer {self.world.tokens[holder]}"}
        if key:
            headers["Idempotency-Key"] = key
        response = await self.http[service].post(path, json=body, headers=headers)
        return Answer(response.status_code, _json(response))

    async def send(self, shot: Shot) -> Answer:
        return await self.post(shot.service, shot.path, shot.body, shot.holder, shot.key)

    async def must(self, service: str, path: str, body: Doc, holder: str) -> Doc:
        """A step that builds a race's case: anything but 2xx is a broken harness."""
        async with self.gate:
            answer = await self.post(service, path, body, holder)
        if not answer.ok or not isinstance(answer.body, dict):
            raise HarnessError(f"POST {path}: {answer.status} {answer.body}")
        return answer.body

    async def each(self, items: Iterable[T], step: Callable[[T], Awaitable[R]]) -> list[R]:
        return list(await asyncio.gather(*(step(item) for item in items)))

    async def cases(self, case_ids: Iterable[str]) -> dict[str, Doc | None]:
        """Each case as projected, as the command centre reads it: dispatch's `GET
        /cases/{id}` (state, version, department, pending request). Intake's answers the
        same from the same projection but also counts the case's duplicates, which scans the
        collection (no index on `merged_into`): 100 reads took 24 s by the 7th pair."""
        token = {"Authorization": f"Bearer {self.world.tokens['command']}"}

        async def one(case_id: str) -> tuple[str, Doc | None]:
            async with self.gate:
                response = await self.http["dispatch"].get(f"/cases/{case_id}", headers=token)
            return case_id, response.json() if response.status_code == 200 else None

        return dict(await self.each(case_ids, one))

    async def until(
        self, case_ids: Iterable[str], ready: Callable[[Doc], bool], what: str, poll: float = 0.1
    ) -> dict[str, Doc]:
        """Each case, once `ready` holds for it (polled through `GET /cases/{id}`)."""
        waiting, found = set(case_ids), {}
        deadline = time.monotonic() + PATIENCE
        while waiting:
            for case_id, doc in (await self.cases(waiting)).items():
                if doc is not None and ready(doc):
                    found[case_id] = doc
                    waiting.discard(case_id)
            if waiting and time.monotonic() > deadline:
                raise HarnessError(f"{len(waiting)} cases never {what}, e.g. {min(waiting)}")
            if waiting:
                await asyncio.sleep(poll)
        return found

    async def report(self, n: int, channel: str) -> list[str]:
        """`n` new cases through `POST /reports/batch`: supervisors' (filed by rule) or the
        hotline's (citizens', to verify); exposed garbage at points of their own."""
        holder = "supervisor" if channel == "supervisor" else "hotline"
        reports = [self._report(channel) for _ in range(n)]
        ids: list[str] = []
        for start in range(0, n, BATCH):
            chunk = reports[start : start + BATCH]
            answer = await self.post("intake", "/reports/batch", chunk, holder)
            if answer.status != 202:
                raise HarnessError(f"POST /reports/batch: {answer.status} {answer.body}")
            ids += [a["case_id"] for a in answer.body["accepted"]]
        return ids

    def _report(self, channel: str) -> Doc:
        # A lattice of points ≈ 1 m apart in the grids of Donghuamen, clear of the pack's
        # location rules (the park, the moat): every case goes to SANITATION.
        i = next(self.world.points)
        point = {
            "lon": round(116.400005 + (i % 600) * 1e-5, 7),
            "lat": round(39.9202 + (i // 600) * 1e-5, 7),
        }
        report: Doc = {
            "channel": channel,
            "kind": "event",
            "class_code": "0102",
            "point": point,
            "description": f"暴露垃圾 race {i}",
        }
        if channel == "hotline":
            report["reporter"] = {"name": "王先生", "phone": "13900000000"}
        return report


@asynccontextmanager
async def desk_of(world: RaceWorld) -> AsyncIterator[Desk]:
    # Idle connections are dropped before uvicorn drops them (after 5 s): a request sent on
    # a connection the server is closing fails with a ReadError, and it is no finding.
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64, keepalive_expiry=1.0)
    http = {
        name: httpx.AsyncClient(base_url=url, limits=limits, timeout=30.0)
        for name, url in world.urls.items()
    }
    try:
        yield Desk(world, http)
    finally:
        for client in http.values():
            await client.aclose()


# --- cases in the state a race needs ---------------------------------------------------------


async def dispatched(desk: Desk, n: int) -> list[Case]:
    """Supervisors' reports, filed by rule and dispatched by dispatch's consumer."""
    ids = await desk.report(n, "supervisor")
    docs = await desk.until(ids, lambda d: d["state"] == "dispatched", "auto-dispatched")
    return [Case(i, docs[i]["version"], docs[i]["department"]) for i in ids]


async def handled(desk: Desk, n: int) -> list[Case]:
    cases = await dispatched(desk, n)

    async def handle(c: Case) -> object:
        path = f"/departments/{c.department}/cases/{c.case_id}/handled"
        return await desk.must("dispatch", path, {"handler_id": "crew-0"}, c.department)

    await desk.each(cases, handle)
    docs = await desk.until(
        [c.case_id for c in cases], lambda d: d["state"] == "handled", "handled"
    )
    return [Case(c.case_id, docs[c.case_id]["version"], c.department) for c in cases]


async def closed(desk: Desk, n: int) -> list[Case]:
    cases = await handled(desk, n)

    async def check(c: Case) -> object:
        return await desk.must(
            "intake", f"/cases/{c.case_id}/check", {"passed": True}, "supervisor"
        )

    await desk.each(cases, check)
    docs = await desk.until([c.case_id for c in cases], lambda d: d["state"] == "closed", "closed")
    return [Case(c.case_id, docs[c.case_id]["version"], c.department) for c in cases]


async def pending(desk: Desk, n: int) -> list[Case]:
    """Dispatched cases whose department asked for a later deadline."""
    cases = await dispatched(desk, n)
    later = "2099-01-01T00:00:00+08:00"

    async def ask(c: Case) -> Case:
        path = f"/departments/{c.department}/cases/{c.case_id}/extension"
        body = {"handler_id": "crew-0", "deadline": later, "reason": "the crane is booked"}
        answer = await desk.must("dispatch", path, body, c.department)
        return Case(c.case_id, c.version, c.department, answer["request_id"])

    asked = {c.case_id: c for c in await desk.each(cases, ask)}

    def waiting(doc: Doc) -> bool:
        request = doc.get("pending_request") or {}
        return bool(request.get("request_id") == asked[doc["case_id"]].request_id)

    await desk.until(asked, waiting, "showed the request pending")
    return list(asked.values())


async def reported(desk: Desk, n: int) -> list[Case]:
    """Citizens' reports through the hotline: awaiting a supervisor's verification."""
    ids = await desk.report(n, "hotline")
    docs = await desk.until(ids, lambda d: d["state"] == "reported", "reported")
    return [Case(i, docs[i]["version"]) for i in ids]


async def filing(desk: Desk, case: Case, i: int) -> tuple[int, str]:
    """The trigger of void-vs-dispatch: the report confirmed, and so filed by rule; the
    race begins at the filing's version, at once or once the filing is projected."""
    path = f"/cases/{case.case_id}/verification"
    answer = await desk.must("intake", path, {"confirmed": True, "note": "seen"}, "supervisor-2")
    if answer.get("state") != "filed":
        raise HarnessError(f"a confirmed report was not filed by rule: {answer}")
    if i % 2 == 0:
        return answer["version"], "void at once"
    ready = {"filed", "dispatched", "voided"}
    await desk.until([case.case_id], lambda d: d["state"] in ready, "filed", poll=0.005)
    return answer["version"], "void once filed is projected"
