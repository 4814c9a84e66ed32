"""The open pages' news: a page subscribes with what it shows (a department's cases, or
every case), and hears the id of each case that changed — once the projection shows the
change, so the page it then fetches shows it too."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from gridloop.cases.reader import CaseReader
from gridloop.cases.record import CaseRecord
from schemas.envelope import Envelope

CATCH_UP_TRIES = 30  # × 0.1 s: a projection further behind is shown on the next news
BACKLOG = 100  # news a page may have unread; beyond, it is one refresh anyway


@dataclass(eq=False)
class Page:
    department: str | None  # None: every case (the centres)
    news: asyncio.Queue[str] = field(default_factory=lambda: asyncio.Queue(BACKLOG))

    def concerned(self, case: CaseRecord) -> bool:
        return self.department is None or case.held_by(self.department)


class Live:
    def __init__(self, reader: CaseReader) -> None:
        self.reader = reader
        self._pages: set[Page] = set()

    @contextlib.asynccontextmanager
    async def follow(self, department: str | None) -> AsyncIterator[asyncio.Queue[str]]:
        page = Page(department)
        self._pages.add(page)
        try:
            yield page.news
        finally:
            self._pages.discard(page)

    async def on_events(self, envs: Sequence[Envelope]) -> None:
        """A fetch of the log: tell each page the cases it shows that changed."""
        if not self._pages:
            return
        wanted = {e.id: case_id for e in envs if (case_id := getattr(e.data, "case_id", None))}
        for case in await projected(self.reader, wanted):
            for page in list(self._pages):
                if page.concerned(case) and not page.news.full():
                    page.news.put_nowait(case.case_id)


async def projected(reader: CaseReader, wanted: dict[str, str]) -> list[CaseRecord]:
    """The cases of `wanted` (event id → case id), once their timelines show those events,
    or as they are after a few tries (a projection further behind shows them next time):
    what a page fetched next shows the events — after the person's own action, or news."""
    cases: dict[str, CaseRecord] = {}
    for _ in range(CATCH_UP_TRIES):
        cases = await reader.records(set(wanted.values()))
        shown = {entry.event_id for case in cases.values() for entry in case.timeline}
        if shown.issuperset(wanted):
            break
        await asyncio.sleep(0.1)
    return list(cases.values())
