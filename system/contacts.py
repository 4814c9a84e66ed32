"""`gridloop contacts`: reporters' contacts (docs/personal-data.md).

- `new-key`: a fresh master key (base64) for GRIDLOOP_CONTACT_KEYS(_FILE);
- `rotate`: re-wrap every data key under the current master key (after it was put first,
  the old one second; then the old one can go);
- `erase CASE`: shred a case's reporter contact (an erasure request), audited;
- `expire`: erase the contacts of cases that ended (closed, or voided) longer ago than the
  pack's `intake.contact_retention` — what intake's hourly sweep does, at once;
- `migrate`: move the names and phones of events written before contacts left the log out of
  the database's read models into the contact store, and say what the topics still hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar

import typer

from gridloop.config import Settings
from gridloop.contacts.configured import contact_keys
from system.admin import AsJson, DataDir, console, emit, fail, on_system

T = TypeVar("T")
contacts_app = typer.Typer(help="Reporters' contacts: keys, erasure, retention, migration.")
RequestedBy = Annotated[
    str, typer.Option(help="who asked: resident (through the hotline) or staff")
]


def _run(data_dir: Any, work: Callable[[Settings, Any], Awaitable[T]]) -> T:
    """`work(settings, db)` on the system's database, with its contact store's keys."""
    from gridloop.contacts import ContactKeyError
    from gridloop.mongo import connect, database

    async def run(settings: Settings) -> T:
        client = connect(settings)
        try:
            return await work(settings, database(client, settings))
        finally:
            await client.close()

    with on_system(data_dir) as settings:
        try:
            return asyncio.run(run(settings))
        except ContactKeyError as exc:
            raise fail(f"contact keys: {exc}") from None


def _store(settings: Settings, db: Any) -> Any:
    from gridloop.contacts.store import ContactStore

    return ContactStore(db, contact_keys(settings))


@contacts_app.command("new-key")
def new_key() -> None:
    """Print a fresh master key (base64, 32 bytes): put it first in GRIDLOOP_CONTACT_KEYS."""
    from gridloop.contacts.keys import new_master_key

    print(new_master_key())


@contacts_app.command("rotate")
def rotate(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Re-wrap every contact's data key under the current (first) master key."""

    async def work(settings: Settings, db: Any) -> dict[str, Any]:
        store = _store(settings, db)
        moved = await store.rotate()
        return {
            "rewrapped": moved,
            "current": store.keys.current_id,
            "by_master": await store.masters(),
        }

    done = _run(data_dir, work)
    if as_json:
        emit(done)
        return
    console.print(f"re-wrapped {done['rewrapped']} data key(s) under {done['current']}")


@contacts_app.command("erase")
def erase(
    case_id: str,
    requested_by: RequestedBy = "resident",
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """Erase the reporter's contact of CASE_ID (an erasure request), audited."""
    if requested_by not in ("resident", "staff"):
        raise fail("--requested-by: resident or staff")

    async def work(settings: Settings, db: Any) -> list[str] | None:
        from gridloop.audit import AuditTrail
        from services.intake.retention import erase_audited

        store, trail = _store(settings, db), AuditTrail(db)
        return await erase_audited(store, trail, case_id, None, requested_by, "cli")

    fields = _run(data_dir, work)
    if as_json:
        emit({"case_id": case_id, "erased": fields is not None, "fields": fields or []})
        return
    said = f"erased ({', '.join(fields)})" if fields else "nothing kept: erased before, or none"
    console.print(f"{case_id}: {said}")


@contacts_app.command("expire")
def expire(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Erase the contacts of cases ended longer ago than the pack's contact_retention (what
    intake does every hour), now."""
    from gridloop.citypack import load_city_pack

    async def work(settings: Settings, db: Any) -> dict[str, Any]:
        from gridloop.audit import AuditTrail
        from gridloop.cases.reader import CaseReader
        from services.intake.retention import expire

        retention = load_city_pack(settings.city_pack).city.intake.contact_retention
        now = datetime.now(UTC)
        store, trail = _store(settings, db), AuditTrail(db)
        erased = await expire(CaseReader(db), store, trail, retention, now, "cli")
        return {"retention": retention, "closed_before": now - retention, "erased": erased}

    done = _run(data_dir, work)
    if as_json:
        emit(done)
        return
    console.print(
        f"erased the contacts of {len(done['erased'])} case(s) closed before "
        f"{done['closed_before']:%Y-%m-%d %H:%M} (retention {done['retention']})"
    )


# --- migration of events written before contacts left the log --------------------------


def _legacy(reporter: Any) -> bool:
    return isinstance(reporter, dict) and bool(reporter.get("name") or reporter.get("phone"))


def _scrubbed(reporter: dict[str, Any], ref: str) -> dict[str, Any]:
    return {"id": reporter.get("id"), "contact": ref}


async def _migrate_cases(store: Any, db: Any) -> int:
    """The projection's cases: each legacy contact sealed in the store, then unset."""
    from gridloop.contacts import Contact, contact_id

    legacy = {
        "$or": [
            {"reporter.name": {"$nin": [None, ""]}},
            {"reporter.phone": {"$nin": [None, ""]}},
            {"timeline.data.reporter.name": {"$nin": [None, ""]}},
            {"timeline.data.reporter.phone": {"$nin": [None, ""]}},
        ]
    }
    moved = 0
    async for doc in db["cases"].find(legacy):
        case_id, ref = doc["_id"], contact_id(doc["_id"])
        found = [doc.get("reporter")] + [
            (e.get("data") or {}).get("reporter") for e in doc.get("timeline", [])
        ]
        old = next((r for r in found if _legacy(r)), None)
        if old is None:
            continue
        await store.put(ref, case_id, Contact(name=old.get("name"), phone=old.get("phone")))
        timeline = [
            e | {"data": e["data"] | {"reporter": _scrubbed(e["data"]["reporter"], ref)}}
            if _legacy((e.get("data") or {}).get("reporter"))
            else e
            for e in doc.get("timeline", [])
        ]
        change = {"timeline": timeline, "reporter": _scrubbed(doc.get("reporter") or {}, ref)}
        await db["cases"].update_one({"_id": case_id}, {"$set": change})
        moved += 1
    return moved


async def _migrate_heads(store: Any, db: Any) -> int:
    """Heads whose outbox still holds a legacy report: the record re-encoded without the
    contact (the same event id, so a consumer given both keeps one)."""
    from gridloop.contacts import Contact, contact_id
    from schemas.envelope import decode, encode
    from schemas.events import CaseReported, Reporter

    moved = 0
    async for doc in db["case_heads"].find({"outbox.0": {"$exists": True}}):
        outbox, changed = [], False
        for record in doc["outbox"]:
            env = decode(record["value"], [(n, raw) for n, raw in record["headers"]])
            data = env.data
            if isinstance(data, CaseReported) and (data.reporter.name or data.reporter.phone):
                ref = contact_id(data.case_id)
                old = data.reporter
                await store.put(ref, data.case_id, Contact(name=old.name, phone=old.phone))
                reporter = Reporter(id=old.id, contact=ref)
                env = replace(env, data=data.model_copy(update={"reporter": reporter}))
                _, value, headers = encode(env)
                record = {"value": value, "headers": [[n, raw] for n, raw in headers]}
                changed = True
            outbox.append(record)
        if changed:
            await db["case_heads"].update_one(
                {"_id": doc["_id"], "rev": doc["rev"]}, {"$set": {"outbox": outbox}}
            )
            moved += 1
    return moved


async def _legacy_in_topics(settings: Settings) -> dict[str, int]:
    """How many records of the `reports` topic still carry a name or phone, per partition:
    Kafka's log is immutable, so they stay there until the topic is rewritten or expires."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from gridloop.topology import named

    topic = named(settings.namespace, "reports")
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        if not partitions:
            return {}
        consumer.assign(partitions)
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(partitions)
        found = {f"{topic}/{tp.partition}": 0 for tp in partitions}
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                for r in records:
                    if r.value and (b'"name":"' in r.value or b'"phone":"' in r.value):
                        found[f"{topic}/{tp.partition}"] += 1
        return found
    finally:
        await consumer.stop()


@contacts_app.command("migrate")
def migrate(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Move contacts out of what events written before left in the database (the cases'
    projection, the heads' outboxes) into the contact store, and count the records of the
    `reports` topic that still carry them (docs/personal-data.md: what this cannot remove)."""

    async def work(settings: Settings, db: Any) -> dict[str, Any]:
        store = _store(settings, db)
        await store.create_indexes()
        return {
            "cases": await _migrate_cases(store, db),
            "heads": await _migrate_heads(store, db),
            "records_still_in_topics": await _legacy_in_topics(settings),
        }

    done = _run(data_dir, work)
    if as_json:
        emit(done)
        return
    left = sum(done["records_still_in_topics"].values())
    console.print(
        f"moved the contacts of {done['cases']} case(s) and {done['heads']} outbox(es) into the "
        f"contact store; {left} record(s) in the reports topic still carry a name or phone "
        "(see docs/personal-data.md)"
    )
