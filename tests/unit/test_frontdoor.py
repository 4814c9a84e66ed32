"""The front door's route table (system/frontdoor): every public route of every service
reachable at one origin, overlapping paths told apart by method and literal segments, the
committed Caddyfile generated from the same table, and who the door says the caller is."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi import FastAPI

from gridloop.http import networks
from system.frontdoor.caddy import caddyfile
from system.frontdoor.main import DOOR_SOURCE, door_trust, source_usable
from system.frontdoor.proxy import request_headers
from system.frontdoor.table import API, PAGES, DoorRoute, RouteTable, apps, table

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def built() -> dict[str, FastAPI]:
    return apps()


@pytest.fixture(scope="module")
def routes(built: dict[str, FastAPI]) -> RouteTable:
    return table(built)


def test_the_committed_caddyfile_is_the_one_the_table_makes(routes: RouteTable) -> None:
    committed = (ROOT / "deploy" / "Caddyfile").read_text(encoding="utf-8")
    assert committed == caddyfile(routes), (
        "run: python -m system.frontdoor caddyfile > deploy/Caddyfile"
    )


def _at_door(service: str, path: str) -> str:
    pages = PAGES.get(service, ())
    return path if any(path.startswith(p) for p in pages) else API + path


@pytest.mark.parametrize("service", ["intake", "dispatch", "notify", "evaluation"])
def test_every_operation_of_every_api_is_served_at_the_door(
    built: dict[str, FastAPI], routes: RouteTable, service: str
) -> None:
    text = caddyfile(routes)
    for path, operations in built[service].openapi()["paths"].items():
        concrete = re.sub(r"\{[^}]+\}", "x1", path)
        for method in operations:
            found = routes.find(method.upper(), _at_door(service, concrete))
            assert found is not None, f"{method} {path}"
            if (service, method, path) == ("dispatch", "get", "/cases/{case_id}"):
                assert found.route.service == "intake"  # settled: PREFERRED
                continue
            assert found.route.service == service, f"{method} {path}"
            assert found.upstream == concrete
            assert found.route.pattern in text


def test_every_page_of_the_workbench_is_served_at_the_root(
    built: dict[str, FastAPI], routes: RouteTable
) -> None:
    # `/map` and a case's photos come from a router the console includes (FastAPI keeps
    # it as one route of its own): the door finds them too.
    pages = ("/", "/login", "/live", "/cases/c1", "/static/console.css", "/map", "/approvals")
    for path in (*pages, "/cases/c1/media/0123456789abcdef01234567"):
        found = routes.find("GET", path)
        assert found is not None and found.route.service == "console", path
        assert found.upstream == path
    found = routes.find("POST", "/cases/c1/file")
    assert found is not None and found.route.service == "console"


def test_paths_that_overlap_go_by_method_and_literal_segments(routes: RouteTable) -> None:
    expected = {
        ("POST", "/v1/cases/c1/file"): ("intake", "/cases/c1/file"),
        ("POST", "/v1/cases/c1/dispatch"): ("dispatch", "/cases/c1/dispatch"),
        ("GET", "/v1/cases/c1"): ("intake", "/cases/c1"),
        ("GET", "/v1/cases/c1/public"): ("intake", "/cases/c1/public"),
        ("POST", "/v1/reports"): ("intake", "/reports"),
        ("GET", "/open311/v2/discovery.json"): ("intake", "/open311/v2/discovery.json"),
        ("GET", "/screen"): ("evaluation", "/screen"),
        ("GET", "/screen/data"): ("evaluation", "/screen/data"),
        ("GET", "/v1/scores"): ("evaluation", "/scores"),
        ("GET", "/v1/deliveries"): ("notify", "/deliveries"),
        # The grid's people: the API under /v1, the lead's page of patrols at the root.
        ("GET", "/v1/grids/110101001001001/staff"): ("grid", "/grids/110101001001001/staff"),
        ("POST", "/v1/patrols/p1/track"): ("grid", "/patrols/p1/track"),
        ("GET", "/v1/patrols"): ("grid", "/patrols"),
        ("GET", "/patrols"): ("console", "/patrols"),
    }
    for (method, path), (service, upstream) in expected.items():
        found = routes.find(method, path)
        assert found is not None, path
        assert (found.route.service, found.upstream) == (service, upstream), path


def test_what_no_service_serves_is_not_routed(routes: RouteTable) -> None:
    assert routes.find("GET", "/v1/nowhere") is None
    assert routes.find("GET", "/reports") is None  # the API lives under /v1 at the door
    assert routes.find("GET", "/v2/reports") is None
    assert routes.find("GET", "/healthz") is None  # each service's own
    assert routes.find("GET", "/v1/openapi.json") is None


def test_a_known_path_with_another_method_goes_to_its_service_for_a_405(
    routes: RouteTable,
) -> None:
    found = routes.find("DELETE", "/v1/reports")
    assert found is not None and found.route.service == "intake"


def test_two_services_claiming_one_route_are_refused_unless_settled() -> None:
    one = DoorRoute("a", frozenset({"POST"}), "/v1/things/{id}", strip=API)
    other = DoorRoute("b", frozenset({"POST", "GET"}), "/v1/things/{thing}", strip=API)
    with pytest.raises(ValueError, match="claimed by a and b"):
        RouteTable([one, other])
    # Different methods on one path are no clash.
    getter = DoorRoute("b", frozenset({"GET"}), "/v1/things/{thing}", strip=API)
    found = RouteTable([one, getter]).find("GET", "/v1/things/7")
    assert found is not None and found.route.service == "b"


def test_a_literal_segment_wins_over_a_parameter() -> None:
    param = DoorRoute("a", frozenset({"GET"}), "/cases/{id}")
    literal = DoorRoute("b", frozenset({"GET"}), "/cases/search")
    for order in ([param, literal], [literal, param]):
        found = RouteTable(order).find("GET", "/cases/search")
        assert found is not None and found.route.service == "b"


def _scope(peer: str, *headers: tuple[bytes, bytes]) -> dict[str, object]:
    return {
        "client": (peer, 5000),
        "scheme": "http",
        "headers": [(b"host", b"door:8080"), *headers],
    }


def test_the_door_drops_a_caller_s_forwarded_for_and_says_the_caller() -> None:
    spoofed = _scope("203.0.113.7", (b"x-forwarded-for", b"10.9.9.9"), (b"connection", b"close"))
    sent = dict(request_headers(spoofed, networks("")))
    assert sent[b"x-forwarded-for"] == b"203.0.113.7"
    assert sent[b"x-forwarded-host"] == b"door:8080"
    assert b"connection" not in sent and b"host" not in sent


def test_the_door_believes_a_trusted_proxy_s_hop() -> None:
    via = _scope("10.0.0.5", (b"x-forwarded-for", b"1.1.1.1, 198.51.100.4"))
    sent = dict(request_headers(via, networks("10.0.0.0/8")))
    assert sent[b"x-forwarded-for"] == b"198.51.100.4"


def test_up_lets_the_services_alone_trust_the_door_s_address() -> None:
    services, door = door_trust({"GRIDLOOP_TRUSTED_PROXIES": "10.0.0.0/8"})
    if not source_usable():
        assert (services, door) == ({}, {})
        return
    assert services == {"GRIDLOOP_TRUSTED_PROXIES": f"10.0.0.0/8,{DOOR_SOURCE}/32"}
    # The door itself trusts what it was told: a caller from the door's address is no proxy.
    assert door == {"GRIDLOOP_DOOR_SOURCE": DOOR_SOURCE, "GRIDLOOP_TRUSTED_PROXIES": "10.0.0.0/8"}
