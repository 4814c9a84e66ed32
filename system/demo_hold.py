"""The end of `gridloop demo`: the system stays up on the simulated day, for people to look
at it in the workbench. The services are restarted on a clock that goes on from the
simulated evening at real speed (at ×480 every case would be overdue within minutes); one
person per role is given a password; the front door's address and those logins are the
last thing printed; Ctrl-C stops everything."""

from __future__ import annotations

import asyncio
import json
import os
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path

from pymongo import AsyncMongoClient
from rich.console import Console
from rich.table import Table

from gridloop import running
from gridloop.access import Role
from gridloop.citypack.disputes import office_code
from gridloop.mongo import Document
from gridloop.people import People
from system.simulate.run import Hold, Target
from system.simulate.system import DATABASE, OwnSystem, at_real_speed
from system.up import Stopping, wait_for_stop


@dataclass(frozen=True)
class Login:
    role: str  # as a person calls it
    username: str
    password: str
    grants: Role
    subject: str


@dataclass(frozen=True)
class GridPerson:
    """The grid manager whose day the demo shows on the handheld (`/m/`), and the
    community tier office shown on the disputes desk (`/disputes`): `office`, else the
    office of their grid's community."""

    staff: str
    grid: str
    office: str | None = None

    @property
    def community(self) -> str:
        return self.office or office_code("community", self.grid)


def logins(department: str, grid: GridPerson | None = None) -> list[Login]:
    """One person per role of the workbench, each with a new random password; with `grid`,
    a grid manager (the handheld) and their community's tier office (the disputes desk)."""

    def new() -> str:
        return secrets.token_urlsafe(12)

    people = [
        Login("受理员 intake operator", "operator", new(), Role.supervision_centre, "centre"),
        Login("派遣员 dispatcher", "dispatcher", new(), Role.command_centre, "centre"),
        Login("值班长 shift lead", "lead", new(), Role.shift_lead, "centre"),
        Login("热线 hotline (回访)", "hotline", new(), Role.hotline, "hotline"),
        Login(
            f"{department} staff", f"staff.{department.lower()}", new(), Role.department, department
        ),
    ]
    if grid is not None:
        people += [
            Login("网格员 grid manager (/m/)", f"gm.{grid.staff.lower()}", new(),
                  Role.grid_staff, grid.staff),
            Login("社区 community tier office (/disputes)", f"community.{grid.community}",
                  new(), Role.tier_office, grid.community),
        ]  # fmt: skip
    return people


async def add_people(mongodb_uri: str, people: list[Login]) -> None:
    client: AsyncMongoClient[Document] = AsyncMongoClient(mongodb_uri)
    try:
        book = People(client[DATABASE])
        for login in people:
            await book.add(login.username, login.password, login.grants, login.subject)
    finally:
        await client.close()


def hold(console: Console, data_dir: Path) -> Hold:
    def keep(own: OwnSystem, target: Target) -> None:
        console.print("the simulated day is over: restarting the services on a real-time clock …")
        at_real_speed(own)
        department = busiest(target)
        people = logins(department, with_busiest_community(target, busiest_grid(target)))
        asyncio.run(add_people(own.env["MONGODB_URI"], people))
        state = _state(own, target, data_dir)
        running.write_state(state)
        try:
            _show(console, own, people, data_dir)
            with Stopping() as stop:
                wait_for_stop(own.system, console, stop)
        finally:
            running.remove_state(data_dir, os.getpid())

    return keep


def busiest(target: Target) -> str:
    """The department with the most cases of the day (the first of the pack's if none)."""
    from pymongo import MongoClient

    uri, database = target.mongodb
    client: MongoClient[Document]
    with MongoClient(uri) as client:
        counted: Iterable[Document] = client[database]["cases"].aggregate(
            [
                {"$match": {"department": {"$ne": None}}},
                {"$group": {"_id": "$department", "n": {"$sum": 1}}},
                {"$sort": {"n": -1, "_id": 1}},
                {"$limit": 1},
            ]
        )
        top = next(iter(counted), None)
    return str(top["_id"]) if top else sorted(target.pack.departments)[0]


def busiest_grid(target: Target) -> GridPerson | None:
    """The grid manager who logged the most visits of the day, in the grid they logged them
    (else the first grid's manager of the pack's register; None without one)."""
    from pymongo import MongoClient

    uri, database = target.mongodb
    client: MongoClient[Document]
    with MongoClient(uri) as client:
        counted: Iterable[Document] = client[database]["grid_visits"].aggregate(
            [
                {"$group": {"_id": {"staff": "$staff", "grid": "$grid"}, "n": {"$sum": 1}}},
                {"$sort": {"n": -1, "_id.staff": 1}},
                {"$limit": 1},
            ]
        )
        top = next(iter(counted), None)
    if top:
        return GridPerson(str(top["_id"]["staff"]), str(top["_id"]["grid"]))
    for grid in target.pack.grids:
        for person in target.pack.staff_of(grid.code):
            if person.role == "grid_manager":
                return GridPerson(person.id, grid.code)
    return None


def with_busiest_community(target: Target, person: GridPerson | None) -> GridPerson | None:
    """`person` with the community office that mediated the most of the day's disputes
    (escalated to a community: its desk has the day in it), when one did."""
    from pymongo import MongoClient

    if person is None:
        return None
    uri, database = target.mongodb
    client: MongoClient[Document]
    with MongoClient(uri) as client:
        counted: Iterable[Document] = client[database]["cases"].aggregate(
            [
                {"$match": {"kind": "dispute", "tier": "community"}},
                {"$group": {"_id": "$tier_office", "n": {"$sum": 1}}},
                {"$sort": {"n": -1, "_id": 1}},
                {"$limit": 1},
            ]
        )
        top = next(iter(counted), None)
    return replace(person, office=str(top["_id"])) if top else person


def _state(own: OwnSystem, target: Target, data_dir: Path) -> running.SystemState:
    """So that `gridloop status`, `gridloop people add`, … find the demo from anywhere."""
    system = own.system
    return running.SystemState(
        status="up",
        pid=os.getpid(),
        process_start=running.process_start(os.getpid()),
        started_at=datetime.now(UTC),
        data_dir=data_dir.resolve(),
        city_pack=Path(own.env["GRIDLOOP_CITY_PACK"]),
        mongodb_database=DATABASE,
        host="127.0.0.1",
        kafka_bootstrap_servers=own.env["KAFKA_BOOTSTRAP_SERVERS"],
        mongodb_uri=own.env["MONGODB_URI"],
        address=system.url("door"),
        services={name: system.url(name) for name in system.processes},
        logs=system.logs,
    )


def _show(console: Console, own: OwnSystem, people: list[Login], data_dir: Path) -> None:
    door = own.system.url("door")
    saved = data_dir / "demo-logins.json"
    saved.write_text(
        json.dumps(
            {p.username: {"password": p.password, "role": p.role} for p in people},
            ensure_ascii=False,
            indent=2,
        )
        + "\n",
        encoding="utf-8",
    )
    saved.chmod(0o600)
    table = Table(title=f"the workbench: {door}/login  (the simulated day is in it)")
    for column in ("role", "username", "password"):
        table.add_column(column, no_wrap=True)
    for login in people:
        table.add_row(login.role, login.username, login.password)
    console.print(table)
    console.print(
        f"The API at {door}/v1/…, Open311 at {door}/open311/v2/, the big screen at "
        f"{door}/screen. These logins are also in {saved}; `gridloop status` finds this "
        "system from any directory. Ctrl-C stops everything (the broker keeps its log in "
        "memory: the day is gone with it; `gridloop demo` plays a new one).",
        soft_wrap=True,
    )
