"""The `cases` projection on a real MongoDB-protocol server: idempotent, order-tolerant."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from pymongo import AsyncMongoClient, monitoring

from gridloop.mongo import Document
from schemas.envelope import Envelope
from schemas.events import CaseDispatched, CaseFiled, CaseReported, SlaBreach
from services.projections.store import CaseStore
from tests.conftest import Servers
from tests.samples import TIME, sample_of


@pytest.fixture
async def store(servers: Servers) -> AsyncIterator[CaseStore]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    yield CaseStore(client[f"test_{uuid.uuid4().hex[:12]}"])
    await client.close()


def envelopes(case_id: str) -> list[Envelope]:
    return [
        Envelope(sample_of(CaseReported, case_id=case_id, version=1), "/t", TIME),
        Envelope(
            sample_of(CaseFiled, case_id=case_id, version=2), "/t", TIME + timedelta(seconds=1)
        ),
        Envelope(
            sample_of(CaseDispatched, case_id=case_id, version=3), "/t", TIME + timedelta(seconds=2)
        ),
    ]


async def test_events_out_of_order_and_repeated_give_one_ordered_timeline(
    store: CaseStore,
) -> None:
    reported, filed, dispatched = envelopes("case-1")
    for env in (dispatched, reported, dispatched, filed, reported):
        await store.apply(env)
    doc = await store.get("case-1")
    assert doc is not None
    assert [e["type"] for e in doc["timeline"]] == ["reported", "filed", "dispatched"]
    assert doc["state"] == "dispatched" and doc["version"] == 3
    assert doc["class_code"] == reported.data.class_code  # type: ignore[attr-defined]
    assert doc["department"] == dispatched.data.department  # type: ignore[attr-defined]


async def test_a_duplicate_is_reported_and_changes_nothing(store: CaseStore) -> None:
    reported, filed, _ = envelopes("case-2")
    assert await store.apply(reported) is True
    assert await store.apply(filed) is True
    before = await store.get("case-2")
    assert await store.apply(reported) is False
    assert await store.get("case-2") == before


async def test_a_breach_turns_the_handling_light_red(store: CaseStore) -> None:
    _, _, dispatched = envelopes("case-3")
    await store.apply(dispatched)
    breach = sample_of(SlaBreach, case_id="case-3", case_version=3)
    await store.apply(Envelope(breach, "/t", TIME + timedelta(hours=5)))
    doc = await store.get("case-3")
    assert doc is not None
    assert doc["sla"]["handle"]["light"] == "red"
    assert doc["state"] == "dispatched"  # an SLA fact does not move the case
    assert doc["timeline"][-1]["type"] == "gridloop.sla.breach"


async def test_a_document_without_a_lifecycle_event_is_not_yet_a_case(store: CaseStore) -> None:
    breach = sample_of(SlaBreach, case_id="case-4", case_version=3)
    assert await store.apply(Envelope(breach, "/t", TIME)) is True
    assert await store.get("case-4") is None


async def test_a_poll_applied_in_one_bulk_makes_the_same_case(store: CaseStore) -> None:
    """`apply_many` (a poll at once) against `apply` (one event at a time) on the same
    out-of-order, repeated events: duplicates inside the bulk and before it."""
    reported, filed, dispatched = envelopes("case-5")
    late = TIME + timedelta(hours=5)
    breach = Envelope(sample_of(SlaBreach, case_id="case-5", case_version=3), "/t", late)
    in_order = envelopes("case-6")  # each new and the newest: one write each
    polled = [dispatched, reported, in_order[0], dispatched, breach, filed, *in_order[1:]]
    polled.append(reported)
    one_by_one = CaseStore(store.cases.database.client[f"{store.cases.database.name}_one"])
    await store.apply(reported)  # delivered before: a duplicate at the bulk's second write
    await one_by_one.apply(reported)
    await store.apply_many(polled)
    for env in polled:
        await one_by_one.apply(env)
    six = await store.get("case-6")
    assert six is not None and six["state"] == "dispatched"
    assert six == await one_by_one.get("case-6")
    doc, expected = await store.get("case-5"), await one_by_one.get("case-5")
    assert doc is not None and doc == expected
    assert [e["type"] for e in doc["timeline"]] == [
        "reported",
        "filed",
        "dispatched",
        "gridloop.sla.breach",
    ]
    assert doc["state"] == "dispatched" and doc["sla"]["handle"]["light"] == "red"
    await store.apply_many(polled)  # redelivered whole: nothing changes
    assert await store.get("case-5") == expected


class Writes(monitoring.CommandListener):
    """How many documents each `update` command wrote to (its statements)."""

    def __init__(self) -> None:
        self.statements: list[int] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name == "update":
            self.statements.append(len(event.command["updates"]))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.mark.parametrize("stored_first", [0, 1, 2])
async def test_a_case_s_events_one_after_another_in_a_poll_are_one_write(
    servers: Servers, stored_first: int
) -> None:
    """A report, its filing and its dispatch, new and in a row: one statement for the three
    (each rewrite of a case costs every index again). Some of them stored before: the
    guard fails and they are written one by one, to the same case."""
    writes = Writes()
    client: AsyncMongoClient[Document] = AsyncMongoClient(
        servers.mongodb, tz_aware=True, event_listeners=[writes]
    )
    try:
        db = client[f"test_{uuid.uuid4().hex[:12]}"]
        store, one_by_one = CaseStore(db), CaseStore(db.client[f"{db.name}_one"])
        events = envelopes("case-7")
        for env in events[:stored_first]:
            await store.apply(env)
        writes.statements.clear()
        await store.apply_many(events)
        if not stored_first:
            assert writes.statements == [1]
        for env in events:
            await one_by_one.apply(env)
        doc = await store.get("case-7")
        assert doc is not None and doc == await one_by_one.get("case-7")
        assert [e["type"] for e in doc["timeline"]] == ["reported", "filed", "dispatched"]
        await client.drop_database(db.name)
        await client.drop_database(f"{db.name}_one")
    finally:
        await client.close()
