"""Patrols (巡查): clock in inside one's grid, upload the track in pieces, clock out; the
shift lead sees who patrols where now. Geofenced by the pack's grids and `patrols.outside`
(refuse or flag); each clock-in and clock-out is a fact on the `grid` topic."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from gridloop.auth import Principal
from gridloop.citypack.staff import Outside
from gridloop.mongo import Document
from gridloop.refusal import Refused, Why, conflict, forbidden, invalid, not_found
from schemas.envelope import Envelope
from schemas.events import PatrolEnded, PatrolStarted, Point
from services.grid.access import GRID_PEOPLE, oversees
from services.grid.geofence import Located, fenced
from services.grid.patrols import PatrolStore
from services.grid.service import SOURCE, GridService, actor, digest, record

SKEW = timedelta(minutes=5)  # how far a device's clock may be off the server's
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
        name = await self.grid.name_in(grid, who.subject)
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
            "name": name,
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
        doc = await self._own(who, patrol)
        asked = digest([[p.lon, p.lat, p.at.isoformat()] for p in points])
        if (before := await self.store.piece(patrol, seq)) is not None:
            return _again(before, patrol, seq, asked)  # a resend, even after clock-out
        if not doc["open"]:
            raise conflict(("path", "patrol"), f"patrol {patrol} has ended")
        _timely(points, doc["started_at"], self.grid.moment())
        polygon = self.grid.pack.polygon(doc["grid"])
        flags = fenced(polygon, points, self._policy, ("body", "points"))
        stored = [
            {"lon": p.lon, "lat": p.lat, "at": p.at, "outside": out}
            for p, out in zip(points, flags, strict=True)
        ]
        piece = {"_id": f"{patrol}/{seq}", "patrol": patrol, "seq": seq, "points": stored}
        if (before := await self.store.add_piece(piece | {"request": asked})) is not None:
            return _again(before, patrol, seq, asked)  # sent twice at once
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
        # After the clock-in's event, should it still wait for the log (a 503 before).
        outbox = [*(doc.get("outbox") or []), record(env)]
        if not await self.store.close(patrol, changes | {"outbox": outbox}):
            return await self.clock_out(who, patrol, point)  # ended meanwhile: its answer
        await self.store.free(who.subject, patrol)
        ended = doc | changes | {"open": False, "outbox": outbox}
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
        return [view(d) for d in await self.store.open_in(await self._seen(who, grid))]

    async def ended_since(
        self, who: Principal, grid: str | None, since: datetime, limit: int
    ) -> list[Document]:
        """The patrols ended since `since`, the latest ended first,
        seen as `now_open` sees them."""
        return [
            view(d) for d in await self.store.ended_in(await self._seen(who, grid), since, limit)
        ]

    async def _seen(self, who: Principal, grid: str | None) -> list[str] | None:
        """The grids whose patrols `who` may see (None: every grid)."""
        if grid is not None:
            await self.grid.may_see(who, grid, ("query", "grid"))
            return [grid]
        return None if oversees(who) else await self.grid.worked_by(who)

    @property
    def _policy(self) -> Outside:
        return self.grid.pack.staff.patrols.outside

    async def _own(self, who: Principal, patrol: str) -> Document:
        doc = await self.store.get(patrol)
        if doc is None:
            raise not_found(("path", "patrol"), f"no patrol {patrol}")
        if doc["staff"] != who.subject or who.role not in GRID_PEOPLE:
            raise Refused(Why.forbidden, ("path", "patrol"), f"patrol {patrol} is not yours")
        return doc

    async def _own_open(self, who: Principal, patrol: str) -> Document:
        doc = await self._own(who, patrol)
        if not doc["open"]:
            raise conflict(("path", "patrol"), f"patrol {patrol} has ended")
        return doc

    async def _republish(self, doc: Document) -> None:
        """Publish the patrol's claimed events (again, after a crash: one id a fact)."""
        if doc.get("outbox"):
            await self.grid.publish(doc["outbox"])
            await self.store.clear_outbox(doc["_id"])


def _again(before: Document, patrol: str, seq: int, asked: str) -> tuple[int, Document]:
    """The answer to a piece sent again: nothing stored (200), or 409 for other points."""
    if before["request"] != asked:
        raise conflict(("body", "seq"), f"piece {seq} was stored with other points")
    return 200, {"patrol": patrol, "seq": seq, "stored": False}


def _timely(points: Sequence[TrackPoint], started: datetime, now: datetime) -> None:
    """Refuse (422) a fix taken before the clock-in or after now (beyond a device's clock
    skew): a track is of its patrol. A fix sent late, from a device offline, is welcome."""
    for i, p in enumerate(points):
        if p.at < started - SKEW:
            raise invalid(("body", "points", str(i), "at"), "before the patrol's clock-in")
        if p.at > now + SKEW:
            raise invalid(("body", "points", str(i), "at"), "in the future")


def _patrol_id(staff: str, key: str | None) -> str:
    if key is None:
        return f"pt-{uuid.uuid4().hex}"
    return f"pt-{uuid.uuid5(_PATROL_IDS, f'{staff}/{key}').hex}"


def view(doc: Document) -> Document:
    """A patrol as the API shows it."""
    keep = ("staff", "name", "grid", "open", "started_at", "start", "ended_at", "end", "last")
    return {"patrol": doc["_id"], **{k: doc.get(k) for k in keep}} | {
        "points": doc.get("points", 0),
        "outside": doc.get("outside", 0),
    }
