"""The wiring is declared once (gridloop/topology.py): docs/architecture.md's table says the
same, the topics created are the ones the services use, and a namespace reaches every topic
and group a system touches."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from gridloop.config import Settings
from gridloop.kafka import EventProducer, Pipeline
from gridloop.kafka.topics import topic_specs
from gridloop.topology import (
    SLA_ENGINE,
    WIRING,
    BadNamespace,
    Wiring,
    created_topics,
    named,
)
from schemas.envelope import Envelope
from schemas.events import EVENT_TYPES
from schemas.topics import LIFECYCLE_TOPICS, TOPICS, topic_for
from services.sla.app import create_app

ARCHITECTURE = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
SECTION = "## Topics and who writes them"
ROW = re.compile(r"^\| `([^`]+)` \|(.*)\|\s*$")
GROUP = re.compile(r"^(\w+)(?: \((.*)\))?$")


def table(text: str) -> dict[str, list[str]]:
    """The rows of the topics table (in its section): topic → its other cells."""
    section = text.split(SECTION, 1)[1].split("\n## ", 1)[0] if SECTION in text else ""
    rows = {}
    for line in section.splitlines():
        if found := ROW.match(line):
            rows[found.group(1)] = [c.strip() for c in found.group(2).split("|")]
    return rows


def services(cell: str) -> dict[str, str]:
    """`dispatch, sla (`gridloop-sla`)` → service → consumer group (the service's name
    unless a group is given in parentheses; other remarks in parentheses are not groups);
    `none` for a topic nobody reads yet."""
    found: dict[str, str] = {}
    if cell == "none":
        return found
    for part in cell.split(", "):
        match = GROUP.match(part)
        assert match, f"not a service: {part!r}"
        service, remark = match.groups()
        given = re.fullmatch(r"`([^`]+)`", remark or "")
        found[service] = given.group(1) if given else service
    return found


def differences(text: str, wiring: dict[str, Wiring]) -> list[str]:
    """How the docs table differs from the declaration (nothing when they agree)."""
    rows, problems = table(text), []
    consumers = [w for w in wiring.values() if w.consumes]
    logged = [t for t in TOPICS.values() if not t.name.endswith(".dlq")]
    expected = {t.name for t in logged} | {"<topic>.dlq"}
    expected |= {c for w in wiring.values() for c in w.changelogs()}
    if set(rows) != expected:
        problems.append(f"topics {sorted(rows)} != {sorted(expected)}")
    for topic in logged:
        events, writers, readers = rows.get(topic.name, ["", "", ""])[:3]
        homed = {t.split(".")[-1] for t in EVENT_TYPES if topic_for(t) == topic.name}
        if set(events.split(", ")) != homed:
            problems.append(f"{topic.name}: events {events!r}, the registry {sorted(homed)}")
        wrote = {w.service for w in wiring.values() if topic in w.produces}
        if set(services(writers)) != wrote:
            problems.append(f"{topic.name}: written by {writers!r}, declared {sorted(wrote)}")
        read = {w.service: w.consumer_group for w in consumers if topic in w.consumes}
        if services(readers) != read:
            problems.append(f"{topic.name}: read by {readers!r}, declared {read}")
    for w in wiring.values():
        for changelog in w.changelogs():
            writers = rows.get(changelog, ["", "", ""])[1]
            if set(services(writers or "?")) != {w.service}:
                problems.append(f"{changelog}: written by {writers!r}, declared {w.service}")
    return problems


def test_the_architecture_table_is_the_declared_wiring() -> None:
    assert differences(ARCHITECTURE.read_text(encoding="utf-8"), WIRING) == []


def test_a_difference_from_the_declaration_is_found() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    # The docs once said the SLA engine reads `sla`; it stopped when it began to mark on
    # acknowledgement.
    stale = text.replace("| sla | notify, projections, evaluation |", "| sla | sla, notify |")
    assert stale != text
    assert differences(stale, WIRING) == [
        "sla: read by 'sla, notify', declared "
        "{'notify': 'notify', 'projections': 'projections', 'evaluation': 'evaluation'}"
    ]
    regrouped = {**WIRING, "notify": Wiring("notify", "webhooks", WIRING["notify"].consumes, ())}
    # every topic notify reads names its group: reports, dispatches, completions,
    # closures and sla
    assert len(differences(text, regrouped)) == len(WIRING["notify"].consumes) == 5


def test_every_topic_of_the_registry_is_created_and_no_other() -> None:
    assert sorted(t.name for t in created_topics()) == sorted(TOPICS)
    # A service that reads a topic needs its dead-letter topic.
    assert {w.service: w.dead_letters for w in WIRING.values()}["notify"] == (
        "reports.dlq",
        "dispatches.dlq",
        "completions.dlq",
        "closures.dlq",
        "sla.dlq",
    )


def test_the_services_consume_what_the_wiring_says() -> None:
    from services.dispatch import main as dispatch
    from services.evaluation import main as evaluation
    from services.notify import main as notify
    from services.projections import main as projections
    from services.sla import app as sla

    assert (dispatch.GROUP, dispatch.TOPICS) == ("dispatch", ("reports", "closures"))
    read = ("reports", "dispatches", "completions", "closures", "sla")
    assert notify.GROUP == "notify"
    assert read == notify.TOPICS
    everything = tuple(t.name for t in LIFECYCLE_TOPICS)
    assert ("projections", everything) == (projections.GROUP, projections.TOPICS)
    assert ("evaluation", everything) == (evaluation.GROUP, evaluation.TOPICS)
    assert "sla" not in {t.name for t in sla.SOURCES}
    with pytest.raises(ValueError, match="intake reads no topic"):
        _ = WIRING["intake"].consumer_group


def test_a_namespace_prefixes_a_name() -> None:
    assert named("", "reports") == "reports"
    assert named("ci-7", "reports.dlq") == "ci-7.reports.dlq"
    for bad in ("a.b", "a b", "x" * 41, "中文"):
        with pytest.raises(BadNamespace):
            named(bad, "reports")
    assert Settings(namespace="ci7").namespace == "ci7"
    with pytest.raises(ValidationError, match="namespace"):
        Settings(namespace="ci.7")


async def test_the_producer_and_pipelines_live_in_the_namespace() -> None:
    producer = EventProducer("127.0.0.1:1", namespace="ci7")
    assert producer.topic_for("gridloop.case.filed") == "ci7.reports"

    async def nothing(env: Envelope) -> list[Envelope]:
        return []

    pipeline = Pipeline("dispatch", ["reports", "closures"], nothing, producer, "127.0.0.1:1")
    assert (pipeline.group, pipeline.topics) == ("ci7.dispatch", ["ci7.reports", "ci7.closures"])
    plain = Pipeline("dispatch", ["reports"], nothing, EventProducer("127.0.0.1:1"), "x:1")
    assert (plain.group, plain.topics) == ("dispatch", ["reports"])


def test_topic_creation_and_the_sla_engine_live_in_the_namespace(tmp_path: Path) -> None:
    specs = topic_specs(created_topics(), namespace="ci7")
    assert sorted(s.name for s in specs) == sorted(f"ci7.{t}" for t in TOPICS)
    app = create_app(Settings(namespace="ci7", data_dir=tmp_path))
    assert app.conf.id == "ci7.gridloop-sla"
    clocks = app.tables[SLA_ENGINE.tables[0]]
    assert clocks.changelog_topic.get_topic_name() == "ci7.gridloop-sla-clocks-changelog"
    plain = create_app(Settings(data_dir=tmp_path)).tables["clocks"]
    assert plain.changelog_topic.get_topic_name() in SLA_ENGINE.changelogs()
