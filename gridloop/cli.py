"""The `gridloop` command."""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gridloop.config import Settings

app = typer.Typer(
    help="gridloop: a city's grid-management closed loop (网格化管理).", no_args_is_help=True
)
schemas_app = typer.Typer(help="The event contract: JSON Schemas of every event.")
city_app = typer.Typer(help="City packs: the reference data of a city.")
app.add_typer(schemas_app, name="schemas")
app.add_typer(city_app, name="city")
console = Console()


class Service(StrEnum):
    intake = "intake"
    dispatch = "dispatch"
    notify = "notify"
    sla = "sla"
    projections = "projections"
    desk = "desk"


@app.command()
def up(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where the embedded database keeps its files and the logs go"),
    ] = None,
) -> None:
    """Start the whole system on this machine: broker, database, every service."""
    from gridloop.up import run_all

    raise typer.Exit(run_all(data_dir or Settings().data_dir, console))


@app.command()
def run(service: Service) -> None:
    """Run one service alone (production: one container per service)."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    settings = Settings()
    if service is Service.sla:
        from services.sla.main import run as run_sla

        run_sla(settings)
        return
    asyncio.run(_run_async(service, settings))


async def _run_async(service: Service, settings: Settings) -> None:
    if service is Service.intake:
        from services.intake.main import run as main
    elif service is Service.dispatch:
        from services.dispatch.main import run as main
    elif service is Service.notify:
        from services.notify.main import run as main
    elif service is Service.projections:
        from services.projections.main import run as main
    else:
        from gridloop.desk import run as main
    await main(settings)


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[
        Path, typer.Argument(help="Where to write one file per event type")
    ] = Path("schemas/json"),
) -> None:
    """Write the JSON Schema of every event type."""
    from schemas.export import export

    for path in export(directory):
        console.print(f"wrote {path}")


@city_app.command("check")
def city_check(path: Path) -> None:
    """Validate a city pack and list every error."""
    from gridloop.citypack import CityPackError, load_city_pack

    try:
        pack = load_city_pack(path)
    except CityPackError as exc:
        for error in exc.errors:
            console.print(f"[red]error[/] {error}")
        console.print(f"{len(exc.errors)} error(s)")
        raise typer.Exit(1) from exc
    console.print(
        f"[green]ok[/] {pack.city.name}: {len(pack.grids)} grids, "
        f"{len(pack.classes)} classes, {len(pack.departments)} departments"
    )


credentials_app = typer.Typer(help="Credentials: bearer tokens with a role.")
app.add_typer(credentials_app, name="credentials")


@credentials_app.command("issue")
def credentials_issue(
    role: Annotated[
        str,
        typer.Argument(
            help="hotline, supervisor, supervision_centre, command_centre, department or admin"
        ),
    ],
    subject: Annotated[
        str,
        typer.Argument(help="Who holds it: a supervisor id, a department code, an operator's name"),
    ],
    note: str = "",
) -> None:
    """Issue a token (printed once; only its hash is stored)."""
    from gridloop.auth import CredentialStore, Role
    from gridloop.mongo import connect, database

    async def issue() -> str:
        settings = Settings()
        client = connect(settings)
        try:
            return await CredentialStore(database(client, settings)).issue(
                Role(role), subject, note
            )
        finally:
            await client.close()

    console.print(asyncio.run(issue()))
