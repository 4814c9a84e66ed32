"""Domain refusals: a command or a read refused, with why, the field at fault and the reason.

Pure: cores raise `Refused` and know nothing of HTTP. The HTTP edge (`gridloop.errors`) maps
each `Why` to one status code in one table, so a refusal means the same everywhere. Nothing
was changed by a refused command.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Why(StrEnum):
    """The kinds of refusal; `gridloop.errors.STATUS` maps each to an HTTP status."""

    malformed = "malformed"  # the request cannot be read at all
    unauthenticated = "unauthenticated"  # no credential, or an unknown one
    forbidden = "forbidden"  # the caller may not do this (to this case)
    not_found = "not_found"  # no such case, department or record (for this caller)
    conflict = "conflict"  # the case's state does not allow it now
    too_large = "too_large"
    unsupported = "unsupported"  # a media type not taken
    invalid = "invalid"  # the input is wrong, named by field
    unavailable = "unavailable"  # the event log or the database: retry later


@dataclass(frozen=True)
class CaseAt:
    """Where a case stands: what a refused command is told when it lost a race."""

    state: str
    version: int


class Refused(Exception):
    """A command refused: `why`, where (`loc`, e.g. `("body", "deadline")`), the reason for
    a person, and `code`, the reason's name for a program (`deadline_passed`; `why` by
    default). A conflict may say where the case stands now (`at`)."""

    def __init__(
        self,
        why: Why,
        loc: tuple[str, ...],
        reason: str,
        code: str | None = None,
        at: CaseAt | None = None,
    ) -> None:
        super().__init__(reason)
        self.why, self.loc, self.reason = why, loc, reason
        self.code = code or why.value
        self.at = at

    def standing(self, at: CaseAt) -> Refused:
        """This refusal, saying where the case stands."""
        return Refused(self.why, self.loc, self.reason, self.code, at)


def invalid(loc: tuple[str, ...], reason: str, code: str = "invalid") -> Refused:
    return Refused(Why.invalid, loc, reason, code)


def conflict(loc: tuple[str, ...], reason: str, code: str = "conflict") -> Refused:
    return Refused(Why.conflict, loc, reason, code)


def forbidden(loc: tuple[str, ...], reason: str) -> Refused:
    return Refused(Why.forbidden, loc, reason, "forbidden")


def not_found(loc: tuple[str, ...], reason: str) -> Refused:
    return Refused(Why.not_found, loc, reason, "not_found")
