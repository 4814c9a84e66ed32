"""Load a city pack from disk; collect every error of every file, each with its file and
line, instead of stopping at the first.

Errors read `file:line: what` (`file: what` when no line applies, e.g. a missing file).
Each file of the pack has its module: `city` (city.yaml), `grids` (grids.geojson),
`components` (components.csv), `routing` (routing.yaml), `sla` (sla.yaml), `evaluation`
(evaluation.yaml), `knowledge` (knowledge.yaml), `messages` (messages.yaml), `staff`
(staff.yaml).
"""

from __future__ import annotations

from pathlib import Path

from gridloop.citypack.city import CITY_FILE, check_city, load_city
from gridloop.citypack.components import COMPONENTS_FILE, check_components, load_components
from gridloop.citypack.errors import CityPackError, Errors
from gridloop.citypack.evaluation import load_evaluation
from gridloop.citypack.grids import GRIDS_FILE, check_grids, load_grids
from gridloop.citypack.knowledge import load_knowledge
from gridloop.citypack.messages import load_messages
from gridloop.citypack.pack import CityPack
from gridloop.citypack.routing import load_routing
from gridloop.citypack.sla import load_sla
from gridloop.citypack.staff import load_staff

__all__ = ["CityPackError", "load_city_pack"]


def load_city_pack(path: Path | str) -> CityPack:
    """Load `city.yaml`, `grids.geojson`, and the optional `components.csv`, `routing.yaml`,
    `sla.yaml`, `evaluation.yaml` and `knowledge.yaml` from `path`, or raise CityPackError
    listing every error."""
    root = Path(path)
    errors = Errors()
    city = load_city(root / CITY_FILE, errors)
    grids = load_grids(root / GRIDS_FILE, errors)
    components = load_components(root / COMPONENTS_FILE, errors)
    model = city.model if city is not None else None
    if city is not None:
        check_city(city, errors)
        check_grids(city.model, grids, errors)
        check_components(city.model, grids, components, errors)
    departments = {d.code for d in model.departments} if model is not None else None
    routing = load_routing(root, departments, errors.items)
    sla = load_sla(root, model, errors.items)
    evaluation = load_evaluation(root, errors.items)
    knowledge = load_knowledge(root, errors.items)
    messages = load_messages(root, errors.items)
    staff = load_staff(root, [g.grid for g in grids], errors.items)
    if errors.items or model is None or sla is None or evaluation is None or knowledge is None:
        raise CityPackError(errors.items)
    if staff is None:  # only with an error listed above
        raise CityPackError(errors.items)
    return CityPack(
        model,
        [(g.grid, g.polygon) for g in grids],
        [c.component for c in components],
        routing=routing,
        sla=sla,
        evaluation=evaluation,
        knowledge=knowledge,
        messages=messages,
        staff=staff,
    )
