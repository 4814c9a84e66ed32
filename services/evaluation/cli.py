"""`gridloop scores …`: league tables, the cases behind a figure, and a rebuild from Kafka.
Reads the database the evaluation service writes (heavy imports wait for the command), of
the system `gridloop.running` finds (from any directory; `--data-dir` to choose)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic_core import to_jsonable_python
from rich.console import Console
from rich.table import Table

from gridloop import running
from gridloop.config import Settings
from gridloop.scoring import BadPeriod, Indicator, Level, Score, period_kind

scores_app = typer.Typer(help="Evaluation: scores of departments, streets, grids, supervisors.")
DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        file_okay=False,
        help="The data directory of the `gridloop up` to read (default: GRIDLOOP_DATA_DIR; "
        "else MONGODB_URI; else the running one)",
        show_default=False,
    ),
]
AsJson = Annotated[bool, typer.Option("--json", help="Print one JSON document")]


@contextlib.contextmanager
def _system(data_dir: Path | None) -> Iterator[Settings]:
    """The system's settings; when it is not there, one line and exit code 1."""
    try:
        settings = running.locate(data_dir)
        with running.reaching(settings):
            yield settings
    except running.Unavailable as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


def _emit(document: Any) -> None:
    typer.echo(json.dumps(to_jsonable_python(document), ensure_ascii=False, indent=2))


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


def _counted(score: Score, indicator: Indicator) -> bool:
    ratio = score.indicators.get(indicator)
    return ratio is not None and ratio.denominator > 0


def league_table(level: Level, period: str, scores: list[Score]) -> Table:
    # Indicators nobody was rated on (no case counted, e.g. no callback yet) take no column.
    shown = [i for i in Indicator if any(_counted(s, i) for s in scores)]
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


async def _league(settings: Settings, level: Level, period: str) -> list[Score]:
    from gridloop.citypack import load_city_pack
    from gridloop.mongo import connect, database
    from gridloop.scoring import ON_READ
    from services.evaluation.store import ScoreStore

    # The grid's people are scored as read, by the pack's weights, time zone and names.
    pack = load_city_pack(settings.city_pack) if level in ON_READ else None
    client = connect(settings)
    try:
        return await ScoreStore(database(client, settings), pack).league(level, period)
    finally:
        await client.close()


async def _cases(
    settings: Settings, level: Level, entity: str, period: str, indicator: Indicator
) -> tuple[list[str], list[str]]:
    from gridloop.citypack import load_city_pack
    from gridloop.mongo import connect, database
    from services.evaluation.store import ScoreStore

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
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """The league table of a level over a period, best first."""
    period = _period(period, "--period")
    with _system(data_dir) as settings:
        scores = asyncio.run(_league(settings, level, period))
    if as_json:
        _emit([score.model_dump(mode="json") for score in scores])
        return
    console = _console()
    if not scores:
        console.print(f"no {level.value} scored over {period}")
        return
    console.print(league_table(level, period, scores))


def ranking_table(level: Level, period: str, rows: list[Any]) -> Table:
    table = Table(title=f"hotline ranking of {level.value}s, {period} (12345 接诉即办)")
    for column in ("#", "code", "name", "composite", "callbacks"):
        table.add_column(column, justify="left" if column in ("code", "name") else "right")
    for column in ("response", "resolution", "satisfaction"):
        table.add_column(column, justify="right")
    for row in rows:
        rates = [
            _percent(getattr(row, r).value) for r in ("response", "resolution", "satisfaction")
        ]
        table.add_row(
            str(row.rank), row.entity, row.name, f"{row.hotline:.2f}", str(row.callbacks), *rates
        )
    return table


@scores_app.command("rank")
def rank(
    level: Annotated[Level, typer.Option(help="street, department or district")],
    period: Annotated[str, typer.Option(help="2026-11-29, 2026-W48 or 2026-11")],
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """The hotline's ranking (12345 排名) by the composite of the three callback rates."""
    from services.evaluation.hotline import RANKED, ranking

    if level not in RANKED:
        ranked = ", ".join(r.value for r in RANKED)
        raise typer.BadParameter(f"the hotline ranks {ranked}", param_hint="--level")
    period = _period(period, "--period")
    with _system(data_dir) as settings:
        rows = ranking(asyncio.run(_league(settings, level, period)))
    if as_json:
        _emit([row.model_dump(mode="json") for row in rows])
        return
    console = _console()
    if not rows:
        console.print(f"no {level.value} with a valid callback over {period}")
        return
    console.print(ranking_table(level, period, rows))


@scores_app.command("explain")
def explain(
    level: Level,
    entity: str,
    period: str,
    indicator: Indicator,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """The cases one figure counted: the numerator's, then the denominator's."""
    period = _period(period, "PERIOD")
    with _system(data_dir) as settings:
        numerator, denominator = asyncio.run(_cases(settings, level, entity, period, indicator))
    if as_json:
        figure = {"level": level, "entity": entity, "period": period, "indicator": indicator}
        _emit({**figure, "numerator": numerator, "denominator": denominator})
        return
    console = _console()
    console.print(
        f"{indicator.value} of {level.value} {entity} over {period}: "
        f"{len(numerator)} / {len(denominator)}"
    )
    console.print("numerator:   " + (" ".join(numerator) or "(none)"), soft_wrap=True)
    console.print("denominator: " + (" ".join(denominator) or "(none)"), soft_wrap=True)


@scores_app.command("rebuild")
def rebuild(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Drop the evaluation collections and rebuild them by replaying every lifecycle topic
    (stop the evaluation service first; it resumes from its own offsets afterwards)."""
    from services.evaluation.main import rebuild as run_rebuild

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    with _system(data_dir) as settings:
        applied, skipped = asyncio.run(run_rebuild(settings))
    if as_json:
        _emit({"applied": applied, "skipped": skipped})
        return
    console = _console()
    console.print(f"rebuilt the scores from {applied} event(s); skipped {skipped} poison record(s)")
