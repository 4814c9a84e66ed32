"""What the fault suite drives and counts: a department receiver that can be taken down, a
client that retries as a real one does, and the ledger of what the clients were told."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response

from services.intake.edge import CASE_NAMESPACE

SUMMARY: list[str] = []  # the table, printed at the end of the run

# The demo city's grids: every report gets a point of its own inside them.
WEST, EAST, SOUTH, NORTH = 116.4001, 116.4079, 39.9201, 39.9208
# Event classes with a working-time clock of hours: no deadline passes during the suite.
CLASSES = ("0101", "0102", "0505")
SUPERVISOR = "SUP-FAULTS"


@dataclass
class Receipt:
    department: str
    webhook_id: str
    type: str
    case_id: str
    version: int | None
    status: int  # what the receiver answered
    at: float
    fact: str = ""  # which of a version's SLA facts: its stage and tier (two breaches at v3)


@dataclass
class Receiver:
    """Every department's webhook endpoint. Departments in `down` answer 503."""

    port: int
    down: set[str] = field(default_factory=set)
    receipts: list[Receipt] = field(default_factory=list)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hooks/{department}")
        async def receive(department: str, request: Request) -> Response:
            message = json.loads(await request.body())
            data = message.get("data", {})
            status = 503 if department in self.down else 204
            self.receipts.append(
                Receipt(
                    department,
                    request.headers["webhook-id"],
                    message["type"],
                    data.get("case_id", ""),
                    data.get("version", data.get("case_version")),
                    status,
                    time.monotonic(),
                    f"{data.get('stage', '')}/{data.get('tier', '')}",
                )
            )
            return Response(status_code=status)

        return app

    def delivered(self) -> list[Receipt]:
        return [r for r in self.receipts if r.status < 300]


@dataclass
class Ledger:
    """What the clients sent and were told, over the whole suite."""

    submitted: dict[str, str] = field(default_factory=dict)  # Idempotency-Key → case id
    acked: dict[str, str] = field(default_factory=dict)  # Idempotency-Key → case id (202)
    answers: Counter[str] = field(default_factory=Counter)  # status code or "no answer"
    retries: int = 0  # requests sent again with the same key
    abandoned: set[str] = field(default_factory=set)  # keys never acknowledged
    refused: list[str] = field(default_factory=list)  # 4xx answers: a bug in the suite
    failed: list[str] = field(default_factory=list)  # 5xx answers other than 503
    notes: dict[str, str] = field(default_factory=dict)  # per scenario, for the report


def report_body(rng: random.Random) -> dict[str, Any]:
    return {
        "channel": "supervisor",
        "kind": "event",
        "class_code": rng.choice(CLASSES),
        "point": {
            "lon": round(rng.uniform(WEST, EAST), 7),
            "lat": round(rng.uniform(SOUTH, NORTH), 7),
        },
        "description": "fault suite: a report under load",
        "reporter": {"id": SUPERVISOR},
    }


def case_id_for(key: str) -> str:
    """The case id intake derives from a supervisor's Idempotency-Key."""
    return str(uuid.uuid5(CASE_NAMESPACE, f"report:supervisor:{SUPERVISOR}:{key}"))


@dataclass
class Client:
    """Submits reports and retries each with the same key until it is acknowledged: after no
    answer (connection refused or reset), a timeout or a 5xx, honouring `Retry-After` up to
    `max_wait` seconds, for at most `give_up` seconds."""

    http: httpx.AsyncClient
    ledger: Ledger
    rng: random.Random = field(default_factory=random.Random)  # a point of its own per report
    give_up: float = 180.0
    max_wait: float = 2.0
    timeout: float = 10.0
    never_2xx: bool = False  # a phase in which intake must not acknowledge anything
    acked_while_forbidden: list[str] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)

    async def submit(self, body: dict[str, Any] | None = None, key: str | None = None) -> None:
        key = key or uuid.uuid4().hex
        self.ledger.submitted[key] = case_id_for(key)
        body = body or report_body(self.rng)
        deadline = time.monotonic() + self.give_up
        while True:
            wait = 0.5
            try:
                answer = await self.http.post(
                    "/reports", json=body, headers={"Idempotency-Key": key}, timeout=self.timeout
                )
            except httpx.TransportError:
                self.ledger.answers["no answer"] += 1
            else:
                self.ledger.answers[str(answer.status_code)] += 1
                if answer.status_code == 202:
                    if self.never_2xx:
                        self.acked_while_forbidden.append(key)
                    case_id = answer.json()["case_id"]
                    assert case_id == self.ledger.submitted[key], answer.text
                    self.ledger.acked[key] = case_id
                    return
                if 400 <= answer.status_code < 500:
                    self.ledger.refused.append(f"{answer.status_code} {answer.text[:300]}")
                    return
                if answer.status_code >= 500 and answer.status_code != 503:
                    self.ledger.failed.append(f"{answer.status_code} {answer.text[:300]}")
                if answer.status_code == 503:
                    assert "retry-after" in answer.headers, answer.headers
                    wait = float(answer.headers["retry-after"])
            if time.monotonic() > deadline:
                self.ledger.abandoned.add(key)
                return
            self.ledger.retries += 1
            await asyncio.sleep(min(wait, self.max_wait))

    def start(self) -> None:
        task = asyncio.create_task(self.submit())
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def steady(self, rate: float, seconds: float, stop: asyncio.Event | None = None) -> int:
        """Start `rate` reports a second for `seconds` (or until `stop`); return how many."""
        started, n = time.monotonic(), 0
        while time.monotonic() - started < seconds and not (stop and stop.is_set()):
            self.start()
            n += 1
            await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        return n

    async def drain(self, within: float = 240.0) -> None:
        """Wait for every report in flight to be acknowledged or given up."""
        if self.tasks:
            await asyncio.wait_for(asyncio.gather(*list(self.tasks)), within)
