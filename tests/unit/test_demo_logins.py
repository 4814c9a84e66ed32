"""`make demo` ends with a login for each role of the workbench (issue 16): the intake
operator, the dispatcher, the shift lead, the hotline (its callbacks) and a department's
staff, each with its own password; and (issue 17) a grid manager of the day, for the
handheld (`/m/`), and their community's tier office, for the disputes desk (`/disputes`)."""

from __future__ import annotations

from gridloop.access import Role
from system.demo import grid_people
from system.demo_hold import GridPerson, logins
from system.simulate.summary import Tally

DESKS = [
    Role.supervision_centre,
    Role.command_centre,
    Role.shift_lead,
    Role.hotline,
    Role.department,
]


def test_the_demo_gives_one_login_for_each_desk() -> None:
    found = logins("ROADS", GridPerson("GM-0003", "110101001002001"))
    assert [login.grants for login in found] == [*DESKS, Role.grid_staff, Role.tier_office]
    assert found[4].subject == "ROADS"
    # The grid manager acts as themself; the tier office as the grid's community (digits
    # 7–12 of the grid code: street 001, community 002).
    assert (found[5].subject, found[6].subject) == ("GM-0003", "001002")
    assert len({login.password for login in found}) == len(found)  # none shared
    assert len({login.username for login in found}) == len(found)
    assert all(len(login.password) >= 10 for login in found)  # what `People.add` accepts
    # The community office that mediated the day's disputes, when another did.
    elsewhere = logins("ROADS", GridPerson("GM-0003", "110101001002001", office="005002"))
    assert (elsewhere[6].username, elsewhere[6].subject) == ("community.005002", "005002")


def test_without_grid_people_the_desks_alone() -> None:
    assert [login.grants for login in logins("ROADS")] == DESKS


def test_the_demo_tells_the_day_of_the_grid_people() -> None:
    tally = Tally(patrols=20, track_pieces=60, visits=24, findings=30, disputes=5)
    tally.disputes_closed_grid, tally.disputes_escalated, tally.self_handled = 2, 3, 7
    line = grid_people(tally)
    assert line.startswith("the grid's people: 20 patrols (60 track pieces), 24 household")
    assert "5 disputes (2 closed at the grid, 3 escalated" in line and "7 problems" in line
