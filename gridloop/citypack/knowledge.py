"""The city pack's knowledge base (`knowledge.yaml`, optional, 知识库): the questions residents
ask the hotline and the city's answers, each in a class (咨询类别: 供暖, 环境卫生, …) and valid
between two dates. Pure once loaded.

A consultation (咨询) the operator finds answered here is answered directly (直接答复) and
closed without dispatch (`services/intake`). An entry outside its valid dates (a heating
season's times, last year's collection schedule) is neither offered nor usable.

Search is character bigrams (two adjacent characters) over question and answer: Chinese is
written without spaces, so a word index would need a segmenter, while bigrams match 供暖时间
in 今年供暖时间是哪天 without one. A few hundred entries are scored in full on each search.

    kb = pack.knowledge
    kb.search("供暖什么时候开始", today)   # [Hit(entry=…, score=0.83), …], best first
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from gridloop.citypack.errors import read_model

KNOWLEDGE_FILE = "knowledge.yaml"
EntryId = Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")]


class Entry(BaseModel):
    """One question and its answer, valid from `valid_from` to `valid_until` (both
    inclusive, in the city's days; no end: until withdrawn)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    id: EntryId
    question: Annotated[str, Field(min_length=1, max_length=200)]
    answer: Annotated[str, Field(min_length=1, max_length=2000)]
    class_: Annotated[str, Field(alias="class", min_length=1, max_length=40)]
    valid_from: date
    valid_until: date | None = None

    def valid_on(self, day: date) -> bool:
        return self.valid_from <= day and (self.valid_until is None or day <= self.valid_until)

    def validity(self) -> str:
        """Its valid dates, as an error message says them."""
        until = self.valid_until.isoformat() if self.valid_until else "withdrawn"
        return f"valid from {self.valid_from.isoformat()} until {until}"


class KnowledgeFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    format: Literal["gridloop-knowledge/1"]
    entries: list[Entry] = []


@dataclass(frozen=True)
class Hit:
    entry: Entry
    score: float  # 0–1: the share of the query's bigrams found (question twice the answer)


_WORD = re.compile(r"[a-z0-9]+")
_SKIP = re.compile(r"[\W_]+")  # punctuation and spaces split runs of characters


def grams(text: str) -> frozenset[str]:
    """The bigrams of each run of characters (Latin words and numbers count whole); a run
    of one character counts as itself, so a one-character query still finds something."""
    found: set[str] = set()
    for run in _SKIP.split(text.lower()):
        found.update(_WORD.findall(run))
        han = _WORD.sub(" ", run).split()
        for part in han:
            found.update(part[i : i + 2] for i in range(len(part) - 1))
            if len(part) == 1:
                found.add(part)
    return frozenset(found)


class KnowledgeBase:
    """The pack's entries, searchable; empty when the pack has no `knowledge.yaml`."""

    def __init__(self, entries: list[Entry] | tuple[Entry, ...] = ()) -> None:
        self.entries = {e.id: e for e in entries}
        self._grams = {e.id: (grams(e.question), grams(e.answer)) for e in entries}

    def entry(self, entry_id: str) -> Entry | None:
        return self.entries.get(entry_id)

    def search(self, query: str, today: date, limit: int = 10) -> list[Hit]:
        """The entries valid `today` that share bigrams with `query`, best first (ties by
        id): each query bigram found in the question counts 2, in the answer alone 1."""
        wanted = grams(query)
        if not wanted:
            return []
        hits = []
        for entry in self.entries.values():
            if not entry.valid_on(today):
                continue
            in_question, in_answer = self._grams[entry.id]
            found = sum(2 if g in in_question else 1 if g in in_answer else 0 for g in wanted)
            if found:
                hits.append(Hit(entry, round(found / (2 * len(wanted)), 4)))
        hits.sort(key=lambda h: (-h.score, h.entry.id))
        return hits[:limit]


def check(file: KnowledgeFile) -> list[str]:
    """What the model alone cannot say is wrong: an id twice, an end before its start."""
    errors, seen = [], set()
    for i, entry in enumerate(file.entries):
        if entry.id in seen:
            errors.append(f"{KNOWLEDGE_FILE}: entries.{i}.id: {entry.id} is listed twice")
        seen.add(entry.id)
        if entry.valid_until is not None and entry.valid_until < entry.valid_from:
            errors.append(
                f"{KNOWLEDGE_FILE}: entries.{i}.valid_until: {entry.valid_until} is before "
                f"valid_from {entry.valid_from}"
            )
    return errors


def load_knowledge(root: Path, errors: list[str]) -> KnowledgeBase | None:
    """`knowledge.yaml` of the pack at `root` (an empty base when there is none); every
    error is appended to `errors`, and None is returned when there was one."""
    path = root / KNOWLEDGE_FILE
    if not path.exists():
        return KnowledgeBase()
    file = read_model(path, KnowledgeFile, errors)
    if file is None:
        return None
    found = check(file)
    errors.extend(found)
    return None if found else KnowledgeBase(file.entries)
