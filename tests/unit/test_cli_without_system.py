"""The operators' commands with no system to work on: one line saying so and how to start
one, exit code 1 — never the driver's traceback (before: `gridloop department set-webhook
WATER …` in another terminal ended in pymongo's ServerSelectionTimeoutError, 298 lines).
The state file is written by hand here, as `gridloop up` writes it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from system.cli import app


@pytest.fixture(autouse=True)
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No server named by the environment, no pointers, an empty current directory."""
    for name in ("MONGODB_URI", "KAFKA_BOOTSTRAP_SERVERS", "GRIDLOOP_DATA_DIR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return elsewhere


# Every command that needs the system: with none running, one line on stderr saying how to
# start one, exit code 1 (before: pymongo's ServerSelectionTimeoutError, 298 lines).
NEEDS_THE_SYSTEM = [
    ["department", "set-webhook", "WATER", "http://127.0.0.1:9/hooks/WATER"],
    ["department", "list"],
    ["credentials", "issue", "admin", "someone"],
    ["webhooks", "replay", "--department", "WATER"],
    ["audit", "--limit", "5"],
    ["scores", "show", "--level", "department", "--period", "2026-11"],
    ["scores", "explain", "department", "WATER", "2026-11", "on_time_handling"],
    ["report", "--period", "2026-11"],
    ["projections", "rebuild"],
    ["scores", "rebuild"],
    ["status"],
    ["people", "add", "wang.li", "department", "ROADS", "--password-stdin"],
]


@pytest.mark.parametrize("args", NEEDS_THE_SYSTEM, ids=lambda a: " ".join(a[:2]))
def test_with_no_system_running_a_command_says_so_in_one_line(args: list[str]) -> None:
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(
        result.exception
    )
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "gridloop up" in lines[0], result.output


def test_a_stale_state_file_is_named_so_by_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    stale = {
        "status": "up",
        "pid": gone.pid,
        "started_at": "2026-12-06T09:00:00Z",
        "data_dir": str(data),
        "city_pack": str(tmp_path),
        "mongodb_database": "gridloop",
        "host": "127.0.0.1",
        "mongodb_uri": "mongodb://127.0.0.1:9/?directConnection=true",
        "logs": str(data / "logs"),
    }
    (data / "state.json").write_text(json.dumps(stale), encoding="utf-8")
    monkeypatch.setenv("GRIDLOOP_DATA_DIR", str(data))
    url = "http://127.0.0.1:9/hooks/WATER"
    result = CliRunner().invoke(app, ["department", "set-webhook", "WATER", url])
    assert result.exit_code == 1
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "stale" in result.output and f"pid {gone.pid}" in result.output, result.output
