"""The generated demo city: a city pack shaped like Beijing's Dongcheng district (110101),
made from the catalogue `dongcheng.yaml` and a seed. The same seed, size and catalogue give
byte-identical files.

    summary = generate_city_pack(out_dir, seed=1)         # the full district
    generate_city_pack(out_dir, seed=1, fraction=0.1)     # a tenth of it, for tests
    dongcheng_pack(Path(".gridloop/citypacks"))            # generated once, then cached

The full pack (about 20 MB, most of it `components.csv`) is generated on demand rather than
kept in git: `dongcheng_pack` keeps one copy per seed, generator version and catalogue.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gridloop.citypack.generate.catalogue import CATALOGUE, load_catalogue
from gridloop.citypack.generate.households import write_households
from gridloop.citypack.generate.inventory import write_components
from gridloop.citypack.generate.plan import plan_district
from gridloop.citypack.generate.staff import write_staff
from gridloop.citypack.generate.write import (
    departments,
    write_city,
    write_evaluation,
    write_grids,
    write_routing,
    write_sla,
)
from gridloop.citypack.messages import MESSAGES_FILE

# Bump when a change of the code changes the files generated (the cache is keyed on it).
GENERATOR_VERSION = 7  # 3: evaluation.yaml weights per issue 19 (command centre); 4: messages.yaml
# 5: staff.yaml (issue 17: the grid's people); 6: households.csv (issue 17: households, visits)
# 7: sla.yaml disputes and self-handling classes (issue 17: the simulator's grid people)
DEFAULT_SEED = 110101

__all__ = ["DEFAULT_SEED", "GENERATOR_VERSION", "Generated", "dongcheng_pack", "generate_city_pack"]


@dataclass(frozen=True)
class Generated:
    path: Path
    seed: int
    streets: int
    communities: int
    grids: int
    components: int
    departments: int
    classes: int
    scale: float  # of the real outline: the district is shrunk or grown to fit the grids


def generate_city_pack(
    out_dir: Path, seed: int = DEFAULT_SEED, fraction: float = 1.0, catalogue: Path = CATALOGUE
) -> Generated:
    """Write a city pack into `out_dir` (created; its pack files are replaced). `fraction`
    shrinks the grids, communities and components for quick tests (the streets stay)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], not {fraction}")
    spec = load_catalogue(catalogue)
    out_dir.mkdir(parents=True, exist_ok=True)
    # One stream per purpose, so that changing one part leaves the others as they were.
    plan_rng, inventory_rng, household_rng = (np.random.default_rng([seed, n]) for n in (1, 2, 3))
    grids = max(len(spec.streets) * 4, round(spec.size.grids * fraction))
    communities = max(len(spec.streets), round(spec.size.communities * fraction))
    plan = plan_district(spec, grids, communities, plan_rng)
    write_city(out_dir / "city.yaml", spec, plan, seed)
    write_grids(out_dir / "grids.geojson", plan)
    write_routing(out_dir / "routing.yaml", spec, plan.cells.frame)
    write_sla(out_dir / "sla.yaml", spec)
    write_evaluation(out_dir / "evaluation.yaml")
    # Reporters are told as in the demo pack (its channels reach the simulator's gateway).
    shutil.copyfile(Path(__file__).parents[1] / "demo" / MESSAGES_FILE, out_dir / MESSAGES_FILE)
    write_staff(out_dir, plan)
    write_households(out_dir, plan, household_rng)
    count = write_components(out_dir / "components.csv", spec, plan, fraction, inventory_rng)
    return Generated(
        path=out_dir,
        seed=seed,
        streets=len({c.code[:3] for c in plan.communities}),
        communities=len(plan.communities),
        grids=len(plan.grids),
        components=count,
        departments=len(departments(spec)),
        classes=len(spec.components) + len(spec.events),
        scale=plan.cells.frame.scale,
    )


def cache_key(seed: int, catalogue: Path = CATALOGUE) -> str:
    """What the generated files depend on: seed, generator version, catalogue, numpy (its
    random streams are stable, but that is numpy's promise, not ours)."""
    digest = hashlib.sha256(catalogue.read_bytes())
    digest.update(f"{seed}:{GENERATOR_VERSION}:{np.__version__}".encode())
    return f"dongcheng-v{GENERATOR_VERSION}-seed{seed}-{digest.hexdigest()[:12]}"


def dongcheng_pack(cache_dir: Path, seed: int = DEFAULT_SEED) -> Path:
    """The full generated pack, made once into `cache_dir` and reused: generated into a
    temporary directory and renamed into place, so a pack that is there is whole, even when
    two processes race to make it."""
    target = cache_dir / cache_key(seed)
    if target.is_dir():
        return target
    cache_dir.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=".generating-", dir=cache_dir))
    try:
        generate_city_pack(scratch, seed)
        os.rename(scratch, target)
    except OSError:
        if not target.is_dir():  # not the loser of a race: a real failure
            raise
    finally:
        if scratch.exists():
            shutil.rmtree(scratch)
    return target
