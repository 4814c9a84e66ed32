"""Third-party Open311 clients from PyPI, used unchanged, against the running system over
real HTTP: civicbot (JSON; lists services, posts a request, reads it back) and georeport
(XML; reads the same back through its own XML parsing)."""

from __future__ import annotations

import asyncio
from typing import Any

from civicbot import Endpoint, HttpError, Open311Client
from civicbot.http import HttpTransport, RateLimiter
from georeport import GeoReport

from gridloop.auth import Role
from tests.e2e.conftest import Running
from tests.helpers import eventually


async def test_civicbot_lists_posts_and_reads_back(running: Running) -> None:
    district = running.pack.city.district.code
    api_key = await running.token(Role.public, "open311-civicbot")
    endpoint = Endpoint(
        id="gridloop-e2e",
        name="gridloop demo district",
        base_url=running.system.url("intake") + "/open311/v2",
        write=True,
    )
    # The library's own transport, without its politeness delay between calls.
    transport = HttpTransport(timeout=10, rate_limiter=RateLimiter(min_interval=0))
    client = Open311Client(endpoint, transport, jurisdiction_id=district)

    services: list[dict[str, Any]] = await asyncio.to_thread(client.list_services)
    by_code = {s["service_code"]: s for s in services}
    assert by_code["event-0102"]["service_name"] == "暴露垃圾 exposed garbage"
    assert by_code["component-0101"]["group"] == "公用设施 public utilities"

    prepared = await asyncio.to_thread(
        lambda: client.create_request(
            "component-0118",
            dry_run=False,
            confirm="SEND",
            api_key=api_key,
            validate_remote=True,  # checks the code against the live service list
            lat=39.9203,
            lng=116.4012,
            description="路灯不亮 the street lamp is out",
            first_name="Wei",
            last_name="Zhang",
            phone="13700000000",
        )
    )
    assert prepared.dry_run is False
    [answer] = prepared.response
    request_id = answer["service_request_id"]

    async def read_back() -> dict[str, Any] | None:
        try:
            found: dict[str, Any] | None = await asyncio.to_thread(client.get_request, request_id)
        except HttpError as exc:  # the projection lags the log by a few milliseconds
            assert exc.status == 404, exc
            return None
        return found

    request = await eventually(read_back, what=f"request {request_id}")
    assert request["service_code"] == "component-0118"
    assert request["status"] == "open"
    assert request["description"] == "路灯不亮 the street lamp is out"
    assert "13700000000" not in str(request) and "Zhang" not in str(request)
    listed = await asyncio.to_thread(
        lambda: client.list_requests(service_request_ids=[request_id], status="open")
    )
    assert [r["service_request_id"] for r in listed] == [request_id]
    token = await asyncio.to_thread(client.get_token, request_id)
    assert token == [{"service_request_id": request_id, "token": request_id}]

    # The same request read back through XML by another library's parser.
    georeport = GeoReport(
        endpoint.base_url, jurisdiction=district, api_key=api_key, output_format="xml"
    )
    services_xml = await asyncio.to_thread(georeport.get_service_list)
    assert [s["service_code"] for s in services_xml] == [s["service_code"] for s in services]
    assert services_xml[0]["metadata"] == "false"
    one = await asyncio.to_thread(georeport.get_service_request, request_id)
    assert one["service_request_id"] == request_id
    assert one["service_code"] == "component-0118"
    assert one["status"] == "open"
    assert float(one["lat"]) == 39.9203 and float(one["long"]) == 116.4012
    definition = await asyncio.to_thread(georeport.get_service_definition, "component-0118")
    assert definition["service_code"] == "component-0118"
