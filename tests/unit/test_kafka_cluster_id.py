"""The broker harness formats storage with a cluster id it draws itself; a CI run once failed
because the draw started with a dash and Kafka's storage tool read it as an option."""

from __future__ import annotations

import base64
from collections.abc import Iterator

from tests.harness.kafka import _random_cluster_id


def _draws(*values: bytes) -> Iterator[bytes]:
    yield from values


def test_a_draw_that_would_start_with_a_dash_is_redrawn() -> None:
    dash_first = b"\xf8" + bytes(15)  # first six bits 111110: url-safe base64 '-'
    assert base64.urlsafe_b64encode(dash_first).startswith(b"-")
    plain = bytes(range(16))
    draws = _draws(dash_first, plain)

    cluster_id = _random_cluster_id(lambda: next(draws))

    assert cluster_id == base64.urlsafe_b64encode(plain).decode().rstrip("=")


def test_random_ids_are_22_url_safe_characters_never_starting_with_a_dash() -> None:
    ids = {_random_cluster_id() for _ in range(2000)}
    assert len(ids) == 2000
    for cluster_id in ids:
        assert len(cluster_id) == 22
        assert not cluster_id.startswith("-")
        assert len(base64.urlsafe_b64decode(cluster_id + "==")) == 16
