"""One case's path across the services is one trace: intake's request → `case.reported`,
`case.filed` → dispatch's handling → `case.dispatched` → notify's handling, and the attempt
to tell the department, the context carried by the events' CloudEvents `traceparent`.

The services run as `gridloop run` runs them (each one's `main.run`), in this process so
that one in-memory exporter (opentelemetry-sdk's) collects every span, on the session's
broker and database, over real HTTP and Kafka. Nothing here measures speed.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind

from gridloop import tracing
from gridloop.auth import CredentialStore, Role
from gridloop.config import DEMO_CITY_PACK, Settings
from gridloop.embedded import free_port
from gridloop.mongo import connect, database
from gridloop.topology import named
from schemas.topics import DISPATCHES, REPORTS
from services.dispatch.main import run as dispatch
from services.intake.main import run as intake
from services.notify.main import run as notify
from services.projections.main import run as projections
from system.desk import pack_for_receivers
from tests.conftest import Servers
from tests.helpers import eventually

REPORT: dict[str, Any] = {
    "channel": "supervisor",
    "kind": "event",
    "class_code": "0102",  # exposed garbage → SANITATION
    "point": {"lon": 116.4035, "lat": 39.9205},
    "description": "暴露垃圾 rubbish piled at the lane entrance",
    "reporter": {"id": "SUP-TRACE"},
}
Main = Callable[[Settings], Coroutine[Any, Any, None]]


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracing.install(provider)
    try:
        yield exporter
    finally:
        tracing.install(None)
        provider.shutdown()


@contextlib.asynccontextmanager
async def running(settings: Settings, mains: list[Main]) -> AsyncIterator[None]:
    tasks = [asyncio.create_task(main(settings)) for main in mains]
    try:
        async with httpx.AsyncClient() as http:

            async def up() -> bool:
                assert not any(t.done() for t in tasks), [t.exception() for t in tasks]
                try:
                    answer = await http.get(f"http://127.0.0.1:{settings.intake_port}/healthz")
                except httpx.TransportError:
                    return False
                return answer.status_code == 200

            await eventually(up, within=60, what="intake serving")
        yield
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


async def supervisor_token(settings: Settings) -> str:
    client = connect(settings)
    try:
        return await CredentialStore(database(client, settings)).issue(Role.supervisor, "SUP-TRACE")
    finally:
        await client.close()


def attr(span: ReadableSpan, name: str) -> str:
    return str((span.attributes or {}).get(name, ""))


def of_case(spans: InMemorySpanExporter, case_id: str) -> list[ReadableSpan]:
    return [s for s in spans.get_finished_spans() if attr(s, tracing.CASE_ID) == case_id]


def consumed_by(found: list[ReadableSpan], group: str, topic: str) -> list[ReadableSpan]:
    return [
        s
        for s in found
        if s.kind is SpanKind.CONSUMER
        and attr(s, "messaging.consumer.group.name").endswith(group)
        and attr(s, "messaging.destination.name").endswith(topic)
    ]


async def test_a_case_is_one_trace_from_intake_through_dispatch_to_notify(
    servers: Servers, spans: InMemorySpanExporter, tmp_path: Path
) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}/hooks"  # webhooks fail: not what is traced
    settings = servers.settings(
        city_pack=pack_for_receivers(DEMO_CITY_PACK, tmp_path / "pack", nowhere),
        data_dir=tmp_path / "data",
        **{f"{s}_port": free_port() for s in ("intake", "dispatch", "notify", "projections")},
    )
    async with running(settings, [projections, dispatch, notify, intake]):
        token = await supervisor_token(settings)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{settings.intake_port}") as http:
            posted = await http.post(
                "/reports", json=REPORT, headers={"Authorization": f"Bearer {token}"}
            )
        assert posted.status_code == 202, posted.text
        case_id = posted.json()["case_id"]

        async def reached_notify() -> list[ReadableSpan] | None:
            found = of_case(spans, case_id)
            notified = consumed_by(found, "notify", DISPATCHES.name)
            attempted = [s for s in found if s.kind is SpanKind.CLIENT]
            return found if attempted and any(s.status.is_ok for s in notified) else None

        found = await eventually(
            reached_notify, within=60, what="notify handling the dispatch, and a webhook attempt"
        )

    [request] = [
        s
        for s in spans.get_finished_spans()
        if s.kind is SpanKind.SERVER and s.name == "POST /reports"
    ]
    assert request.parent is None  # the case's path starts at the report
    assert {s.context.trace_id for s in found} == {request.context.trace_id}, "one trace"
    by_id = {s.context.span_id: s for s in spans.get_finished_spans()}
    # A poll notify retried (the case not yet projected) has a failed span of its own.
    [notified] = [s for s in consumed_by(found, "notify", DISPATCHES.name) if s.status.is_ok]
    chain = [by_id[i] for i in _ids(notified, by_id)]
    # Each hop a child of the event that caused it: notify's handling of the dispatch ←
    # its sending ← dispatch's handling of the filing ← its sending ← intake's request.
    reports, dispatches = (named(settings.namespace, t.name) for t in (REPORTS, DISPATCHES))
    assert [(s.kind, s.name) for s in chain] == [
        (SpanKind.SERVER, "POST /reports"),
        (SpanKind.PRODUCER, f"send {reports}"),
        (SpanKind.CONSUMER, f"process {reports}"),
        (SpanKind.PRODUCER, f"send {dispatches}"),
        (SpanKind.CONSUMER, f"process {dispatches}"),
    ]
    groups = [attr(s, "messaging.consumer.group.name") for s in chain]
    assert groups[2] == named(settings.namespace, "dispatch")
    assert groups[4] == named(settings.namespace, "notify")
    types = [attr(s, "cloudevents.event_type") for s in chain[1:]]
    assert types == ["gridloop.case.filed"] * 2 + ["gridloop.case.dispatched"] * 2

    # The department's webhook: an attempt of its own (to nowhere here: failed), under the
    # event it tells of.
    [attempt, *_] = [s for s in found if s.kind is SpanKind.CLIENT]
    assert attempt.name == "deliver SANITATION"
    assert attempt.parent is not None and attempt.parent.span_id == chain[3].context.span_id
    assert attr(attempt, "gridloop.delivery.result") == "failed"
    assert not attempt.status.is_ok


def _ids(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[int]:
    """The ids of `span`'s ancestors, from the root, and its own."""
    ids = [span.context.span_id]
    while span.parent is not None:
        span = by_id[span.parent.span_id]
        ids.append(span.context.span_id)
    return ids[::-1]
