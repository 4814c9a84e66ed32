"""Intake's service layer: reports and case commands on the command path.

A report is decided (`reporting.py`), merged into an open duplicate nearby, numbered if it
is filed at once, and opens its case (the claim of its first version); a case command
(`commands.py`) is decided on its case's head (`core.py`), numbered if it files the case,
and claims the next version. Either is answered once Kafka acknowledged its events. Every
route of intake — single reports, the batch, Open311, feedback — comes through here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from gridloop.audit import AuditTrail
from gridloop.auth import CredentialStore
from gridloop.cases import CaseView
from gridloop.cases.reader import CaseReader
from gridloop.citypack import CityPack
from gridloop.commands import Answer, Asked, CommandPath, Opening
from gridloop.commands.mongo import view_of_head
from gridloop.commands.setup import command_path, create_indexes
from gridloop.contacts import MasterKeys
from gridloop.contacts.store import ContactStore
from gridloop.follow import follow_key, follow_token
from gridloop.kafka import EventProducer
from gridloop.mediakeys import link_key
from gridloop.mongo import Document
from gridloop.refusal import Refused, Why, invalid, not_found
from schemas import clock
from schemas.events import CaseReported, Channel, EventData
from services.intake import core
from services.intake.commands import CallbackCommand, CaseCommand, Merge, Report, SelfHandle
from services.intake.media import MediaStore
from services.intake.numbering import CaseNumbers
from services.intake.reporting import E, decide_report, local_day, to_file, with_number
from services.intake.retention import Retention
from services.intake.search import DuplicateSearch
from services.intake.selfhandling import decide_self_handling, own_grids

SOURCE = "/gridloop/intake"
Clock = Callable[[], datetime]


class Intake:
    """What the routes need; built once by the service's bootstrap."""

    def __init__(
        self,
        pack: CityPack,
        producer: EventProducer,
        db: AsyncDatabase[Document],
        follow_key: bytes,
        clock: Clock = clock.now,
        contact_keys: MasterKeys | None = None,
        media_key: bytes | None = None,
    ) -> None:
        self.pack, self.clock, self.follow_key = pack, clock, follow_key
        self.db, self._media_key = db, media_key
        self.path: CommandPath = command_path(db, producer, SOURCE)
        self.cases = CaseReader(db)
        self.credentials = CredentialStore(db)
        self.media = MediaStore(db)
        self.audit = AuditTrail(db)
        # Without configured keys (tests), contacts are sealed under a key held in memory.
        self.contacts = ContactStore(db, contact_keys or MasterKeys.ephemeral())
        self.numbers = CaseNumbers(db)
        self.search = DuplicateSearch(self.cases, pack, clock)

    @classmethod
    async def build(
        cls,
        pack: CityPack,
        producer: EventProducer,
        db: AsyncDatabase[Document],
        contact_keys: MasterKeys,
        media_key: str = "",
    ) -> Intake:
        key = await link_key(db, media_key)
        intake = cls(
            pack, producer, db, await follow_key(db), contact_keys=contact_keys, media_key=key
        )
        await create_indexes(db)
        await intake.contacts.create_indexes()
        await intake.media.create_indexes()
        # The callbacks owed (`awaiting_callback`): closed heads of reachable reporters.
        await db["case_heads"].create_index(
            [("view.state", 1), ("view.reachable", 1), ("view.closed_at", 1)]
        )
        await intake.numbers.adopt_counters(local_day(pack, intake.clock()))
        return intake

    async def media_key(self) -> bytes:
        """The key of signed media links: configured, else the database's (as notify's)."""
        if self._media_key is None:
            self._media_key = await link_key(self.db, "")
        return self._media_key

    async def report(self, report: Report, asked: Asked) -> Answer:
        """A report decided, numbered and published, once per `Idempotency-Key` (its case id
        is derived from the key: a retry finds its case and is answered as before)."""
        if asked.key is not None and (again := await self.path.replay(report.case_id, asked)):
            return again
        await self.attach_media(report.media, ("body", "media"), report.case_id)
        now = self.clock()
        first = decide_report(self.pack, report, now)
        await self.keep_contact(report)
        reported = first[0]
        assert isinstance(reported, CaseReported)
        nearby = await self.search.nearby(reported)
        # Without candidates the first decision stands: decide_report is not cheap.
        decided = decide_report(self.pack, report, now, nearby) if nearby else first
        events = await self.numbered(decided, fresh=asked.key is None)
        [answer] = await self.path.open([Opening(events, asked, self.extra(report))])
        return answer

    async def self_handle(self, handle: SelfHandle, asked: Asked) -> Answer:
        """自处置: the report and its fix decided, then claimed as the case's first two
        versions and published, once per `Idempotency-Key` (as a report). Decided before
        the uploads are linked: a refusal changes nothing."""
        if asked.key is not None and (again := await self.path.replay(handle.case_id, asked)):
            return again
        events = decide_self_handling(self.pack, handle, own_grids(self.pack, handle.who))
        await self.attach_media(handle.before, ("body", "before"), handle.case_id)
        await self.attach_media(handle.after, ("body", "after"), handle.case_id)
        [answer] = await self.path.open([Opening(events, asked)])
        return answer

    async def act(self, command: CaseCommand, asked: Asked) -> Answer:
        """A case command decided on the case's head, numbered if it files the case."""
        if media := getattr(command, "media", ()):
            await self.attach_media(media, ("body", "media"), command.case_id)
        into = await self._into(command) if isinstance(command, Merge) else None

        async def decide(case: CaseView, now: datetime) -> Sequence[EventData]:
            events = core.decide(self.pack, case, command, now, into)
            return await self.numbered(events)

        return await self.path.act(command.case_id, asked, decide)

    async def call_back(self, command: CallbackCommand, asked: Asked) -> Answer:
        """回访: a call or the resident's answer, decided on the case's head."""

        async def decide(case: CaseView, now: datetime) -> Sequence[EventData]:
            return core.decide_callback(self.pack, case, command, now)

        return await self.path.act(command.case_id, asked, decide)

    async def awaiting_callback(self, limit: int) -> list[CaseView]:
        """Heads of the closed cases that owe a callback (回访), the oldest closure first:
        the reporter left a contact, and it is neither answered nor invalid. Read from the
        heads, where each call is decided, so a call just made shows at once."""
        owed = {
            "view.state": "closed",
            "view.reachable": True,
            "view.callback_over": {"$ne": True},
        }
        found = self.db["case_heads"].find(owed, {"view": 1}).sort("view.closed_at", 1)
        return [view_of_head(doc["_id"], doc["view"]) async for doc in found.limit(limit)]

    async def numbered(self, events: Sequence[E], fresh: bool = False) -> Sequence[E]:
        """`events` with a case number, if they file the case (`fresh`: a case id made just
        now, see `CaseNumbers.number_for`)."""
        filed = to_file(events)
        if filed is None:
            return events
        day = local_day(self.pack, self.clock())
        case, kind, code = filed.case_id, filed.kind, filed.class_code
        return with_number(events, await self.numbers.number_for(case, kind, code, day, fresh))

    def retention(self) -> Retention:
        """The sweep that erases contacts past the pack's retention after closure."""
        keep = self.pack.city.intake.contact_retention
        return Retention(self.cases, self.contacts, self.audit, keep, self.clock)

    def extra(self, report: Report) -> dict[str, str]:
        """What a report's answer says besides its events: a citizen's follow token."""
        if report.channel is Channel.supervisor:
            return {}
        return {"follow_token": follow_token(self.follow_key, report.case_id)}

    async def keep_contact(self, report: Report) -> None:
        """The reporter's contact, sealed in the contact store before the claim: the events
        name it by `reporter.contact` only."""
        if report.reporter.contact is not None:
            await self.contacts.put(report.reporter.contact, report.case_id, report.contact)

    async def attach_media(self, ids: Sequence[str], loc: tuple[str, ...], case_id: str) -> None:
        """Refuse uploads that do not exist; link those that do to the case that names
        them, before its claim (`media.py`: who may read the case may read them)."""
        if missing := await self.media.attach(ids, case_id):
            raise invalid(loc, f"no uploaded media {', '.join(missing)}", "unknown_media")

    async def _into(self, merge: Merge) -> CaseView:
        """The case a report is merged into, as it stands now."""
        try:
            return (await self.path.load(merge.into_case_id)).view
        except Refused as refused:
            if refused.why is Why.not_found:
                raise not_found(("body", "into_case_id"), refused.reason) from None
            raise
