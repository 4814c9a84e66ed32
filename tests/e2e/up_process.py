"""`gridloop up` as a newcomer runs it: its own process, in a directory of its own, watched
from outside — its processes (read from /proc) and the ports they hold. Nothing here
borrows the code under test's own view of processes or ports."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from gridloop.embedded import free_ports
from system.up import PORT_ENV

REPO = Path(__file__).resolve().parents[2]
# What names the servers of a system in the environment: a newcomer's shell has none.
SYSTEM_VARIABLES = ("KAFKA_BOOTSTRAP_SERVERS", "MONGODB_URI")


def newcomer_env(root: Path, **extra: str) -> dict[str, str]:
    """This environment without any server or gridloop setting, with pointers under `root`
    (not the user's home) and free ports for every service."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in SYSTEM_VARIABLES and not k.startswith("GRIDLOOP_")
    }
    ports = free_ports(PORT_ENV.values())
    return env | ports | {"XDG_STATE_HOME": str(root / "xdg"), "PYTHONPATH": str(REPO)} | extra


def gridloop(
    env: dict[str, str], cwd: Path, *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """One `gridloop` command, run in `cwd`."""
    cwd.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, "-m", "system", *args],
        env=env,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def process_start(pid: int) -> str | None:
    """When the process started (clock ticks since boot); None if it is gone or a zombie."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] == "Z" else fields[19]


def port_free(port: int) -> bool:
    """Whether a server could listen on 127.0.0.1:`port` (SO_REUSEADDR, as uvicorn binds)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _children() -> dict[int, list[int]]:
    found: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text(encoding="ascii", errors="replace")
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        found.setdefault(parent, []).append(int(entry.name))
    return found


def _command_line(pid: int) -> str | None:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return None
    return raw.replace(b"\0", b" ").decode(errors="replace").strip()


@dataclass(frozen=True)
class Seen:
    command: str
    start: str | None  # the process's start time: a pid used again later is not it


@dataclass
class Up:
    """A `gridloop up` process and every process under it ever seen."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    env: dict[str, str]
    output: Path
    seen: dict[int, Seen] = field(default_factory=dict)
    _out: IO[bytes] | None = None

    @classmethod
    def start(cls, root: Path, env: dict[str, str]) -> Up:
        data_dir, output = root / "data", root / "up.out"
        (root / "cwd").mkdir(parents=True, exist_ok=True)
        out = output.open("wb")
        argv = [sys.executable, "-m", "system", "up", "--data-dir", str(data_dir)]
        proc = subprocess.Popen(argv, env=env, cwd=root / "cwd", stdout=out, stderr=out)
        return cls(proc, data_dir, env, output, _out=out)

    def watch(self) -> dict[int, Seen]:
        """The processes under `up` now (remembered in `seen`)."""
        tree, todo = _children(), [self.proc.pid]
        now: dict[int, Seen] = {}
        while todo:
            for pid in tree.get(todo.pop(), []):
                command = _command_line(pid)
                if command is not None:  # read again: a child seen before its exec changes
                    now[pid] = self.seen[pid] = Seen(command, process_start(pid))
                    todo.append(pid)
        return now

    def wait_for(
        self, what: Callable[[dict[int, Seen]], bool], within: float = 180, every: float = 0.01
    ) -> None:
        """Poll the process tree until `what` holds of it."""
        deadline = time.monotonic() + within
        while not what(self.watch()):
            if self.proc.poll() is not None:
                raise AssertionError(f"gridloop up ended ({self.proc.returncode}):\n{self.said()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {within}s:\n{self.said()}")
            time.sleep(every)

    def stop(self, sig: signal.Signals = signal.SIGTERM, within: float = 90) -> int:
        """Send `sig` to `up` and wait for it to end, watching what it starts meanwhile."""
        self.proc.send_signal(sig)
        deadline = time.monotonic() + within
        while self.proc.poll() is None and time.monotonic() < deadline:
            self.watch()
            time.sleep(0.01)
        return self.proc.wait(timeout=1)

    def survivors(self) -> dict[int, Seen]:
        """The processes seen under `up` that still run (zombies do not)."""
        return {
            pid: seen
            for pid, seen in self.seen.items()
            if seen.start is not None and process_start(pid) == seen.start
        }

    def ports(self) -> set[int]:
        """The services' ports and those the embedded servers were given."""
        ports = {int(self.env[variable]) for variable in PORT_ENV.values()}
        for seen in self.seen.values():
            ports |= {int(p) for p in re.findall(r"127\.0\.0\.1:(\d+)", seen.command)}
            ports |= {int(p) for p in re.findall(r"--port (\d+)", seen.command)}
        return ports

    def bound(self) -> set[int]:
        return {port for port in self.ports() if not port_free(port)}

    def said(self) -> str:
        return self.output.read_text(encoding="utf-8", errors="replace")

    def kill_all(self) -> None:
        """Whatever happened in the test: nothing of this `up` left running."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        for pid in self.survivors():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if self._out is not None:
            self._out.close()
            self._out = None

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.env[PORT_ENV[service]]}"
