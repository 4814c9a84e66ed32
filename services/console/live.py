"""The open pages' news: a page subscribes with what it shows (a department's cases, or
every case), and hears the id of each case that changed — once the projection shows the
change, so the page it then fetches shows it too."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field

from gridloop.cases.reader import CaseReader
from gridloop.cases.record import CaseRecord
from schemas.envelope import Envelope

CATCH_UP_TRIES = 30  # × 0.1 s: what a page waits for after the person's own action
LATE_FOR = 120.0  # s: news the projection shows later still reaches the pages, this long
LATE_EVERY = 0.5  # s between looks at news the projection did not show in time
LATE_MAX = 2_000  # such news looked at, the newest: one read of their cases a look
RECENT = 1_000  # news told lately, for a page that began its reads before it listened
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
        self._behind: dict[str, tuple[str, float]] = {}  # event id → case id, given up at
        self._late: asyncio.Task[None] | None = None
        self._recent: deque[tuple[float, CaseRecord]] = deque(maxlen=RECENT)  # told at

    @contextlib.asynccontextmanager
    async def follow(
        self, department: str | None, since: float | None = None
    ) -> AsyncIterator[asyncio.Queue[str]]:
        """A page's news from now; `since` (wall clock): when its reads began, so that what
        was told between then and now reaches it too."""
        page = Page(department)
        self._pages.add(page)
        if since is not None:
            for told_at, case in self._recent:
                if told_at >= since and page.concerned(case) and not page.news.full():
                    page.news.put_nowait(case.case_id)
        self._look()
        try:
            yield page.news
        finally:
            self._pages.discard(page)

    async def on_events(self, envs: Sequence[Envelope]) -> None:
        """A fetch of the log: tell each page the cases it shows that changed, once the
        projection shows the change. What it has not shown after the catch-up tries (a
        projection behind, under load) is told when it does (`_when_shown`): a page fetched
        before would otherwise keep the old case until the next news, if any came. With no
        page open, the news is kept unread for the next page to open."""
        wanted = {e.id: case_id for e in envs if (case_id := getattr(e.data, "case_id", None))}
        if not self._pages:
            self._keep(wanted)
            return
        cases = await projected(self.reader, wanted)
        self._tell(cases)
        self._keep(_unshown(wanted, cases))

    def _keep(self, behind: dict[str, str]) -> None:
        """News to tell once the projection shows it (the newest `LATE_MAX`)."""
        until = asyncio.get_running_loop().time() + LATE_FOR
        self._behind.update((event, (case_id, until)) for event, case_id in behind.items())
        for event in list(self._behind)[: max(0, len(self._behind) - LATE_MAX)]:
            del self._behind[event]  # the oldest: their pages hear of them at the next news
        self._look()

    def _look(self) -> None:
        if self._behind and self._pages and (self._late is None or self._late.done()):
            self._late = asyncio.create_task(self._when_shown())

    async def _when_shown(self) -> None:
        """One look every `LATE_EVERY` at all the news not shown yet, whatever the load."""
        loop = asyncio.get_running_loop()
        while self._behind and self._pages:
            await asyncio.sleep(LATE_EVERY)
            behind = {event: case_id for event, (case_id, _) in self._behind.items()}
            cases = await self.reader.records(set(behind.values()))
            still = _unshown(behind, list(cases.values()))
            self._tell([case for case in cases.values() if case.case_id not in still.values()])
            # Kept: what is still not shown, and what came in during the read.
            now, looked = loop.time(), behind.keys() - still.keys()
            self._behind = {
                e: late for e, late in self._behind.items() if e not in looked and late[1] > now
            }

    def _tell(self, cases: Sequence[CaseRecord]) -> None:
        now = time.time()
        for case in cases:
            self._recent.append((now, case))
            for page in list(self._pages):
                if page.concerned(case) and not page.news.full():
                    page.news.put_nowait(case.case_id)


def _unshown(wanted: dict[str, str], cases: Sequence[CaseRecord]) -> dict[str, str]:
    """The news of `wanted` (event id → case id) the cases' timelines do not show yet."""
    shown = {entry.event_id for case in cases for entry in case.timeline}
    return {event: case_id for event, case_id in wanted.items() if event not in shown}


async def projected(reader: CaseReader, wanted: dict[str, str]) -> list[CaseRecord]:
    """The cases of `wanted` (event id → case id), once their timelines show those events,
    or as they are after a few tries (`Live` tells the rest when they show): what a page
    fetched next shows the events — after the person's own action, or news."""
    cases: dict[str, CaseRecord] = {}
    for _ in range(CATCH_UP_TRIES):
        cases = await reader.records(set(wanted.values()))
        if not _unshown(wanted, list(cases.values())):
            break
        await asyncio.sleep(0.1)
    return list(cases.values())
