"""`make demo` ends with a login for each role of the workbench (issue 16): the intake
operator, the dispatcher, the shift lead, the hotline (its callbacks) and a department's
staff, each with its own password."""

from __future__ import annotations

from gridloop.access import Role
from system.demo_hold import logins


def test_the_demo_gives_one_login_for_each_desk() -> None:
    found = logins("ROADS")
    roles = [login.grants for login in found]
    assert roles == [
        Role.supervision_centre,
        Role.command_centre,
        Role.shift_lead,
        Role.hotline,
        Role.department,
    ]
    assert found[-1].subject == "ROADS"
    assert len({login.password for login in found}) == len(found)  # none shared
    assert all(len(login.password) >= 10 for login in found)  # what `People.add` accepts
