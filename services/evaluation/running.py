"""Running totals (累计) of the stored scores. Pure.

A stored score is a sum over the cases it counts: each indicator's numerator and denominator,
and the number of cases. So what a case adds to the scores it counts in (its *contribution*:
its periods and, for every entity it counts for, its verdicts) is enough to move those
scores when the case changes: subtract what was counted, add what is now. A recomputation
then costs the cases that changed, not every case of the month they were reported in.

A contribution is stored with its case as JSON:

    {"periods": {"day": "2026-11-03", "week": "2026-W45", "month": "2026-11"},
     "judged": [["street", "001", {"closure": 1, "rework": 0}], ...]}

where 1 counts in the numerator and denominator, 0 in the denominator only, and an
indicator left out is not counted (`indicators.py`: a verdict of None).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from gridloop.citypack.evaluation import EvaluationPolicy
from gridloop.mongo import Document
from gridloop.scoring import APPLIES, ON_READ, Level, PeriodKind, Ratio, Score, period_kind
from services.evaluation.facts import CaseFacts
from services.evaluation.indicators import Judge, entities, periods
from services.evaluation.scores import graded


@dataclass(frozen=True)
class Key:
    """One score: an entity of a level over a period."""

    level: Level
    entity: str
    kind: PeriodKind
    period: str

    @property
    def id(self) -> str:
        return f"{self.level.value}/{self.entity}/{self.period}"

    @classmethod
    def parse(cls, key: str) -> Key:
        """The key of an `id` (an entity may hold a slash; a level and a period do not)."""
        level, rest = key.split("/", 1)
        entity, period = rest.rsplit("/", 1)
        return cls(Level(level), entity, period_kind(period), period)


def contribution(facts: CaseFacts, command_centre: str, zone: ZoneInfo, judge: Judge) -> Document:
    """What the case adds to the stored scores it counts in (none before its report is read:
    it counts nowhere yet)."""
    if facts.reported_at is None:
        return {"periods": {}, "judged": []}
    judged = [
        [level.value, entity, _verdicts(judge, level, entity, facts)]
        for level in Level
        if level not in ON_READ  # scored when read: stored nowhere
        for entity in entities(facts, level, command_centre)
    ]
    found = {kind.value: period for kind, period in periods(facts.reported_at, zone).items()}
    return {"periods": found, "judged": judged}


def _verdicts(judge: Judge, level: Level, entity: str, facts: CaseFacts) -> dict[str, int]:
    verdicts = judge(level, entity, facts)
    return {i.value: int(v) for i, v in verdicts.items() if v is not None}


@dataclass
class Delta:
    """How much one score moves: its cases, and each indicator's numerator and denominator."""

    cases: int = 0
    numerators: Counter[str] = field(default_factory=Counter)
    denominators: Counter[str] = field(default_factory=Counter)

    def add(self, verdicts: dict[str, int], sign: int) -> None:
        self.cases += sign
        for indicator, verdict in verdicts.items():
            self.denominators[indicator] += sign
            self.numerators[indicator] += sign * verdict

    def moves(self) -> bool:
        return bool(self.cases or any(self.numerators.values()) or any(self.denominators.values()))

    def inc(self) -> dict[str, int]:
        """The delta as a MongoDB `$inc` of a totals document (`totals`)."""
        moved = {"cases": self.cases}
        moved |= {f"n.{i}": v for i, v in self.numerators.items() if v}
        moved |= {f"d.{i}": v for i, v in self.denominators.items() if v}
        return {path: v for path, v in moved.items() if v}


def counted_in(found: Document | None) -> Iterator[tuple[Key, dict[str, int]]]:
    """Each score a contribution counts in, with the case's verdicts there."""
    if not found:
        return
    for level, entity, verdicts in found["judged"]:
        for kind, period in found["periods"].items():
            yield Key(Level(level), entity, PeriodKind(kind), period), verdicts


def deltas(changes: Iterable[tuple[Document | None, Document | None]]) -> dict[Key, Delta]:
    """How the scores move when cases go from what was counted to what is now, by pairs
    (before, after); None: counted nowhere. Scores that do not move are left out."""
    moved: dict[Key, Delta] = {}
    for before, after in changes:
        for sign, found in ((-1, before), (1, after)):
            for key, verdicts in counted_in(found):
                moved.setdefault(key, Delta()).add(verdicts, sign)
    return {key: delta for key, delta in moved.items() if delta.moves()}


def totalled(key: Key, totals: Document, name: str, policy: EvaluationPolicy) -> Score | None:
    """The score of `key` from its running totals (None: no case counts there any more)."""
    if totals.get("cases", 0) <= 0:
        return None
    numerators, denominators = totals.get("n", {}), totals.get("d", {})
    ratios = {
        i: Ratio(numerator=numerators.get(i.value, 0), denominator=denominators.get(i.value, 0))
        for i in APPLIES[key.level]
    }
    return graded(
        key.level, key.entity, name, key.period, key.kind, totals["cases"], ratios, policy
    )
