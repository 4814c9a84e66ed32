"""What follows one webhook attempt, decided without a server: delivered, retried on the
schedule, exhausted, gone or refused; and the endpoint's circuit breaker, closed → open →
half-open → closed."""

from __future__ import annotations

import pytest

from services.notify.core import Answer, Breaker, Next, Result, RetrySchedule, next_step

SCHEDULE = RetrySchedule.parse("0,5,300", jitter=0)


# --- what follows an attempt ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "attempts", "expected"),
    [
        (Answer(status=204), 1, Next("delivered")),
        (Answer(status=204), 3, Next("delivered")),  # the last try may still succeed
        (Answer(status=500), 1, Next("failed", 5)),
        (Answer(status=500), 2, Next("failed", 300)),
        (Answer(status=500), 3, Next("exhausted")),
        (Answer(status=429, retry_after=60), 1, Next("failed", 60)),  # a floor
        (Answer(status=302), 1, Next("failed", 5)),  # a redirect is not followed
        (Answer(error="ConnectTimeout: timed out"), 2, Next("failed", 300)),
        (Answer(error="ConnectError: refused"), 3, Next("exhausted")),
        (Answer(status=410), 1, Next("gone")),  # never retried
        (Answer(refused="10.0.0.7 is a private address"), 1, Next("refused")),
    ],
)
def test_what_follows_an_attempt(answer: Answer, attempts: int, expected: Next) -> None:
    assert next_step(answer, attempts, SCHEDULE) == expected


def test_a_refusal_is_logged_as_such_and_an_answer_as_no_problem() -> None:
    assert Answer(refused="the host does not resolve").problem == (
        "refused: the host does not resolve"
    )
    assert Answer(error="ReadTimeout: ").problem == "ReadTimeout: "
    assert Answer(status=503).problem is None


# --- the circuit breaker ---------------------------------------------------------------------


def tripped_at(now: float) -> Breaker:
    breaker = Breaker(threshold=3, cooldown=30)
    for result in ("failed", "failed", "exhausted"):  # an exhausted delivery failed too
        breaker = breaker.after(result, now)
    return breaker


def test_it_stays_closed_below_the_threshold() -> None:
    breaker = Breaker(threshold=3, cooldown=30).after("failed", 10).after("failed", 11)
    assert (breaker.failures, breaker.tripped) == (2, False)
    assert breaker.admits(11) and breaker.limit(4) == 4


def test_it_opens_at_the_threshold_for_the_cooldown_then_lets_one_probe_through() -> None:
    breaker = tripped_at(100)
    assert breaker.tripped
    assert not breaker.admits(100) and not breaker.admits(129.9)
    assert breaker.admits(130)  # half-open
    assert breaker.limit(4) == 1  # one attempt at a time


def test_a_failed_probe_opens_it_again_and_a_delivery_closes_it() -> None:
    again = tripped_at(100).after("failed", 131)
    assert (again.failures, again.open_until) == (4, 161)
    assert not again.admits(150)
    closed = again.after("delivered", 162)
    assert (closed.failures, closed.tripped) == (0, False)
    assert closed.admits(162) and closed.limit(4) == 4


@pytest.mark.parametrize("result", ["gone", "refused"])
def test_a_gone_endpoint_or_a_refused_address_leaves_it_as_it_was(result: Result) -> None:
    for breaker in (Breaker(3, 30), Breaker(3, 30).after("failed", 1), tripped_at(100)):
        assert breaker.after(result, 200) == breaker
