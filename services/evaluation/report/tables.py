"""The report's tables, as rows of plain values: one shape for HTML, PDF and CSV."""

from __future__ import annotations

from dataclasses import dataclass

from gridloop.scoring import Ratio
from services.evaluation.report.model import LeagueRow, Report

Cell = str | int | float | None


@dataclass(frozen=True)
class Table:
    slug: str  # the CSV file's name: <slug>.csv
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _ratio(ratio: Ratio | None) -> tuple[Cell, Cell, str]:
    if ratio is None:
        return None, None, percent(None)
    return ratio.numerator, ratio.denominator, percent(ratio.value)


def _league(slug: str, title: str, rows: list[LeagueRow]) -> Table:
    return Table(
        slug,
        title,
        ("rank", "code", "name", "cases", "score", "grade", "on-time handling", "closure"),
        [
            (
                r.rank,
                r.code,
                r.name,
                r.cases,
                None if r.score is None else round(r.score, 1),
                r.grade,
                percent(r.on_time_handling),
                percent(r.closure),
            )
            for r in rows
        ],
    )


def hotline_table(report: Report) -> Table:
    """The hotline's rankings of the month: streets, then departments (12345 三率)."""
    return Table(
        "hotline_ranking",
        "Hotline ranking 12345 三率 (callbacks 回访)",
        (
            "level",
            "rank",
            "code",
            "name",
            "callbacks",
            "response",
            "resolution",
            "satisfaction",
            "composite",
        ),
        [
            (
                level,
                r.rank,
                r.entity,
                r.name,
                r.callbacks,
                percent(r.response.value),
                percent(r.resolution.value),
                percent(r.satisfaction.value),
                round(r.hotline, 1),
            )
            for level, rows in report.hotline.items()
            for r in rows
        ],
    )


def tables(report: Report) -> list[Table]:
    head = ("code", "name", "cases", "closed")
    return [
        Table(
            "volumes_by_class",
            "Volumes by class",
            head,
            [(v.code, v.name, v.cases, v.closed) for v in report.by_class],
        ),
        Table(
            "volumes_by_street",
            "Volumes by street",
            head,
            [(v.code, v.name, v.cases, v.closed) for v in report.by_street],
        ),
        Table(
            "grid_density",
            "Case density by grid",
            ("grid", "name", "cases", "area km²", "cases per km²"),
            [
                (g.code, g.name, g.cases, round(g.area_km2, 4), round(g.per_km2, 1))
                for g in sorted(report.grids, key=lambda g: (-g.per_km2, g.code))
            ],
        ),
        Table(
            "hotspots",
            "Hotspots (squares of about 100 m)",
            ("lon", "lat", "grid", "cases", "most reported class"),
            [(h.lon, h.lat, h.grid_code, h.cases, h.top_class) for h in report.hotspots],
        ),
        Table(
            "repeated_components",
            "Components that failed repeatedly",
            ("component", "name", "class", "grid", "cases", "case ids"),
            [
                (
                    r.component_id,
                    r.name,
                    r.class_code,
                    r.grid_code,
                    len(r.case_ids),
                    " ".join(r.case_ids),
                )
                for r in report.repeated
            ],
        ),
        Table(
            "on_time",
            "On time by department (from the scores)",
            (
                "department",
                "name",
                "handled on time",
                "due",
                "rate",
                "closed on time",
                "due to close",
                "rate",
            ),
            [(o.code, o.name, *_ratio(o.handling), *_ratio(o.closure)) for o in report.on_time],
        ),
        _league("league_departments", "League of departments", report.departments),
        _league("league_streets", "League of streets", report.streets),
        Table(
            "longest_overdue",
            "Longest-overdue cases",
            ("case", "class", "street", "department", "deadline", "hours over", "still open"),
            [
                (
                    o.case_id,
                    o.class_key,
                    o.street,
                    o.department,
                    o.deadline.astimezone(report.period.start.tzinfo).isoformat(timespec="minutes"),
                    o.hours_over,
                    "yes" if o.still_open else "no",
                )
                for o in report.overdue
            ],
        ),
        hotline_table(report),
    ]
