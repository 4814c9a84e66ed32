"""A case's path across the services as one trace (OpenTelemetry), on only when configured.

The trace context travels inside each event as the CloudEvents distributed-tracing
extension: the `traceparent` and `tracestate` attributes of `schemas.envelope.Envelope`
(`ce_traceparent`, `ce_tracestate` headers in Kafka binary mode). Spans, written once:

- SERVER `POST /reports` for every HTTP request of every service (`gridloop.red`);
- PRODUCER `send reports` for every event published (`gridloop.kafka.producer`), a child of
  what caused it: the request, or the record whose handling derived it;
- CONSUMER `process reports` for every record a consumer group handles
  (`gridloop.kafka.consumer`, `gridloop.kafka.batch`, the SLA engine's agent), a child of
  the span that sent it;
- CLIENT `deliver WATER` for every webhook attempt (services/notify), a child of the span
  that sent the event it tells of.

So intake's request → `case.filed` → dispatch's handling → `case.dispatched` → notify's
handling and its webhook attempts are one trace, each span carrying `gridloop.case_id`.

Off unless `configure` is given an OTLP endpoint (`GRIDLOOP_OTLP_ENDPOINT`, or the standard
`OTEL_EXPORTER_OTLP_ENDPOINT`; `OTEL_SDK_DISABLED=true` keeps it off): then every function
here returns at its first line, no span is made and no header added. Tests `install` a
provider of their own. docs/operations.md says how to turn it on.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from contextvars import ContextVar
from dataclasses import replace
from typing import Protocol

from opentelemetry import context
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import (
    Span,
    SpanKind,
    Status,
    StatusCode,
    Tracer,
    get_current_span,
    set_span_in_context,
)
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from schemas.envelope import Envelope

CASE_ID = "gridloop.case_id"
_NOTHING = contextlib.nullcontext()  # what every hook enters when tracing is off
PROPAGATOR = TraceContextTextMapPropagator()
_tracer: Tracer | None = None
# While a consumer handles a poll: the span of each case's record, by case id, so that an
# event derived for a case is the child of the record that caused it (not of the poll).
_causes: ContextVar[Mapping[str, Context] | None] = ContextVar("gridloop_causes", default=None)


def on() -> bool:
    return _tracer is not None


def install(provider: TracerProvider | None) -> None:
    """Trace with `provider` from now on (None: stop tracing)."""
    global _tracer
    _tracer = provider.get_tracer("gridloop") if provider is not None else None


def traces_url(endpoint: str) -> str:
    """OTLP/HTTP's traces URL under a base endpoint, as `OTEL_EXPORTER_OTLP_ENDPOINT` means it."""
    return endpoint.rstrip("/") + "/v1/traces"


def configure(service: str, endpoint: str) -> TracerProvider | None:
    """Export this process's spans as `gridloop-<service>` to `endpoint` over OTLP/HTTP, in
    batches off the event loop's path; nothing when `endpoint` is empty."""
    if not endpoint or os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    # The sampler follows OTEL_TRACES_SAMPLER (default: parent-based, always on).
    provider = TracerProvider(resource=Resource.create({"service.name": f"gridloop-{service}"}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=traces_url(endpoint))))
    install(provider)
    return provider


def context_of(traceparent: str, tracestate: str = "") -> Context | None:
    """The context a `traceparent` (W3C Trace Context) names; None for none."""
    if not traceparent:
        return None
    return PROPAGATOR.extract({"traceparent": traceparent, "tracestate": tracestate})


def _carried(span: Span) -> tuple[str, str]:
    carrier: dict[str, str] = {}
    PROPAGATOR.inject(carrier, context=set_span_in_context(span))
    return carrier.get("traceparent", ""), carrier.get("tracestate", "")


# --- Kafka -----------------------------------------------------------------------------------


def sending(env: Envelope, topic: str) -> tuple[Envelope, Span | None]:
    """A PRODUCER span for `env` and the envelope carrying its context (as it came and None
    when off). The parent: the record of the same case being handled, else the context the
    envelope already carries (an outbox published again), else the current one."""
    if _tracer is None:
        return env, None
    causes = _causes.get()
    parent = (causes or {}).get(env.subject) or context_of(env.traceparent, env.tracestate)
    span = _tracer.start_span(
        f"send {topic}",
        context=parent,
        kind=SpanKind.PRODUCER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "send",
            "messaging.destination.name": topic,
            "cloudevents.event_id": env.id,
            "cloudevents.event_type": env.type,
            CASE_ID: env.subject,
        },
    )
    traceparent, tracestate = _carried(span)
    return replace(env, traceparent=traceparent, tracestate=tracestate), span


def sent(spans: Sequence[Span | None], failure: BaseException | None = None) -> None:
    """End the PRODUCER spans once Kafka answered."""
    for span in spans:
        if span is not None:
            if failure is not None:
                _failed(span, failure)
            span.end()


Headers = Sequence[tuple[str, bytes]]


class Record(Protocol):
    """A consumed Kafka record, as far as tracing reads it."""

    topic: str
    headers: Headers


def _attribute(headers: Headers, name: str) -> str:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return ""


def _consumer_span(tracer: Tracer, group: str, topic: str, headers: Headers) -> Span:
    parent = context_of(_attribute(headers, "ce_traceparent"), _attribute(headers, "ce_tracestate"))
    return tracer.start_span(
        f"process {topic}",
        context=parent,
        kind=SpanKind.CONSUMER,
        attributes={
            "messaging.system": "kafka",
            "messaging.operation.type": "process",
            "messaging.destination.name": topic,
            "messaging.consumer.group.name": group,
            "cloudevents.event_id": _attribute(headers, "ce_id"),
            "cloudevents.event_type": _attribute(headers, "ce_type"),
            CASE_ID: _attribute(headers, "ce_subject"),
        },
    )


def handling(group: str, topic: str, headers: Headers) -> AbstractContextManager[None]:
    """A CONSUMER span around the handling of one record (and the events it derives)."""
    if _tracer is None:
        return _NOTHING
    return _handling(_tracer, group, topic, headers)


@contextlib.contextmanager
def _handling(tracer: Tracer, group: str, topic: str, headers: Headers) -> Iterator[None]:
    span = _consumer_span(tracer, group, topic, headers)
    token = _causes.set(None)
    try:
        with _current(span):
            yield
    except BaseException as exc:
        _failed(span, exc)
        raise
    finally:
        _causes.reset(token)
        span.end()


def handling_poll(group: str, records: Sequence[Record]) -> AbstractContextManager[None]:
    """A CONSUMER span for each record of a poll handled at once; the events derived for a
    case are children of its record's span."""
    if _tracer is None:
        return _NOTHING
    return _handling_poll(_tracer, group, records)


@contextlib.contextmanager
def _handling_poll(tracer: Tracer, group: str, records: Sequence[Record]) -> Iterator[None]:
    spans = [_consumer_span(tracer, group, r.topic, r.headers) for r in records]
    causes = {
        _attribute(r.headers, "ce_subject"): set_span_in_context(span)
        for r, span in zip(records, spans, strict=True)
    }
    token = _causes.set(causes)
    try:
        yield
    except BaseException as exc:
        for span in spans:
            _failed(span, exc)
        raise
    finally:
        _causes.reset(token)
        for span in spans:
            span.end()


def dead_lettered(reason: BaseException) -> None:
    """Mark the span of the record being handled: it went to the dead-letter topic."""
    if _tracer is None:
        return
    _failed(get_current_span(), reason)


def attempting(traceparent: str, case_id: str, recipient: str, attempt: int) -> Span | None:
    """A CLIENT span for one delivery attempt of a message derived from an event (a
    webhook), a child of the span that sent the event (`traceparent`, kept with the
    delivery); None when off or when the delivery was queued untraced."""
    if _tracer is None or not traceparent:
        return None
    return _tracer.start_span(
        f"deliver {recipient}",
        context=context_of(traceparent),
        kind=SpanKind.CLIENT,
        attributes={CASE_ID: case_id, "gridloop.recipient": recipient, "gridloop.attempt": attempt},
    )


def attempted(span: Span | None, result: str, status: int | None) -> None:
    """End an attempt's span with what came of it (`delivered`, `failed`, …)."""
    if span is None:
        return
    span.set_attribute("gridloop.delivery.result", result)
    if status is not None:
        span.set_attribute("http.response.status_code", status)
    if result != "delivered":
        span.set_status(Status(StatusCode.ERROR, result))
    span.end()


# --- HTTP ------------------------------------------------------------------------------------


def request_span(method: str, traceparent: str, tracestate: str) -> Span | None:
    """A SERVER span for an HTTP request (named by its route once routed), a child of the
    caller's `traceparent` header if it sent one; None when off."""
    if _tracer is None:
        return None
    parent = context_of(traceparent, tracestate)
    return _tracer.start_span(
        method, context=parent, kind=SpanKind.SERVER, attributes={"http.request.method": method}
    )


def answered(span: Span, method: str, route: str, status: int, case_id: str | None) -> None:
    span.update_name(f"{method} {route}")
    span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if case_id:
        span.set_attribute(CASE_ID, case_id)
    if status >= 500:
        span.set_status(Status(StatusCode.ERROR))
    span.end()


@contextlib.contextmanager
def _current(span: Span) -> Iterator[None]:
    token = context.attach(set_span_in_context(span))
    try:
        yield
    finally:
        context.detach(token)


def current(span: Span | None) -> AbstractContextManager[None]:
    """`span` as the current span inside (nothing when None)."""
    return _NOTHING if span is None else _current(span)


def _failed(span: Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"[:200]))
