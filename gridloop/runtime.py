"""Run one service: its HTTP app (API, `/metrics`, `/healthz`) beside its Kafka workers,
on one event loop, stopping cleanly on SIGINT/SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
from collections.abc import AsyncIterator, Awaitable, Callable, Generator, Sequence
from dataclasses import dataclass
from typing import Any

import uvicorn
from fastapi import FastAPI, Request, Response
from prometheus_client import REGISTRY
from prometheus_client.exposition import choose_encoder
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.config import Settings
from gridloop.kafka import EventProducer, Handler, Pipeline, ensure_topics
from gridloop.kafka.metrics import producing
from gridloop.mongo import Document, connect, database
from gridloop.red import observe
from gridloop.topology import WIRING, named

log = logging.getLogger(__name__)

Worker = Callable[[asyncio.Event], Awaitable[None]]


def add_ops_routes(app: FastAPI) -> None:
    """`/metrics` for Prometheus and `/healthz` for orchestrators; and every request of the
    app counted and timed by route, and traced when tracing is on (`gridloop.red`)."""
    observe(app)

    @app.get("/metrics", include_in_schema=False)
    def metrics(request: Request) -> Response:
        # OpenMetrics to a scraper that asks for it (Prometheus does): it carries the
        # exemplars, a request's trace id beside its duration (gridloop.red).
        encode, content_type = choose_encoder(request.headers.get("accept", ""))
        return Response(encode(REGISTRY), media_type=content_type)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}


def ops_app(title: str) -> FastAPI:
    """The HTTP face of a service that has no API of its own."""
    app = FastAPI(title=title, openapi_url=None)
    add_ops_routes(app)
    return app


def server_config(
    app: FastAPI, host: str = "127.0.0.1", port: int = 0, **options: Any
) -> uvicorn.Config:
    """How every gridloop HTTP app is served. uvicorn's own proxy-header handling is off:
    on by default, it trusts loopback and rewrites the client address from
    `X-Forwarded-For`, so any caller on the host could name itself a new address and reset
    the per-address rate limit. The door (`gridloop.http.client_address`) is the one place
    a forwarded address is believed, from `GRIDLOOP_TRUSTED_PROXIES` alone."""
    return uvicorn.Config(app, host=host, port=port, proxy_headers=False, **options)


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # uvicorn re-raises a captured signal after serving, which would kill the process
        # before the Kafka workers commit and leave their group; handle it ourselves.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)


def settle_memory() -> None:
    """Keep what the service built before serving out of the garbage collector's passes.

    The city pack (≈ 150,000 components, grids, their index) and the clients live as long
    as the process, yet each full collection walked all of them again, every few thousand
    requests: ≈ 20 % of intake's CPU a report (docs/benchmarks.md, "Intake", run 3).
    Frozen, they are never examined; the young generation is collected every 10,000 new
    containers instead of 700, so that the objects of the requests in flight (dozens at a
    time) are not promoted just before they die."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(10_000, 10, 10)


async def serve(app: FastAPI, host: str, port: int, workers: Sequence[Worker]) -> None:
    """Serve `app` and run `workers` until a signal arrives or a worker fails."""
    settle_memory()
    stop = asyncio.Event()
    # A stream that never ends by itself (the workbench's live news) must not hold a stop
    # for ever: open connections get this many seconds, then are closed.
    config = server_config(app, host, port, log_level="warning", timeout_graceful_shutdown=5)
    server = _Server(config)
    failures: list[BaseException] = []

    async def guarded(worker: Worker) -> None:
        try:
            await worker(stop)
        except Exception as exc:
            log.exception("worker failed; stopping the service so that it is restarted")
            failures.append(exc)
        finally:
            server.should_exit = True

    tasks = [asyncio.create_task(guarded(w)) for w in workers]
    try:
        await server.serve()
    finally:
        stop.set()
        await asyncio.gather(*tasks)
    if failures:
        raise failures[0]


@dataclass
class Infra:
    """What every service is built from: settings, the database and the producer."""

    settings: Settings
    db: AsyncDatabase[Document]
    producer: EventProducer

    def pipeline(self, group: str, topics: Sequence[str], handler: Handler) -> Pipeline:
        return Pipeline(
            group,
            topics,
            handler,
            self.producer,
            self.settings.kafka_bootstrap_servers,
            self.settings.kafka_session_timeout_ms,
        )


@contextlib.asynccontextmanager
async def infrastructure(settings: Settings, client_id: str) -> AsyncIterator[Infra]:
    """Topics created, database connected, producer started; all closed on exit. The
    topics the service writes (`gridloop.topology.WIRING[client_id]`) are counted from 0."""
    await ensure_topics(
        settings.kafka_bootstrap_servers,
        replication=settings.kafka_replication_factor,
        min_insync_replicas=settings.kafka_min_insync_replicas,
        namespace=settings.namespace,
    )
    client = connect(settings)
    # The producer carries the namespace to the pipelines built on it.
    producer = EventProducer(settings.kafka_bootstrap_servers, client_id, settings.namespace)
    await producer.start()
    if (wiring := WIRING.get(client_id)) is not None:
        written = (*(t.name for t in wiring.produces), *wiring.dead_letters)
        producing(named(settings.namespace, name) for name in written)
    try:
        yield Infra(settings, database(client, settings), producer)
    finally:
        await producer.stop()
        await client.close()
