"""自处置: a supervisor fixes a minor problem on the spot. The pure decision (allowed
classes, photos before and after, the person's own grids), the pack's setting, and what the
SLA engine and the projection make of the two events."""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from gridloop.access import Principal
from gridloop.access import Role as Access
from gridloop.citypack import CityPack, CityPackError, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.errors import STATUS
from gridloop.lifecycle import OPEN_STATES, State, next_state
from gridloop.refusal import Refused
from schemas.envelope import Envelope
from schemas.events import CaseReported, CaseSelfHandled, Channel, EventData, Point, Role
from services.intake.commands import SelfHandle
from services.intake.selfhandling import decide_self_handling, own_grids
from services.projections.core import state_change
from services.sla.core import apply, leaves_table, measured

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)  # 10:00 in Beijing, a Monday
SUP1 = Principal(Access.supervisor, "SUP-0001")  # the demo's grids …001001 and …001002
G1 = "110101001001001"
IN_G1 = Point(lon=116.4005, lat=39.9205)
IN_G3 = Point(lon=116.4025, lat=39.9205)  # grid …002001: SUP-0002's
BEFORE, AFTER = ("a" * 24,), ("b" * 24,)


@pytest.fixture(scope="module")
def pack() -> CityPack:
    return load_city_pack(DEMO_CITY_PACK)


def _handle(**kw: object) -> SelfHandle:
    fields: dict[str, object] = {
        "case_id": "C-self-1",
        "who": SUP1,
        "description": "暴露垃圾 a bag of rubbish by the kerb",
        "before": BEFORE,
        "after": AFTER,
        "kind": "event",
        "class_code": "0102",  # exposed garbage: self_handling in the demo pack
        "point": IN_G1,
        "note": "picked it up",
    } | kw
    return SelfHandle(**fields)  # type: ignore[arg-type]


def _refused(pack: CityPack, handle: SelfHandle) -> Refused:
    with pytest.raises(Refused) as info:
        decide_self_handling(pack, handle, own_grids(pack, handle.who))
    return info.value


def test_a_supervisor_fixes_an_allowed_class_in_their_grid(pack: CityPack) -> None:
    reported, handled = decide_self_handling(pack, _handle(), own_grids(pack, SUP1))
    assert isinstance(reported, CaseReported) and isinstance(handled, CaseSelfHandled)
    assert (reported.version, handled.version) == (1, 2)
    assert reported.channel is Channel.supervisor and reported.grid_code == G1
    assert reported.media == list(BEFORE) and handled.media == list(AFTER)
    assert reported.actor.role is Role.supervisor and reported.actor.id == "SUP-0001"
    assert reported.reporter.id == "SUP-0001" and reported.verifier is None
    assert handled.note == "picked it up"
    # reported → self_handled, an end of the loop: never filed, never dispatched.
    assert next_state(next_state(None, "reported"), "self_handled") is State.self_handled
    assert State.self_handled not in OPEN_STATES


def test_a_class_the_pack_does_not_allow_is_refused(pack: CityPack) -> None:
    refused = _refused(pack, _handle(class_code="0101"))  # illegal structure
    assert (refused.code, refused.loc) == ("self_handling_not_allowed", ("body", "class_code"))
    assert STATUS[refused.why] == 422
    assert "0101" in refused.reason and "filed and dispatched" in refused.reason


@pytest.mark.parametrize("missing", ["before", "after"])
def test_a_missing_photo_is_refused(pack: CityPack, missing: str) -> None:
    refused = _refused(pack, _handle(**{missing: ()}))
    assert (refused.code, refused.loc) == ("missing", ("body", missing))
    assert STATUS[refused.why] == 422


def test_outside_ones_own_grids_is_refused(pack: CityPack) -> None:
    refused = _refused(pack, _handle(point=IN_G3))
    assert (refused.code, refused.loc) == ("outside_own_grids", ("body", "point"))
    assert STATUS[refused.why] == 403
    assert "110101001002001" in refused.reason and G1 in refused.reason


def test_a_grid_manager_fixes_in_the_grids_of_the_staff_register(pack: CityPack) -> None:
    manager = Principal(Access.grid_staff, "GM-0001")  # staff.yaml: grid …001001
    reported, handled = decide_self_handling(pack, _handle(who=manager), own_grids(pack, manager))
    assert reported.actor.role is Role.grid_staff and handled.actor.id == "GM-0001"
    refused = _refused(pack, _handle(who=manager, point=IN_G3))
    assert refused.code == "outside_own_grids" and f"({G1})" in refused.reason
    stranger = Principal(Access.grid_staff, "GM-nobody")  # not in the register
    refused = _refused(pack, _handle(who=stranger))
    assert refused.code == "outside_own_grids" and "(none)" in refused.reason


def _env(data: EventData) -> Envelope:
    return Envelope(data=data, source="/gridloop/intake", time=NOW)


def test_the_sla_engine_opens_no_dispatch_or_handling_clock(pack: CityPack) -> None:
    reported, handled = decide_self_handling(pack, _handle(), own_grids(pack, SUP1))
    first = apply(None, reported, NOW, pack.sla)
    assert first is not None
    second = apply(first.state, handled, NOW, pack.sla)
    assert second is not None and not second.state.clocks  # the filing clock closed unused
    assert leaves_table(second, handled)
    assert measured(second, handled) == []  # no stage of the centre's is counted done


def test_the_projection_shows_it_self_handled(pack: CityPack) -> None:
    _, handled = decide_self_handling(pack, _handle(), own_grids(pack, SUP1))
    change = state_change(_env(handled))
    assert change["state"] == "self_handled" and change["self_handled_at"] == NOW


def test_the_pack_setting_is_checked_like_the_rest(pack: CityPack, tmp_path: Path) -> None:
    assert pack.classes[("event", "0102")].self_handling is True
    assert pack.classes[("event", "0101")].self_handling is False  # the default
    shutil.copytree(DEMO_CITY_PACK, tmp_path, dirs_exist_ok=True)
    city = yaml.safe_load((tmp_path / "city.yaml").read_text(encoding="utf-8"))
    city["classes"][0]["self_handling"] = "sometimes"
    city["classes"][1]["handle_limit"] = "soon"
    (tmp_path / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True), "utf-8")
    with pytest.raises(CityPackError) as info:
        load_city_pack(tmp_path)
    errors = info.value.errors
    assert any("classes.0.self_handling" in e for e in errors), errors
    assert any("classes.1.handle_limit" in e for e in errors), errors  # every error listed
