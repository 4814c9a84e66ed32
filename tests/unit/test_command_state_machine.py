"""No sequence of commands brings a case into an invalid state.

Hypothesis drives the pure command deciders of intake and dispatch, one command per step
with drawn arguments (right and wrong callers, departments, deadlines, states of the other
case), on a case whose view is folded from the events they emit, the way the projection
store folds them. The dispatch service's reactions (dispatch on filing, on rework) run as
steps too, at any point after the event that triggers them. After every step:

- a refused command (Rejected or InvalidTransition) emitted nothing and changed nothing;
- accepted events are transitions the lifecycle allows, numbered one after another;
- the view's state is reachable from the start, and its version is the newest event's;
- a closed, evaluated, voided or merged case took no handling command;
- the deciders raised nothing but their documented refusals (anything else fails the step).
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import hypothesis.strategies as st
from hypothesis import HealthCheck, settings
from hypothesis import event as note_event
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from gridloop.auth import Principal
from gridloop.auth import Role as Access
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.errors import Rejected
from gridloop.lifecycle import TRANSITIONS, InvalidTransition, State, next_state, transition_name
from schemas.envelope import Envelope
from schemas.events import (
    Actor,
    CaseAnnotation,
    CaseEvent,
    CaseFiled,
    CaseReworked,
    DepartmentRequest,
    EventData,
    Role,
)
from services.dispatch import core as dispatch
from services.intake import core as intake
from services.intake.duplicates import Nearby
from services.projections.core import (
    CaseView,
    Document,
    facts,
    request_change,
    state_change,
    timeline_entry,
)

PACK: CityPack = load_city_pack(DEMO_CITY_PACK)
CASE = "C-20260301-0001"
OTHER = "C-20260301-0002"  # the case a report may be merged into
START = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)
INSIDE = {"lon": 116.4015, "lat": 39.9205}  # grid 110101001001002
OUTSIDE = {"lon": 0.0, "lat": 0.0}
SUPERVISOR = Principal(Access.supervisor, "sup-7")
CENTRE = Principal(Access.supervision_centre, "centre-1")
DEPARTMENTS = sorted(PACK.departments)
ENDED = frozenset({State.closed, State.evaluated, State.voided, State.merged})
CITIZEN_REPORT = intake.ReportIn.model_validate(
    {
        "channel": "website",
        "kind": "event",
        "class_code": "0102",
        "point": INSIDE,
        "description": "垃圾满溢 overflowing bin",
    }
)


def _reachable() -> frozenset[State]:
    """Every state some sequence of transitions reaches from "no case yet"."""
    seen: set[State | None] = {None}
    frontier: set[State | None] = {None}
    while frontier:
        frontier = {
            target
            for sources, target in TRANSITIONS.values()
            if sources & frontier and target not in seen
        }
        seen |= frontier
    return frozenset(s for s in seen if s is not None)


REACHABLE = _reachable()
Refusal = (Rejected, InvalidTransition)

# --- drawn arguments ------------------------------------------------------------------------

# Text as schemas/limits.py keeps it: no control characters, NFC, stripped, not blank.
texts = (
    st.text(st.characters(codec="utf-8", exclude_categories=["Cs", "Cc"]), min_size=1, max_size=20)
    .map(lambda t: unicodedata.normalize("NFC", t).strip())
    .filter(bool)
)
notes = st.none() | texts
reporting = st.sampled_from(
    [
        ("supervisor", Principal(Access.supervisor, "sup-7")),
        ("website", Principal(Access.public, "anonymous")),
        ("hotline", Principal(Access.hotline, "op-3")),
        ("supervisor", Principal(Access.public, "anonymous")),  # refused: needs a token
        ("hotline", Principal(Access.supervisor, "sup-7")),  # refused: wrong role
    ]
)
classes = st.sampled_from(
    [("component", "0101"), ("event", "0102"), ("event", "0505"), ("event", "9999")]
)
supervisor_ids = st.sampled_from([None, "sup-7", "sup-9"])  # sup-9 is not the caller
# The lead department, an assisting one, another known one, or one the pack lacks.
department_picks = st.sampled_from(["lead", "assisting", "other", "unknown"])
offsets = st.timedeltas(min_value=timedelta(hours=-12), max_value=timedelta(days=5))
case_numbers = st.none() | st.just("S0102-20260302-0001")
request_ids = st.sampled_from(["r-1", "r-2", "r-3"])


def _department(view: CaseView, pick: str) -> str:
    if pick == "lead" and view.department:
        return view.department
    if pick == "assisting" and view.assisting:
        return view.assisting[0]
    if pick == "unknown":
        return "NO-SUCH-DEPT"
    return next(d for d in DEPARTMENTS if d != view.department)


def _get(doc: Document, dotted: str) -> Any:
    value: Any = doc
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def fold(doc: Document, env: Envelope) -> None:
    """What services.projections.store.CaseStore.apply does, on a dict instead of MongoDB."""
    doc["_id"] = env.data.case_id
    doc.setdefault("timeline", []).append(timeline_entry(env))
    doc.update(facts(env))
    data = env.data
    if isinstance(data, CaseEvent):
        if doc.get("version", 0) < data.version:  # only a newer version moves the state
            doc.update(state_change(env))
    elif isinstance(data, DepartmentRequest) and (change := request_change(data)):
        where, update = change
        if all(_get(doc, key) == value for key, value in where.items()):
            doc.update(update)


def _proceed_rule(name: str) -> Any:
    """A rule for `CommandMachine.proceed`; the class holds several, so hypothesis picks the
    usual next step about as often as all the other commands together."""

    @precondition(lambda self: bool(self.doc))
    @rule(passed=st.booleans(), offset=offsets, choice=st.integers(0, 5))
    def step(self: Any, passed: bool, offset: timedelta, choice: int) -> None:
        self.proceed(passed, offset, choice)

    step.__name__ = name
    return step


class CommandMachine(RuleBasedStateMachine):
    """One case, commanded by everyone at once; `self.doc` is its projection."""

    def __init__(self) -> None:
        super().__init__()
        self.doc: Document = {}
        self.log: list[EventData] = []  # every event accepted, in order
        self.reactions: list[Envelope] = []  # filings and reworks the dispatcher has not seen
        self.now = START

    # --- the harness ---------------------------------------------------------------------

    @property
    def view(self) -> CaseView:
        return CaseView.from_doc(self.doc)

    def publish(self, events: Sequence[EventData], source: str) -> None:
        """Check accepted events against the lifecycle, then fold them into the case."""
        assert events, "an accepted command emits at least one event"
        state: State | None = self.view.state if self.doc else None
        version = self.view.version if self.doc else 0
        for event in events:
            assert event.case_id == CASE
            if isinstance(event, CaseEvent):
                state = next_state(state, transition_name(event.ce_type))  # raises if invalid
                assert event.version == version + 1, (event.ce_type, event.version, version)
                version = event.version
            else:
                assert isinstance(event, CaseAnnotation)
                assert event.case_version == version  # an annotation does not move the case
            env = Envelope(event, source, time=self.now)
            note_event(env.type)  # --hypothesis-show-statistics tells how far runs go
            fold(self.doc, env)
            self.log.append(event)
            if isinstance(event, CaseFiled | CaseReworked):
                self.reactions.append(env)
        assert self.view.state == state and self.view.version == version

    def attempt(self, decide: Callable[[], EventData | list[Any]], handling: bool = False) -> None:
        """Run one command: refused, nothing changes; accepted, its events are checked."""
        before = (dict(self.doc), len(self.log), self.view if self.doc else None)
        ended = bool(self.doc) and self.view.state in ENDED
        try:
            result = decide()
        except Refusal:
            assert (dict(self.doc), len(self.log)) == before[:2]
            assert (self.view if self.doc else None) == before[2]
            if ended and handling:
                note_event("an ended case refused a handling command")
            return
        assert not (ended and handling), f"a {self.view.state} case took {result}"
        self.publish(result if isinstance(result, list) else [result], "/tests/commands")

    def advance(self, offset: timedelta) -> None:
        self.now += abs(offset)

    # --- intake ----------------------------------------------------------------------------

    @initialize(
        channel_who=reporting,
        kind_class=classes,
        inside=st.booleans(),
        duplicate=st.sampled_from([False, False, False, True]),
        urgency=st.sampled_from([None, "urgent", "whenever"]),
        number=case_numbers,
    )
    def report(
        self,
        channel_who: tuple[str, Principal],
        kind_class: tuple[str, str],
        inside: bool,
        duplicate: bool,
        urgency: str | None,
        number: str | None,
    ) -> None:
        channel, who = channel_who
        report = intake.ReportIn.model_validate(
            {
                "channel": channel,
                "kind": kind_class[0],
                "class_code": kind_class[1],
                "point": INSIDE if inside else OUTSIDE,
                "description": "井盖破损",
                "reporter": {"phone": "13900000000"},
                "urgency": None if channel == "website" else urgency,
            }
        )
        nearby = [Nearby(OTHER, INSIDE["lon"], INSIDE["lat"], START)] if duplicate else []
        self.attempt(
            lambda: intake.decide_report(report, PACK, CASE, who, self.now, nearby, number)
        )
        if not self.doc:  # refused: a citizen reports it properly, so the case goes on
            citizen = Principal(Access.public, "anonymous")
            self.publish(intake.decide_report(CITIZEN_REPORT, PACK, CASE, citizen, self.now), "/t")

    @precondition(lambda self: bool(self.doc))
    @rule(confirmed=st.booleans(), claimed=supervisor_ids, auto=st.booleans(), note=notes)
    def verify(self, confirmed: bool, claimed: str | None, auto: bool, note: str | None) -> None:
        answer = intake.VerificationIn(confirmed=confirmed, supervisor_id=claimed, note=note)
        self.attempt(lambda: intake.decide_verification(self.view, answer, SUPERVISOR, auto, "S-1"))

    @precondition(lambda self: bool(self.doc))
    @rule(note=notes, number=case_numbers)
    def file(self, note: str | None, number: str | None) -> None:
        answer = intake.FileIn(note=note)
        self.attempt(lambda: intake.decide_file(self.view, answer, CENTRE, number))

    @precondition(lambda self: bool(self.doc))
    @rule(reason=texts)
    def void(self, reason: str) -> None:
        answer = intake.VoidIn(reason=reason)
        self.attempt(lambda: intake.decide_void(self.view, answer, CENTRE))

    @precondition(lambda self: bool(self.doc))
    @rule(into_state=st.sampled_from(State), itself=st.sampled_from([False, False, True]))
    def merge(self, into_state: State, itself: bool) -> None:
        into = CaseView(case_id=CASE if itself else OTHER, state=into_state, version=3)
        answer = intake.MergeIn(into_case_id=into.case_id)
        self.attempt(lambda: intake.decide_merge(self.view, into, answer, CENTRE))

    @precondition(lambda self: bool(self.doc))
    @rule(reason=texts)
    def split(self, reason: str) -> None:
        answer = intake.SplitIn(reason=reason)
        merged_into = self.doc.get("merged_into")
        self.attempt(lambda: intake.decide_split(self.view, merged_into, answer, CENTRE))

    @precondition(lambda self: bool(self.doc))
    @rule(passed=st.booleans(), claimed=supervisor_ids, note=notes)
    def check(self, passed: bool, claimed: str | None, note: str | None) -> None:
        answer = intake.CheckIn(passed=passed, supervisor_id=claimed, note=note)
        self.attempt(lambda: intake.decide_check(self.view, answer, SUPERVISOR))

    # --- the dispatch service's reactions ----------------------------------------------------

    @precondition(lambda self: bool(self.reactions))
    @rule(offset=offsets)
    def react(self, offset: timedelta) -> None:
        """The dispatcher consumes the oldest filing or rework it has not yet read.

        It reacts only while that event is still the case's newest (`superseded`, as the
        dispatch service does). Without that check this machine found: filed (v2), voided
        by an operator (v3), then the late reaction emitted dispatched v3 for the voided
        case: a different id from the voiding, so notify delivered it to the department,
        and the SLA engine, which keeps the first v3 it reads of two topics, could open a
        clock on it.
        """
        env = self.reactions.pop(0)
        self.advance(offset)
        data = env.data
        assert isinstance(data, CaseFiled | CaseReworked)
        if dispatch.superseded(self.view.version, data.version):
            return
        view = self.view
        if isinstance(data, CaseFiled):
            assert view.kind and view.class_code and view.grid_code
            self.attempt(
                lambda: dispatch.decide_dispatch(
                    PACK,
                    CASE,
                    data.version,
                    data.kind,
                    data.class_code,
                    data.grid_code,
                    env.time,
                    urgency=view.urgency,
                )
            )
        else:
            self.attempt(
                lambda: dispatch.decide_rework_dispatch(PACK, view, data.version, env.time)
            )

    # --- the command centre ------------------------------------------------------------------

    @precondition(lambda self: bool(self.doc))
    @rule(
        lead=st.sampled_from([*DEPARTMENTS[:3], "NO-SUCH-DEPT"]),
        assisting=st.lists(st.sampled_from(DEPARTMENTS[:4]), max_size=2),
        offset=st.none() | offsets,
    )
    def dispatch_by_hand(self, lead: str, assisting: list[str], offset: timedelta | None) -> None:
        order = dispatch.DispatchIn(
            dispatcher="disp-1",
            department=lead,
            assisting=assisting,
            deadline=None if offset is None else self.now + offset,
            reason="改派",
        )
        self.attempt(
            lambda: dispatch.decide_manual_dispatch(PACK, self.view, order, self.now),
            handling=True,
        )

    @precondition(lambda self: bool(self.doc))
    @rule(approve=st.booleans(), reason=notes, offset=st.none() | offsets)
    def decide_extension(self, approve: bool, reason: str | None, offset: timedelta | None) -> None:
        deadline = None if offset is None else self.now + offset
        decision = dispatch.DecisionIn(dispatcher="disp-1", reason=reason, deadline=deadline)
        self.attempt(
            lambda: dispatch.decide_extension(self.view, decision, approve, self.now),
            handling=True,
        )

    @precondition(lambda self: bool(self.doc))
    @rule(approve=st.booleans(), reason=notes)
    def decide_parking(self, approve: bool, reason: str | None) -> None:
        decision = dispatch.DecisionIn(dispatcher="disp-1", reason=reason)
        self.attempt(lambda: dispatch.decide_parking(self.view, decision, approve), handling=True)

    @precondition(lambda self: bool(self.doc))
    @rule(reason=notes)
    def resume_by_command(self, reason: str | None) -> None:
        actor = Actor(role=Role.command_centre, id="disp-1")
        self.attempt(lambda: dispatch.decide_resume(self.view, actor, reason), handling=True)

    # --- departments ---------------------------------------------------------------------

    @precondition(lambda self: bool(self.doc))
    @rule(pick=department_picks)
    def acknowledge(self, pick: str) -> None:
        answer = dispatch.AcknowledgeIn(handler_id="h-1")
        department = _department(self.view, pick)
        self.attempt(
            lambda: dispatch.decide_acknowledge(self.view, department, answer), handling=True
        )

    @precondition(lambda self: bool(self.doc))
    @rule(pick=department_picks, note=notes)
    def handled(self, pick: str, note: str | None) -> None:
        answer = dispatch.HandledIn(handler_id="h-1", note=note)
        department = _department(self.view, pick)
        self.attempt(lambda: dispatch.decide_handled(self.view, department, answer), handling=True)

    @precondition(lambda self: bool(self.doc))
    @rule(pick=department_picks, reason=texts)
    def give_back(self, pick: str, reason: str) -> None:
        answer = dispatch.ReturnIn(handler_id="h-1", reason=reason)
        department = _department(self.view, pick)
        self.attempt(lambda: dispatch.decide_return(self.view, department, answer), handling=True)

    @precondition(lambda self: bool(self.doc))
    @rule(pick=department_picks, offset=offsets, request=request_ids)
    def request_extension(self, pick: str, offset: timedelta, request: str) -> None:
        answer = dispatch.ExtensionIn(handler_id="h-1", deadline=self.now + offset, reason="r")
        department = _department(self.view, pick)
        self.attempt(
            lambda: dispatch.decide_extension_request(
                self.view, department, answer, request, self.now
            ),
            handling=True,
        )

    @precondition(lambda self: bool(self.doc))
    @rule(pick=department_picks, request=request_ids)
    def request_parking(self, pick: str, request: str) -> None:
        answer = dispatch.ParkingIn(handler_id="h-1", reason="waiting for parts")
        department = _department(self.view, pick)
        self.attempt(
            lambda: dispatch.decide_parking_request(self.view, department, answer, request),
            handling=True,
        )

    @precondition(lambda self: bool(self.doc))
    @rule(pick=department_picks, reason=notes)
    def resume_by_department(self, pick: str, reason: str | None) -> None:
        """The API authorizes the department, then resumes (services/dispatch/service.py)."""
        view, department = self.view, _department(self.view, pick)
        actor = Actor(role=Role.department, id=f"{department}/h-1")

        def decide() -> EventData:
            dispatch.authorize(view, department)
            return dispatch.decide_resume(view, actor, reason)

        self.attempt(decide, handling=True)

    @precondition(lambda self: bool(self.doc))
    @rule(pick=department_picks, offset=offsets)
    def explain(self, pick: str, offset: timedelta) -> None:
        self.advance(offset)  # time passes, so the case may fall overdue
        answer = dispatch.ExplainIn(handler_id="h-1", explanation="the road was closed")
        department = _department(self.view, pick)
        self.attempt(
            lambda: dispatch.decide_explain(self.view, department, answer, self.now),
            handling=True,
        )

    # --- the usual next step -------------------------------------------------------------

    def proceed(self, passed: bool, offset: timedelta, choice: int) -> None:
        """The command that moves the case along the loop from where it is (and, once it
        has ended, a department action it must refuse), so that runs reach the far states."""
        state = self.view.state
        if state is State.reported:
            self.verify(True, None, True, None)
        elif state is State.verified:
            self.file(None, None)
        elif state in (State.filed, State.rework) and self.reactions:
            self.react(offset)
        elif state in (State.filed, State.rework, State.returned):
            self.dispatch_by_hand(DEPARTMENTS[0], [], None)
        elif state is State.dispatched:
            self.proceed_dispatched(passed, offset, choice)
        elif state is State.parked:
            self.resume_by_command(None)
        elif state is State.handled:
            self.check(passed, None, None)
        elif state is State.merged:
            self.split("not the same problem after all")
        else:
            self.handled("lead", None)

    def proceed_dispatched(self, passed: bool, offset: timedelta, choice: int) -> None:
        """A department handles the case, or asks for time; the command centre decides."""
        pending = self.view.pending_request
        if pending is not None and pending.kind == "extension":
            self.decide_extension(passed, "granted" if passed else "no", None)
        elif pending is not None:
            self.decide_parking(passed, "granted" if passed else "no")
        elif choice == 0:
            self.request_parking("lead", "r-1")
        elif choice == 1:
            self.request_extension("lead", abs(offset) + timedelta(days=1), "r-2")
        elif choice == 2:
            self.acknowledge("lead")
        elif choice == 3:
            self.give_back("lead", "not ours: the pipe belongs to the water company")
        else:
            self.handled("lead", None)

    proceed_1 = _proceed_rule("proceed_1")
    proceed_2 = _proceed_rule("proceed_2")
    proceed_3 = _proceed_rule("proceed_3")
    proceed_4 = _proceed_rule("proceed_4")

    # --- invariants ------------------------------------------------------------------------

    @invariant()
    def state_is_reachable(self) -> None:
        if self.doc:
            assert self.view.state in REACHABLE

    @invariant()
    def versions_have_no_gaps(self) -> None:
        versions = [e.version for e in self.log if isinstance(e, CaseEvent)]
        assert versions == list(range(1, len(versions) + 1))
        if self.doc:
            assert self.view.version == len(versions)
            timeline = [t["version"] for t in self.doc["timeline"] if t["type"] in TRANSITIONS]
            assert timeline == versions

    @invariant()
    def a_pending_request_is_of_the_current_version(self) -> None:
        if self.doc and (pending := self.view.pending_request) is not None:
            assert pending.case_version == self.view.version
            assert self.view.state in dispatch.HELD

    @invariant()
    def a_held_case_has_a_department_and_a_deadline(self) -> None:
        if self.doc and self.view.state in dispatch.HELD:
            assert self.view.department in PACK.departments
            assert self.view.deadline is not None


CommandMachine.TestCase.settings = settings(
    max_examples=200,
    stateful_step_count=50,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestCommands = CommandMachine.TestCase


def test_a_view_of_an_ended_case_is_refused_handling() -> None:
    """The ENDED check above is not vacuous: each ended state refuses a department action."""
    base = CaseView(CASE, State.dispatched, 5, department="SANITATION", deadline=START)
    for state in ENDED:
        view = replace(base, state=state)
        try:
            dispatch.decide_handled(view, "SANITATION", dispatch.HandledIn(handler_id="h"))
        except Refusal:
            continue
        raise AssertionError(f"a {state} case was handled")
