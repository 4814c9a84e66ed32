"""`gridloop demo`: the whole closed loop on a city of real size, in minutes.

The embedded system (broker, database, every service), the generated Dongcheng district
(`dongcheng_pack`: 17 streets, about 1,650 grids, 168,000 components; generated once and
cached), a simulated working day compressed `speed` times with the built-in department
receivers taking the webhooks, then the simulation's counts, the departments' scores from
the evaluation service, and the month's report (`gridloop report`) written from the same
data before the system stops.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from gridloop.config import Settings
from system.desk import GATEWAY_DIR
from system.gateway import LOG_FILE
from system.simulate.run import Options, Target, simulate_own
from system.simulate.summary import Tally

DAY = timedelta(days=1)
SCORES_WAIT = 30.0  # real seconds for the scores to catch up with the last events


def run_demo(
    data_dir: Path,
    console: Console,
    seed: int,
    speed: float = 480.0,
    rate: float = 2.0,
    drain: float = 120.0,
    days: float = 1.0,
    start: datetime | None = None,
    stay: bool = True,
) -> Tally:
    """Simulate `days` of the demo district and show what they add up to; with `stay`,
    keep the system up afterwards for the workbench (`system/demo_hold.py`)."""
    from gridloop.citypack.generate import dongcheng_pack
    from system.demo_hold import hold

    console.print("the Dongcheng demo district (generated once, then cached) …")
    pack_dir = dongcheng_pack(data_dir / "citypacks", seed)
    span = DAY.total_seconds() * days / speed
    options = Options(rate=rate, duration=span, speed=speed, drain=drain, start=start)
    console.print(
        f"{days:g} simulated day(s) at ×{speed:g}: {options.duration:.0f} s of reports at "
        f"{rate:g}/s, then up to {drain:.0f} s for the open cases"
    )
    then, kept = _then(console, data_dir), hold(console, data_dir / "demo") if stay else None
    return simulate_own(pack_dir, data_dir / "demo", options, console, then, kept)


def _then(console: Console, data_dir: Path) -> Any:
    def then(target: Target, tally: Tally) -> None:
        month = target.start.astimezone(_zone(target)).strftime("%Y-%m")
        scores = _scores(target, month)
        console.print(_league(scores, month) if scores else "[yellow]no scores yet[/]")
        _report(target, month, data_dir / f"report-{month}", console)
        _told(data_dir / "demo" / GATEWAY_DIR / LOG_FILE, console)
        console.print(grid_people(tally), soft_wrap=True)

    return then


def grid_people(tally: Tally) -> str:
    """The day of the grid's people in one line (issue 17), as the simulator was answered."""
    return (
        f"the grid's people: {tally.patrols} patrols ({tally.track_pieces} track pieces), "
        f"{tally.visits} household visits ({tally.findings} findings, "
        f"{tally.finding_cases} made cases), {tally.disputes} disputes "
        f"({tally.disputes_closed_grid} closed at the grid, "
        f"{tally.disputes_escalated + tally.disputes_up_on_breach} escalated, "
        f"{tally.disputes_closed_above} closed by the community), "
        f"{tally.self_handled} problems fixed on the spot (自处置)"
    )


def _told(log: Path, console: Console) -> None:
    """Where the reporters' messages the stand-in gateway took can be read."""
    count = len(log.read_text(encoding="utf-8").splitlines()) if log.exists() else 0
    console.print(f"messages to reporters (stand-in SMS/WeChat gateway): {count} in {log}")


def _zone(target: Target) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(target.pack.city.timezone)


def _scores(target: Target, month: str) -> list[dict[str, Any]]:
    """The departments' scores of the month, once the evaluation service has some."""
    url = target.urls.get("evaluation")
    if url is None:
        return []
    headers = {"Authorization": f"Bearer {target.credentials.reader}"}
    params = {"level": "department", "period": month}
    until = time.monotonic() + SCORES_WAIT
    with httpx.Client(base_url=url, headers=headers, timeout=10.0) as http:
        while True:
            response = http.get("/scores", params=params)
            found: list[dict[str, Any]] = response.json() if response.is_success else []
            if found or time.monotonic() > until:
                return found
            time.sleep(1.0)


def _ratio(score: dict[str, Any], name: str) -> str:
    ratio = (score.get("indicators") or {}).get(name) or {}
    if not ratio.get("denominator"):
        return "-"
    return f"{100 * ratio['numerator'] / ratio['denominator']:.0f} %"


def _league(scores: list[dict[str, Any]], month: str) -> Table:
    table = Table(title=f"departments' scores, {month} (evaluation service)")
    table.add_column("department", no_wrap=True)
    table.add_column("name", no_wrap=True, max_width=10, overflow="ellipsis")
    for column in ("cases", "on time", "rework", "satisf.", "score", "grade"):
        table.add_column(column, justify="right", no_wrap=True)
    for s in scores:
        score = s.get("score")
        table.add_row(
            s["entity"],
            str(s.get("name") or "").split(" ")[0],  # the Chinese name, before the English
            str(s.get("cases", 0)),
            _ratio(s, "on_time_handling"),
            _ratio(s, "rework"),
            _ratio(s, "satisfaction"),
            "-" if score is None else f"{score:.1f}",
            s.get("grade") or "-",
        )
    return table


def _report(target: Target, month: str, out: Path, console: Console) -> None:
    """The month's report from the simulated day's data (`gridloop report`)."""
    from services.evaluation.report.main import run_report
    from services.evaluation.report.model import Period

    uri, database = target.mongodb
    settings = Settings.model_validate({"mongodb_uri": uri, "mongodb_database": database})
    period = Period.parse(month, target.pack.city.timezone)
    run_report(settings, target.pack, period, out, console, as_of=target.now())
    console.print(f"the monthly report: {out / 'report.html'}", soft_wrap=True)
