"""MongoDB access through PyMongo's async API (the maintained successor of Motor)."""

from __future__ import annotations

from typing import Any

from pymongo import AsyncMongoClient
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
