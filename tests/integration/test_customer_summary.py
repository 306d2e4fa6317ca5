"""The analysts' customers table agrees with the full view every department reads."""

from __future__ import annotations

from pathlib import Path

from journey import demo_data
from projections.customer_view import render, summary
from tests.ledgers import append, open_journey


def test_summary_agrees_with_the_rendered_view(tmp_path: Path) -> None:
    journey = open_journey(tmp_path)
    try:
        append(journey, list(demo_data.generate(300, seed=9)))
        journey.project()
        store = journey.projections
        ids = [r[0] for r in store.con.execute("SELECT customer_id FROM customer_views").fetchall()]
        for state in store.load_views(ids).values():
            full, short = render(state), summary(state)
            assert short["identities"] == [f"{i['kind']}:{i['value']}" for i in full["identities"]]
            # The postal-code flags are a read-time check the analysts' summary leaves out.
            assert short["contact"] == {k: v for k, v in full["contact"].items() if k != "address_verify"}
            assert short["customer_number"] == full["customer_number"]
            assert short["cases"] == len(full["cases"])
            assert short["open_cases"] == sum(1 for c in full["cases"] if c["status"] == "open")
            assert short["open_promises"] == sum(1 for p in full["promises"] if p["status"] == "open")
            assert short["active_objections"] == sum(1 for o in full["objections"] if o["active"])
            assert short["products"] == len(full["products"])
        rows = store.con.execute("SELECT count(*), sum(events) FROM customers").fetchone()
        assert rows == (len(ids), store.table_counts()["events"])
    finally:
        journey.close()
