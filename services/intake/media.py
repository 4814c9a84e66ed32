"""Photos and voice notes uploaded with reports and verifications, kept in MongoDB GridFS.

The type is read from the bytes (magic numbers), never trusted from the client; each kind
has a size limit. The pure part (`sniff`, `check`) is unit-tested without a database.

Who may read an upload follows who may read its case (`views.media_case`): a report
or a verification that names uploads links them to its case (`metadata.cases`) before its
claim, so a case never stands with media its readers cannot reach; a link to a case whose
report was refused grants nothing (there is no case to read). Ids are 12 random bytes
(24 hex digits, as GridFS ids): one upload's id tells nothing of another's.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId
from bson.errors import InvalidId
from gridfs import AsyncGridFSBucket, NoFile
from pymongo import UpdateMany
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.auth import PUBLIC, Principal, Role
from gridloop.mongo import Document
from gridloop.refusal import Refused, Why, invalid, not_found

MiB = 1024 * 1024
LIMITS = {"photo": 10 * MiB, "voice": 5 * MiB}
MAX_UPLOAD = max(LIMITS.values())
# What `GET /media/{id}` may answer with: the types `sniff` recognises.
MEDIA_CONTENT_TYPES = (
    "image/jpeg",
    "image/png",
    "image/webp",
    "audio/amr",
    "audio/wav",
    "audio/ogg",
    "audio/mpeg",
    "audio/mp4",
    "audio/webm",
    "application/octet-stream",
)


@dataclass(frozen=True)
class MediaType:
    content_type: str
    kind: str  # photo | voice


def sniff(head: bytes) -> MediaType | None:
    """The media type of a file from its first bytes, or None if it is not one we take."""
    if head.startswith(b"\xff\xd8\xff"):
        return MediaType("image/jpeg", "photo")
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return MediaType("image/png", "photo")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return MediaType("image/webp", "photo")
    if head.startswith(b"#!AMR\n"):
        return MediaType("audio/amr", "voice")
    if head[:4] == b"RIFF" and head[8:12] == b"WAVE":
        return MediaType("audio/wav", "voice")
    if head.startswith(b"OggS"):
        return MediaType("audio/ogg", "voice")
    if head.startswith(b"ID3") or (len(head) > 1 and head[0] == 0xFF and head[1] & 0xE0 == 0xE0):
        return MediaType("audio/mpeg", "voice")
    if head[4:8] == b"ftyp" and head[8:11] in (b"M4A", b"mp4", b"iso", b"3gp"):
        return MediaType("audio/mp4", "voice")
    if head.startswith(b"\x1a\x45\xdf\xa3"):  # WebM (EBML): a browser's MediaRecorder
        return MediaType("audio/webm", "voice")
    return None


def check(data: bytes) -> MediaType:
    """The type of an upload, or a refusal saying why (type, size)."""
    if not data:
        raise invalid(("body", "file"), "the file is empty", "empty_file")
    found = sniff(data[:16])
    if found is None:
        raise Refused(
            Why.unsupported,
            ("body", "file"),
            "only photos (JPEG, PNG, WebP) and voice notes (AMR, MP3, M4A, WAV, Ogg, WebM) "
            "are taken",
            "unsupported_media_type",
        )
    limit = LIMITS[found.kind]
    if len(data) > limit:
        raise Refused(
            Why.too_large,
            ("body", "file"),
            f"a {found.kind} may be at most {limit // MiB} MiB; this one is {len(data)} bytes",
            "too_large",
        )
    return found


def new_media_id() -> ObjectId:
    """An upload's id: random, where an ObjectId's time, process and counter would let
    one id be guessed from another."""
    return ObjectId(secrets.token_bytes(12))


@dataclass(frozen=True)
class Upload:
    """What is known of an upload before its bytes are read."""

    media_id: str
    content_type: str
    cases: tuple[str, ...]  # the cases whose reports or verifications name it
    uploaded_by: Principal | None


# What makes two uploads one: the same uploader's same bytes.
_SAME_UPLOAD = ("uploaded_by.role", "uploaded_by.subject", "sha256")


def _stored(file_id: ObjectId, media: MediaType, size: int, digest: str) -> dict[str, Any]:
    return {
        "media_id": str(file_id),
        "content_type": media.content_type,
        "kind": media.kind,
        "size": size,
        "sha256": digest,
    }


def _upload(doc: Document) -> Upload:
    metadata = doc.get("metadata") or {}
    by = metadata.get("uploaded_by") or {}
    uploader = Principal(Role(by["role"]), str(by["subject"])) if by.get("role") else None
    return Upload(
        str(doc["_id"]),
        str(metadata.get("content_type", "application/octet-stream")),
        tuple(metadata.get("cases", ())),
        uploader,
    )


def _object_id(media_id: str) -> ObjectId | None:
    try:
        return ObjectId(media_id)
    except (InvalidId, TypeError):
        return None


class MediaStore:
    def __init__(self, db: AsyncDatabase[Document]) -> None:
        self.bucket = AsyncGridFSBucket(db, bucket_name="media")
        self.files = db["media.files"]

    async def create_indexes(self) -> None:
        # An uploader's earlier upload of the same bytes (`put`): found without a scan.
        await self.files.create_index([(f"metadata.{f}", 1) for f in _SAME_UPLOAD])

    async def put(self, data: bytes, filename: str, who: Principal) -> dict[str, Any]:
        """Keep an upload, or answer with the one its uploader already made of the same
        bytes: a handheld sending a photo again (its answer lost on a bad network) makes
        no second file. Only a credential holder's own: another's upload is never told of,
        and anonymous callers, who share one subject, are never answered with an earlier
        upload."""
        media = check(data)
        digest = hashlib.sha256(data).hexdigest()
        uploader = {"role": who.role.value, "subject": who.subject}
        same = dict(zip(_SAME_UPLOAD, (uploader["role"], uploader["subject"], digest), strict=True))
        earlier = None
        if who != PUBLIC:  # anonymous callers are one subject: none is told of another's
            earlier = await self.files.find_one({f"metadata.{f}": v for f, v in same.items()})
        if earlier is not None:
            return _stored(earlier["_id"], media, len(data), digest)
        metadata = {
            "content_type": media.content_type,
            "kind": media.kind,
            "sha256": digest,
            "uploaded_by": uploader,
            "uploaded_at": datetime.now(UTC),
            "cases": [],
        }
        file_id = new_media_id()
        await self.bucket.upload_from_stream_with_id(
            file_id, filename[:200], data, metadata=metadata
        )
        return _stored(file_id, media, len(data), digest)

    async def missing(self, ids: list[str]) -> list[str]:
        """The ids among `ids` that name no uploaded file."""
        if not ids:
            return []
        found = self.files.find({"_id": {"$in": [ObjectId(i) for i in ids]}}, {"_id": 1})
        have = {str(d["_id"]) async for d in found}
        return [i for i in ids if i not in have]

    async def attach(self, ids: Sequence[str], case_id: str) -> list[str]:
        """Link the uploads `ids` to `case_id`, whose report or verification names them;
        the ids among them that name no upload (one round trip when all do)."""
        if not ids:
            return []
        linked = await self.files.update_many(
            {"_id": {"$in": [ObjectId(i) for i in ids]}},
            {"$addToSet": {"metadata.cases": case_id}},
        )
        return [] if linked.matched_count == len(set(ids)) else await self.missing(list(ids))

    async def attach_many(self, links: Mapping[str, Sequence[str]]) -> None:
        """`attach` for several cases at once (a batch whose uploads are known to exist)."""
        writes = [
            UpdateMany(
                {"_id": {"$in": [ObjectId(i) for i in ids]}},
                {"$addToSet": {"metadata.cases": case_id}},
            )
            for case_id, ids in links.items()
            if ids
        ]
        if writes:
            await self.files.bulk_write(writes, ordered=False)

    async def upload(self, media_id: str) -> Upload | None:
        """What is known of an upload, without its bytes; None if there is none."""
        oid = _object_id(media_id)
        doc = None if oid is None else await self.files.find_one({"_id": oid})
        return _upload(doc) if doc else None

    async def read(self, media_id: str) -> bytes:
        oid = _object_id(media_id)
        try:
            if oid is None:
                raise NoFile(media_id)
            stream = await self.bucket.open_download_stream(oid)
        except NoFile as exc:
            raise not_found(("path", "media_id"), f"no media {media_id}") from exc
        data: bytes = await stream.read()
        return data
