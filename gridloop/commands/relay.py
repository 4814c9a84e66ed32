"""The outbox relay: publishes the events of claims nobody settled.

A command's events are published by the command itself right after its claim; if its
process dies in between (or Kafka did not answer in time), the case's next command
publishes them first. A case nobody touches again would keep them for ever: the relay,
run beside every service that claims (intake, dispatch), publishes outboxes older than
`grace` (on the real clock, as claims are stamped) and settles them. A claim still being
published when the relay finds it is published twice: its events have the ids of their
facts, so consumers drop the repeat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from gridloop.commands.path import CommandPath

log = logging.getLogger(__name__)


class Relay:
    def __init__(
        self,
        path: CommandPath,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
        grace: timedelta = timedelta(seconds=5),
        every: float = 1.0,
        batch: int = 500,
    ) -> None:
        self.path, self.now, self.grace, self.every, self.batch = path, now, grace, every, batch

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception:  # a broker or database outage: the next sweep tries again
                log.warning("relay: sweep failed; trying again", exc_info=True)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.every)

    async def sweep(self) -> int:
        """Publish and settle the outboxes older than the grace (a batch of them; the next
        sweep takes the next); how many."""
        heads = await self.path.heads.stranded(self.now() - self.grace, self.batch)
        if heads:
            await self.path.flush(heads)
            await self.path.settling.drain()
            log.info("relay: published %d claims left unsettled", len(heads))
        return len(heads)
