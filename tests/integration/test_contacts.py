"""The contact store on the real database, and `gridloop contacts` on a system of its own:
sealing, erasure (crypto-shredding), master-key rotation, retention after closure and the
migration of contacts that events written before left in the database."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest
from bson.raw_bson import RawBSONDocument
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from typer.testing import CliRunner

from gridloop.audit import AuditTrail
from gridloop.cases.reader import CaseReader
from gridloop.config import Settings
from gridloop.contacts import Contact, ContactKeyError, MasterKeys, contact_id
from gridloop.contacts.keys import new_master_key
from gridloop.contacts.store import ContactStore
from gridloop.kafka import EventProducer, ensure_topics
from gridloop.mongo import Document
from schemas.envelope import Envelope, decode, encode
from schemas.events import CaseReported
from services.intake.retention import Retention
from system.cli import app
from tests.conftest import Servers
from tests.helpers import eventually
from tests.samples import sample_of

T = TypeVar("T")
CONTACT = Contact(name="李秀兰", phone="13611112222", address="东华门大街 3 号", wechat="wx_li_xl")


@dataclass
class Db:
    settings: Settings
    key: str  # the master key configured, base64

    def run(self, work: Callable[[AsyncDatabase[Document]], Awaitable[T]]) -> T:
        async def go() -> T:
            client: AsyncMongoClient[Document] = AsyncMongoClient(
                self.settings.mongodb_uri, tz_aware=True
            )
            try:
                return await work(client[self.settings.mongodb_database])
            finally:
                await client.close()

        return asyncio.run(go())

    def gridloop(self, *args: str, keys: str | None = None) -> Any:
        env = {
            "MONGODB_URI": self.settings.mongodb_uri,
            "KAFKA_BOOTSTRAP_SERVERS": self.settings.kafka_bootstrap_servers,
            "GRIDLOOP_MONGODB_DATABASE": self.settings.mongodb_database,
            "GRIDLOOP_NAMESPACE": self.settings.namespace,
            "GRIDLOOP_CONTACT_KEYS": keys or self.key,
            "GRIDLOOP_DATA_DIR": "",
        }
        result = CliRunner().invoke(app, [*args, "--json"], env=env)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)


@pytest.fixture
def db(servers: Servers) -> Iterator[Db]:
    yield Db(servers.settings(), new_master_key())


def test_a_contact_is_sealed_kept_once_and_read_back(db: Db) -> None:
    keys = MasterKeys.parse(db.key)

    async def work(d: AsyncDatabase[Document]) -> tuple[Contact | None, bytes]:
        store = ContactStore(d, keys)
        await store.put("ct_" + "1" * 32, "C-1", CONTACT)
        await store.put("ct_" + "1" * 32, "C-1", Contact(name="someone else"))  # a retry
        raw = d.with_options(
            codec_options=d.codec_options.with_options(document_class=RawBSONDocument)
        )
        blobs = [
            bytes(doc.raw) for c in ("contacts", "contact_keys") async for doc in raw[c].find({})
        ]
        return await store.get("ct_" + "1" * 32), b"".join(blobs)

    found, stored = db.run(work)
    assert found == CONTACT  # the first one stands
    for value in (CONTACT.name, CONTACT.phone, CONTACT.address, CONTACT.wechat):
        assert value is not None and value.encode() not in stored
    assert base64.b64decode(db.key) not in stored  # the master key is never in the database


def test_erasure_shreds_the_key_and_the_contact(db: Db) -> None:
    keys = MasterKeys.parse(db.key)

    async def work(d: AsyncDatabase[Document]) -> tuple[int, int, Contact | None, int]:
        store = ContactStore(d, keys)
        await store.put(contact_id("C-2"), "C-2", CONTACT)
        first, again = (
            await store.erase([contact_id("C-2")]),
            await store.erase([contact_id("C-2")]),
        )
        left = await d["contacts"].count_documents({}) + await d["contact_keys"].count_documents({})
        return first, again, await store.get(contact_id("C-2")), left

    # Kept once, shredded once; nothing of it left in either collection.
    assert db.run(work) == (1, 0, None, 0)


def test_rotation_rewraps_every_data_key_under_the_new_master_key(db: Db) -> None:
    old, new = db.key, new_master_key()

    async def before(d: AsyncDatabase[Document]) -> None:
        store = ContactStore(d, MasterKeys.parse(old))
        for n in range(3):
            await store.put(contact_id(f"C-{n}"), f"C-{n}", CONTACT)

    db.run(before)
    # The new key first, the old one still configured: rotate re-wraps all three.
    rotated = db.gridloop("contacts", "rotate", keys=f"{new},{old}")
    assert rotated["rewrapped"] == 3
    assert rotated["by_master"] == {MasterKeys.parse(new).current_id: 3}
    assert db.gridloop("contacts", "rotate", keys=f"{new},{old}")["rewrapped"] == 0

    async def after(d: AsyncDatabase[Document]) -> tuple[Contact | None, str]:
        found = await ContactStore(d, MasterKeys.parse(new)).get(contact_id("C-1"))
        try:
            await ContactStore(d, MasterKeys.parse(old)).get(contact_id("C-1"))
        except ContactKeyError as exc:
            return found, str(exc)
        return found, "opened under the retired key"

    found, refused = db.run(after)
    assert found == CONTACT  # the new key alone opens it
    assert "is not configured" in refused  # the old key alone opens nothing


def test_a_wrong_master_key_is_refused_by_the_commands(db: Db) -> None:
    db.run(
        lambda d: ContactStore(d, MasterKeys.parse(db.key)).put(contact_id("C-9"), "C-9", CONTACT)
    )
    result = CliRunner().invoke(
        app,
        ["contacts", "rotate"],
        env={
            "MONGODB_URI": db.settings.mongodb_uri,
            "KAFKA_BOOTSTRAP_SERVERS": db.settings.kafka_bootstrap_servers,
            "GRIDLOOP_MONGODB_DATABASE": db.settings.mongodb_database,
            "GRIDLOOP_CONTACT_KEYS": new_master_key(),
        },
    )
    assert result.exit_code == 1 and "is not configured" in result.output


def test_expire_erases_the_contacts_of_cases_ended_longer_ago_than_the_retention(
    db: Db,
) -> None:
    now = datetime.now(UTC)
    old, recent = now - timedelta(days=181), now - timedelta(days=179)
    cases: dict[str, Document] = {  # the demo pack keeps contacts 180 days after the end
        "C-closed": {"state": "closed", "closed_at": old},
        "C-rated": {"state": "evaluated", "closed_at": old},  # rated after its closure
        "C-voided": {"state": "voided", "voided_at": old},
        "C-recent": {"state": "closed", "closed_at": recent},
        "C-open": {"state": "dispatched"},
        "C-reopened": {"state": "rework", "closed_at": old},  # closed once, reopened since
    }

    async def before(d: AsyncDatabase[Document]) -> None:
        store = ContactStore(d, MasterKeys.parse(db.key))
        for case_id, doc in cases.items():
            ref = contact_id(case_id)
            await store.put(ref, case_id, CONTACT)
            case: Document = {"_id": case_id, "reporter": {"contact": ref}}
            await d["cases"].insert_one(case | doc)
        # Reported a year ago: a contact is kept from the report on, before its case ends.
        await d["contacts"].update_many({}, {"$set": {"at": now - timedelta(days=365)}})

    db.run(before)
    assert sorted(db.gridloop("contacts", "expire")["erased"]) == [
        "C-closed",
        "C-rated",
        "C-voided",
    ]
    assert db.gridloop("contacts", "expire")["erased"] == []  # nothing more to erase

    async def after(d: AsyncDatabase[Document]) -> tuple[list[str], list[Document]]:
        kept = await ContactStore(d, MasterKeys.parse(db.key)).get_many(
            [contact_id(c) for c in cases]
        )
        query = {"kind": "erasure", "case_id": "C-closed"}
        trail = [r async for r in d["audit"].find(query, {"_id": 0, "at": 0})]
        return sorted(c for c in cases if contact_id(c) in kept), trail

    kept, trail = db.run(after)
    assert kept == ["C-open", "C-recent", "C-reopened"]
    assert trail == [
        {
            "kind": "erasure",
            "service": "cli",
            "actor": {"role": None, "id": None},
            "action": "erase contact",
            "case_id": "C-closed",
            "fields": ["address", "name", "phone", "wechat"],
            "requested_by": "retention",
        }
    ]


def test_migrate_moves_old_events_contacts_out_of_the_database(db: Db) -> None:
    """A case projected and a head claimed before contacts left the log: both hold the
    reporter's name and phone, and a record of the reports topic does too."""
    reported = sample_of(CaseReported, case_id="C-legacy")  # 张伟, 13800000000
    env = Envelope(data=reported, source="/tests", time=datetime.now(UTC))
    legacy = reported.reporter.model_dump(mode="json")
    _, value, headers = encode(env)

    async def before(d: AsyncDatabase[Document]) -> None:
        entry = {"type": "reported", "version": 1, "data": {"reporter": legacy}}
        await d["cases"].insert_one({"_id": "C-legacy", "reporter": legacy, "timeline": [entry]})
        outbox = [{"value": value, "headers": [[n, raw] for n, raw in headers]}]
        await d["case_heads"].insert_one({"_id": "C-legacy", "rev": 1, "outbox": outbox})
        await ensure_topics(db.settings.kafka_bootstrap_servers, namespace=db.settings.namespace)
        producer = EventProducer(
            db.settings.kafka_bootstrap_servers, namespace=db.settings.namespace
        )
        await producer.start()
        try:
            await producer.publish([env])
        finally:
            await producer.stop()

    db.run(before)
    done = db.gridloop("contacts", "migrate")
    assert (done["cases"], done["heads"]) == (1, 1)
    assert sum(done["records_still_in_topics"].values()) == 1  # Kafka's log is immutable

    async def after(
        d: AsyncDatabase[Document],
    ) -> tuple[Document | None, Document | None, Contact | None]:
        case = await d["cases"].find_one({"_id": "C-legacy"})
        head = await d["case_heads"].find_one({"_id": "C-legacy"})
        kept = await ContactStore(d, MasterKeys.parse(db.key)).get(contact_id("C-legacy"))
        return case, head, kept

    case, head, kept = db.run(after)
    assert case is not None and head is not None
    ref = contact_id("C-legacy")
    assert case["reporter"] == {"id": "sup-0042", "contact": ref}
    assert case["timeline"][0]["data"]["reporter"] == {"id": "sup-0042", "contact": ref}
    [record] = head["outbox"]
    out = decode(record["value"], [(n, raw) for n, raw in record["headers"]])
    assert isinstance(out.data, CaseReported) and out.id == env.id  # the same event
    assert (out.data.reporter.name, out.data.reporter.phone, out.data.reporter.contact) == (
        None,
        None,
        ref,
    )
    assert kept == Contact(name="张伟", phone="13800000000")
    assert db.gridloop("contacts", "migrate")["cases"] == 0  # nothing left to move


def test_intake_sweeps_the_contacts_past_their_retention(db: Db) -> None:
    """The same erasure as `gridloop contacts expire`, as intake's periodic task."""
    now = datetime.now(UTC)
    ref = contact_id("C-swept")

    async def work(d: AsyncDatabase[Document]) -> tuple[Contact | None, list[Document]]:
        store = ContactStore(d, MasterKeys.parse(db.key))
        await store.put(ref, "C-swept", CONTACT)
        await d["contacts"].update_one({"_id": ref}, {"$set": {"at": now - timedelta(days=30)}})
        ended = {"state": "closed", "closed_at": now - timedelta(days=8)}
        await d["cases"].insert_one({"_id": "C-swept", "reporter": {"contact": ref}} | ended)
        retention = timedelta(days=7)
        sweep = Retention(CaseReader(d), store, AuditTrail(d), retention, lambda: now, every=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(sweep.run(stop))

        async def gone() -> bool | None:
            return True if await store.get(ref) is None else None

        await eventually(gone, what="the contact erased by the sweep")
        stop.set()
        await task
        trail = [r async for r in d["audit"].find({"kind": "erasure"}, {"service": 1, "_id": 0})]
        return await store.get(ref), trail

    assert db.run(work) == (None, [{"service": "intake"}])
