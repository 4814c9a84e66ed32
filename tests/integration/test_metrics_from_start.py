"""A quiet service's dashboard shows 0, not "no data": every service, started as `gridloop up`
starts it (its own process, on the session's broker and database, a namespace and database
of its own so no record reaches it), exports every gridloop_ family it has with at least one
sample before any traffic, its HTTP routes' RED series among them.

The one exception is named with its reason: a score exists only once a case counts for its
department or street this month, and 0 would read as the worst grade.
"""

from __future__ import annotations

import os
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from gridloop.config import DEMO_CITY_PACK
from gridloop.embedded import free_port, free_ports
from system.desk import pack_for_receivers
from system.up import PORT_ENV, SERVICES, System
from tests.conftest import Servers, fresh_namespace

# Every service but the composition root's stand-ins (the demo desk, the front door).
STARTED = tuple(s for s in SERVICES if s not in ("desk", "door"))
UNDEFINED_UNTIL_SCORED = {
    "gridloop_evaluation_score": "no case has counted for any department or street yet",
    "gridloop_evaluation_indicator_ratio": "no case has counted for any department or street",
}
RED = ("gridloop_http_requests", "gridloop_http_request_duration_seconds")
# Services whose HTTP is only /metrics and /healthz, which are not counted.
NO_API = {"sla", "projections"}


@pytest.fixture(scope="module")
def system(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[System]:
    root = tmp_path_factory.mktemp("metrics-from-start")
    nowhere = f"http://127.0.0.1:{free_port()}/hooks"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
        "MONGODB_URI": servers.mongodb,
        "GRIDLOOP_MONGODB_DATABASE": f"quiet_{uuid.uuid4().hex[:8]}",
        "GRIDLOOP_NAMESPACE": fresh_namespace(),
        "GRIDLOOP_CITY_PACK": str(pack_for_receivers(DEMO_CITY_PACK, root / "pack", nowhere)),
        "GRIDLOOP_DATA_DIR": str(root / "data"),
        "GRIDLOOP_KAFKA_SESSION_TIMEOUT_MS": "6000",
        **free_ports(PORT_ENV.values()),
    }
    running = System(env, root / "logs", STARTED)
    try:
        running.start()
        yield running
    finally:
        running.stop()


def scrape(system: System, service: str) -> dict[str, int]:
    """The gridloop_ families of `service`'s /metrics, each with its number of samples."""
    with urllib.request.urlopen(f"{system.url(service)}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    return {
        f.name: len(f.samples)
        for f in text_string_to_metric_families(text)
        if f.name.startswith("gridloop_")
    }


@pytest.mark.parametrize("service", STARTED)
def test_every_gridloop_family_has_a_sample_before_any_traffic(
    system: System, service: str
) -> None:
    families = scrape(system, service)
    assert families, f"{service} exports no gridloop_ family"
    empty = sorted(f for f, n in families.items() if n == 0 and f not in UNDEFINED_UNTIL_SCORED)
    assert empty == [], f"{service}: families without a sample: {empty}\n{Path(system.logs)}"
    if service not in NO_API:
        assert all(families.get(f) for f in RED), f"{service} has no RED series: {families}"
