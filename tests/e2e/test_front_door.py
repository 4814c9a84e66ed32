"""The whole system through its front door only (system/frontdoor), as `gridloop up` runs
it: one origin for the API under /v1, Open311, the workbench and its live news (streamed,
not buffered), each service behind it in its own process."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import pytest_asyncio
from pymongo import AsyncMongoClient

from gridloop.access import Role
from gridloop.mongo import Document
from gridloop.people import People
from tests.e2e.conftest import Running
from tests.e2e.test_closed_loop import as_supervisor
from tests.helpers import eventually

PASSWORD = "front-door-2026"
REPORT = {
    "channel": "supervisor",
    "kind": "event",
    "class_code": "0401",  # road collapse → ROADS
    # Away from the other tests' reports: a second report within 50 m would be merged.
    "point": {"lon": 116.4015, "lat": 39.9201},
    "description": "路面塌陷 reported through the front door",
    "reporter": {"id": "SUP-0004"},
}


@pytest.fixture(scope="module")
def door(running: Running) -> Iterator[str]:
    """The workbench and the front door started beside the running services."""
    for name in ("console", "door"):
        running.system.start_service(name)
    try:
        yield running.system.url("door")
    finally:
        for name in ("door", "console"):
            running.system.processes.pop(name).stop()


@pytest_asyncio.fixture(loop_scope="session")
async def session_cookie(running: Running) -> AsyncIterator[str]:
    """A signed-in centre operator's session (the workbench's cookie)."""
    client: AsyncMongoClient[Document] = AsyncMongoClient(running.system.env["MONGODB_URI"])
    try:
        people = People(client[running.system.env["GRIDLOOP_MONGODB_DATABASE"]])
        await people.people.delete_many({"_id": "sun.li"})
        await people.add("sun.li", PASSWORD, Role.supervision_centre, "centre", "孙丽")
        session = await people.sign_in("sun.li", PASSWORD)
        assert session is not None
        yield session.token
    finally:
        await client.close()


async def _news(http: httpx.AsyncClient, cookie: str, heard: asyncio.Queue[str]) -> None:
    """Follow /live at the door; put each `changed` case id on `heard` as it comes."""
    headers = {"cookie": f"gridloop_session={cookie}", "accept": "text/event-stream"}
    async with http.stream("GET", "/live", headers=headers) as stream:
        assert stream.status_code == 200
        assert stream.headers["content-type"].startswith("text/event-stream")
        await heard.put("open")
        event = ""
        async for line in stream.aiter_lines():
            if line.startswith("event: "):
                event = line.removeprefix("event: ")
            elif line.startswith("data: ") and event == "changed":
                await heard.put(json.loads(line.removeprefix("data: ")))


async def test_one_origin_serves_the_api_open311_and_the_workbench_live(
    running: Running, door: str, session_cookie: str
) -> None:
    supervisor = await as_supervisor(running, "SUP-0004")
    centre = {"Authorization": f"Bearer {await running.token(Role.supervision_centre, 'c1')}"}
    heard: asyncio.Queue[str] = asyncio.Queue()
    async with httpx.AsyncClient(base_url=door, timeout=httpx.Timeout(10.0, read=30.0)) as http:
        # The workbench's pages and Open311 at the root.
        login = await http.get("/login")
        assert login.status_code == 200 and 'name="password"' in login.text
        discovery = await http.get("/open311/v2/discovery.json")
        assert discovery.status_code == 200
        assert any(e["type"] == "production" for e in discovery.json()["endpoints"])
        # The API under /v1 only.
        assert (await http.post("/reports", json=REPORT, headers=supervisor)).status_code == 404
        following = asyncio.create_task(_news(http, session_cookie, heard))
        try:
            assert await asyncio.wait_for(heard.get(), 15) == "open"
            filed = await http.post("/v1/reports", json=REPORT, headers=supervisor)
            assert filed.status_code == 202, filed.text
            case_id = filed.json()["case_id"]

            async def read_back() -> dict[str, Any] | None:
                found = await http.get(f"/v1/cases/{case_id}", headers=centre)
                return found.json() if found.status_code == 200 else None

            case = await eventually(read_back, what="the case read back at the door")
            assert case["case_id"] == case_id
            # The live news of that case, through the door as it was sent.
            while (news := await asyncio.wait_for(heard.get(), 20)) != case_id:
                pass
            assert news == case_id
        finally:
            following.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await following
