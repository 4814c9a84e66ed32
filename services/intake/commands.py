"""What reporters, supervisors and the supervision centre ask of intake: plain typed values,
built by the HTTP edge from a request and its credential (`who`), decided by the core.

信息收集 report; 核实 verify a citizen report; 立案 file; 作废 void; merge a duplicate and
split it off again; 直接答复 answer a consultation from the knowledge base; 核查 check a
handled case on site; 满意度 rate a closed case; 回访 call the reporter back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from gridloop.access import Principal
from gridloop.contacts import Contact
from schemas.events import Channel, Kind, Point, Reporter, Satisfaction


@dataclass(frozen=True)
class Report:
    """A report (信息收集): where (a point, a coded component, or for the hotline the grid
    the operator located the address in), what, and who reported it."""

    case_id: str
    who: Principal
    channel: Channel
    description: str
    kind: Kind | None = None
    class_code: str | None = None
    component_id: str | None = None
    point: Point | None = None
    grid_code: str | None = None
    address: str | None = None
    reporter: Reporter = field(default_factory=Reporter)
    media: tuple[str, ...] = ()
    urgency: str | None = None  # graded by staff; none is the city's `normal`
    # How to reach the reporter: kept in the contact store, `reporter.contact` names it.
    contact: Contact = field(default_factory=Contact)


@dataclass(frozen=True)
class Verify:
    """核实: a supervisor confirms or refutes a citizen report on site."""

    case_id: str
    who: Principal
    confirmed: bool
    note: str | None = None
    media: tuple[str, ...] = ()
    supervisor_id: str | None = None  # optional: the credential says who


@dataclass(frozen=True)
class Check:
    """核查: a supervisor checks a handled case on site: passed (closed) or rework."""

    case_id: str
    who: Principal
    passed: bool
    note: str | None = None
    supervisor_id: str | None = None
    media: tuple[str, ...] = ()  # the check's photos: linked to the case like a verification's


@dataclass(frozen=True)
class File:
    """立案: a supervision-centre operator files the case, in another class of the
    catalogue if the report's was wrong (class correction)."""

    case_id: str
    who: Principal
    note: str | None = None
    kind: Kind | None = None
    class_code: str | None = None


@dataclass(frozen=True)
class Void:
    """作废: the report is invalid, and why (at once, or once the shift lead approves, where
    the city pack says so: then `request_id` names the request)."""

    case_id: str
    who: Principal
    reason: str
    request_id: str = ""


@dataclass(frozen=True)
class AnswerVoid:
    """The shift lead (值班长) approves or denies the case's pending void request; a
    denial says why."""

    case_id: str
    who: Principal
    approve: bool
    reason: str | None = None


@dataclass(frozen=True)
class Merge:
    """The report is a duplicate of another open case."""

    case_id: str
    who: Principal
    into_case_id: str
    reason: str | None = None


@dataclass(frozen=True)
class Split:
    """A merged report becomes a case of its own again."""

    case_id: str
    who: Principal
    reason: str


@dataclass(frozen=True)
class Rate:
    """满意度: the reporter (`follows`: they showed their report's follow token) or a hotline
    operator after a callback rates the closed case, 1 to 5."""

    case_id: str
    who: Principal
    rating: int
    comment: str | None = None
    follows: bool = False


@dataclass(frozen=True)
class CallbackTry:
    """回访: a hotline operator called the reporter back about the closure and reached
    nobody."""

    case_id: str
    who: Principal


@dataclass(frozen=True)
class CallbackAnswer:
    """回访: the reporter's answers to the hotline's callback: contacted by the unit (响应),
    solved (解决), satisfied / basically satisfied / dissatisfied (满意)."""

    case_id: str
    who: Principal
    contacted: bool
    solved: bool
    satisfaction: Satisfaction
    comment: str | None = None


@dataclass(frozen=True)
class AnswerDirectly:
    """直接答复: a hotline or supervision-centre operator answers a consultation (咨询) from
    the city's knowledge base (entry `knowledge_id`): the case ends answered, never filed
    or dispatched."""

    case_id: str
    who: Principal
    knowledge_id: str
    note: str | None = None


CaseCommand = Verify | Check | File | Void | AnswerVoid | Merge | Split | Rate | AnswerDirectly
CallbackCommand = CallbackTry | CallbackAnswer


@dataclass(frozen=True)
class SelfHandle:
    """自处置: a supervisor or grid manager fixed a minor problem on the spot: where and what
    (as a supervisor's report: a point or a coded component), the photos before and after,
    and what they did. One command opens the case and closes it without dispatch."""

    case_id: str
    who: Principal
    description: str
    before: tuple[str, ...]
    after: tuple[str, ...]
    kind: Kind | None = None
    class_code: str | None = None
    component_id: str | None = None
    point: Point | None = None
    note: str | None = None
