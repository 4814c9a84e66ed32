"""The city pack's knowledge base (知识库): validated at load with every error listed, and a
bigram search that ranks the entry a resident's question is about first."""

from __future__ import annotations

import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml

from gridloop.citypack import CityPackError, load_city_pack
from gridloop.citypack.knowledge import Entry, KnowledgeBase, grams

DEMO = Path(__file__).resolve().parents[2] / "gridloop" / "citypack" / "demo"
TODAY = date(2026, 12, 6)


def _entry(id: str, question: str, answer: str, **dates: date | None) -> Entry:
    valid = {"valid_from": date(2025, 1, 1)} | dates
    return Entry.model_validate(
        {"id": id, "question": question, "answer": answer, "class": "测试"} | valid
    )


def test_bigrams_of_chinese_and_latin_text() -> None:
    assert grams("供暖时间？") == {"供暖", "暖时", "时间"}
    assert grams("12345热线") == {"12345", "热线"}
    assert grams("扔") == {"扔"}  # a one-character run counts as itself
    assert grams("，。 ") == frozenset()


def test_ranking_puts_the_question_before_a_mention_in_an_answer() -> None:
    kb = KnowledgeBase(
        [
            _entry("a-mention", "大件垃圾怎么处理？", "预约清运，供暖期间照常。"),
            _entry("b-question", "供暖时间是什么时候？", "11月15日至次年3月15日。"),
            _entry("c-unrelated", "占道经营怎么投诉？", "拨打12345。"),
        ]
    )
    hits = kb.search("今年供暖时间", TODAY)
    # 今年供暖时间: 今年 年供 供暖 暖时 时间 (5 bigrams). b: 供暖 暖时 时间 in its question
    # (3 × 2 = 6 of 10); a: 供暖 in its answer alone (1 of 10); c: none.
    assert [(h.entry.id, h.score) for h in hits] == [("b-question", 0.6), ("a-mention", 0.1)]


def test_ties_are_ranked_by_id_and_limited() -> None:
    kb = KnowledgeBase([_entry(i, "垃圾分类", "按时投放") for i in ("z", "m", "a")])
    assert [h.entry.id for h in kb.search("垃圾", TODAY, limit=2)] == ["a", "m"]


def test_entries_outside_their_dates_are_not_offered() -> None:
    kb = KnowledgeBase(
        [
            _entry("old", "供暖时间", "去年", valid_until=date(2026, 3, 15)),
            _entry("future", "供暖时间", "明年", valid_from=date(2027, 10, 1)),
            _entry("now", "供暖时间", "今年", valid_until=TODAY),  # inclusive
        ]
    )
    assert [h.entry.id for h in kb.search("供暖", TODAY)] == ["now"]
    assert kb.search("", TODAY) == [] and kb.search("？", TODAY) == []


def test_demo_pack_answers_its_residents_questions() -> None:
    kb = load_city_pack(DEMO).knowledge
    assert kb.search("供暖什么时候开始", TODAY)[0].entry.id == "heating-2026"
    assert kb.search("垃圾分类投放时间", TODAY)[0].entry.id == "waste-sorting-times"
    assert kb.search("占道经营投诉渠道", TODAY)[0].entry.id == "street-vendors-channel"
    # Last season's heating times are kept in the pack but no longer offered.
    assert "heating-2025" not in {h.entry.id for h in kb.search("供暖时间", TODAY, 50)}


def test_a_bad_knowledge_file_lists_every_error(tmp_path: Path) -> None:
    root = tmp_path / "pack"
    shutil.copytree(DEMO, root)
    doc = yaml.safe_load((root / "knowledge.yaml").read_text(encoding="utf-8"))
    doc["entries"][1]["id"] = doc["entries"][0]["id"]  # an id twice
    doc["entries"][2]["valid_until"] = "2024-12-31"  # before valid_from 2025-01-01
    (root / "knowledge.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    with pytest.raises(CityPackError) as raised:
        load_city_pack(root)
    assert raised.value.errors == [
        "knowledge.yaml: entries.1.id: heating-2026 is listed twice",
        "knowledge.yaml: entries.2.valid_until: 2024-12-31 is before valid_from 2025-01-01",
    ]


def test_bad_fields_are_all_listed(tmp_path: Path) -> None:
    root = tmp_path / "pack"
    shutil.copytree(DEMO, root)
    doc = yaml.safe_load((root / "knowledge.yaml").read_text(encoding="utf-8"))
    del doc["entries"][0]["answer"]
    doc["entries"][1]["valid_from"] = "someday"
    doc["entries"][2]["id"] = "has spaces"
    (root / "knowledge.yaml").write_text(yaml.safe_dump(doc, allow_unicode=True), "utf-8")
    with pytest.raises(CityPackError) as raised:
        load_city_pack(root)
    errors = raised.value.errors
    assert len(errors) == 3
    assert errors[0].startswith("knowledge.yaml: entries.0.answer: Field required")
    assert errors[1].startswith("knowledge.yaml: entries.1.valid_from: ")
    assert errors[2].startswith("knowledge.yaml: entries.2.id: String should match")


def test_a_pack_without_a_knowledge_base_has_an_empty_one(tmp_path: Path) -> None:
    root = tmp_path / "pack"
    shutil.copytree(DEMO, root)
    (root / "knowledge.yaml").unlink()
    assert load_city_pack(root).knowledge.search("供暖", TODAY) == []
