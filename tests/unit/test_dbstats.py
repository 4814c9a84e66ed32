"""Which collection a database command works on (`gridloop.dbstats`)."""

from __future__ import annotations

from gridloop.dbstats import collection_of


def test_a_command_names_its_collection_in_its_first_field() -> None:
    assert collection_of("find", {"find": "cases", "filter": {}}) == "cases"
    assert collection_of("findAndModify", {"findAndModify": "claims"}) == "claims"
    assert collection_of("getMore", {"getMore": 12345, "collection": "cases"}) == "cases"


def test_a_command_on_no_collection_is_counted_under_a_dash() -> None:
    assert collection_of("ping", {"ping": 1}) == "-"
    assert collection_of("hello", {"hello": 1}) == "-"
