"""The alert rules in deploy/prometheus are valid and do what their promtool unit tests say
(Debian's `prometheus` package installs promtool; without it these tests skip)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROMETHEUS = ROOT / "deploy" / "prometheus"
PROMTOOL = shutil.which("promtool")
pytestmark = pytest.mark.skipif(PROMTOOL is None, reason="promtool is not installed")


def promtool(*args: str | Path) -> subprocess.CompletedProcess[str]:
    assert PROMTOOL is not None
    return subprocess.run(
        [PROMTOOL, *map(str, args)], capture_output=True, text=True, timeout=60, check=False
    )


def test_the_rules_are_valid() -> None:
    rules = sorted((PROMETHEUS / "rules").glob("*.yml"))
    assert rules
    done = promtool("check", "rules", *rules)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_rules_pass_their_unit_tests() -> None:
    tests = sorted((PROMETHEUS / "tests").glob("*.yml"))
    assert tests
    done = promtool("test", "rules", *tests)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_unit_tests_catch_a_broken_rule(tmp_path: Path) -> None:
    shutil.copytree(PROMETHEUS / "rules", tmp_path / "rules")
    shutil.copytree(PROMETHEUS / "tests", tmp_path / "tests")
    rules = tmp_path / "rules" / "gridloop.yml"
    text = rules.read_text(encoding="utf-8")
    broken = text.replace("[5m])) * 60 > 1", "[5m])) * 60 > 100")
    assert broken != text
    rules.write_text(broken, encoding="utf-8")
    done = promtool("test", "rules", tmp_path / "tests" / "gridloop.test.yml")
    assert done.returncode != 0
    assert "GridloopSlaBreachRateHigh" in done.stdout + done.stderr
