"""`POST /reports/batch`: up to `MAX_BATCH` reports in one request (a supervisor's handheld
syncing after a patrol out of coverage, a hotline floor's backlog, a city's import).

All or nothing: every report is validated and decided first (schema errors and refusals
named `["body", i, field]`, all of them in one answer), and nothing is published unless all
pass; then all events go to Kafka together and the 202 comes once Kafka acknowledged every
one of them. Same access as `POST /reports`, item by item (a channel's roles).

Idempotent per item: with an `Idempotency-Key`, report i's case id is derived from the key
and i, so a retried batch yields the very same events (consumers drop them as duplicates)
and the same case numbers; the stored answer is returned to an exact retry.

Duplicates are looked for among the cases already projected, as for single reports: two
reports of the same batch are not merged into each other.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import date
from itertools import islice
from typing import Annotated, Any, cast

from fastapi import APIRouter, Body
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymongo.errors import BulkWriteError

from gridloop.auth import Principal
from gridloop.errors import Rejected, refusals
from gridloop.idempotency import Answer
from schemas.events import CaseEvent, CaseFiled, CaseReported, Channel, Kind
from services.intake.api import (
    _CASE_NAMESPACE,
    Accepted,
    Anyone,
    Deps,
    IdempotencyKey,
    Intake,
    _accepted,
    _once,
    _scope,
)
from services.intake.core import ReportIn, case_number, decide_report, local_day, to_file
from services.intake.duplicates import Nearby
from services.intake.numbering import CaseNumbers
from services.intake.views import follow_token

MAX_BATCH = 500
DUPLICATE_KEY = 11000
router = APIRouter()
Reports = Annotated[list[ReportIn], Body(min_length=1, max_length=MAX_BATCH)]


class BatchAccepted(BaseModel):
    """A batch's 202: one answer per report, in the order sent."""

    accepted: list[Accepted]


def _case_id(who: Principal, key: str | None, i: int) -> str:
    if key is None:
        return str(uuid.uuid4())
    return str(uuid.uuid5(_CASE_NAMESPACE, f"{_scope('report-batch', who)}:{key}:{i}"))


def _problem(i: int, exc: Rejected) -> dict[str, Any]:
    """The refusal of report i, its body location indexed by i (header ones stay)."""
    loc: list[str | int] = list(exc.loc)
    if loc and loc[0] == "body":
        loc = ["body", i, *loc[1:]]
    return {"loc": loc, "msg": exc.reason, "type": exc.kind}


BATCH_ACCEPTED: dict[int | str, dict[str, Any]] = {
    202: {"model": BatchAccepted, "description": "Every report published"}
}


async def number_many(
    numbers: CaseNumbers, filed: Sequence[CaseFiled], day: date
) -> dict[str, str]:
    """Case numbers for the filings of a batch (`CaseNumbers.number_for`'s, in a few round
    trips): a case keeps a number it was given; the others take the next sequences of
    their class and day, in batch order."""
    ids = [f.case_id for f in filed]
    given = {d["_id"]: str(d["number"]) async for d in numbers.numbers.find({"_id": {"$in": ids}})}
    groups: dict[tuple[Kind, str], list[str]] = {}
    for f in filed:
        if f.case_id not in given:
            groups.setdefault((f.kind, f.class_code), []).append(f.case_id)
    # All classes at once: their counters move together (`CaseNumbers.advance`).
    lasts = await asyncio.gather(
        *(numbers.advance(f"{k}:{c}:{day:%Y%m%d}", len(ids)) for (k, c), ids in groups.items())
    )
    fresh: dict[str, str] = {}
    for ((kind, code), cases), last in zip(groups.items(), lasts, strict=True):
        first = last - len(cases) + 1
        fresh |= {c: case_number(kind, code, day, first + j) for j, c in enumerate(cases)}
    if fresh:
        try:
            docs = [{"_id": c, "number": n} for c, n in fresh.items()]
            await numbers.numbers.insert_many(docs, ordered=False)
        except BulkWriteError as exc:
            if any(e["code"] != DUPLICATE_KEY for e in exc.details["writeErrors"]):
                raise
            # A concurrent retry of the same batch numbered some first: those stand.
            raced = numbers.numbers.find({"_id": {"$in": list(fresh)}})
            fresh |= {d["_id"]: str(d["number"]) async for d in raced}
    return given | fresh


class _Batch:
    """The reports of one request on their way to events."""

    def __init__(
        self, intake: Intake, reports: Sequence[ReportIn], who: Principal, key: str | None
    ):
        self.intake, self.reports, self.who = intake, reports, who
        self.ids = [_case_id(who, key, i) for i in range(len(reports))]
        self.now = intake.clock()
        self.first: list[list[CaseEvent]] = []  # decided before the duplicate search

    def decide(self, i: int, nearby: Sequence[Nearby] = (), number: str | None = None) -> (
        list[CaseEvent]
    ):  # fmt: skip
        pack = self.intake.pack
        return decide_report(self.reports[i], pack, self.ids[i], self.who, self.now, nearby, number)

    async def refusals(self) -> list[tuple[int, Rejected]]:
        """Every report's refusal, if any, before anything is published."""
        found: list[tuple[int, Rejected]] = []
        for i in range(len(self.reports)):
            try:
                self.first.append(self.decide(i))
            except Rejected as exc:
                found.append((i, exc))
        media = [m for r in self.reports for m in r.media]
        if missing := set(await self.intake.media.missing(media)):
            for i, report in enumerate(self.reports):
                if unknown := [m for m in report.media if m in missing]:
                    reason = f"no uploaded media {', '.join(unknown)}"
                    found.append((i, Rejected(422, ("body", "media"), reason, "unknown_media")))
        return sorted(found, key=lambda f: f[0])

    async def events(self) -> list[list[CaseEvent]]:
        """Every report's events: duplicates merged, filings numbered."""
        reported = [events[0] for events in self.first]
        # One query for the batch's duplicate candidates.
        nearby = await self.intake.search.many(cast(list[CaseReported], reported))
        # Without candidates the first decision stands (decide_report is the costly part).
        decided = [self.decide(i, near) if near else self.first[i] for i, near in enumerate(nearby)]
        filings = {i: f for i, events in enumerate(decided) if (f := to_file(events))}
        day = local_day(self.intake.pack, self.now)
        numbers = await number_many(self.intake.numbers, list(filings.values()), day)
        for i, filed in filings.items():
            # What decide_report would make given the number: the filing, numbered.
            numbered = filed.model_copy(update={"case_number": numbers[filed.case_id]})
            decided[i] = [numbered if e is filed else e for e in decided[i]]
        return decided

    def answer(self, i: int, events: Sequence[CaseEvent], ids: Sequence[str]) -> dict[str, Any]:
        extra = {}
        if self.reports[i].channel is not Channel.supervisor:
            extra["follow_token"] = follow_token(self.intake.follow_key, self.ids[i])
        return _accepted(events, ids, **extra)[1]


@router.post(
    "/reports/batch",
    status_code=202,
    responses=BATCH_ACCEPTED | refusals(400, 401, 403, 503),
)
async def submit_reports(
    reports: Reports, intake: Deps, who: Anyone, key: IdempotencyKey = None
) -> JSONResponse:
    """Submit up to 500 reports at once: all are accepted, or none (every refusal named
    by the report's index)."""
    batch = _Batch(intake, reports, who, key)

    async def work() -> Answer:
        if refused := await batch.refusals():
            # The gravest first: a caller without the right credential is told so (401/403).
            gravest = min((exc for _, exc in refused), key=lambda exc: exc.status)
            problems = [_problem(i, exc) for i, exc in refused]
            raise _Refused(gravest.status, problems, gravest.headers)
        decided = await batch.events()
        ids = iter(await intake.publish([e for events in decided for e in events]))
        answers = [batch.answer(i, ev, list(islice(ids, len(ev)))) for i, ev in enumerate(decided)]
        return 202, {"accepted": answers}

    try:
        # The fingerprint matters only under a key.
        body = "[" + ",".join(r.model_dump_json() for r in reports) + "]" if key else ""
        return await _once(intake, "report-batch", who, key, body, work)
    except _Refused as refused:
        problems = {"detail": refused.problems}
        return JSONResponse(problems, status_code=refused.status, headers=refused.headers)


class _Refused(Exception):
    """Some reports of the batch were refused: nothing was published."""

    def __init__(
        self, status: int, problems: list[dict[str, Any]], headers: dict[str, str] | None
    ) -> None:
        super().__init__(f"{len(problems)} reports refused")
        self.status, self.problems, self.headers = status, problems, headers
