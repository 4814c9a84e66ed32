"""Who acts: the roles of the people and systems that run the loop, and a caller. Pure.

A credential (`gridloop.auth`) names one holder in one role; cores decide on the caller
(`Principal`) without knowing how it was authenticated.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Role(StrEnum):
    public = "public"
    hotline = "hotline"  # hotline operator (热线)
    supervisor = "supervisor"  # grid supervisor (监督员)
    supervision_centre = "supervision_centre"  # 监督中心
    command_centre = "command_centre"  # 指挥中心
    shift_lead = "shift_lead"  # 值班长: approvals and 督办 (docs/console.md)
    department = "department"
    # The grid's people (Yichang, Zhoushan): a grid manager or a member of the grid's service
    # team (网格员 / 组团式服务); subject is their staff id.
    grid_staff = "grid_staff"
    # A tier office that mediates disputes (矛盾纠纷调处): a community, street or district (or
    # city) office; subject is the tier's code.
    tier_office = "tier_office"
    admin = "admin"


@dataclass(frozen=True)
class Principal:
    role: Role
    subject: str  # who: a supervisor id, a department code, an operator name
    person: str | None = None  # the person signed in (a session), if not a machine token

    @property
    def department(self) -> str | None:
        return self.subject if self.role is Role.department else None


PUBLIC = Principal(Role.public, "anonymous")
