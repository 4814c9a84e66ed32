"""Every database command a service sends is counted by collection and command, on the real
database (issue 20: the commands a case costs, named)."""

from __future__ import annotations

import asyncio
import uuid

from prometheus_client import REGISTRY

from gridloop.mongo import connect, database
from tests.conftest import Servers


def _count(collection: str, command: str) -> float:
    found = REGISTRY.get_sample_value(
        "gridloop_db_commands_total", {"collection": collection, "command": command}
    )
    return found or 0.0


def test_commands_are_counted_by_collection_and_command(servers: Servers) -> None:
    settings = servers.settings(mongodb_database=f"test_{uuid.uuid4().hex[:12]}")
    name = f"stats_{uuid.uuid4().hex[:8]}"

    async def work() -> None:
        client = connect(settings)
        try:
            db = database(client, settings)
            await db[name].insert_one({"_id": 1})
            await db[name].insert_one({"_id": 2})
            await db[name].update_one({"_id": 1}, {"$set": {"x": 1}})
            assert await db[name].find_one({"_id": 2}) == {"_id": 2}
            await db["other"].find_one({})
        finally:
            await client.close()

    asyncio.run(work())
    assert _count(name, "insert") == 2
    assert _count(name, "update") == 1
    assert _count(name, "find") == 1
    assert _count("other", "find") >= 1
    timed = REGISTRY.get_sample_value("gridloop_db_command_seconds_count", {"command": "insert"})
    assert timed is not None and timed >= 2
