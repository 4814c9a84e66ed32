"""Intake's HTTP API with a real broker and database: answers, refusals, idempotent retries."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from aiokafka import ConsumerRecord
from pymongo import AsyncMongoClient

from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.idempotency import IdempotencyStore
from gridloop.kafka import EventProducer, ensure_topics
from gridloop.mongo import Document
from services.intake.api import Intake, create_app
from services.projections.store import CaseStore
from tests.conftest import Servers
from tests.helpers import read_topic

REPORT: dict[str, Any] = {
    "channel": "supervisor",
    "kind": "component",
    "class_code": "0101",
    "point": {"lon": 116.4005, "lat": 39.9204},
    "description": "井盖破损",
    "reporter": {"id": "SUP-1"},
}


@pytest.fixture
async def client(servers: Servers) -> AsyncIterator[httpx.AsyncClient]:
    await ensure_topics(servers.kafka)
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = mongo[f"test_{uuid.uuid4().hex[:12]}"]
    producer = EventProducer(servers.kafka)
    await producer.start()
    intake = Intake(load_city_pack(DEMO_CITY_PACK), producer, CaseStore(db), IdempotencyStore(db))
    transport = httpx.ASGITransport(app=create_app(intake))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as c:
        yield c
    await producer.stop()
    await mongo.close()


async def test_a_supervisor_report_is_filed_and_in_kafka(
    client: httpx.AsyncClient, servers: Servers
) -> None:
    response = await client.post("/reports", json=REPORT)
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["state"] == "filed" and answer["version"] == 2
    key = answer["case_id"].encode()

    def both(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        return bool(sum(r.key == key for r in records) >= 2)

    records = [r for r in await read_topic(servers.kafka, "reports", both) if r.key == key]
    assert [dict(r.headers)["ce_id"].decode() for r in records] == answer["events"]


@pytest.mark.parametrize(
    ("change", "loc", "kind"),
    [
        ({"point": {"lon": 100.0, "lat": 30.0}}, ["body", "point"], "outside_grids"),
        ({"class_code": "0999"}, ["body", "class_code"], "unknown_class"),
        ({"reporter": {}}, ["body", "reporter", "id"], "missing"),
        ({"channel": "fax"}, ["body", "channel"], "enum"),
        ({"point": {"lon": 500, "lat": 39.9}}, ["body", "point", "lon"], "less_than_equal"),
    ],
)
async def test_bad_reports_are_refused_with_field_and_reason(
    client: httpx.AsyncClient, change: dict[str, Any], loc: list[str], kind: str
) -> None:
    response = await client.post("/reports", json=REPORT | change)
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == loc
    assert detail["type"] == kind
    assert detail["msg"]


async def test_a_retry_with_the_same_key_returns_the_first_answer(
    client: httpx.AsyncClient,
) -> None:
    headers = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = await client.post("/reports", json=REPORT, headers=headers)
    again = await client.post("/reports", json=REPORT, headers=headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    other = await client.post("/reports", json=REPORT | {"description": "else"}, headers=headers)
    assert other.status_code == 422
    assert other.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]


async def test_commands_on_unknown_cases_are_404(client: httpx.AsyncClient) -> None:
    response = await client.post("/cases/nope/check", json={"supervisor_id": "S", "passed": True})
    assert response.status_code == 404
    assert (await client.get("/cases/nope")).status_code == 404
