"""The committed Grafana dashboards are exactly what `gridloop.dashboards` generates, and
every expression names metrics the services export (all under the `gridloop_` prefix)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gridloop.dashboards import DASHBOARDS, expressions, render

ROOT = Path(__file__).resolve().parents[2]
COMMITTED = ROOT / "deploy" / "grafana" / "dashboards"
SOURCES = [*ROOT.glob("gridloop/**/*.py"), *ROOT.glob("services/**/*.py")]


@pytest.mark.parametrize("name", sorted(DASHBOARDS))
def test_the_committed_dashboard_is_generated(name: str) -> None:
    path = COMMITTED / name
    assert path.is_file(), "run: python -m gridloop.dashboards deploy/grafana/dashboards"
    assert path.read_text(encoding="utf-8") == render(DASHBOARDS[name]()), (
        "out of date; run: python -m gridloop.dashboards deploy/grafana/dashboards"
    )


def test_every_metric_in_the_dashboards_is_defined_in_the_code() -> None:
    code = "\n".join(p.read_text(encoding="utf-8") for p in SOURCES)
    names = {
        re.sub(r"_(bucket|count|sum)$", "", m)
        for expr in expressions()
        for m in re.findall(r"\b(gridloop_[a-z_]+)", expr)
    }
    assert names
    missing = sorted(n for n in names if f'"{n}"' not in code)
    assert missing == [], missing
