"""The production deployment is wired together.

docker-compose.yml, the Dockerfile, deploy/prometheus and deploy/grafana must agree with one
another and with `gridloop.config.Settings` on container names, listeners, ports and paths.
Nothing runs here: the files are parsed and cross-checked. Each checker returns a list of
problems (empty when the wiring is right), and the tests at the end break in-memory copies of
the configuration on purpose to show that every check can fail.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml
from pydantic import AliasChoices

from gridloop.config import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"
PYPROJECT = ROOT / "pyproject.toml"

SERVICES = ("intake", "dispatch", "notify", "sla", "projections")
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


def _services(compose: Compose) -> dict[str, dict[str, Any]]:
    return {name: _map(spec) for name, spec in _map(compose.get("services")).items()}


def _env(service: Service) -> dict[str, str]:
    raw = service.get("environment")
    if isinstance(raw, list):
        pairs = (str(entry).partition("=") for entry in raw)
        return {key: value for key, _, value in pairs}
    return {key: "" if value is None else str(value) for key, value in _map(raw).items()}


def _command(service: Service) -> list[str]:
    raw = service.get("command")
    if isinstance(raw, str):
        return shlex.split(raw)
    return [str(part) for part in _list(raw)]


def _option(args: Iterable[str], name: str) -> str | None:
    """The value of `--name=value` or `--name value` in an argument list."""
    args = list(args)
    for i, arg in enumerate(args):
        if arg.startswith(f"{name}="):
            return arg.partition("=")[2]
        if arg == name and i + 1 < len(args):
            return args[i + 1]
    return None


def _depends_on(service: Service) -> dict[str, str]:
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


def _healthcheck_test(service: Service) -> list[str]:
    check = _map(service.get("healthcheck"))
    if check.get("disable"):
        return []
    test = check.get("test")
    if isinstance(test, str):
        return ["CMD-SHELL", test]
    parts = [str(part) for part in _list(test)]
    return [] if parts[:1] == ["NONE"] else parts


def _network_names(name: str, service: Service) -> set[str]:
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


def _by_image(compose: Compose, repositories: frozenset[str]) -> list[str]:
    return [
        name
        for name, spec in _services(compose).items()
        if _repository(str(spec.get("image", ""))) in repositories
    ]


def _single(compose: Compose, repositories: frozenset[str], what: str) -> tuple[str, list[str]]:
    found = _by_image(compose, repositories)
    if len(found) == 1:
        return found[0], []
    return "", [f"expected one {what} container (image {sorted(repositories)}), found {found}"]


def _setting_env_names() -> dict[str, str]:
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
    return next(env for env, f in _setting_env_names().items() if f == field)


def service_port(service_name: str, env: Mapping[str, str]) -> int:
    """The port a service listens on, given its container environment (else the default)."""
    variable = port_variable(service_name)
    if variable in env:
        return int(env[variable])
    default = Settings.model_fields[f"{service_name}_port"].default
    assert isinstance(default, int)
    return default


def _containers_running(compose: Compose, service_name: str) -> list[str]:
    return [
        name for name, spec in _services(compose).items() if _command(spec) == ["run", service_name]
    ]


# --- checkers ------------------------------------------------------------------------------


def kafka_internal_endpoints(compose: Compose) -> tuple[set[str], list[str]]:
    """The `host:port`s containers on the compose network can bootstrap from, and problems
    of the broker's own configuration."""
    name, problems = _single(compose, KAFKA_IMAGES, "Kafka")
    if not name:
        return set(), problems
    kafka = _services(compose)[name]
    env = _env(kafka)
    where = f"{name} (Kafka)"

    def listeners(variable: str) -> dict[str, tuple[str, int]]:
        parsed = {}
        for entry in filter(None, env.get(variable, "").split(",")):
            match = re.fullmatch(r"\s*([A-Za-z0-9_]+)://(.*):(\d+)\s*", entry)
            if match is None:
                problems.append(f"{where}: cannot parse {variable} entry {entry!r}")
                continue
            parsed[match[1]] = (match[2], int(match[3]))
        return parsed

    bound = listeners("KAFKA_LISTENERS")
    advertised = listeners("KAFKA_ADVERTISED_LISTENERS")
    controllers = set(filter(None, env.get("KAFKA_CONTROLLER_LISTENER_NAMES", "").split(",")))
    names = _network_names(name, kafka)

    if "broker" not in env.get("KAFKA_PROCESS_ROLES", "").split(","):
        problems.append(f"{where}: KAFKA_PROCESS_ROLES must include broker (KRaft mode)")
    if not controllers or not controllers <= bound.keys():
        problems.append(f"{where}: controller listeners {controllers} are not all bound")
    for voter in filter(None, env.get("KAFKA_CONTROLLER_QUORUM_VOTERS", "").split(",")):
        host, _, port = voter.partition("@")[2].rpartition(":")
        controller_ports = {bound[c][1] for c in controllers if c in bound}
        if host not in names or not port.isdigit() or int(port) not in controller_ports:
            problems.append(f"{where}: quorum voter {voter!r} is not this container's controller")
    if env.get("KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true").lower() != "false":
        problems.append(f"{where}: KAFKA_AUTO_CREATE_TOPICS_ENABLE must be false")
    brokers = len(_by_image(compose, KAFKA_IMAGES))
    for variable, default in KAFKA_INTERNAL_REPLICATION.items():
        replicas = env.get(variable, str(default))
        if not replicas.isdigit() or int(replicas) > brokers:
            problems.append(f"{where}: {variable} exceeds the {brokers} broker(s)")
    if not _healthcheck_test(kafka):
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
    return endpoints, problems


def mongodb_endpoints(compose: Compose) -> tuple[set[str], list[str]]:
    name, problems = _single(compose, MONGODB_IMAGES, "MongoDB")
    if not name:
        return set(), problems
    mongodb = _services(compose)[name]
    port = int(_option(_command(mongodb), "--port") or MONGODB_DEFAULT_PORT)
    if not _healthcheck_test(mongodb):
        problems.append(f"{name} (MongoDB): has no healthcheck, so service_healthy cannot be met")
    return {f"{host}:{port}" for host in _network_names(name, mongodb)}, problems


def _mongodb_hosts(uri: str) -> list[str] | None:
    parts = urlsplit(uri)
    if parts.scheme != "mongodb":
        return None  # mongodb+srv needs DNS SRV records, which compose does not serve
    hosts = parts.netloc.rpartition("@")[2].split(",")
    return [h if ":" in h else f"{h}:{MONGODB_DEFAULT_PORT}" for h in hosts if h]


def check_compose(compose: Compose, root: Path) -> list[str]:
    """Every gridloop service runs in its own container, wired to Kafka and MongoDB."""
    services = _services(compose)
    kafka_endpoints, problems = kafka_internal_endpoints(compose)
    mongo_endpoints, mongo_problems = mongodb_endpoints(compose)
    problems += mongo_problems
    dependencies = set(_by_image(compose, KAFKA_IMAGES) + _by_image(compose, MONGODB_IMAGES))
    known_settings = _setting_env_names()

    for service_name in SERVICES:
        containers = _containers_running(compose, service_name)
        if len(containers) != 1:
            problems.append(
                f"{service_name}: expected one container running `gridloop run {service_name}`,"
                f" found {containers}"
            )
            continue
        name = containers[0]
        spec = services[name]
        env = _env(spec)
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
        mongo_hosts = _mongodb_hosts(env.get("MONGODB_URI", ""))
        if not mongo_hosts or not set(mongo_hosts) <= mongo_endpoints:
            problems.append(
                f"{where}: MONGODB_URI={env.get('MONGODB_URI')!r} does not name the MongoDB"
                f" container ({sorted(mongo_endpoints)})"
            )

        conditions = _depends_on(spec)
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
        test = " ".join(_healthcheck_test(spec))
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
    names = _by_image(compose, PROMETHEUS_IMAGES)
    if len(names) != 1:
        return None
    spec = _services(compose)[names[0]]
    config = _option(_command(spec), "--config.file") or PROMETHEUS_DEFAULT_CONFIG
    return _host_path(spec, config, root)


def _listen_port(spec: Service) -> int:
    address = _option(_command(spec), "--web.listen-address") or f":{PROMETHEUS_DEFAULT_PORT}"
    return int(address.rpartition(":")[2])


def check_prometheus(compose: Compose, scrape: Mapping[str, Any]) -> list[str]:
    """Prometheus scrapes /metrics of every service where that service listens."""
    problems = []
    services = _services(compose)
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
        containers = _containers_running(compose, service_name)
        if len(containers) != 1:
            problems.append(f"prometheus: {job_name} has no single container to scrape")
            continue
        name = containers[0]
        port = service_port(service_name, _env(services[name]))
        names = _network_names(name, services[name])
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
    names = _by_image(compose, GRAFANA_IMAGES)
    if len(names) != 1:
        return None
    spec = _services(compose)[names[0]]
    inside = _env(spec).get("GF_PATHS_PROVISIONING", GRAFANA_DEFAULT_PROVISIONING)
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
    services = _services(compose)
    prometheus, found = _single(compose, PROMETHEUS_IMAGES, "Prometheus")
    grafana, grafana_found = _single(compose, GRAFANA_IMAGES, "Grafana")
    problems += found + grafana_found
    if not (prometheus and grafana):
        return problems

    expected = {
        f"{host}:{_listen_port(services[prometheus])}"
        for host in _network_names(prometheus, services[prometheus])
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
        for name in _containers_running(compose, service_name):
            image = str(_services(compose)[name].get("image", ""))
            if image.rsplit(":", 1)[-1] != version:
                problems.append(f"{name}: image {image!r} is not tagged {version}")
    return problems


# --- the real files ---------------------------------------------------------------------------


def _load_yaml(path: Path) -> Any:
    with path.open(encoding="utf-8") as stream:
        return yaml.safe_load(stream)


def _load_yaml_dir(directory: Path, key: str) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = []
    for path in sorted([*directory.glob("*.yml"), *directory.glob("*.yaml")]):
        entries += [_map(entry) for entry in _list(_map(_load_yaml(path)).get(key))]
    return entries


def _unshared(data: Any) -> dict[str, Any]:
    """A deep copy without YAML's shared anchors, so one service can be broken alone."""
    return _map(json.loads(json.dumps(data)))


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return _unshared(_load_yaml(COMPOSE_FILE))


@pytest.fixture(scope="module")
def pyproject() -> dict[str, Any]:
    with PYPROJECT.open("rb") as stream:
        return tomllib.load(stream)


@pytest.fixture(scope="module")
def scrape(compose: dict[str, Any]) -> dict[str, Any]:
    path = prometheus_config_file(compose, ROOT)
    assert path is not None and path.is_file(), "Prometheus must mount its config from the repo"
    return _unshared(_load_yaml(path))


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
    datasources = _load_yaml_dir(provisioning / "datasources", "datasources")
    providers = _load_yaml_dir(provisioning / "dashboards", "providers")
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


def _service(compose: dict[str, Any], name: str) -> dict[str, Any]:
    spec: dict[str, Any] = compose["services"][name]
    return spec


def _set_env(name: str, variable: str, value: str | None) -> Callable[[dict[str, Any]], None]:
    def mutate(compose: dict[str, Any]) -> None:
        env = _env(_service(compose, name))
        if value is None:
            env.pop(variable, None)
        else:
            env[variable] = value
        _service(compose, name)["environment"] = env

    return mutate


def _set(name: str, key: str, value: object) -> Callable[[dict[str, Any]], None]:
    def mutate(compose: dict[str, Any]) -> None:
        if value is None:
            _service(compose, name).pop(key, None)
        else:
            _service(compose, name)[key] = value

    return mutate


COMPOSE_BREAKAGES: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "bootstrap on the controller listener": (
        _set_env("dispatch", "KAFKA_BOOTSTRAP_SERVERS", "kafka:9093"),
        "dispatch (gridloop run dispatch): KAFKA_BOOTSTRAP_SERVERS",
    ),
    "bootstrap on the host listener": (
        _set_env("notify", "KAFKA_BOOTSTRAP_SERVERS", "localhost:29092"),
        "notify (gridloop run notify): KAFKA_BOOTSTRAP_SERVERS",
    ),
    "broker advertises an unresolvable host": (
        _set_env("kafka", "KAFKA_ADVERTISED_LISTENERS", "PLAINTEXT://localhost:9092"),
        "no advertised listener",
    ),
    "auto-create left on": (
        _set_env("kafka", "KAFKA_AUTO_CREATE_TOPICS_ENABLE", "true"),
        "KAFKA_AUTO_CREATE_TOPICS_ENABLE must be false",
    ),
    "offsets topic replicated beyond the brokers": (
        _set_env("kafka", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", None),
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR exceeds",
    ),
    "quorum voter on the wrong port": (
        _set_env("kafka", "KAFKA_CONTROLLER_QUORUM_VOTERS", "1@kafka:9092"),
        "quorum voter",
    ),
    "mongodb misspelt": (
        _set_env("sla", "MONGODB_URI", "mongodb://mongo:27017"),
        "sla (gridloop run sla): MONGODB_URI",
    ),
    "bound to loopback": (
        _set_env("projections", "GRIDLOOP_HOST", "127.0.0.1"),
        "GRIDLOOP_HOST must be 0.0.0.0",
    ),
    "misspelt setting": (
        _set_env("intake", "GRIDLOOP_INTAKE_PROT", "8000"),
        "GRIDLOOP_INTAKE_PROT is not a setting",
    ),
    "port moved, publication not": (
        _set_env("intake", port_variable("intake"), "8080"),
        "publishes container port 8000, not 8080",
    ),
    "dispatch not published": (_set("dispatch", "ports", None), "must be published"),
    "healthcheck reads an unset port": (
        _set_env("sla", port_variable("sla"), None),
        "healthcheck reads GRIDLOOP_SLA_PORT, which is not set",
    ),
    "depends_on in short form": (
        _set("sla", "depends_on", ["kafka", "mongodb"]),
        "must depend on kafka with condition service_healthy",
    ),
    "broker without healthcheck": (
        _set("kafka", "healthcheck", None),
        "has no healthcheck",
    ),
    "service healthcheck on the wrong path": (
        _set("notify", "healthcheck", {"test": ["CMD", "python", "-c", "print(':8002/health')"]}),
        "healthcheck must GET /healthz",
    ),
    "service renamed": (_set("projections", "command", ["run", "projection"]), "projections:"),
    "floating tag": (_set("mongodb", "image", "mongo:latest"), "floating tag latest"),
    "untagged": (_set("grafana", "image", "grafana/grafana"), "is untagged"),
    "missing mount": (
        _set("prometheus", "volumes", ["./deploy/prometheus/nope.yml:/etc/prometheus/x.yml"]),
        "mounted path ./deploy/prometheus/nope.yml does not exist",
    ),
}


@pytest.mark.parametrize("breakage", COMPOSE_BREAKAGES)
def test_check_compose_reports_broken_wiring(compose: dict[str, Any], breakage: str) -> None:
    broken = _unshared(compose)
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
    broken = _unshared(scrape)
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
    broken = _unshared(compose)
    _set_env("intake", port_variable("intake"), "8100")(broken)
    assert any("gridloop-intake targets" in p for p in check_prometheus(broken, scrape))


def test_check_grafana_reports_wrong_wiring(compose: dict[str, Any], provisioning: Path) -> None:
    datasources = _load_yaml_dir(provisioning / "datasources", "datasources")
    providers = _load_yaml_dir(provisioning / "dashboards", "providers")
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
