"""The customer-journey ledger's composition root. Python use::

    from contextlib import closing
    from journey import open_ledger

    with closing(open_ledger("./.journey")) as ledger:
        summary = ledger.record(facts)          # dicts in the JSON contract (docs/events.md)
        view = ledger.customer("+34600000001")  # the unified view, or None
"""

from journey.bootstrap import Journey, open_ledger

__all__ = ["Journey", "open_ledger"]
