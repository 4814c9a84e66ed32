"""Every action of intake and dispatch (a department's, the command centre's, the centres'
and supervisors' on a case) answers with the case's `state` and `version` after it, beside
the event's name and ids: the OpenAPI each service publishes says so for every POST that
answers 202, and the answer's model requires them. No server is contacted."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from pymongo import AsyncMongoClient

from gridloop.auth import CredentialStore
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.kafka import EventProducer
from gridloop.mongo import Document
from services.dispatch.api import create_app as dispatch_app
from services.dispatch.handlers import Dispatch
from services.intake.api import Intake
from services.intake.api import create_app as intake_app

ANSWER = {"case_id", "state", "version", "type", "events"}


def _apps(producer: EventProducer) -> dict[str, FastAPI]:
    # Clients that would connect lazily: building the apps reaches no server.
    db = AsyncMongoClient[Document]("mongodb://127.0.0.1:9", connect=False)["answers"]
    pack = load_city_pack(DEMO_CITY_PACK)
    return {
        "dispatch": dispatch_app(Dispatch.on(pack, db, producer), CredentialStore(db)),
        "intake": intake_app(Intake(pack, producer, db, b"k" * 32)),
    }


def _schema(spec: dict[str, Any], ref: dict[str, Any]) -> dict[str, Any]:
    name = ref["$ref"].rsplit("/", 1)[-1]
    found: dict[str, Any] = spec["components"]["schemas"][name]
    return found


async def test_every_action_answers_the_case_state_and_version() -> None:
    producer = EventProducer("127.0.0.1:9")  # never started
    try:
        apps = _apps(producer)
    finally:
        await producer.stop()
    actions = 0
    for name, app in apps.items():
        spec = app.openapi()
        for path, operations in spec["paths"].items():
            post = operations.get("post")
            if post is None or "202" not in post["responses"]:
                continue
            actions += 1
            content = post["responses"]["202"]["content"]["application/json"]["schema"]
            answer = _schema(spec, content)
            if "accepted" in answer["properties"]:  # a batch: each report's answer
                answer = _schema(spec, answer["properties"]["accepted"]["items"])
            where = f"{name} POST {path}"
            assert set(answer["properties"]) >= ANSWER, where
            assert {"state", "version"} <= set(answer["required"]), where
    assert actions >= 20  # intake's and dispatch's case actions, the old paths and the new
