"""Where a running system listens: the state file `gridloop up` writes, and how a command
finds the system from it, from any directory.

`gridloop up` writes `<data dir>/state.json` (the broker, the database, every service's
address, its own pid) as it starts and removes it when it stops; beside it, it leaves a
pointer under `$XDG_STATE_HOME/gridloop/running/` (default `~/.local/state`), so that a
command run in another directory finds it. A command that needs the system looks, in order:

1. `--data-dir DIR` on its command line: the system that runs from DIR;
2. `MONGODB_URI` or `KAFKA_BOOTSTRAP_SERVERS` in the environment: those servers, as every
   service reads them (production, or servers one started oneself);
3. `GRIDLOOP_DATA_DIR` in the environment: as 1;
4. the `.gridloop` of the current directory if a system runs from it, else the one system
   the pointers name.

A state file whose process is gone (`up` was killed) is stale and said to be.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ValidationError

from gridloop.config import Settings

STATE_FILE = "state.json"
NOT_RUNNING = (
    "no gridloop system is running: start one with `gridloop up` (or name its data "
    "directory with --data-dir DIR or GRIDLOOP_DATA_DIR)"
)


class Unavailable(Exception):
    """The system a command needs is not there; the message (one line) says why and what
    to do."""


class SystemState(BaseModel):
    """What `<data dir>/state.json` holds."""

    status: Literal["starting", "up"]
    pid: int  # of the `gridloop up` process
    process_start: str | None = None  # its start time (Linux), so that a reused pid is not it
    started_at: datetime
    data_dir: Path
    city_pack: Path
    mongodb_database: str
    namespace: str = ""
    host: str
    kafka_bootstrap_servers: str | None = None  # known once the broker listens
    mongodb_uri: str | None = None
    # THE address: the front door, one origin for every API (/v1), Open311, the
    # workbench and the big screen; `services` behind it, each on its own port.
    address: str | None = None
    services: dict[str, str] = {}  # name → base URL, the department desk among them
    logs: Path
    demo_credentials: Path | None = None

    def settings(self) -> Settings:
        """The settings a command uses against this system (the rest from the environment)."""
        values: dict[str, Any] = {
            "mongodb_database": self.mongodb_database,
            "namespace": self.namespace,
            "city_pack": self.city_pack,
            "data_dir": self.data_dir,
            "host": self.host,
        }
        if self.kafka_bootstrap_servers:
            values["kafka_bootstrap_servers"] = self.kafka_bootstrap_servers
        if self.mongodb_uri:
            values["mongodb_uri"] = self.mongodb_uri
        for name, url in self.services.items():
            if f"{name}_port" in Settings.model_fields and urlsplit(url).port:
                values[f"{name}_port"] = urlsplit(url).port
        return Settings(**values)


def state_path(data_dir: Path) -> Path:
    return data_dir / STATE_FILE


def pointers() -> Path:
    """Where `up` leaves a pointer to its state file, one a process."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "gridloop" / "running"


def process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), None where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[-1].split()  # after the command name, which may hold spaces
    return fields[19] if len(fields) > 19 and fields[0] != "Z" else None


def alive(state: SystemState) -> bool:
    """Whether the process that wrote `state` still runs (not a zombie, not a reused pid)."""
    try:
        os.kill(state.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: it exists
    if not Path("/proc").is_dir():
        return True
    started = process_start(state.pid)
    return started is not None and state.process_start in (None, started)


def write_state(state: SystemState) -> None:
    """Write the state file (atomically, readable by its owner only: a production
    MONGODB_URI may hold a password) and the pointer to it."""
    path = state_path(state.data_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{STATE_FILE}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        out.write(state.model_dump_json(indent=2) + "\n")
    os.replace(partial, path)
    # Without a pointer the system is still found from its own directory and by name.
    with contextlib.suppress(OSError, RuntimeError):
        where = pointers()
        where.mkdir(parents=True, exist_ok=True)
        pointer = json.dumps({"data_dir": str(state.data_dir)})
        (where / f"{state.pid}.json").write_text(pointer + "\n", encoding="utf-8")


def remove_state(data_dir: Path, pid: int) -> None:
    """Remove the state file if `pid` wrote it, and its pointer."""
    with contextlib.suppress(Unavailable, OSError):
        state = read_state(data_dir)
        if state is not None and state.pid == pid:
            state_path(data_dir).unlink()
    with contextlib.suppress(OSError, RuntimeError):
        (pointers() / f"{pid}.json").unlink(missing_ok=True)


def read_state(data_dir: Path) -> SystemState | None:
    path = state_path(data_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise Unavailable(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return SystemState.model_validate_json(text)
    except ValidationError as exc:
        raise Unavailable(f"{path} is not a state file of gridloop up: remove it") from exc


def find(data_dir: Path | None = None) -> SystemState:
    """The running system `gridloop up` started: from `data_dir`, else GRIDLOOP_DATA_DIR,
    else the current directory's `.gridloop` or the one the pointers name."""
    if data_dir is None and os.environ.get("GRIDLOOP_DATA_DIR"):
        data_dir = Path(os.environ["GRIDLOOP_DATA_DIR"])
    if data_dir is not None:
        return _usable(data_dir.resolve(), read_state(data_dir.resolve()))
    here = Path(".gridloop").resolve()
    state = read_state(here)
    if state is not None and alive(state):
        return _usable(here, state)
    running = {s.data_dir: s for s in _pointed()}
    if len(running) > 1:
        places = ", ".join(sorted(str(d) for d in running))
        raise Unavailable(
            f"{len(running)} gridloop systems are running (from {places}): choose one with "
            "--data-dir DIR or GRIDLOOP_DATA_DIR"
        )
    if not running:
        if state is not None:
            return _usable(here, state)  # stale: say so
        raise Unavailable(NOT_RUNNING)
    (found,) = running.values()
    return _usable(found.data_dir, found)


def locate(data_dir: Path | None = None) -> Settings:
    """The settings of the system a command works on (see the module's docstring)."""
    servers = ("MONGODB_URI", "KAFKA_BOOTSTRAP_SERVERS")
    if data_dir is None and any(os.environ.get(name) for name in servers):
        return Settings()
    return find(data_dir).settings()


def _usable(data_dir: Path, state: SystemState | None) -> SystemState:
    if state is None:
        raise Unavailable(
            f"no gridloop system is running from {data_dir} (no {STATE_FILE} there): start "
            f"one with `gridloop up --data-dir {data_dir}`"
        )
    if not alive(state):
        raise Unavailable(
            f"the gridloop system that ran from {data_dir} (pid {state.pid}) has stopped; its "
            f"{STATE_FILE} is stale: start it again with `gridloop up --data-dir {data_dir}`"
        )
    if state.status != "up":
        raise Unavailable(
            f"the gridloop system from {data_dir} (pid {state.pid}) is still starting: try "
            "again when `gridloop up` says it is up"
        )
    return state


def _pointed() -> Iterator[SystemState]:
    """The live systems the pointers name; a pointer whose process is gone is removed."""
    try:
        entries = sorted(pointers().glob("*.json"))
    except (OSError, RuntimeError):
        return
    for entry in entries:
        state: SystemState | None = None
        with contextlib.suppress(OSError, ValueError, Unavailable):
            state = read_state(Path(json.loads(entry.read_text(encoding="utf-8"))["data_dir"]))
        if state is not None and str(state.pid) == entry.stem and alive(state):
            yield state
        elif not _process_exists(entry.stem):
            with contextlib.suppress(OSError):
                entry.unlink()


def _process_exists(pid: str) -> bool:
    try:
        os.kill(int(pid), 0)
    except (ValueError, ProcessLookupError):
        return False
    except PermissionError:
        pass
    return True


@contextlib.contextmanager
def reaching(settings: Settings) -> Iterator[None]:
    """Turn the drivers' "cannot connect" into one line naming the server (a command's
    answer when the system went away, instead of the driver's traceback)."""
    from aiokafka.errors import KafkaConnectionError
    from pymongo.errors import ConnectionFailure

    try:
        yield
    except ConnectionFailure as exc:
        where = urlsplit(settings.mongodb_uri).netloc.rpartition("@")[2]
        raise Unavailable(
            f"cannot reach the database at {where}: is the system up? (`gridloop status`)"
        ) from exc
    except KafkaConnectionError as exc:
        raise Unavailable(
            f"cannot reach the broker at {settings.kafka_bootstrap_servers}: is the system "
            "up? (`gridloop status`)"
        ) from exc
