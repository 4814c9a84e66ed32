"""Bootstrap of the SLA service: a faust worker."""

from __future__ import annotations

import asyncio
import logging

import faust

from gridloop.config import Settings
from gridloop.kafka import ensure_topics
from services.sla.app import create_app


def run(settings: Settings) -> None:
    # Faust's source topics must exist before the worker starts.
    asyncio.run(
        ensure_topics(
            settings.kafka_bootstrap_servers,
            replication=settings.kafka_replication_factor,
            min_insync_replicas=settings.kafka_min_insync_replicas,
            namespace=settings.namespace,
        )
    )
    (settings.data_dir / "sla").mkdir(parents=True, exist_ok=True)
    app = create_app(settings)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    for name in ("aiokafka", "faust", "mode"):
        # The worker leaves the libraries' loggers at their default: debug records were
        # built for every record sent (a tenth of the time, measured in bench/bench_sla.py).
        logging.getLogger(name).setLevel(logging.WARNING)
    worker.execute_from_commandline()
