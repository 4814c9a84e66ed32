"""The desks' queues (`CaseReader`) on a real MongoDB-protocol server, over cases as the
projections write them: each queue finds its cases and only them, in its order, and a
deadline-ordered queue read in windows from now still finds the cases far from now."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pymongo import AsyncMongoClient

from gridloop.cases.reader import CaseReader
from gridloop.lifecycle import State
from gridloop.mongo import Document
from schemas.envelope import Envelope
from schemas.events import EVENT_TYPES, CaseAnnotation
from services.console.maps import Filters
from services.projections.store import CaseStore
from tests.conftest import Servers
from tests.samples import sample

NOW = datetime.now(UTC)
DESK = (State.dispatched, State.parked)


class Cases:
    def __init__(self, store: CaseStore) -> None:
        self.store = store

    async def add(
        self, case_id: str, *steps: tuple[str, dict[str, Any]], what: dict[str, Any] | None = None
    ) -> None:
        """A case reported and filed (`what`: its kind, class and grid, else the samples'),
        then `steps` (event type, its fields), in order."""
        what = what or {}
        events = [("gridloop.case.reported", what), ("gridloop.case.filed", what), *steps]
        envs, version = [], 0
        for n, (ce_type, fields) in enumerate(events):
            annotation = issubclass(EVENT_TYPES[ce_type], CaseAnnotation)
            version += 0 if annotation else 1
            key = "case_version" if annotation else "version"
            data = sample(ce_type, case_id=case_id, **{key: version}, **fields)
            envs.append(Envelope(data, "/tests", NOW - timedelta(days=40) + timedelta(minutes=n)))
        await self.store.apply_many(envs)

    async def dispatched(self, case_id: str, department: str, due_in: timedelta) -> None:
        fields = {"department": department, "deadline": NOW + due_in}
        await self.add(case_id, ("gridloop.case.dispatched", fields))


@pytest.fixture
async def reader(servers: Servers) -> AsyncIterator[tuple[CaseReader, Cases]]:
    client: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = client[f"desks_{uuid.uuid4().hex[:8]}"]
    store = CaseStore(db)
    await store.create_indexes()
    yield CaseReader(db), Cases(store)
    await client.drop_database(db.name)
    await client.close()


DUE = {  # case → when it is due, from now: far and near on both sides, and past the horizon
    "long-overdue": -timedelta(days=30),
    "overdue": -timedelta(days=2),
    "just-overdue": -timedelta(minutes=30),
    "due-soon": timedelta(minutes=10),
    "due-later": timedelta(hours=3),
    "due-next-year": timedelta(days=500),
}


async def test_a_department_queue_holds_its_cases_by_deadline_near_and_far(
    reader: tuple[CaseReader, Cases],
) -> None:
    cases, made = reader
    for case_id, due in DUE.items():
        await made.dispatched(case_id, "ROADS", due)
    await made.dispatched("waters", "WATER", timedelta(minutes=5))
    await made.dispatched("parked", "ROADS", timedelta(hours=1))
    await made.add("parked", ("gridloop.case.parked", {}))

    found = await cases.of_department("ROADS", DESK, limit=10, now=NOW)
    assert [c.case_id for c in found] == [*list(DUE)[:4], "parked", *list(DUE)[4:]]
    # More overdue than a page holds: the most recently overdue are shown, then the soonest.
    found = await cases.of_department("ROADS", (State.dispatched,), limit=2, now=NOW)
    assert [c.case_id for c in found] == ["overdue", "just-overdue"]
    assert await cases.of_department("ROADS", (State.handled,), limit=10, now=NOW) == []


async def test_the_overdue_queue_reads_the_most_recently_overdue_first(
    reader: tuple[CaseReader, Cases],
) -> None:
    cases, made = reader
    for case_id, due in DUE.items():
        await made.dispatched(case_id, "ROADS", due)
    found = await cases.overdue(NOW, limit=10)
    assert [c.case_id for c in found] == ["just-overdue", "overdue", "long-overdue"]
    assert [c.case_id for c in await cases.overdue(NOW, limit=1)] == ["just-overdue"]


async def test_windows_sized_by_density_still_read_the_nearest_in_order(
    reader: tuple[CaseReader, Cases],
) -> None:
    """Dense deadlines (one every 2 minutes, 80 on each side of now, so the first window
    holds several and the next ones are sized from them) and a few far away: a page is the
    nearest ones in order, none skipped between windows, with or without states to keep."""
    cases, made = reader
    for n in range(1, 81):
        await made.dispatched(f"late-{n:02d}", "ROADS", -timedelta(minutes=2 * n - 1))
        await made.dispatched(f"soon-{n:02d}", "ROADS", timedelta(minutes=2 * n - 1))
    await made.dispatched("late-far", "ROADS", -timedelta(days=90))
    await made.dispatched("soon-far", "ROADS", timedelta(days=90))

    overdue = await cases.overdue(NOW, limit=33)  # no states kept: each window limited
    assert [c.case_id for c in overdue] == [f"late-{n:02d}" for n in range(1, 34)]
    everything = await cases.overdue(NOW, limit=200)
    assert [c.case_id for c in everything][-2:] == ["late-80", "late-far"]
    assert len(everything) == 81

    page = await cases.of_department("ROADS", DESK, limit=45, now=NOW)  # states kept
    # the 45 nearest overdue and the 45 soonest due, by deadline, the first 45 of them
    assert [c.case_id for c in page] == [f"late-{n:02d}" for n in range(45, 0, -1)]
    both = await cases.of_department("ROADS", DESK, limit=500, now=NOW)
    assert len(both) == 162 and both[0].case_id == "late-far" and both[-1].case_id == "soon-far"


async def test_the_centres_and_intakes_queues_find_their_cases_only(
    reader: tuple[CaseReader, Cases],
) -> None:
    cases, made = reader
    citizen = {"channel": "website", "verifier": "sup-1", "verification_due": NOW}
    await made.store.apply_many(
        [Envelope(sample("gridloop.case.reported", case_id="citizens", **citizen), "/t", NOW)]
    )
    supervisors = sample("gridloop.case.reported", case_id="supervisors")
    await made.store.apply_many([Envelope(supervisors, "/t", NOW)])
    # Disputes (矛盾纠纷), from a resident and from a supervisor: their grid's, no one's task.
    dispute = {"kind": "dispute", "class_code": "0101"}
    await made.store.apply_many(
        [
            Envelope(
                sample("gridloop.case.reported", case_id=f"dispute-{c}", channel=c, **dispute),
                "/t",
                NOW,
            )
            for c in ("website", "supervisor")
        ]
    )
    await made.add("filed")
    await made.dispatched("asked", "ROADS", timedelta(hours=5))
    request = {"department": "ROADS", "request_id": "r-9", "deadline": NOW + timedelta(days=2)}
    await made.add("asked-more", ("gridloop.case.dispatched", {"department": "ROADS"}),
                   ("gridloop.case.extension_requested", request))  # fmt: skip

    assert [c.case_id for c in await cases.awaiting_verification(None, 10)] == ["citizens"]
    assert await cases.awaiting_verification(["99999999999999"], 10) == []
    assert [c.case_id for c in await cases.awaiting_filing(10)] == ["supervisors"]
    assert [c.case_id for c in await cases.in_states((State.filed,), 10)] == ["filed"]
    assert [c.case_id for c in await cases.with_pending_request(NOW, 10)] == ["asked-more"]

    urge = {"department": "ROADS", "urge_id": "u-1", "reply_by": NOW + timedelta(hours=4)}
    await made.add("urged", ("gridloop.case.dispatched", {"department": "ROADS"}),
                   ("gridloop.case.urged", urge))  # fmt: skip
    await made.add("urged-closed", ("gridloop.case.dispatched", {"department": "ROADS"}),
                   ("gridloop.case.urged", urge), ("gridloop.case.handled", {}),
                   ("gridloop.case.checked", {}), ("gridloop.case.closed", {}))  # fmt: skip
    assert [c.case_id for c in await cases.urged(10)] == ["urged"]  # open ones only


async def test_the_map_asks_the_database_for_its_filters(
    reader: tuple[CaseReader, Cases],
) -> None:
    """A filtered map is the nearest cases of that class or street, not the filter applied
    to the nearest of all: 30 cases of another class due sooner do not hide the one."""
    cases, made = reader
    for n in range(30):
        await made.dispatched(f"other-{n:02d}", "ROADS", timedelta(minutes=n + 1))
    what = {"kind": "event", "class_code": "0401", "grid_code": "110101002001001"}  # street 002
    due = {"department": "ROADS", "deadline": NOW + timedelta(hours=5)}
    await made.add("pothole", ("gridloop.case.dispatched", due), what=what)
    where = Filters("event:0401", "002").where()
    found = await cases.open_cases(NOW, limit=5, where=where)
    assert [c.case_id for c in found] == ["pothole"]
    assert [c.case_id for c in await cases.of_department("ROADS", DESK, 5, NOW, where)] == [
        "pothole"
    ]
    assert await cases.open_cases(NOW, limit=5, where=Filters(street="009").where()) == []


async def test_the_requests_queue_holds_every_kind_waiting_by_deadline(
    reader: tuple[CaseReader, Cases],
) -> None:
    """One queue for every kind of request (one mark, `requested`): an extension and a
    parking asked by the department, an operator's void (no deadline: last); a request
    denied, or settled by the decision that grants it, leaves it."""
    cases, made = reader

    async def asked(case_id: str, due_in: timedelta, *steps: tuple[str, dict[str, Any]]) -> None:
        fields = {"department": "ROADS", "deadline": NOW + due_in}
        await made.add(case_id, ("gridloop.case.dispatched", fields), *steps)

    ask = {"department": "ROADS", "deadline": NOW + timedelta(days=3)}
    await asked("extension", timedelta(hours=5),
                ("gridloop.case.extension_requested", ask | {"request_id": "r-e"}))  # fmt: skip
    await asked("parking", timedelta(hours=1),
                ("gridloop.case.parking_requested", {"request_id": "r-p"}))  # fmt: skip
    await made.add("void", ("gridloop.case.void_requested", {"request_id": "v-9"}))
    await asked("denied", timedelta(hours=2),
                ("gridloop.case.parking_requested", {"request_id": "r-d"}),
                ("gridloop.case.parking_denied", {"request_id": "r-d"}))  # fmt: skip
    await asked("granted", timedelta(hours=3),
                ("gridloop.case.extension_requested", ask | {"request_id": "r-g"}),
                ("gridloop.case.extended", {"request_id": "r-g"}))  # fmt: skip

    waiting = await cases.with_pending_request(NOW, 10)
    assert [c.case_id for c in waiting] == ["parking", "extension", "void"]
    assert [c.pending_request.kind for c in waiting if c.pending_request] == [
        "parking",
        "extension",
        "void",
    ]
    assert [c.case_id for c in await cases.with_pending_request(NOW, 2)] == ["parking", "extension"]


async def test_requests_projected_before_the_mark_are_marked_once_at_start(
    reader: tuple[CaseReader, Cases],
) -> None:
    """A database the projections wrote before `requested` existed (no mark, no index):
    the next start marks the cases with a request waiting, once."""
    cases, made = reader
    request = {"department": "ROADS", "request_id": "r-old", "deadline": NOW + timedelta(days=2)}
    await made.add("asked-before", ("gridloop.case.dispatched", {"department": "ROADS"}),
                   ("gridloop.case.extension_requested", request))  # fmt: skip
    await made.add("quiet", ("gridloop.case.dispatched", {"department": "ROADS"}))
    await made.store.cases.update_many({}, {"$unset": {"requested": ""}})
    await made.store.cases.drop_index("deadline_1_requested")
    assert await cases.with_pending_request(NOW, 10) == []

    assert await made.store.mark_requested() == 1
    await made.store.create_indexes()
    assert [c.case_id for c in await cases.with_pending_request(NOW, 10)] == ["asked-before"]
    assert await made.store.mark_requested() == 0  # the index is there: done before
