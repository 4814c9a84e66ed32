"""The bare intake endpoint `bench_intake` measures intake beside: FastAPI under uvicorn, as
intake is served (`gridloop.runtime.server_config`), that validates the same body
(`ReportIn`) and produces records of the same sizes to the same topic with aiokafka as
intake's producer does (`acks=all`, `linger_ms=2`), answering 202 once both are
acknowledged. No authentication, location, duplicate search, numbering or decision: what
is left is what any endpoint that accepts a report must do.

    python -m bench.bare_intake PORT KAFKA TOPIC SIZE,SIZE
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from gridloop.runtime import server_config
from services.intake.requests import ReportIn


def bare_app(kafka: str, topic: str, sizes: list[int]) -> FastAPI:
    values = [b"x" * size for size in sizes]
    producers: list[AIOKafkaProducer] = []

    @asynccontextmanager
    async def running(_: FastAPI) -> AsyncIterator[None]:
        producer = AIOKafkaProducer(  # in the server's loop
            bootstrap_servers=kafka, acks="all", enable_idempotence=False, linger_ms=2
        )
        await producer.start()
        producers.append(producer)
        yield
        await producer.stop()

    app = FastAPI(lifespan=running, openapi_url=None)

    @app.post("/reports", status_code=202)
    async def report(body: ReportIn) -> dict[str, str]:
        case_id, [producer] = str(uuid.uuid4()), producers
        sent = [await producer.send(topic, value, case_id.encode()) for value in values]
        for future in sent:
            await future
        return {"case_id": case_id, "channel": body.channel}

    return app


def main() -> None:
    port, kafka, topic, sizes = sys.argv[1:5]
    app = bare_app(kafka, topic, [int(s) for s in sizes.split(",")])
    uvicorn.Server(server_config(app, port=int(port), log_level="warning")).run()


if __name__ == "__main__":
    main()
