"""The command path as a service builds it: heads in MongoDB, events to the shared producer,
and cases from before heads adopted from the projection (run the relay beside it:
`gridloop.commands.relay.Relay(path).run`)."""

from __future__ import annotations

from pymongo.asynchronous.database import AsyncDatabase

from gridloop.cases.reader import CaseReader
from gridloop.commands.kafka import LogPublisher
from gridloop.commands.mongo import MongoHeads
from gridloop.commands.path import CommandPath
from gridloop.kafka import EventProducer
from gridloop.mongo import Document
from schemas import clock


def command_path(db: AsyncDatabase[Document], producer: EventProducer, source: str) -> CommandPath:
    return CommandPath(
        MongoHeads(db), LogPublisher(producer), source, clock.now, CaseReader(db).view
    )


async def create_indexes(db: AsyncDatabase[Document]) -> None:
    """The heads' indexes (the relay's search), once at a service's start."""
    await MongoHeads(db).create_indexes()
