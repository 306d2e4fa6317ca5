"""A routed fact's headers: what the router writes is read back; anything else never stops a worker."""

from __future__ import annotations

import pytest

from consumers.route_headers import H_AFTER, H_SEQ, after_header, parse_after, seq_of


def test_the_router_s_wait_list_reads_back() -> None:
    header = after_header({3: 17, 0: 5})
    assert header == (H_AFTER, b"0:5,3:17")
    assert parse_after([("channel", b"x"), header]) == {0: 5, 3: 17}
    assert parse_after([]) == {} and parse_after(None) == {}


@pytest.mark.parametrize("value", [b"", b"x", b"1:", b":4", b"1:2,zz", b"-1:4", b"2:-3", b"\xff\xfe", b"1:2:3"],
                         ids=["empty", "word", "no-offset", "no-partition", "half-garbled", "negative-partition",
                              "negative-offset", "not-ascii", "three-parts"])
def test_a_garbled_wait_list_is_ignored(value: bytes) -> None:
    assert parse_after([(H_AFTER, value)]) == {}


def test_the_routing_order_tolerates_garbage() -> None:
    assert seq_of([(H_SEQ, b"42")]) == 42
    assert seq_of([(H_SEQ, b"forty-two")]) == -1
    assert seq_of(None) == -1
