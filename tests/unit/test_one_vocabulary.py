"""One name for one event type wherever an integrator reads it: the case's timeline, the
webhook and an action's answer all say `case.dispatched`, `case.acknowledged`, `sla.breach`
(the CloudEvents type without its `gridloop.` namespace, by `schemas.events.event_name`)."""

from __future__ import annotations

from typing import Any

import pytest

from gridloop.cases.record import CaseRecord
from gridloop.cases.view import fold
from gridloop.citypack import load_city_pack
from gridloop.commands.answer import answer_body
from gridloop.config import DEMO_CITY_PACK
from schemas.envelope import Envelope
from schemas.events import EVENT_TYPES, event_name
from services.notify.core import Telling, notices
from services.projections.core import timeline_entry
from tests.samples import CASE_ID, SOURCE, TIME, sample

LOOP: list[tuple[str, dict[str, Any]]] = [
    ("gridloop.case.reported", {"version": 1}),
    ("gridloop.case.filed", {"version": 2}),
    ("gridloop.case.dispatched", {"version": 3, "department": "SANITATION"}),
    ("gridloop.case.acknowledged", {"case_version": 3}),
    ("gridloop.case.handled", {"version": 4, "department": "SANITATION"}),
]


def _envs() -> list[Envelope]:
    return [Envelope(sample(t, **fields), SOURCE, TIME) for t, fields in LOOP]


def _record(envs: list[Envelope]) -> CaseRecord:
    doc: dict[str, Any] = {"_id": CASE_ID, "state": "handled", "version": 4}
    doc["point"] = {"type": "Point", "coordinates": [116.397, 39.909]}
    doc |= {"department": "SANITATION", "timeline": [timeline_entry(e) for e in envs]}
    return CaseRecord.model_validate(doc)


def test_the_timeline_names_events_as_the_webhook_and_the_answers_do() -> None:
    envs = _envs()
    timeline = [entry.type for entry in _record(envs).timeline]
    assert timeline == [
        "case.reported",
        "case.filed",
        "case.dispatched",
        "case.acknowledged",
        "case.handled",
    ]
    [told] = notices(envs[2], _record(envs), Telling(load_city_pack(DEMO_CITY_PACK)), TIME)
    assert told.message["type"] == timeline[2]
    acknowledged = answer_body(fold(envs[:4]), envs[3:4])
    assert acknowledged["type"] == timeline[3]
    handled = answer_body(fold(envs), envs[4:])
    assert (handled["type"], handled["state"], handled["version"]) == ("case.handled", "handled", 4)


@pytest.mark.parametrize("ce_type", sorted(EVENT_TYPES))
def test_every_type_reads_the_same_in_the_timeline_and_the_webhook(ce_type: str) -> None:
    env = Envelope(sample(ce_type), SOURCE, TIME)
    entry = timeline_entry(env)
    doc = {"_id": CASE_ID, "state": "reported", "version": 1, "timeline": [entry]}
    [read] = CaseRecord.model_validate(doc).timeline
    assert read.type == event_name(ce_type) == ce_type.removeprefix("gridloop.")


def test_a_case_read_shows_an_acknowledgement_by_its_public_name() -> None:
    record = _record(_envs())
    assert record.acknowledged_by("SANITATION")
    assert not record.acknowledged_by("WATER")
