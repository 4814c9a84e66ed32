"""民情分析 (demand analysis) of the monthly report: what residents raised, by type, beside
the month before; the disputes still unresolved and where they sit; what the grid staff's
visits found. Pure, from case documents (collect.py) and the pack.

Residents raise a problem through the hotline and the website (a supervisor's patrol is
the city finding it, not a resident raising it). Two parts are filled by the parts of
issue 17 that add their data, each through one function here:

- disputes (矛盾纠纷): `unresolved_disputes`, over the open cases of the case kind
  `dispute` (`collect.open_disputes`); an empty table while the catalogue has no such kind.
  Where a dispute sits is `sits_with`: the office that holds it now.
- visits (走访): `VisitFinding` rows, as `collect.visit_findings` reads them from the grid
  service's visit log (`gridloop.visits`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, get_args

from gridloop.citypack import CityPack
from gridloop.lifecycle import OPEN_STATES
from schemas.events import Channel, Kind

Case = dict[str, Any]
By = Literal["kind", "channel", "class"]
RESIDENTS = frozenset({Channel.hotline.value, Channel.website.value})
DISPUTE = "dispute"  # the case kind of disputes (矛盾纠纷), once the catalogue has it
KINDS = {"component": "部件 component", "event": "事件 event", DISPUTE: "矛盾纠纷 dispute"}
CHANNELS = {"hotline": "热线 hotline", "website": "网站 website"}


@dataclass(frozen=True)
class Raised:
    """How many reports residents raised of one type this month, and the month before
    (None: no month before to compare)."""

    by: By
    code: str
    name: str
    this: int
    last: int | None

    @property
    def change(self) -> int | None:
        return None if self.last is None else self.this - self.last


@dataclass(frozen=True)
class Unresolved:
    """The disputes still open with one office (a tier's), and the oldest of them."""

    owner: str
    name: str
    disputes: int
    oldest: datetime | None


@dataclass(frozen=True)
class VisitFinding:
    """What the grid staff's visits found of one type (a need, a dispute, a hazard, …) this
    month and the month before; rows come from the visits' register (see the module)."""

    code: str
    name: str
    this: int
    last: int | None

    @property
    def change(self) -> int | None:
        return None if self.last is None else self.this - self.last


@dataclass(frozen=True)
class Demand:
    raised: list[Raised] = field(default_factory=list)
    disputes: list[Unresolved] = field(default_factory=list)
    visits: list[VisitFinding] = field(default_factory=list)
    residents: int = 0  # reports residents raised this month
    residents_last: int | None = None

    def __bool__(self) -> bool:
        return bool(self.raised or self.disputes or self.visits)


def residents(cases: Sequence[Case]) -> list[Case]:
    """The cases a resident raised (hotline, website)."""
    return [c for c in cases if c.get("channel") in RESIDENTS]


def _class_code(case: Case) -> str:
    return f"{case.get('kind') or '?'} {case.get('class_code') or '?'}"


def raised(cases: Sequence[Case], last: Sequence[Case] | None, pack: CityPack) -> list[Raised]:
    """What residents raised by kind, by channel and by class (most first within each),
    with the month before's count of the same type."""

    def names(by: By, code: str) -> str:
        if by == "kind":
            return KINDS.get(code, code)
        if by == "channel":
            return CHANNELS.get(code, code)
        kind, _, klass = code.partition(" ")
        known = pack.classes.get((kind, klass))  # type: ignore[arg-type]
        return known.name if known else code

    keys: dict[By, Callable[[Case], str]] = {
        "kind": lambda c: str(c.get("kind") or "?"),
        "channel": lambda c: str(c.get("channel")),
        "class": _class_code,
    }
    now, before = residents(cases), residents(last) if last is not None else None
    rows = []
    for by, key in keys.items():
        this = Counter(key(c) for c in now)
        then = Counter(key(c) for c in before) if before is not None else Counter[str]()
        for code in sorted(this.keys() | then.keys(), key=lambda k: (-this[k], -then[k], k)):
            was = then[code] if before is not None else None
            rows.append(Raised(by, code, names(by, code), this[code], was))
    return rows


def sits_with(case: Case) -> str:
    """Where an unresolved dispute sits: the tier office that holds it now (the
    projection's `tier` and `tier_office`: docs/disputes.md), else still with its grid."""
    tier, office = case.get("tier"), case.get("tier_office")
    if tier and office:
        return f"{tier} {office}"
    return f"grid {case.get('grid_code') or '?'}"


def office_name(owner: str, pack: CityPack) -> str:
    """A tier office (`sits_with`) as the city names it: the grid's, community's or
    street's name from the pack, the district's; the code where the pack has none."""
    tier, _, office = owner.partition(" ")
    names: dict[str, str | None] = {
        "grid": getattr(pack.grid_by_code.get(office), "name", None),
        "community": next((c.name for c in pack.city.communities if c.code == office), None),
        "street": getattr(pack.streets.get(office), "name", None),
        "district": pack.city.district.name if pack.city.district.code == office else None,
    }
    return names.get(tier) or owner


def unresolved_disputes(
    disputes: Sequence[Case], pack: CityPack, kinds: Sequence[str] = get_args(Kind)
) -> list[Unresolved]:
    """The disputes not yet closed, by the tier office that holds them (most first).
    Empty while the case kinds (`kinds`: schemas.events.Kind) have no dispute."""
    if DISPUTE not in kinds:
        return []
    open_ = [c for c in disputes if c.get("kind") == DISPUTE and c.get("state") in OPEN_STATES]
    held: dict[str, list[Case]] = {}
    for case in open_:
        held.setdefault(sits_with(case), []).append(case)
    rows = []
    for owner, cases in held.items():
        times = [c["reported_at"] for c in cases if c.get("reported_at") is not None]
        rows.append(
            Unresolved(owner, office_name(owner, pack), len(cases), min(times, default=None))
        )
    return sorted(rows, key=lambda r: (-r.disputes, r.owner))


def analyse(
    cases: Sequence[Case],
    last: Sequence[Case] | None,
    pack: CityPack,
    disputes: Sequence[Case] = (),
    visits: Sequence[VisitFinding] = (),
) -> Demand:
    """The month's demand analysis (`last`: the month before's cases, None: none)."""
    return Demand(
        raised=raised(cases, last, pack),
        disputes=unresolved_disputes(disputes, pack),
        visits=list(visits),
        residents=len(residents(cases)),
        residents_last=len(residents(last)) if last is not None else None,
    )
