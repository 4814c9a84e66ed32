"""Open311 GeoReport v2 on intake, with the real broker and database: JSON and XML, POST
then GET back, filters, errors in the Open311 shape, api_key, jurisdiction_id."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import AsyncIterator

import httpx
import pytest

from gridloop.config import DEMO_CITY_PACK
from services.intake.open311 import REQUEST_FIELDS, SERVICE_FIELDS
from tests.conftest import Servers
from tests.integration.test_intake_api import Harness, _harness

V2 = "/open311/v2"
DISTRICT = "110101"
GARBAGE = {
    "service_code": "event-0102",
    "lat": "39.9205",
    "long": "116.4035",
    "description": "rubbish at the lane entrance",
    "first_name": "娜",
    "last_name": "李",
    "phone": "13900000000",
    "email": "li.na@example.org",
}
PARKING = GARBAGE | {"service_code": "event-0505", "lat": "39.9205", "long": "116.4075"}


@pytest.fixture
async def h(servers: Servers) -> AsyncIterator[Harness]:
    async for harness in _harness(servers, DEMO_CITY_PACK):
        yield harness


async def post(h: Harness, fmt: str, form: dict[str, str], who: str | None = "citizen",
               **headers: str) -> httpx.Response:  # fmt: skip
    data = form | ({"api_key": h.tokens[who]} if who else {})
    return await h.http.post(f"{V2}/requests.{fmt}", data=data, headers=headers)


async def posted_id(h: Harness, form: dict[str, str], events: int = 1) -> str:
    response = await post(h, "json", form)
    assert response.status_code == 200, response.text
    [answer] = response.json()
    assert set(answer) == {"service_request_id", "service_notice", "account_id"}
    await h.project(answer["service_request_id"], events)
    request_id: str = answer["service_request_id"]
    return request_id


def xml(response: httpx.Response) -> ET.Element:
    assert response.headers["content-type"].startswith("text/xml"), response.text
    return ET.fromstring(response.content)


def json_error(response: httpx.Response, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    [error] = response.json()
    assert set(error) == {"code", "description"}
    assert error["code"] == status and error["description"].startswith(f"{field}: ")


def xml_error(response: httpx.Response, status: int, field: str) -> None:
    assert response.status_code == status, response.text
    root = xml(response)
    assert root.tag == "errors" and [e.tag for e in root] == ["error"]
    assert root.findtext("error/code") == str(status)
    assert (root.findtext("error/description") or "").startswith(f"{field}: ")


# --- discovery and services -----------------------------------------------------------------


async def test_services_in_json_and_xml(h: Harness) -> None:
    listed = (await h.http.get(f"{V2}/services.json")).json()
    assert len(listed) == len(h.intake.pack.classes)
    assert all(tuple(s) == SERVICE_FIELDS for s in listed)
    assert {s["group"] for s in listed} >= {"公用设施 public utilities", "街面秩序 street order"}

    root = xml(await h.http.get(f"{V2}/services.xml", params={"jurisdiction_id": DISTRICT}))
    assert root.tag == "services"
    assert [s.findtext("service_code") for s in root] == [s["service_code"] for s in listed]
    assert [c.tag for c in root[0]] == list(SERVICE_FIELDS)

    definition = (await h.http.get(f"{V2}/services/component-0101.json")).json()
    assert definition == {"service_code": "component-0101", "attributes": []}
    root = xml(await h.http.get(f"{V2}/services/event-0505.xml"))
    assert root.tag == "service_definition" and root.findtext("service_code") == "event-0505"

    json_error(await h.http.get(f"{V2}/services/event-9999.json"), 404, "service_code")
    xml_error(await h.http.get(f"{V2}/services/event-9999.xml"), 404, "service_code")
    json_error(await h.http.get(f"{V2}/services.yaml"), 404, "format")


async def test_discovery_names_this_endpoint(h: Harness) -> None:
    found = (await h.http.get(f"{V2}/discovery.json")).json()
    [endpoint] = found["endpoints"]
    assert endpoint["url"] == "http://intake/open311/v2"
    assert endpoint["formats"] == ["application/json", "text/xml"]
    root = xml(await h.http.get(f"{V2}/discovery.xml"))
    assert (
        root.findtext("endpoints/endpoint/specification") == "http://wiki.open311.org/GeoReport_v2"
    )


async def test_unknown_jurisdiction_is_404_everywhere(h: Harness) -> None:
    other = {"jurisdiction_id": "310101"}
    json_error(await h.http.get(f"{V2}/services.json", params=other), 404, "jurisdiction_id")
    xml_error(await h.http.get(f"{V2}/requests.xml", params=other), 404, "jurisdiction_id")
    json_error(await post(h, "json", GARBAGE | other), 404, "jurisdiction_id")
    assert (await post(h, "json", GARBAGE | {"jurisdiction_id": DISTRICT})).status_code == 200


# --- POST then GET back ----------------------------------------------------------------------


async def test_post_then_read_back_in_json_and_xml(h: Harness) -> None:
    request_id = await posted_id(h, GARBAGE)

    response = await h.http.get(f"{V2}/requests/{request_id}.json")
    assert response.status_code == 200, response.text
    [request] = response.json()
    assert tuple(request) == REQUEST_FIELDS
    assert request["service_request_id"] == request_id
    assert request["status"] == "open"
    assert request["service_code"] == "event-0102"
    assert request["description"] == "rubbish at the lane entrance"
    assert (request["lat"], request["long"]) == (39.9205, 116.4035)
    assert request["requested_datetime"].endswith("+08:00")

    root = xml(await h.http.get(f"{V2}/requests/{request_id}.xml"))
    assert root.tag == "service_requests" and [r.tag for r in root] == ["request"]
    assert [c.tag for c in root[0]] == list(REQUEST_FIELDS)
    assert root[0].findtext("service_request_id") == request_id

    # Nobody's name, phone or email leaves through Open311 ...
    for fmt in ("json", "xml"):
        text = (await h.http.get(f"{V2}/requests.{fmt}")).text
        text += (await h.http.get(f"{V2}/requests/{request_id}.{fmt}")).text
        for personal in ("13900000000", "李", "娜", "example.org"):
            assert personal not in text
    # ... while the supervision centre sees the caller (and no email: it is never kept).
    case = (await h.get(f"/cases/{request_id}", "centre")).json()
    assert case["reporter"]["name"] == "娜 李" and case["reporter"]["phone"] == "13900000000"
    assert "example.org" not in str(case)
    assert case["channel"] == "website"

    token = (await h.http.get(f"{V2}/tokens/{request_id}.json")).json()
    assert token == [{"service_request_id": request_id, "token": request_id}]
    assert (await h.http.get(f"{V2}/tokens/{request_id}")).json() == token
    xml_error(await h.http.get(f"{V2}/tokens/nope.xml"), 404, "token")
    json_error(await h.http.get(f"{V2}/requests/nope.json"), 404, "service_request_id")


async def test_post_in_xml_answers_in_xml(h: Harness) -> None:
    root = xml(await post(h, "xml", PARKING))
    assert root.tag == "service_requests"
    assert [c.tag for c in root[0]] == ["service_request_id", "service_notice", "account_id"]
    request_id = root.findtext("request/service_request_id")
    assert request_id
    await h.project(request_id, 1)
    found = xml(await h.http.get(f"{V2}/requests/{request_id}.xml"))
    assert found.findtext("request/service_code") == "event-0505"


async def test_xml_bodies_are_parsed_safely(h: Harness) -> None:
    body = (
        "<request><service_code>event-0505</service_code><lat>39.9205</lat>"
        f"<long>116.4075</long><api_key>{h.tokens['citizen']}</api_key></request>"
    )
    headers = {"content-type": "application/xml"}
    response = await h.http.post(f"{V2}/requests.xml", content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert xml(response).findtext("request/service_request_id")
    laughs = (
        '<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaaaaaaaaaaaaaa">'
        '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;">]>'
        f"<request><description>&b;</description><api_key>{h.tokens['citizen']}</api_key>"
        "</request>"
    )
    refused = await h.http.post(f"{V2}/requests.xml", content=laughs, headers=headers)
    xml_error(refused, 400, "request")


async def test_a_duplicate_request_is_merged(h: Harness) -> None:
    first = await posted_id(h, PARKING)
    response = await post(h, "json", PARKING | {"lat": "39.92051"})
    [answer] = response.json()
    assert first in answer["service_notice"]
    await h.project(answer["service_request_id"], 2)
    [merged] = (await h.http.get(f"{V2}/requests/{answer['service_request_id']}.json")).json()
    assert merged["status"] == "closed"
    assert merged["status_notes"] == f"a duplicate of request {first}"


# --- api_key, errors, idempotency ------------------------------------------------------------


async def test_api_key_is_required_and_checked(h: Harness) -> None:
    json_error(await post(h, "json", GARBAGE, who=None), 400, "api_key")
    xml_error(await post(h, "xml", GARBAGE | {"api_key": "glk_forged"}, who=None), 403, "api_key")
    json_error(await post(h, "json", GARBAGE, who="supervisor"), 403, "api_key")
    json_error(await post(h, "json", GARBAGE, who="water"), 403, "api_key")
    assert (await post(h, "json", GARBAGE, who="hotline")).status_code == 200


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"service_code": ""}, "service_code"),
        ({"service_code": "event-4242"}, "service_code"),
        ({"lat": "", "long": "", "address_string": "东四北大街 12号"}, "lat"),
        ({"long": "east"}, "long"),
        ({"lat": "10.0", "long": "10.0"}, "lat"),  # outside every grid of the city
        ({"media_url": "http://intake/media/" + "0" * 24}, "media_url"),  # never uploaded
    ],
)
async def test_bad_requests_name_the_field(h: Harness, change: dict[str, str], field: str) -> None:
    json_error(await post(h, "json", GARBAGE | change), 400, field)
    xml_error(await post(h, "xml", GARBAGE | change), 400, field)


async def test_a_retry_with_the_same_key_answers_the_first_request(h: Harness) -> None:
    first = await post(h, "json", GARBAGE, **{"Idempotency-Key": "o311-1"})
    again = await post(h, "json", GARBAGE, **{"Idempotency-Key": "o311-1"})
    assert first.status_code == again.status_code == 200
    assert first.json() == again.json()
    other = await post(h, "json", PARKING, **{"Idempotency-Key": "o311-1"})
    json_error(other, 400, "Idempotency-Key")
    await h.project(first.json()[0]["service_request_id"], 1)
    assert len((await h.http.get(f"{V2}/requests.json")).json()) == 1


# --- GET requests: filters -------------------------------------------------------------------


async def test_filters(h: Harness) -> None:
    garbage = await posted_id(h, GARBAGE)
    parking = await posted_id(h, PARKING)

    async def ids(fmt: str = "json", **params: str) -> list[str]:
        response = await h.http.get(f"{V2}/requests.{fmt}", params=params)
        assert response.status_code == 200, response.text
        if fmt == "xml":
            return [r.findtext("service_request_id") or "" for r in xml(response)]
        return [r["service_request_id"] for r in response.json()]

    assert await ids() == [parking, garbage]  # newest first
    assert await ids("xml") == [parking, garbage]
    assert await ids(service_code="event-0102") == [garbage]
    assert await ids(service_code="event-0102,event-0505") == [parking, garbage]
    assert await ids(service_request_id=f"{garbage},nope") == [garbage]
    assert await ids(service_request_id=garbage, service_code="event-0505") == [garbage]
    assert await ids(status="open") == [parking, garbage]
    assert await ids(status="closed") == []
    assert await ids(start_date="2099-01-01T00:00:00Z") == []
    assert await ids(end_date="2000-01-01T00:00:00Z") == []
    assert await ids(start_date="2020-01-01T00:00:00+08:00", page_size="1") == [parking]

    # A voided report is closed, with the reason as its note.
    voided = await h.post(f"/cases/{garbage}/void", {"reason": "nothing there"}, "centre")
    assert voided.status_code == 202, voided.text
    await h.project(garbage, 2)
    assert await ids(status="closed") == [garbage]
    assert await ids(status="open", service_code="event-0102") == []
    [request] = (await h.http.get(f"{V2}/requests/{garbage}.json")).json()
    assert request["status_notes"] == "voided: nothing there"

    xml_error(await h.http.get(f"{V2}/requests.xml", params={"status": "new"}), 400, "status")
    response = await h.http.get(f"{V2}/requests.json", params={"start_date": "today"})
    json_error(response, 400, "start_date")
    response = await h.http.get(f"{V2}/requests.json", params={"page_size": "0"})
    json_error(response, 400, "page_size")
