"""The cluster deployment (docker-compose.cluster.yml) tolerates the loss of any one node.

Three KRaft brokers keep three copies of every partition and need two for an acks=all write;
three MongoDB members form a replica set written with majority acknowledgement. Nothing runs
here (no Docker engine): the file is parsed and checked with the single-broker checkers
(`deployment_checks`) and the cluster's own below, and the topic specs the services would
send are computed from the settings the file gives them. Each checker is shown to fail on a
deliberately broken in-memory copy.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs, urlsplit

import faust
import pytest
from pydantic import ValidationError

from gridloop.config import Settings
from gridloop.kafka.topics import MIN_INSYNC, topic_specs
from schemas.topics import LIFECYCLE_TOPICS, TOPICS, Topic, dead_letter_topic
from services.sla.app import create_app
from tests.unit.deployment_checks import (
    CLUSTER_FILE,
    KAFKA_IMAGES,
    MONGODB_IMAGES,
    ROOT,
    SERVICES,
    Compose,
    by_image,
    check_compose,
    check_grafana,
    check_prometheus,
    command_of,
    containers_running,
    depends_on_of,
    env_of,
    grafana_provisioning_dir,
    healthcheck_test,
    kafka_brokers,
    load_compose,
    load_yaml,
    load_yaml_dir,
    mongodb_hosts,
    mongodb_members,
    option,
    prometheus_config_file,
    service_spec,
    services_of,
    set_env,
    set_key,
    setting_env_names,
    unshared,
)

REPLICAS = 3  # copies of every partition: one broker may fail, and one more be restarting
MIN_IN_SYNC = 2  # copies an acks=all write needs: a lone survivor never acknowledges alone
# Broker settings (environment name -> (Kafka's default, what the cluster needs)).
KAFKA_DURABILITY = {
    "KAFKA_DEFAULT_REPLICATION_FACTOR": ("1", str(REPLICAS)),
    "KAFKA_MIN_INSYNC_REPLICAS": ("1", str(MIN_IN_SYNC)),
    "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR": ("3", str(REPLICAS)),
    "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR": ("3", str(REPLICAS)),
    "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR": ("2", str(MIN_IN_SYNC)),
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_REPLICATION_FACTOR": ("3", str(REPLICAS)),
    "KAFKA_SHARE_COORDINATOR_STATE_TOPIC_MIN_ISR": ("2", str(MIN_IN_SYNC)),
    "KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE": ("false", "false"),
}
PRODUCTION_CODE = ("schemas", "gridloop", "services", "system")


# --- checkers --------------------------------------------------------------------------------


def _data_volumes(compose: Compose, nodes: Iterable[str], target: str) -> list[str]:
    """Two nodes on one volume would share (and corrupt) one log or one database."""
    names = list(nodes)
    sources = [
        entry.split(":")[0]
        for name in names
        for entry in map(str, service_spec(dict(compose), name).get("volumes", []))
        if entry.split(":")[1:2] == [target]
    ]
    if len(sources) != len(set(sources)) or len(sources) < len(names):
        return [f"each node needs a data volume of its own at {target}, found {sources}"]
    return []


def check_kafka_cluster(compose: Compose) -> list[str]:
    """At least three brokers, every one a voter, each replicating as KAFKA_DURABILITY says."""
    brokers, problems = kafka_brokers(compose)
    if len(brokers) < REPLICAS:
        problems.append(f"Kafka: {len(brokers)} broker(s); replication factor {REPLICAS} needs")
    for broker in brokers:
        env = env_of(services_of(compose)[broker.name])
        for variable, (default, needed) in KAFKA_DURABILITY.items():
            if env.get(variable, default).lower() != needed:
                problems.append(f"{broker.name} (Kafka): {variable} must be {needed}")
        if not broker.controller:
            problems.append(f"{broker.name} (Kafka): must be a controller too (a quorum voter)")
    voters = {v for b in brokers for v in b.voters}
    if len(voters) < REPLICAS or len(voters) % 2 == 0:
        problems.append(f"Kafka: {len(voters)} quorum voters; an odd number, at least 3")
    names = [b.name for b in brokers]
    return problems + _data_volumes(compose, names, "/var/lib/kafka/data")


def _initiated_hosts(compose: Compose, names: Iterable[str]) -> tuple[str, list[str], list[str]]:
    """(set name, member hosts, initiating containers) from the rs.initiate healthchecks."""
    found: list[str] = []
    set_name, hosts = "", []
    for name in names:
        script = " ".join(healthcheck_test(services_of(compose)[name]))
        if "rs.initiate" in script:
            found.append(name)
            match = re.search(r"_id:\s*'([^']+)'", script)
            set_name = match[1] if match else ""
            hosts = re.findall(r"host:\s*'([^']+)'", script)
    return set_name, hosts, found


def check_mongodb_replica_set(compose: Compose) -> list[str]:
    """Three or more members of one set, initiated once with exactly those members, by a
    member that waits for the others to start."""
    members, problems = mongodb_members(compose)
    specs = services_of(compose)
    sets = {option(command_of(specs[name]), "--replSet") for name in members}
    if len(members) < 3 or len(members) % 2 == 0:
        problems.append(f"MongoDB: {len(members)} members; an odd number, at least 3")
    if len(sets) != 1 or None in sets:
        problems.append(f"MongoDB: every member needs the same --replSet, found {sets}")
    set_name, hosts, initiators = _initiated_hosts(compose, members)
    if len(initiators) != 1:
        problems.append(f"MongoDB: expected one member to run rs.initiate, found {initiators}")
        return problems
    if sets != {set_name}:
        problems.append(f"MongoDB: rs.initiate names set {set_name!r}, the members run {sets}")
    for name, endpoints in members.items():
        if sum(host in endpoints for host in hosts) != 1:
            problems.append(f"MongoDB: rs.initiate must list {name} once, lists {hosts}")
    others = set(members) - {initiators[0]}
    if not others <= depends_on_of(specs[initiators[0]]).keys():
        problems.append(f"{initiators[0]} (MongoDB): rs.initiate needs {sorted(others)} started")
    return problems + _data_volumes(compose, members, "/data/db")


def cluster_settings(env: dict[str, str]) -> Settings:
    """The settings a service container starts with (pydantic validates them)."""
    fields = setting_env_names()
    return Settings.model_validate({fields[k]: v for k, v in env.items() if k in fields})


def check_services_use_the_cluster(compose: Compose) -> list[str]:
    """Every service bootstraps from every broker, connects to the whole replica set with
    majority writes, and creates its topics with the cluster's replication."""
    problems = []
    brokers, _ = kafka_brokers(compose)
    members, _ = mongodb_members(compose)
    for service_name in SERVICES:
        for name in containers_running(compose, service_name):
            env = env_of(services_of(compose)[name])
            where = f"{name} (gridloop run {service_name})"
            bootstrap = set(env.get("KAFKA_BOOTSTRAP_SERVERS", "").split(","))
            for broker in brokers:
                if not bootstrap & broker.endpoints:
                    problems.append(f"{where}: KAFKA_BOOTSTRAP_SERVERS lacks {broker.name}")
            uri = env.get("MONGODB_URI", "")
            hosts = set(mongodb_hosts(uri) or [])
            for member, endpoints in members.items():
                if not hosts & endpoints:
                    problems.append(f"{where}: MONGODB_URI lacks member {member}")
            query = parse_qs(urlsplit(uri).query)
            replica_sets = {
                option(command_of(services_of(compose)[m]), "--replSet") for m in members
            }
            if query.get("replicaSet", [None])[0] not in replica_sets - {None}:
                problems.append(f"{where}: MONGODB_URI must name replicaSet {replica_sets}")
            if query.get("w", ["majority"]) != ["majority"]:
                problems.append(f"{where}: MONGODB_URI must keep w=majority")
            try:
                settings = cluster_settings(env)
            except ValidationError as error:
                problems.append(f"{where}: the environment is not valid Settings: {error}")
                continue
            if (settings.kafka_replication_factor, settings.kafka_min_insync_replicas) != (
                REPLICAS,
                MIN_IN_SYNC,
            ):
                problems.append(
                    f"{where}: creates topics with replication {settings.kafka_replication_factor}"
                    f" and min.insync.replicas {settings.kafka_min_insync_replicas},"
                    f" not {REPLICAS} and {MIN_IN_SYNC}"
                )
    return problems


def check_topic_specs(settings: Settings, topics: Iterable[Topic], brokers: int) -> list[str]:
    """Every topic would be created with the cluster's replication and in-sync minimum."""
    problems = []
    try:
        specs = topic_specs(
            topics, settings.kafka_replication_factor, settings.kafka_min_insync_replicas
        )
    except ValueError as error:
        return [f"topics: {error}"]
    for spec in specs:
        insync = spec.topic_configs.get(MIN_INSYNC)
        if spec.replication_factor != REPLICAS or spec.replication_factor > brokers:
            problems.append(
                f"topic {spec.name}: replication factor {spec.replication_factor}, not {REPLICAS}"
                f" on {brokers} brokers"
            )
        if insync != str(MIN_IN_SYNC):
            problems.append(f"topic {spec.name}: {MIN_INSYNC} {insync}, not {MIN_IN_SYNC}")
    return problems


def check_sla_topics(app: faust.App, settings: Settings) -> list[str]:
    """The SLA worker (faust) creates its own changelog; it is replicated alike, and its
    producer waits for all in-sync replicas."""
    problems = []
    if app.conf.topic_replication_factor != settings.kafka_replication_factor:
        problems.append(f"sla: faust topic_replication_factor {app.conf.topic_replication_factor}")
    for name, table in app.tables.items():
        if table.changelog_topic.config.get(MIN_INSYNC) != str(settings.kafka_min_insync_replicas):
            problems.append(f"sla: table {name}'s changelog lacks {MIN_INSYNC}")
    if app.conf.producer_acks != -1:
        problems.append(f"sla: faust producer_acks {app.conf.producer_acks}, not all (-1)")
    return problems


def producer_ack_problems(path: str, source: str) -> list[str]:
    """Every aiokafka producer in `source` is built with acks="all" (or -1)."""
    problems = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        callee = node.func.attr if isinstance(node.func, ast.Attribute) else None
        callee = node.func.id if isinstance(node.func, ast.Name) else callee
        if callee != "AIOKafkaProducer":
            continue
        acks = next((k.value for k in node.keywords if k.arg == "acks"), None)
        value = acks.value if isinstance(acks, ast.Constant) else None
        if value not in ("all", -1):
            problems.append(f"{path}:{node.lineno}: AIOKafkaProducer without acks='all'")
    return problems


# --- the real file ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster() -> dict[str, Any]:
    return load_compose(CLUSTER_FILE)


@pytest.fixture(scope="module")
def settings(cluster: dict[str, Any]) -> Settings:
    (name,) = containers_running(cluster, "intake")
    return cluster_settings(env_of(cluster["services"][name]))


def test_cluster_passes_the_single_broker_checks(cluster: dict[str, Any]) -> None:
    """Names, listeners, ports, health dependencies, mounts and image tags, as in
    test_deployment, now with three brokers and three members to depend on."""
    assert check_compose(cluster, ROOT) == []
    assert len(by_image(cluster, KAFKA_IMAGES)) == 3
    assert len(by_image(cluster, MONGODB_IMAGES)) == 3


def unchecked_containers(compose: Compose) -> list[str]:
    """Containers whose health compose cannot tell (`docker compose ps` shows no status)."""
    return [name for name, spec in services_of(compose).items() if not healthcheck_test(spec)]


def test_every_container_has_a_healthcheck(cluster: dict[str, Any]) -> None:
    assert unchecked_containers(cluster) == []
    broken = unshared(cluster)
    set_key("grafana", "healthcheck", None)(broken)
    set_key("mongodb-2", "healthcheck", {"test": ["NONE"]})(broken)
    assert unchecked_containers(broken) == ["mongodb-2", "grafana"]


def test_monitoring_is_provisioned_from_deploy(cluster: dict[str, Any]) -> None:
    config = prometheus_config_file(cluster, ROOT)
    provisioning = grafana_provisioning_dir(cluster, ROOT)
    assert config is not None and config.is_relative_to(ROOT / "deploy") and config.is_file()
    assert provisioning is not None and provisioning.is_relative_to(ROOT / "deploy")
    assert check_prometheus(cluster, unshared(load_yaml(config))) == []
    datasources = load_yaml_dir(provisioning / "datasources", "datasources")
    providers = load_yaml_dir(provisioning / "dashboards", "providers")
    assert check_grafana(cluster, datasources, providers, ROOT) == []


def test_kafka_is_a_three_node_quorum_replicating_three_ways(cluster: dict[str, Any]) -> None:
    assert check_kafka_cluster(cluster) == []


def test_mongodb_is_a_replica_set(cluster: dict[str, Any]) -> None:
    assert check_mongodb_replica_set(cluster) == []


def test_services_use_every_node(cluster: dict[str, Any]) -> None:
    assert check_services_use_the_cluster(cluster) == []


def test_every_registry_topic_and_dead_letter_topic_is_replicated(
    cluster: dict[str, Any], settings: Settings
) -> None:
    dead_letters = {dead_letter_topic(t.name) for t in LIFECYCLE_TOPICS}
    assert dead_letters <= TOPICS.keys()  # the registry holds every .dlq
    brokers = len(by_image(cluster, KAFKA_IMAGES))
    assert check_topic_specs(settings, TOPICS.values(), brokers) == []


def test_the_sla_worker_replicates_its_changelog(settings: Settings) -> None:
    assert check_sla_topics(create_app(settings), settings) == []


def test_producers_wait_for_all_in_sync_replicas() -> None:
    problems = []
    for package in PRODUCTION_CODE:
        for path in sorted((ROOT / package).rglob("*.py")):
            source = path.read_text(encoding="utf-8")
            problems += producer_ack_problems(str(path.relative_to(ROOT)), source)
    assert problems == []
    assert producer_ack_problems("p.py", "AIOKafkaProducer(acks='all')") == []


# --- the checks can fail ---------------------------------------------------------------------

Mutation = Callable[[dict[str, Any]], None]


def _every(names: Iterable[str], mutate: Callable[[str], Mutation]) -> Mutation:
    def apply(compose: dict[str, Any]) -> None:
        for name in names:
            mutate(name)(compose)

    return apply


BROKERS = ("kafka-1", "kafka-2", "kafka-3")
KAFKA_BREAKAGES: dict[str, tuple[Mutation, str]] = {
    "replication factor 1": (
        set_env("kafka-2", "KAFKA_DEFAULT_REPLICATION_FACTOR", "1"),
        "kafka-2 (Kafka): KAFKA_DEFAULT_REPLICATION_FACTOR must be 3",
    ),
    "min.insync.replicas left at Kafka's default 1": (
        set_env("kafka-1", "KAFKA_MIN_INSYNC_REPLICAS", None),
        "kafka-1 (Kafka): KAFKA_MIN_INSYNC_REPLICAS must be 2",
    ),
    "offsets replicated once": (
        set_env("kafka-3", "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "1"),
        "KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR must be 3",
    ),
    "transaction log min ISR 1": (
        set_env("kafka-3", "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR", "1"),
        "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR must be 2",
    ),
    "unclean leader election on": (
        set_env("kafka-1", "KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE", "true"),
        "KAFKA_UNCLEAN_LEADER_ELECTION_ENABLE must be false",
    ),
    "a broker removed": (
        lambda c: c["services"].pop("kafka-3"),
        "2 broker(s); replication factor 3 needs",
    ),
    "a broker left out of the quorum": (
        _every(BROKERS, lambda n: set_env(n, "KAFKA_CONTROLLER_QUORUM_VOTERS", "1@kafka-1:9093")),
        "kafka-2 (Kafka): has the controller role but is not a quorum voter",
    ),
    "a broker only a broker": (
        set_env("kafka-2", "KAFKA_PROCESS_ROLES", "broker"),
        "kafka-2 (Kafka): must be a controller too",
    ),
    "voter under another node's id": (
        _every(
            BROKERS,
            lambda n: set_env(
                n, "KAFKA_CONTROLLER_QUORUM_VOTERS", "1@kafka-1:9093,3@kafka-2:9093,2@kafka-3:9093"
            ),
        ),
        "quorum voter '3@kafka-2:9093' is no container's controller",
    ),
    "two node ids alike": (
        set_env("kafka-2", "KAFKA_NODE_ID", "1"),
        "KAFKA_NODE_ID ['1', '1', '3'] must differ",
    ),
    "two cluster ids": (
        set_env("kafka-3", "CLUSTER_ID", "AAAAAAAAAAAAAAAAAAAAAA"),
        "the brokers disagree on CLUSTER_ID",
    ),
    "two brokers on one volume": (
        set_key("kafka-2", "volumes", ["kafka-1-data:/var/lib/kafka/data"]),
        "each node needs a data volume of its own at /var/lib/kafka/data",
    ),
}


@pytest.mark.parametrize("breakage", KAFKA_BREAKAGES)
def test_check_kafka_cluster_reports(cluster: dict[str, Any], breakage: str) -> None:
    broken = unshared(cluster)
    mutate, expected = KAFKA_BREAKAGES[breakage]
    mutate(broken)
    problems = check_kafka_cluster(broken)
    assert any(expected in problem for problem in problems), problems


def _set_test(name: str, script: str) -> Mutation:
    def mutate(compose: dict[str, Any]) -> None:
        service_spec(compose, name)["healthcheck"]["test"][-1] = script

    return mutate


def _initiate(*hosts: str, set_name: str = "rs0") -> str:
    members = ", ".join(f"{{ _id: {i}, host: '{h}' }}" for i, h in enumerate(hosts))
    return f"rs.initiate({{ _id: '{set_name}', members: [{members}] }})"


MONGO_BREAKAGES: dict[str, tuple[Mutation, str]] = {
    "two members": (lambda c: c["services"].pop("mongodb-3"), "2 members; an odd number"),
    "a member outside the set": (
        set_key("mongodb-2", "command", ["mongod", "--bind_ip_all"]),
        "every member needs the same --replSet",
    ),
    "initiated with a member missing": (
        _set_test("mongodb-1", _initiate("mongodb-1:27017", "mongodb-2:27017")),
        "rs.initiate must list mongodb-3 once",
    ),
    "initiated under another set name": (
        _set_test(
            "mongodb-1",
            _initiate("mongodb-1:27017", "mongodb-2:27017", "mongodb-3:27017", set_name="rs1"),
        ),
        "rs.initiate names set 'rs1'",
    ),
    "never initiated": (
        _set_test("mongodb-1", "quit(rs.status().ok ? 0 : 1)"),
        "expected one member to run rs.initiate, found []",
    ),
    "initiated before the others start": (
        set_key("mongodb-1", "depends_on", None),
        "rs.initiate needs ['mongodb-2', 'mongodb-3'] started",
    ),
    "two members on one volume": (
        set_key("mongodb-3", "volumes", ["mongodb-2-data:/data/db"]),
        "each node needs a data volume of its own at /data/db",
    ),
}


@pytest.mark.parametrize("breakage", MONGO_BREAKAGES)
def test_check_mongodb_replica_set_reports(cluster: dict[str, Any], breakage: str) -> None:
    broken = unshared(cluster)
    mutate, expected = MONGO_BREAKAGES[breakage]
    mutate(broken)
    problems = check_mongodb_replica_set(broken)
    assert any(expected in problem for problem in problems), problems


SERVICE_BREAKAGES: dict[str, tuple[Mutation, str]] = {
    "bootstrap from one broker": (
        set_env("notify", "KAFKA_BOOTSTRAP_SERVERS", "kafka-1:9092"),
        "notify (gridloop run notify): KAFKA_BOOTSTRAP_SERVERS lacks kafka-2",
    ),
    "one mongodb host": (
        set_env("sla", "MONGODB_URI", "mongodb://mongodb-1:27017/?replicaSet=rs0"),
        "sla (gridloop run sla): MONGODB_URI lacks member mongodb-2",
    ),
    "no replicaSet": (
        set_env(
            "intake", "MONGODB_URI", "mongodb://mongodb-1:27017,mongodb-2:27017,mongodb-3:27017"
        ),
        "intake (gridloop run intake): MONGODB_URI must name replicaSet",
    ),
    "acknowledged by one member": (
        set_env(
            "dispatch",
            "MONGODB_URI",
            "mongodb://mongodb-1:27017,mongodb-2:27017,mongodb-3:27017/?replicaSet=rs0&w=1",
        ),
        "dispatch (gridloop run dispatch): MONGODB_URI must keep w=majority",
    ),
    "topics created with one replica": (
        set_env("projections", "KAFKA_REPLICATION_FACTOR", None),
        "creates topics with replication 1 and min.insync.replicas 2, not 3 and 2",
    ),
    "not a number": (
        set_env("intake", "KAFKA_MIN_INSYNC_REPLICAS", "two"),
        "intake (gridloop run intake): the environment is not valid Settings",
    ),
}


@pytest.mark.parametrize("breakage", SERVICE_BREAKAGES)
def test_check_services_use_the_cluster_reports(cluster: dict[str, Any], breakage: str) -> None:
    broken = unshared(cluster)
    mutate, expected = SERVICE_BREAKAGES[breakage]
    mutate(broken)
    problems = check_services_use_the_cluster(broken)
    assert any(expected in problem for problem in problems), problems


def test_check_topic_specs_reports(settings: Settings) -> None:
    single = settings.model_copy(
        update={"kafka_replication_factor": 1, "kafka_min_insync_replicas": 1}
    )
    lax = settings.model_copy(update={"kafka_min_insync_replicas": 1})
    impossible = settings.model_copy(update={"kafka_min_insync_replicas": 4})
    assert "topic reports: replication factor 1" in "\n".join(
        check_topic_specs(single, TOPICS.values(), 3)
    )
    assert "topic sla.dlq: min.insync.replicas 1, not 2" in check_topic_specs(
        lax, TOPICS.values(), 3
    )
    assert check_topic_specs(impossible, TOPICS.values(), 3) == [
        "topics: min.insync.replicas 4 must be between 1 and the replication factor 3"
    ]
    assert "on 2 brokers" in "\n".join(check_topic_specs(settings, TOPICS.values(), 2))


def test_check_sla_topics_reports(settings: Settings) -> None:
    single = Settings(kafka_replication_factor=1, kafka_min_insync_replicas=1)
    assert check_sla_topics(create_app(single), single) == []  # the embedded broker's shape
    assert check_sla_topics(create_app(single), settings) == [
        "sla: faust topic_replication_factor 1",
        "sla: table clocks's changelog lacks min.insync.replicas",
    ]
    lax = create_app(settings)
    lax.conf.producer_acks = 1
    assert check_sla_topics(lax, settings) == ["sla: faust producer_acks 1, not all (-1)"]


def test_producer_ack_problems_reports_a_lax_producer() -> None:
    source = "\n".join(
        [
            "import aiokafka",
            "a = aiokafka.AIOKafkaProducer(bootstrap_servers='k:9092')",
            "b = AIOKafkaProducer(acks=1)",
            "c = AIOKafkaProducer(acks='all')",
        ]
    )
    assert producer_ack_problems("svc.py", source) == [
        "svc.py:2: AIOKafkaProducer without acks='all'",
        "svc.py:3: AIOKafkaProducer without acks='all'",
    ]
