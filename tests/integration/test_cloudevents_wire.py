"""Our Kafka records are CloudEvents 1.0 in binary mode, as the CloudEvents SDK reads them."""

from __future__ import annotations

import json
import uuid

from aiokafka import ConsumerRecord
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event, to_binary_event
from cloudevents.core.v1.event import CloudEvent

from gridloop.kafka import EventProducer, ensure_topics
from schemas.envelope import Envelope, decode
from schemas.events import CaseReported
from tests.conftest import Servers
from tests.helpers import read_topic
from tests.samples import sample_of

HEADERS = {
    "ce_id",
    "ce_source",
    "ce_type",
    "ce_specversion",
    "ce_time",
    "ce_subject",
    "content-type",
}


async def test_a_plain_consumer_reads_a_cloudevent_from_reports(servers: Servers) -> None:
    await ensure_topics(servers.kafka)
    case_id = f"wire-{uuid.uuid4().hex[:8]}"
    event = sample_of(CaseReported, case_id=case_id)
    producer = EventProducer(servers.kafka)
    await producer.start()
    try:
        await producer.publish([Envelope(event, "/gridloop/tests")])
    finally:
        await producer.stop()

    def mine(records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        return any(r.key == case_id.encode() for r in records)

    record = next(
        r for r in await read_topic(servers.kafka, "reports", mine) if r.key == case_id.encode()
    )
    headers = dict(record.headers)
    assert set(headers) == HEADERS
    assert headers["ce_subject"] == case_id.encode()
    assert headers["content-type"] == b"application/json"

    parsed = from_binary_event(
        KafkaMessage(headers=headers, key=record.key, value=record.value or b"")
    )
    assert parsed.get_specversion() == "1.0"
    assert parsed.get_type() == "gridloop.case.reported"
    assert parsed.get_subject() == case_id
    assert parsed.get_source() == "/gridloop/tests"
    assert parsed.get_time() is not None
    assert parsed.get_data() == json.loads(event.model_dump_json())


def test_we_read_what_the_sdk_writes() -> None:
    event = sample_of(CaseReported, case_id="sdk-1")
    sdk_event = CloudEvent(
        attributes={
            "id": "e-1",
            "source": "/elsewhere",
            "type": event.ce_type,
            "subject": "sdk-1",
            "datacontenttype": "application/json",
        },
        data=json.loads(event.model_dump_json()),
    )
    message = to_binary_event(sdk_event)
    envelope = decode(message.value, list(message.headers.items()))
    assert envelope.id == "e-1"
    assert envelope.source == "/elsewhere"
    assert envelope.data == event
