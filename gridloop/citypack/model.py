"""The models of `city.yaml`, `grids.geojson` and `components.csv`: location hierarchy,
catalogue, departments, grids, component inventory. Pure. The loaded pack is
`gridloop.citypack.pack.CityPack`."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, StrictBool

from schemas.events import Kind

Code3 = Annotated[str, Field(pattern=r"^\d{3}$")]
# The format versions this code reads. 2 adds, all optional: components.csv, `majors`,
# `timezone`, `intake`, `feedback`, a class's duplicate radius and window, a grid's supervisor,
# `phrases`.
FORMATS = ("gridloop-citypack/1", "gridloop-citypack/2")
Format = Literal["gridloop-citypack/1", "gridloop-citypack/2"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class District(_Strict):
    code: Annotated[str, Field(pattern=r"^\d{6}$")]  # GB/T 2260
    name: str


class Street(_Strict):
    code: Code3
    name: str
    office: str  # the street office: owner of last resort (属地兜底)


class Community(_Strict):
    code: Annotated[str, Field(pattern=r"^\d{6}$")]  # street (3) + community (3)
    name: str


class Webhook(_Strict):
    url: HttpUrl
    secret: Annotated[str, Field(pattern=r"^whsec_[A-Za-z0-9+/=]{16,}$")]


class Department(_Strict):
    code: Annotated[str, Field(pattern=r"^[A-Z0-9-]{2,32}$")]
    name: str
    webhook: Webhook | None = None


class EventClass(_Strict):
    """A component class (部件) or event class (事件) of the catalogue."""

    code: Annotated[str, Field(pattern=r"^\d{4,5}$")]  # major 2 + minor 2 or 3
    kind: Kind
    name: str
    owner: str  # default owner department
    handle_limit: timedelta
    clock: Literal["working", "natural"] = "working"
    # Duplicates (重复上报): a report of this class within this distance and time of an open
    # case is merged into it.
    duplicate_radius_m: Annotated[float, Field(ge=0, le=5000)] = 50.0
    duplicate_window: timedelta = timedelta(days=3)
    # 自处置: a supervisor or grid manager may fix a problem of this class on the spot
    # (photos before and after), closed without dispatch. Off unless the pack says so.
    self_handling: StrictBool = False

    @property
    def major(self) -> str:
        return self.code[:2]


class Major(_Strict):
    """A major class (大类): 01 公用设施, 02 道路交通, … for components; 01 市容环境, … for
    events. Groups the catalogue (Open311 `group`)."""

    kind: Kind
    code: Annotated[str, Field(pattern=r"^\d{2}$")]
    name: str


class IntakePolicy(_Strict):
    """How the supervision centre runs intake."""

    # File supervisor reports and confirmed citizen reports at once (by rule), or leave each
    # to a supervision-centre operator (POST /cases/{id}/file or /void).
    auto_file: bool = True
    # A citizen report becomes a verification task (核实) due within this time.
    verify_limit: timedelta = timedelta(hours=2)
    # How long after its case's closure a reporter's contact is kept (`gridloop contacts
    # expire` erases it then): long enough for the callback and a reopened case.
    contact_retention: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(days=180)


class FeedbackPolicy(_Strict):
    """Residents' satisfaction (满意度): a closed case takes one rating, 1 (very
    dissatisfied) to 5 (very satisfied), within `window` of its closure; a rating at or below
    `reopen_at_or_below` reopens the case as rework (0: no rating reopens it)."""

    reopen_at_or_below: Annotated[int, Field(ge=0, le=5)] = 2
    window: Annotated[timedelta, Field(gt=timedelta(0))] = timedelta(days=7)


class CallbackPolicy(_Strict):
    """回访: the hotline calls the reporter back after a closure; after `tries` calls
    that reach nobody the callback is invalid (无效回访) and not counted by the hotline's
    three rates."""

    tries: Annotated[int, Field(ge=1, le=10)] = 3


class HouseholdPolicy(_Strict):
    """The household register (`households.csv`, services/grid): `names` keeps a
    household's contact name (户主) beside its door; off, the register holds doors and
    occupancy only (docs/personal-data.md)."""

    names: bool = False


# 惯用语: the city's canned phrases, by the console's action whose note or reason they fill.
PhraseFor = Literal[
    "file", "void", "merge", "dispatch", "handled", "return", "extension", "parking", "deny"
]
Phrase = Annotated[str, Field(min_length=1, max_length=200)]


class Grid(_Strict):
    """A unit grid (单元网格): 14 digits (CJ/T 213) or 15 digits (GB/T 47678.3)."""

    code: Annotated[str, Field(pattern=r"^\d{14,15}$")]
    community: str
    name: str = ""
    supervisor: Annotated[str | None, Field(min_length=1, max_length=64)] = None  # 监督员

    @property
    def street(self) -> str:
        return self.code[6:9]


class ComponentInstance(_Strict):
    """A coded city component (部件) of the inventory: 16 digits (CJ/T 214: admin 6 + major 2
    + minor 2 + serial 6) or 17 (GB/T 47678.5: minor of 3 digits)."""

    id: Annotated[str, Field(pattern=r"^\d{16,17}$")]
    class_code: Annotated[str, Field(pattern=r"^\d{4,5}$")]
    name: str
    lon: float
    lat: float
    grid: Annotated[str, Field(pattern=r"^\d{14,15}$")]
    owner: str  # 权属单位
    maintainer: str  # 养护单位
    status: Literal["intact", "damaged", "lost", "abandoned", "removed"] = "intact"


class CityFile(_Strict):
    """`city.yaml`: everything but the grid polygons."""

    format: Format
    name: str
    district: District
    timezone: str = "Asia/Shanghai"  # case numbers are dated in the city's time
    streets: list[Street]
    communities: list[Community]
    departments: list[Department]
    majors: list[Major] = Field(default_factory=list)
    classes: list[EventClass]
    intake: IntakePolicy = Field(default_factory=IntakePolicy)
    feedback: FeedbackPolicy = Field(default_factory=FeedbackPolicy)
    callback: CallbackPolicy = Field(default_factory=CallbackPolicy)
    # The household register's personal data (services/grid: households and visits).
    households: HouseholdPolicy = Field(default_factory=HouseholdPolicy)
    phrases: dict[PhraseFor, Annotated[list[Phrase], Field(max_length=30)]] = Field(
        default_factory=dict
    )
