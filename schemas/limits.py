"""Limits on what clients send, in one place: the request models (commands) of intake,
dispatch and the notify admin API build their fields from these types.

The event contract (`events.py`) keeps its own, looser bounds: tightening an event's field
would refuse events already in the log, so the limits are applied where input enters.

Text is normalised to NFC and stripped; a field made of whitespace alone is refused when
required and dropped (None) when optional. Free text (descriptions, reasons, notes) may hold
line breaks and tabs; a CRLF becomes a LF. Every other control character (NUL among them)
and every lone surrogate is refused: they corrupt logs, XML answers and UTF-8 encoders.
Codes are ASCII digits (`\\d` would take any script's digits).
"""

from __future__ import annotations

import unicodedata
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field

# --- lengths, in characters after normalisation ---------------------------------------------
DESCRIPTION_MAX = 2000  # what a reporter says the problem is
ADDRESS_MAX = 500  # an address as the caller gave it
REASON_MAX = 2000  # reasons, notes, explanations, comments
NAME_MAX = 100  # a reporter's name
PHONE_MAX = 32
PERSON_ID_MAX = 64  # supervisors, dispatchers
HANDLER_ID_MAX = 32  # a department's handler (crew, worker)
CASE_ID_MAX = 64
URL_MAX = 2000
# --- list lengths -----------------------------------------------------------------------------
MEDIA_MAX = 20  # photos and voice notes on one report or verification
PHOTOS_MAX = 20  # photo links on one handled report
ASSISTING_MAX = 10  # assisting departments of one joint case
# --- codes --------------------------------------------------------------------------------------
GRID_CODE = r"^[0-9]{14,15}$"  # district 6 + street 3 + community 3 + grid 2 or 3
COMPONENT_ID = r"^[0-9]{16,17}$"  # CJ/T 214: district 6 + class 4 or 5 + sequence 6
CLASS_CODE = r"^[0-9]{4,5}$"  # major 2 + minor 2 or 3
CASE_ID = r"^[A-Za-z0-9_.:-]+$"
DEPARTMENT_CODE = r"^[A-Z0-9-]{2,32}$"  # as the city pack names departments
MEDIA_ID = r"^[0-9a-f]{24}$"  # GridFS object id
PHONE = r"^\+?[0-9 ()-]*[0-9][0-9 ()-]*$"
# --- coordinates and times --------------------------------------------------------------------
LON_MIN, LON_MAX = -180, 180  # WGS 84; the city's extent is the grid lookup's to check
LAT_MIN, LAT_MAX = -90, 90
YEAR_MIN, YEAR_MAX = 2000, 2100  # deadlines given by hand


def _refuse_controls(text: str, allowed: str) -> None:
    for ch in text:
        category = unicodedata.category(ch)
        if category == "Cs":
            raise ValueError(f"a lone surrogate (U+{ord(ch):04X}) is not text")
        if category == "Cc" and ch not in allowed:
            raise ValueError(f"control character U+{ord(ch):04X} is not allowed")


def clean(value: Any, allowed: str = "") -> Any:
    """`value` normalised (NFC, stripped), or a ValueError naming what is wrong with it.
    Non-strings pass through, for the type check to refuse."""
    if not isinstance(value, str):
        return value
    _refuse_controls(value, "\n\r\t" if allowed else "")
    text = unicodedata.normalize("NFC", value.replace("\r\n", "\n")).strip()
    _refuse_controls(text, allowed)  # a lone CR is refused here
    if not text:
        raise ValueError("must not be blank")
    return text


def free_text(value: Any) -> Any:
    return clean(value, "\n\t")


def line(value: Any) -> Any:
    return clean(value)


def optional_free_text(value: Any) -> Any:
    """Free text that may be left out: blank is the same as absent."""
    if isinstance(value, str) and not value.strip():
        return None
    return free_text(value)


def optional_line(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        return None
    return line(value)


def _in_years(at: datetime) -> datetime:
    if not YEAR_MIN <= at.year <= YEAR_MAX:
        raise ValueError(f"must lie between the years {YEAR_MIN} and {YEAR_MAX}")
    return at


def _parsable_url(url: str) -> str:
    """A URL whose host and port parse; its scheme and where it leads are the service's
    to judge (notify refuses private addresses, with its own reason)."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises for a port out of range
        (parts.hostname or "").encode("idna")  # a host no resolver could take
    except (ValueError, UnicodeError) as exc:
        raise ValueError(f"not a URL ({exc})") from None
    return url


def _one_token(value: str) -> str:
    """No whitespace, no control character, no lone surrogate: one printable token."""
    if any(ch.isspace() for ch in value):
        raise ValueError("must not contain whitespace")
    _refuse_controls(value, "")
    return value


FreeText = BeforeValidator(free_text)
Line = BeforeValidator(line)
Description = Annotated[str, FreeText, Field(min_length=1, max_length=DESCRIPTION_MAX)]
Reason = Annotated[str, FreeText, Field(min_length=1, max_length=REASON_MAX)]
# Optional text: blank becomes None before the string's own limits apply.
OptionalText = BeforeValidator(optional_free_text)
OptionalLine = BeforeValidator(optional_line)
Note = Annotated[Annotated[str, Field(max_length=REASON_MAX)] | None, OptionalText]
Address = Annotated[Annotated[str, Field(max_length=ADDRESS_MAX)] | None, OptionalText]
PersonName = Annotated[Annotated[str, Field(max_length=NAME_MAX)] | None, OptionalLine]
Phone = Annotated[Annotated[str, Field(max_length=PHONE_MAX, pattern=PHONE)] | None, OptionalLine]
# A WeChat id (微信号): 6–20 letters, digits, `_` or `-`, starting with a letter.
WechatId = Annotated[
    Annotated[str, Field(pattern=r"^[A-Za-z][A-Za-z0-9_-]{5,19}$")] | None, OptionalLine
]
# An email address (where a reporter is told of their case): a plain `local@domain`.
Email = Annotated[
    Annotated[str, Field(max_length=254, pattern=r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")] | None,
    OptionalLine,
]
PersonId = Annotated[str, Line, Field(min_length=1, max_length=PERSON_ID_MAX)]
OptionalPersonId = Annotated[Annotated[str, Field(max_length=PERSON_ID_MAX)] | None, OptionalLine]
HandlerId = Annotated[str, Line, Field(min_length=1, max_length=HANDLER_ID_MAX, pattern=r"^[^/]+$")]
CaseRef = Annotated[str, Field(min_length=1, max_length=CASE_ID_MAX, pattern=CASE_ID)]
DepartmentCode = Annotated[str, Field(pattern=DEPARTMENT_CODE)]
GridCode = Annotated[str, Field(pattern=GRID_CODE)]
ComponentId = Annotated[str, Field(pattern=COMPONENT_ID)]
ClassCode = Annotated[str, Field(pattern=CLASS_CODE)]
MediaIds = Annotated[list[Annotated[str, Field(pattern=MEDIA_ID)]], Field(max_length=MEDIA_MAX)]
Assisting = Annotated[list[DepartmentCode], Field(max_length=ASSISTING_MAX)]
Longitude = Annotated[float, Field(ge=LON_MIN, le=LON_MAX, allow_inf_nan=False)]
Latitude = Annotated[float, Field(ge=LAT_MIN, le=LAT_MAX, allow_inf_nan=False)]
DeadlineIn = Annotated[AwareDatetime, AfterValidator(_in_years)]
WebUrl = Annotated[
    str,
    Field(min_length=1, max_length=URL_MAX),
    AfterValidator(_one_token),
    AfterValidator(_parsable_url),
]
