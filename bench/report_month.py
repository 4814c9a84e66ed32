"""A simulated month of the demo city, then its monthly report: how long each part takes.

    python -m bench.report_month [CASES] [PERIOD] [OUT]     # 300 2026-11 report-bench

The month's events (reports, filings, dispatches, handling, checks, closures, SLA warnings
and breaches) are made here, with a fixed seed, and applied with the very code the
projections and evaluation services run (`CaseStore.apply_many`, `ScoreStore.apply_many`), without
Kafka or HTTP between: a month in minutes, however many days the simulator (system/simulate)
would compress. Against MONGODB_URI when set (database `report_bench`), else an embedded
SecantusDB. Timings: docs/evaluation.md "The monthly report".
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase
from shapely.geometry import Point as Spot

from gridloop import embedded
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.mongo import Document
from schemas.envelope import Envelope
from schemas.events import (
    Actor,
    CaseChecked,
    CaseClosed,
    CaseDispatched,
    CaseEvent,
    CaseFiled,
    CaseHandled,
    CaseReported,
    CaseVerified,
    CaseVoided,
    Channel,
    Point,
    Role,
    SlaBreach,
    SlaEscalation,
    SlaWarning,
    Stage,
)
from services.evaluation.report.model import Period
from services.evaluation.report.run import gather, render
from services.evaluation.store import ScoreStore
from services.projections.store import CaseStore

BATCH = 500  # events per poll, as the services receive them
SOURCE = "/gridloop/bench/report_month"
SUPERVISOR = Actor(role=Role.supervisor, id="SUP-1")
CENTRE = Actor(role=Role.supervision_centre, id="OP-1")
COMMAND = Actor(role=Role.command_centre, id="OP-2")


class Month:
    """Makes the events of one month's cases; `as_of` is when the month is looked at."""

    def __init__(self, pack: CityPack, period: Period, as_of: datetime, seed: int = 110101) -> None:
        self.pack, self.period, self.as_of = pack, period, as_of
        self.rng = random.Random(seed)
        self.classes = sorted(pack.classes.values(), key=lambda c: (c.kind, c.code))
        self.components = sorted(pack.components.values(), key=lambda c: c.id)
        # A few busy corners: a fifth of the reports come from near one of them.
        self.corners = [self._point_in(self.rng.choice(pack.grids).code) for _ in range(3)]

    def _point_in(self, grid_code: str) -> tuple[float, float]:
        polygon = self.pack.polygon(grid_code)
        x0, y0, x1, y1 = polygon.bounds
        while True:
            lon, lat = self.rng.uniform(x0, x1), self.rng.uniform(y0, y1)
            if polygon.contains(Spot(lon, lat)):
                return lon, lat

    def _where(self) -> tuple[float, float, str]:
        if self.rng.random() < 0.2:
            lon, lat = self.rng.choice(self.corners)
            lon, lat = lon + self.rng.gauss(0, 0.00005), lat + self.rng.gauss(0, 0.00005)
            grid = self.pack.locate(lon, lat)
            if grid is not None:
                return lon, lat, grid.code
        grid_code = self.rng.choice(self.pack.grids).code
        return (*self._point_in(grid_code), grid_code)

    def case(self, n: int) -> list[Envelope]:
        """One case's events up to `as_of`, each at its time."""
        span = (self.period.end - self.period.start).total_seconds()
        at = self.period.start + timedelta(seconds=self.rng.uniform(0, span))
        lon, lat, grid = self._where()
        # Three in ten name a coded component of the inventory: the small demo inventory
        # makes some fail again and again.
        component = self.rng.choice(self.components) if self.rng.random() < 0.3 else None
        cls = self.rng.choice(self.classes)
        if component is not None:
            cls = self.pack.classes[("component", component.class_code)]
        channel = self.rng.choice([Channel.supervisor] * 3 + [Channel.hotline, Channel.website])
        case_id = f"SIM-{self.period.label}-{n:05d}"
        events: list[tuple[timedelta, CaseEvent]] = []

        def add(after: timedelta, event: type[CaseEvent], **fields: object) -> None:
            actor = fields.pop("actor", CENTRE)
            events.append(
                (after, event(case_id=case_id, version=len(events) + 1, actor=actor, **fields))
            )

        add(
            timedelta(0),
            CaseReported,
            actor=SUPERVISOR,
            channel=channel,
            kind=cls.kind,
            class_code=cls.code,
            point=Point(lon=lon, lat=lat),
            grid_code=grid,
            description="simulated",
            component_id=component.id if component else None,
        )
        if channel is not Channel.supervisor:
            if self.rng.random() < 0.1:
                add(timedelta(hours=1), CaseVoided, reason="not a city problem")
                return self._stamped(at, events)
            add(timedelta(hours=1), CaseVerified, actor=SUPERVISOR)
        add(
            timedelta(minutes=20),
            CaseFiled,
            kind=cls.kind,
            class_code=cls.code,
            grid_code=grid,
            case_number=f"{'B' if cls.kind == 'component' else 'S'}{cls.code}-{n:05d}",
            component_id=component.id if component else None,
        )
        deadline_after = cls.handle_limit  # natural time: the bench needs no calendar
        dispatched_at = at + sum((d for d, _ in events), timedelta(minutes=30))
        add(
            timedelta(minutes=30),
            CaseDispatched,
            actor=COMMAND,
            department=cls.owner,
            deadline=dispatched_at + deadline_after,
            rule="class owner",
        )
        # Three in four are handled in time, the others late; those due after `as_of` not yet.
        fate = self.rng.random()
        took = deadline_after * (
            self.rng.uniform(0.2, 0.9) if fate < 0.75 else self.rng.uniform(1.1, 4)
        )
        add(
            took, CaseHandled, actor=Actor(role=Role.department, id=cls.owner), department=cls.owner
        )
        add(timedelta(hours=2), CaseChecked, actor=SUPERVISOR, passed=True)
        add(timedelta(hours=1), CaseClosed)
        return self._stamped(at, events)

    def _stamped(
        self, start: datetime, events: list[tuple[timedelta, CaseEvent]]
    ) -> list[Envelope]:
        """Envelopes at their times, those after `as_of` left out, with the SLA engine's
        warning and breach of a handling deadline that passed unhandled."""
        stamped, at = [], start
        for after, event in events:
            at += after
            if at > self.as_of:
                break
            stamped.append(Envelope(event, SOURCE, at))
        dispatch = next((e for e in stamped if isinstance(e.data, CaseDispatched)), None)
        if dispatch is not None:
            assert isinstance(dispatch.data, CaseDispatched)
            handled = next((e.time for e in stamped if isinstance(e.data, CaseHandled)), self.as_of)
            deadline = dispatch.data.deadline
            facts = {"department": dispatch.data.department, "deadline": deadline}
            for kind, when, more in (
                (SlaWarning, deadline - (deadline - dispatch.time) / 5, {}),
                (SlaBreach, deadline, {}),
                # the demo ladder's community, then street tier, a day apart
                (SlaEscalation, deadline, {"tier": "community"}),
                (SlaEscalation, deadline + timedelta(days=1), {"tier": "street"}),
            ):
                if when < handled:
                    sla = kind(
                        case_id=dispatch.data.case_id,
                        case_version=dispatch.data.version,
                        stage=Stage.handle,
                        **facts,
                        **more,
                    )
                    stamped.append(Envelope(sla, SOURCE, when))
        return stamped

    def events(self, cases: int) -> list[Envelope]:
        return [env for n in range(1, cases + 1) for env in self.case(n)]


async def load(db: AsyncDatabase[Document], pack: CityPack, events: list[Envelope]) -> None:
    """Apply the events as the projections and evaluation services would, a poll at a
    time in time order, then score."""
    projections, scores = CaseStore(db), ScoreStore(db, pack)
    await projections.create_indexes()
    await scores.create_indexes()
    ordered = sorted(events, key=lambda e: e.time)
    for start in range(0, len(ordered), BATCH):  # as the services apply a poll
        batch = ordered[start : start + BATCH]
        await projections.apply_many(batch)
        await scores.apply_many(batch)
    while await scores.recompute_dirty():
        pass


async def run(uri: str, cases: int, label: str, out: Path) -> None:
    pack = load_city_pack(DEMO_CITY_PACK)
    period = Period.parse(label, pack.city.timezone)
    as_of = period.end + timedelta(days=2)
    client: AsyncMongoClient[Document] = AsyncMongoClient(uri, tz_aware=True)
    try:
        await client.drop_database("report_bench")
        db = client["report_bench"]
        started = time.perf_counter()
        # The month before too, a little quieter: the report compares the two.
        before = Month(pack, period.previous(), as_of, seed=110102).events(cases * 4 // 5)
        events = before + Month(pack, period, as_of).events(cases)
        made = time.perf_counter()
        await load(db, pack, events)
        loaded = time.perf_counter()
        report = await gather(db, ScoreStore(db, pack), pack, period, as_of)
        files = render(report, pack, out)
        done = time.perf_counter()
    finally:
        await client.close()
    print(
        f"{cases} cases, {len(events)} events: made in {made - started:.1f} s, "
        f"loaded and scored in {loaded - made:.1f} s, report in {done - loaded:.1f} s"
    )
    print(f"wrote {len(files)} files to {out}; {len(report.departments)} departments scored")


def main() -> None:
    cases = int(sys.argv[1]) if len(sys.argv) > 1 else 300
    label = sys.argv[2] if len(sys.argv) > 2 else "2026-11"
    out = Path(sys.argv[3] if len(sys.argv) > 3 else "report-bench")
    if uri := os.environ.get("MONGODB_URI"):
        asyncio.run(run(uri, cases, label, out))
        return
    server = embedded.secantus(Path(tempfile.mkdtemp(prefix="report-bench-")))
    server.start()
    try:
        asyncio.run(run(embedded.mongodb_uri(server), cases, label, out))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
