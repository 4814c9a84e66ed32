"""The `gridloop` command."""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from gridloop.config import Settings
from services.evaluation.cli import scores_app
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
    console = "console"
    desk = "desk"


@app.command()
def up(
    data_dir: Annotated[
        Path | None,
        typer.Option(help="Where the embedded database keeps its files and the logs go"),
    ] = None,
) -> None:
    """Start the whole system on this machine: broker, database, every service."""
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
    elif service is Service.console:
        from services.console.main import run as main
    else:
        from system.desk import run as main
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
            console.print("[red]error[/]", end=" ")
            console.print(error, markup=False, highlight=False, soft_wrap=True)
        console.print(f"{len(exc.errors)} error(s)")
        raise typer.Exit(1) from exc
    console.print(
        f"[green]ok[/] {pack.city.name}: {len(pack.grids)} grids, "
        f"{len(pack.classes)} classes, {len(pack.departments)} departments, "
        f"{len(pack.components)} components, {len(pack.routing.rules)} location rules, "
        f"{len(pack.sla.file.rules)} SLA rules",
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
) -> None:
    """Generate the demo city: a pack shaped like Beijing's Dongcheng district (110101)."""
    import time

    from gridloop.citypack.generate import DEFAULT_SEED, generate_city_pack

    if not 0 < fraction <= 1:
        raise typer.BadParameter("must be in (0, 1]", param_hint="--fraction")
    started = time.perf_counter()
    made = generate_city_pack(out_dir, DEFAULT_SEED if seed is None else seed, fraction)
    console.print(
        f"[green]wrote[/] {out_dir} in {time.perf_counter() - started:.1f} s (seed {made.seed}): "
        f"{made.streets} streets, {made.communities} communities, {made.grids} grids, "
        f"{made.components} components, {made.departments} departments, {made.classes} classes",
        soft_wrap=True,
    )
    console.print(f"check it with: gridloop city check {out_dir}", soft_wrap=True)


credentials_app = typer.Typer(help="Credentials: bearer tokens with a role.")
app.add_typer(credentials_app, name="credentials")
app.add_typer(people_app, name="people")


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


department_app = typer.Typer(help="Departments: webhook endpoints and their secrets.")
app.add_typer(department_app, name="department")
webhooks_app = typer.Typer(help="Webhook deliveries: dead letters and replay.")
app.add_typer(webhooks_app, name="webhooks")


@department_app.command("set-webhook")
def department_set_webhook(
    code: Annotated[str, typer.Argument(help="The department's code in the city pack")],
    url: Annotated[str, typer.Argument(help="Where its webhooks go")],
    previous_secret_hours: Annotated[
        float, typer.Option(help="How long the previous secrets keep signing (key rotation)")
    ] = 24.0,
) -> None:
    """Set a department's webhook URL with a new secret, printed once."""
    from datetime import timedelta

    from gridloop.citypack import load_city_pack
    from gridloop.mongo import connect, database
    from gridloop.refusal import Refused
    from services.notify.admin import set_webhook
    from services.notify.store import DeliveryStore

    async def work() -> str:
        settings = Settings()
        client = connect(settings)
        try:
            store = DeliveryStore(database(client, settings))
            pack = load_city_pack(settings.city_pack)
            overlap = timedelta(hours=previous_secret_hours)
            return await set_webhook(pack, store, code, url, overlap)
        finally:
            await client.close()

    try:
        secret = asyncio.run(work())
    except Refused as exc:
        console.print(f"[red]refused[/] {'.'.join(exc.loc)}: {exc.reason}")
        raise typer.Exit(1) from exc
    console.print(f"{code} → {url}")
    console.print("secret (shown once; give it to the department):")
    console.print(secret, soft_wrap=True)


@webhooks_app.command("replay")
def webhooks_replay(
    webhook_id: Annotated[str | None, typer.Option("--id", help="One delivery")] = None,
    department: Annotated[str | None, typer.Option(help="Every dead delivery of one")] = None,
    case_id: Annotated[str | None, typer.Option(help="Every dead delivery of one case")] = None,
) -> None:
    """Send dead-lettered webhook deliveries again (same webhook-id); the running notify
    service picks them up."""
    from gridloop.mongo import connect, database
    from services.notify.store import DeliveryStore

    query = {
        k: v
        for k, v in (("_id", webhook_id), ("department", department), ("case_id", case_id))
        if v
    }

    async def work() -> int:
        settings = Settings()
        client = connect(settings)
        try:
            return await DeliveryStore(database(client, settings)).replay(query)
        finally:
            await client.close()

    count = asyncio.run(work())
    console.print(f"replaying {count} delivery(ies)" if count != 1 else "replaying 1 delivery")


@app.command("audit")
def audit(
    case: Annotated[str | None, typer.Option("--case", help="One case's trail")] = None,
    subject: Annotated[
        str | None, typer.Option(help="Who acted: an actor id or a credential's subject")
    ] = None,
    since: Annotated[
        datetime | None, typer.Option(help="Records at or after this time (UTC if no offset)")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=1000)] = 100,
) -> None:
    """The audit trail, oldest first: accepted actions, refused attempts and reads of
    reporters' personal data (who, role, what, which case, when, why)."""
    from gridloop.audit import AuditTrail
    from gridloop.mongo import connect, database

    if since is not None and since.utcoffset() is None:
        since = since.replace(tzinfo=UTC)

    async def work() -> list[dict[str, Any]]:
        settings = Settings()
        client = connect(settings)
        try:
            return await AuditTrail(database(client, settings)).find(case, subject, since, limit)
        finally:
            await client.close()

    # One line a record (at, kind, role/who, action, case, status, why or fields shown):
    # easy to read, to grep and to keep.
    for r in asyncio.run(work()):
        actor = r.get("actor") or {}
        why = r.get("reason") or ", ".join(r.get("fields") or [])
        line = [
            r["at"].isoformat(timespec="seconds"),
            r["kind"],
            f"{actor.get('role') or '-'}/{actor.get('id') or '-'}",
            r["action"],
            r.get("case_id") or "-",
            str(r.get("status") or ""),
            why or "",
        ]
        console.print("  ".join(line).rstrip(), soft_wrap=True, markup=False, highlight=False)


@app.command("report")
def report(
    period: Annotated[str, typer.Option(help="The month, YYYY-MM, in the city's time")],
    out: Annotated[
        Path | None, typer.Option(help="Where to write the files (default: report-<period>)")
    ] = None,
    city: Annotated[
        Path | None, typer.Option(help="The city pack (default: GRIDLOOP_CITY_PACK)")
    ] = None,
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
    settings = Settings()
    try:
        pack = load_city_pack(city or settings.city_pack)
    except CityPackError as exc:
        raise typer.BadParameter(str(exc.errors[0]), param_hint="--city") from exc
    month = Period.parse(period, pack.city.timezone)
    run_report(settings, pack, month, out or Path(f"report-{period}"), console)


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
) -> None:
    """The closed loop on the Dongcheng demo district: a simulated day (or more), compressed,
    then the departments' scores and the month's report."""
    from gridloop.citypack.generate import DEFAULT_SEED
    from system.demo import run_demo

    if start is not None and start.utcoffset() is None:
        raise typer.BadParameter("give the start a UTC offset, e.g. 2026-11-02T08:00+08:00")
    where = data_dir or Settings().data_dir
    district = DEFAULT_SEED if seed is None else seed
    tally = run_demo(where, console, district, speed, rate, days=days, start=start)
    raise typer.Exit(1 if tally.errors else 0)


projections_app = typer.Typer(help="Projections: the MongoDB read models, rebuilt from Kafka.")
app.add_typer(projections_app, name="projections")


@projections_app.command("rebuild")
def projections_rebuild() -> None:
    """Drop the `cases` collection and rebuild it by replaying every lifecycle topic (stop
    the projections service first; it resumes from its own offsets afterwards)."""
    from services.projections.main import rebuild

    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(message)s")
    applied, skipped = asyncio.run(rebuild(Settings()))
    console.print(f"rebuilt the cases from {applied} event(s); skipped {skipped} poison record(s)")
