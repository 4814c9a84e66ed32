"""Answering directly (直接答复): a consultation (咨询) answered from the city's knowledge base
is closed at intake, never filed or dispatched. Pure: the case's view, the command, the
pack's knowledge base and the city's day in, the event out (or a `Refused`).

Who: the operators who take residents' questions, the hotline (热线) and the supervision
centre (监督中心). What: a report still as it came in (`reported`): once verified on site or
filed it is a problem to handle, not a question. A supervisor's report is a problem found
on patrol, never a consultation. With what: an entry of the knowledge base valid today.
"""

from __future__ import annotations

from datetime import date

from gridloop.access import Role as Access
from gridloop.cases import CaseView
from gridloop.citypack.knowledge import KnowledgeBase
from gridloop.lifecycle import next_state
from gridloop.refusal import conflict, forbidden, invalid
from schemas.events import CaseAnswered, CaseEvent, Channel
from services.intake.commands import AnswerDirectly
from services.intake.reporting import actor_of

ANSWERING = frozenset({Access.hotline, Access.supervision_centre})


def decide_answer(
    case: CaseView, command: AnswerDirectly, knowledge: KnowledgeBase, today: date
) -> list[CaseEvent]:
    """The consultation answered with the entry `command.knowledge_id`, or a refusal: a role
    that does not take consultations (403), a case past `reported` (409), a supervisor's
    report (409), an entry that does not exist or is not valid `today` (422)."""
    if command.who.role not in ANSWERING:
        raise forbidden(
            ("header", "Authorization"),
            "only hotline and supervision-centre operators answer consultations directly",
        )
    next_state(case.state, "answered")
    if case.channel is Channel.supervisor:
        raise conflict(
            ("path", "case_id"),
            f"case {case.case_id} is a supervisor's report of a problem found on patrol, "
            "not a consultation",
            "not_a_consultation",
        )
    entry = knowledge.entry(command.knowledge_id)
    if entry is None:
        raise invalid(
            ("body", "knowledge_id"),
            f"no entry {command.knowledge_id} in the city's knowledge base",
            "unknown_entry",
        )
    if not entry.valid_on(today):
        raise invalid(
            ("body", "knowledge_id"),
            f"entry {entry.id} is {entry.validity()}: it cannot answer on {today.isoformat()}",
            "entry_expired",
        )
    reason = command.note or f"answered directly from the knowledge base: {entry.question}"
    return [
        CaseAnswered(
            case_id=case.case_id,
            version=case.version + 1,
            actor=actor_of(command.who),
            reason=reason[:2000],
            knowledge_id=entry.id,
            answer=entry.answer,
        )
    ]
