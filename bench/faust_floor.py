"""The faust floor of the SLA engine's ingest: a bare faust worker reading the same records
the engine reads, in a group of its own, doing nothing with them (`--table` off) or
writing one key of an in-memory table per record (`--table` on: what a case costs the
engine in faust and its changelog, without decoding the event or applying a rule).

    python -m bench.faust_floor --bootstrap HOST:PORT --topic NAME --count N [--table]

Run by `bench.bench_sla` in its own process (faust owns the process's event loop); prints
one line, `records/s <rate>`, timed from the first record read to the `count`th.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import tempfile
import time
import uuid
from typing import Any

import faust

from schemas.topics import DISPATCHES


def floor_app(bootstrap: str, topic: str, count: int, table: bool) -> faust.App:
    app = faust.App(
        f"bench-floor-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        datadir=tempfile.mkdtemp(prefix="bench-floor-"),
        topic_partitions=DISPATCHES.partitions,
        producer_linger=0.005,  # as the engine's app
        web_enabled=False,
        consumer_auto_offset_reset="earliest",
    )
    keys = app.Table("floor", partitions=DISPATCHES.partitions, value_type=str)
    source = app.topic(topic, value_serializer="raw", key_serializer="raw")
    seen, started = 0, 0.0

    @app.agent(source)
    async def read(stream: Any) -> None:
        nonlocal seen, started
        async for event in stream.events():
            if not seen:
                started = time.perf_counter()
            if table:
                keys[event.key.decode()] = "x"
            seen += 1
            if seen == count:
                print(f"records/s {(count - 1) / (time.perf_counter() - started):.0f}", flush=True)
                os.kill(os.getpid(), signal.SIGTERM)

    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--table", action="store_true")
    args = parser.parse_args()
    app = floor_app(args.bootstrap, args.topic, args.count, args.table)
    worker = faust.Worker(app, loglevel="WARNING", quiet=True)
    for name in ("aiokafka", "faust", "mode"):
        logging.getLogger(name).setLevel(logging.WARNING)  # as the engine's worker
    worker.execute_from_commandline()


if __name__ == "__main__":
    main()
