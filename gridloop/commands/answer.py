"""What a command answers (its 202): the case's state and version after it, the events it
published, and what they say that a client needs (case number, request id, …). Pure."""

from __future__ import annotations

from collections.abc import Sequence

from gridloop.cases.view import CaseView
from gridloop.commands.head import Body
from schemas.envelope import Envelope
from schemas.events import CaseAnnotation, CaseFiled, CaseMerged, event_name


def answer_body(view: CaseView, envs: Sequence[Envelope]) -> Body:
    """The answer of a command whose events `envs` brought the case to `view`."""
    last = envs[-1].data
    body: Body = {
        "case_id": view.case_id,
        "state": view.state.value,
        "version": view.version,
        "type": event_name(last.ce_type),  # as the timeline and the webhook name it
        "events": [env.id for env in envs],
    }
    for env in envs:
        data = env.data
        if isinstance(data, CaseFiled) and data.case_number:
            body["case_number"] = data.case_number
        elif isinstance(data, CaseMerged):
            body["merged_into"] = data.into_case_id
        if request_id := getattr(data, "request_id", None):
            body["request_id"] = request_id
        if urge_id := getattr(data, "urge_id", None):
            body["urge_id"] = urge_id
    if isinstance(last, CaseAnnotation):
        body["case_version"] = last.case_version  # the version it annotates
    return body
