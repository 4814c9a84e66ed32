"""CloudEvents binary mode over Kafka: encode/decode, deterministic ids, decode errors."""

from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schemas.envelope import (
    CONTENT_TYPE,
    SPECVERSION,
    Envelope,
    EnvelopeError,
    Headers,
    decode,
    encode,
    event_id,
    uuid5,
)
from schemas.events import EVENT_TYPES, CaseFiled, EventData, SlaEscalation, SlaWarning
from tests.samples import CASE_ID, SOURCE, TIME, all_samples, sample, sample_of, sample_types

HEADER_NAMES = [
    "ce_specversion",
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_time",
    "ce_subject",
    "content-type",
]
REQUIRED_HEADERS = [name for name in HEADER_NAMES if name.startswith("ce_")]


def _record(data: EventData | None = None) -> tuple[bytes, bytes, Headers]:
    return encode(Envelope(data=data or sample("gridloop.case.filed"), source=SOURCE, time=TIME))


def _with_header(headers: Headers, name: str, value: bytes) -> Headers:
    return [(n, value if n == name else v) for n, v in headers]


def test_every_event_type_has_a_sample() -> None:
    assert sample_types() == set(EVENT_TYPES)
    for ce_type, data in all_samples().items():
        assert isinstance(data, EVENT_TYPES[ce_type])
        assert data.ce_type == ce_type


@pytest.mark.parametrize("ce_type", sorted(EVENT_TYPES))
def test_round_trip(ce_type: str) -> None:
    env = Envelope(data=sample(ce_type), source=SOURCE, time=TIME)
    key, value, headers = encode(env)

    decoded = decode(value, headers)

    assert decoded == env
    assert type(decoded.data) is EVENT_TYPES[ce_type]
    assert decoded.time == TIME and decoded.time.tzinfo is not None
    assert key == CASE_ID.encode()


@pytest.mark.parametrize("ce_type", sorted(EVENT_TYPES))
def test_headers_are_cloudevents_binary_mode(ce_type: str) -> None:
    env = Envelope(data=sample(ce_type), source=SOURCE, time=TIME)
    key, _, headers = encode(env)

    assert sorted(name for name, _ in headers) == sorted(HEADER_NAMES)
    values = dict(headers)
    assert values["ce_specversion"] == SPECVERSION.encode() == b"1.0"
    assert values["ce_id"] == env.id.encode()
    assert values["ce_source"] == SOURCE.encode()
    assert values["ce_type"] == ce_type.encode()
    assert values["ce_time"] == TIME.isoformat().encode()
    assert values["ce_subject"] == CASE_ID.encode()
    assert values["content-type"] == CONTENT_TYPE.encode() == b"application/json"
    assert all(isinstance(v, bytes) for v in values.values())
    assert key == env.subject.encode() == CASE_ID.encode()


def test_decode_accepts_aiokafka_tuple_headers() -> None:
    _, value, headers = _record()
    assert decode(value, tuple(headers)).data == sample("gridloop.case.filed")


def test_value_is_the_data_as_utf8_json() -> None:
    data = sample("gridloop.case.reported")
    _, value, _ = _record(data)
    assert "井盖破损".encode() in value
    assert EVENT_TYPES[data.ce_type].model_validate_json(value) == data


# --- deterministic ids ------------------------------------------------------------------


def test_id_is_a_uuid5_derived_from_the_fact() -> None:
    data = sample("gridloop.case.filed")
    assert uuid.UUID(event_id(data)).version == 5
    assert Envelope(data=data, source=SOURCE).id == event_id(data)


@pytest.mark.parametrize("ce_type", sorted(EVENT_TYPES))
def test_same_fact_same_id(ce_type: str) -> None:
    first = Envelope(data=sample(ce_type), source=SOURCE, time=TIME)
    again = Envelope(data=sample(ce_type), source="/elsewhere")  # re-derived later
    assert first.id == again.id


def test_same_transition_and_version_is_the_same_fact() -> None:
    # A retried transition with a different reason is still the same fact.
    a = sample("gridloop.case.voided", reason="duplicate")
    b = sample("gridloop.case.voided", reason="not a city problem")
    assert event_id(a) == event_id(b)


def test_different_version_different_id() -> None:
    assert event_id(sample_of(CaseFiled, version=1)) != event_id(sample_of(CaseFiled, version=2))


def test_different_case_or_type_different_id() -> None:
    filed = sample("gridloop.case.filed")
    assert event_id(filed) != event_id(sample("gridloop.case.filed", case_id="C-other"))
    assert event_id(filed) != event_id(sample("gridloop.case.voided"))


def test_sla_ids_distinguish_stage_version_and_tier() -> None:
    warning = sample_of(SlaWarning)
    assert event_id(warning) == event_id(sample_of(SlaWarning))
    assert event_id(warning) != event_id(sample_of(SlaWarning, stage="check"))
    assert event_id(warning) != event_id(sample_of(SlaWarning, case_version=2))
    assert event_id(warning) != event_id(sample("gridloop.sla.breach"))
    street = sample_of(SlaEscalation, tier="street")
    assert event_id(street) != event_id(sample_of(SlaEscalation, tier="district"))


def test_all_sample_ids_are_distinct() -> None:
    ids = [event_id(data) for data in all_samples().values()]
    assert len(set(ids)) == len(ids)


# --- decode errors ----------------------------------------------------------------------


@pytest.mark.parametrize("name", REQUIRED_HEADERS)
def test_missing_header(name: str) -> None:
    _, value, headers = _record()
    without = [(n, v) for n, v in headers if n != name]
    with pytest.raises(EnvelopeError, match=f"missing header {name}"):
        decode(value, without)


@pytest.mark.parametrize("name", REQUIRED_HEADERS)
def test_empty_header_counts_as_missing(name: str) -> None:
    _, value, headers = _record()
    with pytest.raises(EnvelopeError, match=f"missing header {name}"):
        decode(value, _with_header(headers, name, b""))


def test_no_headers_at_all() -> None:
    _, value, _ = _record()
    with pytest.raises(EnvelopeError, match="missing header ce_specversion"):
        decode(value, [])


def test_unknown_type() -> None:
    _, value, headers = _record()
    with pytest.raises(EnvelopeError, match=r"unknown ce_type 'gridloop\.case\.teleported'"):
        decode(value, _with_header(headers, "ce_type", b"gridloop.case.teleported"))


@pytest.mark.parametrize("version", [b"0.3", b"2.0", b"1"])
def test_wrong_specversion(version: bytes) -> None:
    _, value, headers = _record()
    with pytest.raises(EnvelopeError, match=f"unsupported ce_specversion '{version.decode()}'"):
        decode(value, _with_header(headers, "ce_specversion", version))


@pytest.mark.parametrize("value", [b"{not json", b"", None, b"[]", b"\xff\xfe"])
def test_bad_json(value: bytes | None) -> None:
    _, _, headers = _record()
    with pytest.raises(EnvelopeError, match=r"invalid gridloop\.case\.filed data"):
        decode(value, headers)


def test_data_missing_a_field() -> None:
    _, value, headers = _record()
    broken = value.replace(b'"grid_code"', b'"grid_kode"')
    with pytest.raises(EnvelopeError, match="grid_code") as caught:
        decode(broken, headers)
    assert "invalid gridloop.case.filed data" in str(caught.value)
    assert "grid_kode" in str(caught.value)  # the extra field is forbidden, and said so


def test_data_with_an_invalid_value() -> None:
    _, value, headers = _record()
    broken = value.replace(b'"version":1', b'"version":0')
    assert broken != value
    with pytest.raises(EnvelopeError, match="version"):
        decode(broken, headers)


def test_data_of_another_type() -> None:
    # A filed payload under a voided type: extra fields are forbidden.
    _, value, headers = _record()
    with pytest.raises(EnvelopeError, match=r"(?s)invalid gridloop\.case\.voided data.*kind"):
        decode(value, _with_header(headers, "ce_type", b"gridloop.case.voided"))


def test_subject_not_matching_case_id() -> None:
    _, value, headers = _record()
    with pytest.raises(EnvelopeError, match="ce_subject does not match the case_id"):
        decode(value, _with_header(headers, "ce_subject", b"C-someone-else"))


def test_bad_time() -> None:
    _, value, headers = _record()
    with pytest.raises(EnvelopeError, match="invalid ce_time"):
        decode(value, _with_header(headers, "ce_time", b"yesterday"))


def test_envelope_error_is_a_value_error() -> None:
    assert issubclass(EnvelopeError, ValueError)


@given(st.uuids(), st.text())
def test_event_ids_are_the_standard_uuid5(namespace: uuid.UUID, name: str) -> None:
    assert uuid5(namespace, name) == str(uuid.uuid5(namespace, name))


# --- the distributed-tracing extension --------------------------------------------------

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_the_trace_context_rides_as_the_distributed_tracing_extension() -> None:
    env = Envelope(
        data=sample("gridloop.case.filed"),
        source=SOURCE,
        time=TIME,
        traceparent=TRACEPARENT,
        tracestate="gridloop=1",
    )
    _, value, headers = encode(env)
    values = dict(headers)
    assert values["ce_traceparent"] == TRACEPARENT.encode()
    assert values["ce_tracestate"] == b"gridloop=1"
    decoded = decode(value, headers)
    assert (decoded.traceparent, decoded.tracestate) == (TRACEPARENT, "gridloop=1")


def test_an_event_without_a_trace_context_has_no_extension_and_is_the_same_fact() -> None:
    data = sample("gridloop.case.filed")
    plain = Envelope(data=data, source=SOURCE, time=TIME)
    _, value, headers = encode(plain)
    assert "ce_traceparent" not in dict(headers)
    assert decode(value, headers).traceparent == ""
    traced = Envelope(data=data, source=SOURCE, time=TIME, traceparent=TRACEPARENT)
    assert traced == plain and traced.id == plain.id  # the same fact, whoever traced it
