"""What the simulator counts, and how it shows it: a progress bar of the reports and a live
table of the loop (rich), then the same table at the end."""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, fields

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from system.simulate.profile import percentile


@dataclass
class Tally:
    """Counts of what went round the loop, as the simulator saw it through the public
    interfaces (answers of the APIs, webhooks received)."""

    sent: int = 0  # reports submitted
    accepted: int = 0  # 202
    refused: int = 0  # 4xx to a report
    merged: int = 0  # duplicates of an open case
    verified: int = 0
    voided: int = 0
    dispatched: int = 0  # webhooks of a dispatch received by the lead department
    acknowledged: int = 0
    returned: int = 0
    extensions: int = 0  # asked
    extensions_approved: int = 0
    handled: int = 0
    late: int = 0  # handled after the deadline
    breaches: int = 0  # SLA breach webhooks received by departments
    explained: int = 0
    escalations: int = 0
    checked: int = 0
    reworked: int = 0  # failed checks and dissatisfied residents
    closed: int = 0
    feedback: int = 0
    callbacks: int = 0  # 回访 answered by the resident
    callbacks_unreached: int = 0  # calls that reached nobody
    callbacks_invalid: int = 0  # never reached in the city's tries (无效回访)
    dissatisfied: int = 0
    # The grid's people (issue 17): patrols (巡查), visits (走访), disputes, self-handling.
    patrols: int = 0  # clock-ins
    patrols_ended: int = 0  # clock-outs
    track_pieces: int = 0
    visits: int = 0
    findings: int = 0  # what residents raised on them, by the visits' findings
    finding_cases: int = 0  # findings made an ordinary case
    disputes: int = 0  # findings made a dispute
    disputes_closed_grid: int = 0  # closed by the grid (confirmed or why not recorded)
    disputes_escalated: int = 0  # beyond the grid's authority
    disputes_up_on_breach: int = 0  # the grid let its limit pass
    disputes_explained: int = 0  # … and explained why
    disputes_closed_above: int = 0  # closed by the community
    self_handled: int = 0  # 自处置
    errors: int = 0  # 5xx, transport failures, and actions refused after their retries
    # What the errors were: "POST /cases/{id}/check → 409" and how many of each.
    problems: Counter[str] = field(default_factory=Counter)
    report_ms: list[float] = field(default_factory=list)  # POST /reports latency
    webhook_ms: list[float] = field(default_factory=list)  # accepted → dispatch webhook

    def counts(self) -> dict[str, int]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.type in (int, "int")}


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{percentile(values, 0.5):.0f} / {percentile(values, 0.99):.0f}"


def table(tally: Tally, title: str = "the loop so far") -> Table:
    out = Table(title=title, show_header=False, min_width=44)
    out.add_column("what")
    out.add_column("count", justify="right")
    for name, value in tally.counts().items():
        style = "red" if name == "errors" and value else None
        out.add_row(name.replace("_", " "), str(value), style=style)
    out.add_row("report latency p50 / p99 ms", _ms(tally.report_ms))
    out.add_row("report → webhook p50 / p99 ms", _ms(tally.webhook_ms))
    return out


class Display:
    """The progress bar of the reports and the live table; silent when `console` is None."""

    def __init__(self, console: Console | None, tally: Tally, total: int) -> None:
        self.console, self.tally = console, tally
        self.progress = Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=console,
        )
        self.reports = self.progress.add_task("reports", total=total)
        self.phase = "reporting"

    def advance(self) -> None:
        self.progress.update(self.reports, completed=self.tally.sent)

    def __rich__(self) -> Group:
        self.advance()
        return Group(self.progress, table(self.tally, f"the loop so far ({self.phase})"))

    @contextlib.contextmanager
    def live(self) -> Iterator[None]:
        if self.console is None:
            yield
            return
        with Live(self, console=self.console, refresh_per_second=4, transient=True):
            yield
        self.console.print(table(self.tally, "the simulation"))
        for problem, count in self.tally.problems.most_common(10):
            self.console.print(f"[red]error[/] {count} × {problem}", soft_wrap=True)
