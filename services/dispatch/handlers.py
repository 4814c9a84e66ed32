"""Dispatch's service layer: every command (`commands.py`) on the command path, and the
reaction to filings and reworks (a consumer's poll at once).

A command is decided on its case's head (`gridloop.commands`), claims the next version and
is answered once Kafka acknowledged its event. The reaction does the same for each filed or
reworked case of a poll: one read of their heads, the dispatches claimed, published
together, then the poll is committed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from pymongo.asynchronous.database import AsyncDatabase

from gridloop.cases import CaseView
from gridloop.citypack import CityPack
from gridloop.commands import Answer, Asked, CommandPath, Reaction
from gridloop.commands.setup import command_path
from gridloop.kafka import EventProducer, Retry
from gridloop.mongo import Document
from schemas.envelope import Envelope
from schemas.events import CaseFiled, CaseReworked, EventData, SlaBreach, Stage
from services.dispatch import core, disputes
from services.dispatch.commands import Command

SOURCE = "/gridloop/dispatch"


class CaseNotYetKnown(Retry):
    """An event about a case whose head is not there yet: retried, as a transient failure."""


class Dispatch:
    """Decisions take their instant from the command path, which stamps their events with
    it: a deadline reckoned from the dispatch starts when the dispatch says it happened."""

    def __init__(self, pack: CityPack, path: CommandPath) -> None:
        self.pack, self.path = pack, path

    @classmethod
    def on(cls, pack: CityPack, db: AsyncDatabase[Document], producer: EventProducer) -> Dispatch:
        """Dispatch on a database and a producer (the command path's heads and log)."""
        return cls(pack, command_path(db, producer, SOURCE))

    async def handle(self, command: Command, asked: Asked) -> Answer:
        """Decide `command` on its case and claim, publish, answer."""

        async def decide(case: CaseView, now: datetime) -> Sequence[EventData]:
            return [core.decide(self.pack, case, command, now)]

        return await self.path.act(command.case_id, asked, decide)

    async def dispute(self, command: disputes.DisputeCommand, asked: Asked) -> Answer:
        """A tier office's command on a dispute (矛盾纠纷), on the same path."""

        async def decide(case: CaseView, now: datetime) -> Sequence[EventData]:
            return [disputes.decide(self.pack, case, command, now)]

        return await self.path.act(command.case_id, asked, decide)

    async def case(self, case_id: str) -> CaseView:
        """The case as commands see it: its latest committed view."""
        return (await self.path.load(case_id)).view

    async def on_event(self, env: Envelope) -> Sequence[Envelope]:
        """One record: the pipeline's record-by-record way, which finds the record at
        fault when a poll fails."""
        await self.on_poll([env])
        return []

    async def on_poll(self, envs: Sequence[Envelope]) -> None:
        """A poll at once: each filing and rework dispatched on its case's head, in order.
        A case with no head yet is tried again with the whole poll (the rest is claimed
        already, and decides nothing the second time)."""
        reactions = [
            Reaction(env.data.case_id, env.id, self._reaction(env.data))
            for env in envs
            if isinstance(env.data, CaseFiled | CaseReworked)
        ] + [
            Reaction(env.data.case_id, env.id, self._up_a_tier(env.data))
            for env in envs
            if isinstance(env.data, SlaBreach) and env.data.stage is Stage.mediate
        ]
        if missing := await self.path.react(reactions):
            raise CaseNotYetKnown(", ".join(missing[:5]))

    def _reaction(
        self, event: CaseFiled | CaseReworked
    ) -> Callable[[CaseView, datetime], Sequence[EventData] | None]:
        """Decided when its case's head is read: the handling time starts at the dispatch
        (派遣), not at the filing or rework, so the deadline is reckoned from then."""
        return lambda case, now: core.react(self.pack, case, event, now)

    def _up_a_tier(
        self, breach: SlaBreach
    ) -> Callable[[CaseView, datetime], Sequence[EventData] | None]:
        """A dispute's tier breached its limit: up one tier, decided on the head, so a
        breach read twice (a redelivery, a restart) escalates once."""
        return lambda case, now: disputes.escalate_on_breach(self.pack, case, breach, now)
