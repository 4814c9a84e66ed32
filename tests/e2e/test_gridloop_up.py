"""The newcomer's first hour with `gridloop up` (issue 16): the commands of another terminal,
in another directory, find the system; its demo webhooks reach its own desk; a port in use
is refused before anything starts; SIGTERM at any moment of start-up leaves no process and
no port behind. Each through the real command, as a separate process (Linux: /proc)."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from system.up import PORT_ENV, SERVICES
from tests.e2e.up_process import REPO, Up, gridloop, newcomer_env

pytestmark = [
    pytest.mark.skipif(not Path("/proc").is_dir(), reason="watches processes in /proc"),
    pytest.mark.timeout(300),  # a whole `up` starts, on a shared machine
]


def healthy(up: Up) -> bool:
    for service in SERVICES:
        try:
            if httpx.get(f"{up.url(service)}/healthz", timeout=2).status_code != 200:
                return False
        except httpx.HTTPError:
            return False
    return True


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Up]:
    """One `gridloop up` with its embedded broker and database, on free ports."""
    root = tmp_path_factory.mktemp("up")
    up = Up.start(root, newcomer_env(root))
    try:
        up.wait_for(lambda _: healthy(up), within=240, every=0.5)
        yield up
    finally:
        up.kill_all()


def elsewhere(up: Up, *args: str) -> subprocess.CompletedProcess[str]:
    """A command in another terminal: another directory, no server in its environment."""
    env = {k: v for k, v in up.env.items() if k not in PORT_ENV.values()}
    return gridloop(env, up.data_dir.parent / "elsewhere", *args)


def as_json(done: subprocess.CompletedProcess[str]) -> Any:
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_up_writes_where_everything_listens(system: Up) -> None:
    state = json.loads((system.data_dir / "state.json").read_text())
    assert (state["status"], state["pid"]) == ("up", system.proc.pid)
    assert state["services"] == {service: system.url(service) for service in SERVICES}
    assert state["kafka_bootstrap_servers"] and state["mongodb_uri"]
    assert state["address"] == system.url("door")  # THE address: the front door
    shown = as_json(elsewhere(system, "status", "--json"))
    assert shown["pid"] == system.proc.pid and shown["services"]["desk"] == system.url("desk")
    assert shown["address"] == system.url("door")
    # The door answers for the services behind it: the API under /v1, the workbench.
    assert httpx.get(f"{shown['address']}/v1/scores", timeout=5).status_code == 401
    assert httpx.get(f"{shown['address']}/login", timeout=5).status_code == 200


def test_commands_in_another_directory_reach_the_running_system(system: Up) -> None:
    hooks = f"{system.url('desk')}/hooks/GREENING"
    done = elsewhere(system, "department", "set-webhook", "GREENING", hooks, "--json")
    answer = as_json(done)
    assert answer["department"] == "GREENING" and answer["url"] == hooks
    assert answer["secret"].startswith("whsec_")
    listed = as_json(elsewhere(system, "department", "list", "--json"))
    departments = {d["department"]: d for d in listed}
    assert departments["GREENING"]["url"] == hooks
    assert departments["GREENING"]["source"] == "admin"
    assert departments["WATER"]["source"] == "city pack"
    issued = as_json(elsewhere(system, "credentials", "issue", "admin", "ops-1", "--json"))
    assert issued["role"] == "admin" and issued["token"]
    assert as_json(elsewhere(system, "webhooks", "replay", "--department", "WATER", "--json")) == {
        "replayed": 0
    }
    assert isinstance(as_json(elsewhere(system, "audit", "--limit", "5", "--json")), list)
    scores = ["scores", "show", "--level", "department", "--period", "2026-11", "--json"]
    assert as_json(elsewhere(system, *scores)) == []


def test_the_demo_pack_s_webhooks_reach_this_system_s_desk(system: Up) -> None:
    credentials = json.loads((system.data_dir / "demo-credentials.json").read_text())
    token = credentials["supervisor"]["token"]
    report = json.loads((REPO / "docs" / "example-report.json").read_text())
    auth = {"Authorization": f"Bearer {token}"}
    answer = httpx.post(f"{system.url('intake')}/reports", json=report, headers=auth)
    assert answer.status_code == 202, answer.text
    case_id = answer.json()["case_id"]
    deadline = time.monotonic() + 60
    while True:
        hooks = httpx.get(f"{system.url('desk')}/hooks").json()
        if any(h.get("data", {}).get("case_id") == case_id for h in hooks):
            break
        assert time.monotonic() < deadline, f"no webhook for {case_id} at the desk: {hooks}"
        time.sleep(0.2)


def test_sigterm_once_up_stops_everything_and_clears_the_state(system: Up) -> None:
    assert system.stop() == 0, system.said()
    assert system.survivors() == {}
    assert system.bound() == set()
    assert not (system.data_dir / "state.json").exists()
    assert list((Path(system.env["XDG_STATE_HOME"]) / "gridloop" / "running").iterdir()) == []
    gone = elsewhere(system, "department", "list")
    assert gone.returncode == 1 and "no gridloop system is running" in gone.stderr


# --- start-up ---------------------------------------------------------------------------

# Moments of start-up: just after each of these children was spawned (before it listens).
MOMENTS = {
    "tansu": "--listener-url",
    "secantus": "secantusd",
    "projections": "system run projections",
    "sla": "system run sla",
    "desk": "system run desk",
}


@pytest.mark.parametrize("moment", list(MOMENTS))
def test_sigterm_during_start_up_leaves_no_process_and_no_port(moment: str, tmp_path: Path) -> None:
    up = Up.start(tmp_path, newcomer_env(tmp_path))
    try:
        up.wait_for(lambda now: any(MOMENTS[moment] in s.command for s in now.values()))
        up.stop(signal.SIGTERM)
        assert up.proc.returncode is not None, up.said()
        assert up.survivors() == {}, up.said()
        assert up.bound() == set()
        assert not (up.data_dir / "state.json").exists()
    finally:
        up.kill_all()


def test_a_port_in_use_is_refused_before_anything_starts(tmp_path: Path) -> None:
    env = newcomer_env(tmp_path)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", int(env["GRIDLOOP_DESK_PORT"])))
        taken.listen()
        done = gridloop(env, tmp_path / "cwd", "up", "--data-dir", str(tmp_path / "data"))
    said = [line for line in (done.stdout + done.stderr).splitlines() if line.strip()]
    assert done.returncode != 0
    assert len(said) == 1, said
    assert env["GRIDLOOP_DESK_PORT"] in said[0] and "GRIDLOOP_DESK_PORT" in said[0]
    assert not (tmp_path / "data" / "logs").exists()  # no server was started


# --- no system ---------------------------------------------------------------------------


def test_set_webhook_with_no_system_running_says_so_in_one_line(tmp_path: Path) -> None:
    env = newcomer_env(tmp_path)
    url = "http://127.0.0.1:9/hooks/WATER"
    done = gridloop(env, tmp_path / "elsewhere", "department", "set-webhook", "WATER", url)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().count("\n") == 0 and "gridloop up" in done.stderr, done.stderr


def test_a_stale_state_file_is_recognised(tmp_path: Path) -> None:
    data = tmp_path / "data"
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    stale = {
        "status": "up",
        "pid": dead.pid,
        "started_at": "2026-12-06T09:00:00Z",
        "data_dir": str(data),
        "city_pack": str(tmp_path),
        "mongodb_database": "gridloop",
        "host": "127.0.0.1",
        "mongodb_uri": "mongodb://127.0.0.1:9/?directConnection=true",
        "logs": str(data / "logs"),
    }
    data.mkdir()
    (data / "state.json").write_text(json.dumps(stale))
    env = newcomer_env(tmp_path, GRIDLOOP_DATA_DIR=str(data))
    url = "http://127.0.0.1:9/hooks/WATER"
    done = gridloop(env, tmp_path / "elsewhere", "department", "set-webhook", "WATER", url)
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert "stale" in done.stderr and f"pid {dead.pid}" in done.stderr, done.stderr
