"""Intake's HTTP API with a real broker and database: roles, channels, media in GridFS,
filing with case numbers, duplicates, idempotent retries.

Commands read the projection; here the test itself projects what intake published, by
reading it back from Kafka into the real `cases` collection (`Harness.project`).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from aiokafka import AIOKafkaConsumer, ConsumerRecord, TopicPartition
from pymongo import AsyncMongoClient
from pymongo.asynchronous.database import AsyncDatabase

from gridloop.auth import CredentialStore, Role
from gridloop.citypack import load_city_pack
from gridloop.config import DEMO_CITY_PACK
from gridloop.kafka import EventProducer, ensure_topics
from gridloop.mediakeys import link_key
from gridloop.medialinks import LinkSigner
from gridloop.mongo import Document
from schemas.envelope import Envelope, decode
from schemas.events import Actor, CaseDispatched
from schemas.events import Role as ActorRole
from services.intake.api import Intake, create_app, follow_key
from services.projections.store import CaseStore
from tests.conftest import Servers
from tests.helpers import read_topic

REPORT: dict[str, Any] = {
    "channel": "supervisor",
    "kind": "component",
    "class_code": "0101",
    "point": {"lon": 116.4005, "lat": 39.9204},
    "description": "井盖破损",
}
WEBSITE: dict[str, Any] = {
    "channel": "website",
    "kind": "event",
    "class_code": "0505",  # illegal parking: duplicates within 50 m
    "point": {"lon": 116.4075, "lat": 39.9205},
    "description": "a car on the pavement",
    "reporter": {"name": "李女士", "phone": "13900000000"},
}
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + b"\x00" * 2000


@dataclass
class Harness:
    http: httpx.AsyncClient
    intake: Intake
    db: AsyncDatabase[Document]
    kafka: str
    tokens: dict[str, str]

    def auth(self, who: str | None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[who]}"} if who else {}

    async def post(self, path: str, body: Any, who: str | None, **headers: str) -> httpx.Response:
        return await self.http.post(path, json=body, headers=self.auth(who) | headers)

    async def get(self, path: str, who: str | None, **params: str) -> httpx.Response:
        return await self.http.get(path, headers=self.auth(who), params=params)

    async def project(self, case_id: str, events: int) -> None:
        """Apply the case's first `events` events, read back from Kafka, to the projection."""
        found = await records_of(self.kafka, case_id.encode(), events)
        for r in found:
            await CaseStore(self.db).apply(decode(r.value, r.headers))


async def records_of(
    kafka: str,
    key: bytes,
    count: int,
    within: float = 30.0,
    topics: tuple[str, ...] = ("reports", "verifications"),
) -> list[ConsumerRecord[bytes, bytes]]:
    """The first `count` records keyed `key` on `topics` (those intake writes)."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka, enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        consumer.assign(
            [
                TopicPartition(topic, p)
                for topic in topics
                for p in consumer.partitions_for_topic(topic) or set()
            ]
        )
        await consumer.seek_to_beginning()
        found: list[ConsumerRecord[bytes, bytes]] = []
        deadline = time.monotonic() + within
        while len(found) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(found)} of {count} records keyed {key!r}")
            batch = await consumer.getmany(timeout_ms=200)
            found += [r for recs in batch.values() for r in recs if r.key == key]
        return found
    finally:
        await consumer.stop()


async def _harness(servers: Servers, pack_dir: Path) -> AsyncIterator[Harness]:
    await ensure_topics(servers.kafka)
    mongo: AsyncMongoClient[Document] = AsyncMongoClient(servers.mongodb, tz_aware=True)
    db = mongo[f"test_{uuid.uuid4().hex[:12]}"]
    producer = EventProducer(servers.kafka)
    await producer.start()
    intake = Intake(load_city_pack(pack_dir), producer, db, await follow_key(db))
    await CaseStore(db).create_indexes()  # as projections makes them
    credentials = CredentialStore(db)
    tokens = {
        "supervisor": await credentials.issue(Role.supervisor, "SUP-0001"),
        "other_supervisor": await credentials.issue(Role.supervisor, "SUP-0004"),
        "hotline": await credentials.issue(Role.hotline, "op-1"),
        "centre": await credentials.issue(Role.supervision_centre, "centre-1"),
        "command": await credentials.issue(Role.command_centre, "cmd-1"),
        "water": await credentials.issue(Role.department, "WATER"),
        "citizen": await credentials.issue(Role.public, "user-77"),
        "admin": await credentials.issue(Role.admin, "ops"),
    }
    transport = httpx.ASGITransport(app=create_app(intake))
    async with httpx.AsyncClient(transport=transport, base_url="http://intake") as http:
        yield Harness(http, intake, db, servers.kafka, tokens)
    await producer.stop()
    await mongo.close()


@pytest.fixture
async def h(servers: Servers) -> AsyncIterator[Harness]:
    async for harness in _harness(servers, DEMO_CITY_PACK):
        yield harness


@pytest.fixture
async def manual(servers: Servers, tmp_path: Path) -> AsyncIterator[Harness]:
    """Intake of a city whose supervision centre files every case by hand."""
    import shutil

    pack = tmp_path / "manual"
    shutil.copytree(DEMO_CITY_PACK, pack)
    city = yaml.safe_load((pack / "city.yaml").read_text(encoding="utf-8"))
    city["intake"]["auto_file"] = False
    (pack / "city.yaml").write_text(yaml.safe_dump(city, allow_unicode=True), "utf-8")
    async for harness in _harness(servers, pack):
        yield harness


# --- reports and roles ----------------------------------------------------------------------


async def test_a_supervisor_report_is_filed_with_a_number_and_in_kafka(h: Harness) -> None:
    response = await h.post("/reports", REPORT, "supervisor")
    assert response.status_code == 202, response.text
    answer = response.json()
    assert answer["state"] == "filed" and answer["version"] == 2
    assert answer["case_number"].startswith("B0101-")
    assert answer["case_number"].endswith("-0001")
    assert "follow_token" not in answer
    key = answer["case_id"].encode()

    def both(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        return bool(sum(r.key == key for r in records) >= 2)

    records = [r for r in await read_topic(h.kafka, "reports", both) if r.key == key]
    assert [dict(r.headers)["ce_id"].decode() for r in records] == answer["events"]
    filed = decode(records[1].value, records[1].headers)
    assert filed.data.model_dump()["case_number"] == answer["case_number"]
    reported = decode(records[0].value, records[0].headers).data
    assert reported.model_dump()["reporter"]["id"] == "SUP-0001"  # from the credential

    second = (await h.post("/reports", REPORT | {"point": {"lon": 116.4025, "lat": 39.9201}},
                           "supervisor")).json()  # fmt: skip
    assert second["case_number"].endswith("-0002")  # the next in the same class and day


@pytest.mark.parametrize(
    ("channel", "who", "status"),
    [
        ("supervisor", None, 401),
        ("supervisor", "hotline", 403),
        ("supervisor", "citizen", 403),
        ("hotline", None, 401),
        ("hotline", "supervisor", 403),
        ("hotline", "hotline", 202),
        ("website", None, 202),
        ("website", "citizen", 202),
        ("website", "water", 202),
    ],
)
async def test_channels_admit_their_roles(
    h: Harness, channel: str, who: str | None, status: int
) -> None:
    body = WEBSITE | {"channel": channel, "point": {"lon": 116.4015, "lat": 39.9201}}
    response = await h.post("/reports", body, who)
    assert response.status_code == status, response.text
    if status == 401:
        assert response.json()["detail"][0]["loc"] == ["header", "Authorization"]
        assert response.headers["www-authenticate"] == "Bearer"
    if status == 403:
        assert response.json()["detail"][0]["loc"] == ["body", "channel"]


async def test_a_forged_token_is_refused(h: Harness) -> None:
    response = await h.http.post(
        "/reports", json=WEBSITE, headers={"Authorization": "Bearer glk_forged"}
    )
    assert response.status_code == 401
    assert response.json()["detail"][0]["type"] == "unauthenticated"


@pytest.mark.parametrize(
    ("change", "loc", "kind"),
    [
        ({"point": {"lon": 100.0, "lat": 30.0}}, ["body", "point"], "outside_grids"),
        ({"class_code": "0999"}, ["body", "class_code"], "unknown_class"),
        ({"channel": "fax"}, ["body", "channel"], "enum"),
        ({"point": {"lon": 500, "lat": 39.9}}, ["body", "point", "lon"], "less_than_equal"),
        ({"component_id": "1101010101999999"}, ["body", "component_id"], "unknown_component"),
        ({"media": ["0123456789abcdef01234567"]}, ["body", "media"], "unknown_media"),
    ],
)
async def test_bad_reports_are_refused_with_field_and_reason(
    h: Harness, change: dict[str, Any], loc: list[str], kind: str
) -> None:
    response = await h.post("/reports", REPORT | change, "supervisor")
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == loc
    assert detail["type"] == kind
    assert detail["msg"]


async def test_a_component_report_with_a_photo_and_a_voice_note(h: Harness) -> None:
    photo = await h.http.post(
        "/media", files={"file": ("cover.jpg", JPEG, "image/jpeg")}, headers=h.auth("supervisor")
    )
    assert photo.status_code == 201, photo.text
    assert photo.json()["content_type"] == "image/jpeg"
    voice = await h.http.post(
        "/media", files={"file": ("note", b"#!AMR\n" + b"\x01" * 500)}, headers=h.auth("supervisor")
    )
    assert voice.json()["kind"] == "voice"
    body = {
        "channel": "supervisor",
        "component_id": "1101010118000002",  # a street lamp in grid …002001001
        "description": "路灯不亮",
        "media": [photo.json()["media_id"], voice.json()["media_id"]],
    }
    answer = (await h.post("/reports", body, "supervisor")).json()
    assert answer["case_number"].startswith("B0118-")
    await h.project(answer["case_id"], 2)
    case = (await h.get(f"/cases/{answer['case_id']}", "centre")).json()
    assert case["component_id"] == "1101010118000002"
    assert case["grid_code"] == "110101002001001"
    assert case["point"]["coordinates"] == [116.4045, 39.9206]
    assert case["media"] == body["media"]
    stored = await h.http.get(f"/media/{body['media'][0]}", headers=h.auth("centre"))
    assert stored.content == JPEG
    assert stored.headers["content-type"] == "image/jpeg"
    assert (await h.http.get(f"/media/{body['media'][0]}")).status_code == 401


async def test_media_follow_their_case_and_every_read_is_audited(h: Harness) -> None:
    upload = await h.http.post(
        "/media", files={"file": ("p.jpg", JPEG, "image/jpeg")}, headers=h.auth("supervisor")
    )
    photo = upload.json()["media_id"]
    answer = (await h.post("/reports", REPORT | {"media": [photo]}, "supervisor")).json()
    case_id = answer["case_id"]
    await h.project(case_id, 2)
    roads = await CredentialStore(h.db).issue(Role.department, "ROADS")

    async def read(token: str) -> httpx.Response:
        return await h.http.get(f"/media/{photo}", headers={"Authorization": f"Bearer {token}"})

    # Filed, dispatched to nobody yet: no department reads it, as it reads no such case.
    refused = await read(h.tokens["water"])
    assert refused.status_code == 404
    assert refused.json()["detail"][0]["loc"] == ["path", "media_id"]
    dispatched = CaseDispatched(
        case_id=case_id,
        version=3,
        actor=Actor(role=ActorRole.command_centre, id="auto-dispatch"),
        department="WATER",
        deadline=datetime.now(UTC) + timedelta(hours=4),
        rule="test",
    )
    await CaseStore(h.db).apply(Envelope(dispatched, "/tests"))
    granted = await read(h.tokens["water"])
    assert granted.status_code == 200 and granted.content == JPEG
    assert (await read(roads)).status_code == 404  # another department: as unknown
    assert (await read(h.tokens["centre"])).status_code == 200  # the centre reads every case

    trail = [d async for d in h.db["audit"].find({"media_id": photo})]
    assert len(trail) == 4
    assert {(d["kind"], d["actor"]["id"], d["case_id"]) for d in trail} == {
        ("refused", "WATER", None),
        ("read", "WATER", case_id),
        ("refused", "ROADS", None),
        ("read", "centre-1", case_id),
    }


async def test_a_webhook_photo_link_is_signed_expires_and_follows_the_case(h: Harness) -> None:
    """The link a webhook carries opens the photo without a credential, as the department
    it was signed for (audited so); altered or expired, it is refused and says why."""
    upload = await h.http.post(
        "/media", files={"file": ("p.jpg", JPEG, "image/jpeg")}, headers=h.auth("supervisor")
    )
    photo = upload.json()["media_id"]
    case_id = (await h.post("/reports", REPORT | {"media": [photo]}, "supervisor")).json()[
        "case_id"
    ]
    await h.project(case_id, 2)
    dispatched = CaseDispatched(
        case_id=case_id,
        version=3,
        actor=Actor(role=ActorRole.command_centre, id="auto-dispatch"),
        department="WATER",
        deadline=datetime.now(UTC) + timedelta(hours=4),
        rule="test",
    )
    await CaseStore(h.db).apply(Envelope(dispatched, "/tests"))
    # Notify signs with the same key: the database's own, none being configured.
    signer = LinkSigner(await link_key(h.db, ""), "http://intake", timedelta(hours=1))
    now = datetime.now(UTC)

    def path(link: str) -> str:
        return link.removeprefix("http://intake")

    opened = await h.http.get(path(signer.link(photo, "WATER", now).url))
    assert opened.status_code == 200, opened.text
    assert opened.content == JPEG

    link = signer.link(photo, "WATER", now).url
    expires = int(link.split("expires=")[1].split("&")[0])
    tampered = await h.http.get(path(link.replace(f"expires={expires}", f"expires={expires + 9}")))
    assert tampered.status_code == 403
    [why] = tampered.json()["detail"]
    assert (why["loc"], why["type"]) == (["query", "signature"], "link_tampered")
    assert "signature does not match" in why["msg"]

    old = signer.link(photo, "WATER", now - timedelta(hours=2)).url
    expired = await h.http.get(path(old))
    assert expired.status_code == 403
    assert expired.json()["detail"][0]["type"] == "link_expired"
    assert "expired" in expired.json()["detail"][0]["msg"]

    other_key = LinkSigner(b"another key", "http://intake", timedelta(hours=1))
    forged = await h.http.get(path(other_key.link(photo, "WATER", now).url))
    assert forged.json()["detail"][0]["type"] == "link_tampered"
    # Signed for a department the case was not sent to: as unknown, like its credential.
    roads = await h.http.get(path(signer.link(photo, "ROADS", now).url))
    assert roads.status_code == 404

    trail = [d async for d in h.db["audit"].find({"media_id": photo})]
    assert [(d["kind"], d["actor"]["id"], d["case_id"]) for d in trail] == [
        ("read", "WATER", case_id),
        ("refused", "ROADS", None),
    ]


def _keys_and_points(value: Any, found: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Every (key, value) of a JSON document, at any depth."""
    if isinstance(value, dict):
        for key, inner in value.items():
            found.append((key, inner))
            _keys_and_points(inner, found)
    elif isinstance(value, list):
        for inner in value:
            _keys_and_points(inner, found)
    return found


async def test_a_case_read_has_geojson_points_and_no_internal_fields(h: Harness) -> None:
    """The projection keeps the duplicate search's cell keys (`near`) on the case document;
    a read shows none of them, and every point in it — the case's and its report's on the
    timeline — is GeoJSON."""
    case_id = (await h.post("/reports", REPORT, "supervisor")).json()["case_id"]
    await h.project(case_id, 2)
    stored = await h.db["cases"].find_one({"_id": case_id})
    assert stored is not None and stored["near"]  # what must not show
    read = await h.get(f"/cases/{case_id}", "centre")
    assert read.status_code == 200
    pairs = _keys_and_points(read.json(), [])
    keys = {key for key, _ in pairs}
    assert not keys & {"near", "open_near", "outbox", "rev", "writer", "_id", "lon", "lat"}, keys
    points = [value for key, value in pairs if key == "point"]
    assert len(points) == 2  # the case's and the report's on its timeline
    lon, lat = REPORT["point"]["lon"], REPORT["point"]["lat"]
    assert all(p == {"type": "Point", "coordinates": [lon, lat]} for p in points), points
    cells = {str(k) for k in stored["near"]}
    assert not cells & {str(v) for _, v in pairs}  # no cell key as a value either


async def test_media_ids_tell_nothing_of_one_another(h: Harness) -> None:
    ids = [
        (
            await h.http.post(
                "/media",
                files={"file": ("p.jpg", JPEG + bytes([n]), "image/jpeg")},
                headers=h.auth("hotline"),
            )
        ).json()["media_id"]
        for n in range(3)
    ]
    # ObjectIds of one process share their bytes 4–8 (a per-process random value) and
    # count up in bytes 9–11: these are random throughout.
    assert len({i[8:18] for i in ids}) == 3
    assert all(len(i) == 24 for i in ids)


async def test_a_photo_sent_twice_is_one_upload_of_its_uploader(h: Harness) -> None:
    """A handheld sends a photo again when the answer was lost: the same uploader's same
    bytes are the upload it already made. Another uploader's, or an anonymous caller's,
    are never answered with an earlier upload (that would tell who sent what)."""

    async def upload(role: str | None, data: bytes = JPEG) -> str:
        headers = h.auth(role) if role else {}
        sent = await h.http.post(
            "/media", files={"file": ("p.jpg", data, "image/jpeg")}, headers=headers
        )
        assert sent.status_code == 201, sent.text
        media_id: str = sent.json()["media_id"]
        return media_id

    first = await upload("supervisor")
    assert await upload("supervisor") == first
    assert await upload("supervisor", JPEG + b"\x00") != first
    assert await upload("hotline") != first
    assert await upload(None) != await upload(None)
    assert await h.db["media.files"].count_documents({"metadata.sha256": {"$exists": True}}) == 5


async def test_uploads_are_typed_by_their_bytes_and_limited(h: Harness) -> None:
    pdf = await h.http.post("/media", files={"file": ("x.jpg", b"%PDF-1.7", "image/jpeg")})
    assert pdf.status_code == 415
    assert pdf.json()["detail"][0]["loc"] == ["body", "file"]
    big = JPEG + b"\x00" * (10 * 1024 * 1024)
    too_large = await h.http.post("/media", files={"file": ("big.jpg", big, "image/jpeg")})
    assert too_large.status_code == 413


# --- the reporter's view, personal data -----------------------------------------------------


async def test_a_website_reporter_follows_their_case_and_staff_see_only_what_they_may(
    h: Harness,
) -> None:
    answer = (await h.post("/reports", WEBSITE, None)).json()
    case_id, token = answer["case_id"], answer["follow_token"]
    await h.project(case_id, 1)
    public = await h.get(f"/cases/{case_id}/public", None, token=token)
    assert public.status_code == 200, public.text
    shown = public.json()
    assert (shown["state"], shown["status"]) == ("reported", "open")
    assert "13900000000" not in public.text and "李女士" not in public.text
    assert (await h.get(f"/cases/{case_id}/public", None, token="glf_wrong")).status_code == 404
    assert (await h.get(f"/cases/{case_id}/public", None)).status_code == 404
    assert (await h.get(f"/cases/{case_id}", None)).status_code == 401
    for who, sees in [("hotline", True), ("centre", True), ("admin", True),
                      ("supervisor", False), ("command", False)]:  # fmt: skip
        response = await h.get(f"/cases/{case_id}", who)
        assert response.status_code == 200, (who, response.text)
        assert ("13900000000" in response.text) is sees, who
    # A department reaches only its own cases: this one was never dispatched to WATER.
    assert (await h.get(f"/cases/{case_id}", "water")).status_code == 404


async def test_a_citizen_account_follows_its_own_reports(h: Harness) -> None:
    answer = (await h.post("/reports", WEBSITE, "citizen")).json()
    await h.project(answer["case_id"], 1)
    mine = await h.get(f"/cases/{answer['case_id']}/public", "citizen")
    assert mine.status_code == 200
    assert (await h.get(f"/cases/{answer['case_id']}/public", None)).status_code == 404


# --- verification, filing, voiding ------------------------------------------------------------


async def test_verification_tasks_and_filing_by_hand(manual: Harness) -> None:
    h = manual
    hotline = WEBSITE | {"channel": "hotline", "point": {"lon": 116.4005, "lat": 39.9201}}
    answer = (await h.post("/reports", hotline, "hotline")).json()
    case_id = answer["case_id"]
    assert answer["state"] == "reported"
    await h.project(case_id, 1)

    tasks = (await h.get("/tasks/verification", "supervisor")).json()
    assert [t["case_id"] for t in tasks] == [case_id]  # SUP-0001 patrols grid …001001
    assert tasks[0]["verifier"] == "SUP-0001" and tasks[0]["due"]
    assert (await h.get("/tasks/verification", "other_supervisor")).json() == []
    assert len((await h.get("/tasks/verification", "centre")).json()) == 1
    assert (await h.get("/tasks/verification", "hotline")).status_code == 403

    verification = {"confirmed": True, "note": "seen it"}
    by_centre = await h.post(f"/cases/{case_id}/verification", verification, "centre")
    assert by_centre.status_code == 403
    verified = await h.post(f"/cases/{case_id}/verification", verification, "supervisor")
    assert verified.status_code == 202, verified.text
    assert verified.json()["state"] == "verified"  # filing is the centre's, in this city
    await h.project(case_id, 2)

    assert [t["case_id"] for t in (await h.get("/tasks/filing", "centre")).json()] == [case_id]
    assert (await h.post(f"/cases/{case_id}/file", {}, "supervisor")).status_code == 403
    filed = await h.post(f"/cases/{case_id}/file", {"note": "clear case"}, "centre")
    assert filed.status_code == 202, filed.text
    assert filed.json()["state"] == "filed"
    assert filed.json()["case_number"].startswith("S0505-")


async def test_the_centre_voids_a_report_with_a_reason(manual: Harness) -> None:
    h = manual
    case_id = (await h.post("/reports", REPORT, "supervisor")).json()["case_id"]
    await h.project(case_id, 1)
    assert (await h.post(f"/cases/{case_id}/void", {}, "centre")).status_code == 422
    voided = await h.post(f"/cases/{case_id}/void", {"reason": "a private courtyard"}, "centre")
    assert voided.status_code == 202
    assert voided.json()["state"] == "voided"
    await h.project(case_id, 2)
    case = (await h.get(f"/cases/{case_id}", "centre")).json()
    assert case["state"] == "voided"
    assert case["timeline"][-1]["reason"] == "a private courtyard"
    assert case["timeline"][-1]["actor"] == {"role": "supervision_centre", "id": "centre-1"}
    again = await h.post(f"/cases/{case_id}/file", {}, "centre")
    assert again.status_code == 409
    assert again.json()["detail"][0]["type"] == "invalid_transition"


# --- duplicates ------------------------------------------------------------------------------


async def test_a_duplicate_is_merged_counted_split_and_merged_by_hand(h: Harness) -> None:
    first = (await h.post("/reports", WEBSITE, None)).json()
    await h.project(first["case_id"], 1)
    near = WEBSITE | {"point": {"lon": 116.4077, "lat": 39.9205}}  # ≈ 17 m east
    second = (await h.post("/reports", near, None)).json()
    assert second["state"] == "merged"
    assert second["merged_into"] == first["case_id"]
    await h.project(second["case_id"], 2)
    case = (await h.get(f"/cases/{first['case_id']}", "centre")).json()
    assert case["duplicates"] == 1
    public = (await h.get(f"/cases/{second['case_id']}/public", None,
                          token=second["follow_token"])).json()  # fmt: skip
    assert public["merged_into"]["case_id"] == first["case_id"]

    other_class = WEBSITE | {"class_code": "0102"}  # the same spot, another problem
    assert (await h.post("/reports", other_class, None)).json()["state"] == "reported"

    split = await h.post(f"/cases/{second['case_id']}/split", {"reason": "another car"}, "centre")
    assert split.status_code == 202, split.text
    assert split.json()["state"] == "reported"  # a case of its own again
    await h.project(second["case_id"], 3)
    assert (await h.get(f"/cases/{first['case_id']}", "centre")).json()["duplicates"] == 0
    merge = {"into_case_id": first["case_id"], "reason": "same car after all"}
    by_supervisor = await h.post(f"/cases/{second['case_id']}/merge", merge, "supervisor")
    assert by_supervisor.status_code == 403
    merged = await h.post(f"/cases/{second['case_id']}/merge", merge, "centre")
    assert merged.status_code == 202, merged.text
    assert merged.json()["merged_into"] == first["case_id"]
    unknown = await h.post(f"/cases/{second['case_id']}/merge", {"into_case_id": "nope"}, "centre")
    assert unknown.status_code == 404
    assert unknown.json()["detail"][0]["loc"] == ["body", "into_case_id"]


# --- idempotency -------------------------------------------------------------------------------


async def test_a_retry_with_the_same_key_returns_the_first_answer(h: Harness) -> None:
    headers = {"Idempotency-Key": f"k-{uuid.uuid4()}"}
    first = await h.post("/reports", REPORT, "supervisor", **headers)
    again = await h.post("/reports", REPORT, "supervisor", **headers)
    assert first.status_code == again.status_code == 202
    assert again.json() == first.json()
    numbers = h.db["case_numbers"]
    assert await numbers.count_documents({}) == 1  # no second number was drawn
    other = await h.post("/reports", REPORT | {"description": "else"}, "supervisor", **headers)
    assert other.status_code == 422
    assert other.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]
    # Another caller's equal key is another request.
    theirs = await h.post("/reports", WEBSITE, None, **headers)
    assert theirs.status_code == 202
    assert theirs.json()["case_id"] != first.json()["case_id"]


async def test_anonymous_callers_do_not_share_one_key_space(h: Harness) -> None:
    key = {"Idempotency-Key": f"k-{uuid.uuid4()}"}  # a caller's own random key
    mine = await h.post("/reports", WEBSITE, None, **key)
    assert mine.status_code == 202, mine.text
    again = await h.post("/reports", WEBSITE, None, **key)
    assert again.json() == mine.json()  # the retry finds its answer
    # Another caller under an equal key (picked alike, or learned) sends its own report: it
    # gets a case and a token of its own, and is not told that the key is in use.
    theirs = await h.post("/reports", WEBSITE | {"description": "a van on the kerb"}, None, **key)
    assert theirs.status_code == 202, theirs.text
    assert theirs.json()["case_id"] != mine.json()["case_id"]
    assert theirs.json()["follow_token"] != mine.json()["follow_token"]
    # The same holds for batches.
    batch = await h.post("/reports/batch", [WEBSITE | {"description": "a lorry"}], None, **key)
    assert batch.status_code == 202, batch.text
    [one] = batch.json()["accepted"]
    assert one["case_id"] not in {mine.json()["case_id"], theirs.json()["case_id"]}
    # A key too short to be anyone's secret (a counter) is refused, and nothing is filed.
    for path, body in (("/reports", WEBSITE), ("/reports/batch", [WEBSITE])):
        short = await h.post(path, body, None, **{"Idempotency-Key": "1"})
        assert short.status_code == 422, short.text
        problem = short.json()["detail"][0]
        assert (problem["loc"], problem["type"]) == (
            ["header", "Idempotency-Key"],
            "idempotency_key_too_short",
        )
    assert await h.db["case_heads"].count_documents({}) == 3
    # A credential names its holder: its keys stay its own, short or not.
    mine_again = await h.post("/reports", REPORT, "supervisor", **{"Idempotency-Key": "1"})
    assert mine_again.status_code == 202, mine_again.text


async def test_commands_on_unknown_cases_are_404(h: Harness) -> None:
    response = await h.post("/cases/nope/check", {"passed": True}, "supervisor")
    assert response.status_code == 404
    assert (await h.get("/cases/nope", "centre")).status_code == 404
