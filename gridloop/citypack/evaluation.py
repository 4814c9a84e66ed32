"""The evaluation part of a city pack (`evaluation.yaml`, optional): the weights of each
indicator in each level's composite 100-point score, the grade bands, and the rating a
resident must give to count as satisfied. Loaded and validated with the rest of the pack
(`load_city_pack(path).evaluation`); pure once loaded.

    policy = pack.evaluation
    policy.weights(Level.department)   # {Indicator.on_time_handling: 25.0, …}
    policy.grade(82.5)                 # "B"

A level the file does not name keeps its default weights; a level it names gets exactly
the weights it lists (an indicator left out weighs nothing). A weight on an indicator its
level is not rated on is an error naming who is (docs/evaluation.md: who is rated on
what). Weights need not sum to 100: the score divides by the weights of the indicators
that applied (services/evaluation).
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gridloop.citypack.errors import read_model
from gridloop.scoring import APPLIES, Indicator, Level

EVALUATION_FILE = "evaluation.yaml"
Ind = Indicator
Weight = Annotated[float, Field(ge=0, le=1000)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Band(_Strict):
    """A score of at least `min` earns `grade`."""

    grade: Annotated[str, Field(min_length=1, max_length=8)]
    min: Annotated[float, Field(gt=0, le=100)]


DEFAULT_BANDS = (
    Band(grade="A", min=90),
    Band(grade="B", min=75),
    Band(grade="C", min=60),
    Band(grade="D", min=40),
)
_PLACE = {
    Ind.filing_rate: 10.0,
    Ind.dispatch_accuracy: 5.0,
    Ind.on_time_handling: 20.0,
    Ind.closure: 15.0,
    Ind.on_time_closure: 15.0,
    Ind.rework: 10.0,
    Ind.supervisor_share: 10.0,
    Ind.response: 5.0,
    Ind.resolution: 5.0,
    Ind.satisfaction: 5.0,
}
DEFAULT_WEIGHTS: dict[Level, dict[Indicator, float]] = {
    Level.department: {
        Ind.on_time_handling: 25.0,
        Ind.closure: 15.0,
        Ind.on_time_closure: 15.0,
        Ind.rework: 10.0,
        Ind.response: 10.0,
        Ind.resolution: 5.0,
        Ind.satisfaction: 10.0,
        Ind.urge_replies: 10.0,
    },
    Level.street: _PLACE,
    Level.community: _PLACE,
    Level.grid: _PLACE,
    Level.supervisor: {
        Ind.filing_rate: 40.0,
        Ind.on_time_verification: 30.0,
        Ind.on_time_check: 30.0,
        Ind.missed_reports: 20.0,  # 漏报率 (as 1 − rate): issue 17
    },
    Level.command_centre: {Ind.dispatch_accuracy: 50.0, Ind.on_time_dispatch: 50.0},
    Level.district: _PLACE,
    Level.operator: {Ind.on_time_filing: 100.0},
    Level.dispatcher: {Ind.dispatch_accuracy: 100.0},
    Level.shift_lead: {Ind.on_time_approval: 100.0},
    # 网格员: their own visits over the households of their grids, and the disputes there.
    Level.grid_staff: {
        Ind.visit_coverage: 50.0,
        Ind.disputes_solved_here: 30.0,
        Ind.on_time_mediation: 20.0,
    },
    # 组团式服务 100 分制 (Zhoushan): a grid and its team, the weights summing to 100.
    Level.grid_team: {
        Ind.visit_coverage: 30.0,
        Ind.disputes_solved_here: 20.0,
        Ind.on_time_mediation: 15.0,
        Ind.missed_reports: 15.0,  # as 1 − rate
        Ind.on_time_verification: 15.0,
        Ind.self_handled: 5.0,
    },
}


class HotlineWeights(_Strict):
    """The weights of the hotline's composite of its three rates (12345 接诉即办: 响应率,
    解决率, 满意率). The default, 10 / 50 / 40, is one district's practice named in issue 18
    (docs/evaluation.md: why this one, and the 30 / 35 / 35 of another)."""

    response: Weight = 10.0
    resolution: Weight = 50.0
    satisfaction: Weight = 40.0

    def of(self) -> dict[Indicator, float]:
        return {
            Ind.callback_response: self.response,
            Ind.callback_resolution: self.resolution,
            Ind.callback_satisfaction: self.satisfaction,
        }


class Staff(_Strict):
    """How the centre's own staff are judged: a shift lead (值班长) decides a department's
    request (extension, parking, return, resume) or an operator's void within `approve_within`
    of it, in natural time (a
    shift lead is on duty around the clock: 值班). A filing is judged on the pack's `file`
    limit in sla.yaml (the SLA engine's clock), not here."""

    approve_within: Annotated[timedelta, Field(gt=timedelta(0), le=timedelta(days=30))] = timedelta(
        hours=1
    )


class EvaluationFile(_Strict):
    format: Literal["gridloop-evaluation/1"]
    grades: list[Band] = list(DEFAULT_BANDS)
    lowest: Annotated[str, Field(min_length=1, max_length=8)] = "E"  # below every band
    satisfied: Annotated[int, Field(ge=1, le=5)] = 4  # a rating at or above this satisfies
    weights: dict[Level, dict[Indicator, Weight]] = {}
    hotline: HotlineWeights = HotlineWeights()
    staff: Staff = Staff()


DEFAULT = EvaluationFile(format="gridloop-evaluation/1")


class EvaluationPolicy:
    def __init__(self, file: EvaluationFile = DEFAULT) -> None:
        self.file = file
        self.satisfied = file.satisfied
        self.approve_within = file.staff.approve_within
        self._weights = {**DEFAULT_WEIGHTS, **file.weights}
        self.hotline = file.hotline.of()

    def weights(self, level: Level) -> dict[Indicator, float]:
        return dict(self._weights[level])

    def grade(self, score: float | None) -> str | None:
        if score is None:
            return None
        return next((b.grade for b in self.file.grades if score >= b.min), self.file.lowest)


def check(file: EvaluationFile) -> list[str]:
    """What the model alone cannot say is wrong: bands out of order, a weight on an
    indicator its level is not rated on, a level whose weights are all zero."""
    errors = []
    mins = [b.min for b in file.grades]
    if mins != sorted(set(mins), reverse=True):
        errors.append(f"{EVALUATION_FILE}: grades: minimums must strictly decrease")
    names = [b.grade for b in file.grades] + [file.lowest]
    if len(set(names)) != len(names):
        errors.append(f"{EVALUATION_FILE}: grades: each grade once (with `lowest`)")
    if not any(w > 0 for w in file.hotline.of().values()):
        errors.append(f"{EVALUATION_FILE}: hotline: needs a positive weight")
    for level, weights in file.weights.items():
        for indicator in weights:
            if indicator not in APPLIES[level]:
                errors.append(
                    f"{EVALUATION_FILE}: weights.{level}.{indicator}: "
                    f"a {level} is not rated on {indicator}{_rated(indicator)}"
                )
        if not any(w > 0 for i, w in weights.items() if i in APPLIES[level]):
            errors.append(f"{EVALUATION_FILE}: weights.{level}: needs a positive weight")
    return errors


_ACTORS = (
    Level.department,
    Level.command_centre,
    Level.supervisor,
    Level.operator,
    Level.dispatcher,
    Level.shift_lead,
    Level.grid_staff,
    Level.grid_team,
)


def _rated(indicator: Indicator) -> str:
    """Who is rated on `indicator` (besides places), for an error naming a misplaced
    weight: say, a department's `dispatch_accuracy`, the command centre's since issue 19."""
    levels = [level.value for level in _ACTORS if indicator in APPLIES[level]]
    return f" (rated: {', '.join(levels)})" if levels else " (rated: places only)"


def load_evaluation(root: Path, errors: list[str]) -> EvaluationPolicy | None:
    """`evaluation.yaml` of the pack at `root` (the defaults when there is none); every
    error is appended to `errors`, and None is returned when there was one."""
    path = root / EVALUATION_FILE
    if not path.exists():
        return EvaluationPolicy()
    file = read_model(path, EvaluationFile, errors)
    if file is None:
        return None
    found = check(file)
    errors.extend(found)
    return None if found else EvaluationPolicy(file)


def document(policy: EvaluationPolicy) -> dict[str, object]:
    """The policy as the YAML document it reads from (the generator writes it)."""
    dumped: dict[str, object] = policy.file.model_dump(mode="json")
    dumped["weights"] = {
        level.value: {i.value: w for i, w in policy.weights(level).items()} for level in Level
    }
    return dumped
