"""Intake over HTTP, as the grid service reports a visit's finding (`POST /reports`): no
service imports another; the grid service asks intake's public API like any client.

The report is made with the grid person's own credential (their bearer token, passed on),
so intake decides with their authority and its audit names them, and under an
`Idempotency-Key` derived from the visit and the finding: a retry — the handheld's, or the
grid service's own after a failure between intake's answer and the finding's record —
finds the same case instead of making a second one.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from gridloop.refusal import Refused, Why

_WHY = {400: Why.malformed, 401: Why.unauthenticated, 403: Why.forbidden, 404: Why.not_found}
_WHY |= {409: Why.conflict, 413: Why.too_large, 422: Why.invalid}


class Reporter(Protocol):
    async def report(self, body: dict[str, Any], token: str, key: str) -> str:
        """The id of the case intake opened for `body` (once per `key`)."""
        ...


class IntakeClient:
    def __init__(
        self,
        base_url: str,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.base_url, self.timeout = base_url.rstrip("/"), timeout
        self.transport = transport  # None: the network (tests hand intake's app in)

    async def report(self, body: dict[str, Any], token: str, key: str) -> str:
        headers = {"Authorization": f"Bearer {token}", "Idempotency-Key": key}
        try:
            async with httpx.AsyncClient(timeout=self.timeout, transport=self.transport) as client:
                answer = await client.post(f"{self.base_url}/reports", json=body, headers=headers)
        except httpx.HTTPError as exc:
            raise _unavailable(f"intake did not answer: {type(exc).__name__}") from None
        if answer.status_code == 202:
            case_id: str = answer.json()["case_id"]
            return case_id
        raise passed_on(answer)


def passed_on(answer: httpx.Response) -> Refused:
    """Intake's refusal passed on as it said it (its field, reason and code); anything
    else (5xx) as a 503: the finding is not reported yet, a retry with the same key is safe."""
    why = _WHY.get(answer.status_code)
    if why is None:
        return _unavailable(f"intake answered {answer.status_code}")
    try:
        [problem, *_] = answer.json()["detail"]
        loc = tuple(str(p) for p in problem["loc"])
        return Refused(why, loc, f"intake: {problem['msg']}", str(problem["type"]))
    except (ValueError, KeyError, TypeError):
        return Refused(why, ("body",), f"intake refused the report ({answer.status_code})")


def _unavailable(reason: str) -> Refused:
    return Refused(Why.unavailable, ("intake",), reason, "intake_unavailable")
