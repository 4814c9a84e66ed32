"""A reporter's name and phone never enter the log, and an erasure leaves them nowhere
(issue 18, first "done when"; docs/personal-data.md).

A hotline call and an Open311 request, each with a name and a phone, are worked through to
closure and a callback (回访: a call that reached nobody, then the resident's answers, which
rate the case), by the whole system as `gridloop up` runs it. Then, as raw bytes: no
record of any of the system's topics (dead letters and the SLA changelog included), no
line of any service's log and no webhook body holds them; nor does any document of any
collection or any file of the embedded database's data directory (its journal included),
before the erasure and after it, and after `gridloop projections rebuild`. The hotline
reads both contacts before the erasure (so they were kept: sealed), and neither after.

Both reporters are told of their cases by SMS (item 5): the stand-in gateway's log and messages
hold neither name nor phone (numbers masked), and nothing is told after the erasure.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from bson.raw_bson import RawBSONDocument
from pymongo import AsyncMongoClient

from gridloop.auth import Role
from tests.conftest import Servers
from tests.e2e.conftest import Receiver, Running
from tests.e2e.test_closed_loop import case_in_state, delivery_for
from tests.helpers import eventually

# Unique to this run: nothing else in the session's servers holds them.
SUFFIX = secrets.token_hex(3)
HOTLINE_NAME, HOTLINE_PHONE = f"王秀英{SUFFIX}", f"137{secrets.randbelow(10**8):08d}"
OPEN311_FIRST, OPEN311_LAST = "Meilin", f"Zhao{SUFFIX}"
OPEN311_PHONE = f"139{secrets.randbelow(10**8):08d}"
WECHAT = f"wx_{SUFFIX}grid"
SECRETS = (HOTLINE_NAME, HOTLINE_PHONE, OPEN311_LAST, OPEN311_PHONE, WECHAT)

CALL: dict[str, Any] = {
    "channel": "hotline",
    "kind": "event",
    "class_code": "0101",  # an illegal structure → the street office STREET-001
    "point": {"lon": 116.4005, "lat": 39.9206},  # grid 110101001001001, SUP-0001's
    "description": "a shed built on the pavement",
    "reporter": {"name": HOTLINE_NAME, "phone": HOTLINE_PHONE, "wechat": WECHAT},
}
REQUEST = {
    "service_code": "event-0101",
    "lat": "39.9206",
    "long": "116.4015",  # grid 110101001001002, SUP-0001's; 85 m from the call: no merge
    "description": "another shed, by the bus stop",
    "first_name": OPEN311_FIRST,
    "last_name": OPEN311_LAST,
    "phone": OPEN311_PHONE,
}


def forms(value: str) -> list[bytes]:
    """How a value may be written: UTF-8, and JSON's ASCII escapes (\\u738b…)."""
    return list({value.encode(), json.dumps(value)[1:-1].encode()})


def leaks(blobs: Iterable[tuple[str, bytes]]) -> list[str]:
    """Where any form of any of SECRETS appears (`blobs`: (where, bytes))."""
    needles = [(v, f) for v in SECRETS for f in forms(v)]
    return [f"{v!r} in {where}" for where, blob in blobs for v, f in needles if f in blob]


async def topic_records(running: Running) -> list[tuple[str, bytes]]:
    """Every record of every topic of this system (its namespace), as raw bytes: key,
    value and headers."""
    consumer = AIOKafkaConsumer(bootstrap_servers=running.kafka, enable_auto_commit=False)
    await consumer.start()
    try:
        topics = sorted(t for t in await consumer.topics() if t.startswith(running.namespace))
        partitions = [
            TopicPartition(t, p) for t in topics for p in consumer.partitions_for_topic(t) or ()
        ]
        consumer.assign(partitions)
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(partitions)
        found: list[tuple[str, bytes]] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for r in records:
                    raw = (r.key or b"") + (r.value or b"")
                    raw += b"".join(name.encode() + (v or b"") for name, v in r.headers)
                    found.append((f"{tp.topic}/{tp.partition}@{r.offset}", raw))
        return found
    finally:
        await consumer.stop()


async def collections(running: Running) -> list[tuple[str, bytes]]:
    """Every document of every collection of the system's database, as stored (BSON)."""
    client: AsyncMongoClient[RawBSONDocument] = AsyncMongoClient(
        running.system.env["MONGODB_URI"], document_class=RawBSONDocument
    )
    try:
        db = client[running.system.env["GRIDLOOP_MONGODB_DATABASE"]]
        return [
            (f"{name}/{doc.get('_id')}", bytes(doc.raw))
            for name in await db.list_collection_names()
            async for doc in db[name].find({})
        ]
    finally:
        await client.close()


def files(root: Path) -> list[tuple[str, bytes]]:
    return [(str(p), p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()]


async def database_files(servers: Servers, running: Running) -> list[tuple[str, bytes]]:
    """The embedded database's data directory, once it holds what was written last: a
    marker written in plaintext now is there (so the scan sees what the server wrote)."""
    assert servers.data is not None
    marker = f"marker-{secrets.token_hex(8)}"
    client: AsyncMongoClient[dict[str, Any]] = AsyncMongoClient(running.system.env["MONGODB_URI"])
    try:
        await client["scan_markers"]["markers"].insert_one({"_id": marker})
    finally:
        await client.close()

    async def flushed() -> list[tuple[str, bytes]] | None:
        found = files(servers.data / "mongodb")  # type: ignore[operator]
        return found if any(marker.encode() in blob for _, blob in found) else None

    return await eventually(flushed, what="the marker in the database's files")


async def everything_but_the_database(running: Running, receiver: Receiver) -> list[str]:
    records = await topic_records(running)
    assert any(b"gridloop.case.closed" in raw for _, raw in records)  # the scan reads them
    hooks = [
        (f"webhook {d.department}", d.body + str(d.headers).encode()) for d in receiver.deliveries
    ]
    logs = files(running.system.logs)
    assert logs and any(blob for _, blob in logs)
    # The reporters' messages: the gateway's log (addresses masked) and what it holds.
    assert receiver.gateway is not None
    told = files(running.system.logs.parent / "gateway")
    told += [("gateway", json.dumps(receiver.gateway.messages, ensure_ascii=False).encode())]
    return leaks([*records, *hooks, *logs, *told])


async def the_database(servers: Servers, running: Running, case_ids: list[str]) -> list[str]:
    docs = await collections(running)
    for case_id in case_ids:
        assert any(case_id.encode() in raw for _, raw in docs)  # the scan reads them
    return leaks([*docs, *await database_files(servers, running)])


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def work_through(running: Running, intake: httpx.AsyncClient, case_id: str) -> str:
    """A citizen's case from its report to the callback: verified on site, filed,
    dispatched, handled, checked, closed and called back (回访). The department it went to."""
    supervisor = bearer(await running.token(Role.supervisor, "SUP-0001"))
    hotline = bearer(await running.token(Role.hotline, "op-18"))
    await case_in_state(intake, case_id, "reported")
    verified = await intake.post(
        f"/cases/{case_id}/verification", json={"confirmed": True}, headers=supervisor
    )
    assert verified.status_code == 202, verified.text
    case = await case_in_state(intake, case_id, "dispatched")
    [dispatched] = [e for e in case["timeline"] if e["type"] == "case.dispatched"]
    department = str(dispatched["data"]["department"])
    token = bearer(await running.token(Role.department, department))
    async with httpx.AsyncClient(base_url=running.system.url("dispatch")) as dispatch:
        handled = await dispatch.post(
            f"/departments/{department}/cases/{case_id}/handled",
            json={"handler_id": "crew-1", "note": "removed"},
            headers=token,
        )
    assert handled.status_code == 202, handled.text
    await case_in_state(intake, case_id, "handled")
    checked = await intake.post(
        f"/cases/{case_id}/check", json={"passed": True}, headers=supervisor
    )
    assert checked.status_code == 202, checked.text
    await case_in_state(intake, case_id, "closed")
    # 回访: the hotline calls the reporter back (its queue shows whom to call: a read of
    # the contact, audited), reaches nobody once, then records the answers: rated.
    owed = await intake.get("/callbacks", headers=hotline)
    assert owed.status_code == 200 and case_id in owed.text, owed.text
    tried = await intake.post(f"/cases/{case_id}/callback/unreached", json={}, headers=hotline)
    assert tried.status_code == 202, tried.text
    answers = {"contacted": True, "solved": True, "satisfaction": "satisfied"}
    called = await intake.post(f"/cases/{case_id}/callback", json=answers, headers=hotline)
    assert called.status_code == 202, called.text
    await case_in_state(intake, case_id, "evaluated")
    return department


async def reporter_seen_by(running: Running, role: Role, case_id: str) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=running.system.url("intake")) as client:
        read = await client.get(
            f"/cases/{case_id}", headers=bearer(await running.token(role, f"{role.value}-18"))
        )
    assert read.status_code == 200, read.text
    reporter: dict[str, Any] = read.json()["reporter"]
    return reporter


def gridloop(running: Running, *args: str) -> subprocess.CompletedProcess[str]:
    """The `gridloop` command on this system (found by its environment)."""
    done = subprocess.run(
        [sys.executable, "-m", "system", *args],
        env=running.system.env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done


async def test_contacts_stay_out_of_the_log_and_erasure_leaves_them_nowhere(
    servers: Servers, running: Running, receiving: Receiver
) -> None:
    centre = bearer(await running.token(Role.supervision_centre, "centre-18"))
    hotline = bearer(await running.token(Role.hotline, "op-18"))
    async with httpx.AsyncClient(base_url=running.system.url("intake"), headers=centre) as intake:
        called = await intake.post("/reports", json=CALL, headers=hotline)
        assert called.status_code == 202, called.text
        api_key = await running.token(Role.public, "open311-app-18")
        form = REQUEST | {"api_key": api_key, "jurisdiction_id": running.pack.city.district.code}
        posted = await intake.post("/open311/v2/requests.json", data=form)
        assert posted.status_code == 200, posted.text
        call_id = called.json()["case_id"]
        request_id = posted.json()[0]["service_request_id"]
        departments = [await work_through(running, intake, c) for c in (call_id, request_id)]
        for case_id in (call_id, request_id):
            await delivery_for(receiving, case_id)

        # Kept all along, sealed: the hotline reads both contacts.
        seen = await reporter_seen_by(running, Role.hotline, call_id)
        assert (seen["name"], seen["phone"], seen["wechat"]) == (
            HOTLINE_NAME,
            HOTLINE_PHONE,
            WECHAT,
        )
        seen = await reporter_seen_by(running, Role.supervision_centre, request_id)
        assert (seen["name"], seen["phone"]) == (f"{OPEN311_FIRST} {OPEN311_LAST}", OPEN311_PHONE)
        # A department reads neither.
        for department, case_id in zip(departments, (call_id, request_id), strict=True):
            async with httpx.AsyncClient(base_url=running.system.url("intake")) as client:
                token = bearer(await running.token(Role.department, department))
                read = await client.get(f"/cases/{case_id}", headers=token)
            assert read.status_code == 200 and not leaks([("department read", read.content)])

        # Both reporters were told (by SMS: the stand-in gateway took their phones), each
        # message once.
        told = await eventually(lambda: _told(receiving, call_id, request_id), what="messages")

        # Never in the log, a log line or a webhook; not in the database in plaintext either.
        assert await everything_but_the_database(running, receiving) == []
        assert await the_database(servers, running, [call_id, request_id]) == []

        # Erasure: the resident asks the hotline (the API), and an operator's command.
        erased = await intake.post(
            f"/cases/{call_id}/contact/erasure", json={"requested_by": "resident"}, headers=hotline
        )
        assert erased.status_code == 200, erased.text
        assert erased.json() == {
            "case_id": call_id,
            "erased": True,
            "fields": ["name", "phone", "wechat"],
        }
        by_command = gridloop(running, "contacts", "erase", request_id, "--json")
        assert json.loads(by_command.stdout)["fields"] == ["name", "phone"]
        again = await intake.post(f"/cases/{call_id}/contact/erasure", json={}, headers=hotline)
        assert again.json()["erased"] is False
        for case_id in (call_id, request_id):
            reporter = await reporter_seen_by(running, Role.hotline, case_id)
            assert reporter.get("erased") is True and "name" not in reporter
        audit = await intake.get(f"/audit?case={call_id}")
        # Both requests are on the trail, the second erasing nothing; never a value.
        records = [r for r in audit.json() if r["kind"] == "erasure"]
        assert [(r["actor"]["role"], r["requested_by"], r["fields"]) for r in records] == [
            ("hotline", "resident", ["name", "phone", "wechat"]),
            ("hotline", "resident", []),
        ]

        assert await everything_but_the_database(running, receiving) == []
        assert await the_database(servers, running, [call_id, request_id]) == []

        # A rebuild of the projection from the topics brings nothing back.
        running.system.processes.pop("projections").stop()
        try:
            rebuilt = gridloop(running, "projections", "rebuild", "--json")
        finally:
            running.system.start_service("projections")
        assert json.loads(rebuilt.stdout)["applied"] > 0
        assert not leaks([("rebuild output", (rebuilt.stdout + rebuilt.stderr).encode())])
        for case_id in (call_id, request_id):
            await case_in_state(intake, case_id, "evaluated")
            reporter = await reporter_seen_by(running, Role.hotline, case_id)
            assert reporter.get("erased") is True and "name" not in reporter
        assert await the_database(servers, running, [call_id, request_id]) == []
        assert await everything_but_the_database(running, receiving) == []
        # Nothing was told after the erasure.
        assert await _told(receiving, call_id, request_id) == told


async def _told(receiver: Receiver, *case_ids: str) -> list[dict[str, Any]] | None:
    """The messages to the reporters of `case_ids`, once all four of each are there."""
    assert receiver.gateway is not None
    found = [m for m in receiver.gateway.messages if m["case_id"] in case_ids]
    return found if len(found) >= 4 * len(case_ids) else None
