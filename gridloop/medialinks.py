"""Signed, expiring links to a case's photos and voice notes (签名链接), for webhooks.

A department's webhook carries links it can open without a second call or a credential:
`{base}/media/{id}/signed?department={code}&expires={unix seconds}&signature={hex}`, the
signature an HMAC-SHA256 of `{id}.{department}.{expires}` under the system's media-link key.
Notify signs them for the department it tells; intake's media route serves a link whose
signature matches and whose time has not passed (its read audited as that department's),
and refuses any other.
The key is configuration (`GRIDLOOP_MEDIA_LINK_KEY`); where none is configured, one key is
made once per database and kept there (`gridloop.mediakeys`), so the services of one
system agree on it. Pure.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Literal
from urllib.parse import quote

SIGNATURE_HEX = 64  # HMAC-SHA256 in hex


@dataclass(frozen=True)
class MediaLink:
    url: str
    expires_at: datetime


@dataclass(frozen=True)
class LinkSigner:
    """Signs links to `base` (intake's public address, up to but not including `/media`)."""

    key: bytes
    base: str
    ttl: timedelta

    def link(self, media_id: str, department: str, now: datetime) -> MediaLink:
        expires = int((now + self.ttl).timestamp())
        signature = sign(self.key, media_id, department, expires)
        query = f"department={quote(department)}&expires={expires}&signature={signature}"
        url = f"{self.base.rstrip('/')}/media/{media_id}/signed?{query}"
        return MediaLink(url, datetime.fromtimestamp(expires, UTC))


def sign(key: bytes, media_id: str, department: str, expires: int) -> str:
    message = f"{media_id}.{department}.{expires}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


Verdict = Literal["valid", "tampered", "expired"]


def check(
    key: bytes, media_id: str, department: str, expires: int, signature: str, now: datetime
) -> Verdict:
    """Whether a link stands: its signature first (a tampered expiry is tampered, not
    expired), then its time."""
    expected = sign(key, media_id, department, expires).encode()
    if not hmac.compare_digest(expected, signature.encode("ascii", "replace")):
        return "tampered"
    return "valid" if now.timestamp() < expires else "expired"
