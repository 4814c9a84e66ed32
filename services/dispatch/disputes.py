"""Disputes (矛盾纠纷): the tier ladder's decisions. Pure: a dispute's view, a command and the
city's ladder in; an event or a refusal out.

A dispute is owned by a tier office, never a department: its grid mediates first; the tier
holding it escalates it when it is beyond its authority (with a reason), and its breach (the
SLA engine's, on the tier's limit) takes it up one tier, once; a tier overdue must explain;
the tier holding it closes it with the parties' confirmation (验收) or its record of why not.

    grid ─▶ community ─▶ street ─▶ district (─▶ city: where the pack's ladder reaches it)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from gridloop.access import Principal, Role
from gridloop.cases.view import CaseView, TierSpell
from gridloop.citypack import CityPack
from gridloop.citypack.disputes import DisputeLadder, office_code
from gridloop.lifecycle import OPEN_STATES
from gridloop.refusal import conflict, forbidden, invalid, not_found
from schemas.events import (
    Actor,
    DisputeClosed,
    DisputeConfirmed,
    DisputeEscalated,
    DisputeExplained,
    EscalationCause,
    EventData,
    Party,
    SlaBreach,
    Stage,
)
from schemas.events import Role as ActorRole


@dataclass(frozen=True)
class Escalate:
    """The tier holding the dispute says it is beyond its authority: up one tier."""

    case_id: str
    who: Principal
    reason: str


@dataclass(frozen=True)
class ExplainOverdue:
    """An overdue tier's explanation (Zhoushan: every overdue item gets an answer)."""

    case_id: str
    who: Principal
    explanation: str


@dataclass(frozen=True)
class Confirm:
    """验收: the parties confirmed the resolution of the tier holding the dispute."""

    case_id: str
    who: Principal
    parties: tuple[Party, ...]


@dataclass(frozen=True)
class Close:
    """The tier holding the dispute closes it: on the parties' confirmation, or with its
    record of why they did not confirm (`unconfirmed_reason`)."""

    case_id: str
    who: Principal
    note: str | None = None
    unconfirmed_reason: str | None = None


DisputeCommand = Escalate | ExplainOverdue | Confirm | Close

SYSTEM = Actor(role=ActorRole.system, id="sla")


def decide(pack: CityPack, case: CaseView, command: DisputeCommand, now: datetime) -> EventData:
    """The event `command` makes of the dispute, or a refusal."""
    match command:
        case Escalate():
            spell = _holder(pack, case, command.who)
            actor = _actor(command.who)
            return _escalated(pack, case, spell, "beyond_authority", actor, now, command.reason)
        case ExplainOverdue():
            return decide_explain(pack, case, command, now)
        case Confirm():
            spell = _holder(pack, case, command.who)
            return DisputeConfirmed(
                case_id=case.case_id,
                case_version=case.version,
                actor=_actor(command.who),
                tier=spell.tier,
                office=spell.office,
                parties=list(command.parties),
            )
        case Close():
            return decide_close(pack, case, command)


def grid_staff_of(pack: CityPack, staff_id: str, grid_code: str) -> bool:
    """Whether `staff_id` works the grid `grid_code` (网格员, a member of its service team)
    in the pack's staff register (`staff.yaml`); a supervisor (监督员) mediates nothing."""
    person = pack.staff.people.get(staff_id)
    return person is not None and person.role != "supervisor" and grid_code in person.grids


def offices_of(pack: CityPack, who: Principal) -> list[str]:
    """The tier offices `who` acts for: its own code, or a grid staff's grids."""
    if who.role is Role.grid_staff:
        return [g for g in pack.staff.grids_of(who.subject) if grid_staff_of(pack, who.subject, g)]
    return [who.subject] if who.role is Role.tier_office else []


def acts_for(pack: CityPack, who: Principal, spell: TierSpell, grid_code: str) -> bool:
    """Whether `who` acts for the tier of `spell`: the grid's staff at the grid tier (the
    register says who works which grid), the tier's office (subject: its code) above."""
    if spell.tier == "grid":
        return who.role is Role.grid_staff and grid_staff_of(pack, who.subject, grid_code)
    return who.role is Role.tier_office and who.subject == spell.office


def escalate_on_breach(pack: CityPack, case: CaseView, breach: SlaBreach, now: datetime) -> (
    list[EventData] | None
):  # fmt: skip
    """A tier's breach takes its dispute up one tier, once: only while the tier whose clock
    broke (opened at `breach.case_version`) still holds it open, and only if there is a tier
    above (at the top, the tier explains instead). None when the view is behind the breach."""
    if breach.stage is not Stage.mediate:
        return []
    if case.version < breach.case_version:
        return None
    spell = case.spell
    if spell is None or case.state not in OPEN_STATES or spell.version != breach.case_version:
        return []  # moved on already: closed, or escalated by hand or by this very breach
    ladder = pack.sla.disputes
    if ladder is None or ladder.above(spell.tier) is None:
        return []
    why = f"the {spell.tier}'s limit passed at {breach.deadline.isoformat()}"
    return [_escalated(pack, case, spell, "breach", SYSTEM, now, why)]


def decide_explain(
    pack: CityPack, case: CaseView, command: ExplainOverdue, now: datetime
) -> DisputeExplained:
    """The explanation of the caller's tier, owed when its spell ran past its limit (left
    by a breach, or still holding the dispute after its deadline)."""
    _dispute(case)
    ladder = _ladder(pack)
    mine = [s for s in case.spells if acts_for(pack, command.who, s, case.grid_code or "")]
    if not mine:
        raise forbidden(("case_id",), "your office has not held this dispute")
    spell = mine[-1]
    if spell.office in case.explained_offices:
        raise conflict(("case_id",), f"the {spell.tier} explained already", "already_explained")
    if not _overdue(ladder, spell, now):
        raise conflict(
            ("case_id",),
            f"the {spell.tier} is not overdue on this dispute: nothing to explain",
            "not_overdue",
        )
    return DisputeExplained(
        case_id=case.case_id,
        case_version=spell.version,
        actor=_actor(command.who),
        tier=spell.tier,
        office=spell.office,
        explanation=command.explanation,
    )


def decide_close(pack: CityPack, case: CaseView, command: Close) -> DisputeClosed:
    """Closed by the tier holding it: confirmed by the parties since its last change, or
    with the tier's reason why not."""
    spell = _holder(pack, case, command.who)
    confirmed = case.confirmed_version == case.version and bool(case.confirmed)
    reason = command.unconfirmed_reason
    if not confirmed and not reason:
        raise invalid(
            ("body", "unconfirmed_reason"),
            "the parties have not confirmed the resolution (验收): confirm first, "
            "or record why they did not",
            "not_confirmed",
        )
    if confirmed and reason:
        raise invalid(
            ("body", "unconfirmed_reason"),
            "the parties confirmed the resolution: no reason why not is needed",
            "confirmed_already",
        )
    return DisputeClosed(
        case_id=case.case_id,
        version=case.version + 1,
        actor=_actor(command.who),
        reason=reason or command.note,
        tier=spell.tier,
        office=spell.office,
        confirmed=confirmed,
        parties=list(case.confirmed) if confirmed else [],
    )


def overdue(pack: CityPack, spell: TierSpell, now: datetime) -> bool:
    """Whether the tier of `spell` ran past its limit (for a tier's view)."""
    return pack.sla.disputes is not None and _overdue(pack.sla.disputes, spell, now)


# --- the rungs --------------------------------------------------------------------------------


def _escalated(
    pack: CityPack,
    case: CaseView,
    spell: TierSpell,
    cause: EscalationCause,
    actor: Actor,
    now: datetime,
    reason: str | None = None,
) -> DisputeEscalated:
    ladder = _ladder(pack)
    above = ladder.above(spell.tier)
    if above is None:
        raise conflict(
            ("case_id",),
            f"the {spell.tier} is the top of this city's ladder: resolve or close the dispute",
            "top_tier",
        )
    due, assumed = ladder.deadline(above, now)
    return DisputeEscalated(
        case_id=case.case_id,
        version=case.version + 1,
        actor=actor,
        reason=reason,
        from_tier=spell.tier,
        from_office=spell.office,
        tier=above,
        office=office_code(above, case.grid_code or ""),
        cause=cause,
        deadline=due,
        assumed_years=list(assumed),
    )


def _overdue(ladder: DisputeLadder, spell: TierSpell, now: datetime) -> bool:
    if spell.cause == "breach":
        return True
    due, _ = ladder.deadline(spell.tier, spell.since)
    return (spell.until or now) > due


def _dispute(case: CaseView) -> TierSpell:
    if case.spell is None:
        raise not_found(("case_id",), f"{case.case_id} is not a dispute")
    return case.spell


def _holder(pack: CityPack, case: CaseView, who: Principal) -> TierSpell:
    """The spell of the tier holding the open dispute, which must be the caller's."""
    spell = _dispute(case)
    if case.state not in OPEN_STATES:
        raise conflict(("state",), f"the dispute is {case.state}", "dispute_closed")
    if not acts_for(pack, who, spell, case.grid_code or ""):
        raise forbidden(
            ("case_id",), f"the {spell.tier} ({spell.office}) holds this dispute, not your office"
        )
    return spell


def _ladder(pack: CityPack) -> DisputeLadder:
    if pack.sla.disputes is None:
        raise conflict(("case_id",), "this city's pack has no dispute ladder", "no_disputes")
    return pack.sla.disputes


def _actor(who: Principal) -> Actor:
    return Actor(role=ActorRole(who.role.value), id=who.subject, person=who.person)
