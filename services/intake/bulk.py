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

A caller the door rate-limits (no staff credential) spends one request of its per-address
window per report, before anything is decided: a batch of 500 is 500 requests, refused
whole (429) if the window has not that many left. Refusing batches to the public would be
simpler, but an app's offline queue (a citizen's reports sent once back in coverage) is
what the batch is for too; counted per report, one address files no more cases a minute
by batches than one report at a time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import date
from typing import Annotated, Any, cast

from fastapi import APIRouter, Body, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from pymongo.errors import BulkWriteError

from gridloop.access import Principal
from gridloop.commands import Answer, Opening
from gridloop.errors import STATUS, refusals
from gridloop.http import charge
from gridloop.refusal import Refused, invalid
from schemas.events import CaseEvent, CaseFiled, CaseReported, Kind
from services.intake.duplicates import Nearby
from services.intake.edge import Accepted, Anyone, Deps, IdempotencyKey, asked, new_case_id
from services.intake.handlers import Intake
from services.intake.numbering import CaseNumbers
from services.intake.reporting import case_number, decide_report, local_day, to_file
from services.intake.requests import ReportIn, report_of

MAX_BATCH = 500
DUPLICATE_KEY = 11000
router = APIRouter()
Reports = Annotated[list[ReportIn], Body(min_length=1, max_length=MAX_BATCH)]


class BatchAccepted(BaseModel):
    """A batch's 202: one answer per report, in the order sent."""

    accepted: list[Accepted]


def _problem(i: int, exc: Refused) -> dict[str, Any]:
    """The refusal of report i, its body location indexed by i (header ones stay)."""
    loc: list[str | int] = list(exc.loc)
    if loc and loc[0] == "body":
        loc = ["body", i, *loc[1:]]
    return {"loc": loc, "msg": exc.reason, "type": exc.code}


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
        self.intake = intake
        # Each report is known again by its own key and the whole batch's content: a
        # retried batch finds its cases; another batch under the key is refused, whatever
        # its length (a fingerprint only under a key; an anonymous caller's key is scoped
        # by it, `edge.scope`).
        content = "[" + ",".join(r.model_dump_json() for r in reports) + "]" if key else ""
        self.reports = [
            report_of(r, new_case_id("report-batch", who, key, i, content), who)
            for i, r in enumerate(reports)
        ]
        self.asked = [
            asked("report-batch", who, None if key is None else f"{key}:{i}", content)
            for i in range(len(reports))
        ]
        self.now = intake.clock()
        self.first: list[list[CaseEvent]] = []  # decided before the duplicate search

    def decide(self, i: int, nearby: Sequence[Nearby] = ()) -> list[CaseEvent]:
        return decide_report(self.intake.pack, self.reports[i], self.now, nearby)

    async def refusals(self) -> list[tuple[int, Refused]]:
        """Every report's refusal, if any, before anything is published."""
        found: list[tuple[int, Refused]] = []
        for i in range(len(self.reports)):
            try:
                self.first.append(self.decide(i))
            except Refused as exc:
                found.append((i, exc))
        media = [m for r in self.reports for m in r.media]
        if missing := set(await self.intake.media.missing(media)):
            for i, report in enumerate(self.reports):
                if unknown := [m for m in report.media if m in missing]:
                    reason = f"no uploaded media {', '.join(unknown)}"
                    found.append((i, invalid(("body", "media"), reason, "unknown_media")))
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

    def openings(self, decided: list[list[CaseEvent]]) -> list[Opening]:
        extra = self.intake.extra
        return [
            Opening(events, self.asked[i], extra(self.reports[i]))
            for i, events in enumerate(decided)
        ]


@router.post(
    "/reports/batch",
    status_code=202,
    responses=BATCH_ACCEPTED | refusals(400, 401, 403, 503),
)
async def submit_reports(
    reports: Reports, intake: Deps, who: Anyone, request: Request, key: IdempotencyKey = None
) -> JSONResponse:
    """Submit up to 500 reports at once: all are accepted, or none (every refusal named
    by the report's index). Without a staff credential, each report counts as a request
    against the per-address rate limit."""
    if (too_many := await charge(request, len(reports) - 1)) is not None:
        return too_many
    batch = _Batch(intake, reports, who, key)
    if refused := await batch.refusals():
        # The gravest first: a caller without the right credential is told so (401/403).
        gravest = min((exc for _, exc in refused), key=lambda exc: STATUS[exc.why])
        problems = {"detail": [_problem(i, exc) for i, exc in refused]}
        headers = {"WWW-Authenticate": "Bearer"} if STATUS[gravest.why] == 401 else None
        return JSONResponse(problems, status_code=STATUS[gravest.why], headers=headers)
    # Its uploads linked to its cases before the claims (`media.py`).
    await intake.media.attach_many({r.case_id: r.media for r in batch.reports})
    for report in batch.reports:  # sealed in the contact store before the claims
        await intake.keep_contact(report)
    answers: list[Answer] = await intake.path.open(batch.openings(await batch.events()))
    return JSONResponse({"accepted": [a.body for a in answers]}, status_code=202)
