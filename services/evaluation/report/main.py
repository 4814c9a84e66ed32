"""`gridloop report`: the settings, the database and the scores, with progress on screen."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from gridloop.citypack import CityPack
from gridloop.config import Settings
from gridloop.mongo import connect, database
from schemas import clock
from services.evaluation.report.model import Period, Report
from services.evaluation.report.run import STEPS, gather, render
from services.evaluation.report.run import Progress as Step
from services.evaluation.store import ScoreStore


async def _read(
    settings: Settings, pack: CityPack, period: Period, as_of: datetime, step: Step
) -> Report:
    client = connect(settings)
    try:
        db = database(client, settings)
        return await gather(db, ScoreStore(db, pack), pack, period, as_of, step)
    finally:
        await client.close()


def run_report(
    settings: Settings,
    pack: CityPack,
    period: Period,
    out: Path,
    console: Console,
    as_of: datetime | None = None,
) -> list[Path]:
    """Write the report of `period` as of `as_of` (default: now on the domain clock; a
    simulation passes its own system's simulated time)."""
    columns = (TextColumn("{task.description:<14}"), BarColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("starting", total=len(STEPS))

        def step(name: str) -> None:
            progress.update(task, description=name, completed=STEPS.index(name))

        report = asyncio.run(_read(settings, pack, period, as_of or clock.now(), step))
        files = render(report, pack, out, step)
        progress.update(task, description="done", completed=len(STEPS))
    console.print(
        f"[green]wrote[/] {out}: {report.cases} case(s) reported in {period.label}, "
        f"{len(report.departments)} department(s) and {len(report.streets)} street(s) scored",
        soft_wrap=True,
    )
    for path in files:
        console.print(f"  {path.name}", soft_wrap=True, markup=False, highlight=False)
    return files
