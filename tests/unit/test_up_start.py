"""What `gridloop up` decides before and while it starts (system/up.py): a port in use is
refused before anything starts, naming the variable to change; the demo pack's webhooks
follow the desk's port; a signal during start-up is recorded, never raised half-way."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import pytest

from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK, Settings
from gridloop.embedded import Cancelled, free_port, port_free
from system.up import Stopping, city_pack_for, port_problem


def test_a_port_in_use_is_named_with_its_variable() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert not port_free("127.0.0.1", port)
        settings = Settings(desk_port=port, intake_port=free_port())
        problem = port_problem(settings, ("intake", "desk"))
    assert problem is not None
    assert f"port {port} (desk) is already in use" in problem
    assert "GRIDLOOP_DESK_PORT" in problem
    assert port_problem(settings, ("intake", "desk")) is None  # free again


def test_one_port_given_to_two_services_is_refused() -> None:
    port = free_port()
    problem = port_problem(Settings(intake_port=port, notify_port=port), ("intake", "notify"))
    assert problem is not None
    assert "GRIDLOOP_INTAKE_PORT and GRIDLOOP_NOTIFY_PORT" in problem


def test_the_demo_pack_s_webhooks_go_to_the_desk_s_port(tmp_path: Path) -> None:
    port = free_port()
    pack_dir = city_pack_for(Settings(desk_port=port), tmp_path)
    pack = load_city_pack(pack_dir)
    urls = {str(d.webhook.url) for d in pack.departments.values() if d.webhook}
    assert len(urls) == len(pack.departments) > 0
    assert all(url.startswith(f"http://127.0.0.1:{port}/hooks/") for url in urls), urls
    # Same secrets as the demo pack: the desk verifies with them.
    demo = load_city_pack(DEMO_CITY_PACK)
    for code, dept in pack.departments.items():
        hook, original = dept.webhook, demo.departments[code].webhook
        assert hook is not None and original is not None and hook.secret == original.secret


def test_another_pack_is_used_as_it_is(tmp_path: Path) -> None:
    other = tmp_path / "mine"
    other.mkdir()
    assert city_pack_for(Settings(city_pack=other), tmp_path / "data") == other.resolve()


def test_a_signal_during_start_up_is_recorded_then_acted_on() -> None:
    before = signal.getsignal(signal.SIGTERM)
    with Stopping() as stop:
        stop.check()  # nothing yet
        os.kill(os.getpid(), signal.SIGTERM)  # recorded by the handler, not raised
        assert stop.requested()
        with pytest.raises(Cancelled, match="SIGTERM"):
            stop.check()
    assert signal.getsignal(signal.SIGTERM) == before
