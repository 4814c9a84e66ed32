"""Faults (issue 8): kills, an unreachable broker and database, a department down for long,
poison records, a replay of the projection. The tests share one running system and run in
file order; the last one checks every invariant over all of them and writes
docs/reliability.md."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import platform
import subprocess
import sys
import time
import uuid
from collections import defaultdict
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from gridloop.auth import Role
from gridloop.kafka import EventProducer
from gridloop.topology import WIRING
from schemas.envelope import Envelope, encode
from schemas.topics import LIFECYCLE_TOPICS, topic_for
from tests.faults.audit import Figures, Record, audit, committed, header, read_all, settled
from tests.faults.conftest import FAST_CLASS, SERVICES, World
from tests.faults.harness import SUMMARY, Receipt, case_id_for, report_body
from tests.helpers import eventually
from tests.samples import all_samples

RATE = 20.0  # reports a second, steady: the machine is small and shared
REPORT = Path(__file__).resolve().parents[2] / "docs" / "reliability.md"


def assert_sound(figures: Figures) -> None:
    assert not figures.problems(), json.dumps(figures.problems(), indent=1)
    assert not figures.unknown_cases
    assert figures.cases == figures.projected
    # Every acknowledged report is a case; a report a client gave up on may be one too.
    assert figures.acknowledged <= figures.cases <= figures.acknowledged + figures.abandoned


# Each fault waits for the system to settle after it (up to minutes): `make faults` is long.
pytestmark = pytest.mark.timeout(1800)


async def test_kill_9_each_service_under_load(world: World, receiving: object) -> None:
    client = await world.client()
    stop = asyncio.Event()
    load = asyncio.create_task(client.steady(RATE, 600, stop))
    timings: list[str] = []
    try:
        for name in ("intake", "dispatch", "notify", "sla", "projections"):
            await asyncio.sleep(4)
            world.kill(name)
            await asyncio.sleep(1)
            started = time.monotonic()
            await world.restart(name)
            timings.append(f"{name} {time.monotonic() - started:.1f} s")
        await asyncio.sleep(4)
    finally:
        stop.set()
        sent = await load
    await client.drain()
    await client.http.aclose()
    started = time.monotonic()
    await settled(world)
    world.ledger.notes["kill -9"] = (
        f"{sent} reports at {RATE:.0f}/s while each service in turn was killed (SIGKILL to "
        f"its process group) and started again 1 s later (listening again after: "
        f"{', '.join(timings)}); {world.ledger.answers['no answer']} requests got no answer "
        "and were retried with their key; every acknowledged case dispatched and its "
        f"department told {time.monotonic() - started:.0f} s after the load stopped"
    )
    assert world.ledger.answers["no answer"] > 0, "the kill of intake cut no request short"
    assert not world.system.failed()
    assert not world.ledger.refused
    assert_sound(await audit(world))


async def test_a_crash_between_the_claim_and_the_publish(world: World, receiving: object) -> None:
    """Intake and dispatch each killed (SIGKILL, by their own hand: `GRIDLOOP_CRASH_AT`,
    gridloop/failpoints.py) right after a command claimed its case's next version and before
    its events were published: the claim's outbox is published by the next command on the
    case (the client's retry, dispatch's redelivered filing) or by the relay."""
    client = await world.client()
    stop = asyncio.Event()
    load = asyncio.create_task(client.steady(RATE, 600, stop))
    crashed: list[str] = []
    try:
        for name, nth in (("intake", 25), ("dispatch", 10)):
            await asyncio.sleep(2)
            world.kill(name)
            await world.restart(name, {"GRIDLOOP_CRASH_AT": f"claimed:{nth}"})
            await eventually(partial(_exited, world, name), 120, f"{name} dying after claim {nth}")
            crashed.append(name)
            world.system.processes[name].stop()  # closes its log
            await world.restart(name)
        await asyncio.sleep(4)
    finally:
        stop.set()
        sent = await load
    await client.drain()
    await client.http.aclose()
    await settled(world)
    world.ledger.notes["kill between claim and publish"] = (
        f"{sent} reports at {RATE:.0f}/s; {' and '.join(crashed)} each died by SIGKILL right "
        "after a claim, before its publish, and were started again; the claims' events "
        "reached the log (the client's retry, the redelivered filing or the relay)"
    )
    assert crashed == ["intake", "dispatch"]
    assert not world.system.failed()
    assert_sound(await audit(world))


async def test_two_workers_of_every_service_one_of_each_killed_under_load(
    world: World, receiving: object
) -> None:
    """Scaled out (issue 20): a second worker of every service, each consumer in its
    service's group (the SLA engine's table split between them by partition) and intake
    behind two ports, load on both; then one worker of each killed (SIGKILL) and started
    again, in turn, the partitions moving to the survivor and back."""
    added = [await world.add_worker(name) for name in SERVICES]
    clients = [await world.client(), await world.client("intake#2")]
    stop = asyncio.Event()
    loads = [asyncio.create_task(c.steady(RATE / 2, 600, stop)) for c in clients]
    # Road collapses, whose ladders (seconds) climb while the SLA workers are killed.
    collapses = [uuid.uuid4().hex for _ in range(40)]
    for n, key in enumerate(collapses):
        body = report_body(clients[0].rng) | {"class_code": FAST_CLASS}
        clients[n % 2].tasks.add(asyncio.create_task(clients[n % 2].submit(body, key)))
    killed = [*added[:2], *SERVICES[2:4], added[4]]  # the new and the first, both ways
    try:
        await asyncio.sleep(8)  # both members of every group have partitions
        for name in killed:
            world.kill(name)
            await asyncio.sleep(2)
            await world.restart(name)
            await asyncio.sleep(3)
    finally:
        stop.set()
        sent = sum(await asyncio.gather(*loads))
    for client in clients:
        await client.drain()
        await client.http.aclose()
    await settled(world)
    workers = [*SERVICES, *added]
    consumed = {w: await _consumed(world, w) for w in workers if not w.startswith("intake")}
    await eventually(partial(_no_lag, world, workers), 120, "every group's lag back to 0")
    assert not world.ledger.refused
    climbed = [case_id_for(key) for key in collapses]
    sla = await _ladders(world, climbed)
    repeated = len(sla) - len({header(r, "ce_id") for r in sla})
    try:
        world.ledger.notes["two workers each"] = (
            f"{sent} reports at {RATE:.0f}/s through two intake workers, with a second worker "
            f"in each consumer group; {', '.join(killed)} each killed (SIGKILL) and started "
            f"again in turn; records each worker consumed: "
            f"{', '.join(f'{w} {n:.0f}' for w, n in consumed.items())}; {len(climbed)} road "
            f"collapses climbed their ladder to the city meanwhile: {len(sla)} SLA events, "
            f"{repeated} sent again with their id (a worker killed between a send and its "
            "mark; consumers drop them)"
        )
        assert all(n > 0 for n in consumed.values()), consumed  # each member had partitions
        assert not world.system.failed()
        assert_sound(await audit(world))
    finally:
        for worker in added:
            await world.remove_worker(worker)


async def _ladders(world: World, cases: list[str]) -> list[Record]:
    """The SLA events of `cases` once each has reached the top of its ladder; every fact
    (case, event type, stage, tier) with one id however often it was sent."""
    wanted = set(cases)
    found: list[Record] = []

    async def climbed() -> bool:
        found[:] = [r for r in await read_all(world, "sla") if r.key and r.key.decode() in wanted]
        at_city = {r.key for r in found if b'"tier":"city"' in (r.value or b"")}
        return len(at_city) == len(wanted)

    try:
        await eventually(climbed, 120, "every road collapse escalated to the city")
    except AssertionError as exc:
        seen: dict[str, list[str]] = defaultdict(list)
        for r in found:
            fact = json.loads(r.value or b"{}")
            seen[(r.key or b"").decode()].append(f"{header(r, 'ce_type')}:{fact.get('tier')}")
        raise AssertionError(
            f"{exc}: {len(seen)} of {len(wanted)} with events, e.g. {dict(list(seen.items())[:3])}"
        ) from exc
    ids: dict[tuple[str, ...], set[str]] = defaultdict(set)
    for r in found:
        fact = json.loads(r.value or b"{}")
        kind = (r.key.decode(), header(r, "ce_type"), fact["stage"], fact.get("tier", ""))
        ids[kind].add(header(r, "ce_id"))
    assert not [k for k, v in ids.items() if len(v) > 1], "one fact, two ids"
    return found


async def _consumed(world: World, worker: str) -> float:
    """Records the worker consumed since it (re)started (`gridloop_records_consumed`)."""
    families = await _metrics(world, worker)
    return sum(
        s.value for s in families.get("gridloop_records_consumed", []) if s.name.endswith("_total")
    )


async def _no_lag(world: World, workers: list[str]) -> bool:
    await asyncio.sleep(1)
    lag = 0.0
    for worker in workers:
        lag += sum(
            s.value for s in (await _metrics(world, worker)).get("gridloop_consumer_lag", [])
        )
    return lag == 0


async def _metrics(world: World, worker: str) -> dict[str, list[Sample]]:
    async with httpx.AsyncClient(base_url=world.system.url(worker)) as http:
        text = (await http.get("/metrics", timeout=10)).text
    return {f.name: f.samples for f in text_string_to_metric_families(text)}


async def _exited(world: World, name: str) -> bool:
    await asyncio.sleep(0.2)
    return world.exited(name)


async def test_broker_unreachable(world: World, receiving: object) -> None:
    """Tansu keeps its log in memory, so stopping it would lose the topics: it is paused
    (SIGSTOP) instead — unreachable to every client, its log intact — then resumed."""
    client = await world.client(never_2xx=True)
    before = client.ledger.answers["503"]
    world.pause(world.tansu)
    try:
        for _ in range(5):
            client.start()
        await eventually(
            lambda: asyncio.sleep(0.5, client.ledger.answers["503"] >= before + 5),
            within=120,
            what="intake answering 503 while the broker is unreachable",
        )
        client.never_2xx = False  # from here on, an answer may come after the resume
    finally:
        world.resume(world.tansu)
    await client.drain()
    await client.http.aclose()
    await settled(world)
    assert client.acked_while_forbidden == []
    world.ledger.notes["broker unreachable"] = (
        f"Tansu paused (SIGSTOP) until intake had answered 503 with Retry-After "
        f"{client.ledger.answers['503'] - before} times; no 2xx while paused; resumed (SIGCONT)"
        ", the clients' retries acknowledged and every consumer caught up"
    )
    assert not world.system.failed()


async def test_database_unreachable(world: World, receiving: object) -> None:
    """SecantusDB paused (SIGSTOP): consumers stop committing; the records that came in the
    meantime (here, some reports' events sent again, as a producer's retry would) are
    handled after the resume, as duplicates, and nothing is lost."""
    tail = (await read_all(world, "reports"))[-20:]
    client = await world.client(timeout=3.0)
    producer = EventProducer(world.kafka, namespace=world.namespace)
    await producer.start()
    start = await committed(world, "projections", "reports")
    world.pause(world.secantus)
    try:
        for record in tail:
            await producer.send_raw(
                world.topic("reports"), record.key, record.value, list(record.headers)
            )
        for _ in range(5):
            client.start()
        await asyncio.sleep(3)
        first = await committed(world, "projections", "reports")
        await asyncio.sleep(5)
        second = await committed(world, "projections", "reports")
    finally:
        world.resume(world.secantus)
        await producer.stop()
    assert first == second, "the projections committed while the database was unreachable"
    await client.drain()
    await client.http.aclose()
    await settled(world)

    async def caught_up() -> bool:
        await asyncio.sleep(0.5)
        return await committed(world, "projections", "reports") >= second + len(tail)

    await eventually(caught_up, within=60, what="the projections committing again")
    world.ledger.notes["database unreachable"] = (
        f"SecantusDB paused (SIGSTOP) for 8 s while {len(tail)} reports' events were sent "
        f"again and 5 reports submitted: the projections group committed nothing (from "
        f"{first} records of `reports` committed to {second}; {start} before the pause); "
        "resumed (SIGCONT), everything projected, the repeats dropped as duplicates"
    )
    assert_sound(await audit(world))


async def test_department_down_for_long(world: World, receiving: object) -> None:
    """SANITATION answers 503 for 30 s (hours, compressed) while three messages per case
    queue up; once it is back everything arrives, in order per case."""
    down_for = 30.0
    client = await world.client()
    command = await world.staff("dispatch", Role.command_centre, "command-faults")
    world.receiver.down.add("SANITATION")
    started = time.monotonic()
    try:
        keys = []
        for i in range(8):
            body = report_body(client.rng) | {
                "class_code": "0102",  # exposed garbage: SANITATION, outside the park and moat
                "point": {"lon": 116.4005 + i * 0.0006, "lat": 39.9205},
            }
            key = uuid.uuid4().hex
            keys.append(key)
            await client.submit(body, key)
        case_ids = [world.ledger.acked[k] for k in keys]
        for version in (4, 5):  # re-dispatch twice to the same department: 改派
            for case_id in case_ids:
                await _projected(world, case_id, version - 1)
                answer = await command.post(
                    f"/cases/{case_id}/dispatch",
                    json={
                        "dispatcher": "command-faults",
                        "department": "SANITATION",
                        "reason": f"fault suite, dispatch {version}",
                    },
                    headers={"Idempotency-Key": f"{case_id}-{version}"},
                )
                assert answer.status_code == 202, answer.text
        await asyncio.sleep(max(0.0, started + down_for - time.monotonic()))
    finally:
        world.receiver.down.discard("SANITATION")
        await command.aclose()
        await client.http.aclose()
    back = time.monotonic()

    def arrived() -> list[Receipt] | None:
        got = [r for r in world.receiver.delivered() if r.case_id in case_ids]
        return got if len({r.webhook_id for r in got}) >= 3 * len(case_ids) else None

    got = await eventually(
        lambda: asyncio.sleep(0.2, arrived()), within=120, what="the queued webhooks"
    )
    for case_id in case_ids:
        versions = [r.version or 0 for r in got if r.case_id == case_id]
        assert versions == sorted(versions), f"{case_id}: delivered out of order {versions}"
        assert versions[:3] == [3, 4, 5], versions
    refused = [r for r in world.receiver.receipts if r.case_id in case_ids and r.status >= 300]
    world.ledger.notes["department down"] = (
        f"SANITATION answered 503 for {down_for:.0f} s: {len(refused)} attempts refused while "
        f"{3 * len(case_ids)} messages ({len(case_ids)} cases × dispatched, re-dispatched "
        f"twice) queued; all delivered {time.monotonic() - back:.1f} s after it came back, "
        "in order per case"
    )
    await settled(world)


async def _projected(world: World, case_id: str, version: int) -> None:
    async def probe() -> bool:
        await asyncio.sleep(0.2)
        async with world.db() as db:
            doc = await db["cases"].find_one({"_id": case_id}, {"version": 1})
        return doc is not None and doc.get("version", 0) >= version

    await eventually(probe, within=60, what=f"{case_id} at version {version}")


# Who of the suite's services reads each input topic, hence who dead-letters a poison record
# of it (the engine marks what it sent without reading `sla` back; evaluation is not run).
RUNNING = [w for w in WIRING.values() if w.service in SERVICES]
READERS = {
    t.name: {w.service for w in RUNNING if t in w.consumes}
    for t in LIFECYCLE_TOPICS
    if any(t in w.consumes for w in RUNNING)
}
SERVICE_OF_GROUP = {w.group: w.service for w in WIRING.values() if w.group is not None}


def dead_lettered_by(world: World, group: str) -> str:
    """The service that wrote a dead letter, from its `dlq_group`: a consumer group in the
    world's namespace (the SLA engine's says `sla`)."""
    plain = group.removeprefix(f"{world.namespace}.")
    return SERVICE_OF_GROUP.get(plain, plain)


def poison(topic: str) -> list[tuple[bytes, bytes, list[tuple[str, bytes]]]]:
    """Records of `topic` no consumer can handle: no CloudEvents headers; a valid envelope
    whose data breaks the schema; a body that is not JSON."""
    sample = next(e for t, e in all_samples().items() if topic_for(t) == topic)
    _, value, headers = encode(Envelope(sample, "/gridloop/tests/faults"))
    records = []
    for kind, body, hdrs in (
        ("noheaders", b"{oops", [("ce_type", b"x")]),
        ("badschema", json.dumps({"case_id": 5}).encode(), list(headers)),
        ("notjson", b"\xff\xfe not json", list(headers)),
    ):
        records.append((f"poison-{kind}-{uuid.uuid4().hex[:8]}".encode(), body, hdrs))
    assert value
    return records


async def test_poison_records_on_every_input_topic(world: World, receiving: object) -> None:
    producer = EventProducer(world.kafka, namespace=world.namespace)
    await producer.start()
    sent: dict[str, list[bytes]] = {}
    try:
        for topic in READERS:
            for key, value, hdrs in poison(topic):
                await producer.send_raw(world.topic(topic), key, value, hdrs)
                sent.setdefault(topic, []).append(key)
    finally:
        await producer.stop()
    # Processing continues: reports submitted after the poison flow through.
    client = await world.client()
    for _ in range(10):
        client.start()
    await client.drain()
    await client.http.aclose()
    await settled(world)
    missing: list[str] = []

    async def all_dead_lettered() -> bool:
        """Each poison record in its topic's DLQ from every group reading the topic: the
        reports flowing through say nothing of the poison's partitions (another partition,
        and the SLA engine joins its group later than the others)."""
        missing.clear()
        for topic, keys in sent.items():
            dead = await read_all(world, f"{topic}.dlq")
            for key in keys:
                mine = [r for r in dead if r.key == key]
                groups = {dead_lettered_by(world, header(r, "dlq_group")) for r in mine}
                if not READERS[topic] <= groups:
                    missing.append(f"{topic} {key.decode()}: dead-lettered by {sorted(groups)}")
                if not all(header(r, "dlq_error") for r in mine):
                    missing.append(f"{topic} {key.decode()}: a dead letter without dlq_error")
        return not missing

    with contextlib.suppress(AssertionError):  # timed out: `missing` says what is missing
        await eventually(all_dead_lettered, within=120, what="every poison record dead-lettered")
    assert not missing, missing
    assert not world.system.failed()
    world.ledger.notes["poison"] = (
        f"3 poison records (no headers, data against the schema, not JSON) on each of "
        f"{len(READERS)} input topics: each dead-lettered by every group reading the topic, "
        "with the reason in `dlq_error`; the reports sent after them flowed"
    )


async def test_replay_rebuilds_the_same_projection(world: World, receiving: object) -> None:
    await settled(world)
    await world.stop_service("projections")
    try:
        async with world.db() as db:
            before = {d["_id"]: d async for d in db["cases"].find({})}
        started = time.monotonic()
        done = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "system", "projections", "rebuild"],
            env=world.system.env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        seconds = time.monotonic() - started
        assert done.returncode == 0, done.stdout + done.stderr
        async with world.db() as db:
            after = {d["_id"]: d async for d in db["cases"].find({})}
    finally:
        await world.restart("projections")
    assert after.keys() == before.keys()
    differ = [c for c in before if before[c] != after[c]]  # whole documents: see REPORT_NOTES
    assert not differ, [(before[c], after[c]) for c in differ[:2]]
    world.ledger.notes["replay"] = (
        f"`cases` dropped and rebuilt from the topics (`gridloop projections rebuild`) in "
        f"{seconds:.0f} s: {len(after)} documents, identical to the originals. "
        f"({done.stdout.strip()})"
    )


async def test_every_invariant_and_the_report(world: World, receiving: object) -> None:
    figures = await audit(world)
    write_report(figures, world)
    print_table(figures)
    assert not world.ledger.refused, world.ledger.refused[:5]
    assert not world.ledger.failed, world.ledger.failed[:5]
    assert_sound(figures)
    assert not world.system.failed()
    assert set(SERVICES) == set(world.system.processes)


def print_table(figures: Figures) -> None:
    width = max(len(k) for k, _ in figures.rows())
    lines = ["", "fault suite summary", "-" * (width + 20)]
    lines += [f"{k:<{width}}  {v}" for k, v in figures.rows()]
    SUMMARY[:] = lines


def write_report(figures: Figures, world: World) -> None:
    now = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    machine = (
        f"{platform.node()}: {platform.system()} {platform.release()}, "
        f"{os.cpu_count()} CPU(s), Python {platform.python_version()}"
    )
    lines = [
        "# Reliability: the fault suite",
        "",
        "Figures written by `make faults` (`pytest tests/faults`), which regenerates this file.",
        f"Measured {now} on {machine}; embedded Tansu broker and SecantusDB, every service",
        "its own process, loopback only.",
        "",
        "| figure | value |",
        "|---|---|",
        *(f"| {k} | {v} |" for k, v in figures.rows()),
        "",
        "## Scenarios",
        "",
        *(f"- **{k}**: {v}." for k, v in world.ledger.notes.items()),
        "",
        "## How to read it",
        "",
        REPORT_NOTES.strip(),
        "",
    ]
    REPORT.write_text("\n".join(lines), encoding="utf-8")


REPORT_NOTES = f"""
- A *case* is a case id with a `gridloop.case.reported` event in the `reports` topic; a
  *duplicate case* would be one case id with two different `reported` events. Clients
  retry with the same `Idempotency-Key` after no answer, a timeout or a 5xx (honouring
  `Retry-After` up to 2 s), so a report counts once however often it was sent; a client
  gives up after 180 s (*abandoned*), and such a report may or may not be a case.
- *Records written twice* are the same event (same `ce_id`) in the log more than once — a
  client's retry after intake published but before it answered, a re-derived event after a
  kill, the repeats the database scenario sends: consumers drop them, and *transitions twice
  in a timeline* (the same transition at the same version, or one event id twice) must be 0.
- A *notification* is one message to one department (department, case, type, version; for
  an SLA fact also its stage and tier: a handling breach and an overdue explanation share a
  version). It must have exactly one `webhook-id`; *webhook retries* are further requests
  with an id already seen (after a 503, or after notify was killed mid-attempt).
- Time is compressed: session timeout 6 s, webhook retries after 0, 0.5, 1, 2, then every
  3 s (`{"GRIDLOOP_WEBHOOK_RETRY_SCHEDULE"}`), attempt timeout 2 s.
- *Dead letters* are the suite's own poison records (three per input topic, dead-lettered
  by each group reading it).
- **Two workers each** runs a second worker of every service (`<service>#2`, its own port;
  the consumers in their service's group, the SLA engine's table split by partition) and
  sends half the load to each intake; the road collapses (class 0401, whose ladder the
  suite's pack shortens to seconds) climb to the city while the workers are killed.
  Intake's two workers are reached on their own ports here, not behind the front door.
- **Broker unreachable** is a paused broker (SIGSTOP, then SIGCONT): the embedded Tansu keeps
  its log in memory, so stopping it would lose the topics. A paused broker is the harder
  case anyway: connections stay open and requests go unanswered, rather than refused.
  Intake waits at most 5 s for Kafka's acknowledgement (`gridloop/errors.py`), then answers
  503 with `Retry-After`; events it stopped waiting for may still reach the log, and the
  client's retry with the same `Idempotency-Key` yields the same case.
- **Database unreachable** is a paused SecantusDB (SIGSTOP, then SIGCONT); its data is on
  disk, but a pause keeps the consumers' connections hanging, the harder case.
- **Replay**: `gridloop projections rebuild` (with the projections service stopped) drops
  `cases` and replays every lifecycle topic from the start to each partition's high
  watermark; the service then resumes from its own committed offsets. The rebuilt
  documents are compared whole with the originals: no field is ignored, since every field
  of a case derives from its events alone (`updated_at` and the `*_at` fields are event
  times, not the time of projection).
"""
