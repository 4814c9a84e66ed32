"""The console's live news (`services.console.live.Live`): a page hears a case changed once
the projection shows the change — also when the projection is behind by more than the
catch-up tries (under load), so a page fetched too early is not left with the old case."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import AsyncIterator

import pytest
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.audit import AuditTrail
from gridloop.cases.reader import CaseReader
from gridloop.mongo import Document
from services.console import live as live_module
from services.console.live import Live
from services.projections.main import project_many
from services.projections.store import CaseStore
from tests.conftest import Servers
from tests.samples import reported_to_dispatched


@pytest.fixture
async def db(servers: Servers) -> AsyncIterator[AsyncDatabase[Document]]:
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    yield mongo[f"test_{uuid.uuid4().hex[:12]}"]
    await mongo.close()


async def next_news(news: asyncio.Queue[str], within: float) -> str | None:
    try:
        return await asyncio.wait_for(news.get(), within)
    except TimeoutError:
        return None


async def test_news_the_projection_shows_late_still_reaches_the_page(
    db: AsyncDatabase[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(live_module, "CATCH_UP_TRIES", 2)  # 0.2 s: the projection is later
    store, trail = CaseStore(db), AuditTrail(db)
    live = Live(CaseReader(db))
    reported, filed, dispatched = reported_to_dispatched("case-late")
    await project_many(store, trail, [reported, filed])
    async with live.follow(None) as news:
        await live.on_events([dispatched])
        # Told at once as it stands (the projection has not shown the dispatch yet)…
        assert await next_news(news, 1) == "case-late"
        assert await next_news(news, 1.5) is None  # …and nothing while it does not show it
        await project_many(store, trail, [dispatched])
        # …then again once it does: the page fetched now shows the dispatch.
        assert await next_news(news, 5) == "case-late"
        assert await next_news(news, 1.5) is None  # once: the news is no longer behind
    assert not live._behind


async def test_a_case_shown_in_time_is_told_once(db: AsyncDatabase[Document]) -> None:
    store, trail = CaseStore(db), AuditTrail(db)
    live = Live(CaseReader(db))
    envs = reported_to_dispatched("case-now")
    await project_many(store, trail, envs)
    async with live.follow("ROADS") as roads, live.follow(None) as centre:
        await live.on_events(envs)
        assert await next_news(centre, 1) == "case-now"
        assert await next_news(centre, 1.5) is None
        assert roads.empty()  # not ROADS' case
    assert not live._behind


async def test_the_news_looked_at_later_are_the_newest_few(
    db: AsyncDatabase[Document], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Under a projection far behind, one read a look, of `LATE_MAX` news at most."""
    monkeypatch.setattr(live_module, "CATCH_UP_TRIES", 1)
    monkeypatch.setattr(live_module, "LATE_MAX", 3)
    live = Live(CaseReader(db))
    reports = [reported_to_dispatched(f"case-{n}")[0] for n in range(5)]  # none projected
    async with live.follow(None):
        await live.on_events(reports[:2])
        await live.on_events(reports[2:])
        assert list(live._behind) == [env.id for env in reports[2:]]
        await project_many(CaseStore(db), AuditTrail(db), reports[3:4])
        await asyncio.sleep(3 * live_module.LATE_EVERY)
        assert list(live._behind) == [reports[2].id, reports[4].id]  # case-3's is shown


async def test_news_with_no_page_open_reaches_the_next_page_once_shown(
    db: AsyncDatabase[Document],
) -> None:
    """Nobody watching: the news is kept, unread; the page opened next hears it once the
    projection shows it (it may have rendered before)."""
    store, trail = CaseStore(db), AuditTrail(db)
    live = Live(CaseReader(db))
    reported, filed, dispatched = reported_to_dispatched("case-unwatched")
    await project_many(store, trail, [reported, filed])
    await live.on_events([dispatched])  # no page open
    async with live.follow(None, since=time.time()) as news:
        assert await next_news(news, 1.5) is None  # not while the projection lacks it
        await project_many(store, trail, [dispatched])
        assert await next_news(news, 5) == "case-unwatched"  # and once it shows the dispatch
        assert await next_news(news, 1.5) is None


async def test_a_page_hears_what_was_told_between_its_reads_and_its_listening(
    db: AsyncDatabase[Document],
) -> None:
    store, trail = CaseStore(db), AuditTrail(db)
    live = Live(CaseReader(db))
    envs = reported_to_dispatched("case-between")
    async with live.follow(None) as centre:
        read_before = time.time()  # a page reads the queues…
        await project_many(store, trail, envs)
        await live.on_events(envs)  # …the news is told to the pages listening…
        assert await next_news(centre, 1) == "case-between"
        read_after = time.time()
        async with (
            live.follow("sanitation", since=read_before) as early,
            live.follow("sanitation", since=read_after) as late,
        ):
            assert await next_news(early, 1) == "case-between"  # …and to the one not yet
            assert late.empty()  # read after: it showed the dispatch already
