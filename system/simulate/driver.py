"""The simulator's driver: the people of the loop, acting through the public interfaces only.

Supervisors, the hotline and citizens report (`POST /reports`); supervisors verify citizen
reports and check handled cases on site (intake); departments answer the webhooks they
receive (the built-in receivers) through dispatch's callback API: acknowledge, return,
ask for an extension, handle, explain an overdue case; the command centre re-dispatches
returned cases and its shift lead decides extensions; residents rate closed cases (`/feedback`).

Every wait is simulated time, slept as `simulated / speed` real seconds. An action that
follows an event the projection may not show yet (a check right after the handling) is
retried for a while on 403, 404 and 409, with the same Idempotency-Key.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from schemas import clock
from schemas.events import Channel
from system.simulate.profile import PlannedReport, Scenario
from system.simulate.summary import Display, Tally

LAG_RETRIES = 40  # × LAG_PAUSE: how long an action waits for the projection to catch up
LAG_PAUSE = 0.25  # real seconds
# What a lagging projection answers: no case yet (404), the department before a
# re-dispatch (403 on the path's department), the state before the last event (409).
LAGGING = (403, 404, 409)
HANDLER = "crew-sim"
DISPATCHER = "dispatcher-sim"


@dataclass(frozen=True)
class Credentials:
    """Bearer tokens of the simulated people (issued by `system.simulate.system`)."""

    supervisors: dict[str, str]
    hotline: str
    centre: str  # the supervision centre: files cases when the pack does not file by rule
    command: str
    lead: str  # the shift lead (值班长): answers extension requests
    departments: dict[str, str]
    reader: str  # an admin's: reads cases and scores for the summary
    # The grid's people out today (issue 17): grid managers (Role.grid_staff) by staff id,
    # and the tier offices (Role.tier_office) of their communities and streets by code.
    grid_staff: dict[str, str] = field(default_factory=dict)
    tiers: dict[str, str] = field(default_factory=dict)


@dataclass
class Case:
    plan: PlannedReport
    case_id: str
    accepted_at: float  # monotonic
    follow_token: str | None = None
    rounds: int = 0  # dispatches received
    rated: bool = False
    version: int = 1  # the newest case version the simulator knows of


@dataclass
class Driver:
    scenario: Scenario
    intake: httpx.AsyncClient
    dispatch: httpx.AsyncClient
    credentials: Credentials
    speed: float
    tally: Tally = field(default_factory=Tally)
    cases: dict[str, Case] = field(default_factory=dict)
    open: set[str] = field(default_factory=set)  # accepted, not yet at the end of the loop
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    grid: httpx.AsyncClient | None = None  # the grid service (patrols, households, visits)
    now: Callable[[], datetime] = clock.now  # the system's clock (own system: simulated)

    # --- plumbing -----------------------------------------------------------------------

    async def sleep(self, simulated: timedelta) -> None:
        await asyncio.sleep(max(simulated.total_seconds(), 0.0) / self.speed)

    def spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.create_task(work)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def call(
        self,
        client: httpx.AsyncClient,
        path: str,
        body: dict[str, Any],
        token: str | None,
        params: dict[str, str] | None = None,
        lagging: bool = True,
        case: Case | None = None,
    ) -> dict[str, Any] | None:
        """POST once per Idempotency-Key: the answer on 2xx, else None (an error counted,
        unless `lagging` is False and the refusal is a 4xx: the caller expected it). A
        command on `case` waits until the projection shows the case as last seen."""
        if case is not None:
            await self.settled(case)
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for _ in range(LAG_RETRIES):
            try:
                response = await client.post(path, json=body, headers=headers, params=params)
            except httpx.HTTPError:
                response = None
            if response is not None and response.is_success:
                answer: dict[str, Any] = response.json()
                if case is not None:
                    case.version = max(case.version, int(answer.get("version") or 0))
                return answer
            status = response.status_code if response is not None else 0
            retry = status in (0, 429, 503) or (lagging and status in LAGGING)
            if not retry:
                if lagging or status >= 500:
                    self.error(path, status, response)
                return None
            await asyncio.sleep(LAG_PAUSE)
        self.error(path, status, response)
        return None

    async def settled(self, case: Case) -> None:
        """Wait (a while) until the projection has the case's newest version: a command
        decided on an older view would give its event a version already taken."""
        headers = {"Authorization": f"Bearer {self.credentials.command}"}
        for _ in range(LAG_RETRIES):
            with contextlib.suppress(httpx.HTTPError):
                response = await self.dispatch.get(f"/cases/{case.case_id}", headers=headers)
                if response.is_success and response.json()["version"] >= case.version:
                    return
            await asyncio.sleep(LAG_PAUSE)

    def error(self, path: str, status: int, response: httpx.Response | None) -> None:
        self.tally.errors += 1
        what = path.rsplit("/", 1)[-1]  # the action: check, handled, feedback, …
        detail = ""
        if response is not None and response.headers.get("content-type") == "application/json":
            problems = response.json().get("detail")
            if isinstance(problems, list) and problems:
                detail = f": {problems[0].get('msg', '')}"[:160]
        self.tally.problems[f"POST …/{what} → {status or 'no answer'}{detail}"] += 1

    def finish(self, case: Case) -> None:
        self.open.discard(case.case_id)

    # --- reports and verification ----------------------------------------------------------

    async def submit(self, n: int) -> None:
        plan = self.scenario.report(n)
        token = {
            Channel.supervisor: self.credentials.supervisors.get(plan.supervisor),
            Channel.hotline: self.credentials.hotline,
            Channel.website: None,  # a citizen without an account: the follow token serves
        }[plan.channel]
        cls = self.scenario.pack.classes[(plan.kind, plan.class_code)]
        self.tally.sent += 1
        started = time.monotonic()
        try:
            response = await self.intake.post("/reports", json=plan.body(cls.name), headers=(
                {"Authorization": f"Bearer {token}"} if token else {}
            ))  # fmt: skip
        except httpx.HTTPError:
            self.error("/reports", 0, None)
            return
        self.tally.report_ms.append((time.monotonic() - started) * 1000)
        if not response.is_success:
            if response.status_code < 500:
                self.tally.refused += 1
                self.tally.problems[f"refused report {response.status_code}"] += 1
            else:
                self.error("/reports", response.status_code, response)
            return
        answer = response.json()
        self.tally.accepted += 1
        if answer.get("merged_into"):
            self.tally.merged += 1
            return
        case = Case(plan, answer["case_id"], started, answer.get("follow_token"))
        case.version = int(answer["version"])
        self.cases[case.case_id] = case
        self.open.add(case.case_id)
        await self.after_intake(case, answer["state"])

    async def after_intake(self, case: Case, state: str) -> None:
        """A citizen's report is verified by the grid's supervisor; a case the pack does
        not file by rule is filed by the supervision centre."""
        if state == "reported" and case.plan.channel is not Channel.supervisor:
            delay, confirmed = self.scenario.verification(case.plan.n)
            await self.sleep(delay)
            answer = await self.call(
                self.intake,
                f"/cases/{case.case_id}/verification",
                {"confirmed": confirmed, "note": "simulated verification"},
                self.credentials.supervisors.get(case.plan.supervisor),
                case=case,
            )
            if answer is None:
                return self.finish(case)
            if answer["state"] == "voided":
                self.tally.voided += 1
                return self.finish(case)
            self.tally.verified += 1
            state = answer["state"]
        if state in ("reported", "verified"):
            filed = await self.call(
                self.intake, f"/cases/{case.case_id}/file", {}, self.credentials.centre, case=case
            )
            if filed is None:
                self.finish(case)

    # --- departments ------------------------------------------------------------------------

    def deliver(self, department: str, message: dict[str, Any]) -> None:
        """A webhook a department received (verified and new): it starts working on it."""
        self.spawn(self.on_message(department, message))

    async def on_message(self, department: str, message: dict[str, Any]) -> None:
        kind, data = message.get("type", ""), message.get("data") or {}
        case = await self._case(str(data.get("case_id")))
        if kind == "case.dispatched" and data.get("role", "lead") == "lead" and case:
            sent = datetime.fromisoformat(message["timestamp"])
            case.version = max(case.version, int(data.get("version") or 0))
            await self.work_on(case, department, datetime.fromisoformat(data["deadline"]), sent)
        elif kind == "sla.breach" and case:
            self.tally.breaches += 1
            if data.get("stage") == "handle" and data.get("department") == department:
                answer = await self.call(
                    self.dispatch,
                    f"/department/cases/{case.case_id}/explanation",
                    {"handler_id": HANDLER, "explanation": "the crew was on another job"},
                    self.credentials.departments.get(department),
                    lagging=False,
                )
                self.tally.explained += answer is not None
        elif kind == "sla.escalation":
            self.tally.escalations += 1

    async def _case(self, case_id: str) -> Case | None:
        """The case, once the report's answer has been read (a webhook may come first)."""
        for _ in range(LAG_RETRIES):
            if case_id in self.cases:
                return self.cases[case_id]
            await asyncio.sleep(LAG_PAUSE)
        return None

    async def work_on(
        self, case: Case, department: str, deadline: datetime, dispatched: datetime
    ) -> None:
        """The department's answer to one dispatch, `deadline - dispatched` allowed."""
        case.rounds += 1
        self.tally.dispatched += 1
        if case.rounds == 1:
            self.tally.webhook_ms.append((time.monotonic() - case.accepted_at) * 1000)
        allowed = deadline - dispatched
        plan = self.scenario.department(case.plan.n, case.rounds, allowed)
        token = self.credentials.departments.get(department)
        base = f"/department/cases/{case.case_id}"
        await self.sleep(plan.acknowledge_after)
        if await self.call(self.dispatch, f"{base}/acknowledge", {"handler_id": HANDLER}, token):
            self.tally.acknowledged += 1
        if plan.action == "return":
            return await self.returned(case, department, base, token)
        if plan.action == "extend":
            await self.extension(case, base, token, deadline + allowed, plan.extension_denied)
        await self.sleep(plan.handle_after - plan.acknowledge_after)
        body = {"handler_id": HANDLER, "note": "simulated: handled on site"}
        if await self.call(self.dispatch, f"{base}/handled", body, token, case=case) is None:
            return self.finish(case)
        self.tally.handled += 1
        self.tally.late += plan.late
        await self.check(case)

    async def returned(self, case: Case, department: str, base: str, token: str | None) -> None:
        body = {"handler_id": HANDLER, "reason": "not ours: simulated return (回退)"}
        if await self.call(self.dispatch, f"{base}/return", body, token, case=case) is None:
            return self.finish(case)
        self.tally.returned += 1
        await self.sleep(self.scenario.decision(case.plan.n, "return"))
        order = {
            "dispatcher": DISPATCHER,
            "department": self.scenario.redirect(department, case.plan),
            "reason": f"returned by {department}: re-dispatched (改派)",
        }
        path = f"/cases/{case.case_id}/dispatch"
        if await self.call(self.dispatch, path, order, self.credentials.command, case=case) is None:
            self.finish(case)

    async def extension(
        self, case: Case, base: str, token: str | None, until: datetime, denied: bool
    ) -> None:
        body = {"handler_id": HANDLER, "deadline": until.isoformat(), "reason": "parts ordered"}
        if await self.call(self.dispatch, f"{base}/extension", body, token, case=case) is None:
            return
        self.tally.extensions += 1
        await self.sleep(self.scenario.decision(case.plan.n, "extension"))
        verb = "deny" if denied else "approve"
        path = f"/cases/{case.case_id}/extension/{verb}"
        reason = "the crew has no parts yet: handle it now" if denied else "parts on order"
        decision = {"dispatcher": DISPATCHER, "reason": reason}  # a denial must say why
        answer = await self.call(self.dispatch, path, decision, self.credentials.lead, case=case)
        self.tally.extensions_approved += answer is not None and not denied

    # --- supervisors' checks and residents' feedback ------------------------------------------

    async def check(self, case: Case) -> None:
        delay, passed = self.scenario.check(case.plan.n, case.rounds)
        await self.sleep(delay)
        answer = await self.call(
            self.intake,
            f"/cases/{case.case_id}/check",
            {"passed": passed, "note": None if passed else "simulated: not fixed"},
            self.credentials.supervisors.get(case.plan.supervisor),
            case=case,
        )
        if answer is None:
            return self.finish(case)
        self.tally.checked += 1
        if answer["state"] == "rework":
            self.tally.reworked += 1  # dispatch sends it back: a new webhook, a new round
            return
        self.tally.closed += 1
        await self.rate(case)

    async def rate(self, case: Case) -> None:
        if case.plan.channel is Channel.hotline and not case.rated:
            return await self.callback(case)  # hotline reporters are called back (回访)
        drawn = None if case.rated else self.scenario.feedback(case.plan.n, case.plan.channel)
        if drawn is None:
            return self.finish(case)
        delay, rating = drawn
        case.rated = True
        await self.sleep(delay)
        by_follow_token = case.plan.channel is Channel.website and case.follow_token
        answer = await self.call(
            self.intake,
            f"/cases/{case.case_id}/feedback",
            {"rating": rating, "comment": f"simulated rating {rating}"},
            None if by_follow_token else self.credentials.hotline,
            params={"token": case.follow_token} if by_follow_token and case.follow_token else None,
            case=case,
        )
        if answer is None:
            return self.finish(case)
        self.tally.feedback += 1
        if answer["state"] == "rework":
            self.tally.dissatisfied += 1
            self.tally.reworked += 1  # reopened: dispatch sends it back
            return
        self.finish(case)

    async def callback(self, case: Case) -> None:
        """回访: the hotline calls the reporter back after the closure; calls that reach
        nobody are recorded, and the resident's answers rate the case as feedback does
        (a dissatisfied or unsolved answer may reopen it)."""
        case.rated = True
        plan = self.scenario.callback(case.plan.n, self.scenario.pack.city.callback.tries)
        await self.sleep(plan.delay)
        base, token = f"/cases/{case.case_id}/callback", self.credentials.hotline
        for _ in range(plan.unreached):
            if await self.call(self.intake, f"{base}/unreached", {}, token, case=case) is None:
                return self.finish(case)
            self.tally.callbacks_unreached += 1
            await self.sleep(plan.retry)
        if plan.rating is None:
            self.tally.callbacks_invalid += 1
            return self.finish(case)
        answer = await self.call(self.intake, base, plan.answers, token, case=case)
        if answer is None:
            return self.finish(case)
        self.tally.callbacks += 1
        if answer["state"] == "rework":
            self.tally.dissatisfied += 1
            self.tally.reworked += 1  # reopened: dispatch sends it back
            return
        self.finish(case)

    # --- the run --------------------------------------------------------------------------------

    async def run(self, rate: float, duration: float, drain: float, display: Display) -> Tally:
        """Report at `rate` a second for `duration` real seconds, then let the open cases
        go round for at most `drain` more."""
        started = time.monotonic()
        for n, at in enumerate(self.scenario.arrivals(rate, duration), start=1):
            await asyncio.sleep(max(0.0, started + at - time.monotonic()))
            self.spawn(self.submit(n))
        display.phase = "letting open cases finish"
        until = time.monotonic() + drain
        while (self.open or self.reporting()) and time.monotonic() < until:  # noqa: ASYNC110 - polled counts, no event
            await asyncio.sleep(0.2)
        for task in list(self.tasks):
            task.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        return self.tally

    def reporting(self) -> bool:
        return self.tally.sent > self.tally.accepted + self.tally.refused + self.tally.errors
