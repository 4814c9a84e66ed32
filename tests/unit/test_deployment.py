"""The single-broker deployment (docker-compose.yml) is wired together.

docker-compose.yml, the Dockerfile, deploy/prometheus and deploy/grafana must agree with one
another and with `gridloop.config.Settings` on container names, listeners, ports and paths.
The checkers live in `deployment_checks` (the cluster file is checked with them too); the
tests at the end break in-memory copies of the configuration to show every check can fail.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.unit.deployment_checks import (
    COMPOSE_FILE,
    DOCKERFILE,
    PYPROJECT,
    ROOT,
    SERVICES,
    check_compose,
    check_dockerfile,
    check_grafana,
    check_image_version,
    check_prometheus,
    grafana_provisioning_dir,
    image_problems,
    load_compose,
    load_yaml,
    load_yaml_dir,
    port_variable,
    prometheus_config_file,
    set_env,
    set_key,
    unshared,
)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_compose(COMPOSE_FILE)


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    with PYPROJECT.open("rb") as stream:
        return tomllib.load(stream)


@pytest.fixture(scope="module")
def scrape(compose: dict[str, Any]) -> dict[str, Any]:
    path = prometheus_config_file(compose, ROOT)
    assert path is not None and path.is_file(), "Prometheus must mount its config from the repo"
    return unshared(load_yaml(path))


@pytest.fixture(scope="module")
def provisioning(compose: dict[str, Any]) -> Path:
    path = grafana_provisioning_dir(compose, ROOT)
    assert path is not None and path.is_dir(), "Grafana must mount provisioning from the repo"
    return path


def test_compose_wires_every_service(compose: dict[str, Any]) -> None:
    assert check_compose(compose, ROOT) == []


def test_prometheus_scrapes_every_service(compose: dict[str, Any], scrape: dict[str, Any]) -> None:
    assert check_prometheus(compose, scrape) == []


def test_grafana_reads_prometheus_and_the_dashboards(
    compose: dict[str, Any], provisioning: Path
) -> None:
    datasources = load_yaml_dir(provisioning / "datasources", "datasources")
    providers = load_yaml_dir(provisioning / "dashboards", "providers")
    assert check_grafana(compose, datasources, providers, ROOT) == []


def test_dockerfile(pyproject: dict[str, Any]) -> None:
    assert check_dockerfile(DOCKERFILE.read_text(encoding="utf-8"), pyproject) == []


def test_service_image_is_tagged_with_the_package_version(
    compose: dict[str, Any], pyproject: dict[str, Any]
) -> None:
    assert check_image_version(compose, pyproject) == []


@pytest.mark.parametrize("name", ["constraints.txt", "README.md"])
def test_build_inputs_exist(name: str) -> None:
    """`pip install -c constraints.txt .` needs the constraints and the readme hatchling reads."""
    if not (ROOT / name).is_file():
        pytest.skip(f"{name} is not written yet; the image cannot be built without it")


# --- the checks can fail ------------------------------------------------------------------------


COMPOSE_BREAKAGES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "bootstrap on the controller listener": (
        set_env("dispatch", "KAFKA_BOOTSTRAP_SERVERS", "kafka:9093"),
        "dispatch (gridloop run dispatch): KAFKA_BOOTSTRAP_SERVERS",
    ),
    "bootstrap on the host listener": (
        set_env("notify", "KAFKA_BOOTSTRAP_SERVERS", "localhost:29092"),
        "notify (gridloop run notify): KAFKA_BOOTSTRAP_SERVERS",
    ),
    "broker advertises an unresolvable host": (
        set_env("kafka", "KAFKA_ADVERTISED_LISTENERS", "PLAINTEXT://localhost:9092"),
        "no advertised listener",
    ),
    "auto-create left on": (
        set_env("kafka", "KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true"),
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE must be false",
    ),
    "offsets topic replicated beyond the brokers": (
        set_env("kafka", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", None),
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR exceeds",
    ),
    "quorum voter on the wrong port": (
        set_env("kafka", "KAFKA_CONTROLLER_QUORUM_VOTERS", "1@kafka:9092"),
        "quorum voter",
    ),
    "mongodb misspelt": (
        set_env("sla", "MONGODB_URI", "mongodb://mongo:27017"),
        "sla (gridloop run sla): MONGODB_URI",
    ),
    "bound to loopback": (
        set_env("projections", "GRIDLOOP_HOST", "127.0.0.1"),
        "GRIDLOOP_HOST must be 0.0.0.0",
    ),
    "misspelt setting": (
        set_env("intake", "GRIDLOOP_INTAKE_PROT", "8000"),
        "GRIDLOOP_INTAKE_PROT is not a setting",
    ),
    "port moved, publication not": (
        set_env("intake", port_variable("intake"), "8080"),
        "publishes container port 8000, not 8080",
    ),
    "dispatch not published": (set_key("dispatch", "ports", None), "must be published"),
    "healthcheck reads an unset port": (
        set_env("sla", port_variable("sla"), None),
        "healthcheck reads GRIDLOOP_SLA_PORT, which is not set",
    ),
    "depends_on in short form": (
        set_key("sla", "depends_on", ["kafka", "mongodb"]),
        "must depend on kafka with condition service_healthy",
    ),
    "broker without healthcheck": (
        set_key("kafka", "healthcheck", None),
        "has no healthcheck",
    ),
    "service healthcheck on the wrong path": (
        set_key(
            "notify", "healthcheck", {"test": ["CMD", "python", "-c", "print(':8002/health')"]}
        ),
        "healthcheck must GET /healthz",
    ),
    "service renamed": (set_key("projections", "command", ["run", "projection"]), "projections:"),
    "floating tag": (set_key("mongodb", "image", "mongo:latest"), "floating tag latest"),
    "untagged": (set_key("grafana", "image", "grafana/grafana"), "is untagged"),
    "missing mount": (
        set_key("prometheus", "volumes", ["./deploy/prometheus/nope.yml:/etc/prometheus/x.yml"]),
        "mounted path ./deploy/prometheus/nope.yml does not exist",
    ),
}


@pytest.mark.parametrize("breakage", COMPOSE_BREAKAGES)
def test_check_compose_reports_broken_wiring(compose: dict[str, Any], breakage: str) -> None:
    broken = unshared(compose)
    mutate, expected = COMPOSE_BREAKAGES[breakage]
    mutate(broken)
    problems = check_compose(broken, ROOT)
    assert any(expected in problem for problem in problems), problems


def test_check_compose_reports_a_hand_written_broken_file() -> None:
    broken: dict[str, Any] = {
        "services": {
            "kafka": {
                "image": "apache/kafka",
                "environment": {
                    "KAFKA_PROCESS_ROLES": "broker,controller",
                    "KAFKA_LISTENERS": "PLAINTEXT://:9092,CONTROLLER://:9093",
                    "KAFKA_ADVERTISED_LISTENERS": "PLAINTEXT://localhost:9092",
                    "KAFKA_CONTROLLER_LISTENER_NAMES": "CONTROLLER",
                },
            },
            "mongodb": {"image": "mongo:latest"},
            "intake": {
                "image": "gridloop:0.1.0",
                "build": ".",
                "command": "run intake",
                "environment": [
                    "KAFKA_BOOTSTRAP_SERVERS=kafka:9092",
                    "MONGODB_URI=mongodb://localhost:27017",
                ],
                "depends_on": ["kafka", "mongodb"],
            },
        }
    }
    problems = "\n".join(check_compose(broken, ROOT))
    for expected in (
        "image 'apache/kafka' is untagged",
        "image 'mongo:latest' uses the floating tag latest",
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE must be false",
        "no advertised listener",
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR exceeds",
        "kafka (Kafka): has no healthcheck",
        "mongodb (MongoDB): has no healthcheck",
        "intake (gridloop run intake): KAFKA_BOOTSTRAP_SERVERS",
        "intake (gridloop run intake): MONGODB_URI",
        "GRIDLOOP_HOST must be 0.0.0.0",
        "must depend on kafka with condition service_healthy",
        "healthcheck must GET /healthz on port 8000",
        "port 8000 must be published",
        *(f"expected one container running `gridloop run {s}`" for s in SERVICES[1:]),
    ):
        assert expected in problems, problems


def test_check_prometheus_reports_wrong_targets(
    compose: dict[str, Any], scrape: dict[str, Any]
) -> None:
    broken = unshared(scrape)
    jobs = {job["job_name"]: job for job in broken["scrape_configs"]}
    jobs["gridloop-sla"]["static_configs"] = [{"targets": ["sla:9999"]}]
    jobs["gridloop-notify"]["static_configs"] = [{"targets": ["notifier:8002"]}]
    jobs["gridloop-dispatch"]["metrics_path"] = "/prometheus"
    broken["scrape_configs"] = [
        job for job in broken["scrape_configs"] if job["job_name"] != "gridloop-projections"
    ] + [{"job_name": "gridloop-reporting", "static_configs": [{"targets": ["x:1"]}]}]
    problems = "\n".join(check_prometheus(compose, broken))
    for expected in (
        "gridloop-sla targets ['sla:9999']",
        "gridloop-notify targets ['notifier:8002']",
        "gridloop-dispatch must scrape /metrics",
        "expected one scrape job gridloop-projections",
        "job gridloop-reporting scrapes no gridloop service",
    ):
        assert expected in problems, problems


def test_check_prometheus_follows_the_service_port(
    compose: dict[str, Any], scrape: dict[str, Any]
) -> None:
    """Moving a service's port in compose without moving its scrape target is caught."""
    broken = unshared(compose)
    set_env("intake", port_variable("intake"), "8100")(broken)
    assert any("gridloop-intake targets" in p for p in check_prometheus(broken, scrape))


def test_check_grafana_reports_wrong_wiring(compose: dict[str, Any], provisioning: Path) -> None:
    datasources = load_yaml_dir(provisioning / "datasources", "datasources")
    providers = load_yaml_dir(provisioning / "dashboards", "providers")
    wrong_url = [{**ds, "url": "http://localhost:9090"} for ds in datasources]
    wrong_path = [{**p, "options": {"path": "/var/lib/grafana/other"}} for p in providers]
    assert any("datasource" in p for p in check_grafana(compose, wrong_url, providers, ROOT))
    assert any(
        "dashboards path" in p for p in check_grafana(compose, datasources, wrong_path, ROOT)
    )
    assert check_grafana(compose, [], [], ROOT) == [
        "grafana: no prometheus datasource is provisioned",
        "grafana: no dashboard provider is provisioned",
    ]


def test_check_dockerfile_reports_a_broken_image(pyproject: dict[str, Any]) -> None:
    broken = "\n".join(
        [
            "FROM python:3.12-slim",
            "COPY . .",
            "RUN pip install .",
            "ENTRYPOINT gridloop",
        ]
    )
    problems = "\n".join(check_dockerfile(broken, pyproject))
    for expected in ("not the Python", "constraints.txt", "non-root USER", "ENTRYPOINT"):
        assert expected in problems, problems
    assert "latest" in "\n".join(check_dockerfile("FROM python\nUSER 1000", pyproject))


def test_image_problems() -> None:
    assert image_problems("x", "mongo:8.0.17") == []
    assert image_problems("x", "localhost:5000/gridloop") != []  # registry port, no tag
    assert image_problems("x", "localhost:5000/gridloop:1.0") == []
    assert image_problems("x", "mongo@sha256:" + "0" * 64) == []
    assert image_problems("x", "docker.io/library/mongo:latest") != []
