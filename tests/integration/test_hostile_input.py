"""Hostile input by hand, on the served apps (`live_apps`): XML entities on Open311, text no
encoder takes, bodies that are not UTF-8, webhook URLs that do not parse, follow tokens that
are not ASCII. Each was a 500, or could have changed something; each is refused, by field."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from gridloop.auth import Role
from tests.conftest import Servers
from tests.integration.live_apps import Live, running


@pytest.fixture(scope="module")
def live(servers: Servers) -> Iterator[Live]:
    with running(servers) as served:
        yield served


XML = "application/xml"
LAUGHS = (
    '<?xml version="1.0"?><!DOCTYPE request [<!ENTITY a "aaaaaaaaaa">'
    '<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;&a;&a;"><!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;&b;&b;">'
    "]><request><service_code>event-0102</service_code><description>&c;</description>"
    "<lat>39.9205</lat><long>116.4025</long><api_key>{key}</api_key></request>"
)
EXTERNAL = (
    '<?xml version="1.0"?><!DOCTYPE request [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
    "<request><service_code>event-0102</service_code><description>&x;</description>"
    "<lat>39.9205</lat><long>116.4025</long><api_key>{key}</api_key></request>"
)
PLAIN = (
    "<request><service_code>event-0102</service_code><description>垃圾</description>"
    "<lat>39.9205</lat><long>116.4025</long><api_key>{key}</api_key></request>"
)


def test_open311_xml_entities_are_refused_and_change_nothing(live: Live) -> None:
    post = f"{live.urls['intake']}/open311/v2/requests.xml"
    key = live.tokens[Role.public]
    before = live.reports()
    plain = live.http.post(post, data=PLAIN.format(key=key).encode(), headers={"content-type": XML})
    assert plain.status_code == 200, plain.text
    assert live.reports() > before  # the same request without entities is published
    before = live.reports()
    for evil in (LAUGHS, EXTERNAL):
        answer = live.http.post(post, data=evil.format(key=key), headers={"content-type": XML})
        assert answer.status_code == 400, answer.text
        assert "<error><code>400</code><description>request: not acceptable XML" in answer.text
    assert live.reports() == before


def _report(live: Live, raw: bytes) -> requests.Response:
    headers = {
        "content-type": "application/json",
        "authorization": f"Bearer {live.tokens[Role.hotline]}",
    }
    return live.http.post(f"{live.urls['intake']}/reports", data=raw, headers=headers)


@pytest.mark.parametrize(
    "description", [rb'"\ud800 lone surrogate"', rb'"NUL \u0000 inside"', rb'"  \n "']
)
def test_reports_with_unusable_text_are_refused_by_field(live: Live, description: bytes) -> None:
    body = (
        b'{"channel": "hotline", "kind": "event", "class_code": "0102", '
        b'"point": {"lon": 116.4025, "lat": 39.9205}, "reporter": {"phone": "13800000000"}, '
        b'"description": ' + description + b"}"
    )
    answer = _report(live, body)
    assert answer.status_code == 422, answer.text
    assert [d["loc"] for d in answer.json()["detail"]] == [["body", "description"]]


def test_a_body_that_is_not_utf8_is_refused_in_the_one_shape(live: Live) -> None:
    answer = _report(live, b'{"description": "\xff\xfe"}')
    assert answer.status_code == 400
    assert answer.json()["detail"][0]["loc"] == ["body"]


@pytest.mark.parametrize(
    "url", ["http://[::1", "http://water.example:99999/", f"https://{'a' * 64}.example/"]
)
def test_webhook_urls_that_do_not_parse_are_refused_not_a_500(live: Live, url: str) -> None:
    answer = live.http.put(
        f"{live.urls['notify']}/departments/WATER/webhook",
        json={"url": url},
        headers={"authorization": f"Bearer {live.tokens[Role.admin]}"},
    )
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["body", "url"]


def test_a_follow_token_that_is_not_ascii_is_refused_not_a_500(live: Live) -> None:
    # Found by the fuzzer: hmac.compare_digest raised TypeError on non-ASCII text.
    answer = live.http.get(f"{live.urls['intake']}/cases/{live.cases[0]}/public?token=glf_é")
    assert answer.status_code == 422, answer.text
    assert answer.json()["detail"][0]["loc"] == ["query", "token"]
