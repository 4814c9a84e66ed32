"""Requests served together: while one round trip to the database is under way, the
requests that arrive wait, and the next round trip serves all of them.

A round trip costs intake's worker ≈ 200 µs of CPU (pymongo and the socket), more than the
rest of a report; with many reports in flight, one for a group instead of one each is most
of the saving (docs/benchmarks.md, "Intake"). A lone request still goes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

T = TypeVar("T")
R = TypeVar("R")


class Together(Generic[T, R]):
    """`await together(item)`: `serve` answers a list of items with a list of results, in
    their order; one `serve` at a time."""

    def __init__(self, serve: Callable[[list[T]], Awaitable[Sequence[R]]]) -> None:
        self._serve = serve
        self._turn = asyncio.Lock()
        self._waiting: list[tuple[T, asyncio.Future[R]]] = []

    async def __call__(self, item: T) -> R:
        mine: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        entry = (item, mine)
        self._waiting.append(entry)
        try:
            async with self._turn:
                if not mine.done():
                    await self._serve_waiting(mine)
        except asyncio.CancelledError:
            # Gone before its turn: left out of the next group (in a group under way, its
            # result is dropped).
            with contextlib.suppress(ValueError):
                self._waiting.remove(entry)
            mine.cancel()
            raise
        return mine.result()

    async def _serve_waiting(self, mine: asyncio.Future[R]) -> None:
        group, self._waiting = self._waiting, []
        try:
            results = await self._serve([item for item, _ in group])
        except Exception as exc:
            # The group shares the failure, as each would have met it alone (and a database
            # outage does not make them fail one after another).
            for _, future in group:
                if future is not mine and not future.done():
                    future.set_exception(exc)
            raise
        except BaseException:
            # This request was cancelled: the others wait on, and the next of them to take
            # its turn serves them.
            self._waiting[:0] = [(i, f) for i, f in group if f is not mine and not f.done()]
            raise
        for (_, future), result in zip(group, results, strict=True):
            if not future.done():
                future.set_result(result)
