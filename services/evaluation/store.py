"""Evaluation's MongoDB collections, and the reader the API, CLI, report and big screen use.

- `evaluation_events`: one document per case: every event of it read so far (each once, by
  event id; names, phones and free text blanked), appended only.
- `evaluation_cases`: one small document per case: the facts folded from all its events
  (`facts.fold`; `folded`: how many), and where it counts (`at`: the entities of each
  level; `period`: its day, week and month, the month indexed; `keys`: the ids of the
  scores it counts in). Apart from the events, so that what is written and read most
  (facts, marks) stays small. A consumer's poll is applied at once (`apply_many`): one
  read and one write of each; redelivery and replay add nothing, and each write is
  guarded by what was read, so two members of the group racing on one case cannot step
  back. (`keys` is not indexed: SecantusDB rewrites a multikey index's entries on every
  write of a document, which made facts writes and cleared marks several times dearer.)
- A case whose facts changed is marked dirty in the same write (`dirty`: how many changes
  its scores have not counted yet, bumped on every change), so a crash loses no change
  (the mark is in the database, written with the facts) and a burst of events on one
  street costs one move of its scores.
- `scores`: one document per level, entity and period, moved by running totals
  (`totals.py`, `score_totals`): a batch of dirty cases moves each score it touches by the
  difference those cases make, so the cost is the changed cases', not their months'. What
  a case adds is worked out from its facts alone, so a rebuild from the topics gives the
  same scores, and `recompute_many` (every fact of a score read again) gives them too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime
from zoneinfo import ZoneInfo

from pymongo import ASCENDING, DESCENDING, DeleteOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from gridloop.citypack import CityPack
from gridloop.citypack.evaluation import EvaluationPolicy
from gridloop.kafka import Retry
from gridloop.mongo import Document, partial_index
from gridloop.scoring import ON_READ, Indicator, Level, PeriodKind, Score, period_kind
from gridloop.visits import Covered, coverage_of, grid_people
from schemas.envelope import Envelope
from schemas.events import EVENT_TYPES, Stage
from services.evaluation.facts import CaseFacts, fold
from services.evaluation.indicators import (
    COMMAND_CENTRE,
    Counted,
    Judge,
    count,
    entities,
    periods,
    tally,
)
from services.evaluation.people import bounds, scored
from services.evaluation.people import counted as people_counted
from services.evaluation.running import Key
from services.evaluation.scores import graded
from services.evaluation.totals import MARKED, MARKED_INDEX, Totals

COLLECTIONS = (
    "evaluation_cases",
    "evaluation_events",
    "scores",
    "score_totals",
    "evaluation_journal",
    "evaluation_meta",
)
DUPLICATE_KEY = 11000
RACES = 10  # reads and writes of one poll lost to other writers before backing off


@dataclass(frozen=True)
class _Plan:
    """One case's writes: its new events (None: none), its facts and mark."""

    record: UpdateOne | None
    facts: UpdateOne
    touched: set[Key]


# Levels whose entities between them count (nearly) every case of a period.
_WHOLE = frozenset({Level.department, Level.street, Level.command_centre, Level.district})


def _months(key: Key) -> set[str]:
    """The months (`2026-11`) whose cases include every case of `key`."""
    if key.kind is PeriodKind.week:
        year, week = int(key.period[:4]), int(key.period[6:])
        ends = (date.fromisocalendar(year, week, 1), date.fromisocalendar(year, week, 7))
        return {day.strftime("%Y-%m") for day in ends}
    return {key.period[:7]}


def _counted_in(keys: Sequence[Key]) -> Document:
    """The query of the cases counted in any of `keys`: their months (indexed), then the
    keys themselves (filtered within the months)."""
    months = sorted({month for key in keys for month in _months(key)})
    return {"period.month": {"$in": months}, "keys": {"$in": [key.id for key in keys]}}


def keys_of(doc: Document | None) -> set[Key]:
    """The scores a stored case counts in."""
    if doc is None or "period" not in doc:
        return set()
    return {
        Key(Level(level), entity, PeriodKind(kind), period)
        for level, found in doc.get("at", {}).items()
        for entity in found
        for kind, period in doc["period"].items()
    }


# What evaluation never needs and must not keep: who reported (name, phone), what people
# wrote or photographed. Blanked before an event is stored (each blank is a valid value).
_BLANK: Document = {
    "reporter": {},
    "description": "",
    "address": None,
    "comment": None,
    "note": None,
    "media": [],
    "photos": [],
    "point": {"lon": 0.0, "lat": 0.0},
}


def _event_doc(env: Envelope) -> Document:
    data = env.data.model_dump(mode="json")
    data.update({k: v for k, v in _BLANK.items() if k in data})
    return {
        "id": env.id,
        "type": env.type,
        "source": env.source,
        "time": env.time.isoformat(),
        "data": data,
    }


def _envelope(raw: Document) -> Envelope:
    data = EVENT_TYPES[raw["type"]].model_validate(raw["data"])
    return Envelope(
        data=data, source=raw["source"], time=datetime.fromisoformat(raw["time"]), id=raw["id"]
    )


class ScoreStore:
    """Writes facts and scores (the evaluation service) and reads them (everyone else).
    `pack` names entities and carries the weights, grades and time zone; without one the
    defaults apply (enough to read what the service wrote)."""

    def __init__(self, db: AsyncDatabase[Document], pack: CityPack | None = None) -> None:
        self.case_facts = db["evaluation_cases"]
        self.case_events = db["evaluation_events"]
        self.scores = db["scores"]
        self.pack = pack
        self.policy = pack.evaluation if pack is not None else EvaluationPolicy()
        self.zone = ZoneInfo(pack.city.timezone if pack is not None else "Asia/Shanghai")
        # The command centre's code (sla.yaml `centres.command`): its scores' entity.
        self.command_centre = (
            pack.sla.centre(Stage.dispatch) if pack is not None else COMMAND_CENTRE
        )
        self.totals = Totals(db, self.policy, self.zone, self.command_centre, self.name)

    async def create_indexes(self) -> None:
        # No index on `keys` (45 or so a case): SecantusDB rewrites a multikey index's
        # entries on every write of the document, which made each facts write and each
        # cleared mark several times dearer. A score's cases are found by their month.
        await self.case_facts.create_index("period.month")
        await self.marked_index()
        await self.scores.create_index(
            [("level", ASCENDING), ("period", ASCENDING), ("score", DESCENDING)]
        )
        await self.totals.create_indexes()

    async def marked_index(self) -> None:
        """The marked cases (`dirty` above 0) alone in the index the recomputer reads them
        by: the history's cases, counted long ago, are not in it. (A full index on `dirty`
        came first, replaced once: SecantusDB read its every entry for `$gt: 0`, one a
        case of the history, at every round.)"""
        await partial_index(self.case_facts, MARKED_INDEX, ["dirty"], MARKED, ["dirty"])

    async def drop(self) -> None:
        for name in COLLECTIONS:
            await self.case_facts.database.drop_collection(name)

    # --- writing -----------------------------------------------------------------------------

    async def add(self, env: Envelope) -> set[Key]:
        """One event: `apply_many` of one."""
        return await self.apply_many([env])

    async def apply_many(self, envs: Sequence[Envelope]) -> set[Key]:
        """Record `envs` (a consumer's poll) on their cases, fold each case again once with
        all its events and, in the same write as its facts, mark it dirty; return the
        scores it touched (before and after: a filing that corrects the grid moves the
        case). One read of the touched cases' events and one of their facts (`$in`),
        one `bulk_write` of the new events, one of the facts and marks.

        Idempotent: an event already stored (redelivery, replay, twice in `envs`) adds
        nothing, an event that changes no fact marks nothing, and the fold does not depend
        on the order events came in. Both writes are guarded by what was read (the number
        of events; the fold the facts came from), so a write that lost a race with another
        member of the group (a rebalance) is not done: the cases are read and folded again.
        A crash between the two writes leaves events newer than the facts, and the next
        delivery, finding them, folds them."""
        arrived: dict[str, dict[str, Envelope]] = {}
        for env in envs:
            arrived.setdefault(env.data.case_id, {})[env.id] = env
        if not arrived:
            return set()
        for _ in range(RACES):
            plans = await self._plans(arrived)
            records = [p.record for p in plans if p.record is not None]
            if records and not await self._wrote(self.case_events, records):
                continue  # another writer added events meanwhile: fold them too
            if not await self._wrote(self.case_facts, [p.facts for p in plans]):
                continue  # another writer folded meanwhile: fold again
            return {key for p in plans for key in p.touched}
        # Transient: the pipeline retries the poll after a back-off.
        raise Retry(f"lost {RACES} races in a row to other writers of the same cases")

    async def _plans(self, arrived: dict[str, dict[str, Envelope]]) -> list[_Plan]:
        ids = {"_id": {"$in": list(arrived)}}
        logs = {doc["_id"]: doc["events"] async for doc in self.case_events.find(ids)}
        before = {doc["_id"]: doc async for doc in self.case_facts.find(ids)}
        found = (self._plan(c, logs.get(c, []), before.get(c), new) for c, new in arrived.items())
        return [plan for plan in found if plan is not None]

    @staticmethod
    async def _wrote(collection: AsyncCollection[Document], ops: list[UpdateOne]) -> bool:
        """Whether every guarded write of `ops` was done (False: one lost a race)."""
        if not ops:
            return True
        try:
            done = await collection.bulk_write(ops, ordered=False)
        except BulkWriteError as exc:
            if any(e["code"] != DUPLICATE_KEY for e in exc.details["writeErrors"]):
                raise
            return False  # created meanwhile: the upsert failed on `_id`
        return done.matched_count + done.upserted_count == len(ops)

    def _plan(
        self, case_id: str, raws: list[Document], doc: Document | None, arrived: dict[str, Envelope]
    ) -> _Plan | None:
        """What records `arrived` on a case whose stored events are `raws` and facts `doc`
        (None: none yet); None when every event is stored and folded already."""
        known = {raw["id"] for raw in raws}
        new = [env for event_id, env in arrived.items() if event_id not in known]
        folded = doc.get("folded", 0) if doc is not None else 0
        if not new and folded >= len(raws):
            return None
        record = None
        if new:
            record = UpdateOne(
                {"_id": case_id, "events": {"$size": len(raws)}},
                {"$push": {"events": {"$each": [_event_doc(env) for env in new]}}},
                upsert=not raws,
            )
        events = [_envelope(raw) for raw in raws] + new
        facts = fold(case_id, events)
        fresh = {"facts": facts.model_dump(mode="json"), **self._where(facts)}
        before = doc or {}
        # Only what changed: setting `keys` again, even unchanged, rewrites its index
        # entries. Exact, as the write is guarded by the fold `before` came from.
        changed = {k: v for k, v in fresh.items() if before.get(k) != v}
        change: Document = {"$set": {"folded": len(events), **changed}}
        touched = keys_of(doc) | keys_of(fresh) if changed else set()
        if touched:  # none before its report is read: it counts nowhere yet
            change["$inc"] = {"dirty": 1}
        guard = {"_id": case_id, "folded": folded if doc is not None else {"$exists": False}}
        return _Plan(record, UpdateOne(guard, change, upsert=doc is None), touched)

    def _where(self, facts: CaseFacts) -> Document:
        if facts.reported_at is None:
            return {}  # its report is not read yet: it counts nowhere so far
        at = {
            level.value: entities(facts, level, self.command_centre)
            for level in Level
            if level not in ON_READ  # scored when read: stored nowhere
        }
        found = {k.value: p for k, p in periods(facts.reported_at, self.zone).items()}
        where: Document = {"at": at, "period": found}
        return where | {"keys": sorted(k.id for k in keys_of(where))}

    async def recompute_dirty(self, limit: int = 1000) -> list[tuple[Key, Score | None]]:
        """Move the stored scores by up to `limit` dirty cases, each by the difference its
        change makes (`totals.py`: the cost is the changed cases', not their months'); each
        moved score with its new value (None: no case counts there any more, removed)."""
        return await self.totals.recompute_dirty(limit)

    async def recompute_many(self, keys: Sequence[Key]) -> list[tuple[Key, Score | None]]:
        """Recompute `keys` from every fact they count, not from the running totals: one
        read of the facts (each case once, however many of them it counts in) and one
        `bulk_write` of the scores. What the totals give, checked; or scores graded again
        under another pack's weights."""
        counted: dict[str, list[CaseFacts]] = {key.id: [] for key in keys}
        query = _counted_in(keys)
        if any(k.kind is PeriodKind.month and k.level in _WHOLE for k in keys):
            # A department's or street's month counts nearly every case of the month: read
            # the months whole (the cases counted nowhere in `keys` are skipped below).
            query.pop("keys")
        async for doc in self.case_facts.find(query, {"facts": 1, "keys": 1}):
            facts = CaseFacts.model_validate(doc["facts"])
            for key in doc["keys"]:
                if key in counted:  # a case of the months may count in none of `keys`
                    counted[key].append(facts)
        judge = Judge(self.policy.satisfied, self.policy.approve_within)
        done = [(key, self._score(key, counted[key.id], judge)) for key in keys]
        writes: list[ReplaceOne[Document] | DeleteOne] = [
            ReplaceOne({"_id": key.id}, found.model_dump(mode="json"), upsert=True)
            if found is not None
            else DeleteOne({"_id": key.id})
            for key, found in done
        ]
        if writes:
            await self.scores.bulk_write(writes, ordered=False)
        return done

    def _score(self, key: Key, facts: list[CaseFacts], judge: Judge) -> Score | None:
        if not facts:
            return None
        ratios = tally(key.level, (judge(key.level, key.entity, case) for case in facts))
        name = self.name(key.level, key.entity)
        cases = len({case.case_id for case in facts})
        return graded(key.level, key.entity, name, key.period, key.kind, cases, ratios, self.policy)

    async def recompute(self, key: Key) -> Score | None:
        """One score, recomputed (`recompute_many` of one)."""
        return (await self.recompute_many([key]))[0][1]

    def name(self, level: Level, entity: str) -> str:
        pack = self.pack
        if pack is None:
            return entity
        names: dict[Level, str | None] = {
            Level.department: getattr(pack.departments.get(entity), "name", None),
            Level.command_centre: getattr(pack.departments.get(entity), "name", None),
            Level.street: getattr(pack.streets.get(entity), "name", None),
            Level.community: next(
                (c.name for c in pack.city.communities if c.code == entity), None
            ),
            Level.grid: getattr(pack.grid_by_code.get(entity), "name", None),
            Level.district: pack.city.district.name if pack.city.district.code == entity else None,
        }
        return names.get(level) or entity

    # --- reading -----------------------------------------------------------------------------

    async def facts(self, key: Key) -> list[CaseFacts]:
        """The facts of every case counted for `key`."""
        query = _counted_in([key])
        return [
            CaseFacts.model_validate(doc["facts"])
            async for doc in self.case_facts.find(query, {"facts": 1}).sort("_id", ASCENDING)
        ]

    async def league(self, level: Level, period: str) -> list[Score]:
        """Every entity of `level` over `period`, best first (unscored last, then by code)."""
        if level in ON_READ:
            found = await self._people_league(level, period)
        else:
            found = [
                Score.model_validate(_score_doc(doc))
                async for doc in self.scores.find({"level": level.value, "period": period})
            ]
        return sorted(found, key=lambda s: (s.score is None, -(s.score or 0.0), s.entity))

    async def score(self, level: Level, entity: str, period: str) -> Score | None:
        if level in ON_READ:
            people, teams = await self._register(level, period)
            grids = people.get(entity)
            if not grids:
                return None
            return await self._people_score(level, entity, grids, period, entity in teams)
        doc = await self.scores.find_one(
            {"_id": Key(level, entity, period_kind(period), period).id}
        )
        return Score.model_validate(_score_doc(doc)) if doc else None

    async def cases(
        self,
        level: Level,
        entity: str,
        period: str,
        indicator: Indicator,
        department: str | None = None,
    ) -> tuple[Counted, Counted]:
        """The case ids in the numerator and the denominator of one figure (sorted): all
        of them, and those `department` may see (`Counted.shown_to`)."""
        if level in ON_READ:
            grids = (await self._people(level, period)).get(entity, [])
            facts = await self._grid_facts(grids, period)
            cover = await self._coverage(level, entity, grids, period)
            tally = people_counted(level, entity, facts, cover, self.policy).get(indicator)
            tally = tally or Counted()
            return tally, tally.shown_to(department, facts)
        key = Key(level, entity, period_kind(period), period)
        facts = await self.facts(key)
        found = count(level, entity, facts, self.policy.satisfied, self.policy.approve_within)
        tally = found.get(indicator) or Counted()
        return tally, tally.shown_to(department, facts)

    # --- the grid's people, scored when read (people.py) --------------------------------------

    async def _people(self, level: Level, period: str) -> dict[str, list[str]]:
        """The entities of a people level over `period` and their grids: each grid staff
        member with the grids they worked in it; each grid some grid staff worked."""
        return (await self._register(level, period))[0]

    async def _register(self, level: Level, period: str) -> tuple[dict[str, list[str]], set[str]]:
        """`_people`, and the grids that had a service team (组团) in `period`."""
        start, end = bounds(period, self.zone)
        people, teams = await grid_people(self.case_facts.database, start, end)
        if level is Level.grid_staff:
            return people, teams
        grids = sorted({grid for worked in people.values() for grid in worked})
        return {grid: [grid] for grid in grids}, teams

    async def _grid_facts(self, grids: list[str], period: str) -> list[CaseFacts]:
        """The facts of the cases the grids' scores over `period` count (each case once)."""
        if not grids:
            return []
        keys = [Key(Level.grid, grid, period_kind(period), period) for grid in grids]
        cursor = self.case_facts.find(_counted_in(keys), {"facts": 1}).sort("_id", ASCENDING)
        return [CaseFacts.model_validate(doc["facts"]) async for doc in cursor]

    async def _coverage(self, level: Level, entity: str, grids: list[str], period: str) -> Covered:
        start, end = bounds(period, self.zone)
        staff = entity if level is Level.grid_staff else None  # a person: their own visits
        return await coverage_of(self.case_facts.database, grids, start, end, staff)

    async def _people_score(
        self, level: Level, entity: str, grids: list[str], period: str, team: bool = False
    ) -> Score | None:
        facts = await self._grid_facts(grids, period)
        cover = await self._coverage(level, entity, grids, period)
        name = entity  # a person's id: their name stays with the grid service's register
        if level is Level.grid_team:  # the grid's name, and its team's where it has one
            name = self.name(Level.grid, entity) + (" 组团" if team else "")
        return scored(level, entity, name, period, facts, cover, self.policy)

    async def _people_league(self, level: Level, period: str) -> list[Score]:
        people, teams = await self._register(level, period)
        found = [
            await self._people_score(level, entity, grids, period, entity in teams)
            for entity, grids in people.items()
        ]
        return [s for s in found if s is not None]

    async def pending(self) -> int:
        """Cases whose scores are not recomputed yet: marked, or claimed by a recomputer
        that has not moved their scores yet."""
        # A find on the index of the marked, not `count_documents`: SecantusDB's aggregate
        # reads every case of the history for it (the service asks at every round).
        marked = self.case_facts.find(MARKED, {"_id": 1})
        return len(await marked.to_list()) + await self.totals.in_flight()


def _score_doc(doc: Document) -> Document:
    return {k: v for k, v in doc.items() if k not in ("_id", "version")}


__all__ = ["COLLECTIONS", "Key", "ScoreStore", "keys_of"]
