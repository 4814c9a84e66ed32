"""The running totals of the stored scores in MongoDB (`running.py`): each score moved by the
cases that changed, exactly once, however the recomputers crash or race.

- `score_totals`: one document per score: its cases and each indicator's numerator (`n`)
  and denominator (`d`), a `version` bumped by every move, and the last journals applied.
- A case's document keeps what the totals count of it (`counted`, a contribution), a
  revision of that (`crev`) and the last journals that moved it (`counted_by`).
- `evaluation_journal`: one document per batch of moves in flight.

A batch of dirty cases is moved in four steps, each safe to repeat:

1. **journal** what each case goes from and to (`counted` → its contribution now);
2. **claim** each case: `counted` set to the new contribution if `crev` is still what was
   read (another recomputer that read the same case claims it once, not twice), its mark
   (`dirty`, the changes not counted yet) taken down by the changes read;
3. **move** the totals by the claimed cases' differences, each score's update guarded by the
   journal's id (a score the journal moved already is not moved again);
4. **score** each moved key from its totals, written only over an older version, and the
   journal deleted.

A recomputer that died leaves its journal; the next one (after `ABANDONED`) does steps 3
and 4 of it again, with the cases it finds claimed by it.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from pymongo import DeleteOne, ReplaceOne, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import BulkWriteError

from gridloop.citypack.evaluation import EvaluationPolicy
from gridloop.mongo import Document
from gridloop.scoring import Level, Score
from services.evaluation.facts import CaseFacts
from services.evaluation.indicators import Judge
from services.evaluation.running import Key, contribution, deltas, totalled

DUPLICATE_KEY = 11000
# A journal this old is a dead recomputer's (a live one finishes a batch in seconds).
ABANDONED = timedelta(seconds=60)
KEEP_JOURNALS = 16  # the last journals a score remembers having applied
KEEP_CLAIMS = 4  # the last journals a case remembers having been claimed by

# A case with changes not counted yet (`dirty` above 0): what a round reads, by a partial
# index of the marked cases alone (`ScoreStore.marked_index`).
MARKED: Document = {"dirty": {"$gt": 0}}
MARKED_INDEX = "dirty_marked"


@dataclass(frozen=True)
class Move:
    """One case's move in a journal: from what the totals count of it to its contribution
    now, claimed if its `crev` is still `rev` (and its mark cleared if still `stamp`)."""

    case_id: str
    rev: int
    stamp: int
    before: Document | None
    after: Document

    def doc(self) -> Document:
        return {"case": self.case_id, "rev": self.rev, "before": self.before, "after": self.after}

    @classmethod
    def of(cls, doc: Document) -> Move:
        return cls(doc["case"], doc["rev"], 0, doc["before"], doc["after"])


class Totals:
    """Moves the stored scores by the cases marked dirty (`ScoreStore.apply_many`)."""

    def __init__(
        self,
        db: AsyncDatabase[Document],
        policy: EvaluationPolicy,
        zone: ZoneInfo,
        command_centre: str,
        name: Callable[[Level, str], str],
    ) -> None:
        self.case_facts = db["evaluation_cases"]
        self.totals = db["score_totals"]
        self.journal = db["evaluation_journal"]
        self.scores = db["scores"]
        self.policy, self.zone, self.command_centre, self.name = policy, zone, command_centre, name

    async def create_indexes(self) -> None:
        await self.journal.create_index("at")

    async def adopt(self) -> int:
        """Cases stored before running totals (never counted: no `crev`) marked dirty once,
        so the totals come to count them; how many. Remembered, so a restart scans nothing."""
        meta = self.case_facts.database["evaluation_meta"]
        if await meta.find_one({"_id": "totals"}) is not None:
            return 0
        never = {"period": {"$exists": True}, "crev": {"$exists": False}}
        marked = await self.case_facts.update_many(never, {"$inc": {"dirty": 1}})
        await meta.update_one({"_id": "totals"}, {"$set": {"since": _now()}}, upsert=True)
        return marked.modified_count

    async def in_flight(self) -> int:
        """Cases claimed by journals not finished yet (their scores are still to move)."""
        journals = self.journal.find({}, {"moves.case": 1})
        return sum([len(doc["moves"]) async for doc in journals])

    async def recompute_dirty(self, limit: int) -> list[tuple[Key, Score | None]]:
        """Move the totals by up to `limit` dirty cases (after finishing what dead
        recomputers left); each moved score with its new value (None: removed)."""
        done = await self._finish_abandoned()
        projection = {"dirty": 1, "facts": 1, "counted": 1, "crev": 1}
        marks = await self.case_facts.find(MARKED, projection).to_list(limit)
        if not marks:
            return done
        judge = Judge(self.policy.satisfied, self.policy.approve_within)
        moves = [self._move(doc, judge) for doc in marks]
        journal = uuid.uuid4().hex
        await self.journal.insert_one(
            {"_id": journal, "at": _now(), "moves": [m.doc() for m in moves]}
        )
        await self._claim(journal, moves)
        return done + await self._settle(journal, moves)

    def _move(self, doc: Document, judge: Judge) -> Move:
        facts = CaseFacts.model_validate(doc["facts"])
        now = contribution(facts, self.command_centre, self.zone, judge)
        return Move(doc["_id"], doc.get("crev", 0), doc["dirty"], doc.get("counted"), now)

    async def _claim(self, journal: str, moves: Sequence[Move]) -> None:
        """Step 2: each case's `counted` moved on if no other recomputer moved it first, and
        its mark taken down by the changes this move counts (`dirty` counts the changes not
        yet counted: one marked meanwhile keeps the case marked)."""
        writes = [
            UpdateOne(
                {"_id": move.case_id, **_at_rev(move.rev)},
                {
                    "$set": {"counted": move.after, "crev": move.rev + 1},
                    "$push": {"counted_by": {"$each": [journal], "$slice": -KEEP_CLAIMS}},
                    "$inc": {"dirty": -move.stamp},
                },
            )
            for move in moves
        ]
        await self.case_facts.bulk_write(writes, ordered=False)

    async def _settle(self, journal: str, moves: Sequence[Move]) -> list[tuple[Key, Score | None]]:
        """Steps 3 and 4: the totals moved by the cases this journal claimed, the moved
        scores written, the journal deleted."""
        ids = {"_id": {"$in": [m.case_id for m in moves]}, "counted_by": journal}
        claimed = {doc["_id"] async for doc in self.case_facts.find(ids, {"_id": 1})}
        moved = deltas((m.before, m.after) for m in moves if m.case_id in claimed)
        writes = [
            UpdateOne(
                {"_id": key.id, "journals": {"$ne": journal}},
                {
                    "$inc": delta.inc() | {"version": 1},
                    "$push": {"journals": {"$each": [journal], "$slice": -KEEP_JOURNALS}},
                },
                upsert=True,
            )
            for key, delta in moved.items()
        ]
        await _written(self.totals, writes)
        done = await self._scores(list(moved))
        await self.journal.delete_one({"_id": journal})
        return done

    async def _scores(self, keys: Sequence[Key]) -> list[tuple[Key, Score | None]]:
        """Step 4: each key scored from its totals, written over an older version only (a
        recomputer that read the totals earlier does not step a score back)."""
        ids = {"_id": {"$in": [k.id for k in keys]}}
        found = {doc["_id"]: doc async for doc in self.totals.find(ids)}
        done: list[tuple[Key, Score | None]] = []
        writes: list[ReplaceOne[Document] | DeleteOne] = []
        for key in keys:
            totals = found.get(key.id, {})
            score = totalled(key, totals, self.name(key.level, key.entity), self.policy)
            version = totals.get("version", 0)
            # Not `$or` with a missing version: SecantusDB then scans instead of finding `_id`.
            older = {"_id": key.id, "version": {"$not": {"$gte": version}}}
            if score is None:
                writes.append(DeleteOne(older))
            else:
                doc = score.model_dump(mode="json") | {"version": version}
                writes.append(ReplaceOne(older, doc, upsert=True))
            done.append((key, score))
        await _written(self.scores, writes)
        return done

    async def _finish_abandoned(self) -> list[tuple[Key, Score | None]]:
        done: list[tuple[Key, Score | None]] = []
        async for doc in self.journal.find({"at": {"$lt": _now() - ABANDONED}}):
            done += await self._settle(doc["_id"], [Move.of(m) for m in doc["moves"]])
        return done


async def _written(
    collection: AsyncCollection[Document],
    writes: Sequence[UpdateOne | ReplaceOne[Document] | DeleteOne],
) -> None:
    """Write `writes`; an upsert refused on `_id` found its document already written by
    this journal, or by a newer version: nothing to do."""
    if not writes:
        return
    try:
        await collection.bulk_write(list(writes), ordered=False)
    except BulkWriteError as exc:
        if any(e["code"] != DUPLICATE_KEY for e in exc.details["writeErrors"]):
            raise


def _at_rev(rev: int) -> Document:
    return {"crev": rev} if rev else {"crev": {"$exists": False}}


def _now() -> datetime:
    return datetime.now(UTC)
