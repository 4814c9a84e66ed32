"""The whole report: read and compute (async, the database), then render the files (sync),
calling `progress` as each step starts."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from pymongo.asynchronous.database import AsyncDatabase

from gridloop.citypack import CityPack
from gridloop.mongo import Document
from services.evaluation.report.collect import (
    Scores,
    last_month,
    leagues,
    month_cases,
    open_disputes,
    visit_findings,
)
from services.evaluation.report.csv import write_csv
from services.evaluation.report.html import write_html
from services.evaluation.report.model import Month, Period, Report, build
from services.evaluation.report.pdf import write_pdf

STEPS = ("reading cases", "reading scores", "computing", "HTML", "PDF", "CSV")
Progress = Callable[[str], None]


def _quiet(step: str) -> None:
    pass


async def gather(
    db: AsyncDatabase[Document],
    scores: Scores,
    pack: CityPack,
    period: Period,
    as_of: datetime,
    progress: Progress = _quiet,
) -> Report:
    progress(STEPS[0])
    cases = await month_cases(db, period)
    progress(STEPS[1])
    departments, streets = await leagues(scores, period)
    before = Month(*await last_month(db, scores, period))
    disputes, visits = await open_disputes(db), await visit_findings(db, period)
    progress(STEPS[2])
    return build(cases, departments, streets, pack, period, as_of, before, disputes, visits)


def render(report: Report, pack: CityPack, out: Path, progress: Progress = _quiet) -> list[Path]:
    """report.html, report.pdf and one CSV a table, in `out` (made if missing)."""
    out.mkdir(parents=True, exist_ok=True)
    progress(STEPS[3])
    files = [write_html(report, pack, out)]
    progress(STEPS[4])
    files.append(write_pdf(report, pack, out))
    progress(STEPS[5])
    return files + write_csv(report, out)
