"""Every app's requests counted and timed by route template, method and status class, from 0
at start-up (`gridloop.red`), and a SERVER span each when tracing is on."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY

from gridloop import tracing
from gridloop.runtime import add_ops_routes

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
OPENMETRICS = "application/openmetrics-text; version=1.0.0"


def app_with_routes(prefix: str) -> FastAPI:
    app = FastAPI()
    add_ops_routes(app)

    @app.get(f"{prefix}/cases/{{case_id}}")
    def case(case_id: str) -> dict[str, str]:
        return {"case_id": case_id}

    @app.post(f"{prefix}/boom")
    def boom() -> None:
        raise RuntimeError("a bug")

    return app


def requests(route: str, method: str, status: str) -> float | None:
    labels = {"route": route, "method": method, "status": status}
    return REGISTRY.get_sample_value("gridloop_http_requests_total", labels)


def timed(route: str, method: str) -> float | None:
    labels = {"route": route, "method": method}
    return REGISTRY.get_sample_value("gridloop_http_request_duration_seconds_count", labels)


@pytest.fixture
def prefix() -> str:
    return f"/t{uuid.uuid4().hex[:8]}"  # routes of this test alone in the shared registry


def test_every_route_is_counted_from_zero_at_start_up(prefix: str) -> None:
    with TestClient(app_with_routes(prefix)):  # the lifespan: the app started, no request
        for status in ("2xx", "4xx", "5xx"):
            assert requests(f"{prefix}/cases/{{case_id}}", "GET", status) == 0
            assert requests(f"{prefix}/boom", "POST", status) == 0
        assert timed(f"{prefix}/cases/{{case_id}}", "GET") == 0
        assert requests("/metrics", "GET", "2xx") is None  # scrapes are not traffic


def test_requests_count_by_template_method_and_status_class(prefix: str) -> None:
    with TestClient(app_with_routes(prefix), raise_server_exceptions=False) as client:
        unmatched = requests("unmatched", "GET", "4xx") or 0
        assert client.get(f"{prefix}/cases/C-1").status_code == 200
        assert client.get(f"{prefix}/cases/C-2").status_code == 200
        assert client.post(f"{prefix}/boom").status_code == 500
        assert client.get(f"{prefix}/nowhere/C-3").status_code == 404
        client.get("/metrics")
        client.get("/healthz")
    template = f"{prefix}/cases/{{case_id}}"
    assert requests(template, "GET", "2xx") == 2  # one series for every case, not one each
    assert timed(template, "GET") == 2
    assert requests(f"{prefix}/boom", "POST", "5xx") == 1  # the unhandled error's 500
    assert requests("unmatched", "GET", "4xx") == unmatched + 1
    assert (
        REGISTRY.get_sample_value(
            "gridloop_http_requests_total",
            {"route": f"{prefix}/cases/C-1", "method": "GET", "status": "2xx"},
        )
        is None
    )


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


def test_a_request_is_a_server_span_named_by_its_route_under_the_caller_s_trace(
    prefix: str, spans: InMemorySpanExporter
) -> None:
    with TestClient(app_with_routes(prefix)) as client:
        client.get(f"{prefix}/cases/C-9", headers={"traceparent": TRACEPARENT})
        plain = client.get("/metrics").text
        asked = client.get("/metrics", headers={"accept": OPENMETRICS})
    [span] = spans.get_finished_spans()
    assert span.kind is SpanKind.SERVER
    assert span.name == f"GET {prefix}/cases/{{case_id}}"
    assert (span.attributes or {})[tracing.CASE_ID] == "C-9"
    assert (span.attributes or {})["http.response.status_code"] == 200
    assert span.parent is not None and f"{span.parent.trace_id:032x}" in TRACEPARENT
    # Its duration carries its trace id to a scraper that asks for OpenMetrics (exemplars).
    trace_id = f"{span.context.trace_id:032x}"
    assert asked.headers["content-type"].startswith("application/openmetrics-text")
    bucket = [line for line in asked.text.splitlines() if f'trace_id="{trace_id}"' in line]
    assert len(bucket) == 1 and f'route="{prefix}/cases/{{case_id}}"' in bucket[0]
    assert trace_id not in plain  # the classic text format has no exemplars


def test_no_span_and_no_trace_header_when_tracing_is_off(prefix: str) -> None:
    assert not tracing.on()
    with TestClient(app_with_routes(prefix)) as client:
        assert client.get(f"{prefix}/cases/C-1").status_code == 200
    assert tracing.request_span("GET", TRACEPARENT, "") is None
