"""The duplicate search on a real MongoDB-protocol server, over cases as projections write
them: one query for many reports, each given the open cases of its own class, in its own
box and window; cases projected before they had cell keys are found too. The query reads
open cases only: ended ones, however many, neither cost it nor crowd out an open one."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from gridloop.auth import Principal, Role
from gridloop.cases.reader import CaseReader
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.mongo import Document
from gridloop.nearby import keys_around
from schemas.envelope import Envelope
from schemas.events import CaseReported, CaseVoided, EventData
from services.intake.duplicates import search_box
from services.intake.handlers import SOURCE
from services.intake.reporting import SYSTEM, decide_report
from services.intake.requests import ReportIn, report_of
from services.intake.search import DuplicateSearch
from services.projections.store import CaseStore
from tests.conftest import Servers
from tests.samples import sample

NOW = datetime.now(UTC)
SUPERVISOR = Principal(Role.supervisor, "sup-1")
CENTRE = (116.4015, 39.9205)  # grid 110101001001002
METRE = 1 / 85_280  # degrees of longitude, at this latitude


def _report(kind: str, code: str, east_m: float = 0, channel: str = "supervisor") -> ReportIn:
    point = {"lon": round(CENTRE[0] + east_m * METRE, 7), "lat": CENTRE[1]}
    body = {"channel": channel, "kind": kind, "class_code": code, "point": point}
    return ReportIn.model_validate(body | {"description": "巡查 patrol"})


class Cases:
    def __init__(self, store: CaseStore, pack: CityPack) -> None:
        self.store, self.pack = store, pack

    async def project(self, case_id: str, report: ReportIn, ago: timedelta = timedelta()) -> None:
        who = SUPERVISOR if report.channel.value == "supervisor" else Principal(Role.public, "x")
        events = decide_report(self.pack, report_of(report, case_id, who), NOW - ago, (), "N-1")
        envs = [Envelope(e, SOURCE, time=NOW - ago) for e in events]
        await self.store.apply_many(envs)

    async def then(self, case_id: str, ce_type: str, version: int, **fields: Any) -> None:
        """A later event of the case (the projection takes it as the newest version)."""
        data: EventData = sample(ce_type, case_id=case_id, version=version, **fields)
        await self.store.apply_many([Envelope(data, SOURCE, time=NOW)])

    def reported(self, report: ReportIn) -> CaseReported:
        command = report_of(report, f"R-{uuid.uuid4()}", SUPERVISOR)
        first = decide_report(self.pack, command, NOW)[0]
        assert isinstance(first, CaseReported)
        return first


@pytest.fixture
async def cases(servers: Servers) -> AsyncIterator[Cases]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    try:
        yield Cases(
            CaseStore(client[f"test_{uuid.uuid4().hex[:12]}"]), load_city_pack(DEMO_CITY_PACK)
        )
    finally:
        await client.close()


async def _world(cases: Cases) -> None:
    # Projected before cases had cell keys: it must be found all the same.
    await cases.project("before-index", _report("event", "0505", east_m=10))
    no_keys = {"$unset": {"near": "", "open_near": ""}}
    await cases.store.cases.update_one({"_id": "before-index"}, no_keys)
    await cases.store.create_indexes()
    await cases.store.create_indexes()  # again: a restart, or intake as well as projections
    await cases.project("near", _report("event", "0505", east_m=-30))
    await cases.project("far", _report("event", "0505", east_m=400))
    await cases.project("old", _report("event", "0505", east_m=5), ago=timedelta(days=4))
    await cases.project("other-class", _report("event", "0102"))
    await cases.project("other-kind", _report("component", "0101"))
    await cases.project("voided", _report("event", "0505", channel="website"))
    voided = CaseVoided(case_id="voided", version=2, actor=SYSTEM, reason="refuted")
    await cases.store.apply_many([Envelope(voided, SOURCE)])


def _ids(found: list[Any]) -> set[str]:
    return {n.case_id for n in found}


async def test_one_query_gives_each_report_its_own_candidates(cases: Cases) -> None:
    await _world(cases)
    search = DuplicateSearch(
        CaseReader(cases.store.cases.database), cases.pack, lambda: NOW + timedelta(seconds=1)
    )
    reports = [
        cases.reported(_report("event", "0505")),
        cases.reported(_report("event", "0102")),
        cases.reported(_report("event", "0101")),  # the same code as a component class
        cases.reported(_report("event", "0505", east_m=400)),
    ]
    found = await search.many(reports)
    assert _ids(found[0]) == {"before-index", "near"}  # not far, old, voided, other classes
    assert _ids(found[1]) == {"other-class"}
    assert _ids(found[2]) == set()
    assert _ids(found[3]) == {"far"}


async def test_concurrent_reports_searched_together_find_what_each_would_alone(
    cases: Cases,
) -> None:
    await _world(cases)
    search = DuplicateSearch(
        CaseReader(cases.store.cases.database), cases.pack, lambda: NOW + timedelta(seconds=1)
    )
    reports = [cases.reported(_report("event", c)) for c in ("0505", "0102", "0505", "0401")]
    together = await asyncio.gather(*(search.nearby(r) for r in reports))
    alone = [await search.many([r]) for r in reports]
    assert [_ids(f) for f in together] == [_ids(f[0]) for f in alone]
    assert _ids(together[0]) == {"before-index", "near"}


def _search(cases: Cases) -> DuplicateSearch:
    reader = CaseReader(cases.store.cases.database)
    return DuplicateSearch(reader, cases.pack, lambda: NOW + timedelta(seconds=1))


def _keys(cases: Cases, report: ReportIn) -> list[str]:
    reported = cases.reported(report)
    box = search_box(reported.point, 30.0)
    return keys_around(reported.kind, reported.class_code, box)


async def test_the_query_reads_no_ended_case_however_many_share_the_cell(cases: Cases) -> None:
    await cases.store.create_indexes()
    report = _report("event", "0505", east_m=3)
    for n in range(3):  # a history of the same place: reported and closed, or voided
        await cases.project(f"closed-{n}", report)
        await cases.then(f"closed-{n}", "gridloop.case.closed", 7)
    citizens = _report("event", "0505", east_m=3, channel="website")  # reported alone: v1
    await cases.project("voided", citizens)
    await cases.then("voided", "gridloop.case.voided", 2)
    await cases.project("open", report)
    reader = CaseReader(cases.store.cases.database)
    # One case read: the open one, never crowded out by the ended ones before it.
    assert _ids(await reader.near(_keys(cases, report), limit=1)) == {"open"}
    assert _ids((await _search(cases).many([cases.reported(report)]))[0]) == {"open"}


async def test_a_reopened_case_is_a_duplicates_again(cases: Cases) -> None:
    await cases.store.create_indexes()
    report = _report("event", "0505", east_m=3)
    await cases.project("rated", report)
    await cases.then("rated", "gridloop.case.closed", 7)
    await cases.then("rated", "gridloop.case.feedback", 8, rating=1)
    await cases.project("merged", _report("event", "0505", east_m=3, channel="website"))
    await cases.then("merged", "gridloop.case.merged", 2, into_case_id="rated")
    reader = CaseReader(cases.store.cases.database)
    assert _ids(await reader.near(_keys(cases, report), limit=10)) == set()
    await cases.then("rated", "gridloop.case.rework", 9)  # the resident was dissatisfied
    await cases.then("merged", "gridloop.case.split", 3, from_case_id="rated")
    assert _ids(await reader.near(_keys(cases, report), limit=10)) == {"rated", "merged"}
    # A reopening read after a newer ending (topics are read in no order) leaves none.
    await cases.then("rated", "gridloop.case.closed", 11)
    await cases.then("rated", "gridloop.case.rework", 10)
    assert _ids(await reader.near(_keys(cases, report), limit=10)) == {"merged"}


async def test_cases_projected_with_every_cases_keys_are_given_open_ones_once(
    cases: Cases,
) -> None:
    """A database as projections left it before: every case's keys in `near`, indexed,
    none in `open_near`. At start the open cases get theirs, read by state (the history is
    not); the ended ones get none; then never again (the index is the sign)."""
    report = _report("event", "0505", east_m=3)
    await cases.project("open", report)
    await cases.project("closed", report)
    await cases.then("closed", "gridloop.case.closed", 7)
    collection = cases.store.cases
    await collection.update_many({}, {"$unset": {"open_near": ""}})
    await collection.create_index("near")
    assert await cases.store.open_near_keys() == 1
    reader = CaseReader(collection.database)
    assert _ids(await reader.near(_keys(cases, report), limit=10)) == {"open"}
    assert await cases.store.open_near_keys() == 0


async def test_a_report_read_after_its_cases_dispatch_is_found(cases: Cases) -> None:
    """Topics are read in no order: a projection that restarts may read a case's dispatch
    before its report. The open case is a duplicate's candidate all the same; one ended
    before its report was read is not."""
    await cases.store.create_indexes()
    report = _report("event", "0505", east_m=3)
    await cases.then("late", "gridloop.case.dispatched", 3)
    await cases.project("late", report)
    await cases.then("ended", "gridloop.case.closed", 7)
    await cases.project("ended", report)
    reader = CaseReader(cases.store.cases.database)
    assert _ids(await reader.near(_keys(cases, report), limit=10)) == {"late"}
    one_by_one = CaseStore(cases.store.cases.database)  # `apply`, the record-by-record path
    await cases.then("later", "gridloop.case.dispatched", 3)
    for env in _report_events(cases, "later", report):
        await one_by_one.apply(env)
    assert _ids(await reader.near(_keys(cases, report), limit=10)) == {"late", "later"}


def _report_events(cases: Cases, case_id: str, report: ReportIn) -> list[Envelope]:
    events = decide_report(cases.pack, report_of(report, case_id, SUPERVISOR), NOW, (), "N-2")
    return [Envelope(e, SOURCE, time=NOW) for e in events]
