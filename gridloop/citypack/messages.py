"""Telling reporters (告知) — the pack's `messages.yaml` (optional): the channels a reporter is
reached through and the Chinese templates of what they are told. Loaded and validated with
the rest of the pack (`load_city_pack(path).messages`, None without the file); pure.

    channels:            # tried in order: the first the reporter's contact can take
      - kind: sms        # a provider's webhook (HTTP POST, signed like a department's)
        url: https://sms.example.cn/send
        secret: whsec_…
      - kind: email      # SMTP
        host: smtp.example.cn
        port: 25
        sender: 12345@example.cn
        subject: 12345 市民服务热线
    templates:           # one per event told, every placeholder known
      case.filed: 您反映的问题已立案，案件编号 {case_number}。

A channel takes the contact's phone (`sms`), WeChat id (`wechat`: a template message) or
email (`email`). Every error of the file is listed at load: an unknown placeholder, an event
without its template, a template for an event never told, a channel named twice.
"""

from __future__ import annotations

import string
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, HttpUrl

from gridloop.citypack.errors import line_of, read_model, yaml_lines

MESSAGES_FILE = "messages.yaml"
# What a reporter is told of, in this order along the loop.
TOLD = ("case.filed", "case.dispatched", "case.handled", "case.closed")
PLACEHOLDERS = {
    "case_number": "the case's number (立案编号), its id before it has one",
    "case_id": "the case's id",
    "class_name": "the name of the case's class (e.g. 暴露垃圾)",
    "department_name": "the name of the department handling it",
    "follow_url": "the reporter's link to follow and rate the case (with their follow token)",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ProviderChannel(_Strict):
    """An SMS gateway or WeChat template messages, reached by a signed webhook."""

    kind: Literal["sms", "wechat"]
    url: HttpUrl
    secret: Annotated[str, Field(pattern=r"^whsec_[A-Za-z0-9+/=]{16,}$")]


class EmailChannel(_Strict):
    """Email through an SMTP server (plain, or STARTTLS where `starttls`)."""

    kind: Literal["email"]
    host: Annotated[str, Field(min_length=1, max_length=253)]
    port: Annotated[int, Field(ge=1, le=65535)] = 25
    sender: Annotated[str, Field(pattern=r"^[^@\s]+@[^@\s]+$")]
    subject: Annotated[str, Field(min_length=1, max_length=200)]
    starttls: bool = False


Channel = Annotated[ProviderChannel | EmailChannel, Field(discriminator="kind")]
ChannelKind = Literal["sms", "wechat", "email"]
Template = Annotated[str, Field(min_length=1, max_length=500)]


class MessagesFile(_Strict):
    channels: Annotated[list[Channel], Field(min_length=1)]
    templates: dict[str, Template]


def template_problems(templates: Mapping[str, str]) -> list[tuple[str, str]]:
    """Every problem of the templates, each as (the event it is under, what is wrong)."""
    found: list[tuple[str, str]] = []
    for event in TOLD:
        if event not in templates:
            found.append((event, "no template: every event told needs one"))
    for event, text in templates.items():
        if event not in TOLD:
            found.append((event, f"not an event a reporter is told of ({', '.join(TOLD)})"))
            continue
        found.extend((event, problem) for problem in _placeholder_problems(text))
    return found


def _placeholder_problems(text: str) -> list[str]:
    try:
        fields = [(f, spec, conv) for _, f, spec, conv in string.Formatter().parse(text)]
    except ValueError as exc:  # an unmatched brace
        return [f"not a template: {exc}"]
    problems = []
    for name, spec, conversion in fields:
        if name is None:
            continue
        if name not in PLACEHOLDERS:
            known = ", ".join("{" + p + "}" for p in PLACEHOLDERS)
            problems.append(f"unknown placeholder {{{name}}} (known: {known})")
        elif spec or conversion:
            problems.append(f"placeholder {{{name}}} takes no format or conversion")
    return problems


@dataclass(frozen=True)
class MessagePolicy:
    """The loaded `messages.yaml`: channels in order, templates by event."""

    channels: tuple[ProviderChannel | EmailChannel, ...]
    templates: Mapping[str, str]

    def channel(self, kind: str) -> ProviderChannel | EmailChannel | None:
        return next((c for c in self.channels if c.kind == kind), None)

    def render(self, event: str, values: Mapping[str, str]) -> str:
        """The message of `event` with `values` in place (a value not given: empty)."""
        return self.templates[event].format_map({p: values.get(p) or "" for p in PLACEHOLDERS})


def load_messages(root: Path, errors: list[str]) -> MessagePolicy | None:
    """`messages.yaml` of the pack at `root` (None without one: nobody is told); every error
    is appended to `errors`, and None returned when there was one."""
    path = root / MESSAGES_FILE
    if not path.exists():
        return None
    read = read_model(path, MessagesFile, errors)
    if read is None:
        return None
    lines = yaml_lines(yaml.compose(path.read_text(encoding="utf-8")))
    found = [
        f"{MESSAGES_FILE}:{line_of(lines, ('templates', event))}: templates.{event}: {problem}"
        for event, problem in template_problems(read.templates)
    ]
    kinds = [c.kind for c in read.channels]
    found += [
        f"{MESSAGES_FILE}: channels: {kind} named more than once"
        for kind in sorted({k for k in kinds if kinds.count(k) > 1})
    ]
    errors.extend(found)
    return None if found else MessagePolicy(tuple(read.channels), dict(read.templates))
