"""The end-to-end bench's database CPU by command (`bench.dbcost`): SecantusDB started
through it counts each command it serves, by name, collection and filter fields."""

from __future__ import annotations

import time
from pathlib import Path

from pymongo import MongoClient

from bench import dbcost
from bench.servers import servers


def test_the_database_counts_its_cpu_by_command(tmp_path: Path) -> None:
    with servers(tmp_path, need_kafka=False, db_cost=True) as s:
        client: MongoClient[dict[str, object]] = MongoClient(s.mongodb)
        things = client["cost"]["things"]
        before = dbcost.read(s.db_cost)
        things.insert_many([{"_id": n, "kind": "a"} for n in range(3)])
        for n in range(3):
            things.update_one({"_id": n, "kind": "a"}, {"$set": {"kind": "b"}})
        assert things.find_one({"kind": "b"}) is not None
        client.close()
        time.sleep(0.6)  # written five times a second
        after = dbcost.read(s.db_cost)
    spent = dbcost.spent(before, after)
    assert spent["insert things"][1] == 1
    assert spent["update things _id,kind"][1] == 3
    assert spent["find things kind"][1] == 1
    assert all(ns > 0 for ns, n in spent.values() if n)
    shown = dict(dbcost.rows(before, after, cases=3))
    assert shown["  update things _id,kind"].startswith(
        f"{spent['update things _id,kind'][0] / 1e6 / 3:.2f} ms a case, 1.00 a case"
    )


def test_a_bench_without_it_reads_nothing(tmp_path: Path) -> None:
    assert dbcost.read(None) == {} and dbcost.read(tmp_path / "none.json") == {}
    assert dbcost.rows({}, {}, cases=10) == []
