"""Real servers for the whole test run: a Tansu broker and a SecantusDB server, started once.

Set KAFKA_BOOTSTRAP_SERVERS and MONGODB_URI to run the same tests against external servers.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from gridloop import embedded
from gridloop.config import Settings

FAULTS = Path(__file__).parent / "faults"


def pytest_ignore_collect(collection_path: Path, config: pytest.Config) -> bool | None:
    """The fault suite is long: it runs only when named (`make faults`, `pytest tests/faults`)."""
    if collection_path != FAULTS:
        return None
    named = (Path(arg.split("::")[0]).resolve() for arg in config.args)
    return True if not any(p == FAULTS or p.is_relative_to(FAULTS) for p in named) else None


def fresh_namespace(prefix: str = "t") -> str:
    """Topics and groups of one test system alone (gridloop/topology.py): the broker is the
    whole run's, so another test's records never reach this system's consumers."""
    return f"{prefix}{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True)
class Servers:
    kafka: str
    mongodb: str
    # The embedded servers' directory (SecantusDB's files under `mongodb/`); None when the
    # tests run against external servers.
    data: Path | None = None

    def settings(self, **overrides: object) -> Settings:
        """Settings for in-process services, with a database and a namespace of their own."""
        values: dict[str, object] = {
            "kafka_bootstrap_servers": self.kafka,
            "mongodb_uri": self.mongodb,
            "mongodb_database": f"test_{uuid.uuid4().hex[:12]}",
            "namespace": fresh_namespace(),
        }
        values.update(overrides)
        return Settings.model_validate(values)


@pytest.fixture(scope="session")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Servers]:
    kafka, mongodb = os.environ.get("KAFKA_BOOTSTRAP_SERVERS"), os.environ.get("MONGODB_URI")
    started: list[embedded.ServerProcess] = []
    data: Path = tmp_path_factory.mktemp("servers")
    try:
        if not kafka:
            started.append(embedded.tansu(data))
            started[-1].start()
            kafka = embedded.kafka_bootstrap(started[-1])
        if not mongodb:
            started.append(embedded.secantus(data))
            started[-1].start()
            mongodb = embedded.mongodb_uri(started[-1])
        yield Servers(kafka, mongodb, data if started else None)
    finally:
        for server in reversed(started):
            server.stop()
