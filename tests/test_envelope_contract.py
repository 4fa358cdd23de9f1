"""The edge's envelope and the cloud's accept and refuse the same things (issue 17).

The edge checks a capture before storing it (`checked_payload_json`) and later sends
`wire(event)`; the cloud validates that body with the contract (`EVENT_ADAPTER`). If
the edge stored what the cloud refuses, the event would be parked after the fact; if
it refused what the cloud takes, a good scan would be lost. Both directions are checked
on a table of edge cases and on generated envelopes. The one documented difference: an
empty `device_msg_id` is refused by the edge alone (no terminal id to deduplicate by).
"""

import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from contract import EVENT_ADAPTER, Envelope
from edge_agent.outbox.envelope import ENVELOPE_FIELDS, checked_payload_json, wire
from edge_agent.outbox.model import Capture, OutboxError, OutboxEvent

T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
PAYLOAD = {"work_order": "WO-1", "item": "BOLT", "location": "WH", "quantity": "2"}


def capture(**changes: Any) -> Capture:
    fields: dict[str, Any] = {
        "type": "material_issue",
        "payload": PAYLOAD,
        "device_id": "term-1",
        "occurred_at": T0,
    }
    return Capture(**{**fields, **changes})


def stored(c: Capture) -> OutboxEvent:
    """The outbox row this capture would become (the values the outbox assigns are
    the ones it really uses: a UUID, a rowid, the capture clock)."""
    return OutboxEvent(
        seq=7,
        event_id=str(uuid.uuid4()),
        edge_id="edge-1",
        device_id=c.device_id,
        type=c.type,
        payload=c.payload,
        payload_sha256="0" * 64,
        occurred_at=c.occurred_at,
        captured_at=T0,
        agent_version="1.0",
        state="pending",
        operator=c.operator,
        device_seq=c.device_seq,
        device_msg_id=c.device_msg_id,
        raw_scan=c.raw_scan,
        reverses_event_id=c.reverses_event_id,
    )


def edge_accepts(c: Capture) -> bool:
    try:
        checked_payload_json(c)
    except OutboxError as error:
        assert error.code == "invalid_capture", error
        return False
    return True


def cloud_accepts(c: Capture) -> bool:
    try:
        EVENT_ADAPTER.validate_python(wire(stored(c), T0))
    except ValidationError:
        return False
    return True


def edge_only_refuses(c: Capture) -> bool:
    return c.device_msg_id == ""


def assert_agree(c: Capture) -> None:
    edge, cloud = edge_accepts(c), cloud_accepts(c)
    if edge_only_refuses(c):
        assert not edge, c
    else:
        assert edge == cloud, f"edge accepts: {edge}, cloud accepts: {cloud}: {c}"


ACCEPTED = [
    capture(),
    capture(device_id="d" * 64),
    capture(operator="B" * 64, device_msg_id="m" * 64),
    capture(device_seq=0),
    capture(device_seq=2**63 - 1),
    capture(raw_scan="]C1" + "9" * 4093),
    capture(reverses_event_id=str(uuid.uuid4())),
    capture(occurred_at=datetime(1970, 1, 1, tzinfo=UTC)),
    capture(occurred_at=datetime(2999, 12, 31, 12, tzinfo=timezone(timedelta(hours=8)))),
]
REFUSED = [
    capture(device_id=""),
    capture(device_id="d" * 65),
    capture(device_id="term\x001"),  # NUL: no database column keeps it
    capture(device_id="term-\ud800"),  # a lone surrogate is not UTF-8
    capture(operator="B" * 65),
    capture(device_msg_id="m" * 65),
    capture(device_seq=-1),
    capture(device_seq=2**63),
    capture(raw_scan="9" * 4097),
    capture(reverses_event_id="not-a-uuid"),
    capture(occurred_at=datetime(2026, 3, 1, 8, 0)),  # naive: no UTC offset
    capture(occurred_at=datetime(1969, 12, 31, 23, tzinfo=UTC)),
    capture(occurred_at=datetime(3000, 1, 1, tzinfo=UTC)),
]


@pytest.mark.parametrize("c", ACCEPTED)
def test_both_sides_accept(c: Capture) -> None:
    assert edge_accepts(c), c
    assert cloud_accepts(c), c


@pytest.mark.parametrize("c", REFUSED)
def test_both_sides_refuse(c: Capture) -> None:
    assert not cloud_accepts(c), c
    assert not edge_accepts(c), c


def test_an_empty_device_msg_id_is_the_edge_s_own_refusal() -> None:
    c = capture(device_msg_id="")
    assert cloud_accepts(c)
    assert not edge_accepts(c)


def test_the_wire_sends_exactly_the_contract_s_envelope_fields() -> None:
    c = capture(operator="B-1", device_seq=3, device_msg_id="m-1", raw_scan="]C1x")
    body = wire(stored(c), T0)
    assert tuple(Envelope.model_fields) == ENVELOPE_FIELDS
    assert set(body) - {"type", "payload"} <= set(ENVELOPE_FIELDS)
    # every field the outbox keeps is sent (only the None ones are left out)
    assert {"event_id", "device_id", "seq", "occurred_at", "captured_at", "edge_id"} <= set(body)
    assert {"device_seq", "device_msg_id", "raw_scan", "operator", "replayed"} <= set(body)


texts = st.one_of(
    st.text(max_size=70),
    st.text(alphabet=st.characters(codec="utf-8"), min_size=60, max_size=70),
    st.sampled_from(["", "a\x00b", "\ud800", " lead", "x" * 64, "x" * 65]),
)
instants = st.one_of(
    st.datetimes(
        min_value=datetime(1960, 1, 1),
        max_value=datetime(3010, 1, 1),
        timezones=st.sampled_from(
            [UTC, timezone(timedelta(hours=14)), timezone(-timedelta(hours=12))]
        ),
    ),
    st.datetimes(min_value=datetime(1960, 1, 1), max_value=datetime(3010, 1, 1)),  # naive
)


@settings(max_examples=300, deadline=None)
@given(
    device_id=texts,
    occurred_at=instants,
    operator=st.none() | texts,
    device_seq=st.none() | st.integers(min_value=-(2**64), max_value=2**64),
    device_msg_id=st.none() | texts,
    raw_scan=st.none() | st.text(max_size=10) | st.just("s" * 4097),
    reverses_event_id=st.none() | st.uuids().map(str) | texts,
)
def test_edge_and_cloud_agree_on_generated_envelopes(**fields: Any) -> None:
    assert_agree(capture(**fields))
