"""The grid service's layer between the routes and the stores. Every change takes the
command path: load the grid's head (or the patrol) → decide (the pure `register` and
`geofence`) → claim (one conditional write holding the change, its events and the answer)
→ publish (acks=all, else 503 and the outbox stays) → remember the answer under the
request's Idempotency-Key."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from gridloop.auth import Principal
from gridloop.citypack import CityPack
from gridloop.citypack.staff import StaffRole
from gridloop.commands.kafka import publish_or_refuse
from gridloop.kafka import EventProducer
from gridloop.mongo import Document
from gridloop.refusal import Refused, Why, conflict, forbidden, not_found
from schemas import clock
from schemas.envelope import Envelope, decode, encode
from schemas.events import EventData, GridActor, StaffAssigned, StaffReleased
from services.grid import register
from services.grid.access import GRID_PEOPLE, oversees, own_grid, spell_roles
from services.grid.register import Spell, covering
from services.grid.store import GridHead, GridStore

SOURCE = "/gridloop/grid"
Clock = Callable[[], datetime]
TRIES = 5  # claims lost to a concurrent change before giving up (409)


def actor(who: Principal) -> GridActor:
    return GridActor(role=who.role.value, id=who.subject)


def record(env: Envelope) -> Document:
    """An event as the outbox keeps it: the Kafka record, bytes as published."""
    _, value, headers = encode(env)
    return {"value": value, "headers": [[name, raw] for name, raw in headers]}


def envelopes(outbox: Sequence[Document]) -> list[Envelope]:
    return [decode(r["value"], [(n, raw) for n, raw in r["headers"]]) for r in outbox]


def digest(request: Any) -> str:
    text = json.dumps(request, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode()).hexdigest()


class GridService:
    def __init__(
        self, pack: CityPack, store: GridStore, producer: EventProducer, now: Clock = clock.now
    ) -> None:
        self.pack, self.store, self.producer, self.now = pack, store, producer, now

    def moment(self) -> datetime:
        """Now, to the millisecond: what MongoDB keeps, so an answer given again is the same."""
        at = self.now()
        return at.replace(microsecond=at.microsecond // 1000 * 1000)

    async def publish(self, outbox: Sequence[Document]) -> None:
        if outbox:
            await publish_or_refuse(self.producer, envelopes(outbox))

    def known(self, grid: str, where: tuple[str, ...] = ("path", "grid")) -> None:
        if grid not in self.pack.grid_by_code:
            raise not_found(where, f"no grid {grid} in the city pack")

    async def may_see(
        self, who: Principal, grid: str, where: tuple[str, ...] = ("path", "grid")
    ) -> None:
        """Refuse an unknown grid (404) and a grid person's look at another grid (403)."""
        self.known(grid, where)
        if not oversees(who):
            own_grid(who, grid, await self.worked_by(who), where)

    async def worked_by(self, who: Principal) -> list[str]:
        """The grids a grid person's credential acts in now (its role's spells)."""
        return await self.store.grids_of(who.subject, spell_roles(who))

    async def staff(self, who: Principal, grid: str, at: datetime | None) -> list[Spell]:
        """Who works `grid` now, or worked it at `at`."""
        return covering(await self.history(who, grid), at)

    async def history(self, who: Principal, grid: str) -> list[Spell]:
        """Every spell of `grid`, open and closed, in the order they began."""
        await self.may_see(who, grid)
        head = await self.store.head(grid)
        return head.spells if head is not None else []

    async def name_in(self, grid: str, staff: str) -> str:
        """The display name the grid's register gives a person working it now."""
        head = await self.store.head(grid)
        spells = head.spells if head is not None else []
        return next((s.name for s in spells if s.open and s.staff == staff), "")

    async def grids_of(self, who: Principal, staff: str) -> list[str]:
        if who.role in GRID_PEOPLE and who.subject != staff:
            raise forbidden(("path", "staff"), f"{who.subject} may see only their own grids")
        return await self.store.grids_of(staff)

    # --- changes of the register ------------------------------------------------------

    async def assign(
        self, who: Principal, grid: str, staff: str, name: str, role: StaffRole, key: str | None
    ) -> tuple[int, Document]:
        request = {"do": "assign", "staff": staff, "name": name, "role": role.value}

        def decide(head: GridHead, at: datetime) -> tuple[list[Spell], EventData, Spell]:
            spell = register.assign(head.spells, f"sp-{uuid.uuid4().hex}", staff, name, role, at)
            event = StaffAssigned(
                case_id=grid, actor=actor(who), staff=staff, role=role.value, spell=spell.id
            )
            return [*head.spells, spell], event, spell

        return await self._change(grid, _scoped(who, key), request, decide, 201)

    async def release(
        self,
        who: Principal,
        grid: str,
        staff: str,
        role: StaffRole,
        reason: str | None,
        key: str | None,
    ) -> tuple[int, Document]:
        request = {"do": "release", "staff": staff, "role": role.value, "reason": reason}

        def decide(head: GridHead, at: datetime) -> tuple[list[Spell], EventData, Spell]:
            ended = register.release(head.spells, staff, role, at)
            spells = [ended if s.id == ended.id else s for s in head.spells]
            event = StaffReleased(
                case_id=grid,
                actor=actor(who),
                staff=staff,
                role=role.value,
                spell=ended.id,
                reason=reason,
            )
            return spells, event, ended

        return await self._change(grid, _scoped(who, key), request, decide, 200)

    async def _change(
        self,
        grid: str,
        key: str | None,
        request: Document,
        decide: Callable[[GridHead, datetime], tuple[list[Spell], EventData, Spell]],
        status: int,
    ) -> tuple[int, Document]:
        self.known(grid)
        asked = digest(request)
        for _ in range(TRIES):
            head = await self.store.head(grid)
            if head is None:
                raise not_found(("path", "grid"), f"grid {grid} has no register yet")
            if head.outbox:  # a claim before ours was not published: publish it first
                await self.publish(head.outbox)
                await self.store.clear_outbox(grid, head.rev)
                continue
            if (given := _given(head, key, asked)) is not None:
                return given
            at = self.moment()
            spells, event, spell = decide(head, at)
            env = Envelope(event, SOURCE, at)
            body = spell_body(spell)
            answer = {"key": key, "request": asked, "status": status, "body": body} if key else None
            if await self.store.claim(head, spells, [record(env)], answer):
                await publish_or_refuse(self.producer, [env])
                await self.store.clear_outbox(grid, head.rev + 1)
                return status, body
        raise conflict(("path", "grid"), "the grid's register kept changing: retry")


def _scoped(who: Principal, key: str | None) -> str | None:
    """An Idempotency-Key is its caller's: two callers' same key are two keys."""
    return f"{who.role.value}/{who.subject}/{key}" if key is not None else None


def _given(head: GridHead, key: str | None, asked: str) -> tuple[int, Document] | None:
    """The answer a request under `key` got before; refused (422) for another request."""
    if key is None:
        return None
    for answer in head.answers:
        if answer["key"] == key:
            if answer["request"] != asked:
                raise Refused(
                    Why.invalid,
                    ("header", "Idempotency-Key"),
                    "this key was used for another request",
                    "key_reused",
                )
            return int(answer["status"]), dict(answer["body"])
    return None


def spell_body(s: Spell) -> Document:
    return {
        "spell": s.id,
        "staff": s.staff,
        "name": s.name,
        "role": s.role.value,
        "since": s.since,
        "until": s.until,
    }
