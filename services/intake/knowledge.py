"""The knowledge base at intake (知识库) and answering a consultation from it (直接答复).

- `GET /knowledge?q=`: the entries valid today that match a question, best first (character
  bigrams, `gridloop.citypack.knowledge`): hotline and supervision centre
- `POST /cases/{id}/answer`: answer a consultation directly with one of them; the case ends
  `answered` (`case.answered`), never filed or dispatched: hotline and supervision centre
"""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from gridloop.auth import Principal, Role, require
from gridloop.errors import refusals
from schemas.limits import Note
from services.intake import commands as do
from services.intake.edge import ACT, Deps, IdempotencyKey, asked, respond
from services.intake.reporting import local_day

router = APIRouter(tags=["knowledge base"])
Answerer = Annotated[Principal, Depends(require(Role.hotline, Role.supervision_centre))]


class KnowledgeHit(BaseModel):
    """An entry of the knowledge base and how well it matched (0–1)."""

    id: str
    class_: str = Field(alias="class")
    question: str
    answer: str
    valid_from: date
    valid_until: date | None
    score: float


class AnswerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    knowledge_id: Annotated[str, Field(min_length=1, max_length=40)]
    note: Note = None


@router.get("/knowledge", responses=refusals(401, 403), response_model_by_alias=True)
async def search_knowledge(
    intake: Deps,
    _: Answerer,
    q: Annotated[str, Query(min_length=1, max_length=200)],
    limit: Annotated[int, Query(ge=1, le=50)] = 10,
) -> list[KnowledgeHit]:
    """The knowledge base's entries valid today (the city's day) that answer `q`, best
    first; entries outside their valid dates are never offered."""
    today = local_day(intake.pack, intake.clock())
    return [
        KnowledgeHit.model_validate(hit.entry.model_dump(by_alias=True) | {"score": hit.score})
        for hit in intake.pack.knowledge.search(q, today, limit)
    ]


@router.post("/cases/{case_id}/answer", status_code=202, responses=ACT)
async def answer_directly(
    case_id: str, body: AnswerIn, intake: Deps, who: Answerer, key: IdempotencyKey = None
) -> JSONResponse:
    """Answer a consultation (咨询) directly from the knowledge base entry `knowledge_id`:
    closed as answered, without filing or dispatch. Refused: a case no longer as reported
    (409), a supervisor's report (409), an unknown or expired entry (422)."""
    command = do.AnswerDirectly(case_id, who, body.knowledge_id, body.note)
    return respond(await intake.act(command, asked("answer", who, key, body.model_dump_json())))
