"""Warranty from purchase history: what a customer bought, until when it is covered, and
how each warranty claim stands against that history (no paper invoice needed).

Pure rules over one customer's view state; the ``products`` and ``warranty_claims`` tables
are derived from them (see docs/inbox-and-warranty.md):

* A product's warranty ends ``warranty_months`` (default 24) after the purchase's local date
  (the day clipped to the month's end: 31 Jan + 1 month = 28/29 Feb), and covers that day.
* A claim is judged against the claimant's own purchases of the same serial (compared by its
  letters and digits, case-insensitively): the latest purchase of it at or before the filing. It is
  recorded and shown whatever the outcome, never rejected; what is wrong is in ``flags``:
  ``unknown_product`` (no purchase of that serial in the customer's history),
  ``out_of_warranty`` (filed after the warranty end date, which the row carries),
  ``filed_before_purchase`` (every purchase of it happened after the filing: clocks or data
  disagree; the earliest purchase is used) and ``not_filed`` (a decision for a claim whose
  filing is not in the history).
* Status: ``open`` until decided, then ``approved`` or ``refused`` (the latest decision).

Ties are broken by event id, never by store position, and no clock is read: the rows depend
only on the set of facts ("in warranty today" is the query's business).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

import pyarrow as pa

from projections.derived import DerivedTable, Row, View, register
from projections.rules import DEFAULT_RULES, Rules

Entry = dict[str, Any]

UNKNOWN_PRODUCT = "unknown_product"
OUT_OF_WARRANTY = "out_of_warranty"
FILED_BEFORE_PURCHASE = "filed_before_purchase"
NOT_FILED = "not_filed"


def _key(entry: Entry) -> tuple[str, str]:
    return entry["at"], entry["event_id"]


def serial_key(serial: object) -> str | None:
    """How serials are compared: letters and digits only, upper case (``x200 5581-ab``,
    ``X200-5581-AB`` and ``X2005581AB`` are one serial: ``X2005581AB``)."""
    if serial is None:
        return None
    text = "".join(c for c in str(serial) if c.isalnum()).upper()
    return text or None


def warranty_ends(purchase: Entry) -> str:
    """The last day covered (ISO date): the purchase's local date + warranty_months.

    The customer view's product list and the ``products``/``warranty_claims`` rows both show
    it, so the rule lives here, below the view, and the view imports it."""
    bought = datetime.fromisoformat(purchase["occurred_at"]).date()
    months = int(purchase["data"].get("warranty_months", 24))
    year, month0 = divmod(bought.month - 1 + months, 12)
    year += bought.year
    day = min(bought.day, calendar.monthrange(year, month0 + 1)[1])
    return date(year, month0 + 1, day).isoformat()


def _local_date(entry: Entry) -> str:
    return str(entry["occurred_at"])[:10]


def judge_claims(claims: Iterable[Entry], purchases: Iterable[Entry]) -> list[dict[str, Any]]:
    """Each claim (by claim id, in filing order) with its filing, decision, purchase and flags.

    Returns dicts with ``claim_id``, ``filing`` and ``decision`` (entries or None),
    ``purchase`` (the entry it is judged against, or None), ``serial``, ``status``,
    ``warranty_ends``, ``in_warranty`` (at filing) and ``flags``.
    """
    bought: dict[str, list[Entry]] = {}
    for p in sorted(purchases, key=_key):
        key = serial_key(p["data"].get("serial"))
        if key is not None:
            bought.setdefault(key, []).append(p)
    filings: dict[str, Entry] = {}
    decisions: dict[str, Entry] = {}
    for e in sorted(claims, key=_key):
        claim_id = str(e["data"]["claim_id"])
        if e["type"] == "warranty.claim_filed":
            filings.setdefault(claim_id, e)
        elif e["type"] == "warranty.claim_decided":
            decisions[claim_id] = e
    order = sorted(filings.values(), key=_key) + sorted(
        (d for c, d in decisions.items() if c not in filings), key=_key)
    judged: list[dict[str, Any]] = []
    for first in order:
        claim_id = str(first["data"]["claim_id"])
        filing = filings.get(claim_id)
        decision = decisions.get(claim_id)
        flags: list[str] = []
        purchase: Entry | None = None
        ends: str | None = None
        in_warranty: bool | None = None
        serial = filing["data"].get("serial") if filing else None
        if filing is None:
            flags.append(NOT_FILED)
        else:
            candidates = bought.get(serial_key(serial) or "", [])
            earlier = [p for p in candidates if _key(p) <= _key(filing)]
            if earlier:
                purchase = earlier[-1]
            elif candidates:
                purchase = candidates[0]
                flags.append(FILED_BEFORE_PURCHASE)
            else:
                flags.append(UNKNOWN_PRODUCT)
            if purchase is not None:
                ends = warranty_ends(purchase)
                in_warranty = _local_date(filing) <= ends
                if not in_warranty:
                    flags.append(OUT_OF_WARRANTY)
        status = "open"
        if decision is not None:
            status = "approved" if decision["data"].get("approved") else "refused"
        judged.append({"claim_id": claim_id, "serial": serial, "filing": filing,
                       "decision": decision, "purchase": purchase, "status": status,
                       "warranty_ends": ends, "in_warranty": in_warranty, "flags": sorted(flags)})
    return judged


# ----------------------------------------------------------------------------- rows


def product_rows(view: View, rules: Rules = DEFAULT_RULES) -> list[Row]:
    """One row per purchase of this customer (the ``products`` table)."""
    rows: list[Row] = []
    for p in sorted(view["sections"]["product"], key=_key):
        data = p["data"]
        serial = data.get("serial")
        price = data.get("price")
        rows.append({
            "customer_id": view["customer_id"],
            "serial": None if serial is None else str(serial),
            "product": data.get("product"),
            "store": data.get("store"),
            "purchased_at": p["at"],
            "warranty_months": int(data.get("warranty_months", 24)),
            "warranty_ends": warranty_ends(p),
            "invoice": data.get("invoice"),
            "price": None if price is None else float(price),
            "serial_key": serial_key(serial),
            "purchased_on": _local_date(p),
            "purchased_local": p["occurred_at"],
            "event_id": p["event_id"],
            "purchase_id": p["id"],
            "source": p["source"],
            "department": p.get("department"),
            "agent": p.get("agent"),
        })
    return rows


def claim_rows(view: View, rules: Rules = DEFAULT_RULES) -> list[Row]:
    """One row per warranty claim of this customer (the ``warranty_claims`` table)."""
    sections = view["sections"]
    rows: list[Row] = []
    for c in judge_claims(sections["claim"], sections["product"]):
        filing, decision, purchase = c["filing"], c["decision"], c["purchase"]
        rows.append({
            "customer_id": view["customer_id"],
            "claim_id": c["claim_id"],
            "serial": None if c["serial"] is None else str(c["serial"]),
            "filed_at": filing["at"] if filing else None,
            "status": c["status"],
            "flags": c["flags"],
            "warranty_ends": c["warranty_ends"],
            "decided_at": decision["at"] if decision else None,
            "approved": bool(decision["data"].get("approved")) if decision else None,
            "serial_key": serial_key(c["serial"]),
            "issue": filing["data"].get("issue") if filing else None,
            "in_warranty": c["in_warranty"],
            "product": purchase["data"].get("product") if purchase else None,
            "purchased_at": purchase["at"] if purchase else None,
            "purchase_event_id": purchase["event_id"] if purchase else None,
            "filed_local": filing["occurred_at"] if filing else None,
            "filed_event_id": filing["event_id"] if filing else None,
            "filed_department": filing.get("department") if filing else None,
            "filed_agent": filing.get("agent") if filing else None,
            "decided_local": decision["occurred_at"] if decision else None,
            "decided_event_id": decision["event_id"] if decision else None,
            "decided_department": decision.get("department") if decision else None,
            "decided_agent": decision.get("agent") if decision else None,
            "reason": decision["data"].get("reason") if decision else None,
        })
    return rows


PRODUCTS = register(DerivedTable(
    name="products",
    ddl="""CREATE TABLE IF NOT EXISTS products (
        customer_id VARCHAR NOT NULL, serial VARCHAR, product VARCHAR, store VARCHAR,
        purchased_at TIMESTAMPTZ NOT NULL, warranty_months INTEGER, warranty_ends DATE,
        invoice VARCHAR, price DOUBLE, serial_key VARCHAR, purchased_on DATE,
        purchased_local VARCHAR, event_id VARCHAR NOT NULL, purchase_id VARCHAR, source VARCHAR,
        department VARCHAR, agent VARCHAR)""",
    schema=pa.schema([
        ("customer_id", pa.string()), ("serial", pa.string()), ("product", pa.string()),
        ("store", pa.string()), ("purchased_at", pa.string()), ("warranty_months", pa.int32()),
        ("warranty_ends", pa.string()), ("invoice", pa.string()), ("price", pa.float64()),
        ("serial_key", pa.string()), ("purchased_on", pa.string()),
        ("purchased_local", pa.string()), ("event_id", pa.string()), ("purchase_id", pa.string()),
        ("source", pa.string()), ("department", pa.string()), ("agent", pa.string()),
    ]),
    rows=product_rows,
))

WARRANTY_CLAIMS = register(DerivedTable(
    name="warranty_claims",
    ddl="""CREATE TABLE IF NOT EXISTS warranty_claims (
        customer_id VARCHAR NOT NULL, claim_id VARCHAR NOT NULL, serial VARCHAR,
        filed_at TIMESTAMPTZ, status VARCHAR NOT NULL, flags VARCHAR[], warranty_ends DATE,
        decided_at TIMESTAMPTZ, approved BOOLEAN, serial_key VARCHAR, issue VARCHAR,
        in_warranty BOOLEAN, product VARCHAR, purchased_at TIMESTAMPTZ,
        purchase_event_id VARCHAR, filed_local VARCHAR, filed_event_id VARCHAR,
        filed_department VARCHAR, filed_agent VARCHAR, decided_local VARCHAR,
        decided_event_id VARCHAR, decided_department VARCHAR, decided_agent VARCHAR,
        reason VARCHAR)""",
    schema=pa.schema([
        ("customer_id", pa.string()), ("claim_id", pa.string()), ("serial", pa.string()),
        ("filed_at", pa.string()), ("status", pa.string()), ("flags", pa.list_(pa.string())),
        ("warranty_ends", pa.string()), ("decided_at", pa.string()), ("approved", pa.bool_()),
        ("serial_key", pa.string()), ("issue", pa.string()), ("in_warranty", pa.bool_()),
        ("product", pa.string()), ("purchased_at", pa.string()),
        ("purchase_event_id", pa.string()), ("filed_local", pa.string()),
        ("filed_event_id", pa.string()), ("filed_department", pa.string()),
        ("filed_agent", pa.string()), ("decided_local", pa.string()),
        ("decided_event_id", pa.string()), ("decided_department", pa.string()),
        ("decided_agent", pa.string()), ("reason", pa.string()),
    ]),
    rows=claim_rows,
))
