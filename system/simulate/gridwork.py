"""The grid's people in the simulation (issue 17): in the grids out today, the grid manager
and the supervisor patrol (巡查: clock-in, the track in pieces, clock-out); the grid manager
visits households of the grid's register (走访) and logs what residents raised, some of it
made a case or a dispute in one action; the tier offices mediate the disputes (closed at the
grid, escalated as beyond its authority, or up on the grid's breach, which the grid then
explains); grid managers and supervisors fix minor problems on the spot (自处置) with photos
before and after. All through the public APIs (the grid service, intake, dispatch's
`/disputes`), each command once per Idempotency-Key (`Driver.call`)."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx

from gridloop.citypack.disputes import office_code
from gridloop.citypack.model import Grid
from schemas.events import Channel, Kind
from system.simulate.driver import LAG_PAUSE, LAG_RETRIES, Case, Driver
from system.simulate.profile import FindingPlan, PatrolPlan, PlannedReport, VisitPlan

# The bytes of a JPEG's start: enough for intake's media check (the photos are stand-ins).
PHOTO = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00simulated"
# Case numbers of the findings made cases, apart from the reports' (their draws' streams).
FINDING_CASES = 1_000_000
PARTIES = [{"side": "applicant"}, {"side": "respondent"}]


@dataclass
class GridPeople:
    driver: Driver
    grid: httpx.AsyncClient
    findings_made: int = 0
    disputes_of: dict[str, int] = field(default_factory=dict)  # disputes raised, by person

    def start(self) -> None:
        """Send out the people of the grids drawn for today."""
        scenario = self.driver.scenario
        for staff, role, grid in scenario.patrollers(scenario.field_grids()):
            self.driver.spawn(self.shift(scenario.patrol(staff, role, grid), grid))

    def token(self, staff: str, role: str) -> str | None:
        creds = self.driver.credentials
        return (creds.supervisors if role == "supervisor" else creds.grid_staff).get(staff)

    async def shift(self, plan: PatrolPlan, grid: Grid) -> None:
        """One person's day in their grid: the patrol, and meanwhile their visits and fix."""
        d, key = self.driver, f"shift:{plan.staff}"
        d.open.add(key)
        try:
            await d.sleep(plan.clock_in)
            token = self.token(plan.staff, plan.role)
            lon, lat = plan.start
            opened = await d.call(
                self.grid, f"/grids/{grid.code}/patrols", {"point": {"lon": lon, "lat": lat}}, token
            )
            if opened is None:
                return
            d.tally.patrols += 1
            work = [self.track(plan, opened, token)]
            if plan.role == "grid_manager":
                work += [
                    self.visit(plan.staff, grid, v, k)
                    for k, v in enumerate(d.scenario.visits(grid))
                ]
            fix = d.scenario.self_handling(plan.staff, grid)
            if fix is not None:
                work.append(self.self_handle(plan, fix.after, fix.class_code, fix.point, token))
            await asyncio.gather(*work)
            lon, lat = plan.end
            path = f"/patrols/{opened['patrol']}/end"
            if await d.call(self.grid, path, {"point": {"lon": lon, "lat": lat}}, token):
                d.tally.patrols_ended += 1
        finally:
            d.open.discard(key)

    async def track(self, plan: PatrolPlan, opened: dict[str, Any], token: str | None) -> None:
        """The pieces of the track, each sent at its time with fixes taken since the last."""
        d, since = self.driver, datetime.fromisoformat(opened["started_at"])
        slept = timedelta(0)
        for seq, (at, points) in enumerate(plan.pieces):
            await d.sleep(at - slept)
            slept = at
            now = d.now()
            step = (now - since) / (len(points) + 1)
            fixes = [
                {"lon": lon, "lat": lat, "at": (since + step * (i + 1)).isoformat()}
                for i, (lon, lat) in enumerate(points)
            ]
            since = now
            body = {"seq": seq, "points": fixes}
            if await d.call(self.grid, f"/patrols/{opened['patrol']}/track", body, token):
                d.tally.track_pieces += 1
        await d.sleep(plan.clock_out - slept)

    async def households(self, grid: str, token: str | None) -> list[str]:
        headers = {"Authorization": f"Bearer {token}"}
        for _ in range(LAG_RETRIES):
            with contextlib.suppress(httpx.HTTPError):
                answer = await self.grid.get(f"/grids/{grid}/households", headers=headers)
                if answer.is_success:
                    return [door["household"] for door in answer.json()]
            await asyncio.sleep(LAG_PAUSE)
        return []

    async def visit(self, staff: str, grid: Grid, plan: VisitPlan, k: int) -> None:
        """A visit of `plan.doors` households (the register's, drawn in its order), its
        findings logged by type; those the plan reports made a case or a dispute."""
        d, token = self.driver, self.driver.credentials.grid_staff.get(staff)
        await d.sleep(plan.after)
        doors = await self.households(grid.code, token)
        if not doors:
            return
        start = (d.scenario.profile.seed + k * plan.doors) % len(doors)
        chosen = [doors[(start + i) % len(doors)] for i in range(min(plan.doors, len(doors)))]
        at = d.now() - timedelta(minutes=5)  # the visit was made; the handheld sends it now
        findings = [
            {
                "type": f.type,
                "text": f"simulated {f.type} finding",
                "household": chosen[f.household % len(chosen)],
            }
            for f in plan.findings
        ]
        body = {"at": at.isoformat(), "households": chosen, "findings": findings}
        logged = await d.call(self.grid, f"/grids/{grid.code}/visits", body, token)
        if logged is None:
            return
        d.tally.visits += 1
        d.tally.findings += len(findings)
        for index, finding in enumerate(plan.findings):
            if finding.report:
                await self.report(staff, grid, logged["visit_id"], index, finding, token)

    async def report(
        self, staff: str, grid: Grid, visit: str, index: int, f: FindingPlan, token: str | None
    ) -> None:
        """The finding made a case or a dispute in one action (the grid service reports it
        to intake with the grid manager's credential)."""
        d = self.driver
        lon, lat = f.point
        body: dict[str, Any] = {"point": {"lon": lon, "lat": lat}, "class_code": f.class_code}
        body["kind"] = "dispute" if f.type == "dispute" else "event"
        answer = await d.call(self.grid, f"/visits/{visit}/findings/{index}/case", body, token)
        if answer is None or not answer.get("case_id"):
            return
        case_id = str(answer["case_id"])
        if f.type == "dispute":
            d.tally.disputes += 1
            # How the tiers handle it is drawn by the person and the dispute's rank among
            # theirs (their visits come one after another), not by its random case id: the
            # same seed plays the same paths.
            nth = self.disputes_of[staff] = self.disputes_of.get(staff, 0) + 1
            # Mediation runs on its own: the patrol's clock-out does not wait for it.
            d.open.add(f"/disputes/{case_id}")
            d.spawn(self.mediate(staff, grid, case_id, token, f"{staff}:{nth}"))
            return
        d.tally.finding_cases += 1
        self.findings_made += 1
        kind: Kind = "event"
        plan = PlannedReport(
            FINDING_CASES + self.findings_made,
            Channel.supervisor,
            kind,
            str(f.class_code),
            grid.code,
            d.scenario.supervisor_of(grid),
            f.point,
        )
        case = Case(plan, case_id, time.monotonic())
        d.cases[case_id] = case  # the departments' webhooks find it: the loop plays it
        d.open.add(case_id)
        if not d.scenario.pack.city.intake.auto_file:  # a supervision-centre operator files it
            await d.after_intake(case, "reported")

    # --- disputes: the tiers mediate ---------------------------------------------------------

    async def mediate(
        self, staff: str, grid: Grid, case_id: str, token: str | None, key: str
    ) -> None:
        d = self.driver
        plan = d.scenario.dispute(key)
        community = d.credentials.tiers.get(office_code("community", grid.code))
        base = f"/disputes/{case_id}"
        d.open.add(base)
        try:
            if plan.outcome == "overdue":
                # The grid lets its limit pass: up on the breach; the grid explains why.
                if not await self.held(case_id, community):
                    return
                d.tally.disputes_up_on_breach += 1
                why = {"explanation": "simulated: the parties could not be met in time"}
                if await d.call(d.dispatch, f"{base}/explanation", why, token):
                    d.tally.disputes_explained += 1
                await self.close(base, community, plan.confirmed, "community")
                return
            await d.sleep(plan.mediate_after)
            if plan.outcome == "grid":
                await self.close(base, token, plan.confirmed, "grid")
                return
            reason = {"reason": "simulated: beyond the grid's authority (a property title)"}
            if await d.call(d.dispatch, f"{base}/escalate", reason, token) is None:
                return
            d.tally.disputes_escalated += 1
            await d.sleep(plan.mediate_after)
            await self.close(base, community, plan.confirmed, "community")
        finally:
            d.open.discard(base)

    async def held(self, case_id: str, token: str | None) -> bool:
        """Wait until the tier of `token` holds the dispute (dispatch took it up on the
        grid's breach); False when the day ends first."""
        headers = {"Authorization": f"Bearer {token}"}
        while True:
            with contextlib.suppress(httpx.HTTPError):
                answer = await self.driver.dispatch.get("/disputes", headers=headers)
                if answer.is_success and any(
                    x["case_id"] == case_id and x["held"] for x in answer.json()["disputes"]
                ):
                    return True
            await asyncio.sleep(LAG_PAUSE * 4)

    async def close(self, base: str, token: str | None, confirmed: bool, tier: str) -> None:
        """The tier closes: the parties confirm (验收), or it records why they did not."""
        d = self.driver
        body: dict[str, Any] = {"note": f"simulated: mediated at the {tier}"}
        if confirmed:
            if await d.call(d.dispatch, f"{base}/confirm", {"parties": PARTIES}, token) is None:
                return
        else:
            body["unconfirmed_reason"] = "simulated: the respondent would not sign"
        if await d.call(d.dispatch, f"{base}/close", body, token) is None:
            return
        if tier == "grid":
            d.tally.disputes_closed_grid += 1
        else:
            d.tally.disputes_closed_above += 1

    # --- self-handling ------------------------------------------------------------------------

    async def photo(self, token: str | None, what: str) -> str | None:
        headers = {"Authorization": f"Bearer {token}"}
        files = {"file": (f"{what}.jpg", PHOTO + what.encode(), "image/jpeg")}
        for _ in range(LAG_RETRIES):
            with contextlib.suppress(httpx.HTTPError):
                stored = await self.driver.intake.post("/media", files=files, headers=headers)
                if stored.status_code == 201:
                    return str(stored.json()["media_id"])
                if stored.status_code not in (429, 503):
                    self.driver.error("/media", stored.status_code, stored)
                    return None
            await asyncio.sleep(LAG_PAUSE)
        return None

    async def self_handle(
        self,
        plan: PatrolPlan,
        after: timedelta,
        class_code: str,
        point: tuple[float, float],
        token: str | None,
    ) -> None:
        """自处置: a photo before, the fix, a photo after, one report that closes it."""
        d = self.driver
        await d.sleep(after)
        before = await self.photo(token, "before")
        after_id = await self.photo(token, "after")
        if before is None or after_id is None:
            return
        lon, lat = point
        body = {
            "kind": "event",
            "class_code": class_code,
            "point": {"lon": lon, "lat": lat},
            "description": f"simulated: fixed on the spot by {plan.role}",
            "before": [before],
            "after": [after_id],
        }
        if await d.call(d.intake, "/self-handling", body, token):
            d.tally.self_handled += 1
