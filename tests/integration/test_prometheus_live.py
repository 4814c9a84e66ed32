"""A real Prometheus (Debian's `prometheus` package) scrapes the running system, and every
PromQL expression of the Grafana dashboards and the alert rules is evaluated by it.

The services run as `gridloop up` runs them, on the session's broker and database, with a
pack whose illegal-parking class (event 0505) climbs its whole ladder within seconds and two
departments of this test alone: PROM-OK (webhooks to the department desk) and PROM-FAILING
(webhooks to nothing). Events are published straight to Kafka: overdue cases (warnings,
breaches, escalations up to the city), cases handled and closed on time, a case for
PROM-FAILING (webhook failures) and a malformed record (dead letters). A scrape target
nobody answers stands for a silent service.

Every expression must evaluate without error; all but the few listed in `NO_DATA` (each with
the reason it legitimately has none in a test) must return data. Nothing here measures speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiokafka import AIOKafkaConsumer

from gridloop import embedded
from gridloop.config import DEMO_CITY_PACK
from gridloop.dashboards import expressions
from gridloop.embedded import free_port, free_ports
from gridloop.kafka import EventProducer, ensure_topics
from schemas.envelope import Envelope
from schemas.topics import DISPATCHES, SLA
from services.notify.main import GROUP as NOTIFY_GROUP
from services.sla.app import LAG_SECONDS
from system.up import PORT_ENV, System
from tests.conftest import Servers
from tests.helpers import eventually
from tests.integration.test_sla_engine import FAST_RULE, GRID
from tests.samples import sample

ROOT = Path(__file__).resolve().parents[2]
RULES = sorted((ROOT / "deploy" / "prometheus" / "rules").glob("*.yml"))
PROMETHEUS = shutil.which("prometheus")
pytestmark = pytest.mark.skipif(PROMETHEUS is None, reason="prometheus is not installed")
OK, FAILING = "PROM-OK", "PROM-FAILING"  # webhooks to the desk; to nothing
SCRAPED = ("intake", "dispatch", "notify", "sla", "projections", "evaluation")

# Expressions that legitimately return nothing while a test runs; they must still evaluate.
NO_DATA = {
    "sum by (group) (rate(gridloop_handler_retries_total[5m]))": (
        "a retry needs a transient broker or database failure (tests/faults covers them)"
    ),
    "max by (group, topic) (gridloop_consumer_lag) > 1000": (
        "an alert: no consumer falls 1000 records behind a handful of test events"
    ),
    "sum(increase(gridloop_sla_assumed_calendar_total[1d])) > 0": (
        "an alert: only a deadline reached in a year without a calendar counts, when it falls due"
    ),
    "max(gridloop_evaluation_pending_cases) > 5000": (
        "an alert: the scores of a handful of test cases are recomputed at once"
    ),
    'sum by (job) (rate(gridloop_http_requests_total{status="5xx"}[5m])) / sum by (job)'
    " (rate(gridloop_http_requests_total[5m])) > 0.05": (
        "an alert: no service answers a server error while the test runs"
    ),
}


def rule_expressions() -> list[str]:
    found = []
    for path in RULES:
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]:
            found += [" ".join(str(rule["expr"]).split()) for rule in group["rules"]]
    return found


def write_pack(target: Path, desk_port: int, nowhere: int) -> Path:
    shutil.copytree(DEMO_CITY_PACK, target)
    city: dict[str, Any] = yaml.safe_load((target / "city.yaml").read_text(encoding="utf-8"))
    for dept in city["departments"]:
        dept["webhook"]["url"] = f"http://127.0.0.1:{desk_port}/hooks/{dept['code']}"
    # Departments of this test alone (the session's broker holds other tests' cases too).
    template = city["departments"][0]
    for code, port in ((OK, desk_port), (FAILING, nowhere)):
        hook = {**template["webhook"], "url": f"http://127.0.0.1:{port}/hooks/{code}"}
        city["departments"].append({**template, "code": code, "name": code, "webhook": hook})
    (target / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True), "utf-8")
    sla: dict[str, Any] = yaml.safe_load((target / "sla.yaml").read_text(encoding="utf-8"))
    sla["rules"].append(FAST_RULE)
    (target / "sla.yaml").write_text(yaml.safe_dump(sla, allow_unicode=True), "utf-8")
    return target


def query(url: str, expr: str) -> dict[str, Any]:
    q = urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=10) as answer:
            body: dict[str, Any] = json.load(answer)
    except urllib.error.HTTPError as exc:  # a bad query answers 400 with the error
        body = json.load(exc)
    return body


def diagnose(system: System, prometheus: str) -> str:
    """What the targets say, and the end of the SLA service's log, for a failure message."""
    targets = query(prometheus, "up")["data"]["result"]
    ups = {t["metric"]["job"]: t["value"][1] for t in targets}
    log = system.logs / "sla.log"
    tail = log.read_text(errors="replace")[-2000:] if log.exists() else ""
    return f"up: {ups}\nsla.log: {tail}"


async def skip_backlog(kafka: str, group: str, *topics: str) -> None:
    """Move `group` to the end of `topics`, as its only member for a moment: the session's
    broker holds other tests' cases, which this system's fresh database has never seen
    (notify would wait for their projection forever)."""
    consumer = AIOKafkaConsumer(
        *topics,
        bootstrap_servers=kafka,
        group_id=group,
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + 40
        while not consumer.assignment():  # an earlier system's member may still hold it
            assert time.monotonic() < deadline, f"never joined {group}"
            await consumer.getmany(timeout_ms=500, max_records=1)
        await consumer.seek_to_end()
        await consumer.commit({tp: await consumer.position(tp) for tp in consumer.assignment()})
    finally:
        await consumer.stop()


@pytest.fixture(scope="module")
def kafka(servers: Servers, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A broker of this module's own when embedded: the session's holds other tests' cases,
    whose SLA events keep coming and which this system's fresh database has never seen."""
    if os.environ.get("KAFKA_BOOTSTRAP_SERVERS"):
        asyncio.run(skip_backlog(servers.kafka, NOTIFY_GROUP, DISPATCHES.name, SLA.name))
        yield servers.kafka
        return
    broker = embedded.tansu(tmp_path_factory.mktemp("prometheus-broker"))
    broker.start()
    try:
        bootstrap = embedded.kafka_bootstrap(broker)
        asyncio.run(ensure_topics(bootstrap))
        yield bootstrap
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def system(
    servers: Servers, kafka: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    root = tmp_path_factory.mktemp("prometheus-live")
    ports = free_ports(PORT_ENV.values())
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "MONGODB_URI": servers.mongodb,
        "GRIDLOOP_MONGODB_DATABASE": f"prom_{uuid.uuid4().hex[:8]}",
        "GRIDLOOP_CITY_PACK": str(
            write_pack(root / "citypack", int(ports["GRIDLOOP_DESK_PORT"]), free_port())
        ),
        "GRIDLOOP_DATA_DIR": str(root / "data"),
        "GRIDLOOP_SLA_TICK_SECONDS": "0.2",
        "GRIDLOOP_KAFKA_SESSION_TIMEOUT_MS": "6000",
        # Attempts scrapes apart, so that the failure rate to PROM-FAILING is a rate.
        "GRIDLOOP_WEBHOOK_RETRY_SCHEDULE": "0,1.5,1.5,1.5",
        "GRIDLOOP_WEBHOOK_POLL_SECONDS": "0.1",
        **ports,
    }
    running = System(env, root / "logs", (*SCRAPED, "desk"))
    try:
        running.start()
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="module")
def prometheus(system: System, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    assert PROMETHEUS is not None
    root = tmp_path_factory.mktemp("prometheus")
    port = free_port()
    jobs = [
        {"job_name": f"gridloop-{name}", "static_configs": [{"targets": [f"127.0.0.1:{p}"]}]}
        for name, p in [(n, system.port(n)) for n in SCRAPED]
    ]
    # A service that answers no scrape: what GridloopServiceDown is for.
    jobs.append(
        {
            "job_name": "gridloop-silent",
            "static_configs": [{"targets": [f"127.0.0.1:{free_port()}"]}],
        }
    )
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in RULES],
        "scrape_configs": jobs,
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config), "utf-8")
    log = (root / "prometheus.log").open("wb")
    proc = subprocess.Popen(
        [
            PROMETHEUS,
            f"--config.file={root / 'prometheus.yml'}",
            f"--storage.tsdb.path={root / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"{url}/-/ready", timeout=1) as answer:
                    if answer.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None, (root / "prometheus.log").read_text()
            assert time.monotonic() < deadline, "prometheus never got ready"
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)
        log.close()


def reported(case_id: str) -> list[Envelope]:
    fields = {"kind": "event", "class_code": "0505", "grid_code": GRID, "urgency": "normal"}
    data = sample("gridloop.case.reported", case_id=case_id, version=1, **fields)
    return [Envelope(data, "/tests", datetime.now(UTC))]


def dispatched(case_id: str, department: str, handle_in: timedelta) -> list[Envelope]:
    now = datetime.now(UTC)
    data = sample(
        "gridloop.case.dispatched",
        case_id=case_id,
        version=3,
        department=department,
        deadline=now + handle_in,
        assumed_years=[],
    )
    return [Envelope(data, "/tests", now)]


def step(case_id: str, ce_type: str, version: int, **fields: Any) -> list[Envelope]:
    return [
        Envelope(
            sample(ce_type, case_id=case_id, version=version, **fields), "/tests", datetime.now(UTC)
        )
    ]


async def test_every_dashboard_and_rule_expression_evaluates_on_live_data(
    kafka: str, system: System, prometheus: str
) -> None:
    on_time, later, failing = (f"C-PROM-{uuid.uuid4().hex[:8]}" for _ in range(3))
    # More than one breach a minute for PROM-OK over the alert's 5 minutes (rate divides by them).
    overdue = [f"C-PROM-{uuid.uuid4().hex[:8]}" for _ in range(10)]
    producer = EventProducer(kafka)
    await producer.start()
    try:
        plan = [
            *((c, OK, timedelta(seconds=1)) for c in overdue),
            (on_time, OK, timedelta(hours=1)),
            (failing, FAILING, timedelta(hours=1)),
            (later, OK, timedelta(hours=1)),
        ]

        async def seen(expr: str) -> bool:
            return bool(query(prometheus, expr).get("data", {}).get("result"))

        async def settled() -> None:
            """Once the engine has read everything published so far (its lag is measured
            every few seconds: wait for a measurement taken after the publishing)."""
            await asyncio.sleep(LAG_SECONDS + 1.5)
            await eventually(
                lambda: seen('max(gridloop_consumer_lag{group="gridloop-sla"}) == 0'), within=40
            )
            await asyncio.sleep(1)

        # Topics are read in no set order: each step once the engine has applied the last
        # (a `dispatched` read before its `reported` would not know the class and its clock).
        for case_id, _, _ in plan:
            await producer.publish(reported(case_id))
        await settled()
        for case_id, department, handle_in in plan:
            await producer.publish(dispatched(case_id, department, handle_in))
        await eventually(
            lambda: seen(
                f'sum(gridloop_sla_open_clocks{{department="{OK}",stage="handle"}}) >= 12'
            ),
            within=30,
        )
        # A poison record once the consumers' counters have been scraped at 0.
        await producer.send_raw("reports", b"junk-prom", b"{oops", [("ce_type", b"x")])
        # One step at a time: a `closed` read before its `handled` would end the clock unhandled.
        await producer.publish(step(on_time, "gridloop.case.handled", 4, department=OK))
        used = f'gridloop_sla_limit_used_ratio_count{{department="{OK}",stage="handle"}}'
        try:
            await eventually(lambda: seen(used), within=30)
        except AssertionError as exc:
            raise AssertionError(diagnose(system, prometheus)) from exc
        # Histograms need two observations scrapes apart to have a rate: a second case later.
        await producer.publish(step(later, "gridloop.case.handled", 4, department=OK))
        await eventually(lambda: seen(f"{used} >= 2"), within=30)
        await producer.publish(step(on_time, "gridloop.case.closed", 5))
        await eventually(lambda: seen("gridloop_case_close_seconds_count"), within=30)
        await producer.publish(step(later, "gridloop.case.closed", 5))
        await eventually(
            lambda: seen(f'gridloop_sla_escalations_total{{department="{OK}",tier="city"}} > 0'),
            within=45,
            what="an escalation to the city",
        )
        await eventually(
            lambda: seen(
                f'increase(gridloop_webhook_deliveries_total{{department="{FAILING}"}}[1m]) > 0'
            ),
            within=30,
            what="failing webhook attempts",
        )
    finally:
        await producer.stop()

    wanted = [*expressions(), *rule_expressions()]
    assert set(NO_DATA) <= set(wanted), "NO_DATA names an expression nobody uses any more"

    async def all_there() -> bool:
        return all(query(prometheus, e)["data"]["result"] for e in wanted if e not in NO_DATA)

    with contextlib.suppress(AssertionError):  # the assertions below say which
        await eventually(all_there, within=20, what="data for every expression")
    answers = {e: query(prometheus, e) for e in wanted}
    failed = {e: a.get("error") for e, a in answers.items() if a.get("status") != "success"}
    assert failed == {}
    empty = [e for e, a in answers.items() if not a["data"]["result"] and e not in NO_DATA]
    assert empty == [], "\n".join(empty)
