"""Static checks of the container deployment, shared by the single-broker and cluster tests.

The compose files, the Dockerfile, deploy/prometheus and deploy/grafana must agree with one
another and with `gridloop.config.Settings` on container names, listeners, ports and paths.
Nothing runs: the files are parsed and cross-checked. Each checker returns a list of problems
(empty when the wiring is right); the tests break in-memory copies on purpose to show that
every check can fail.
"""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import AliasChoices

from gridloop.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
CLUSTER_FILE = ROOT / "docker-compose.cluster.yml"
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = ROOT / "pyproject.toml"

SERVICES = ("intake", "dispatch", "notify", "sla", "projections", "evaluation", "grid")
PUBLISHED = ("intake", "dispatch")  # reachable from the Docker host

# Infrastructure containers are recognised by their image, not by the name the services use
# for them, so a service pointing at a misspelt container name is caught.
KAFKA_IMAGES = frozenset({"apache/kafka", "apache/kafka-native"})
MONGODB_IMAGES = frozenset({"mongo"})
PROMETHEUS_IMAGES = frozenset({"prom/prometheus"})
GRAFANA_IMAGES = frozenset({"grafana/grafana", "grafana/grafana-oss"})

MONGODB_DEFAULT_PORT = 27017
PROMETHEUS_DEFAULT_CONFIG = "/etc/prometheus/prometheus.yml"
PROMETHEUS_DEFAULT_PORT = 9090
GRAFANA_DEFAULT_PROVISIONING = "/etc/grafana/provisioning"
# Kafka's defaults for the replication of its internal topics (consumer offsets, transactions).
KAFKA_INTERNAL_REPLICATION = {
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": 3,
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": 3,
}

Compose = Mapping[str, Any]
Service = Mapping[str, Any]


# --- reading compose entries in any of their accepted syntaxes ------------------------------


def _map(value: object) -> dict[str, Any]:
    return {str(k): v for k, v in value.items()} if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return list(value) if isinstance(value, list) else []


def services_of(compose: Compose) -> dict[str, dict[str, Any]]:
    return {name: _map(spec) for name, spec in _map(compose.get("services")).items()}


def env_of(service: Service) -> dict[str, str]:
    raw = service.get("environment")
    if isinstance(raw, list):
        pairs = (str(entry).partition("=") for entry in raw)
        return {key: value for key, _, value in pairs}
    return {key: "" if value is None else str(value) for key, value in _map(raw).items()}


def command_of(service: Service) -> list[str]:
    raw = service.get("command")
    if isinstance(raw, str):
        return shlex.split(raw)
    return [str(part) for part in _list(raw)]


def option(args: Iterable[str], name: str) -> str | None:
    """The value of `--name=value` or `--name value` in an argument list."""
    args = list(args)
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.partition("=")[2]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def depends_on_of(service: Service) -> dict[str, str]:
    """Dependency -> condition; the short (list) form means `service_started`."""
    raw = service.get("depends_on")
    if isinstance(raw, list):
        return {str(name): "service_started" for name in raw}
    return {
        name: str(_map(spec).get("condition", "service_started"))
        for name, spec in _map(raw).items()
    }


@dataclass(frozen=True)
class PortMapping:
    published: str | None
    target: int


def _ports(service: Service) -> list[PortMapping]:
    mappings = []
    for entry in _list(service.get("ports")):
        if isinstance(entry, dict):
            published = entry.get("published")
            target = entry.get("target")
        else:
            parts = str(entry).split("/")[0].split(":")
            published = parts[-2] if len(parts) > 1 else None
            target = parts[-1]
        if not str(target).isdigit():
            continue  # port ranges: not used here
        mappings.append(
            PortMapping(None if published is None else str(published), int(str(target)))
        )
    return mappings


@dataclass(frozen=True)
class Mount:
    kind: str  # "bind" or "volume"
    source: str | None
    target: str


def _mounts(service: Service) -> list[Mount]:
    mounts = []
    for entry in _list(service.get("volumes")):
        if isinstance(entry, dict):
            source = entry.get("source")
            mounts.append(
                Mount(
                    str(entry.get("type", "volume")), source and str(source), str(entry["target"])
                )
            )
            continue
        parts = str(entry).split(":")
        if len(parts) == 1:
            mounts.append(Mount("volume", None, parts[0]))
        else:
            kind = "bind" if parts[0].startswith((".", "/", "~")) else "volume"
            mounts.append(Mount(kind, parts[0], parts[1]))
    return mounts


def _host_path(service: Service, container_path: str, root: Path) -> Path | None:
    """Where a path inside the container comes from in the repository, via bind mounts."""
    for mount in _mounts(service):
        if mount.kind != "bind" or mount.source is None:
            continue
        if container_path == mount.target:
            return root / mount.source
        if container_path.startswith(mount.target.rstrip("/") + "/"):
            return root / mount.source / container_path[len(mount.target.rstrip("/")) + 1 :]
    return None


def healthcheck_test(service: Service) -> list[str]:
    check = _map(service.get("healthcheck"))
    if check.get("disable"):
        return []
    test = check.get("test")
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    parts = [str(part) for part in _list(test)]
    return [] if parts[:1] == ["NONE"] else parts


def network_names(name: str, service: Service) -> set[str]:
    """The names other containers on the compose network resolve to this one."""
    names = {name}
    if "container_name" in service:
        names.add(str(service["container_name"]))
    for network in _map(service.get("networks")).values():
        names.update(str(alias) for alias in _list(_map(network).get("aliases")))
    return names


def _repository(image: str) -> str:
    """`docker.io/library/mongo:8.0` -> `mongo`."""
    name = image.split("@")[0]
    last = name.rsplit("/", 1)[-1]
    if ":" in last:
        name = name[: -(len(last) - last.index(":"))]
    for prefix in ("docker.io/", "index.docker.io/", "library/"):
        name = name.removeprefix(prefix)
    return name


def image_problems(where: str, image: str) -> list[str]:
    """An image reference must name a version: a tag other than `latest`, or a digest."""
    if "@sha256:" in image:
        return []
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return [f"{where}: image {image!r} is untagged (it means :latest)"]
    if last.rsplit(":", 1)[1] in ("", "latest"):
        return [f"{where}: image {image!r} uses the floating tag latest"]
    return []


def by_image(compose: Compose, repositories: frozenset[str]) -> list[str]:
    return [
        name
        for name, spec in services_of(compose).items()
        if _repository(str(spec.get("image", ""))) in repositories
    ]


def _single(compose: Compose, repositories: frozenset[str], what: str) -> tuple[str, list[str]]:
    found = by_image(compose, repositories)
    if len(found) == 1:
        return found[0], []
    return "", [f"expected one {what} container (image {sorted(repositories)}), found {found}"]


def setting_env_names() -> dict[str, str]:
    """Environment variable -> Settings field, the way pydantic-settings reads them."""
    prefix = str(Settings.model_config.get("env_prefix", ""))
    names: dict[str, str] = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        if isinstance(alias, AliasChoices):
            names.update({c.upper(): field for c in alias.choices if isinstance(c, str)})
        elif isinstance(alias, str):
            names[alias.upper()] = field
        else:
            names[f"{prefix}{field}".upper()] = field
    return names


def port_variable(service_name: str) -> str:
    """The environment variable that sets a service's port, e.g. GRIDLOOP_INTAKE_PORT."""
    field = f"{service_name}_port"
    return next(env for env, f in setting_env_names().items() if f == field)


def service_port(service_name: str, env: Mapping[str, str]) -> int:
    """The port a service listens on, given its container environment (else the default)."""
    variable = port_variable(service_name)
    if variable in env:
        return int(env[variable])
    default = Settings.model_fields[f"{service_name}_port"].default
    assert isinstance(default, int)
    return default


def containers_running(compose: Compose, service_name: str) -> list[str]:
    return [
        name
        for name, spec in services_of(compose).items()
        if command_of(spec) == ["run", service_name]
    ]


# --- checkers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Broker:
    """One Kafka container as the others see it."""

    name: str
    node_id: str
    cluster_id: str
    voters: tuple[str, ...]  # KAFKA_CONTROLLER_QUORUM_VOTERS entries, as written
    controller: set[str]  # `host:port`s its controller listens on, when it has that role
    endpoints: set[str]  # `host:port`s in-network clients can bootstrap from


def _listeners(env: Mapping[str, str], variable: str, where: str, problems: list[str]) -> dict[
    str, tuple[str, int]
]:  # fmt: skip
    parsed = {}
    for entry in filter(None, env.get(variable, "").split(",")):
        match = re.fullmatch(r"\s*([A-Za-z0-9_]+)://(.*):(\d+)\s*", entry)
        if match is None:
            problems.append(f"{where}: cannot parse {variable} entry {entry!r}")
            continue
        parsed[match[1]] = (match[2], int(match[3]))
    return parsed


def _broker(name: str, kafka: Service, brokers: int, problems: list[str]) -> Broker:
    """A broker's own configuration: KRaft roles, listeners, topic creation, replication."""
    env = env_of(kafka)
    where = f"{name} (Kafka)"
    bound = _listeners(env, "KAFKA_LISTENERS", where, problems)
    advertised = _listeners(env, "KAFKA_ADVERTISED_LISTENERS", where, problems)
    controllers = set(filter(None, env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "").split(",")))
    names = network_names(name, kafka)
    roles = env.get("KAFKA_PROCESS_ROLES", "").split(",")

    if "broker" not in roles:
        problems.append(f"{where}: KAFKA_PROCESS_ROLES must include broker (KRaft mode)")
    if not controllers or not controllers <= bound.keys():
        problems.append(f"{where}: controller listeners {controllers} are not all bound")
    if env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true").lower() != "false":
        problems.append(f"{where}: KAFKA_AUTO_CREATE_TOPICS_ENABLE must be false")
    for variable, default in KAFKA_INTERNAL_REPLICATION.items():
        replicas = env.get(variable, str(default))
        if not replicas.isdigit() or int(replicas) > brokers:
            problems.append(f"{where}: {variable} exceeds the {brokers} broker(s)")
    if not healthcheck_test(kafka):
        problems.append(f"{where}: has no healthcheck, so service_healthy cannot be met")

    endpoints = {
        f"{host}:{port}"
        for listener, (host, port) in advertised.items()
        if listener not in controllers
        and host in names
        and listener in bound
        and bound[listener][1] == port
    }
    if not endpoints:
        problems.append(f"{where}: no advertised listener is reachable as <container>:<port>")
    controller_ports = {bound[c][1] for c in controllers if c in bound}
    return Broker(
        name=name,
        node_id=env.get("KAFKA_NODE_ID", ""),
        cluster_id=env.get("CLUSTER_ID", ""),
        voters=tuple(filter(None, env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").split(","))),
        controller={f"{h}:{p}" for h in names for p in controller_ports}
        if "controller" in roles
        else set(),
        endpoints=endpoints,
    )


def kafka_brokers(compose: Compose) -> tuple[list[Broker], list[str]]:
    """Every Kafka container, and problems of each and of the quorum they form: one cluster
    id, one list of voters, each voter a container's controller under its own node id."""
    names = by_image(compose, KAFKA_IMAGES)
    if not names:
        return [], [f"expected a Kafka container (image {sorted(KAFKA_IMAGES)}), found none"]
    problems: list[str] = []
    specs = services_of(compose)
    brokers = [_broker(name, specs[name], len(names), problems) for name in names]
    controller_of = {address: b for b in brokers for address in b.controller}
    for broker in brokers:
        where = f"{broker.name} (Kafka)"
        for voter in broker.voters:
            node_id, _, address = voter.partition("@")
            owner = controller_of.get(address)
            if owner is None or owner.node_id not in ("", node_id):
                problems.append(f"{where}: quorum voter {voter!r} is no container's controller")
        if broker.controller and not any(
            v.partition("@")[2] in broker.controller for v in broker.voters
        ):
            problems.append(f"{where}: has the controller role but is not a quorum voter")
    for what, values in (
        ("CLUSTER_ID", {b.cluster_id for b in brokers}),
        ("KAFKA_CONTROLLER_QUORUM_VOTERS", {frozenset(b.voters) for b in brokers}),
    ):
        if len(values) > 1:
            problems.append(f"Kafka: the brokers disagree on {what}")
    node_ids = [b.node_id for b in brokers]
    if len(brokers) > 1 and len(set(node_ids)) < len(node_ids):
        problems.append(f"Kafka: KAFKA_NODE_ID {node_ids} must differ between brokers")
    return brokers, problems


def kafka_internal_endpoints(compose: Compose) -> tuple[set[str], list[str]]:
    """The `host:port`s containers on the compose network can bootstrap from (any broker's),
    and problems of the brokers' configuration."""
    brokers, problems = kafka_brokers(compose)
    return {e for b in brokers for e in b.endpoints}, problems


def mongodb_members(compose: Compose) -> tuple[dict[str, set[str]], list[str]]:
    """Each MongoDB container -> the `host:port`s it answers on, and their problems."""
    names = by_image(compose, MONGODB_IMAGES)
    if not names:
        return {}, [f"expected a MongoDB container (image {sorted(MONGODB_IMAGES)}), found none"]
    problems = []
    members = {}
    for name in names:
        mongodb = services_of(compose)[name]
        port = int(option(command_of(mongodb), "--port") or MONGODB_DEFAULT_PORT)
        if not healthcheck_test(mongodb):
            problems.append(
                f"{name} (MongoDB): has no healthcheck, so service_healthy cannot be met"
            )
        members[name] = {f"{host}:{port}" for host in network_names(name, mongodb)}
    return members, problems


def mongodb_endpoints(compose: Compose) -> tuple[set[str], list[str]]:
    members, problems = mongodb_members(compose)
    return {e for endpoints in members.values() for e in endpoints}, problems


def mongodb_hosts(uri: str) -> list[str] | None:
    parts = urlsplit(uri)
    if parts.scheme != "mongodb":
        return None  # mongodb+srv needs DNS SRV records, which compose does not serve
    hosts = parts.netloc.rpartition("@")[2].split(",")
    return [h if ":" in h else f"{h}:{MONGODB_DEFAULT_PORT}" for h in hosts if h]


def check_compose(compose: Compose, root: Path) -> list[str]:
    """Every gridloop service runs in its own container, wired to Kafka and MongoDB."""
    services = services_of(compose)
    kafka_endpoints, problems = kafka_internal_endpoints(compose)
    mongo_endpoints, mongo_problems = mongodb_endpoints(compose)
    problems += mongo_problems
    dependencies = set(by_image(compose, KAFKA_IMAGES) + by_image(compose, MONGODB_IMAGES))
    known_settings = setting_env_names()

    for service_name in SERVICES:
        containers = containers_running(compose, service_name)
        if len(containers) != 1:
            problems.append(
                f"{service_name}: expected one container running `gridloop run {service_name}`,"
                f" found {containers}"
            )
            continue
        name = containers[0]
        spec = services[name]
        env = env_of(spec)
        where = f"{name} (gridloop run {service_name})"

        if "build" not in spec:
            problems.append(f"{where}: not built from the repository's Dockerfile")
        for variable in env:
            if variable.startswith("GRIDLOOP_") and variable.upper() not in known_settings:
                problems.append(f"{where}: {variable} is not a setting of gridloop.config")
        if env.get("GRIDLOOP_HOST") not in ("0.0.0.0", "::"):
            problems.append(f"{where}: GRIDLOOP_HOST must be 0.0.0.0 to be reachable")

        bootstrap = [s.strip() for s in env.get("KAFKA_BOOTSTRAP_SERVERS", "").split(",")]
        if not set(bootstrap) <= kafka_endpoints or bootstrap == [""]:
            problems.append(
                f"{where}: KAFKA_BOOTSTRAP_SERVERS={bootstrap} is not among the broker's"
                f" in-network listeners {sorted(kafka_endpoints)}"
            )
        mongo_hosts = mongodb_hosts(env.get("MONGODB_URI", ""))
        if not mongo_hosts or not set(mongo_hosts) <= mongo_endpoints:
            problems.append(
                f"{where}: MONGODB_URI={env.get('MONGODB_URI')!r} does not name the MongoDB"
                f" container ({sorted(mongo_endpoints)})"
            )

        conditions = depends_on_of(spec)
        for dependency in sorted(dependencies):
            if conditions.get(dependency) != "service_healthy":
                problems.append(
                    f"{where}: must depend on {dependency} with condition service_healthy"
                )

        try:
            port = service_port(service_name, env)
        except ValueError:
            problems.append(f"{where}: {port_variable(service_name)} is not a port number")
            continue
        test = " ".join(healthcheck_test(spec))
        variable = port_variable(service_name)
        if "/healthz" not in test or (variable not in test and f":{port}/" not in test):
            problems.append(f"{where}: healthcheck must GET /healthz on port {port}")
        if variable in test and variable not in env:
            problems.append(f"{where}: healthcheck reads {variable}, which is not set")
        for mapping in _ports(spec):
            if mapping.published is not None and mapping.target != port:
                problems.append(f"{where}: publishes container port {mapping.target}, not {port}")
        published = any(m.published is not None and m.target == port for m in _ports(spec))
        if service_name in PUBLISHED and not published:
            problems.append(f"{where}: port {port} must be published to the host")

    for name, spec in services.items():
        if "image" in spec:
            problems += image_problems(name, str(spec["image"]))
        elif "build" not in spec:
            problems.append(f"{name}: has neither an image nor a build")
        build = spec.get("build")
        if build is not None:
            build_map = _map(build) or {"context": build}
            context = root / str(build_map.get("context", "."))
            dockerfile = context / str(build_map.get("dockerfile", "Dockerfile"))
            if not dockerfile.is_file():
                problems.append(f"{name}: build file {dockerfile} does not exist")
        declared_volumes = _map(compose.get("volumes")).keys()
        for mount in _mounts(spec):
            if mount.kind == "bind" and mount.source and not (root / mount.source).exists():
                problems.append(f"{name}: mounted path {mount.source} does not exist")
            if mount.kind == "volume" and mount.source and mount.source not in declared_volumes:
                problems.append(f"{name}: volume {mount.source} is not declared")
    return problems


def prometheus_config_file(compose: Compose, root: Path) -> Path | None:
    """The repository file the Prometheus container reads as its configuration."""
    names = by_image(compose, PROMETHEUS_IMAGES)
    if len(names) != 1:
        return None
    spec = services_of(compose)[names[0]]
    config = option(command_of(spec), "--config.file") or PROMETHEUS_DEFAULT_CONFIG
    return _host_path(spec, config, root)


def _listen_port(spec: Service) -> int:
    address = option(command_of(spec), "--web.listen-address") or f":{PROMETHEUS_DEFAULT_PORT}"
    return int(address.rpartition(":")[2])


def check_prometheus(compose: Compose, scrape: Mapping[str, Any]) -> list[str]:
    """Prometheus scrapes /metrics of every service where that service listens."""
    problems = []
    services = services_of(compose)
    jobs: dict[str, list[dict[str, Any]]] = {}
    for job in _list(scrape.get("scrape_configs")):
        jobs.setdefault(str(_map(job).get("job_name")), []).append(_map(job))
    expected = {f"gridloop-{s}" for s in SERVICES}
    for stale in sorted(j for j in jobs if j.startswith("gridloop-") and j not in expected):
        problems.append(f"prometheus: job {stale} scrapes no gridloop service")

    for service_name in SERVICES:
        job_name = f"gridloop-{service_name}"
        if len(jobs.get(job_name, [])) != 1:
            problems.append(f"prometheus: expected one scrape job {job_name}")
            continue
        job = jobs[job_name][0]
        if job.get("metrics_path", "/metrics") != "/metrics":
            problems.append(f"prometheus: {job_name} must scrape /metrics")
        containers = containers_running(compose, service_name)
        if len(containers) != 1:
            problems.append(f"prometheus: {job_name} has no single container to scrape")
            continue
        name = containers[0]
        port = service_port(service_name, env_of(services[name]))
        names = network_names(name, services[name])
        targets = [
            str(target)
            for static in _list(job.get("static_configs"))
            for target in _list(_map(static).get("targets"))
        ]
        expected_targets = {f"{host}:{port}" for host in names}
        if not targets or not set(targets) <= expected_targets:
            problems.append(
                f"prometheus: {job_name} targets {targets}, but {service_name} listens on"
                f" {sorted(expected_targets)}"
            )
    return problems


def grafana_provisioning_dir(compose: Compose, root: Path) -> Path | None:
    names = by_image(compose, GRAFANA_IMAGES)
    if len(names) != 1:
        return None
    spec = services_of(compose)[names[0]]
    inside = env_of(spec).get("GF_PATHS_PROVISIONING", GRAFANA_DEFAULT_PROVISIONING)
    return _host_path(spec, inside, root)


def check_grafana(
    compose: Compose,
    datasources: Iterable[Mapping[str, Any]],
    dashboard_providers: Iterable[Mapping[str, Any]],
    root: Path,
) -> list[str]:
    """Grafana's Prometheus datasource names the Prometheus container; its dashboard
    providers read directories mounted from the repository."""
    problems = []
    services = services_of(compose)
    prometheus, found = _single(compose, PROMETHEUS_IMAGES, "Prometheus")
    grafana, grafana_found = _single(compose, GRAFANA_IMAGES, "Grafana")
    problems += found + grafana_found
    if not (prometheus and grafana):
        return problems

    expected = {
        f"{host}:{_listen_port(services[prometheus])}"
        for host in network_names(prometheus, services[prometheus])
    }
    urls = [str(ds.get("url")) for ds in datasources if ds.get("type") == "prometheus"]
    if not urls:
        problems.append("grafana: no prometheus datasource is provisioned")
    for url in urls:
        parts = urlsplit(url)
        if parts.scheme != "http" or parts.netloc not in expected:
            problems.append(f"grafana: datasource {url} is not the Prometheus container {expected}")

    providers = list(dashboard_providers)
    if not providers:
        problems.append("grafana: no dashboard provider is provisioned")
    for provider in providers:
        path = str(_map(provider.get("options")).get("path"))
        source = _host_path(services[grafana], path, root)
        if source is None or not source.is_dir():
            problems.append(f"grafana: dashboards path {path} is not mounted from the repository")
    return problems


def _dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    joined = re.sub(r"\\\n", " ", text)
    instructions = []
    for line in joined.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def check_dockerfile(text: str, pyproject: Mapping[str, Any]) -> list[str]:
    """The image: a pinned Python matching requires-python, installed with the constraints,
    run unprivileged, entered through the gridloop console script."""
    problems = []
    project = _map(pyproject.get("project"))
    instructions = _dockerfile_instructions(text)
    stages: set[str] = set()
    bases = []
    for keyword, rest in instructions:
        if keyword == "FROM":
            words = [w for w in rest.split() if not w.startswith("--")]
            if words and words[0] not in stages:
                bases.append(words[0])
                problems += image_problems("Dockerfile FROM", words[0])
            if len(words) == 3 and words[1].upper() == "AS":
                stages.add(words[2])
    python = re.search(r">=\s*(\d+\.\d+)", str(project.get("requires-python", "")))
    runtime = bases[-1] if bases else ""
    if python is None or not re.fullmatch(
        rf"python:{re.escape(python[1])}(\.\d+)?(-.*)?", _base_with_tag(runtime)
    ):
        problems.append(
            f"Dockerfile: final base {runtime!r} is not the Python requires-python says"
        )

    runs = " ".join(rest for keyword, rest in instructions if keyword == "RUN")
    if not re.search(r"pip install[^&;]*(-c|--constraint)[ =]constraints\.txt", runs):
        problems.append("Dockerfile: pip install must use -c constraints.txt")

    users = [rest for keyword, rest in instructions if keyword == "USER"]
    if not users or users[-1].split(":")[0] in ("root", "0"):
        problems.append("Dockerfile: the image must run as a non-root USER")

    entrypoints = [rest for keyword, rest in instructions if keyword == "ENTRYPOINT"]
    scripts = _map(project.get("scripts"))
    try:
        entrypoint = json.loads(entrypoints[-1]) if entrypoints else None
    except json.JSONDecodeError:
        entrypoint = None
    if not (
        isinstance(entrypoint, list) and entrypoint[:1] == ["gridloop"] and "gridloop" in scripts
    ):
        problems.append("Dockerfile: ENTRYPOINT must be the exec form of the gridloop script")
    return problems


def _base_with_tag(image: str) -> str:
    return _repository(image) + (":" + image.rsplit(":", 1)[1] if ":" in image else "")


def check_image_version(compose: Compose, pyproject: Mapping[str, Any]) -> list[str]:
    """The image built for the services is tagged with the distribution's version."""
    version = str(_map(pyproject.get("project")).get("version"))
    problems = []
    for service_name in SERVICES:
        for name in containers_running(compose, service_name):
            image = str(services_of(compose)[name].get("image", ""))
            if image.rsplit(":", 1)[-1] != version:
                problems.append(f"{name}: image {image!r} is not tagged {version}")
    return problems


# --- the real files ---------------------------------------------------------------------------


def load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def load_yaml_dir(directory: Path, key: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for path in sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")]):
        entries += [_map(entry) for entry in _list(_map(load_yaml(path)).get(key))]
    return entries


def unshared(data: Any) -> dict[str, Any]:
    """A deep copy without YAML's shared anchors, so one service can be broken alone."""
    return _map(json.loads(json.dumps(data)))


def _merged(base: Mapping[str, Any], local: Mapping[str, Any]) -> dict[str, Any]:
    """`extends`, simplified: mappings merge key by key, anything else the local value wins.
    (Compose appends `ports` and merges `volumes` by target; the files here override none.)"""
    merged = dict(base)
    for key, value in local.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merged(merged[key], value)
        else:
            merged[key] = value
    return merged


def _extended(spec: Mapping[str, Any], services: Mapping[str, Any], path: Path) -> dict[str, Any]:
    extends = spec.get("extends")
    if extends is None:
        return dict(spec)
    ref = {"service": extends} if isinstance(extends, str) else _map(extends)
    base_path = path.parent / str(ref["file"]) if "file" in ref else path
    base_services = services_of(load_yaml(base_path)) if "file" in ref else services
    base = _extended(base_services[str(ref["service"])], base_services, base_path)
    return _merged(base, {k: v for k, v in spec.items() if k != "extends"})


def load_compose(path: Path) -> dict[str, Any]:
    """A compose file as Compose reads it: anchors expanded, `extends` resolved."""
    compose = unshared(load_yaml(path))
    services = services_of(compose)
    compose["services"] = {name: _extended(s, services, path) for name, s in services.items()}
    return unshared(compose)


# --- breaking in-memory copies ----------------------------------------------------------------


def service_spec(compose: dict[str, Any], name: str) -> dict[str, Any]:
    spec: dict[str, Any] = compose["services"][name]
    return spec


def set_env(name: str, variable: str, value: str | None) -> Callable[[dict[str, Any]], None]:
    def mutate(compose: dict[str, Any]) -> None:
        env = env_of(service_spec(compose, name))
        if value is None:
            env.pop(variable, None)
        else:
            env[variable] = value
        service_spec(compose, name)["environment"] = env

    return mutate


def set_key(name: str, key: str, value: object) -> Callable[[dict[str, Any]], None]:
    def mutate(compose: dict[str, Any]) -> None:
        if value is None:
            service_spec(compose, name).pop(key, None)
        else:
            service_spec(compose, name)[key] = value

    return mutate
