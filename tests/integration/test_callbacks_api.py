"""Callbacks (回访) over intake's HTTP API, on the real broker and database: a closed case
whose reporter left a contact is in the hotline's queue with whom to call (an audited
read); a call that reaches nobody and then the resident's answers are published to
`closures` with the rating on the feedback's path; a retry is answered as before, a second
answer and a case owing no callback are refused with status, field and reason."""

from __future__ import annotations

import uuid

from gridloop.auth import Role
from gridloop.contacts import Contact
from schemas.events import (
    CallbackAnswered,
    CallbackUnreached,
    FeedbackGiven,
)
from tests.integration.test_feedback import Desk, desk

__all__ = ["desk"]  # the fixture, shared with test_feedback
PHONE = "13912345678"


async def reachable_case(desk: Desk) -> str:
    """A closed case (test_feedback's) whose reporter left a contact, kept sealed."""
    case_id = await desk.closed_case()
    ref = "ct_" + uuid.uuid4().hex
    await desk.intake.contacts.put(ref, case_id, Contact(name="李娜", phone=PHONE))
    cases = desk.db["cases"]
    await cases.update_one({"_id": case_id}, {"$set": {"reporter.contact": ref}})
    doc = await cases.find_one({"_id": case_id})
    assert doc is not None and doc["reporter"]["contact"] == ref
    return case_id


async def test_the_hotline_calls_back_and_the_resident_answers(desk: Desk) -> None:
    case_id = await reachable_case(desk)
    hotline = desk.bearer(Role.hotline)
    # The case is adopted from its projection when a command first meets it: until then
    # the queue (read from the heads) does not know it; a first call adopts it.
    tried = await desk.http.post(
        f"/cases/{case_id}/callback/unreached",
        json={},
        headers=hotline | {"Idempotency-Key": "try-1"},
    )
    assert tried.status_code == 202, tried.text
    owed = await desk.http.get("/callbacks", headers=hotline)
    [task] = [t for t in owed.json() if t["case_id"] == case_id]
    assert (task["tries"], task["tries_left"]) == (1, 2)
    assert task["reporter"]["phone"] == PHONE and task["department"] == "SANITATION"
    read = await desk.intake.audit.find(case_id=case_id)
    assert any(r["kind"] == "read" and "phone" in r.get("fields", []) for r in read)
    assert PHONE not in str(read)  # the audit names the fields, never their values

    answer = {"contacted": True, "solved": True, "satisfaction": "basically_satisfied"}
    headers = hotline | {"Idempotency-Key": "answer-1"}
    first = await desk.http.post(f"/cases/{case_id}/callback", json=answer, headers=headers)
    again = await desk.http.post(f"/cases/{case_id}/callback", json=answer, headers=headers)
    assert first.status_code == again.status_code == 202, first.text
    assert first.json() == again.json() and first.json()["state"] == "evaluated"
    unreached, answered, given = await desk.published(case_id, 3)
    assert isinstance(unreached.data, CallbackUnreached) and unreached.data.attempt == 1
    assert isinstance(answered.data, CallbackAnswered)
    assert answered.data.satisfaction == "basically_satisfied"
    assert isinstance(given.data, FeedbackGiven) and given.data.rating == 4
    assert PHONE not in str([e.data.model_dump() for e in (unreached, answered, given)])
    assert case_id not in {
        t["case_id"] for t in (await desk.http.get("/callbacks", headers=hotline)).json()
    }

    # Another answer to the same closure: refused, nothing published. (The same request
    # again, without a key, is a retry and gets the original answer: the command path.)
    other = answer | {"satisfaction": "dissatisfied"}
    twice = await desk.http.post(f"/cases/{case_id}/callback", json=other, headers=hotline)
    assert twice.status_code == 409
    problem = twice.json()["detail"][0]
    assert (problem["loc"], problem["type"]) == (["state"], "callback_answered")
    assert twice.json()["state"] == "evaluated"


async def test_a_callback_not_owed_or_badly_asked_is_refused(desk: Desk) -> None:
    hotline = desk.bearer(Role.hotline)
    silent = await desk.closed_case()  # its reporter left no contact
    answer = {"contacted": True, "solved": True, "satisfaction": "satisfied"}
    refused = await desk.http.post(f"/cases/{silent}/callback", json=answer, headers=hotline)
    assert refused.status_code == 409
    problem = refused.json()["detail"][0]
    assert (problem["loc"], problem["type"]) == (["path", "case_id"], "no_contact")

    case_id = await reachable_case(desk)
    bad = await desk.http.post(
        f"/cases/{case_id}/callback", json=answer | {"satisfaction": "meh"}, headers=hotline
    )
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["body", "satisfaction"]
    supervisor = await desk.http.post(
        f"/cases/{case_id}/callback", json=answer, headers=desk.bearer(Role.supervisor)
    )
    assert supervisor.status_code == 403
    missing = await desk.http.post("/cases/C-none/callback/unreached", json={}, headers=hotline)
    assert missing.status_code == 404
    # Nothing was claimed for any of them: the case still owes its whole callback.
    head = await desk.db["case_heads"].find_one({"_id": case_id})
    assert head is None or (head["view"]["state"], head["view"]["callback_tries"]) == ("closed", 0)
