"""`gridloop people …`: the people who sign in to the workbench (the console)."""

from __future__ import annotations

import asyncio
import sys
from typing import Annotated

import typer

from gridloop.access import Role
from gridloop.config import Settings
from gridloop.mongo import connect, database
from gridloop.people import People
from gridloop.refusal import Refused
from system.admin import DataDir, on_system

people_app = typer.Typer(help="People: usernames and passwords for the workbench.")


@people_app.command("add")
def add(
    username: str,
    role: Annotated[str, typer.Argument(help="department, command_centre, supervision_centre, …")],
    subject: Annotated[str, typer.Argument(help="A department's code; an operator's desk")],
    name: Annotated[str, typer.Option(help="The name the console shows")] = "",
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
    data_dir: DataDir = None,
) -> None:
    """Add a person (the password is asked for, or read from standard input)."""
    password = (
        sys.stdin.readline().rstrip("\n")
        if password_stdin
        else typer.prompt("password", hide_input=True, confirmation_prompt=True)
    )
    with on_system(data_dir) as settings:
        try:
            asyncio.run(_add(settings, username, password, Role(role), subject, name))
        except Refused as refused:
            typer.echo(f"{'.'.join(refused.loc)}: {refused.reason}", err=True)
            raise typer.Exit(1) from None
    typer.echo(f"{username} may sign in as {role} {subject}")


async def _add(
    settings: Settings, username: str, password: str, role: Role, subject: str, name: str
) -> None:
    client = connect(settings)
    try:
        await People(database(client, settings)).add(username, password, role, subject, name)
    finally:
        await client.close()
