"""A case's traffic light (红绿灯) on its handling deadline, as every screen and read shows it:
未超时 / 将超时 / 已超时. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta
from enum import StrEnum

from gridloop.cases.record import CaseRecord, Urge
from gridloop.lifecycle import State

SOON = timedelta(hours=2)  # due within this: yellow, whether or not the engine warned yet
_DONE = (State.handled, State.closed, State.voided)


class Light(StrEnum):
    green = "green"
    yellow = "yellow"
    red = "red"


def light(case: CaseRecord, now: datetime, soon: timedelta = SOON) -> Light:
    """Red once the handling deadline passed (a parked case's clock stands still: its light
    is the one the SLA engine last gave it); yellow when the SLA engine warned about this
    very deadline (an older warning, before an extension or a re-dispatch, no longer
    counts) or it is due within `soon`; green otherwise, and for a case done with."""
    if case.deadline is None or case.state in _DONE:
        return Light.green
    clock = case.sla.get("handle")
    current = clock is not None and clock.deadline == case.deadline
    if case.state is State.parked:
        return Light(clock.light) if clock is not None and current else Light.green
    if case.deadline <= now:
        return Light.red
    warned = clock is not None and current and clock.light == "yellow"
    return Light.yellow if warned or case.deadline - now <= soon else Light.green


def urge_light(urge: Urge, now: datetime, soon: timedelta = SOON) -> Light:
    """A 督办's light: red once its reply is late (none by the deadline, or one after it),
    yellow while its reply is due within `soon`, green when answered in time or not due."""
    if urge.missed(now):
        return Light.red
    if urge.reply is None and urge.reply_by - now <= soon:
        return Light.yellow
    return Light.green


def dispute_light(case: CaseRecord) -> Light:
    """A dispute's light (矛盾纠纷): its holding tier's, as the SLA engine last gave it on the
    tier's clock (`sla.mediate`); green before any warning, and once it is closed."""
    clock = case.sla.get("mediate")
    if case.state is State.closed or clock is None or clock.case_version != case.tier_version:
        return Light.green
    return Light(clock.light)
