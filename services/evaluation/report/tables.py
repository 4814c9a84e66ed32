"""The report's tables, as rows of plain values: one shape for HTML, PDF and CSV.

`tables` are the full tables, one CSV each; `sections` is what the report itself shows, a
few pages: the short tables, the charts they go with, and where the full tables are.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, tzinfo

from gridloop.scoring import Indicator, Ratio
from services.evaluation.report.demand import Demand
from services.evaluation.report.model import Change, LeagueRow, RatesRow, Report

Cell = str | int | float | None
SHOWN = 15  # rows of a long table the report shows; the CSV has them all


@dataclass(frozen=True)
class Table:
    slug: str  # the CSV file's name: <slug>.csv
    title: str
    headers: tuple[str, ...]
    rows: list[tuple[Cell, ...]]


@dataclass(frozen=True)
class Section:
    """A part of the report: a title, a line on what it shows, its charts and tables."""

    slug: str
    title: str
    note: str
    charts: tuple[str, ...] = ()  # keys of charts.CHARTS
    tables: tuple[Table, ...] = ()


def percent(value: float | None) -> str:
    return "–" if value is None else f"{value:.1%}"


def _ratio(ratio: Ratio | None) -> tuple[Cell, Cell, str]:
    if ratio is None:
        return None, None, percent(None)
    return ratio.numerator, ratio.denominator, percent(ratio.value)


def _minutes(at: datetime, zone: tzinfo | None) -> str:
    return at.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def change_cells(c: Change) -> tuple[str, str, str]:
    """This month, last month and the change, as the report prints them."""
    if c.rate:
        this, last = percent(c.this), percent(c.last)
        change = "–" if c.change is None else f"{100 * c.change:+.1f} pp"
    else:
        this, last = (("–" if v is None else f"{v:g}") for v in (c.this, c.last))
        change = "–" if c.change is None else f"{c.change:+g}"
    return this, last, change


def _summary(report: Report) -> Table:
    last = report.last_period.label if report.last_period else "last month"
    return Table(
        "summary",
        "The month against the month before",
        ("figure", report.period.label, last, "change"),
        [(c.name, *change_cells(c)) for c in report.summary],
    )


def _league(slug: str, title: str, rows: list[LeagueRow], named: str = "name") -> Table:
    return Table(
        slug,
        title,
        ("rank", "code", named, "cases", "score", "grade", "on-time handling", "closure"),
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


def _three_rates(rows: list[RatesRow]) -> Table:
    shown = sorted({i for r in rows for i in r.rates}, key=list(Indicator).index)
    return Table(
        "three_rates",
        "The three rates (三率)",
        ("level", "code", "name", *(i.value for i in shown)),
        [
            (r.level, r.code, r.name, *(percent(_value(r.rates.get(i))) for i in shown))
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


def _value(ratio: Ratio | None) -> float | None:
    return ratio.value if ratio else None


def tables(report: Report) -> list[Table]:
    """Every table in full: the CSV files."""
    zone = report.period.start.tzinfo
    head = ("code", "name", "cases", "closed")
    return [
        _summary(report),
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
            (
                "street",
                "community",
                "grid",
                "most reported class",
                "cases",
                "lon",
                "lat",
                "grid code",
                "class code",
            ),
            [
                (
                    h.street,
                    h.community,
                    h.grid_name,
                    h.class_name,
                    h.cases,
                    h.lon,
                    h.lat,
                    h.grid_code,
                    h.top_class,
                )
                for h in report.hotspots
            ],
        ),
        Table(
            "repeated_places",
            "Problems repeated at one place",
            (
                "class",
                "street",
                "community",
                "reports",
                "still open",
                "first",
                "last",
                "within m",
                "lon",
                "lat",
                "cases",
            ),
            [
                (
                    p.class_name,
                    p.street,
                    p.community,
                    len(p.case_ids),
                    p.still_open,
                    _minutes(p.first, zone),
                    _minutes(p.last, zone),
                    round(p.radius_m),
                    p.lon,
                    p.lat,
                    " ".join(p.case_ids),
                )
                for p in report.places
            ],
        ),
        Table(
            "repeated_components",
            "Components that failed repeatedly",
            ("name", "cases", "component", "class", "grid", "case ids"),
            [
                (
                    r.name,
                    len(r.case_ids),
                    r.component_id,
                    r.class_code,
                    r.grid_code,
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
                    o.class_name,
                    o.street_name,
                    o.department_name,
                    _minutes(o.deadline, zone),
                    o.hours_over,
                    "yes" if o.still_open else "no",
                )
                for o in report.overdue
            ],
        ),
        Table(
            "escalated",
            "Escalated cases",
            ("case", "class", "street", "department", "stage", "highest tier", "still open"),
            [
                (
                    e.case_id,
                    e.class_name,
                    e.street,
                    e.department,
                    e.stage,
                    e.tier,
                    "yes" if e.still_open else "no",
                )
                for e in report.escalated
            ],
        ),
        hotline_table(report),
        *_optional(report),
    ]


def _optional(report: Report) -> list[Table]:
    """The three rates and the demand analysis, when the month has them."""
    found = [_three_rates(report.three_rates)] if report.three_rates else []
    if report.demand:
        found += demand_tables(report.demand)
    return found


def _signed(value: int | None) -> str:
    return "–" if value is None else f"{value:+d}"


def demand_tables(demand: Demand) -> list[Table]:
    """民情分析 in full: what residents raised by type, the unresolved disputes, and what
    visits found."""
    change = ("this month", "last month", "change")
    return [
        Table(
            "demand_raised",
            "What residents raised (hotline, website)",
            ("by", "code", "name", *change),
            [(r.by, r.code, r.name, r.this, r.last, _signed(r.change)) for r in demand.raised],
        ),
        Table(
            "disputes_unresolved",
            "Disputes unresolved, where they sit (矛盾纠纷)",
            ("held by", "name", "open disputes", "oldest reported"),
            [
                (u.owner, u.name, u.disputes, u.oldest.date().isoformat() if u.oldest else None)
                for u in demand.disputes
            ],
        ),
        Table(
            "visit_findings",
            "What visits found (走访)",
            ("type", "name", *change),
            [(v.code, v.name, v.this, v.last, _signed(v.change)) for v in demand.visits],
        ),
    ]


def _short(table: Table, columns: int, top: int = SHOWN) -> Table:
    """The first `top` rows and `columns` columns of a table, for the report's pages."""
    rows = [row[:columns] for row in table.rows[:top]]
    return Table(table.slug, table.title, table.headers[:columns], rows)


def _more(table: Table, top: int = SHOWN) -> str:
    extra = len(table.rows) - top
    if extra <= 0:
        return ""
    return f" {table.title}: the first {top} of {len(table.rows)}, all in {table.slug}.csv."


def sections(report: Report) -> list[Section]:
    """What the report shows, in order; the three rates and the demand analysis only when
    there are some."""
    full = {t.slug: t for t in tables(report)}
    total = report.cases or 1
    classes = Table(
        "top_classes",
        "Top classes",
        ("class", "cases", "share", "closed"),
        [(v.name, v.cases, percent(v.cases / total), v.closed) for v in report.top_classes],
    )
    shown = [
        Section(
            "summary",
            "本月概况 The month",
            f"{report.cases} cases reported, {report.closed} closed or settled. The rates are "
            "the streets' scores summed (every case counts in one street); a change in rates "
            "is in percentage points (pp).",
            tables=(full["summary"],) if report.summary else (),
        ),
        Section(
            "league",
            "排名 The league",
            "Streets and departments ranked by their composite score of the month (equal "
            "scores share a rank).",
            tables=(
                _league("league_streets", "Streets", report.streets, "street"),
                _league("league_departments", "Departments", report.departments, "department"),
            ),
        ),
    ]
    if report.three_rates:
        shown.append(
            Section(
                "three_rates",
                "三率 The three rates",
                "Response, resolution and satisfaction from the callbacks to residents, and"
                " the hotline's ranking by their weighted composite."
                + _more(full["hotline_ranking"]),
                tables=(full["three_rates"], _short(full["hotline_ranking"], 9)),
            )
        )
    shown += [
        Section(
            "classes",
            "高发类别 Top classes",
            "The classes with the most cases; every class in volumes_by_class.csv.",
            charts=("classes",),
            tables=(classes,),
        ),
        Section(
            "hotspots",
            "热点 Hotspots",
            "Squares of about 100 m with 3 cases or more, and cases per km² of every grid."
            + _more(full["hotspots"]),
            charts=("density",),
            tables=(_short(full["hotspots"], 5),),
        ),
        Section(
            "repeated",
            "重复发生 Problems repeated at one place",
            "One class reported 3 times or more within its duplicate radius of one spot."
            + _more(full["repeated_places"]),
            tables=(
                _short(full["repeated_places"], 7),
                _short(full["repeated_components"], 3),
            ),
        ),
        Section(
            "overdue",
            "超期与升级 Overdue and escalated",
            f"{report.cases_overdue} cases handled after their deadline or still unhandled "
            f"past it, {report.cases_escalated} escalated up the ladder."
            + _more(full["longest_overdue"])
            + _more(full["escalated"]),
            tables=(_short(full["longest_overdue"], 7), _short(full["escalated"], 7)),
        ),
    ]
    if report.demand:
        shown.append(_demand_section(report.demand, full))
    return shown


def _demand_section(demand: Demand, full: dict[str, Table]) -> Section:
    """民情分析: the residents' reports by kind and channel, the top classes they raised,
    the unresolved disputes and the visits' findings."""
    raised = full["demand_raised"]  # by, code, name, this, last, change: names shown
    by_type = Table(
        "demand_by_type",
        "By kind and channel",
        (raised.headers[0], *raised.headers[2:]),
        [(row[0], *row[2:]) for row in raised.rows if row[0] != "class"],
    )
    classes = [row[2:] for row in raised.rows if row[0] == "class"]
    top = Table("demand_by_class", "Top classes raised", raised.headers[2:], classes[:10])
    before = "–" if demand.residents_last is None else str(demand.residents_last)
    note = (
        f"{demand.residents} reports raised by residents (hotline, website), {before} the "
        "month before; the disputes still open and the office that holds each; what the "
        "grid staff's visits found. Every row in demand_raised.csv."
    )
    tables = (by_type, top, full["disputes_unresolved"], full["visit_findings"])
    return Section("demand", "民情分析 Demand analysis", note, tables=tables)
