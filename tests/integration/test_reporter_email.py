"""A reporter told by email (issue 18 item 5): notify's outbox and delivery workers against
the session's database and a real SMTP server (aiosmtpd, on a free port): the messages
arrive in order, once each, with a Message-ID that stands across retries; a server that
refuses at first is tried again; the address is in no document notify writes; a contact
erased before its message is sent gets nothing."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email import message_from_bytes
from email.message import Message
from email.policy import default
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Session
from aiosmtpd.smtp import Envelope as SmtpEnvelope
from bson.raw_bson import RawBSONDocument
from pymongo import AsyncMongoClient

from gridloop.cases.reader import CaseReader
from gridloop.citypack import CityPack, load_city_pack
from gridloop.citypack.messages import MESSAGES_FILE
from gridloop.config import DEMO_CITY_PACK
from gridloop.contacts import Contact, MasterKeys, contact_id
from gridloop.contacts.store import ContactStore
from gridloop.embedded import free_port
from gridloop.kafka import Retry
from gridloop.mongo import Document
from schemas.envelope import Envelope
from schemas.events import Actor, CaseClosed, CaseDispatched, CaseFiled, CaseHandled
from schemas.events import Role as ActorRole
from services.notify.core import RetrySchedule
from services.notify.service import Deliverer, DeliveryPolicy, Notify
from services.notify.store import DeliveryStore
from tests.conftest import Servers
from tests.helpers import eventually

ADDRESS = f"resident.{uuid.uuid4().hex[:6]}@example.cn"
CENTRE = Actor(role=ActorRole.supervision_centre, id="centre-1")


@dataclass
class Mailbox:
    """What the SMTP server accepted; it answers 451 (try later) to the first `refuse`."""

    refuse: int = 0
    mails: list[Message] = field(default_factory=list)
    tries: int = 0

    async def handle_DATA(self, server: SMTP, session: Session, envelope: SmtpEnvelope) -> str:
        self.tries += 1
        if self.refuse:
            self.refuse -= 1
            return "451 4.3.0 try again later"
        assert isinstance(envelope.content, bytes)
        self.mails.append(message_from_bytes(envelope.content, policy=default))
        return "250 OK"


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    box, port = Mailbox(), free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


def _pack(root: Path, smtp_port: int) -> CityPack:
    """The demo pack whose reporters are reached by SMS first, then by email here."""
    shutil.copytree(DEMO_CITY_PACK, root)
    messages: dict[str, Any] = yaml.safe_load((root / MESSAGES_FILE).read_text("utf-8"))
    email = next(c for c in messages["channels"] if c["kind"] == "email")
    email["port"] = smtp_port
    (root / MESSAGES_FILE).write_text(yaml.safe_dump(messages, allow_unicode=True), "utf-8")
    return load_city_pack(root)


@dataclass
class Told:
    db: Any
    notify: Notify
    contacts: ContactStore
    deliverer: Deliverer
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """The delivery workers, from now on."""
        self.task = asyncio.create_task(self.deliverer.run(self.stop))


@contextlib.asynccontextmanager
async def telling(servers: Servers, pack: CityPack) -> AsyncIterator[Told]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = client[f"test_{uuid.uuid4().hex[:12]}"]
    store = DeliveryStore(db)
    await store.create_indexes()
    contacts = ContactStore(db, MasterKeys.ephemeral())
    wake = asyncio.Event()
    notify = Notify(
        pack, CaseReader(db), store, wake, None, contacts, lambda c: f"https://door/f/{c}"
    )
    policy = DeliveryPolicy(RetrySchedule.parse("0,0.2,0.2,0.2", 0), timeout=5, poll=0.05)
    async with httpx.AsyncClient() as http:
        told = Told(
            db, notify, contacts, Deliverer(pack, store, http, policy, wake, contacts=contacts)
        )
        try:
            yield told
        finally:
            told.stop.set()
            if told.task is not None:
                await told.task
    await client.drop_database(db.name)
    await client.close()


async def _reported_case(told: Told, contact: Contact) -> tuple[str, str]:
    """A citizen's case, projected, its contact kept: (case id, contact reference)."""
    case_id = f"C-{uuid.uuid4().hex[:10]}"
    ref = contact_id(case_id)
    await told.contacts.put(ref, case_id, contact)
    await told.db["cases"].insert_one(
        {
            "_id": case_id,
            "state": "filed",
            "version": 7,  # as far as the events the tests send (notify waits for it)
            "channel": "website",
            "kind": "event",
            "class_code": "0102",
            "case_number": "S0102-20260302-0001",
            "department": "SANITATION",
            "reporter": {"id": "citizen-1", "contact": ref},
        }
    )
    return case_id, ref


def _loop(case_id: str) -> list[Envelope]:
    at = datetime.now(UTC)
    events = [
        CaseFiled(
            case_id=case_id,
            version=3,
            actor=CENTRE,
            kind="event",
            class_code="0102",
            grid_code="110101001001001",
            case_number="S0102-20260302-0001",
        ),
        CaseHandled(
            case_id=case_id,
            version=5,
            actor=Actor(role=ActorRole.department, id="SANITATION"),
            department="SANITATION",
        ),
        CaseClosed(case_id=case_id, version=7, actor=CENTRE),
    ]
    return [Envelope(e, "/tests", at + timedelta(seconds=i)) for i, e in enumerate(events)]


async def _raw(told: Told, collection: str) -> list[bytes]:
    raw = told.db.client.get_database(
        told.db.name,
        codec_options=told.db.codec_options.with_options(document_class=RawBSONDocument),
    )[collection]
    return [bytes(d.raw) async for d in raw.find({})]


async def test_a_reporter_is_told_by_email_in_order_once_each(
    servers: Servers, tmp_path: Path, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    box.refuse = 1  # the server's first answer: try later
    async with telling(servers, _pack(tmp_path / "pack", port)) as told:
        case_id, ref = await _reported_case(told, Contact(name="王秀英", email=ADDRESS))
        events = _loop(case_id)
        await told.notify.on_events(events)
        await told.notify.on_events(events)  # a redelivered poll adds nothing
        told.start()
        await eventually(lambda: _delivered(told, 3), what="three emails delivered")
        assert [m["Message-ID"] for m in box.mails] == [
            f"<{d['_id']}@gridloop>" for d in await _deliveries(told)
        ]
        assert [str(m["To"]) for m in box.mails] == [ADDRESS] * 3
        texts = [m.get_content().strip() for m in box.mails]  # type: ignore[attr-defined]
        assert texts[0].startswith("【12345】您反映的问题")
        assert "S0102-20260302-0001" in texts[0] and f"https://door/f/{case_id}" in texts[0]
        assert texts[1].startswith("【12345】案件 S0102-20260302-0001 已由")
        assert texts[2].endswith(f"请对办理结果评价：https://door/f/{case_id}")
        assert box.tries == 4  # the first one twice: refused, then accepted
        docs = await _deliveries(told)
        assert [d["attempts"] for d in docs] == [2, 1, 1]
        assert {d["contact"] for d in docs} == {ref}
        # The address is in nothing notify wrote.
        for collection in ("deliveries", "delivery_attempts"):
            assert not [r for r in await _raw(told, collection) if ADDRESS.encode() in r]


async def test_a_contact_erased_before_its_message_is_sent_gets_nothing(
    servers: Servers, tmp_path: Path, mailbox: tuple[Mailbox, int]
) -> None:
    box, port = mailbox
    async with telling(servers, _pack(tmp_path / "pack", port)) as told:
        case_id, ref = await _reported_case(told, Contact(email=ADDRESS))
        later, later_ref = await _reported_case(told, Contact(email=ADDRESS))
        filed, handled, closed = _loop(case_id)
        await told.notify.on_events([filed, _loop(later)[0]])  # queued, not sent yet
        await told.contacts.erase([ref])
        assert await told.contacts.opt_out(later_ref)  # with the follow token, later
        told.start()
        docs = await eventually(lambda: _settled(told, 2), what="both deliveries dead")
        assert [(d["status"], d["dead_reason"]) for d in docs] == [("dead", "refused")] * 2
        assert [d["attempts"] for d in docs] == [1, 1]
        await told.notify.on_events([handled, closed])  # read after the erasure: nothing queued
        opted, _ = await _reported_case(told, Contact(email=ADDRESS, opted_out=True))
        await told.notify.on_events(_loop(opted))  # opted out at the report: nothing queued
        assert len(await _deliveries(told)) == 2
        assert box.mails == [] and box.tries == 0


async def _deliveries(told: Told) -> list[Document]:
    return [d async for d in told.db["deliveries"].find({}).sort("seq", 1)]


async def _settled(told: Told, n: int) -> list[Document] | None:
    docs = await _deliveries(told)
    return docs if len(docs) == n and all(d["status"] != "pending" for d in docs) else None


async def _delivered(told: Told, n: int) -> bool:
    docs = await _deliveries(told)
    return len(docs) == n and all(d["status"] == "delivered" for d in docs)


async def test_a_message_waits_for_the_earlier_one_of_its_case(
    servers: Servers, tmp_path: Path, mailbox: tuple[Mailbox, int]
) -> None:
    """The handling is read before the filing (another topic): its message is not queued
    until the filing's is, so the reporter reads them in their order."""
    _, port = mailbox
    async with telling(servers, _pack(tmp_path / "pack", port)) as told:
        case_id, _ = await _reported_case(told, Contact(email=ADDRESS))
        filed, handled, _ = _loop(case_id)
        entry = {"event_id": filed.id, "type": "case.filed", "version": 3, "at": filed.time}
        await told.db["cases"].update_one({"_id": case_id}, {"$set": {"timeline": [entry]}})
        with pytest.raises(Retry, match="earlier messages not read yet"):
            await told.notify.on_events([handled])
        assert await _deliveries(told) == []
        await told.notify.on_events([filed])
        await told.notify.on_events([handled])
        assert [d["type"] for d in await _deliveries(told)] == ["case.filed", "case.handled"]


async def test_contacts_that_do_not_open_hold_up_no_department(
    servers: Servers, tmp_path: Path, mailbox: tuple[Mailbox, int]
) -> None:
    """Notify configured with another master key than intake's: the reporter is not told,
    and the department still gets its dispatch."""
    _, port = mailbox
    async with telling(servers, _pack(tmp_path / "pack", port)) as told:
        case_id, _ = await _reported_case(told, Contact(email=ADDRESS))
        told.notify.contacts = ContactStore(told.db, MasterKeys.ephemeral())
        dispatched = CaseDispatched(
            case_id=case_id,
            version=4,
            actor=Actor(role=ActorRole.command_centre, id="auto-dispatch"),
            department="SANITATION",
            deadline=datetime.now(UTC) + timedelta(hours=4),
            rule="test",
        )
        await told.notify.on_events([Envelope(dispatched, "/tests")])
        assert [d["department"] for d in await _deliveries(told)] == ["SANITATION"]
