"""What the race test concludes from one trial: the answers its requests got, the case's
records in the log and the case as projected. Pure: no I/O.

The rules (issue 15, point 1), checked for every trial:
- one lifecycle event per version: no version without one, none with two facts (two event
  types, or one event id carrying two contents: consumers keep the first and drop the other);
- the log replays: each version's event is a transition `gridloop.lifecycle.TRANSITIONS`
  allows from the state before it;
- an extension request is decided once: never both `case.extended` and `extension_denied`;
- a 2xx means the client's own fact is in the log: the event ids it answered with are there,
  and the first record under its fact's id (the one consumers keep) holds what it sent;
- a refusal is a 409 naming the case's current `state` and `version` at the top level of
  its body, and they agree with the log (the event at that version leads to that state);
- the projection shows the state and version the log's highest version implies;
- a request sent again with the same body and Idempotency-Key gets the same answer.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from gridloop.lifecycle import TRANSITIONS, InvalidTransition, State, next_state, transition_name
from schemas.envelope import Envelope
from schemas.events import CaseEvent, CaseExtended, ExtensionDenied

Fact = tuple[str, str]  # (ce_type, data as JSON)


@dataclass(frozen=True)
class Shot:
    """One request of a race: where it goes, what it sends, and the fact it should leave
    in the log (`fact`, whose data holds the fields `holds`: what the client sent)."""

    name: str
    service: str  # "intake" or "dispatch"
    path: str
    body: dict[str, Any]
    holder: str  # whose token (race_world.HOLDERS, or a department code)
    fact: str
    holds: dict[str, Any]
    # Refusals besides the 409 the new state may justify (a department's return after a
    # re-dispatch to another department: 403, the case is no longer its own).
    also_refused: frozenset[int] = frozenset()
    key: str = field(default_factory=lambda: f"race-{uuid.uuid4().hex}")


@dataclass(frozen=True)
class Answer:
    status: int
    body: Any

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass
class Trial:
    case_id: str
    start: int  # the case's version when the race began
    shots: Sequence[Shot]
    reaction: str | None = None  # a consumer's fact racing the shots (void vs dispatch)
    variant: str = ""
    answers: list[Answer] = field(default_factory=list)
    retries: list[tuple[Answer, Answer]] = field(default_factory=list)  # first, again


@dataclass
class Verdict:
    statuses: tuple[int, ...]
    both_acted: bool = False  # every shot 2xx (and the reaction in the log)
    split: bool = False  # two facts at one version
    dropped: int = 0  # 2xx answers whose fact is missing or holds another's content
    bare: int = 0  # refusals without the 409 state/version shape
    unreplayable: bool = False
    projection_off: bool = False
    decided_twice: bool = False
    retry_changed: int = 0
    retried: int = 0
    problems: list[str] = field(default_factory=list)


class _Log:
    """A case's records: lifecycle facts by version, and every fact by event id."""

    def __init__(self, records: Sequence[Envelope]) -> None:
        self.records = records
        self.by_version: dict[int, dict[str, set[Fact]]] = {}
        self.first: dict[str, Fact] = {}  # event id → the fact consumers keep
        for env in records:
            fact = (env.type, env.data.model_dump_json())
            self.first.setdefault(env.id, fact)
            if isinstance(env.data, CaseEvent):
                at = self.by_version.setdefault(env.data.version, {})
                at.setdefault(env.id, set()).add(fact)

    def facts_at(self, version: int) -> list[Fact]:
        return sorted({f for facts in self.by_version.get(version, {}).values() for f in facts})

    def top(self) -> int:
        return max(self.by_version, default=0)


def _short(ce_type: str) -> str:
    return transition_name(ce_type)


def _holds(data: Mapping[str, Any], expected: Mapping[str, Any]) -> bool:
    return all(data.get(k) == v for k, v in expected.items())


def _replay(log: _Log, verdict: Verdict) -> State | None:
    """The state after the highest version, or None when the log cannot say (a version
    with two facts, or none); problems noted on `verdict`."""
    state: State | None = None
    for version in range(1, log.top() + 1):
        facts = log.facts_at(version)
        if len(facts) != 1:
            verdict.split = verdict.split or len(facts) > 1
            verdict.unreplayable = True
            what = " + ".join(_short(t) for t, _ in facts) or "no event"
            ids = len(log.by_version.get(version, {}))
            same = " under one event id" if len(facts) > 1 and ids == 1 else ""
            verdict.problems.append(f"v{version}: {what}{same}")
            return None
        transition = _short(facts[0][0])
        try:
            state = next_state(state, transition)
        except InvalidTransition as exc:
            verdict.unreplayable = True
            verdict.problems.append(f"v{version}: {exc}")
            return None
    return state


def _own_fact(trial: Trial, shot: Shot, answer: Answer, log: _Log, verdict: Verdict) -> None:
    ids = answer.body.get("events", []) if isinstance(answer.body, dict) else []
    missing = [i for i in ids if i not in log.first]
    if missing or not ids:
        verdict.dropped += 1
        verdict.problems.append(
            f"{shot.name}: {answer.status}, its events {missing} not in the log"
        )
        return
    own = [json.loads(c) for t, c in (log.first[i] for i in ids) if t == shot.fact]
    if not own or not all(_holds(data, shot.holds) for data in own):
        verdict.dropped += 1
        kept = own[0] if own else None
        verdict.problems.append(
            f"{shot.name}: {answer.status}, but the log keeps {_short(shot.fact)} "
            f"{_subset(kept, shot.holds)} under its id, not {shot.holds}"
        )


def _subset(data: Mapping[str, Any] | None, like: Mapping[str, Any]) -> dict[str, Any] | None:
    return {k: data.get(k) for k in like} if data is not None else None


def _refusal(trial: Trial, shot: Shot, answer: Answer, log: _Log, verdict: Verdict) -> None:
    body = answer.body if isinstance(answer.body, dict) else {}
    state, version = body.get("state"), body.get("version")
    if answer.status in shot.also_refused and log.top() > trial.start:
        return  # what the new state decides (the other request moved the case)
    shaped = isinstance(state, str) and isinstance(version, int) and not isinstance(version, bool)
    if answer.status != 409 or not shaped:
        verdict.bare += 1
        detail = body.get("detail") if body else answer.body
        verdict.problems.append(
            f"{shot.name}: {answer.status} without the case's state and version ({detail})"
        )
        return
    assert isinstance(version, int)
    implied = {TRANSITIONS[_short(t)][1].value for t, _ in log.facts_at(version)}
    if version < trial.start or state not in implied:
        verdict.bare += 1
        verdict.problems.append(
            f"{shot.name}: 409 names {state} v{version}; the log has {sorted(implied)} there "
            f"(the race began at v{trial.start})"
        )


def audit(trial: Trial, records: Sequence[Envelope], projected: Mapping[str, Any]) -> Verdict:
    """The verdict on one trial."""
    log = _Log(records)
    verdict = Verdict(tuple(a.status for a in trial.answers))
    state = _replay(log, verdict)
    if state is not None and (projected.get("state"), projected.get("version")) != (
        state.value,
        log.top(),
    ):
        verdict.projection_off = True
        verdict.problems.append(
            f"projected {projected.get('state')} v{projected.get('version')}, "
            f"the log says {state.value} v{log.top()}"
        )
    for shot, answer in zip(trial.shots, trial.answers, strict=True):
        if answer.ok:
            _own_fact(trial, shot, answer, log, verdict)
        else:
            _refusal(trial, shot, answer, log, verdict)
    reacted = trial.reaction is None or any(
        env.type == trial.reaction
        and isinstance(env.data, CaseEvent)
        and env.data.version > trial.start
        for env in records
    )
    verdict.both_acted = reacted and all(a.ok for a in trial.answers)
    extended = {e.data.request_id for e in records if isinstance(e.data, CaseExtended)}
    denied = {e.data.request_id for e in records if isinstance(e.data, ExtensionDenied)}
    if twice := (extended & denied) - {None}:
        verdict.decided_twice = True
        verdict.problems.append(f"extension request {sorted(map(str, twice))} approved and denied")
    for first, again in trial.retries:
        verdict.retried += 1
        if (first.status, first.body) != (again.status, again.body):
            verdict.retry_changed += 1
            verdict.problems.append(f"the same request again: {again.status}, first {first.status}")
    return verdict


# --- the summary -------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    pair: str
    trials: int
    both_acted: int
    one_refused: int
    split: int
    dropped: int
    bare: int
    unreplayable: int
    projection_off: int
    decided_twice: int
    retry_changed: int
    retried: int
    seconds: float

    @property
    def failed(self) -> bool:
        return any(
            (
                self.split,
                self.dropped,
                self.bare,
                self.unreplayable,
                self.projection_off,
                self.decided_twice,
                self.retry_changed,
            )
        )


COLUMNS = (
    ("pair", 24),
    ("trials", 6),
    ("both 2xx", 8),
    ("one 409", 7),
    ("2 facts/v", 9),
    ("2xx lost", 8),
    ("bad 4xx", 7),
    ("no replay", 9),
    ("proj≠log", 8),
    ("ext 2×", 6),
    ("retry≠", 9),
    ("secs", 6),
)


def summarise(pair: str, verdicts: Sequence[Verdict], seconds: float) -> Row:
    def trials(flag: str) -> int:
        return sum(1 for v in verdicts if getattr(v, flag))

    return Row(
        pair=pair,
        trials=len(verdicts),
        both_acted=trials("both_acted"),
        one_refused=sum(1 for v in verdicts if sum(s >= 400 for s in v.statuses) == 1),
        split=trials("split"),
        dropped=sum(v.dropped for v in verdicts),
        bare=sum(v.bare for v in verdicts),
        unreplayable=trials("unreplayable"),
        projection_off=trials("projection_off"),
        decided_twice=trials("decided_twice"),
        retry_changed=sum(v.retry_changed for v in verdicts),
        retried=sum(v.retried for v in verdicts),
        seconds=seconds,
    )


def table(rows: Sequence[Row]) -> str:
    """The rows as a fixed-width table, with a legend."""
    head = " ".join(name.rjust(width) for name, width in COLUMNS)
    lines = [head, "-" * len(head)]
    for r in rows:
        cells = (
            r.pair,
            r.trials,
            r.both_acted,
            r.one_refused,
            r.split,
            r.dropped,
            r.bare,
            r.unreplayable,
            r.projection_off,
            r.decided_twice,
            f"{r.retry_changed}/{r.retried}",
            f"{r.seconds:.0f}",
        )
        lines.append(" ".join(str(c).rjust(w) for c, (_, w) in zip(cells, COLUMNS, strict=True)))
    lines.append(LEGEND)
    return "\n".join(lines)


LEGEND = (
    "both 2xx: trials where every request was answered 2xx (and the reaction acted); "
    "one 409: trials with one refusal;\n"
    "2 facts/v: trials with two facts at one version; 2xx lost: 2xx answers whose fact the "
    "log does not keep; bad 4xx: refusals not 409 with state and version;\n"
    "no replay: trials whose log is not a path of TRANSITIONS; proj≠log: projection not the "
    "log's last state; ext 2×: an extension both approved and denied;\n"
    "retry≠: repeated identical requests answered differently / repeated"
)
