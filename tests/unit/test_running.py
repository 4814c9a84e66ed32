"""How a command finds the running system (gridloop/running.py): the state file `gridloop up`
writes, found from any directory, chosen by name, recognised as stale when its process is
gone (tests/unit/test_cli_without_system.py: what the commands then say)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest

from gridloop import running
from gridloop.config import DEMO_CITY_PACK
from gridloop.running import SystemState, Unavailable

SERVER_VARIABLES = ("MONGODB_URI", "KAFKA_BOOTSTRAP_SERVERS", "GRIDLOOP_DATA_DIR")


@pytest.fixture(autouse=True)
def nowhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No server named by the environment, pointers in this test's own directory, and a
    current directory with nothing in it."""
    for name in SERVER_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "xdg"))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    return elsewhere


def state(data_dir: Path, pid: int | None = None, **changes: object) -> SystemState:
    pid = os.getpid() if pid is None else pid
    values: dict[str, object] = {
        "status": "up",
        "pid": pid,
        "process_start": running.process_start(pid),
        "started_at": datetime.now(UTC),
        "data_dir": data_dir,
        "city_pack": DEMO_CITY_PACK,
        "mongodb_database": "gridloop",
        "host": "127.0.0.1",
        "kafka_bootstrap_servers": "127.0.0.1:41001",
        "mongodb_uri": "mongodb://127.0.0.1:41002/?directConnection=true",
        "services": {"intake": "http://127.0.0.1:18000", "desk": "http://127.0.0.1:18009"},
        "logs": data_dir / "logs",
    }
    return SystemState.model_validate(values | changes)


def gone_pid() -> int:
    """The pid of a process that has ended (and been reaped)."""
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_command_in_another_directory_finds_the_system_by_its_pointer(tmp_path: Path) -> None:
    running.write_state(state(tmp_path / "data"))
    settings = running.locate()
    assert settings.mongodb_uri == "mongodb://127.0.0.1:41002/?directConnection=true"
    assert settings.kafka_bootstrap_servers == "127.0.0.1:41001"
    assert (settings.intake_port, settings.desk_port) == (18000, 18009)
    assert settings.data_dir == tmp_path / "data"


def test_the_state_file_is_its_owner_s_alone_and_removed_by_its_writer(tmp_path: Path) -> None:
    data = tmp_path / "data"
    running.write_state(state(data))
    assert (data / "state.json").stat().st_mode & 0o077 == 0  # a URI may hold a password
    running.remove_state(data, os.getpid() + 1)  # not its writer: stays
    assert (data / "state.json").exists()
    running.remove_state(data, os.getpid())
    assert not (data / "state.json").exists()
    assert list(running.pointers().iterdir()) == []
    with pytest.raises(Unavailable, match="no gridloop system is running"):
        running.locate()


def test_a_named_data_directory_wins_and_says_when_nothing_runs_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = tmp_path / "first", tmp_path / "second"
    running.write_state(state(first, mongodb_database="one"))
    assert running.locate(first).mongodb_database == "one"
    monkeypatch.setenv("GRIDLOOP_DATA_DIR", str(first))
    assert running.locate().mongodb_database == "one"
    with pytest.raises(
        Unavailable, match=re.escape(f"no gridloop system is running from {second}")
    ):
        running.locate(second)


def test_servers_named_by_the_environment_need_no_state_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MONGODB_URI", "mongodb://db.example:27017")
    assert running.locate().mongodb_uri == "mongodb://db.example:27017"


def test_a_state_file_whose_process_is_gone_is_stale(tmp_path: Path) -> None:
    data = tmp_path / "data"
    running.write_state(state(data, pid=gone_pid()))
    with pytest.raises(Unavailable, match=r"has stopped; its state\.json is stale"):
        running.locate(data)
    # Found by its pointer, it is no running system either, and the pointer goes.
    with pytest.raises(Unavailable, match="no gridloop system is running"):
        running.locate()
    assert list(running.pointers().iterdir()) == []


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="process start times come from /proc")
def test_a_pid_now_used_by_another_process_is_not_the_system(tmp_path: Path) -> None:
    data = tmp_path / "data"
    running.write_state(state(data, process_start="1"))  # this pid, another start: reused
    with pytest.raises(Unavailable, match="stale"):
        running.locate(data)


def test_a_system_still_starting_is_not_used_yet(tmp_path: Path) -> None:
    data = tmp_path / "data"
    running.write_state(state(data, status="starting", mongodb_uri=None))
    with pytest.raises(Unavailable, match="still starting"):
        running.locate(data)


def test_two_running_systems_are_not_guessed_between(tmp_path: Path, nowhere: Path) -> None:
    running.write_state(state(tmp_path / "a"))
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        running.write_state(state(tmp_path / "b", pid=other.pid))
        with pytest.raises(Unavailable, match="2 gridloop systems are running"):
            running.locate()
        # The one that runs from the current directory's `.gridloop` is meant.
        running.write_state(state(nowhere / ".gridloop", mongodb_database="here"))
        assert running.locate().mongodb_database == "here"
    finally:
        other.kill()
        other.wait()


def test_a_file_that_is_no_state_file_is_said_to_be(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "state.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(Unavailable, match="is not a state file of gridloop up"):
        running.locate(data)
