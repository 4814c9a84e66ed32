"""The intake operator's knowledge base (知识库) on the case page: a search box, the entries
intake's API offers (`GET /knowledge`, with the person's own authority: entries outside
their valid dates are never offered), and beside each an "answer directly" (直接答复) button
that posts the case's `answer` action (`core.call` → intake's `POST /cases/{id}/answer`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from gridloop.cases.record import CaseRecord
from gridloop.lifecycle import State
from gridloop.people import Session
from schemas.events import Channel
from services.console.kit import ask

SHOWN = 5  # entries shown for one search


@dataclass(frozen=True)
class Found:
    """What the knowledge section shows: the question asked, the entries, or why none."""

    q: str = ""
    hits: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None  # "unavailable" when intake did not answer


def answerable(case: CaseRecord) -> bool:
    """A resident's report still as it came in: a consultation may be answered directly."""
    return case.state is State.reported and case.channel is not Channel.supervisor


async def search(intake_url: str, found: Session, q: str) -> Found:
    """Intake's answer to `q`, asked with the person's session (`kit.ask`)."""
    if not q.strip():
        return Found(q)
    params: dict[str, str | int] = {"q": q[:200], "limit": SHOWN}
    answer = await ask(found, f"{intake_url}/knowledge", "GET", params=params)
    if answer is None or answer.status_code != 200:
        return Found(q, error="unavailable")
    return Found(q, answer.json())
