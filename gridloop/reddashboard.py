"""The "services" dashboard: rate, errors and duration (RED) of every service's HTTP routes
(`gridloop.red`), a row per service, and the way from a case or a route to its traces.

Built with Grafana's own typed builders (grafana-foundation-sdk) rather than by hand:
the panel, query and link shapes are Grafana's schema, checked by mypy. The tracing UI is
a Jaeger-compatible one (`tracing`, a text box: Jaeger's UI at :16686 by default, which
takes OTLP on :4318, docs/operations.md):

- the dashboard links "Traces of case $case_id" (a search by the spans' `gridloop.case_id`)
  and "Trace $trace_id";
- every request-rate panel links each route's series to its traces in the time shown;
- the duration panels show exemplars, each request's trace id beside its duration, which the
  Prometheus datasource opens in the tracing UI (deploy/grafana/provisioning).
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

from grafana_foundation_sdk.builders import dashboard, prometheus, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import DataSourceRef, GridPos

DATASOURCE = DataSourceRef(type_val="prometheus", uid="prometheus")
# The services scraped by deploy/prometheus/prometheus.yml that serve routes of their own
# (projections and the SLA engine serve only /metrics and /healthz, which are not counted).
WITH_ROUTES = ("intake", "dispatch", "notify", "evaluation")
TRACING_UI = "http://localhost:16686"
REQUESTS = "gridloop_http_requests_total"
DURATION = "gridloop_http_request_duration_seconds_bucket"


def _search(service: str, **query: str) -> str:
    """A search of the tracing UI, in the dashboard's time range (Jaeger counts in µs)."""
    fixed = {"service": f"gridloop-{service}", **query}
    encoded = urllib.parse.urlencode(fixed, safe="${}:")
    return "${tracing}/search?" + encoded + "&start=${__from}000&end=${__to}000"


def _panel(title: str, unit: str, row: int, column: int) -> timeseries.Panel:
    return (
        timeseries.Panel()
        .title(title)
        .datasource(DATASOURCE)
        .unit(unit)
        .grid_pos(GridPos(h=8, w=8, x=8 * column, y=9 * row + 1))
    )


def _query(expr: str, legend: str, ref: str = "A") -> prometheus.Dataquery:
    return prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)


def _with_exemplars(expr: str, legend: str, ref: str) -> prometheus.Dataquery:
    """A query whose exemplars (a request's trace id) are shown as points to click."""
    return _query(expr, legend, ref).exemplar(True)


def _row(service: str, n: int) -> list[timeseries.Panel]:
    job = f'job="gridloop-{service}"'
    rate = (
        _panel(f"{service}: requests per second by route", "reqps", n, 0)
        .with_target(
            _query(
                f"sum by (route, method) (rate({REQUESTS}{{{job}}}[5m]))", "{{method}} {{route}}"
            )
        )
        .data_links(
            [
                dashboard.DashboardLink("Traces of this route")
                .url(_search(service, operation="${__field.labels.method} ${__field.labels.route}"))
                .target_blank(True)
            ]
        )
    )
    errors = _panel(f"{service}: errors (5xx share of requests)", "percentunit", n, 1).with_target(
        _query(
            f'sum by (route) (rate({REQUESTS}{{{job},status="5xx"}}[5m]))'
            f" / sum by (route) (rate({REQUESTS}{{{job}}}[5m]))",
            "{{route}}",
        )
    )
    duration = _panel(f"{service}: duration p50 and p99", "s", n, 2)
    for ref, quantile in (("A", "0.5"), ("B", "0.99")):
        duration = duration.with_target(
            _with_exemplars(
                f"histogram_quantile({quantile}, sum by (le) (rate({DURATION}{{{job}}}[5m])))",
                f"p{quantile[2:].ljust(2, '0')}",
                ref,
            )
        )
    return [rate, errors, duration]


def services() -> dict[str, Any]:
    board = (
        dashboard.Dashboard("gridloop · services (RED)")
        .uid("gridloop-services")
        .tags(["gridloop"])
        .timezone("browser")
        .refresh("30s")
        .time("now-6h", "now")
        .with_variable(
            dashboard.TextBoxVariable("tracing").label("Tracing UI").default_value(TRACING_UI)
        )
        .with_variable(dashboard.TextBoxVariable("case_id").label("Case id"))
        .with_variable(dashboard.TextBoxVariable("trace_id").label("Trace id"))
        .links(
            [
                dashboard.DashboardLink("Traces of case ${case_id}")
                .url(_search("intake", tags=json.dumps({"gridloop.case_id": "${case_id}"})))
                .target_blank(True),
                dashboard.DashboardLink("Trace ${trace_id}")
                .url("${tracing}/trace/${trace_id}")
                .target_blank(True),
            ]
        )
    )
    for n, service in enumerate(WITH_ROUTES):
        board = board.with_row(dashboard.Row(service).grid_pos(GridPos(h=1, w=24, x=0, y=9 * n)))
        for panel in _row(service, n):
            board = board.with_panel(panel)
    return as_json(board)


def as_json(board: dashboard.Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana reads it; a panel's unset options left out (the builders
    write `null`, which Grafana would take for the options themselves)."""
    built: dict[str, Any] = json.loads(json.dumps(board.build(), cls=JSONEncoder))
    for panel in built.get("panels", []):
        for key in [k for k, v in panel.items() if v is None]:
            del panel[key]
    return built
