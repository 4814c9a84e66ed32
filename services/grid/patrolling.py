"""Patrols (巡查): clock in inside one's grid, upload the track in pieces, clock out; the
shift lead sees who patrols where now. Geofenced by the pack's grids and `patrols.outside`
(refuse or flag); each clock-in and clock-out is a fact on the `grid` topic."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gridloop.auth import Principal
from gridloop.citypack.staff import Outside
from gridloop.mongo import Document
from gridloop.refusal import Refused, Why, conflict, forbidden, not_found
from schemas.envelope import Envelope
from schemas.events import PatrolEnded, PatrolStarted, Point
from services.grid.access import GRID_PEOPLE, oversees
from services.grid.geofence import Located, fenced
from services.grid.patrols import PatrolStore
from services.grid.service import SOURCE, GridService, actor, digest, record

# A clock-in under an Idempotency-Key gets the same patrol id on every retry.
_PATROL_IDS = uuid.UUID("8b0e7f3c-51a4-4f1e-9a53-6b1f0d2c7e91")


@dataclass(frozen=True)
class TrackPoint(Located):
    at: datetime


class Patrols:
    def __init__(self, grid: GridService, store: PatrolStore) -> None:
        self.grid, self.store = grid, store

    async def clock_in(
        self, who: Principal, grid: str, point: Located, key: str | None
    ) -> tuple[int, Document]:
        """Start `who`'s patrol of `grid` at `point` (201), or the one this key started."""
        self.grid.known(grid)
        if who.role not in GRID_PEOPLE:
            raise forbidden(("header", "Authorization"), "only a grid's people patrol")
        await self.grid.may_see(who, grid)
        patrol = _patrol_id(who.subject, key)
        if (found := await self.store.get(patrol)) is not None:
            await self._republish(found)
            return 200, view(found)
        [out] = fenced(self.grid.pack.polygon(grid), [point], self._policy, ("body", "point"))
        at = self.grid.moment()
        event = PatrolStarted(
            case_id=grid,
            actor=actor(who),
            staff=who.subject,
            patrol=patrol,
            point=Point(lon=point.lon, lat=point.lat),
            outside=out,
        )
        env = Envelope(event, SOURCE, at)
        here = {"lon": point.lon, "lat": point.lat, "at": at, "outside": out}
        doc = {
            "_id": patrol,
            "staff": who.subject,
            "grid": grid,
            "open": True,
            "started_at": at,
            "start": here,
            "ended_at": None,
            "end": None,
            "last": here,
            "last_seq": -1,
            "points": 0,
            "outside": 0,
            "outbox": [record(env)],
        }
        if (held := await self.store.open_patrol(doc)) is not None:
            raise conflict(("path", "grid"), f"{who.subject} is on patrol {held}: clock out first")
        await self._republish(doc)
        return 201, view(doc)

    async def track(
        self, who: Principal, patrol: str, seq: int, points: Sequence[TrackPoint]
    ) -> tuple[int, Document]:
        """Store one piece of the track (201), once: the same piece again is 200 and
        stores nothing; another piece under a stored `seq` is refused (409)."""
        doc = await self._own_open(who, patrol)
        polygon = self.grid.pack.polygon(doc["grid"])
        flags = fenced(polygon, points, self._policy, ("body", "points"))
        stored = [
            {"lon": p.lon, "lat": p.lat, "at": p.at, "outside": out}
            for p, out in zip(points, flags, strict=True)
        ]
        asked = digest([[p.lon, p.lat, p.at.isoformat()] for p in points])
        piece = {"_id": f"{patrol}/{seq}", "patrol": patrol, "seq": seq, "points": stored}
        before = await self.store.add_piece(piece | {"request": asked})
        if before is not None:
            if before["request"] != asked:
                raise conflict(("body", "seq"), f"piece {seq} was stored with other points")
            return 200, {"patrol": patrol, "seq": seq, "stored": False}
        latest = stored[max(range(len(points)), key=lambda i: points[i].at)]
        await self.store.advance(patrol, seq, latest, len(stored), sum(flags))
        return 201, {"patrol": patrol, "seq": seq, "stored": True, "outside": sum(flags)}

    async def clock_out(self, who: Principal, patrol: str, point: Located) -> Document:
        """End the patrol at `point`; the same clock-out again answers the ended patrol."""
        found = await self.store.get(patrol)
        if found is not None and not found["open"] and found["staff"] == who.subject:
            await self._republish(found)
            return view(found)
        doc = await self._own_open(who, patrol)
        [out] = fenced(
            self.grid.pack.polygon(doc["grid"]), [point], self._policy, ("body", "point")
        )
        at = self.grid.moment()
        points, outside = await self.store.counts(patrol)
        event = PatrolEnded(
            case_id=doc["grid"],
            actor=actor(who),
            staff=who.subject,
            patrol=patrol,
            point=Point(lon=point.lon, lat=point.lat),
            points=points,
            outside=outside,
        )
        env = Envelope(event, SOURCE, at)
        end = {"lon": point.lon, "lat": point.lat, "at": at, "outside": out}
        changes = {"ended_at": at, "end": end, "points": points, "outside": outside}
        if not await self.store.close(patrol, changes | {"outbox": [record(env)]}):
            return await self.clock_out(who, patrol, point)  # ended meanwhile: its answer
        await self.store.free(who.subject, patrol)
        ended = doc | changes | {"open": False, "outbox": [record(env)]}
        await self._republish(ended)
        return view(ended)

    async def one(self, who: Principal, patrol: str) -> Document:
        """A patrol with its whole track, for its grid's people and the overseers."""
        doc = await self.store.get(patrol)
        if doc is None:
            raise not_found(("path", "patrol"), f"no patrol {patrol}")
        await self.grid.may_see(who, doc["grid"])
        return view(doc) | {"track": await self.store.track(patrol)}

    async def now_open(self, who: Principal, grid: str | None) -> list[Document]:
        """Who patrols where now: the open patrols with their last point (a grid's people:
        in their own grids)."""
        if grid is not None:
            await self.grid.may_see(who, grid, ("query", "grid"))
            grids: list[str] | None = [grid]
        else:
            grids = None if oversees(who) else await self.grid.store.grids_of(who.subject)
        return [view(d) for d in await self.store.open_in(grids)]

    @property
    def _policy(self) -> Outside:
        return self.grid.pack.staff.patrols.outside

    async def _own_open(self, who: Principal, patrol: str) -> Document:
        doc = await self.store.get(patrol)
        if doc is None:
            raise not_found(("path", "patrol"), f"no patrol {patrol}")
        if doc["staff"] != who.subject or who.role not in GRID_PEOPLE:
            raise Refused(Why.forbidden, ("path", "patrol"), f"patrol {patrol} is not yours")
        if not doc["open"]:
            raise conflict(("path", "patrol"), f"patrol {patrol} has ended")
        return doc

    async def _republish(self, doc: Document) -> None:
        """Publish the patrol's claimed events (again, after a crash: one id a fact)."""
        if doc.get("outbox"):
            await self.grid.publish(doc["outbox"])
            await self.store.clear_outbox(doc["_id"])


def _patrol_id(staff: str, key: str | None) -> str:
    if key is None:
        return f"pt-{uuid.uuid4().hex}"
    return f"pt-{uuid.uuid5(_PATROL_IDS, f'{staff}/{key}').hex}"


def view(doc: Document) -> Document:
    """A patrol as the API shows it."""
    keep = ("staff", "grid", "open", "started_at", "start", "ended_at", "end", "last")
    return {"patrol": doc["_id"], **{k: doc.get(k) for k in keep}} | {
        "points": doc.get("points", 0),
        "outside": doc.get("outside", 0),
    }
