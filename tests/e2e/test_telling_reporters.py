"""Reporters are told of their case (issue 18 item 5, "done when"): the whole system as
`gridloop up` runs it, the stand-in gateway (`system/gateway.py`) taking the SMS.

A hotline caller is told of the filing (with the case number), the dispatch, the handling and
the closure (with the link to follow and rate the case, whose token works), in that order,
once each — although the gateway's first answer to every message is lost (notify sends it
again under the same `webhook-id`, the gateway drops the repeat) and notify is restarted
after the loop. A caller who opted out at the report, one who opted out later with the
follow token, and one whose contact was erased are told nothing. The gateway's log holds no
phone number in clear.
"""

from __future__ import annotations

import asyncio
import json
import secrets
from typing import Any
from urllib.parse import urlsplit

import httpx

from gridloop.auth import Role
from tests.e2e.conftest import Receiver, Running
from tests.e2e.test_closed_loop import case_in_state
from tests.e2e.test_personal_data_lifecycle import bearer, work_through
from tests.helpers import eventually

TOLD = ["case.filed", "case.dispatched", "case.handled", "case.closed"]


def _call(lon: float, lat: float = 39.9208, **reporter: Any) -> dict[str, Any]:
    """A hotline call about exposed garbage in SUP-0001's grids (each at its own point:
    more than the class's 30 m from any other report, so none is merged)."""
    return {
        "channel": "hotline",
        "kind": "event",
        "class_code": "0102",
        "point": {"lon": lon, "lat": lat},
        "description": "垃圾堆在路边",
        "reporter": {"phone": f"135{secrets.randbelow(10**8):08d}"} | reporter,
    }


def _messages(receiver: Receiver, case_id: str) -> list[dict[str, Any]]:
    assert receiver.gateway is not None
    return [m for m in receiver.gateway.messages if m["case_id"] == case_id]


async def test_reporters_are_told_in_order_once_each_unless_they_opted_out(
    running: Running, receiving: Receiver
) -> None:
    hotline = bearer(await running.token(Role.hotline, "op-told"))
    centre = bearer(await running.token(Role.supervision_centre, "centre-told"))
    async with httpx.AsyncClient(base_url=running.system.url("intake"), headers=centre) as intake:

        async def report(body: dict[str, Any]) -> dict[str, Any]:
            answer = await intake.post("/reports", json=body, headers=hotline)
            assert answer.status_code == 202, answer.text
            found: dict[str, Any] = answer.json()
            return found

        told_call = _call(116.4002)
        told = await report(told_call)
        receiving.lose_answers.add(told["case_id"])
        quiet = await report(_call(116.4008, messages=False))
        later = await report(_call(116.4013))
        erased = await report(_call(116.4019))

        async def projected() -> bool:
            for case in (told, quiet, later, erased):
                if (await intake.get(f"/cases/{case['case_id']}")).status_code != 200:
                    return False
            return True

        # The four cases projected before the loop goes on: an earlier test restarts the
        # projection after a rebuild, and the opt-out reads the projected case.
        await eventually(projected, within=60, what="the four cases projected")
        # The reporter who opts out later, with the follow token their report answered.
        public = httpx.AsyncClient(base_url=running.system.url("intake"))
        async with public:
            path = f"/cases/{later['case_id']}/contact/opt-out"
            wrong = await public.post(path, params={"token": "glf_" + "0" * 32})
            assert wrong.status_code == 404, wrong.text
            opted = await public.post(path, params={"token": later["follow_token"]})
            assert opted.status_code == 200, opted.text
            assert opted.json() == {"case_id": later["case_id"], "opted_out": True}
        gone = await intake.post(
            f"/cases/{erased['case_id']}/contact/erasure", json={}, headers=hotline
        )
        assert gone.status_code == 200 and gone.json()["erased"], gone.text
        cases = [told, quiet, later, erased]
        await asyncio.gather(*(work_through(running, intake, c["case_id"]) for c in cases))

        async def all_four() -> list[dict[str, Any]] | None:
            found = _messages(receiving, told["case_id"])
            return found if len(found) >= len(TOLD) else None

        messages = await eventually(all_four, within=60, what="the four messages")
        assert [m["type"] for m in messages] == TOLD

        async def each_sent_again() -> bool:
            return receiving.repeats >= len(TOLD)

        # every one came again after its lost answer, and was recorded once
        await eventually(each_sent_again, what="each message sent again")

        # Notify restarted after the loop: it reads its topics on, and sends nothing again.
        running.system.processes.pop("notify").stop()
        running.system.start_service("notify")
        case = (await intake.get(f"/cases/{told['case_id']}")).json()
        number = case["case_number"]
        await _a_later_case_is_told(running, receiving, intake, report)
        assert [m["type"] for m in _messages(receiving, told["case_id"])] == TOLD

    texts = [m["text"] for m in messages]
    for text in texts:
        assert number in text, (number, text)
    assert texts[0].startswith("【12345】您反映的问题") and "已立案" in texts[0]
    sanitation = running.pack.departments["SANITATION"].name
    assert texts[1] == f"【12345】案件 {number} 已派遣至{sanitation}办理。"
    assert "处理完毕" in texts[2]
    link = texts[3].rsplit("：", 1)[1]
    assert link.endswith(f"/v1/cases/{told['case_id']}/public?token={told['follow_token']}")
    # The link's path and token follow the case (the door maps /v1 to intake).
    parts = urlsplit(link)
    async with httpx.AsyncClient(base_url=running.system.url("intake")) as public:
        followed = await public.get(
            parts.path.removeprefix("/v1"), params={"token": told["follow_token"]}
        )
    assert followed.status_code == 200 and followed.json()["state"] == "evaluated"

    for case in (quiet, later, erased):
        assert _messages(receiving, case["case_id"]) == []
    # What an operator may read of the gateway: numbers masked, none in clear.
    phone = told_call["reporter"]["phone"]
    assert {m["to"] for m in messages} == {f"{phone[:3]}****{phone[-4:]}"}
    assert running.system.logs.exists()
    log = (running.system.logs.parent / "gateway" / "messages.jsonl").read_bytes()
    assert told["case_id"].encode() in log and phone.encode() not in log
    assert [
        json.loads(line)["type"] for line in log.splitlines() if told["case_id"].encode() in line
    ] == TOLD


async def _a_later_case_is_told(
    running: Running, receiving: Receiver, intake: httpx.AsyncClient, report: Any
) -> None:
    """After notify's restart, a new case's filing still reaches its reporter (so the
    restarted notify is reading, and sent nothing again of the earlier case)."""
    fresh = await report(_call(116.4012, 39.92045, wechat="wx_told2026"))
    await work_through_filing(running, intake, fresh["case_id"])

    async def filed() -> list[dict[str, Any]] | None:
        found = _messages(receiving, fresh["case_id"])
        return found or None

    message = (await eventually(filed, within=60, what="the later case's filing message"))[0]
    assert message["type"] == "case.filed" and message["channel"] == "sms"


async def work_through_filing(running: Running, intake: httpx.AsyncClient, case_id: str) -> None:
    await case_in_state(intake, case_id, "reported")
    supervisor = bearer(await running.token(Role.supervisor, "SUP-0001"))
    verified = await intake.post(
        f"/cases/{case_id}/verification", json={"confirmed": True}, headers=supervisor
    )
    assert verified.status_code == 202, verified.text
