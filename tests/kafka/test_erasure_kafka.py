"""What the ledger publishes carries nothing of a person in clear, wherever the source put it,
and after ``journey forget`` every message about them (old, or published again) reads erased."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from consumers.kafka_projector import run_projector
from consumers.relay import Relay
from journey.references import reference_key
from journey.usecases.erasure import forget
from tests.e2e.test_erasure_everywhere import FACTS, OTHER_IBAN, OTHER_PHONE, PHONE, SECRETS, contents, forms
from tests.kafka.test_privacy_kafka import views
from tests.kafka.test_projector import make_topic
from tests.kafka.test_relay import read_topic
from tests.ledgers import open_journey, record

pytestmark = pytest.mark.kafka


#: The registration first: every fact of the person is keyed to their record (the next test
#: has prospects keyed elsewhere).
ORDERED = [FACTS[3], *FACTS[:3], *FACTS[4:]]


def topic_bytes(bootstrap: str, topic: str) -> bytes:
    return b"".join(m.value + (m.key or b"") + b"".join(v for _, v in m.headers or [])
                    for m in read_topic(bootstrap, topic))


def leaks(blob: bytes) -> list[str]:
    return [what for what, value in SECRETS.items() if any(f in blob for f in forms(value))]


def test_published_facts_hold_no_personal_data_and_read_erased_after_the_forget(
        kafka_broker: Any, kafka_topic_prefix: str, tmp_path: Path) -> None:
    topic, again = kafka_topic_prefix + "events", kafka_topic_prefix + "events-again"
    for name in (topic, again):
        make_topic(kafka_broker.bootstrap, name)
    journey = open_journey(tmp_path / "ledger")
    try:
        assert not record(journey, *ORDERED).rejected
        Relay(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic).run(follow=False)
        # Undeclared fields, nested values, the CDR id and free texts travel sealed.
        assert leaks(topic_bytes(kafka_broker.bootstrap, topic)) == []
        before = tmp_path / "partitions"
        run_projector(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic, directory=before,
                      group=topic + "-g", once=True)
        person = next(v for v in views(before, topic).values()
                      if v["sections"]["profile"] and v["sections"]["profile"][0]["data"].get("phone") == PHONE)
        assert person["sections"]["profile"][0]["data"]["iban"] == SECRETS["iban"]

        assert forget(journey, reference_key(PHONE), "art. 17 request") is not None
        # The relay publishes the forget; the projector applies it from the topic, and its
        # files keep nothing of them.
        Relay(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic).run(follow=False)
        assert leaks(topic_bytes(kafka_broker.bootstrap, topic)) == []
        run_projector(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic, directory=before,
                      group=topic + "-g", once=True)
        blob = b"".join(p.read_bytes() for p in before.rglob("*") if p.is_file())
        assert leaks(blob) == []
        # Published again from the start (a new topic, a replay): only erased versions.
        Relay(journey.app, bootstrap=kafka_broker.bootstrap, topic=again).run(follow=False)
        assert leaks(topic_bytes(kafka_broker.bootstrap, again)) == []
        after = tmp_path / "after"
        run_projector(journey.app, bootstrap=kafka_broker.bootstrap, topic=again, directory=after,
                      group=again + "-g", once=True)
        found = views(after, again)
        assert any(v.get("forgotten") for v in found.values())
        assert leaks(str(found).encode()) == []
        # The other person still reads in full from the same messages.
        other = next(v for v in found.values() if not v.get("forgotten"))
        assert other["sections"]["profile"][0]["data"]["iban"] == OTHER_IBAN
        assert other["sections"]["profile"][0]["data"]["phone"] == OTHER_PHONE
    finally:
        journey.close()


def test_a_prospect_merged_in_from_another_partition_is_erased_from_that_partitions_file(
        kafka_broker: Any, kafka_topic_prefix: str, tmp_path: Path) -> None:
    topic = kafka_topic_prefix + "events"
    make_topic(kafka_broker.bootstrap, topic)
    journey = open_journey(tmp_path / "ledger")
    partitions = journey.settings.partitions_dir
    try:
        # The call and the mention come first: prospects keyed by phone and handle, merged by
        # the registration into a record that (here) lives in another partition.
        assert not record(journey, *FACTS).rejected
        Relay(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic).run(follow=False)
        run_projector(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic, directory=partitions,
                      group=topic + "-g", once=True)
        held = {p.name: leaks(p.read_bytes()) for p in partitions.glob("*.duckdb")}
        assert sum(1 for found in held.values() if found) > 1, held  # the test can fail

        # While another process holds the files (a running projector) they are left alone ...
        holder = subprocess.Popen(
            [sys.executable, "-c", "import duckdb, sys\n"
             "held = [duckdb.connect(p) for p in sys.argv[1:]]\nprint('held', flush=True)\n"
             "sys.stdin.read()", *map(str, partitions.glob("*.duckdb"))],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            erasure = forget(journey, reference_key(PHONE), "art. 17 request")
            assert erasure is not None and erasure.partitions == {}
        finally:
            holder.communicate("")
        # ... and a forget run again, once they are free, cleans them.
        again = forget(journey, reference_key(str(erasure.result.customer_id)), "again")
        assert again is not None and again.result.already and again.partitions
        Relay(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic).run(follow=False)
        run_projector(journey.app, bootstrap=kafka_broker.bootstrap, topic=topic, directory=partitions,
                      group=topic + "-g", once=True)
        blob = b"".join(p.read_bytes() + contents(p) for p in partitions.rglob("*") if p.is_file())
        assert leaks(blob) == []
        found = views(partitions, topic)
        assert sum(1 for v in found.values() if v.get("forgotten")) == 1
        other = next(v for v in found.values() if not v.get("forgotten"))
        assert other["sections"]["profile"][0]["data"]["iban"] == OTHER_IBAN
    finally:
        journey.close()
