"""The domain clock: real time unless a simulation compresses it."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from schemas import clock
from schemas.clock import Compression, _from_environment

START = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


def test_compressed_time_runs_speed_times_faster_from_its_start() -> None:
    ten_seconds_ago = time.time() - 10
    now = Compression(START, ten_seconds_ago, speed=60.0).now()
    assert START + timedelta(minutes=10) <= now < START + timedelta(minutes=20)


def test_the_environment_carries_a_compression_to_another_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    compression = clock.compress(datetime.fromisoformat("2026-11-02T08:00+08:00"), 240.0)
    for name, value in compression.environment().items():
        monkeypatch.setenv(name, value)
    assert _from_environment() == compression


def test_no_simulation_is_the_real_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRIDLOOP_SIM_START", raising=False)
    assert _from_environment() is None
    assert abs((clock.now() - datetime.now(UTC)).total_seconds()) < 60
    assert clock.speed() == 1.0


@pytest.mark.parametrize(
    ("start", "speed", "message"),
    [
        ("2026-11-02T08:00", "60", "time zone"),
        ("2026-11-02T08:00+08:00", "0", "positive"),
        ("2026-11-02T08:00+08:00", "-3", "positive"),
    ],
)
def test_a_bad_simulation_setting_is_refused_with_its_reason(
    monkeypatch: pytest.MonkeyPatch, start: str, speed: str, message: str
) -> None:
    monkeypatch.setenv("GRIDLOOP_SIM_START", start)
    monkeypatch.setenv("GRIDLOOP_SIM_SPEED", speed)
    monkeypatch.setenv("GRIDLOOP_SIM_EPOCH", "0")
    with pytest.raises(ValueError, match=message):
        _from_environment()
