"""Telling reporters (issue 18 item 5): the pack's templates are rendered as written and
validated at load with every error listed; which channel a contact takes; what a message
says of each event; an address masked for the gateway's log."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridloop.cases.record import CaseRecord
from gridloop.citypack import CityPackError, load_city_pack
from gridloop.citypack.messages import MESSAGES_FILE, template_problems
from gridloop.config import DEMO_CITY_PACK
from gridloop.contacts import Contact
from schemas.envelope import Envelope
from schemas.events import (
    CaseClosed,
    CaseDispatched,
    CaseFiled,
    CaseReported,
    CaseVerified,
    Reporter,
)
from services.notify.reporters import (
    Untold,
    addressed,
    channel_for,
    concerns_reporters,
    masked,
    reporter_message,
)
from tests.samples import sample_of

PACK = load_city_pack(DEMO_CITY_PACK)
AT = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
CONTACT = "ct_" + "0" * 32
GARBAGE = PACK.classes[("event", "0102")].name  # 暴露垃圾


def _pack_with(tmp_path: Path, messages: dict[str, Any]) -> Path:
    root = tmp_path / "pack"
    if not root.exists():
        shutil.copytree(DEMO_CITY_PACK, root)
    (root / MESSAGES_FILE).write_text(yaml.safe_dump(messages, allow_unicode=True), "utf-8")
    return root


def _demo_messages() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((DEMO_CITY_PACK / MESSAGES_FILE).read_text("utf-8"))
    return loaded


def _case(**changes: Any) -> CaseRecord:
    fields: dict[str, Any] = {
        "_id": "c-1",
        "state": "filed",
        "version": 3,
        "kind": "event",
        "class_code": "0102",
        "case_number": "S0102-20260302-0007",
        "department": "SANITATION",
        "channel": "hotline",
        "reporter": Reporter(id="hotline", contact=CONTACT),
    }
    return CaseRecord.model_validate(fields | changes)


def test_the_demo_templates_render_in_chinese() -> None:
    assert PACK.messages is not None
    text = PACK.messages.render(
        "case.filed",
        {"case_number": "S0102-1", "class_name": "暴露垃圾", "follow_url": "https://x/f"},
    )
    assert (
        text == "【12345】您反映的问题（暴露垃圾）已立案，案件编号 S0102-1。进展可查询：https://x/f"
    )


def test_a_value_not_given_renders_empty() -> None:
    assert PACK.messages is not None
    text = PACK.messages.render("case.dispatched", {"case_number": "S1"})
    assert text == "【12345】案件 S1 已派遣至办理。"


def test_template_problems_are_all_listed() -> None:
    problems = template_problems(
        {
            "case.filed": "编号 {case_number} {phone}",  # personal data is no placeholder
            "case.dispatched": "{case_number!r} {department_name:>10}",
            "case.handled": "未闭合 {case_number",
            "case.rework": "返工",
        }
    )
    assert sorted(problems) == sorted(
        [
            ("case.closed", "no template: every event told needs one"),
            ("case.filed", problems[1][1]),
            ("case.dispatched", "placeholder {case_number} takes no format or conversion"),
            ("case.dispatched", "placeholder {department_name} takes no format or conversion"),
            ("case.handled", problems[4][1]),
            ("case.rework", problems[5][1]),
        ]
    )
    assert problems[1][1].startswith("unknown placeholder {phone} (known: {case_number},")
    assert problems[4][1].startswith("not a template: ")
    assert problems[5][1].startswith("not an event a reporter is told of (case.filed,")


def test_a_bad_messages_file_is_refused_with_every_error_and_its_line(tmp_path: Path) -> None:
    messages = _demo_messages()
    messages["templates"]["case.filed"] = "您的电话 {phone}"
    del messages["templates"]["case.closed"]
    messages["channels"].append(dict(messages["channels"][0]))  # sms twice
    messages["channels"][1]["secret"] = "not-a-secret"
    with pytest.raises(CityPackError) as refused:
        load_city_pack(_pack_with(tmp_path, messages))
    errors = refused.value.errors
    # pydantic's errors come first and stop the cross-checks: fix and load again
    assert errors == [
        "messages.yaml: channels.1.wechat.secret: String should match pattern "
        "'^whsec_[A-Za-z0-9+/=]{16,}$'"
    ]
    messages["channels"][1]["secret"] = messages["channels"][0]["secret"]
    with pytest.raises(CityPackError) as refused:
        load_city_pack(_pack_with(tmp_path, messages))
    errors = refused.value.errors
    assert len(errors) == 3, errors
    lines = (tmp_path / "pack" / MESSAGES_FILE).read_text().splitlines()

    def line(start: str) -> int:
        return next(i for i, text in enumerate(lines, 1) if text.strip().startswith(start))

    templates_line, filed_line = line("templates:"), line("case.filed")
    # a missing template: the line of `templates`
    assert errors[0] == (
        f"messages.yaml:{templates_line}: templates.case.closed: no template: "
        "every event told needs one"
    )
    assert errors[1].startswith(
        f"messages.yaml:{filed_line}: templates.case.filed: unknown placeholder {{phone}}"
    )
    assert errors[2] == "messages.yaml: channels: sms named more than once"


def test_a_pack_without_the_file_tells_nobody(tmp_path: Path) -> None:
    root = _pack_with(tmp_path, _demo_messages())
    (root / MESSAGES_FILE).unlink()
    assert load_city_pack(root).messages is None


@pytest.mark.parametrize(
    ("contact", "channel"),
    [
        (Contact(phone="13700001111", wechat="wx_abcdef", email="a@b.cn"), "sms"),
        (Contact(wechat="wx_abcdef", email="a@b.cn"), "wechat"),
        (Contact(email="a@b.cn", name="王"), "email"),
        (Contact(name="王", address="东城区"), None),  # nothing a channel takes
        (Contact(phone="13700001111", opted_out=True), None),
        (None, None),  # erased
    ],
)
def test_the_first_channel_the_contact_can_take(contact: Contact | None, channel: str) -> None:
    assert PACK.messages is not None
    assert channel_for(PACK.messages, contact) == channel


def _env(data: Any) -> Envelope:
    return Envelope(data, source="/test", time=AT)


def test_what_a_reporter_is_told_of_each_event() -> None:
    filed = _env(
        CaseFiled(
            case_id="c-1",
            version=3,
            kind="event",
            class_code="0102",
            grid_code="110101001001001",
            case_number="S0102-20260302-0007",
            actor={"id": "centre-1", "role": "supervision_centre"},
        )
    )
    message = reporter_message(filed, _case(case_number=None), PACK, "https://door/f?token=t")
    assert message == {
        "type": "case.filed",
        "timestamp": AT.isoformat(),
        "data": {
            "case_id": "c-1",
            "case_number": "S0102-20260302-0007",  # from the event: the case may lag
            "text": f"【12345】您反映的问题（{GARBAGE}）已立案，案件编号 S0102-20260302-0007。"
            "进展可查询：https://door/f?token=t",
        },
    }
    dispatched = _env(
        CaseDispatched(
            case_id="c-1",
            version=4,
            department="GREENING",
            deadline=AT,
            rule="test",
            actor={"id": "dispatch", "role": "system"},
        )
    )
    told = reporter_message(dispatched, _case(), PACK, "")
    assert told is not None
    greening = PACK.departments["GREENING"].name
    assert told["data"]["text"] == f"【12345】案件 S0102-20260302-0007 已派遣至{greening}办理。"
    closed = reporter_message(
        _env(CaseClosed(case_id="c-1", version=7, actor=_actor())), _case(), PACK, "https://f"
    )
    assert closed is not None and closed["data"]["text"].endswith("请对办理结果评价：https://f")


def _actor() -> dict[str, str]:
    return {"id": "centre-1", "role": "supervision_centre"}


def test_nobody_is_told_of_other_events_or_without_a_contact() -> None:
    verified = _env(CaseVerified(case_id="c-1", version=2, actor=_actor()))
    assert not concerns_reporters(verified)
    assert reporter_message(verified, _case(), PACK, "") is None
    closed = _env(CaseClosed(case_id="c-1", version=7, actor=_actor()))
    assert reporter_message(closed, _case(reporter=Reporter(id="SUP-1")), PACK, "") is None
    assert reporter_message(closed, _case(reporter=None), PACK, "") is None


def test_the_address_is_added_only_as_the_message_is_sent() -> None:
    body = json.dumps({"type": "case.closed", "data": {"text": "已办结"}}, ensure_ascii=False)
    sent = json.loads(addressed(body, "sms", "13700001111"))
    assert sent == {
        "type": "case.closed",
        "data": {"text": "已办结"},
        "channel": "sms",
        "to": "13700001111",
    }


@pytest.mark.parametrize(
    ("address", "shown"),
    [
        ("13712345678", "137****5678"),
        ("+86 137 1234 5678", "+86****5678"),
        ("wangxy@example.cn", "w***@example.cn"),
        ("wx_wang2026", "wx***"),
    ],
)
def test_an_address_is_masked_for_operators(address: str, shown: str) -> None:
    assert masked(address) == shown


def _reported(case_id: str, reporter: Reporter) -> Envelope:
    return Envelope(sample_of(CaseReported, case_id=case_id, reporter=reporter), "/tests")


def test_a_case_reported_without_a_contact_is_known_to_have_no_reporter_to_tell() -> None:
    untold = Untold()
    untold.learn(
        [
            _reported("C-patrol", Reporter(id="supervisor-7")),
            _reported("C-hotline", Reporter(contact=CONTACT)),
            # Written before contacts left the log: `gridloop contacts migrate` keeps its
            # phone under a reference, so it may be told.
            _reported("C-old", Reporter(phone="13800000000")),
            Envelope(sample_of(CaseFiled, case_id="C-filed"), "/tests"),
        ]
    )
    assert "C-patrol" in untold
    assert "C-hotline" not in untold and "C-old" not in untold and "C-filed" not in untold


def test_the_untold_cases_kept_are_the_newest() -> None:
    untold = Untold(most=2)
    untold.learn([_reported(f"C-{n}", Reporter()) for n in range(3)])
    assert len(untold) == 2
    assert "C-0" not in untold and "C-2" in untold
