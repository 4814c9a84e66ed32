"""The `gridloop` command."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from gridloop import tracing
from gridloop.config import Settings
from services.evaluation.cli import scores_app
from system import admin
from system.admin import AsJson, DataDir, emit
from system.contacts import contacts_app
from system.people import people_app

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
    evaluation = "evaluation"
    grid = "grid"
    console = "console"
    desk = "desk"
    door = "door"


@app.command()
def up(
    data_dir: Annotated[
        Path | None,
        typer.Option(
            help="Where the embedded database keeps its files, the logs go and state.json "
            "says where everything listens (default: GRIDLOOP_DATA_DIR, else .gridloop)"
        ),
    ] = None,
) -> None:
    """Start the whole system on this machine: broker, database, every service, the demo
    department desk. The other commands find it from any directory (`gridloop status`)."""
    from system.up import run_all

    raise typer.Exit(run_all(data_dir or Settings().data_dir, console))


# Libraries that log what goes over the wire at DEBUG: Kafka message values (aiokafka),
# database commands and replies (pymongo), request URLs (httpx, httpcore). Those carry
# reporters' names and phones and webhook URLs, so they never log below these levels.
WIRE_LOGGERS = {"aiokafka": "INFO", "pymongo": "INFO", "httpx": "WARNING", "httpcore": "WARNING"}


def quiet_wire_loggers() -> None:
    for name, level in WIRE_LOGGERS.items():
        logging.getLogger(name).setLevel(level)


def configure_logging(level: str) -> None:
    """The services' logging: `level` (GRIDLOOP_LOG_LEVEL), the wire loggers kept quiet."""
    logging.basicConfig(format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger().setLevel(level.upper())
    quiet_wire_loggers()


@app.command()
def run(service: Service) -> None:
    """Run one service alone (production: one container per service)."""
    settings = Settings()
    configure_logging(settings.log_level)
    tracing.configure(service.value, settings.otlp_endpoint)
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
    elif service is Service.evaluation:
        from services.evaluation.main import run as main
    elif service is Service.grid:
        from services.grid.main import run as main
    elif service is Service.console:
        from services.console.main import run as main
    elif service is Service.door:
        from system.frontdoor.main import run as main
    else:
        from system.desk import run as main
    await main(settings)


@schemas_app.command("export")
def schemas_export(
    directory: Annotated[
        Path, typer.Argument(help="Where to write one file per event type")
    ] = Path("schemas/json"),
    as_json: AsJson = False,
) -> None:
    """Write the JSON Schema of every event type."""
    from schemas.export import export

    written = export(directory)
    if as_json:
        emit({"written": [str(path) for path in written]})
        return
    for path in written:
        console.print(f"wrote {path}")


@city_app.command("check")
def city_check(path: Path, as_json: AsJson = False) -> None:
    """Validate a city pack and list every error."""
    from gridloop.citypack import CityPackError, load_city_pack

    try:
        pack = load_city_pack(path)
    except CityPackError as exc:
        if as_json:
            emit({"ok": False, "errors": [str(error) for error in exc.errors]})
            raise typer.Exit(1) from exc
        for error in exc.errors:
            console.print("[red]error[/]", end=" ")
            console.print(error, markup=False, highlight=False, soft_wrap=True)
        console.print(f"{len(exc.errors)} error(s)")
        raise typer.Exit(1) from exc
    counts = {
        "grids": len(pack.grids),
        "classes": len(pack.classes),
        "departments": len(pack.departments),
        "components": len(pack.components),
        "location_rules": len(pack.routing.rules),
        "sla_rules": len(pack.sla.file.rules),
    }
    if as_json:
        emit({"ok": True, "city": pack.city.name, **counts})
        return
    console.print(
        f"[green]ok[/] {pack.city.name}: {counts['grids']} grids, "
        f"{counts['classes']} classes, {counts['departments']} departments, "
        f"{counts['components']} components, {counts['location_rules']} location rules, "
        f"{counts['sla_rules']} SLA rules",
        soft_wrap=True,
    )


@city_app.command("generate")
def city_generate(
    out_dir: Annotated[
        Path, typer.Argument(help="Where to write the pack (its files are replaced)")
    ],
    seed: Annotated[
        int | None, typer.Option(help="The same seed gives the same files (default 110101)")
    ] = None,
    fraction: Annotated[
        float, typer.Option(help="A smaller district for quick tries, e.g. 0.1 (0 < f ≤ 1)")
    ] = 1.0,
    as_json: AsJson = False,
) -> None:
    """Generate the demo city: a pack shaped like Beijing's Dongcheng district (110101)."""
    import time

    from gridloop.citypack.generate import DEFAULT_SEED, generate_city_pack

    if not 0 < fraction <= 1:
        raise typer.BadParameter("must be in (0, 1]", param_hint="--fraction")
    started = time.perf_counter()
    made = generate_city_pack(out_dir, DEFAULT_SEED if seed is None else seed, fraction)
    if as_json:
        emit(made)
        return
    console.print(
        f"[green]wrote[/] {out_dir} in {time.perf_counter() - started:.1f} s (seed {made.seed}): "
        f"{made.streets} streets, {made.communities} communities, {made.grids} grids, "
        f"{made.components} components, {made.departments} departments, {made.classes} classes",
        soft_wrap=True,
    )
    console.print(f"check it with: gridloop city check {out_dir}", soft_wrap=True)


app.command("status")(admin.status)
app.add_typer(admin.credentials_app, name="credentials")
app.add_typer(people_app, name="people")
app.add_typer(admin.department_app, name="department")
app.add_typer(admin.webhooks_app, name="webhooks")
app.command("audit")(admin.audit)


@app.command("report")
def report(
    period: Annotated[str, typer.Option(help="The month, YYYY-MM, in the city's time")],
    out: Annotated[
        Path | None, typer.Option(help="Where to write the files (default: report-<period>)")
    ] = None,
    city: Annotated[
        Path | None, typer.Option(help="The city pack (default: the running system's)")
    ] = None,
    data_dir: DataDir = None,
    as_json: AsJson = False,
) -> None:
    """The monthly analysis of residents' demands (月度分析报告): report.html with charts,
    report.pdf and one CSV a table, from the case projections and the scores."""
    from gridloop.citypack import CityPackError, load_city_pack
    from services.evaluation.report.main import run_report
    from services.evaluation.report.model import PERIOD, Period

    if not PERIOD.fullmatch(period):  # before anything is loaded: a typo costs nothing
        raise typer.BadParameter(
            f"must be a month written YYYY-MM, e.g. 2026-11; got {period!r}", param_hint="--period"
        )
    with admin.on_system(data_dir) as settings:
        try:
            pack = load_city_pack(city or settings.city_pack)
        except CityPackError as exc:
            raise typer.BadParameter(str(exc.errors[0]), param_hint="--city") from exc
        month = Period.parse(period, pack.city.timezone)
        target = out or Path(f"report-{period}")
        shown = Console(stderr=True) if as_json else console  # stdout: the JSON alone
        files = run_report(settings, pack, month, target, shown)
    if as_json:
        emit({"period": period, "out": str(target), "files": [str(f) for f in files]})


app.add_typer(scores_app, name="scores")


# A simulated start needs its UTC offset: the city's time is not the machine's.
START_FORMATS = ["%Y-%m-%dT%H:%M%z", "%Y-%m-%dT%H:%M:%S%z"]


@app.command()
def simulate(
    rate: Annotated[float, typer.Option(min=0.01, help="Reports a (real) second")] = 2.0,
    duration: Annotated[
        str, typer.Option(help="How long to report, real time: 20s, 5m, 1h, PT20S")
    ] = "1m",
    speed: Annotated[
        float, typer.Option(min=1.0, help="Simulated seconds a real second (240: a day in 6 min)")
    ] = 240.0,
    drain: Annotated[
        str, typer.Option(help="Then at most this long (real) for open cases to go round")
    ] = "1m",
    seed: Annotated[int, typer.Option(help="The same seed, the same reports and answers")] = 1,
    start: Annotated[
        datetime | None,
        typer.Option(
            formats=START_FORMATS,
            help="Simulated start, e.g. 2026-11-02T08:00+08:00 (own system; default: next Monday "
            "08:00 city time)",
        ),
    ] = None,
    city: Annotated[
        Path | None, typer.Option(help="The city pack (default: GRIDLOOP_CITY_PACK)")
    ] = None,
    data_dir: Annotated[Path | None, typer.Option(help="Own system's files and logs")] = None,
    intake_url: Annotated[
        str | None,
        typer.Option(help="Drive a running system instead (its clock: --speed must match)"),
    ] = None,
    dispatch_url: Annotated[str | None, typer.Option(help="… and its dispatch service")] = None,
    grid_url: Annotated[
        str | None, typer.Option(help="… and its grid service (without: no grid people play)")
    ] = None,
    receivers_port: Annotated[
        int | None, typer.Option(help="… where its pack's webhooks go (default GRIDLOOP_DESK_PORT)")
    ] = None,
) -> None:
    """Simulate the city: reports by channel, departments answering their webhooks,
    supervisors' checks, residents' feedback, through the public interfaces only."""
    from gridloop.citypack import load_city_pack
    from system.simulate.profile import Profile
    from system.simulate.run import Options, parse_duration, simulate_own, simulate_running

    settings = Settings()
    try:
        seconds, drain_seconds = parse_duration(duration), parse_duration(drain)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from exc
    if start is not None and start.utcoffset() is None:
        raise typer.BadParameter("give the start a UTC offset, e.g. 2026-11-30T08:00+08:00")
    options = Options(rate, seconds, speed, drain_seconds, start, Profile(seed=seed))
    pack_dir = city or settings.city_pack
    if intake_url is None:
        tally = simulate_own(
            pack_dir, (data_dir or settings.data_dir) / "simulate", options, console
        )
    else:
        urls = {
            "intake": intake_url,
            "dispatch": dispatch_url or f"http://{settings.host}:{settings.dispatch_port}",
        }
        if grid_url:
            urls["grid"] = grid_url
        port = receivers_port or settings.desk_port
        mongodb = (settings.mongodb_uri, settings.mongodb_database)
        pack = load_city_pack(pack_dir)
        tally = simulate_running(pack, urls, port, mongodb, options, console)
    raise typer.Exit(1 if tally.errors else 0)


@app.command()
def demo(
    data_dir: Annotated[Path | None, typer.Option(help="Where the demo keeps its files")] = None,
    speed: Annotated[float, typer.Option(min=1.0, help="A simulated day in 86400/speed s")] = 480.0,
    rate: Annotated[float, typer.Option(min=0.01, help="Reports a (real) second")] = 2.0,
    seed: Annotated[int | None, typer.Option(help="The district's seed (default 110101)")] = None,
    days: Annotated[
        float, typer.Option(min=0.01, help="Simulated days (30 at --speed 8640: a month in 5 min)")
    ] = 1.0,
    start: Annotated[
        datetime | None,
        typer.Option(formats=START_FORMATS, help="Simulated start, e.g. 2026-11-02T08:00+08:00"),
    ] = None,
    stay: Annotated[
        bool,
        typer.Option(
            help="Keep the system up afterwards, with a login per role for the workbench "
            "(Ctrl-C stops it); --no-stay ends with the report"
        ),
    ] = True,
) -> None:
    """The closed loop on the Dongcheng demo district: a simulated day (or more), compressed,
    then the departments' scores, the month's report, and the workbench to look at it."""
    from gridloop.citypack.generate import DEFAULT_SEED
    from system.demo import run_demo

    if start is not None and start.utcoffset() is None:
        raise typer.BadParameter("give the start a UTC offset, e.g. 2026-11-02T08:00+08:00")
    where = data_dir or Settings().data_dir
    district = DEFAULT_SEED if seed is None else seed
    tally = run_demo(where, console, district, speed, rate, days=days, start=start, stay=stay)
    raise typer.Exit(1 if tally.errors else 0)


projections_app = typer.Typer(help="Projections: the MongoDB read models, rebuilt from Kafka.")
app.add_typer(projections_app, name="projections")
app.add_typer(contacts_app, name="contacts")


@projections_app.command("rebuild")
def projections_rebuild(data_dir: DataDir = None, as_json: AsJson = False) -> None:
    """Drop the `cases` collection and rebuild it by replaying every lifecycle topic (stop
    the projections service first; it resumes from its own offsets afterwards)."""
    from services.projections.main import rebuild

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    with admin.on_system(data_dir) as settings:
        applied, skipped = asyncio.run(rebuild(settings))
    if as_json:
        emit({"applied": applied, "skipped": skipped})
        return
    console.print(f"rebuilt the cases from {applied} event(s); skipped {skipped} poison record(s)")
