"""The catalogue a city is generated from (`dongcheng.yaml` beside this module): the
district's outline, streets, departments, component and event classes with their owners and
time limits, statuses, places with their own owners and the SLA policy. Pure data, checked
on load."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, TypeAdapter, model_validator

CATALOGUE = Path(__file__).parent / "dongcheng.yaml"
_DURATION: TypeAdapter[timedelta] = TypeAdapter(timedelta)


def _iso_duration(value: str) -> str:
    """Kept as written (it goes into the pack verbatim), checked as ISO 8601."""
    if _DURATION.validate_python(value) <= timedelta(0):
        raise ValueError("must be positive")
    return value


Duration = Annotated[str, AfterValidator(_iso_duration)]
# Names go into CSV cells and YAML unquoted: keep them free of separators.
Name = Annotated[str, Field(min_length=1, pattern=r"^[^,\"\n]+$")]
LonLat = tuple[float, float]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Size(_Strict):
    grids: Annotated[int, Field(ge=1)]
    communities: Annotated[int, Field(ge=1)]
    cell_m: Annotated[float, Field(gt=0)]
    grids_per_supervisor: Annotated[int, Field(ge=1)]


class StreetSpec(_Strict):
    code: Annotated[str, Field(pattern=r"^\d{3}$")]
    name: Name
    en: Name
    centre: LonLat


class DepartmentSpec(_Strict):
    code: Annotated[str, Field(pattern=r"^[A-Z0-9-]{2,32}$")]
    name: Name


class OfficeTemplate(_Strict):
    """A street office: `{code}` in the code, `{name}` and `{en}` in the name are the
    street's."""

    code: Annotated[str, Field(pattern=r"^[A-Z0-9-]*\{code\}[A-Z0-9-]*$")]
    name: Name


class MajorSpec(_Strict):
    code: Annotated[str, Field(pattern=r"^\d{2}$")]
    name: Name


class ClassSpec(_Strict):
    """A component or event class: owner, handling limit (urgent: the limit of an urgent
    report), clock and duplicate radius."""

    code: Annotated[str, Field(pattern=r"^\d{4,5}$")]
    name: Name
    en: Name
    owner: str
    limit: Duration
    urgent: Duration | None = None
    clock: Literal["working", "natural"] = "working"
    radius: Annotated[float | None, Field(ge=0, le=5000)] = None
    self_handling: bool = False  # a supervisor or grid manager may fix it on the spot (自处置)


class ComponentSpec(ClassSpec):
    count: Annotated[int, Field(ge=0, le=999_999)]  # the serial has 6 digits
    place: Literal["road", "area"]
    street_maintained: Annotated[float, Field(ge=0, le=1)] = 0.0


class PlaceSpec(_Strict):
    name: Name
    owner: str
    assisting: list[str] = []
    classes: list[str] = []
    area: list[LonLat]


class SlaSpec(_Strict):
    """sla.yaml as written, plus `natural`: the limits and ladder of natural-clock classes."""

    model_config = ConfigDict(extra="allow", frozen=True)
    natural: dict[str, Any]


class Catalogue(_Strict):
    format: Literal["gridloop-citygen/1"]
    name: Name
    district: dict[str, str]
    size: Size
    webhook_base: str
    outline: Annotated[list[LonLat], Field(min_length=3)]
    streets: Annotated[list[StreetSpec], Field(min_length=1)]
    departments: list[DepartmentSpec]
    street_office: OfficeTemplate
    district_office: DepartmentSpec
    city_office: DepartmentSpec
    component_majors: list[MajorSpec]
    components: list[ComponentSpec]
    event_majors: list[MajorSpec]
    events: list[ClassSpec]
    statuses: dict[Literal["intact", "damaged", "lost", "abandoned", "removed"], float]
    places: list[PlaceSpec] = []
    sla: SlaSpec

    @model_validator(mode="after")
    def _consistent(self) -> Catalogue:
        owners = {d.code for d in self.departments}
        owned: list[ClassSpec | PlaceSpec] = [*self.components, *self.events, *self.places]
        for spec in owned:
            if spec.owner not in owners:
                raise ValueError(f"{spec.name}: unknown owner {spec.owner}")
        for kind, classes, majors in (
            ("component", self.components, self.component_majors),
            ("event", self.events, self.event_majors),
        ):
            codes = [c.code for c in classes]
            if len(set(codes)) != len(codes):
                raise ValueError(f"duplicate {kind} class codes")
            if unknown := {c[:2] for c in codes} - {m.code for m in majors}:
                raise ValueError(f"{kind} classes of unknown major(s) {sorted(unknown)}")
        if abs(sum(self.statuses.values()) - 1) > 1e-9:
            raise ValueError("statuses: the shares must add up to 1")
        return self

    def office_code(self, street: str) -> str:
        return self.street_office.code.format(code=street)


def load_catalogue(path: Path = CATALOGUE) -> Catalogue:
    return Catalogue.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
