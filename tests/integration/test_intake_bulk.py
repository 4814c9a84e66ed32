"""`POST /reports/batch` with a real broker and database: all or nothing, refusals named by
index, the same access as single reports, idempotent retries."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest

from gridloop.config import DEMO_CITY_PACK
from schemas.envelope import decode
from tests.conftest import Servers
from tests.integration.test_intake_api import REPORT, WEBSITE, Harness, _harness, records_of


@pytest.fixture
async def h(servers: Servers) -> AsyncIterator[Harness]:
    async for harness in _harness(servers, DEMO_CITY_PACK):
        yield harness


def patrol(n: int) -> list[dict[str, Any]]:
    """`n` supervisor reports at different points of the demo district's grids."""
    return [
        REPORT | {"point": {"lon": 116.4005 + 0.0005 * (i % 8), "lat": 39.9204}} for i in range(n)
    ]


async def test_a_batch_is_filed_numbered_and_in_kafka_in_order(h: Harness) -> None:
    response = await h.post("/reports/batch", patrol(3), "supervisor")
    assert response.status_code == 202, response.text
    accepted = response.json()["accepted"]
    assert [a["state"] for a in accepted] == ["filed"] * 3
    # One class, one day: the next sequences, in the batch's order.
    assert [a["case_number"][-4:] for a in accepted] == ["0001", "0002", "0003"]
    assert len({a["case_id"] for a in accepted}) == 3
    for answer in accepted:
        records = await records_of(h.kafka, answer["case_id"].encode(), 2)
        assert [dict(r.headers)["ce_id"].decode() for r in records] == answer["events"]
        filed = decode(records[1].value, records[1].headers).data.model_dump()
        assert filed["case_number"] == answer["case_number"]


async def test_every_refusal_is_named_by_index_and_nothing_is_published(h: Harness) -> None:
    reports = patrol(4)
    del reports[1]["description"]  # the schema's refusal
    reports[3]["point"] = {"lon": 116.5, "lat": 39.9}  # the domain's: outside every grid
    response = await h.post("/reports/batch", reports, "supervisor")
    assert response.status_code == 422, response.text
    locs = [p["loc"] for p in response.json()["detail"]]
    assert locs == [["body", 1, "description"]]  # the schema first: nothing was decided

    del reports[1]
    response = await h.post("/reports/batch", reports, "supervisor")
    assert response.status_code == 422, response.text
    assert [p["loc"] for p in response.json()["detail"]] == [["body", 2, "point"]]
    # Reports are numbered just before they are published: none was.
    assert await h.db["case_number_counters"].count_documents({}) == 0


@pytest.mark.parametrize("size", [0, 501])
async def test_a_batch_holds_one_to_500_reports(h: Harness, size: int) -> None:
    response = await h.post("/reports/batch", patrol(size), "supervisor")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body"]


async def test_each_report_needs_its_channel_s_role(h: Harness) -> None:
    mixed = [WEBSITE, patrol(1)[0]]
    anonymous = await h.post("/reports/batch", mixed, None)
    assert anonymous.status_code == 401
    assert anonymous.json()["detail"][0]["loc"] == ["header", "Authorization"]
    assert anonymous.headers["www-authenticate"] == "Bearer"
    hotline = await h.post("/reports/batch", mixed, "hotline")
    assert hotline.status_code == 403
    assert [p["loc"] for p in hotline.json()["detail"]] == [["body", 1, "channel"]]

    citizens = await h.post("/reports/batch", [WEBSITE, WEBSITE], None)
    assert citizens.status_code == 202, citizens.text
    for answer in citizens.json()["accepted"]:
        assert answer["state"] == "reported"
        assert answer["follow_token"]


async def test_a_retried_batch_makes_the_same_cases(h: Harness) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = await h.post("/reports/batch", patrol(2), "supervisor", **key)
    assert first.status_code == 202, first.text
    again = await h.post("/reports/batch", patrol(2), "supervisor", **key)
    assert again.json() == first.json()

    # The retry derives the same case ids, whose heads remember the answers (the claims
    # made them): the same events, the same case numbers.
    heads = await h.db["case_heads"].count_documents({"_id": {"$in": _ids(first.json())}})
    assert heads == 2

    other = await h.post("/reports/batch", patrol(3), "supervisor", **key)
    assert other.status_code == 422
    assert other.json()["detail"][0]["type"] == "idempotency_key_reused"


def _ids(answer: dict[str, Any]) -> list[str]:
    return [a["case_id"] for a in answer["accepted"]]


async def test_a_report_near_an_open_case_is_merged_into_it(h: Harness) -> None:
    first = (await h.post("/reports", WEBSITE, None)).json()
    await h.project(first["case_id"], 1)
    elsewhere = WEBSITE | {"point": {"lon": 116.4005, "lat": 39.9204}}
    near = WEBSITE | {"point": {"lon": 116.4076, "lat": 39.9205}}  # ≈ 9 m away
    response = await h.post("/reports/batch", [elsewhere, near], None)
    assert response.status_code == 202, response.text
    apart, merged = response.json()["accepted"]
    assert apart["state"] == "reported"
    assert merged["state"] == "merged"
    assert merged["merged_into"] == first["case_id"]
