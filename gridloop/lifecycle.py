"""The case state machine (the closed loop, 闭环). Pure: no I/O.

reported ─▶ verified ─▶ filed ─▶ dispatched ─▶ handled ─▶ checked ─▶ closed ─▶ evaluated
   ├─▶ filed (supervisor reports need no verification)   │      └─▶ rework ─▶ dispatched
   ├─▶ voided / merged          returned, parked ⇄ resumed, extended
   ├─▶ answered (a consultation answered directly from the knowledge base: 直接答复)
   └─▶ self_handled (自处置: the supervisor or grid manager who reported it fixed it)
A dispute (kind `dispute`): reported (its grid mediates) ─▶ mediating (a tier above) ─▶ closed
"""

from __future__ import annotations

from enum import StrEnum

from gridloop.refusal import Refused, Why


class State(StrEnum):
    reported = "reported"
    verified = "verified"
    filed = "filed"
    voided = "voided"  # 作废
    merged = "merged"
    dispatched = "dispatched"
    returned = "returned"  # 回退
    parked = "parked"  # 挂账
    handled = "handled"
    checked = "checked"
    rework = "rework"  # 返工
    closed = "closed"  # 结案
    evaluated = "evaluated"
    answered = "answered"  # 直接答复: a consultation answered from the knowledge base
    mediating = "mediating"  # 调解中: a dispute escalated to a tier office above its grid
    self_handled = "self_handled"  # 自处置: fixed on the spot by who reported it


S = State
# event type suffix → (states it may follow, state it leads to); None is "no case yet".
TRANSITIONS: dict[str, tuple[frozenset[State | None], State]] = {
    "reported": (frozenset({None}), S.reported),
    "verified": (frozenset({S.reported}), S.verified),
    "filed": (frozenset({S.reported, S.verified}), S.filed),
    "voided": (frozenset({S.reported, S.verified, S.filed}), S.voided),
    "merged": (frozenset({S.reported, S.verified}), S.merged),
    "split": (frozenset({S.merged}), S.reported),  # a merge undone by hand
    # From dispatched or parked: the command centre re-dispatches by hand (改派).
    "dispatched": (
        frozenset({S.filed, S.returned, S.rework, S.dispatched, S.parked}),
        S.dispatched,
    ),
    "returned": (frozenset({S.dispatched}), S.returned),
    "extended": (frozenset({S.dispatched}), S.dispatched),
    "parked": (frozenset({S.dispatched}), S.parked),
    "resumed": (frozenset({S.parked}), S.dispatched),
    "handled": (frozenset({S.dispatched}), S.handled),
    "checked": (frozenset({S.handled}), S.checked),
    "closed": (frozenset({S.checked}), S.closed),
    "rework": (frozenset({S.checked, S.evaluated}), S.rework),  # evaluated: reopened
    "feedback": (frozenset({S.closed}), S.evaluated),
    "answered": (frozenset({S.reported}), S.answered),  # terminal: never filed or dispatched
    # Disputes (矛盾纠纷): reported, the grid mediates; up a tier; closed by the tier holding it.
    "dispute_escalated": (frozenset({S.reported, S.mediating}), S.mediating),
    "dispute_closed": (frozenset({S.reported, S.mediating}), S.closed),
    "self_handled": (frozenset({S.reported}), S.self_handled),  # terminal, like answered
}
OPEN_STATES = frozenset(State) - {S.voided, S.merged, S.closed, S.evaluated, S.answered}
OPEN_STATES -= {S.self_handled}  # 自处置 ends the case as it opens it


class InvalidTransition(Refused):
    """A command that the case's current state does not allow (a conflict: 409)."""

    def __init__(self, state: State | None, transition: str) -> None:
        self.state = state
        self.transition = transition
        allowed = sorted(s or "(new)" for s in TRANSITIONS[transition][0])
        super().__init__(
            Why.conflict,
            ("state",),
            f"cannot apply '{transition}' to a case that is {state or 'new'}; "
            f"allowed from: {', '.join(allowed)}",
            "invalid_transition",
        )


def transition_name(ce_type: str) -> str:
    """`gridloop.case.filed` → `filed`."""
    return ce_type.rsplit(".", 1)[-1]


def next_state(state: State | None, transition: str) -> State:
    """The state after `transition`, or InvalidTransition."""
    sources, target = TRANSITIONS[transition]
    if state not in sources:
        raise InvalidTransition(state, transition)
    return target


def can(state: State | None, transition: str) -> bool:
    return state in TRANSITIONS[transition][0]
