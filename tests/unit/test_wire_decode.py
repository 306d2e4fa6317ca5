"""A message on the events topic that the relay did not write is named, never a bare error."""

from __future__ import annotations

import pytest

from consumers.wire import NotAnEvent, decode_event


@pytest.mark.parametrize("value", [
    pytest.param(b"", id="empty"),
    pytest.param(b"not json", id="not-json"),
    pytest.param(b"[1, 2]", id="a-list"),
    pytest.param(b'"text"', id="a-string"),
    pytest.param(b"{}", id="no-fields"),
    pytest.param(b'{"recorded_at": "2026-01-01T00:00:00+00:00", "fact": {}, "position": 1, '
                 b'"stream_id": "not-a-uuid", "stream_version": 1}', id="bad-stream-id"),
    pytest.param(b'{"recorded_at": "2026-01-01T00:00:00+00:00", "fact": {}, "position": [], '
                 b'"stream_id": "6e3b32bf-ea95-53e1-aa30-000000000000", "stream_version": 1}',
                 id="position-a-list"),
    pytest.param(b'{"recorded_at": "yesterday", "fact": {}, "position": 1, '
                 b'"stream_id": "6e3b32bf-ea95-53e1-aa30-000000000000", "stream_version": 1}',
                 id="bad-instant"),
    pytest.param(b'{"recorded_at": "2026-01-01T00:00:00+00:00", "fact": [1], "position": 1, '
                 b'"stream_id": "6e3b32bf-ea95-53e1-aa30-000000000000", "stream_version": 1}',
                 id="fact-a-list"),
    pytest.param(b'{"state": 3, "position": 1}', id="state-a-number"),
])
def test_a_foreign_message_is_not_an_event_with_a_reason(value: bytes) -> None:
    with pytest.raises(NotAnEvent) as raised:
        decode_event(value)
    assert str(raised.value)


def test_a_relay_message_still_decodes() -> None:
    sf = decode_event(b'{"recorded_at": "2026-01-01T00:00:00+00:00", "fact": {"type": "call.inbound"}, '
                      b'"position": 7, "stream_id": "6e3b32bf-ea95-53e1-aa30-000000000000", '
                      b'"stream_version": 2}')
    assert (sf.position, sf.stream_version, sf.fact["type"]) == (7, 2, "call.inbound")
