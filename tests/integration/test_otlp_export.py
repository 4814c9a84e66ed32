"""With an OTLP endpoint set, a service started as `gridloop run` starts it exports its spans
over OTLP/HTTP: an OTLP receiver on loopback (the protobuf the SDK sends, parsed with the
OpenTelemetry protocol's own classes) gets intake's request and the events it published,
named `gridloop-intake`, each event's span carrying its case."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request, Response
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from gridloop import tracing
from gridloop.config import DEMO_CITY_PACK
from gridloop.embedded import free_port, free_ports
from system.desk import pack_for_receivers
from system.up import PORT_ENV, System
from tests.conftest import Servers, fresh_namespace
from tests.helpers import eventually, serving

REPORT: dict[str, Any] = {
    "channel": "website",
    "kind": "event",
    "class_code": "0102",
    "point": {"lon": 116.4035, "lat": 39.9205},
    "description": "暴露垃圾 rubbish piled at the lane entrance",
    "reporter": {"name": "李女士", "phone": "13900000000"},
}
Span = tuple[str, str, dict[str, str]]  # service.name, span name, string attributes


class Collector:
    """An OTLP/HTTP traces receiver: every span it was sent."""

    def __init__(self) -> None:
        self.spans: list[Span] = []
        self.app = FastAPI()
        self.app.post("/v1/traces")(self.receive)

    async def receive(self, request: Request) -> Response:
        sent = ExportTraceServiceRequest()
        sent.ParseFromString(await request.body())
        for resource in sent.resource_spans:
            named = {a.key: a.value.string_value for a in resource.resource.attributes}
            for scope in resource.scope_spans:
                for span in scope.spans:
                    attributes = {a.key: a.value.string_value for a in span.attributes}
                    self.spans.append((named["service.name"], span.name, attributes))
        return Response(status_code=200)


@pytest.fixture
async def collector() -> AsyncIterator[tuple[Collector, int]]:
    found, port = Collector(), free_port()
    async with serving(found.app, port):
        yield found, port


async def test_a_service_exports_its_spans_over_otlp_when_an_endpoint_is_set(
    servers: Servers, collector: tuple[Collector, int], tmp_path: Path
) -> None:
    received, port = collector
    ports = free_ports(PORT_ENV.values())
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": servers.kafka,
        "MONGODB_URI": servers.mongodb,
        "GRIDLOOP_MONGODB_DATABASE": f"otlp_{uuid.uuid4().hex[:8]}",
        "GRIDLOOP_NAMESPACE": fresh_namespace(),
        "GRIDLOOP_CITY_PACK": str(
            pack_for_receivers(DEMO_CITY_PACK, tmp_path / "pack", f"http://127.0.0.1:{free_port()}")
        ),
        "GRIDLOOP_DATA_DIR": str(tmp_path / "data"),
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{port}",
        "OTEL_BSP_SCHEDULE_DELAY": "100",  # ms: batches sent soon, for the test
        **ports,
    }
    system = System(env, tmp_path / "logs", ("intake",))
    try:
        system.start()
        async with httpx.AsyncClient(base_url=system.url("intake")) as http:
            posted = await http.post("/reports", json=REPORT)
        assert posted.status_code == 202, posted.text
        case_id = posted.json()["case_id"]

        async def exported() -> list[Span] | None:
            ours = [s for s in received.spans if s[2].get(tracing.CASE_ID) == case_id]
            return ours if ours else None

        sent = await eventually(exported, within=30, what="intake's spans at the collector")
    finally:
        system.stop()
    assert {name for name, _, _ in received.spans} == {"gridloop-intake"}
    assert ("gridloop-intake", "POST /reports") in {(n, s) for n, s, _ in received.spans}
    assert {s[2]["cloudevents.event_type"] for s in sent} >= {"gridloop.case.reported"}
    assert all(s[1].startswith("send ") and s[1].endswith(".reports") for s in sent)
