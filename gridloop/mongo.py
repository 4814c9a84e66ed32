"""MongoDB access through PyMongo's async API (the maintained successor of Motor)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pymongo import ASCENDING, AsyncMongoClient
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.config import Settings
from gridloop.dbstats import LISTENER

Document = dict[str, Any]


def connect(settings: Settings) -> AsyncMongoClient[Document]:
    # Short server selection: a database outage surfaces as a transient error the consumer
    # loop retries, instead of a handler hanging for the driver's default 30 s.
    # Every command is counted by collection (`gridloop.dbstats`).
    return AsyncMongoClient(
        settings.mongodb_uri,
        serverSelectionTimeoutMS=5_000,
        tz_aware=True,
        event_listeners=[LISTENER],
    )


def database(client: AsyncMongoClient[Document], settings: Settings) -> AsyncDatabase[Document]:
    return client[settings.mongodb_database]


async def index_names(collection: AsyncCollection[Document]) -> set[str]:
    return {index["name"] async for index in await collection.list_indexes()}


async def partial_index(
    collection: AsyncCollection[Document],
    name: str,
    keys: Sequence[str],
    mark: Document,
    replaces: Sequence[str],
) -> None:
    """An ascending index `name` of `keys` holding the documents matching `mark` alone (a
    query reads it only if it implies `mark`), in place of the full index of the fields
    `replaces` an earlier release made: that one dropped first, once (a server may refuse
    a second index of the same fields)."""
    full = "_".join(f"{field}_1" for field in replaces)
    if full in await index_names(collection):
        await collection.drop_index(full)
    fields = [(field, ASCENDING) for field in keys]
    await collection.create_index(fields, name=name, partialFilterExpression=mark)
