"""The hotline's three rates (12345: 响应率, 解决率, 满意率) from callbacks, on the real broker
and database: built histories whose callbacks are intake's own decisions (tries until
invalid, answers rating the closure on the feedback path, two of them reopening it) are
published to their topics; `GET /scores` and `GET /rankings` give the rates worked out by
hand below, per street, department and district, by day, week and month; the drill-down
names the cases; and the composite follows the pack's weights (another pack, another
composite, another ranking).

The cases are reported in May 2033, a month no other test writes."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import yaml
from typer.testing import CliRunner

from gridloop.access import Principal
from gridloop.access import Role as Access
from gridloop.cases.view import fold
from gridloop.citypack import CityPack, load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.scoring import Level, PeriodKind
from schemas.envelope import Envelope
from schemas.events import CaseEvent, CaseReworked, Satisfaction
from services.evaluation.store import Key, ScoreStore
from services.intake.commands import CallbackAnswer, CallbackTry
from services.intake.core import decide_callback
from system.cli import app as cli
from tests.conftest import Servers
from tests.evaluation_story import GRID, OTHER_GRID, Story
from tests.helpers import eventually
from tests.integration.test_evaluation import Service, publish, service

__all__ = ["service"]  # the fixture, shared with test_evaluation
MAY = datetime(2033, 5, 3, 1, tzinfo=UTC)  # Tuesday 3 May 2033, 09:00 in Shanghai
PERIODS = {PeriodKind.day: "2033-05-03", PeriodKind.week: "2033-W18", PeriodKind.month: "2033-05"}
PACK = load_city_pack(DEMO_CITY_PACK)
OPERATOR = Principal(Access.hotline, "op-1")
HOUR = timedelta(hours=1)


def call(story: Story, command: CallbackTry | CallbackAnswer, pack: CityPack = PACK) -> Story:
    """The hotline's call, decided by intake's core on the case's view, told in the story."""
    view = fold(story.events)
    story.at += HOUR
    events = decide_callback(pack, view, command, story.at)
    for event in events:
        story.events.append(Envelope(event, "/tests", story.at))
        if isinstance(event, CaseEvent):
            story.version = event.version
    return story


def unreached(story: Story) -> Story:
    return call(story, CallbackTry(story.case_id, OPERATOR))


def answered(story: Story, contacted: bool, solved: bool, satisfaction: Satisfaction) -> Story:
    return call(story, CallbackAnswer(story.case_id, OPERATOR, contacted, solved, satisfaction))


def hotline_case(case_id: str, grid: str = GRID) -> Story:
    """A resident's hotline report, with a contact, filed."""
    contact = "ct_" + uuid.uuid4().hex
    return Story(case_id, MAY).reported("hotline", grid, contact=contact).filed(grid)


def histories(tag: str) -> dict[str, Story]:
    """Street 001: A, B, C, D; street 002: E, F, G. SANITATION: A, B, C, G; WATER: D, E."""
    ids = {name: f"CB-{tag}-{name}" for name in "ABCDEFG"}
    a = hotline_case(ids["A"]).dispatched().done()
    answered(a, True, True, "satisfied")
    b = hotline_case(ids["B"]).dispatched().done()
    answered(unreached(b), True, True, "basically_satisfied")  # one try, then reached
    c = hotline_case(ids["C"]).dispatched().done()
    unreached(unreached(unreached(c)))  # the pack's 3 tries: invalid, not counted
    d = hotline_case(ids["D"]).dispatched("WATER").handled("WATER").checked().closed()
    answered(d, False, False, "dissatisfied")  # reopened (rating 1)
    d.dispatched("WATER")  # and being handled again
    e = hotline_case(ids["E"], OTHER_GRID).dispatched("WATER").handled("WATER").checked()
    answered(e.closed(), True, False, "satisfied")  # unsolved: rating 2, reopened
    e.dispatched("WATER").handled("WATER").checked().closed()
    answered(e, True, True, "basically_satisfied")  # the second closure's callback counts
    f = Story(ids["F"], MAY).reported(grid=OTHER_GRID).filed(grid=OTHER_GRID)
    f.dispatched().done()  # a supervisor's report: no resident to call back
    g = hotline_case(ids["G"], OTHER_GRID).dispatched().done()
    answered(g, True, False, "dissatisfied")  # contacted, not solved: reopened
    return {"A": a, "B": b, "C": c, "D": d, "E": e, "F": f, "G": g}


# Worked out by hand from the histories: (contacted, solved, satisfied) over valid callbacks.
RATES = {
    (Level.street, "001"): ((2, 3), (2, 3), (2, 3)),  # A 1 1 1, B 1 1 1, D 0 0 0 (C invalid)
    (Level.street, "002"): ((2, 2), (1, 2), (1, 2)),  # E 1 1 1, G 1 0 0 (F none)
    (Level.district, "110101"): ((4, 5), (3, 5), (3, 5)),
    (Level.department, "SANITATION"): ((3, 3), (2, 3), (2, 3)),  # A, B, G
    (Level.department, "WATER"): ((1, 2), (1, 2), (1, 2)),  # D, E
}
NAMES = ("callback_response", "callback_resolution", "callback_satisfaction")


def composite(rates: tuple[tuple[int, int], ...], weights: tuple[float, ...]) -> float:
    earned = sum(w * n / d for w, (n, d) in zip(weights, rates, strict=True))
    return round(100 * earned / sum(weights), 2)


def other_pack(tmp_path: Path, weights: dict[str, float]) -> CityPack:
    """The demo pack with other hotline weights in its evaluation.yaml."""
    root = tmp_path / "pack"
    shutil.copytree(DEMO_CITY_PACK, root)
    path = root / "evaluation.yaml"
    document = yaml.safe_load(path.read_text(encoding="utf-8"))
    document["hotline"] = weights
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return load_city_pack(root)


async def test_the_three_rates_are_the_hand_computed_ones(
    servers: Servers, service: Service, tmp_path: Path
) -> None:
    stories = histories(uuid.uuid4().hex[:6])
    # The reopening went through the feedback path: a rework after the callback's rating.
    for name in "DEG":
        assert any(isinstance(e.data, CaseReworked) for e in stories[name].events), name
    events = [e for s in stories.values() for e in s.events]
    await publish(servers, events, service.namespace)
    api, auth = service.api, service.headers

    async def settled() -> bool:
        for story in stories.values():
            doc = await service.store.case_facts.find_one({"_id": story.case_id})
            if doc is None or doc.get("folded") != len(story.events):
                return False
        return not await service.store.pending()

    await eventually(settled, what="every case folded and scored")
    for (level, entity), rates in RATES.items():
        for period in PERIODS.values():
            got = await api.get(f"/scores/{level.value}/{entity}/{period}", headers=auth)
            assert got.status_code == 200, got.text
            figures = got.json()["indicators"]
            found = tuple((figures[n]["numerator"], figures[n]["denominator"]) for n in NAMES)
            assert found == rates, (level, entity, period)
            assert got.json()["hotline"] == composite(rates, (10, 50, 40))
    # The default composite (10 / 50 / 40): 001 66.67, 002 55.0.
    streets = await api.get(
        "/scores", params={"level": "street", "period": "2033-05"}, headers=auth
    )
    hotline = {s["entity"]: s["hotline"] for s in streets.json()}
    assert hotline == {"001": 66.67, "002": 55.0}
    ranked = await api.get(
        "/rankings", params={"level": "street", "period": "2033-05"}, headers=auth
    )
    assert [(r["rank"], r["entity"], r["callbacks"]) for r in ranked.json()] == [
        (1, "001", 3),
        (2, "002", 2),
    ]

    # The same ranking through the CLI, as a table and as JSON.
    env = {"MONGODB_URI": servers.mongodb, "GRIDLOOP_MONGODB_DATABASE": service.database}
    for extra in ([], ["--json"]):
        ran = await asyncio.to_thread(
            CliRunner().invoke,
            cli,
            ["scores", "rank", "--level", "street", "--period", "2033-05", *extra],
            env=env | {"COLUMNS": "200"},
            terminal_width=200,
        )
        assert ran.exit_code == 0, ran.output
        if extra:
            assert [(r["entity"], r["hotline"]) for r in json.loads(ran.output)] == [
                ("001", 66.67),
                ("002", 55.0),
            ]
        else:
            lines = [line for line in ran.output.splitlines() if "66.67" in line or "55.00" in line]
            assert len(lines) == 2 and "Donghuamen" in lines[0] and "Jingshan" in lines[1]

    # Explained down to the cases: C (invalid) and F (no contact) are in no figure.
    drill = await api.get("/scores/street/001/2033-05/callback_satisfaction/cases", headers=auth)
    ids = {name: s.case_id for name, s in stories.items()}
    assert drill.json()["numerator"] == sorted([ids["A"], ids["B"]])
    assert drill.json()["denominator"] == sorted([ids["A"], ids["B"], ids["D"]])
    water = await api.get(
        "/scores/department/WATER/2033-05/callback_resolution/cases", headers=auth
    )
    assert (water.json()["numerator"], water.json()["denominator"]) == (
        [ids["E"]],
        sorted([ids["D"], ids["E"]]),
    )

    # Refusals: the hotline ranks streets, departments and districts only.
    grids = await api.get("/rankings", params={"level": "grid", "period": "2033-05"}, headers=auth)
    assert grids.status_code == 422 and grids.json()["detail"][0]["loc"] == ["query", "level"]

    # Another pack's weights (response first: 60 / 20 / 20) move the composite and the
    # ranking: street 002 contacted every resident it could.
    store = ScoreStore(
        service.store.case_facts.database,
        other_pack(tmp_path, {"response": 60, "resolution": 20, "satisfaction": 20}),
    )
    keys = [Key(Level.street, s, PeriodKind.month, "2033-05") for s in ("001", "002")]
    await store.recompute_many(keys)
    streets = await api.get(
        "/scores", params={"level": "street", "period": "2033-05"}, headers=auth
    )
    hotline = {s["entity"]: s["hotline"] for s in streets.json()}
    assert hotline == {"001": 66.67, "002": composite(RATES[(Level.street, "002")], (60, 20, 20))}
    assert hotline["002"] == 80.0
    ranked = await api.get(
        "/rankings", params={"level": "street", "period": "2033-05"}, headers=auth
    )
    assert [r["entity"] for r in ranked.json()] == ["002", "001"]
