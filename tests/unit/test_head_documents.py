"""A head's view goes into its document and comes back the same, every field of it."""

from __future__ import annotations

from datetime import UTC, datetime

from gridloop.cases import CaseView, PendingRequest
from gridloop.commands.mongo import _view, _view_doc
from gridloop.lifecycle import State
from schemas.events import Channel, Point

AT = datetime(2026, 3, 3, 4, 0, tzinfo=UTC)


def test_a_view_with_every_field_set_comes_back_the_same() -> None:
    view = CaseView(
        case_id="C-1",
        state=State.parked,
        version=7,
        kind="event",
        class_code="0102",
        grid_code="110101001001001",
        department="WATER",
        component_id="1101010101000001",
        urgency="urgent",
        assisting=("ROADS", "STREET-001"),
        deadline=AT,
        pending_request=PendingRequest("r-1", "extension", "WATER", "rain", 7, AT),
        point=Point(lon=116.4, lat=39.92),
        channel=Channel.hotline,
        reporter_id="citizen-1",
        merged_into="C-0",
        closed_at=AT,
        acknowledged=("WATER",),
        explained=6,
    )
    assert _view("C-1", _view_doc(view)) == view
    bare = CaseView("C-2", State.reported, 1)
    assert _view("C-2", _view_doc(bare)) == bare
