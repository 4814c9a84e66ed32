"""`gridloop scores …`: league tables, the cases behind a figure, and a rebuild from Kafka.
Reads the database the evaluation service writes (heavy imports wait for the command)."""

from __future__ import annotations

import asyncio
import logging
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from gridloop.scoring import BadPeriod, Indicator, Level, Score, period_kind

scores_app = typer.Typer(help="Evaluation: scores of departments, streets, grids, supervisors.")


def _console() -> Console:
    # Made per command, so it measures the terminal (or COLUMNS) it prints to.
    return Console()


def _period(period: str, hint: str) -> str:
    try:
        period_kind(period)
    except BadPeriod as exc:
        raise typer.BadParameter(str(exc), param_hint=hint) from exc
    return period


def _percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}%"


def league_table(level: Level, period: str, scores: list[Score]) -> Table:
    shown = [i for i in Indicator if any(i in s.indicators for s in scores)]
    table = Table(title=f"{level.value} scores, {period}")
    for column in ("#", "code", "name", "cases", "score", "grade"):
        table.add_column(column, justify="right" if column in ("#", "cases", "score") else "left")
    for indicator in shown:
        table.add_column(indicator.value.replace("_", " "), justify="right")
    for n, s in enumerate(scores, 1):
        figures = [_percent(s.indicators[i].value) if i in s.indicators else "" for i in shown]
        score = "–" if s.score is None else f"{s.score:.2f}"
        table.add_row(str(n), s.entity, s.name, str(s.cases), score, s.grade or "–", *figures)
    return table


async def _league(level: Level, period: str) -> list[Score]:
    from gridloop.config import Settings
    from gridloop.mongo import connect, database
    from services.evaluation.store import ScoreStore

    settings = Settings()
    client = connect(settings)
    try:
        return await ScoreStore(database(client, settings)).league(level, period)
    finally:
        await client.close()


async def _cases(
    level: Level, entity: str, period: str, indicator: Indicator
) -> tuple[list[str], list[str]]:
    from gridloop.citypack import load_city_pack
    from gridloop.config import Settings
    from gridloop.mongo import connect, database
    from services.evaluation.store import ScoreStore

    settings = Settings()
    client = connect(settings)
    try:
        store = ScoreStore(database(client, settings), load_city_pack(settings.city_pack))
        counted, _ = await store.cases(level, entity, period, indicator)
        return counted.numerator, counted.denominator
    finally:
        await client.close()


@scores_app.command("show")
def show(
    level: Annotated[Level, typer.Option(help="Whom the scores rate")],
    period: Annotated[str, typer.Option(help="2026-11-29, 2026-W48 or 2026-11")],
) -> None:
    """The league table of a level over a period, best first."""
    scores = asyncio.run(_league(level, _period(period, "--period")))
    console = _console()
    if not scores:
        console.print(f"no {level.value} scored over {period}")
        return
    console.print(league_table(level, period, scores))


@scores_app.command("explain")
def explain(level: Level, entity: str, period: str, indicator: Indicator) -> None:
    """The cases one figure counted: the numerator's, then the denominator's."""
    found = asyncio.run(_cases(level, entity, _period(period, "PERIOD"), indicator))
    numerator, denominator = found
    console = _console()
    console.print(
        f"{indicator.value} of {level.value} {entity} over {period}: "
        f"{len(numerator)} / {len(denominator)}"
    )
    console.print("numerator:   " + (" ".join(numerator) or "(none)"), soft_wrap=True)
    console.print("denominator: " + (" ".join(denominator) or "(none)"), soft_wrap=True)


@scores_app.command("rebuild")
def rebuild() -> None:
    """Drop the evaluation collections and rebuild them by replaying every lifecycle topic
    (stop the evaluation service first; it resumes from its own offsets afterwards)."""
    from gridloop.config import Settings
    from services.evaluation.main import rebuild as run_rebuild

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    applied, skipped = asyncio.run(run_rebuild(Settings()))
    console = _console()
    console.print(f"rebuilt the scores from {applied} event(s); skipped {skipped} poison record(s)")
