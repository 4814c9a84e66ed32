"""Grafana dashboards, generated from code and committed under deploy/grafana/dashboards:

    python -m gridloop.dashboards deploy/grafana/dashboards

- SLA by department: on-time rate, open clocks by traffic light, warnings, breaches and
  escalations by tier, time to handle.
- Pipeline health: throughput, consumer lag, dead letters, handler retries.
- Webhook health: outcomes, latency, pending deliveries.
- Services (RED): each service's requests by route, errors and duration, and links from a
  case, a trace id or a route to its traces (`gridloop/reddashboard.py`).

Built with Grafana's own typed builders (grafana-foundation-sdk): the panel, query and
threshold shapes are Grafana's schema, checked by mypy, not dicts written by hand.
- Scores: the month's league of departments and streets coloured by grade, the grades,
  on-time handling and closure by department, the indicators, and the scores' backlog.

`tests/unit/test_dashboards.py` fails when the committed files differ from this code.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import (
    bargauge,
    dashboard,
    piechart,
    prometheus,
    stat,
    timeseries,
)
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    GridPos,
    Threshold,
    ThresholdsMode,
)

from gridloop.reddashboard import as_json, services

DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")
Panel = timeseries.Panel | bargauge.Panel | piechart.Panel | stat.Panel
KINDS: dict[str, type[Panel]] = {
    "timeseries": timeseries.Panel,
    "bargauge": bargauge.Panel,
    "piechart": piechart.Panel,
    "stat": stat.Panel,
}


def _panel(
    title: str, exprs: list[tuple[str, str]], kind: str = "timeseries", unit: str = "short"
) -> Panel:
    panel = KINDS[kind]().title(title).datasource(DATASOURCE).unit(unit)
    for n, (expr, legend) in enumerate(exprs):
        query = prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(chr(ord("A") + n))
        panel = panel.with_target(query)
    return panel


def _dashboard(uid: str, title: str, panels: list[Panel]) -> dict[str, Any]:
    board = (
        dashboard.Dashboard(title)
        .uid(uid)
        .tags(["gridloop"])
        .timezone("browser")
        .refresh("30s")
        .time("now-24h", "now")
    )
    for n, panel in enumerate(panels):
        place = GridPos(h=8, w=12, x=12 * (n % 2), y=8 * (n // 2))
        board = board.with_panel(panel.id(n + 1).grid_pos(place))
    return as_json(board)


def sla() -> dict[str, Any]:
    return _dashboard(
        "gridloop-sla",
        "gridloop · SLA by department",
        [
            _panel(
                "On-time rate by department (handled within the limit, 24 h)",
                [
                    (
                        'sum by (department) (increase(gridloop_sla_limit_used_ratio_bucket{stage="handle",le="1.0"}[1d]))'  # noqa: E501 (PromQL reads best on one line)
                        ' / sum by (department) (increase(gridloop_sla_limit_used_ratio_count{stage="handle"}[1d]))',  # noqa: E501 (PromQL reads best on one line)
                        "{{department}}",
                    )
                ],
                "bargauge",
                "percentunit",
            ),
            _panel(
                "Open now by light",
                [("sum by (light) (gridloop_sla_open_clocks)", "{{light}}")],
                "piechart",
            ),
            _panel(
                "Overdue now (red) by department and stage",
                [
                    (
                        'sum by (department, stage) (gridloop_sla_open_clocks{light="red"})',
                        "{{department}} {{stage}}",
                    )
                ],
                "bargauge",
            ),
            _panel(
                "Warnings and breaches per hour",
                [
                    (
                        "sum by (stage) (increase(gridloop_sla_warnings_total[1h]))",
                        "yellow {{stage}}",
                    ),
                    ("sum by (stage) (increase(gridloop_sla_breaches_total[1h]))", "red {{stage}}"),
                ],
            ),
            _panel(
                "Escalations per hour by tier",
                [("sum by (tier) (increase(gridloop_sla_escalations_total[1h]))", "{{tier}}")],
            ),
            _panel(
                "Time to handle, p50 and p90 (clock time)",
                [
                    (
                        'histogram_quantile(0.5, sum by (le) (rate(gridloop_sla_stage_seconds_bucket{stage="handle"}[1h])))',  # noqa: E501 (PromQL reads best on one line)
                        "p50",
                    ),
                    (
                        'histogram_quantile(0.9, sum by (le) (rate(gridloop_sla_stage_seconds_bucket{stage="handle"}[1h])))',  # noqa: E501 (PromQL reads best on one line)
                        "p90",
                    ),
                ],
                unit="s",
            ),
            _panel(
                "Deadline to breach event, p99",
                [
                    (
                        "histogram_quantile(0.99, sum by (le) (rate(gridloop_sla_breach_delay_seconds_bucket[5m])))",  # noqa: E501 (PromQL reads best on one line)
                        "p99",
                    )
                ],
                unit="s",
            ),
            _panel(
                "Cases on the clock (due-time index)",
                [("sum(gridloop_sla_due_index_size)", "cases")],
                "stat",
            ),
        ],
    )


def pipeline() -> dict[str, Any]:
    return _dashboard(
        "gridloop-pipeline",
        "gridloop · pipeline health",
        [
            _panel(
                "Records consumed per second",
                [("sum by (group) (rate(gridloop_records_consumed_total[5m]))", "{{group}}")],
                unit="ops",
            ),
            _panel(
                "Events produced per second",
                [("sum by (topic) (rate(gridloop_events_produced_total[5m]))", "{{topic}}")],
                unit="ops",
            ),
            _panel(
                "Consumer lag",
                [("sum by (group, topic) (gridloop_consumer_lag)", "{{group}} {{topic}}")],
            ),
            _panel(
                "Dead-lettered records (1 h)",
                [
                    (
                        "sum by (group, topic) (increase(gridloop_records_dead_lettered_total[1h]))",  # noqa: E501 (PromQL reads best on one line)
                        "{{group}} {{topic}}",
                    )
                ],
            ),
            _panel(
                "Handler retries per second",
                [("sum by (group) (rate(gridloop_handler_retries_total[5m]))", "{{group}}")],
            ),
            _panel(
                "Handle time p99",
                [
                    (
                        "histogram_quantile(0.99, sum by (le, group) (rate(gridloop_handle_seconds_bucket[5m])))",  # noqa: E501 (PromQL reads best on one line)
                        "{{group}}",
                    )
                ],
                unit="s",
            ),
            _panel("Services up", [('up{job=~"gridloop-.*"}', "{{job}}")], "stat"),
        ],
    )


def webhooks() -> dict[str, Any]:
    return _dashboard(
        "gridloop-webhooks",
        "gridloop · webhook health",
        [
            _panel(
                "Deliveries per second by outcome",
                [
                    (
                        "sum by (outcome) (rate(gridloop_webhook_deliveries_total[5m]))",
                        "{{outcome}}",
                    )
                ],
                unit="ops",
            ),
            _panel(
                "Failure share by department",
                [
                    (
                        'sum by (department) (rate(gridloop_webhook_deliveries_total{outcome!="delivered"}[10m]))'  # noqa: E501 (PromQL reads best on one line)
                        " / sum by (department) (rate(gridloop_webhook_deliveries_total[10m]))",
                        "{{department}}",
                    )
                ],
                unit="percentunit",
            ),
            _panel(
                "Attempt latency p95",
                [
                    (
                        "histogram_quantile(0.95, sum by (le, department) (rate(gridloop_webhook_attempt_seconds_bucket[5m])))",  # noqa: E501 (PromQL reads best on one line)
                        "{{department}}",
                    )
                ],
                unit="s",
            ),
            _panel(
                "Pending deliveries",
                [("sum by (department) (gridloop_webhook_pending)", "{{department}}")],
            ),
        ],
    )


# The default grade bands of evaluation.yaml (A ≥ 90, B ≥ 75, C ≥ 60, D ≥ 40, else E): a
# city pack with other bands colours by these all the same (the gauges carry no grade).
GRADES = (("A", 90, "green"), ("B", 75, "blue"), ("C", 60, "yellow"), ("D", 40, "orange"))


def _graded(panel: Panel) -> Panel:
    steps = [Threshold(value=None, color="red")]
    steps += [Threshold(value=floor, color=color) for _, floor, color in reversed(GRADES)]
    thresholds = dashboard.ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)
    return panel.min(0).max(100).thresholds(thresholds)


def _grade_counts(level: str) -> list[tuple[str, str]]:
    """How many entities of `level` have each grade this month (0 rather than no data)."""
    score = f'gridloop_evaluation_score{{level="{level}"}}'
    floors: list[int | None] = [floor for _, floor, _ in GRADES]
    found = []
    for grade, floor, ceiling in zip("ABCDE", [*floors, None], [None, *floors], strict=True):
        band = score + (f" >= {floor}" if floor is not None else "")
        band += f" < {ceiling}" if ceiling is not None else ""
        found.append((f"count({band}) or vector(0)", grade))
    return found


def scores() -> dict[str, Any]:
    ratio = "gridloop_evaluation_indicator_ratio"
    return _dashboard(
        "gridloop-scores",
        "gridloop · scores (综合评价) this month",
        [
            _graded(
                _panel(
                    "Departments: score this month, best first",
                    [('sort_desc(gridloop_evaluation_score{level="department"})', "{{entity}}")],
                    "bargauge",
                )
            ),
            _graded(
                _panel(
                    "Streets: score this month, best first",
                    [('sort_desc(gridloop_evaluation_score{level="street"})', "{{entity}}")],
                    "bargauge",
                )
            ),
            _panel("Departments by grade", _grade_counts("department"), "stat"),
            _panel("Streets by grade", _grade_counts("street"), "stat"),
            _panel(
                "On-time handling (按期处置率) by department",
                [
                    (
                        f'sort({ratio}{{level="department",indicator="on_time_handling"}})',
                        "{{entity}}",
                    )
                ],
                "bargauge",
                "percentunit",
            ),
            _panel(
                "On-time closure (按期结案率) by department",
                [
                    (
                        f'sort({ratio}{{level="department",indicator="on_time_closure"}})',
                        "{{entity}}",
                    )
                ],
                "bargauge",
                "percentunit",
            ),
            _panel(
                "Indicators, mean of the departments",
                [(f'avg by (indicator) ({ratio}{{level="department"}})', "{{indicator}}")],
                "bargauge",
                "percentunit",
            ),
            _panel(
                "Indicators, mean of the streets",
                [(f'avg by (indicator) ({ratio}{{level="street"}})', "{{indicator}}")],
                "bargauge",
                "percentunit",
            ),
            _panel(
                "Department scores over the month",
                [('gridloop_evaluation_score{level="department"}', "{{entity}}")],
            ),
            _panel(
                "Cases whose scores wait to be recomputed; evaluation consumer lag",
                [
                    ("max(gridloop_evaluation_pending_cases)", "cases pending"),
                    ('sum(gridloop_consumer_lag{group="evaluation"})', "records behind"),
                ],
            ),
        ],
    )


DASHBOARDS = {
    "sla.json": sla,
    "pipeline.json": pipeline,
    "webhooks.json": webhooks,
    "scores.json": scores,
    "services.json": services,
}


def render(dashboard: dict[str, Any]) -> str:
    return json.dumps(dashboard, indent=2, ensure_ascii=False, sort_keys=True) + "\n"


def expressions() -> list[str]:
    """Every PromQL expression of every dashboard."""
    return [
        t["expr"]
        for build in DASHBOARDS.values()
        for p in build()["panels"]
        for t in p.get("targets", ())  # a row has none
    ]


def main(target: str) -> None:
    out = Path(target)
    out.mkdir(parents=True, exist_ok=True)
    for name, build in DASHBOARDS.items():
        (out / name).write_text(render(build()), encoding="utf-8")
        print(f"wrote {out / name}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "deploy/grafana/dashboards")
