"""Every role a credential can hold acts in intake's events under an actor role: a role
missing from the map was a 500 for anyone holding it (a tier office, a shift lead)."""

from __future__ import annotations

import pytest

from gridloop.access import Principal, Role
from services.intake.reporting import actor_of


@pytest.mark.parametrize("role", list(Role))
def test_every_role_is_an_actor(role: Role) -> None:
    actor = actor_of(Principal(role, f"{role.value}-1", person="wang.li"))
    assert actor.id == f"{role.value}-1"
    assert actor.person == "wang.li"
