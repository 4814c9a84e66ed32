"""The command path on the real broker and database: one writer per case version, answers
remembered by the claim, outboxes published by whoever comes next (or the relay), reactions
decided on the case's latest committed version."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.cases import CaseView
from gridloop.commands import Asked, CommandPath, Opening, Publisher, Reaction
from gridloop.commands.kafka import LogPublisher
from gridloop.commands.mongo import MongoHeads
from gridloop.commands.path import Decide
from gridloop.commands.relay import Relay
from gridloop.kafka import EventProducer, ensure_topics
from gridloop.lifecycle import next_state
from gridloop.mongo import Document
from gridloop.refusal import Refused, Why
from schemas import clock
from schemas.envelope import Envelope, decode
from schemas.events import (
    Actor,
    CaseDispatched,
    CaseEvent,
    CaseFiled,
    CaseHandled,
    CaseParked,
    CaseReported,
    CaseReturned,
    EventData,
    Role,
)
from tests.conftest import Servers
from tests.integration.test_intake_api import records_of

SUP = Actor(role=Role.supervisor, id="SUP-1")
CREW = Actor(role=Role.department, id="WATER/crew")
GRID = "110101001002001"


class Unreachable:
    """A log that does not answer (a paused broker): every publish is refused with 503."""

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        raise Refused(Why.unavailable, ("kafka",), "the event log is unavailable")


class Flaky:
    """The real log, unreachable until `up`."""

    def __init__(self, log: Publisher) -> None:
        self.log, self.up = log, False

    async def publish(self, envelopes: Sequence[Envelope]) -> None:
        if not self.up:
            raise Refused(Why.unavailable, ("kafka",), "the event log is unavailable")
        await self.log.publish(envelopes)


@dataclass
class World:
    db: AsyncDatabase[Document]
    heads: MongoHeads
    path: CommandPath
    kafka: str

    async def offline(self, log: Publisher | None = None) -> CommandPath:
        """Another writer on the same heads, whose log does not answer, that knows the
        first path's watermark (as its relay would have told it)."""
        path = CommandPath(self.heads, log or Unreachable(), "/tests", clock.now)
        await self.heads.beat(self.path.writer, self.path.watermark())
        path.marks = {m.writer: m for m in await self.heads.writers()}
        return path

    async def dispatched_case(self) -> str:
        """A case reported, filed and dispatched to WATER through the path."""
        case_id = f"C-{uuid.uuid4().hex[:10]}"
        opening = Opening([reported(case_id), filed(case_id)], Asked("test", None, case_id))
        await self.path.open([opening])
        await self.path.act(case_id, Asked("dispatch", None, "x"), decided(dispatched))
        return case_id

    async def published(self, case_id: str, count: int) -> list[Envelope]:
        """The case's first `count` events in the log, by version."""
        topics = ("reports", "dispatches", "completions")
        records = await records_of(self.kafka, case_id.encode(), count, topics=topics)
        return sorted((decode(r.value, r.headers) for r in records), key=_version)


def _version(env: Envelope) -> int:
    return getattr(env.data, "version", 0)


def reported(case_id: str) -> CaseReported:
    return CaseReported(
        case_id=case_id,
        version=1,
        actor=SUP,
        channel="supervisor",
        kind="event",
        class_code="0102",
        point={"lon": 116.4025, "lat": 39.9205},
        grid_code=GRID,
        description="暴露垃圾",
    )


def filed(case_id: str) -> CaseFiled:
    return CaseFiled(
        case_id=case_id, version=2, actor=SUP, kind="event", class_code="0102", grid_code=GRID
    )


def dispatched(case: CaseView) -> EventData:
    next_state(case.state, "dispatched")
    return CaseDispatched(
        case_id=case.case_id,
        version=case.version + 1,
        actor=Actor(role=Role.command_centre, id="cc"),
        department="WATER",
        deadline=datetime.now(UTC) + timedelta(hours=4),
        rule="test",
    )


def handled(note: str) -> Callable[[CaseView], EventData]:
    def decide(case: CaseView) -> EventData:
        next_state(case.state, "handled")
        return CaseHandled(
            case_id=case.case_id,
            version=case.version + 1,
            actor=CREW,
            department="WATER",
            note=note,
        )

    return decide


def returned(case: CaseView) -> EventData:
    next_state(case.state, "returned")
    return CaseReturned(
        case_id=case.case_id, version=case.version + 1, actor=CREW, department="WATER", reason="no"
    )


def decided(decide: Callable[[CaseView], EventData]) -> Decide:
    """The path's decider of one event from a core's decision."""

    async def run(case: CaseView, now: datetime) -> list[EventData]:
        return [decide(case)]

    return run


@pytest.fixture
async def world(servers: Servers) -> AsyncIterator[World]:
    await ensure_topics(servers.kafka)
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = mongo[f"test_{uuid.uuid4().hex[:12]}"]
    producer = EventProducer(servers.kafka)
    await producer.start()
    heads = MongoHeads(db)
    await heads.create_indexes()
    try:
        yield World(
            db,
            heads,
            CommandPath(heads, LogPublisher(producer), "/tests", clock.now),
            servers.kafka,
        )
    finally:
        await producer.stop()
        await mongo.close()


async def test_of_two_commands_decided_on_one_version_one_claims_it(world: World) -> None:
    case_id = await world.dispatched_case()
    outcomes = await asyncio.gather(
        world.path.act(case_id, Asked("handled", None, "a"), decided(handled("swept"))),
        world.path.act(case_id, Asked("return", None, "b"), decided(returned)),
        return_exceptions=True,
    )
    won = [o for o in outcomes if not isinstance(o, BaseException)]
    lost = [o for o in outcomes if isinstance(o, Refused)]
    assert len(won) == 1 and len(lost) == 1, outcomes
    # The loser decided again on the winner's head: refused, saying where the case stands.
    assert lost[0].why is Why.conflict and lost[0].at is not None
    assert (lost[0].at.state, lost[0].at.version) == (won[0].body["state"], 4)
    events = await world.published(case_id, 4)
    # Each event once (by id: the loser may have published the winner's outbox too).
    facts = {e.id: e.data for e in events}
    versions = [d.version for d in facts.values() if isinstance(d, CaseEvent)]
    assert sorted(versions) == [1, 2, 3, 4], [(d.ce_type, d) for d in facts.values()]
    assert [i for i, d in facts.items() if getattr(d, "version", 0) == 4] == won[0].body["events"]


async def test_the_same_request_again_gets_the_same_answer_and_a_reused_key_is_refused(
    world: World,
) -> None:
    case_id = await world.dispatched_case()
    first = await world.path.act(
        case_id, Asked("handled", None, "note: swept"), decided(handled("swept"))
    )
    # No key: the very request of the case's last claim is that claim again.
    again = await world.path.act(
        case_id, Asked("handled", None, "note: swept"), decided(handled("swept"))
    )
    assert again == first
    # Another request is decided on the new head, and refused there.
    with pytest.raises(Refused) as other:
        await world.path.act(
            case_id, Asked("handled", None, "note: else"), decided(handled("else"))
        )
    assert other.value.code == "invalid_transition"

    keyed = await world.dispatched_case()
    asked = Asked("return", "key-1", "reason: no")
    answer = await world.path.act(keyed, asked, decided(returned))
    assert await world.path.act(keyed, asked, decided(returned)) == answer
    with pytest.raises(Refused) as reused:
        await world.path.act(keyed, Asked("return", "key-1", "reason: other"), decided(returned))
    assert (reused.value.why, reused.value.code) == (Why.invalid, "idempotency_key_reused")


async def test_a_claim_left_unpublished_is_published_by_the_next_command(world: World) -> None:
    case_id = await world.dispatched_case()
    asked = Asked("handled", "key-2", "note: swept")
    # The log does not answer: 503, but the claim stands with its events in the outbox.
    with pytest.raises(Refused) as unavailable:
        await (await world.offline()).act(case_id, asked, decided(handled("swept")))
    assert unavailable.value.why is Why.unavailable
    head = await world.heads.load(case_id)
    assert head is not None and head.view.state == "handled" and len(head.outbox) == 1
    # The client's retry (same key) publishes the outbox, then gets the claim's answer.
    answer = await world.path.act(case_id, asked, decided(handled("swept")))
    assert answer.body["state"] == "handled"
    events = await world.published(case_id, 4)
    assert events[-1].id == answer.body["events"][0]


async def test_the_relay_publishes_what_a_dead_writer_left_and_retires_it(world: World) -> None:
    case_id = await world.dispatched_case()
    offline = await world.offline()
    with pytest.raises(Refused):
        await offline.act(case_id, Asked("return", None, "r"), decided(returned))
    relay = Relay(world.path, dead_after=timedelta(0))  # the offline writer is gone at once
    assert await relay.sweep() == 1
    events = await world.published(case_id, 4)
    assert isinstance(events[-1].data, CaseReturned)
    assert await relay.sweep() == 0  # released: nothing left; the writer is retired
    retired = {m.writer: m for m in await world.heads.writers()}[offline.writer]
    assert retired.retired
    head = await world.heads.load(case_id)
    assert head is not None and head.by is None


async def test_a_writer_publishes_again_what_failed_once_its_log_answers(world: World) -> None:
    case_id = await world.dispatched_case()
    flaky = Flaky(world.path.publisher)
    path = await world.offline(flaky)
    with pytest.raises(Refused):
        await path.act(case_id, Asked("return", None, "r"), decided(returned))
    stuck = path.watermark()
    flaky.up = True
    assert await path.retry(older_than=timedelta(0)) == 1
    assert path.watermark() > stuck  # nothing pending: every claim of it is in the log
    events = await world.published(case_id, 4)
    assert isinstance(events[-1].data, CaseReturned)


async def test_an_outbox_under_its_writers_watermark_is_not_published_again(
    world: World,
) -> None:
    case_id = await world.dispatched_case()
    head = await world.heads.load(case_id)
    other = CommandPath(world.heads, Unreachable(), "/tests", clock.now)
    assert head is not None and head.by == world.path.writer
    assert not other.published(head)  # its writer's watermark unknown yet: maybe not
    await world.heads.beat(world.path.writer, world.path.watermark())
    other.marks = {m.writer: m for m in await world.heads.writers()}
    assert other.published(head)
    await other.flush([head])  # nothing to publish: the unreachable log is not asked


async def test_a_keyed_opening_is_answered_again_and_another_under_its_key_changes_nothing(
    world: World,
) -> None:
    case_id = f"C-{uuid.uuid4().hex[:10]}"
    asked = Asked("report", "k", "the report")
    [first] = await world.path.open([Opening([reported(case_id)], asked)])
    [again] = await world.path.open([Opening([reported(case_id)], asked)])
    assert again == first
    fresh = f"C-{uuid.uuid4().hex[:10]}"
    with pytest.raises(Refused) as reused:
        await world.path.open(
            [
                Opening([reported(fresh)], Asked("report", "k2", "new")),
                Opening([reported(case_id)], Asked("report", "k", "another report")),
            ]
        )
    assert reused.value.code == "idempotency_key_reused"
    assert await world.heads.load(fresh) is None  # refused before anything was claimed


async def test_a_reaction_to_an_event_the_case_went_past_decides_nothing(world: World) -> None:
    case_id = f"C-{uuid.uuid4().hex[:10]}"
    await world.path.open([Opening([reported(case_id), filed(case_id)], Asked("t", None, "x"))])
    filing = filed(case_id)
    # The command centre dispatched it by hand before the reaction to the filing came.
    await world.path.act(case_id, Asked("dispatch", None, "by hand"), decided(dispatched))

    def react(case: CaseView, now: datetime) -> list[EventData]:
        return [dispatched(case)] if case.version == filing.version else []

    missing = await world.path.react(
        [Reaction(case_id, Envelope(filing, "/t").id, react), Reaction("C-none", "e", react)]
    )
    assert missing == ["C-none"]
    head = await world.heads.load(case_id)
    assert head is not None and head.view.version == 3  # the reaction claimed nothing


async def test_claims_of_several_cases_in_one_write_say_which_stood(world: World) -> None:
    first, second = await world.dispatched_case(), await world.dispatched_case()
    heads = await world.heads.load_many([first, second])
    # `second` moves on before the claims of both, decided on what was loaded, are written.
    await world.path.act(second, Asked("return", None, "r"), decided(returned))
    claims = [
        world.path.reaction_claim(
            heads[case], [returned(heads[case].view)], f"cause-{case}", datetime.now(UTC)
        )
        for case in (first, second)
    ]
    assert await world.heads.claim_many(claims) == [True, False]
    stood = await world.heads.load(first)
    assert stood is not None and (stood.rev, stood.view.state) == (claims[0].rev, "returned")


async def test_a_parked_case_s_head_keeps_when_it_was_parked(world: World) -> None:
    """Issue 19: a resumption moves the deadline by the time the case was parked, decided on
    its head, which therefore keeps when the parking was claimed (as its event says)."""
    case_id = await world.dispatched_case()

    def parked(case: CaseView) -> EventData:
        next_state(case.state, "parked")
        actor = Actor(role=Role.command_centre, id="cc")
        return CaseParked(case_id=case.case_id, version=case.version + 1, actor=actor)

    await world.path.act(case_id, Asked("park", None, "p"), decided(parked))
    head = await world.heads.load(case_id)
    assert head is not None and head.view.parked_at is not None
    [*_, event] = await world.published(case_id, 4)
    assert isinstance(event.data, CaseParked)
    assert abs(head.view.parked_at - event.time) < timedelta(milliseconds=1)  # MongoDB: ms


async def test_a_decision_s_events_are_stamped_with_the_instant_it_was_given(
    world: World,
) -> None:
    """A deadline reckoned "from now" must start when its event says it happened: a command
    and a reaction each decide at the instant the path gives them, and their events carry
    exactly that instant, however far the clock has moved by the claim."""
    ticks = iter(datetime(2026, 3, 2, 9, tzinfo=UTC) + timedelta(seconds=i) for i in range(99))
    path = CommandPath(world.heads, world.path.publisher, "/tests", lambda: next(ticks))
    case_id = f"C-{uuid.uuid4().hex[:10]}"
    await path.open([Opening([reported(case_id), filed(case_id)], Asked("t", None, "x"))])
    given: list[datetime] = []

    def react(case: CaseView, now: datetime) -> list[EventData]:
        given.append(now)
        return [dispatched(case)] if case.version == 2 else []

    async def handle(case: CaseView, now: datetime) -> list[EventData]:
        given.append(now)
        return [handled("swept")(case)]

    assert await path.react([Reaction(case_id, Envelope(filed(case_id), "/t").id, react)]) == []
    await path.act(case_id, Asked("handled", None, "h"), handle)
    [*_, dispatch, handling] = await world.published(case_id, 4)
    assert (dispatch.time, handling.time) == tuple(given)
