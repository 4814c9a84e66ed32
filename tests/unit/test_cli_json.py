"""`--json` on the commands that need no running system: one JSON document on stdout, the
same facts as the text (the commands on a running system: tests/e2e/test_gridloop_up.py)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from gridloop.config import DEMO_CITY_PACK
from system.cli import app


def test_city_check_answers_in_json(tmp_path: Path) -> None:
    ok = CliRunner().invoke(app, ["city", "check", str(DEMO_CITY_PACK), "--json"])
    assert ok.exit_code == 0, ok.output
    answer = json.loads(ok.stdout)
    assert answer["ok"] is True
    assert (answer["components"], answer["location_rules"], answer["sla_rules"]) == (8, 2, 5)
    broken = CliRunner().invoke(app, ["city", "check", str(tmp_path), "--json"])
    assert broken.exit_code == 1
    refused = json.loads(broken.stdout)
    assert refused["ok"] is False and refused["errors"]


def test_schemas_export_lists_what_it_wrote_in_json(tmp_path: Path) -> None:
    done = CliRunner().invoke(app, ["schemas", "export", str(tmp_path), "--json"])
    assert done.exit_code == 0, done.output
    written = [Path(p) for p in json.loads(done.stdout)["written"]]
    assert written and all(p.is_file() and p.parent == tmp_path for p in written)
    assert {p.name for p in written} == {p.name for p in tmp_path.iterdir()}
