"""`Together`: requests that wait while one round trip runs are served by the next."""

from __future__ import annotations

import asyncio

import pytest

from gridloop.together import Together


class Server:
    """A `serve` that records its groups and answers when let go (`go`: all of them;
    `gates[i]`: the i-th)."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.gates: list[asyncio.Event] = []
        self.go = asyncio.Event()
        self.fail: Exception | None = None
        self.started: asyncio.Queue[list[int]] = asyncio.Queue()

    async def serve(self, items: list[int]) -> list[int]:
        self.groups.append(items)
        self.started.put_nowait(items)
        gate = asyncio.Event()
        self.gates.append(gate)
        waits = [asyncio.ensure_future(e.wait()) for e in (gate, self.go)]
        try:
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for w in waits:
                w.cancel()
        if self.fail is not None:
            raise self.fail
        return [i * 10 for i in items]


async def _started(n: int, together: Together[int, int]) -> list[asyncio.Task[int]]:
    tasks = [asyncio.create_task(together(i)) for i in range(n)]
    await asyncio.sleep(0)  # each has asked: the first is being served, the rest wait
    return tasks


async def test_those_who_wait_are_served_together_each_with_its_own_result() -> None:
    server = Server()
    tasks = await _started(5, Together(server.serve))
    server.go.set()
    assert await asyncio.gather(*tasks) == [0, 10, 20, 30, 40]
    assert server.groups == [[0], [1, 2, 3, 4]]


async def test_a_lone_request_goes_at_once() -> None:
    server = Server()
    server.go.set()
    together = Together(server.serve)
    assert [await together(7), await together(8)] == [70, 80]
    assert server.groups == [[7], [8]]


async def test_a_failure_is_shared_by_the_group_it_served() -> None:
    server = Server()
    together = Together(server.serve)
    tasks = await _started(3, together)
    await asyncio.sleep(0)
    server.fail = RuntimeError("database down")
    server.go.set()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert all(isinstance(d, RuntimeError) for d in done)
    assert server.groups == [[0], [1, 2]]  # the waiting did not retry one by one


async def test_a_request_cancelled_while_waiting_is_left_out() -> None:
    server = Server()
    tasks = await _started(4, Together(server.serve))
    tasks[2].cancel()
    server.go.set()
    done = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(done[2], asyncio.CancelledError)
    assert [done[0], done[1], done[3]] == [0, 10, 30]
    assert server.groups == [[0], [1, 3]]


async def test_when_the_one_serving_a_group_is_cancelled_the_others_are_served_next() -> None:
    server = Server()
    a, b, c = await _started(3, Together(server.serve))
    server.gates[0].set()
    assert await a == 0
    assert await server.started.get() == [0]
    assert await server.started.get() == [1, 2]  # b took its turn: it serves itself and c
    b.cancel()
    with pytest.raises(asyncio.CancelledError):
        await b
    server.go.set()
    assert await c == 20
    assert server.groups == [[0], [1, 2], [2]]
