"""Intake's decisions on a case. Pure: the city pack, the case's view, a command and the clock
in, events out (or a `Refused`).

Verification (核实) files or voids a citizen report; the supervision centre files (立案) or
voids (作废) a report, merges a duplicate into an open case or splits it off again; a
supervisor's on-site check (核查) closes a handled case or sends it back (返工); a resident
rates the closed case (满意度), and a dissatisfied rating reopens it. Reports themselves are
decided in `reporting.py`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from gridloop.access import Principal
from gridloop.access import Role as Access
from gridloop.cases import CaseView
from gridloop.citypack import CityPack
from gridloop.citypack.model import CallbackPolicy, FeedbackPolicy
from gridloop.lifecycle import OPEN_STATES, State, next_state
from gridloop.refusal import conflict, forbidden, invalid, not_found
from schemas.events import (
    Actor,
    CallbackAnswered,
    CallbackUnreached,
    CaseChecked,
    CaseClosed,
    CaseEvent,
    CaseReworked,
    CaseSplit,
    CaseVerified,
    CaseVoided,
    Channel,
    EventData,
    FeedbackGiven,
    Kind,
    Role,
    Satisfaction,
    VoidDenied,
    VoidRequested,
)
from services.intake.answering import decide_answer
from services.intake.commands import (
    AnswerDirectly,
    AnswerVoid,
    CallbackAnswer,
    CallbackCommand,
    CallbackTry,
    CaseCommand,
    Check,
    File,
    Merge,
    Rate,
    Split,
    Verify,
    Void,
)
from services.intake.reporting import SYSTEM, actor_of, filed, local_day, merged


def decide(
    pack: CityPack,
    case: CaseView,
    command: CaseCommand,
    now: datetime,
    into: CaseView | None = None,
) -> Sequence[EventData]:
    """The events `command` makes of `case` (a merge: into the open case `into`), or a
    refusal. A filing is not numbered yet (`reporting.with_number`)."""
    if case.kind == "dispute" and isinstance(command, Verify | File | Merge):
        # A dispute is its tier offices' (docs/disputes.md): never filed for dispatch.
        raise conflict(
            ("case_id",),
            "a dispute is mediated by its tier offices, not verified, filed or merged",
            "dispute",
        )
    match command:
        case Verify():
            return decide_verification(case, command, pack.city.intake.auto_file)
        case File():
            return decide_file(case, command, pack=pack)
        case Void():
            return decide_void(case, command, pack.sla.voids_need_approval)
        case AnswerVoid():
            return decide_void_request(case, command)
        case Merge():
            assert into is not None
            return decide_merge(case, into, command)
        case Split():
            return decide_split(case, command)
        case Check():
            return decide_check(case, command)
        case Rate():
            return decide_feedback(case, command, pack.city.feedback, now)
        case AnswerDirectly():
            return decide_answer(case, command, pack.knowledge, local_day(pack, now))


# --- verification, filing, voiding ---------------------------------------------------------


def _same_person(claimed: str | None, who: Principal) -> None:
    if claimed is not None and claimed != who.subject:
        raise forbidden(
            ("body", "supervisor_id"), f"your credential is {who.subject}'s, not {claimed}'s"
        )


def decide_verification(
    case: CaseView, verify: Verify, auto_file: bool = True, case_number: str | None = None
) -> list[CaseEvent]:
    """Confirmed: verified (and filed, when the pack files by rule). Refuted: voided."""
    _same_person(verify.supervisor_id, verify.who)
    actor = actor_of(verify.who)
    v = case.version
    if not verify.confirmed:
        next_state(case.state, "voided")
        reason = verify.note or "refuted by the supervisor on site"
        return [CaseVoided(case_id=case.case_id, version=v + 1, actor=actor, reason=reason)]
    next_state(case.state, "verified")
    verified = CaseVerified(
        case_id=case.case_id,
        version=v + 1,
        actor=actor,
        note=verify.note,
        media=list(verify.media),
    )
    if not auto_file:
        return [verified]
    return [verified, filed(case, v + 2, SYSTEM, "verified by a supervisor", case_number)]


def decide_file(
    case: CaseView, file: File, case_number: str | None = None, pack: CityPack | None = None
) -> list[CaseEvent]:
    """A supervision-centre operator files the case (立案), in the class they corrected it
    to if any (one of the pack's catalogue)."""
    next_state(case.state, "filed")
    reason = file.note or "filed by the supervision centre"
    corrected = _corrected_class(file, pack)
    actor = actor_of(file.who)
    return [filed(case, case.version + 1, actor, reason, case_number, corrected)]


def _corrected_class(file: File, pack: CityPack | None) -> tuple[Kind, str] | None:
    if file.kind is None and file.class_code is None:
        return None
    if file.kind is None or file.class_code is None:
        missing = "kind" if file.kind is None else "class_code"
        raise invalid(("body", missing), "a corrected class needs both kind and class_code")
    if pack is not None and (file.kind, file.class_code) not in pack.classes:
        raise invalid(
            ("body", "class_code"),
            f"no {file.kind} class {file.class_code} in the city's catalogue",
            "unknown_class",
        )
    return file.kind, file.class_code


def decide_void(case: CaseView, void: Void, ask_first: bool = False) -> list[EventData]:
    """A supervision-centre operator voids the report (作废), saying why; where the city
    pack says so (`ask_first`), a request the shift lead approves (case.voided) or denies."""
    next_state(case.state, "voided")
    if ask_first:
        if case.pending_request is not None and case.pending_request.case_version == case.version:
            raise conflict(
                ("state", "pending_request"),
                f"case {case.case_id} has a {case.pending_request.kind} request waiting",
                "request_pending",
            )
        return [
            VoidRequested(
                case_id=case.case_id,
                case_version=case.version,
                actor=actor_of(void.who),
                request_id=void.request_id,
                reason=void.reason,
            )
        ]
    return [
        CaseVoided(
            case_id=case.case_id,
            version=case.version + 1,
            actor=actor_of(void.who),
            reason=void.reason,
        )
    ]


def decide_void_request(case: CaseView, answer: AnswerVoid) -> list[EventData]:
    """The shift lead approves the void (the report ends, voided) or denies it (it stays
    to be verified or filed), deciding as the person who signed in."""
    pending = case.pending_request
    if pending is None or pending.kind != "void" or pending.case_version != case.version:
        raise conflict(
            ("state", "pending_request"),
            f"case {case.case_id} has no pending void request",
            "no_pending_request",
        )
    lead = Actor(role=Role.shift_lead, id=(answer.who.person or answer.who.subject)[:64])
    if not answer.approve:
        if not answer.reason:
            raise invalid(("body", "reason"), "a denial needs a reason", "missing")
        denied = VoidDenied(
            case_id=case.case_id,
            case_version=case.version,
            actor=lead,
            request_id=pending.request_id,
            reason=answer.reason,
        )
        return [denied]
    next_state(case.state, "voided")
    voided = CaseVoided(
        case_id=case.case_id,
        version=case.version + 1,
        actor=lead,
        reason=answer.reason or pending.reason,
        request_id=pending.request_id,
    )
    return [voided]


# --- duplicates by hand ---------------------------------------------------------------------


def decide_merge(case: CaseView, into: CaseView, merge: Merge) -> list[CaseEvent]:
    """An operator merges a report into another open case of the same problem."""
    if into.case_id == case.case_id:
        raise invalid(("body", "into_case_id"), "a case cannot be merged into itself", "self_merge")
    if into.state not in OPEN_STATES:
        raise conflict(
            ("body", "into_case_id"),
            f"case {into.case_id} is {into.state}: only an open case takes duplicates",
            "not_open",
        )
    next_state(case.state, "merged")
    reason = merge.reason or f"the same problem as case {into.case_id}"
    return [merged(case.case_id, case.version + 1, actor_of(merge.who), into.case_id, reason)]


def decide_split(case: CaseView, split: Split) -> list[CaseEvent]:
    """An operator splits a merged report off: a case of its own again, to verify or file."""
    next_state(case.state, "split")
    assert case.merged_into is not None
    return [
        CaseSplit(
            case_id=case.case_id,
            version=case.version + 1,
            actor=actor_of(split.who),
            from_case_id=case.merged_into,
            reason=split.reason,
        )
    ]


# --- on-site check --------------------------------------------------------------------------


def decide_check(case: CaseView, check: Check) -> list[CaseEvent]:
    """Passed: closed (结案). Failed: rework (返工), which the command centre dispatches."""
    _same_person(check.supervisor_id, check.who)
    actor = actor_of(check.who)
    v = case.version
    next_state(case.state, "checked")
    checked = CaseChecked(
        case_id=case.case_id,
        version=v + 1,
        actor=actor,
        passed=check.passed,
        note=check.note,
        media=list(check.media),
    )
    if check.passed:
        return [checked, CaseClosed(case_id=case.case_id, version=v + 2, actor=actor)]
    reason = check.note or "the on-site check failed"
    return [checked, CaseReworked(case_id=case.case_id, version=v + 2, actor=actor, reason=reason)]


# --- residents' satisfaction ----------------------------------------------------------------


def rater(case: CaseView, rate: Rate) -> Actor:
    """Who rates: a hotline operator after a callback (回访), or the resident who reported
    (their own citizen credential, or their report's follow token); anyone else is told the
    case is not theirs in the words a reporter's read uses."""
    who = rate.who
    if who.role is Access.hotline:
        return actor_of(who)
    own = who.subject != "anonymous" and case.reporter_id == who.subject
    if not (own or rate.follows):
        raise not_found(("path", "case_id"), f"no case {case.case_id} for this token")
    return Actor(role=Role.citizen, id=(who.subject if own else case.reporter_id or "website")[:64])


def decide_feedback(
    case: CaseView, rate: Rate, policy: FeedbackPolicy, now: datetime
) -> list[CaseEvent]:
    """Feedback on a closed case: evaluated, and reopened as rework when dissatisfied."""
    actor = rater(case, rate)
    if case.state is State.evaluated:
        raise conflict(
            ("state",), "this closure of the case has been rated already", "already_rated"
        )
    if case.state is not State.closed:
        raise conflict(
            ("state",),
            f"the case is {case.state.value}: feedback is taken once it is closed",
            "not_closed",
        )
    if case.closed_at is not None and now - case.closed_at > policy.window:
        raise conflict(
            ("state",),
            f"the case was closed on {case.closed_at.date().isoformat()}: feedback is taken "
            f"within {_span(policy.window)} of the closure",
            "feedback_window_passed",
        )
    v = case.version
    given = FeedbackGiven(
        case_id=case.case_id, version=v + 1, actor=actor, rating=rate.rating, comment=rate.comment
    )
    if rate.rating > policy.reopen_at_or_below:
        return [given]
    reason = (
        f"the resident was dissatisfied (rating {rate.rating} of 5, at or below "
        f"{policy.reopen_at_or_below}): reopened by the city's policy"
    )
    return [given, CaseReworked(case_id=case.case_id, version=v + 2, actor=SYSTEM, reason=reason)]


def _span(window: timedelta) -> str:
    days, seconds = window.days, window.seconds
    return f"{days} days" if days and not seconds else f"{window.total_seconds() / 3600:g} hours"


# --- callbacks (回访) ------------------------------------------------------------------------

# The rating a callback's answer gives the closure, on the resident's own 1–5 scale, so that
# one policy (`feedback.reopen_at_or_below`) decides whether it reopens the case: an
# unsolved problem rates 2 at most, whatever the resident's satisfaction.
CALLBACK_RATING: dict[Satisfaction, int] = {
    "satisfied": 5,
    "basically_satisfied": 4,
    "dissatisfied": 1,
}
UNSOLVED_AT_MOST = 2


def callback_rating(answer: CallbackAnswer) -> int:
    """The rating an answer gives (see `CALLBACK_RATING`)."""
    rating = CALLBACK_RATING[answer.satisfaction]
    return rating if answer.solved else min(rating, UNSOLVED_AT_MOST)


def decide_callback(
    pack: CityPack, case: CaseView, command: CallbackCommand, now: datetime
) -> list[EventData]:
    """The events a callback's call or answer makes of `case`, or a refusal."""
    match command:
        case CallbackTry():
            return decide_callback_try(case, command, pack.city.callback)
        case CallbackAnswer():
            return decide_callback_answer(case, command, pack.city.feedback, now)


def _callback_owed(case: CaseView) -> None:
    """A callback is owed by a closed case whose reporter left a contact, until it is
    answered or made invalid by the city's tries; refused (409) otherwise."""
    if not case.reachable or case.channel is Channel.supervisor:
        raise conflict(
            ("path", "case_id"), "the reporter left no contact: no callback is owed", "no_contact"
        )
    if case.state is State.evaluated:
        why = (
            "this closure's callback was answered"
            if case.callback_over
            else ("the resident rated this closure already")
        )
        raise conflict(
            ("state",), why, "callback_answered" if case.callback_over else "already_rated"
        )
    if case.state is not State.closed:
        raise conflict(
            ("state",),
            f"the case is {case.state.value}: a callback follows its closure",
            "not_closed",
        )
    if case.callback_over:
        raise conflict(
            ("state",),
            f"this closure's callback is invalid: {case.callback_tries} calls reached nobody",
            "callback_invalid",
        )


def decide_callback_try(
    case: CaseView, call: CallbackTry, policy: CallbackPolicy
) -> list[EventData]:
    """A call that reached nobody; the city's last try makes the callback invalid."""
    _callback_owed(case)
    attempt = case.callback_tries + 1
    return [
        CallbackUnreached(
            case_id=case.case_id,
            case_version=case.version,
            actor=actor_of(call.who),
            attempt=attempt,
            invalid=attempt >= policy.tries,
        )
    ]


def decide_callback_answer(
    case: CaseView, answer: CallbackAnswer, policy: FeedbackPolicy, now: datetime
) -> list[EventData]:
    """The resident's answers, and the rating they give on the feedback's one path
    (`decide_feedback`: evaluated, and reopened as rework when the policy says so)."""
    _callback_owed(case)
    rate = Rate(answer.case_id, answer.who, callback_rating(answer), answer.comment)
    rated = decide_feedback(case, rate, policy, now)
    answered = CallbackAnswered(
        case_id=case.case_id,
        case_version=case.version,
        actor=actor_of(answer.who),
        contacted=answer.contacted,
        solved=answer.solved,
        satisfaction=answer.satisfaction,
        comment=answer.comment,
    )
    return [answered, *rated]
