"""A hold of the SLA engine (a stop, a rebalance) waits for the tick in flight: the events
it sent are acknowledged and marked before `hold` returns, and no tick begins until
`resume`. A mark lost between the acknowledgement and a stop sent the event again after a
restart."""

from __future__ import annotations

import asyncio

from schemas.events import SlaEvent
from tests.unit.test_sla_engine_heads import NOW, World, opened


class SlowAcks(World):
    """Kafka acknowledges only once the test says so (`acknowledge`)."""

    def __init__(self) -> None:
        super().__init__({})
        self.acks: list[asyncio.Future[object]] = []
        self.acknowledging = False
        self.sending = asyncio.Event()

    async def send(self, event: SlaEvent) -> asyncio.Future[object]:
        self.sent.append(event)
        self.sending.set()
        self.acks.append(asyncio.get_running_loop().create_future())
        if self.acknowledging:
            self.acks[-1].set_result(None)
        return self.acks[-1]

    def acknowledge(self) -> None:
        self.acknowledging = True
        for ack in self.acks:
            ack.set_result(None)


async def test_a_hold_waits_for_the_tick_in_flight_and_a_restart_repeats_nothing_it_sent() -> None:
    before = SlowAcks()
    for env in opened("C-1"):
        before.engine.track(env)
    tick = asyncio.create_task(before.engine.scan(NOW))
    await before.sending.wait()
    stop = asyncio.create_task(before.engine.hold())
    await asyncio.sleep(0.01)
    assert not stop.done()  # its breach is sent, not yet acknowledged nor marked
    before.acknowledge()
    await asyncio.wait_for(stop, 1)
    assert tick.done()
    count = len(before.sent)
    await before.engine.scan(NOW)
    assert len(before.sent) == count  # held: no tick
    before.engine.resume()
    await before.engine.scan(NOW)  # the escalation the breach opened, if the tick had not
    sent = {e.identity() for e in before.sent}
    assert len(sent) >= 2  # the breach and the escalation it opens
    # A restart: a new engine on the table as the changelog recovers it.
    after = World({})
    after.engine.table.update(before.engine.table)
    after.engine.rebuild()
    await after.engine.scan(NOW)
    assert not sent & {e.identity() for e in after.sent}
