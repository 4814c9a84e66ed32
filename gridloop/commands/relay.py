"""The relay, beside every service that claims (intake, dispatch): it keeps the writers'
watermarks and publishes what a dead writer left unpublished.

Every second it
1. tries again the claims of its own path whose write or publish failed (a database or
   broker outage): those that stood are published;
2. says its path's watermark (`CommandPath.watermark`: every claim made before it is
   published) and reads the others', which tell every path whether an outbox it loads is
   in the log already;
3. for every writer that has not said it is alive for `dead_after` (its process died),
   publishes the outboxes it claimed after its watermark, releases them, and retires the
   writer once none is left (its watermark then covers all it wrote).

A claim published twice (by a relay and by its writer still at work, or by the next command
on its case) has the ids of its facts: consumers drop the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import UTC, datetime, timedelta

from gridloop.commands.path import CommandPath

log = logging.getLogger(__name__)


class Relay:
    def __init__(
        self,
        path: CommandPath,
        every: float = 1.0,
        dead_after: timedelta = timedelta(seconds=15),
        batch: int = 500,
    ) -> None:
        self.path, self.every, self.dead_after, self.batch = path, every, dead_after, batch

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception:  # a broker or database outage: the next sweep tries again
                log.warning("relay: sweep failed; trying again", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every)

    async def sweep(self) -> int:
        """One round; how many claims it published for others or again for its path."""
        heads, path = self.path.heads, self.path
        done = await path.retry()
        await heads.beat(path.writer, path.watermark())
        marks = await heads.writers()
        path.marks = {m.writer: m for m in marks}
        dead = datetime.now(UTC) - self.dead_after
        for mark in marks:
            if mark.writer != path.writer and not mark.retired and mark.alive < dead:
                done += await self._take_over(mark.writer, mark.through)
        return done

    async def _take_over(self, writer: str, through: datetime) -> int:
        """Publish what a dead writer left unpublished (a batch; the next round the rest)."""
        orphans = await self.path.heads.orphans(writer, through, self.batch)
        if not orphans:
            await self.path.heads.retire(writer)
            return 0
        await self.path.publisher.publish([env for h in orphans for env in h.outbox])
        await self.path.heads.release([(h.case_id, h.rev) for h in orphans])
        log.info("relay: published %d claims writer %s left unpublished", len(orphans), writer)
        return len(orphans)
