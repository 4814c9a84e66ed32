"""The `cases` indexes on a real MongoDB-protocol server: the queues of a mark few cases
carry (a request waiting, 督办, a dispute) are partial indexes, holding the marked cases
alone, and read by the desks' queries; an older database's full indexes of those fields are
replaced once."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.cases.reader import DISPUTES
from gridloop.mongo import Document, index_names
from schemas.envelope import Envelope
from schemas.events import CaseDispatched, CaseFiled, CaseReported
from services.projections.store import MARKED, CaseStore
from tests.conftest import Servers
from tests.helpers import held
from tests.samples import TIME, sample_of

FULL = ["_".join(f"{name}_1" for name in queue.replaces) for queue in MARKED]
NAMES = [queue.name for queue in MARKED]


@pytest.fixture
async def db(servers: Servers) -> AsyncIterator[AsyncDatabase[Document]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    yield client[f"test_{uuid.uuid4().hex[:12]}"]
    await client.close()


def dispatched(case_id: str, assisting: list[str]) -> list[Envelope]:
    at = [TIME + timedelta(seconds=s) for s in range(3)]
    return [
        Envelope(sample_of(CaseReported, case_id=case_id, version=1), "/t", at[0]),
        Envelope(sample_of(CaseFiled, case_id=case_id, version=2), "/t", at[1]),
        Envelope(
            sample_of(CaseDispatched, case_id=case_id, version=3, assisting=assisting), "/t", at[2]
        ),
    ]


def planned_indexes(plan: Any) -> set[str]:
    """Every `indexName` in an explain's plan, however its stages nest."""
    if isinstance(plan, dict):
        own = {plan["indexName"]} if "indexName" in plan else set()
        return own.union(*(planned_indexes(v) for v in plan.values()))
    if isinstance(plan, list):
        return set().union(*(planned_indexes(v) for v in plan))
    return set()


async def test_a_case_without_a_mark_is_in_no_marked_queue(db: AsyncDatabase[Document]) -> None:
    store = CaseStore(db)
    await store.create_indexes()
    await store.apply_many(dispatched("C-PLAIN", []) + dispatched("C-JOINT", ["D-WATER"]))
    await db["cases"].update_one({"_id": "C-JOINT"}, {"$set": {"urged": True}})  # 督办

    cases = db["cases"]
    assert await held(cases, "department_1_deadline_1") == ["C-JOINT", "C-PLAIN"]  # every case
    assert await held(cases, "updated_at_1_urged") == ["C-JOINT"]  # the urged one alone
    for name in NAMES:
        if name != "updated_at_1_urged":  # no request waits, no dispute
            assert await held(cases, name) == [], name
    names = await index_names(db["cases"])
    assert set(NAMES) <= names and not set(FULL) & names


@pytest.mark.parametrize(
    ("query", "sort", "index"),
    [  # as `CaseReader` asks: `with_pending_request`, `urged`, `of_tier_office`, `closed_by_office`
        ({"requested": True, "deadline": {"$lt": TIME}}, "deadline", "deadline_1_requested"),
        ({"requested": True, "deadline": {"$gte": TIME}}, "deadline", "deadline_1_requested"),
        ({"requested": True, "deadline": None}, "deadline", "deadline_1_requested"),
        ({"urged": True}, "updated_at", "updated_at_1_urged"),
        (
            DISPUTES | {"tier_office": "001002", "state": "reported"},
            "reported_at",
            "tier_office_1_state_1_reported_at_1_disputes",
        ),
        (
            DISPUTES | {"tier_office": "001002", "state": "closed"},
            "closed_at",
            "tier_office_1_state_1_reported_at_1_disputes",
        ),
        (
            DISPUTES | {"tiers_overdue": "001002"},
            "reported_at",
            "tiers_overdue_1_reported_at_1_disputes",
        ),
    ],
)
async def test_each_marked_queue_is_read_from_its_partial_index(
    db: AsyncDatabase[Document], query: Document, sort: str, index: str
) -> None:
    """The queries `CaseReader` makes of each marked queue imply the index's mark: the
    server reads the index, not every case."""
    await CaseStore(db).create_indexes()
    explained = await db.command(
        "explain", {"find": "cases", "filter": query, "sort": {sort: 1}}, verbosity="queryPlanner"
    )
    assert planned_indexes(explained["queryPlanner"]["winningPlan"]) == {index}


async def test_an_older_database_s_full_indexes_are_replaced_once(
    db: AsyncDatabase[Document],
) -> None:
    store = CaseStore(db)
    await store.apply_many(dispatched("C-JOINT", ["D-WATER"]))
    await db["cases"].update_one({"_id": "C-JOINT"}, {"$set": {"urged": True}})
    for queue in MARKED:
        await db["cases"].create_index([(name, ASCENDING) for name in queue.replaces])

    await store.create_indexes()
    names = await index_names(db["cases"])
    assert not set(FULL) & names and set(NAMES) <= names
    assert await store.mark_requested() == 0  # its sign is the marked queue's index now
    await store.create_indexes()  # again: nothing to replace, nothing refused
    assert await held(db["cases"], "updated_at_1_urged") == ["C-JOINT"]
