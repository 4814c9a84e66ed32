"""Prometheus metrics of the SLA engine (`gridloop_sla_*`, `gridloop_case_*`).

Labels stay bounded: department, stage, tier, light (and class where named).
Histogram buckets sit at the SLA thresholds: the city's limits for clock time, and the
share of a limit used (0.8 yellow, 1.0 red) for the on-time rate.
"""

from __future__ import annotations

from collections import Counter as Tally
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import get_args

from prometheus_client import Counter, Gauge, Histogram

from gridloop.citypack.sla import TIERS
from schemas.events import SlaBreach, SlaEscalation, SlaEvent, SlaWarning, Stage
from services.sla.core import CaseClocks, Light, Measured

WARNINGS = Counter(
    "gridloop_sla_warnings_total",
    "Stage clocks that turned yellow (80 % of the limit used)",
    ["department", "stage"],
)
BREACHES = Counter(
    "gridloop_sla_breaches_total", "Stage deadlines passed unmet (red)", ["department", "stage"]
)
ESCALATIONS = Counter(
    "gridloop_sla_escalations_total",
    "Overdue cases sent up the ladder, by the tier notified",
    ["department", "tier"],
)
ASSUMED_CALENDAR = Counter(
    "gridloop_sla_assumed_calendar_total",
    "SLA events whose deadline reaches a year nobody supplied a calendar for",
    ["stage"],
)
OPEN = Gauge(
    "gridloop_sla_open_clocks",
    "Open stage clocks (cases on the clock) by department, stage and traffic light",
    ["department", "stage", "light"],
)
DUE_INDEX = Gauge("gridloop_sla_due_index_size", "Cases with something still to fall due")
STALE = Counter(
    "gridloop_sla_held_for_newer_version_total",
    "Due SLA events held back because the case's head had moved past what the engine applied",
)
DELAY = Histogram(
    "gridloop_sla_breach_delay_seconds",
    "From the deadline to the breach event sent",
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60),
)
LIMIT_USED = Histogram(
    "gridloop_sla_limit_used_ratio",
    "Share of the stage limit used when the stage was done (≤ 1 is on time)",
    ["department", "stage"],
    buckets=(0.25, 0.5, 0.8, 1.0, 1.5, 2, 5),
)

# Buckets at the demo city's limits, in seconds of clock time (see SlaPolicy.thresholds).
DEFAULT_THRESHOLDS: Sequence[float] = (
    900,
    1800,
    3600,
    7200,
    14400,
    25200,
    50400,
    75600,
    378000,
)
STAGE_SECONDS = Histogram(
    "gridloop_sla_stage_seconds",
    "Clock time a stage took (working or natural, per the class), e.g. time to handle",
    ["department", "stage"],
    buckets=DEFAULT_THRESHOLDS,
)
CLOSE_SECONDS = Histogram(
    "gridloop_case_close_seconds",
    "Time from report to closure (natural time)",
    buckets=(3600, 4 * 3600, 86400, 3 * 86400, 7 * 86400, 15 * 86400, 30 * 86400),
)


def zero(departments: Iterable[str]) -> None:
    """Create the series of every department at 0, so that the first warning, breach or
    escalation is an increase Prometheus sees (a series born at 1 has no `increase`), and a
    quiet engine's dashboard shows 0, not "no data": no stage done yet, no clock open (as
    the due index counts none until the table is recovered)."""
    for stage in Stage:
        ASSUMED_CALENDAR.labels(stage.value)
    for department in departments:
        for stage in Stage:
            WARNINGS.labels(department, stage.value)
            BREACHES.labels(department, stage.value)
            STAGE_SECONDS.labels(department, stage.value)
            LIMIT_USED.labels(department, stage.value)
            for light in get_args(Light):
                OPEN.labels(department, stage.value, light)
        for tier in TIERS:
            ESCALATIONS.labels(department, tier)


# A dispute's clock names its tier's office (a grid, community, street … code): one label
# for them all keeps the labels bounded (a city has thousands of grids).
TIER_OFFICES = "tier_offices"


def owner(department: str, stage: Stage) -> str:
    """The `department` label of a clock of `stage`."""
    return TIER_OFFICES if stage is Stage.mediate else department


class OpenClocks:
    """Counts of open clocks by (department, stage, light), kept in step with the table."""

    def __init__(self) -> None:
        self.counts: Tally[tuple[str, str, str]] = Tally()

    @staticmethod
    def _keys(state: CaseClocks | None) -> Iterable[tuple[str, str, str]]:
        if state is None:
            return ()
        return [(owner(c.department, c.stage), c.stage.value, c.light) for c in state.clocks]

    def change(self, before: CaseClocks | None, after: CaseClocks | None) -> None:
        old, new = Tally(self._keys(before)), Tally(self._keys(after))
        if old == new:
            return
        self.counts.subtract(old)
        self.counts.update(new)
        for key in old.keys() | new.keys():
            OPEN.labels(*key).set(self.counts[key])

    def reset(self, states: Iterable[CaseClocks]) -> None:
        for key in self.counts:
            OPEN.labels(*key).set(0)
        self.counts = Tally(k for s in states for k in self._keys(s))
        for key, n in self.counts.items():
            OPEN.labels(*key).set(n)


def observe(done: Iterable[Measured], closed_case: timedelta | None) -> None:
    """Stages done (time to handle, and every stage; the on-time share), and a closure."""
    for stage in done:
        labels = (owner(stage.department, stage.stage), stage.stage.value)
        STAGE_SECONDS.labels(*labels).observe(stage.used.total_seconds())
        if stage.share is not None:
            LIMIT_USED.labels(*labels).observe(stage.share)
    if closed_case is not None:
        CLOSE_SECONDS.observe(closed_case.total_seconds())


def count_sent(event: SlaEvent, now: datetime) -> None:
    """An SLA event Kafka acknowledged: its counter, and a breach's delay past its deadline."""
    if event.assumed_years:
        ASSUMED_CALENDAR.labels(event.stage.value).inc()
    if isinstance(event, SlaWarning):
        WARNINGS.labels(owner(event.department, event.stage), event.stage.value).inc()
    elif isinstance(event, SlaBreach):
        BREACHES.labels(owner(event.department, event.stage), event.stage.value).inc()
        DELAY.observe(max((now - event.deadline).total_seconds(), 0.0))
    elif isinstance(event, SlaEscalation):
        ESCALATIONS.labels(event.department, event.tier).inc()
