"""The monthly report from a real MongoDB-protocol server: a simulated month of the demo
city applied by the projections' and evaluation's own stores, then read and rendered."""

from __future__ import annotations

import csv
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pypdfium2 as pdfium  # type: ignore[import-untyped]
import pytest_asyncio
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from bench.report_month import Month, load
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.mongo import Document
from gridloop.scoring import Level
from schemas.envelope import Envelope
from schemas.events import CaseReported
from services.evaluation.report.collect import visit_findings
from services.evaluation.report.model import Period, Report
from services.evaluation.report.run import gather, render
from services.evaluation.report.tables import sections, tables
from services.evaluation.store import ScoreStore
from services.projections.store import CaseStore
from tests.conftest import Servers
from tests.samples import sample_of

PACK: CityPack = load_city_pack(DEMO_CITY_PACK)
PERIOD = Period.parse("2026-11", PACK.city.timezone)
AS_OF = PERIOD.end + timedelta(days=2)
CASES = 24
LAST_MONTH = 12  # October's cases: the report compares the two months
MOST_PAGES = 12
CHINA = PERIOD.start.tzinfo


@dataclass
class Seeded:
    db: AsyncDatabase[Document]
    database: str


def edge(case_id: str, at: datetime) -> Envelope:
    """A report just either side of the month's start in the city's time."""
    data = sample_of(CaseReported, case_id=case_id, version=1, grid_code=PACK.grids[0].code)
    return Envelope(data, "/tests", at)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def month(servers: Servers) -> AsyncIterator[Seeded]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    name = f"test_{uuid.uuid4().hex[:12]}"
    db = client[name]
    before = Month(PACK, PERIOD.previous(), AS_OF, seed=8).events(LAST_MONTH)
    await load(db, PACK, before + Month(PACK, PERIOD, AS_OF, seed=7).events(CASES))
    october = datetime(2026, 10, 31, 23, 30, tzinfo=CHINA)  # 15:30 UTC: still October
    november = datetime(2026, 11, 1, 0, 30, tzinfo=CHINA)  # 16:30 UTC on 31 October
    for env in (edge("EDGE-OCT", october), edge("EDGE-NOV", november)):
        await CaseStore(db).apply(env)
    yield Seeded(db, name)
    await client.drop_database(name)
    await client.close()


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def report(month: Seeded) -> Report:
    return await gather(month.db, ScoreStore(month.db, PACK), PACK, PERIOD, AS_OF)


def rows(path: Path) -> list[list[str]]:
    with path.open(encoding="utf-8-sig", newline="") as f:
        return list(csv.reader(f))


async def test_the_month_is_the_city_s_month_and_every_case_of_it_counts(
    report: Report, month: Seeded
) -> None:
    assert report.cases == CASES + 1  # EDGE-NOV is November in Beijing, EDGE-OCT is not
    assert sum(v.cases for v in report.by_street) == report.cases
    stored = await month.db["cases"].count_documents({})
    assert stored == CASES + LAST_MONTH + 2
    summary = {c.name: c for c in report.summary}
    assert report.last_period == PERIOD.previous()
    # EDGE-OCT is October's in Beijing: the month before has its cases and that one.
    assert (summary["上报 cases reported"].this, summary["上报 cases reported"].last) == (
        CASES + 1,
        LAST_MONTH + 1,
    )


async def test_the_league_tables_are_the_scores_of_the_month(report: Report, month: Seeded) -> None:
    scored = await ScoreStore(month.db, PACK).league(Level.department, "2026-11")
    assert scored, "the evaluation store scored no department"
    assert [r.code for r in report.departments] == [s.entity for s in scored]
    assert all(r.grade for r in report.departments if r.score is not None)
    assert {r.code for r in report.streets} <= set(PACK.streets)


async def test_html_pdf_and_csv_files_hold_the_report(report: Report, tmp_path: Path) -> None:
    files = render(report, PACK, tmp_path / "out")
    shown = tables(report)
    assert {p.name for p in files} == {"report.html", "report.pdf"} | {
        f"{t.slug}.csv" for t in shown
    }
    html = (tmp_path / "out" / "report.html").read_text(encoding="utf-8")
    assert html.count("<svg") == 2  # the top classes, the density map
    for section in sections(report):
        assert f"<h2>{section.title}</h2>" in html
    for table in shown:
        assert f"{table.slug}.csv" in html  # the report says where the full tables are
        written = rows(tmp_path / "out" / f"{table.slug}.csv")
        assert tuple(written[0]) == table.headers
        assert len(written) == len(table.rows) + 1
    by_class = rows(tmp_path / "out" / "volumes_by_class.csv")[1:]
    assert sum(int(r[2]) for r in by_class) == report.cases
    pdf = (tmp_path / "out" / "report.pdf").read_bytes()
    assert pdf.startswith(b"%PDF")


def test_the_pdf_is_a_few_pages_that_name_classes_and_places(
    report: Report, tmp_path: Path
) -> None:
    """Issue 18: at most 12 pages, names not codes. Read back from the PDF itself: its
    pages drawn to PNG and its text."""
    render(report, PACK, tmp_path)
    document = pdfium.PdfDocument(tmp_path / "report.pdf")
    try:
        pages = len(document)
        text = "".join(document[i].get_textpage().get_text_range() for i in range(pages))
        picture = document[0].render(scale=1).to_pil()
    finally:
        document.close()
    assert 2 <= pages <= MOST_PAGES
    assert picture.size[0] > 500 and picture.getextrema() != ((255, 255),) * 3  # drawn, not blank
    assert report.top_classes, "the month has no classes to name"
    for volume in report.top_classes:
        assert volume.name in text  # "路灯 street lamp", not "C0118"
    assert not re.search(r"\b[CE]\d{4}\b", text), "a class shown by its code"
    for section in sections(report):
        assert section.title in text
    assert "volumes_by_class.csv" in text  # where the full tables are
    assert any(s.name in text for s in PACK.streets.values())


def gridloop(*args: str, database: str, servers: Servers) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "MONGODB_URI": servers.mongodb, "GRIDLOOP_MONGODB_DATABASE": database}
    return subprocess.run(
        [sys.executable, "-m", "system", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def test_the_command_writes_the_report_and_refuses_a_bad_period(
    month: Seeded, servers: Servers, tmp_path: Path
) -> None:
    done = gridloop(
        "report",
        "--period",
        "2026-11",
        "--out",
        str(tmp_path),
        database=month.database,
        servers=servers,
    )
    assert done.returncode == 0, done.stderr
    assert f"{CASES + 1} case(s) reported in 2026-11" in done.stdout
    assert (tmp_path / "report.pdf").read_bytes().startswith(b"%PDF")
    refused = gridloop("report", "--period", "2026-13", database=month.database, servers=servers)
    assert refused.returncode == 2
    assert "YYYY-MM" in refused.stderr


async def test_the_demand_analysis_counts_what_residents_raised(
    report: Report, month: Seeded, tmp_path: Path
) -> None:
    """民情分析 (issue 17): the residents' reports (hotline, website) of the month by kind,
    channel and class, beside October's, read back from the database and the PDF."""
    residents = {"channel": {"$in": ["hotline", "website"]}}
    november = {"reported_at": {"$gte": PERIOD.start, "$lt": PERIOD.end}} | residents
    october = {"reported_at": {"$gte": PERIOD.previous().start, "$lt": PERIOD.start}} | residents
    demand = report.demand
    assert demand.residents == await month.db["cases"].count_documents(november) > 0
    assert demand.residents_last == await month.db["cases"].count_documents(october)
    for by in ("kind", "channel", "class"):
        rows = [r for r in demand.raised if r.by == by]
        assert sum(r.this for r in rows) == demand.residents, by
        assert sum(r.last or 0 for r in rows) == demand.residents_last, by
    assert demand.disputes == []  # the month's loader reports no dispute
    render(report, PACK, tmp_path)
    document = pdfium.PdfDocument(tmp_path / "report.pdf")
    try:
        text = "".join(document[i].get_textpage().get_text_range() for i in range(len(document)))
    finally:
        document.close()
    assert "民情分析 Demand analysis" in text and "Top classes raised" in text


async def test_what_visits_found_is_counted_by_type_against_the_month_before(
    month: Seeded,
) -> None:
    """民情分析 (issue 17): the findings of the grid staff's visits (走访) in the month, by
    type, beside October's, as the grid service's visit log holds them."""
    visits = month.db.client[f"test_{uuid.uuid4().hex[:12]}"]  # a visit log of its own
    nov, octo = PERIOD.start + timedelta(days=3), PERIOD.start - timedelta(days=3)
    await visits["grid_visits"].insert_many(
        [
            {"_id": "v1", "grid": "g", "at": nov, "findings": [{"type": "need"}, {"type": "need"}]},
            {"_id": "v2", "grid": "g", "at": nov, "findings": [{"type": "dispute"}]},
            {"_id": "v3", "grid": "g", "at": octo, "findings": [{"type": "need"}]},
            {"_id": "v4", "grid": "g", "at": octo, "findings": [{"type": "sanitation"}]},
            {"_id": "v5", "grid": "g", "at": PERIOD.end, "findings": [{"type": "need"}]},
        ]
    )
    found = await visit_findings(visits, PERIOD)
    assert [(f.code, f.this, f.last, f.change) for f in found] == [
        ("need", 2, 1, 1),
        ("dispute", 1, 0, 1),
        ("sanitation", 0, 1, -1),
    ]
    assert found[0].name == "诉求 need"
    # A month before without a single finding shows no change against nothing recorded.
    october = Period.parse("2026-10", PACK.city.timezone)
    assert [(f.code, f.this, f.last) for f in await visit_findings(visits, october)] == [
        ("need", 1, None),
        ("sanitation", 1, None),
    ]
