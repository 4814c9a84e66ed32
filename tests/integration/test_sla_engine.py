"""The SLA engine as `gridloop run sla` runs it (a faust worker in its own process) on the
real broker: lifecycle events in, warnings, breaches, escalations and overdue explanations
out on `sla`, each once, also across a restart in the middle of the ladder.

The test's pack makes illegal parking (event 0505) a natural-time class with a ladder of a
few seconds, so the whole ladder passes during the test; nothing here measures speed.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaProducer, ConsumerRecord

from gridloop.config import DEMO_CITY_PACK
from gridloop.embedded import free_port
from gridloop.kafka import EventProducer, ensure_topics
from gridloop.topology import named
from schemas.envelope import Envelope, encode
from schemas.events import CaseDispatched, CaseExplained, CaseFiled, CaseParked, CaseReported
from system.up import System
from tests.conftest import Servers, fresh_namespace
from tests.helpers import read_topic
from tests.samples import ACTOR

GRID = "110101001002001"  # community 001002, street 001
FAST_RULE = {
    "match": {"kind": "event", "code": "0505"},
    "clock": "natural",
    "limits": {"handle": "PT2S", "explain": "PT4S", "file": "PT1H", "dispatch": "PT1H"},
    "ladder": [
        {"tier": "community", "after": "PT0S"},
        {"tier": "street", "after": "PT2S"},
        {"tier": "district", "after": "PT5S"},
        {"tier": "city", "after": "PT8S"},
    ],
}


def write_pack(target: Path) -> Path:
    shutil.copytree(DEMO_CITY_PACK, target)
    sla: dict[str, Any] = yaml.safe_load((target / "sla.yaml").read_text(encoding="utf-8"))
    sla["rules"].append(FAST_RULE)
    (target / "sla.yaml").write_text(yaml.safe_dump(sla, allow_unicode=True), "utf-8")
    return target


@pytest.fixture
def sla_service(servers: Servers, tmp_path: Path) -> Iterator[System]:
    env = {
        **os.environ,
        "GRIDLOOP_NAMESPACE": fresh_namespace(),
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
        "MONGODB_URI": servers.mongodb,
        "GRIDLOOP_CITY_PACK": str(write_pack(tmp_path / "citypack")),
        "GRIDLOOP_DATA_DIR": str(tmp_path / "data"),
        "GRIDLOOP_SLA_TICK_SECONDS": "0.2",
        "GRIDLOOP_KAFKA_SESSION_TIMEOUT_MS": "6000",
        "GRIDLOOP_SLA_PORT": str(free_port()),
    }
    system = System(env, tmp_path / "logs", ("sla",))
    try:
        system.start()
        yield system
    finally:
        system.stop()


def lifecycle(case_id: str, now: datetime, handle_in: timedelta) -> list[Envelope]:
    common: dict[str, Any] = {"case_id": case_id, "actor": ACTOR}
    return [
        Envelope(
            CaseReported(
                **common,
                version=1,
                channel="supervisor",
                class_code="0505",
                kind="event",
                point={"lon": 116.4, "lat": 39.92},
                grid_code=GRID,
                description="机动车乱停放 car on the pavement",
            ),
            "/tests",
            now,
        ),
        Envelope(
            CaseFiled(**common, version=2, kind="event", class_code="0505", grid_code=GRID),
            "/tests",
            now,
        ),
        Envelope(
            CaseDispatched(
                **common,
                version=3,
                department="TRAFFIC-POLICE",
                deadline=now + handle_in,
                rule="class default",
            ),
            "/tests",
            now,
        ),
    ]


def of_case(records: list[ConsumerRecord[bytes, bytes]], case_id: str) -> list[dict[str, Any]]:
    found = []
    for r in records:
        if r.key == case_id.encode():
            headers = dict(r.headers)
            data = json.loads(r.value or b"")
            found.append({"type": headers["ce_type"].decode(), "id": headers["ce_id"], **data})
    return found


def kinds(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["type"].rsplit(".", 1)[-1], e["stage"], e.get("tier", "")) for e in events]


async def test_the_ladder_is_climbed_once_across_a_restart(
    servers: Servers, sla_service: System
) -> None:
    namespace = sla_service.env["GRIDLOOP_NAMESPACE"]
    await ensure_topics(servers.kafka, namespace=namespace)
    overdue, parked, explained = (f"C-SLA-{uuid.uuid4().hex[:8]}" for _ in range(3))
    now = datetime.now(UTC)
    producer = EventProducer(servers.kafka, namespace=namespace)
    await producer.start()
    try:
        await producer.publish(lifecycle(overdue, now, timedelta(seconds=2)))
        await producer.publish(lifecycle(explained, now, timedelta(seconds=2)))
        # Parked before its deadline: its clock pauses and it never breaches.
        await producer.publish(lifecycle(parked, now, timedelta(seconds=2)))
        await producer.publish(
            [Envelope(CaseParked(case_id=parked, actor=ACTOR, version=4), "/tests", now)]
        )
        # The department explains this one (as of the dispatched version) right away.
        await producer.publish(
            [
                Envelope(
                    CaseExplained(
                        case_id=explained,
                        case_version=3,
                        actor=ACTOR,
                        department="TRAFFIC-POLICE",
                        explanation="the tow truck broke down",
                    ),
                    "/tests",
                    now,
                )
            ]
        )

        def reached(*wanted: tuple[str, str, str]) -> Any:
            def probe(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
                return set(wanted) <= set(kinds(of_case(records, overdue)))

            return probe

        street = ("escalation", "handle", "street")
        sla = named(namespace, "sla")
        await read_topic(servers.kafka, sla, reached(street), within=60)
        sla_service.stop()  # a restart in the middle of the ladder
        sla_service.start_service("sla")
        # The rest falls due while the engine is down: sent together after its recovery,
        # in no fixed order across the case's clocks.
        city, overdue_itself = ("escalation", "handle", "city"), ("breach", "explain", "")
        records = await read_topic(servers.kafka, sla, reached(city, overdue_itself), within=90)
    finally:
        await producer.stop()

    events = of_case(records, overdue)
    order = kinds(events)
    # Yellow may be skipped when red is due at once; red always comes before the ladder.
    assert order[0] in {("warning", "handle", ""), ("breach", "handle", "")}
    assert order.index(("breach", "handle", "")) < order.index(
        ("escalation", "handle", "community")
    )
    assert set(kinds(events)) >= {
        ("breach", "handle", ""),
        ("escalation", "handle", "community"),
        ("escalation", "handle", "street"),
        ("escalation", "handle", "district"),
        ("escalation", "handle", "city"),
        ("breach", "explain", ""),  # nobody explained: overdue itself
    }
    # At least once: a fact whose acknowledgement raced the stop may be sent again, but
    # always with its one id, which every consumer drops. Two ids for one fact would be a
    # visible duplicate.
    ids_of_kind: dict[tuple[str, str, str], set[bytes]] = {}
    for event, kind in zip(events, kinds(events), strict=True):
        ids_of_kind.setdefault(kind, set()).add(event["id"])
    assert {k: v for k, v in ids_of_kind.items() if len(v) > 1} == {}, "one fact, two ids"
    escalations = {e["tier"]: e["notify_department"] for e in events if "tier" in e}
    assert escalations == {
        "community": "COMMUNITY-001002",
        "street": "STREET-001",
        "district": "DISTRICT-110101",
        "city": "CITY-110000",
    }
    assert all(e["department"] == "TRAFFIC-POLICE" for e in events)
    assert not any(k[0] == "breach" for k in kinds(of_case(records, parked)))
    assert ("breach", "explain", "") not in kinds(of_case(records, explained))
    assert ("breach", "handle", "") in kinds(of_case(records, explained))


async def test_a_record_it_cannot_read_is_dead_lettered_like_every_consumers_and_the_next_flows(
    servers: Servers, sla_service: System
) -> None:
    namespace = sla_service.env["GRIDLOOP_NAMESPACE"]
    await ensure_topics(servers.kafka, namespace=namespace)
    dispatches, dlq = named(namespace, "dispatches"), named(namespace, "dispatches.dlq")
    case_id = f"C-SLA-{uuid.uuid4().hex[:8]}"
    now = datetime.now(UTC)
    dispatched = lifecycle(case_id, now, timedelta(seconds=1))
    headers = encode(dispatched[-1])[2]  # a valid envelope around data against the schema
    poison = {  # both on the case's partition, before its lifecycle: they must not hold it up
        b"noheaders": (b"{oops", [("ce_type", b"x")]),
        b"badschema": (json.dumps({"case_id": 5}).encode(), headers),
    }
    raw = AIOKafkaProducer(bootstrap_servers=servers.kafka, enable_idempotence=False)
    producer = EventProducer(servers.kafka, namespace=namespace)
    await raw.start()
    await producer.start()
    try:
        where = {}
        for kind, (body, hdrs) in poison.items():
            sent = await raw.send_and_wait(dispatches, body, key=case_id.encode(), headers=hdrs)
            where[kind] = (sent.partition, sent.offset)
        await producer.publish(dispatched)
    finally:
        await producer.stop()
        await raw.stop()

    def both(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        return len([r for r in records if r.key == case_id.encode()]) >= len(poison)

    dead = [
        dict(r.headers)
        for r in await read_topic(servers.kafka, dlq, both, within=60)
        if r.key == case_id.encode()
    ]
    assert [h["dlq_error"].split(b":")[0] for h in dead] == [b"EnvelopeError"] * 2
    assert b"missing header ce_specversion" in dead[0]["dlq_error"]
    assert b"invalid gridloop.case.dispatched data" in dead[1]["dlq_error"]
    for kind, h in zip(poison, dead, strict=True):
        partition, offset = where[kind]
        assert (h["dlq_topic"], h["dlq_group"]) == (dispatches.encode(), b"sla")
        assert (h["dlq_partition"], h["dlq_offset"]) == (b"%d" % partition, b"%d" % offset)
    # The case behind the poison was read: its handling deadline passes and is breached.
    breached = ("breach", "handle", "")
    sla = named(namespace, "sla")
    await read_topic(
        servers.kafka, sla, lambda rs: breached in kinds(of_case(rs, case_id)), within=60
    )
    port = sla_service.port("sla")
    async with httpx.AsyncClient() as http:
        scraped = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    group = named(namespace, "gridloop-sla")
    counted = f'gridloop_records_dead_lettered_total{{group="{group}",topic="{dispatches}"}}'
    assert f"{counted} 2.0" in scraped


async def test_a_stop_in_the_middle_of_a_burst_sends_no_fact_twice(
    servers: Servers, sla_service: System
) -> None:
    """A stop (SIGTERM, as an upgrade or a rebalance does it) while the timer is sending:
    the tick in flight finishes and its marks reach the changelog before the worker goes,
    so after the restart every fact is on `sla` exactly once, not merely with one id.
    (A kill -9 may still repeat one, with its id: the previous test's at-least-once.)"""
    namespace = sla_service.env["GRIDLOOP_NAMESPACE"]
    await ensure_topics(servers.kafka, namespace=namespace)
    prefix = f"C-BURST-{uuid.uuid4().hex[:6]}"
    cases = [f"{prefix}-{n}" for n in range(1500)]
    now = datetime.now(UTC)
    producer = EventProducer(servers.kafka, namespace=namespace)
    await producer.start()
    try:  # every deadline passes in the same tick: one long burst of sends
        await producer.publish(
            [e for case in cases for e in lifecycle(case, now, timedelta(seconds=3))]
        )
    finally:
        await producer.stop()
    sla = named(namespace, "sla")

    def burst_begun(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        return any(dict(r.headers)["ce_type"].endswith(b".breach") for r in records)

    await read_topic(servers.kafka, sla, burst_begun, within=60)
    sla_service.stop()
    sla_service.start_service("sla")
    last = ("escalation", "handle", "city")

    def all_climbed(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        at_city = {
            r.key
            for r in records
            if dict(r.headers)["ce_type"].endswith(b".escalation")
            and json.loads(r.value or b"").get("tier") == "city"
        }
        return len(at_city) == len(cases)

    records = await read_topic(servers.kafka, sla, all_climbed, within=120)
    ids = [dict(r.headers)["ce_id"] for r in records]
    repeated = len(ids) - len(set(ids))
    assert repeated == 0, f"{repeated} of {len(ids)} SLA events sent twice"
    for case in cases[:: len(cases) // 10]:
        assert last in kinds(of_case(records, case))
