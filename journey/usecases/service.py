"""The social desk's and the stores' questions: the inbox of mentions, a product's warranty.

Both read the derived tables of projections/inbox.py (``mentions``) and projections/warranty.py
(``products``, ``warranty_claims``); the rules and the documents are in
docs/inbox-and-warranty.md. Anything that depends on *now* (a mention's age, whether a product
is in warranty today) is computed here, at query time, never stored. ``journey inbox``,
``journey warranty`` and the HTTP API's /api/inbox and /api/warranty build their documents here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date
from typing import Any

from domain.errors import InvalidFact
from journey.references import reference_key
from journey.system import System
from journey.usecases.paging import EVERYTHING, Page
from projections.warranty import serial_key


def _query(system: System, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
    # fetchall, never fetchone: DuckDB 2 refuses further work on a half-read result.
    cursor = system.projections.con.execute(sql, list(params))
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


# ----------------------------------------------------------------------------- inbox


_SCOPE = """
    SELECT m.*, epoch(n.now) - epoch(m.occurred_at) AS age_s,
           (m.replied_at IS NOT NULL AND m.replied_at <= n.now) AS answered
    FROM mentions m, (SELECT coalesce(?::TIMESTAMPTZ, now()) AS now) n
    WHERE m.occurred_at <= n.now AND (? OR m.to_brand) AND (?::VARCHAR IS NULL OR lower(m.network) = lower(?))
"""

_STATS = """
    count(*) FILTER (WHERE answered) AS answered,
    count(*) FILTER (WHERE NOT answered) AS waiting,
    quantile_cont(response_s, 0.5) FILTER (WHERE answered) AS median_s,
    quantile_cont(response_s, 0.9) FILTER (WHERE answered) AS p90_s,
    max(age_s) FILTER (WHERE NOT answered) AS oldest_waiting_s
"""


def inbox(system: System, now: str | None = None, network: str | None = None,
          everything: bool = False, page: Page = EVERYTHING) -> dict[str, Any]:
    """The inbox as ``journey inbox --json`` prints it (see docs/inbox-and-warranty.md):
    ``page`` of the waiting mentions, oldest first, with ``total`` (all of them) beside it; the
    first-response figures are over every mention in scope, whatever the page."""
    system.project()
    cut, cut_params = page.sql()
    scope = [now, everything, network, network]
    clock = _query(system, "SELECT strftime(coalesce(?::TIMESTAMPTZ, now()) AT TIME ZONE 'UTC', "
                   "'%Y-%m-%dT%H:%M:%SZ') AS now", [now])[0]["now"]
    waiting = _query(system, f"""
        SELECT s.mention_id, s.event_id, s.network, coalesce(s.handle, c.twitter) AS handle,
               s.to_account AS "to", s.text, s.occurred_local AS occurred_at, s.age_s,
               s.customer_id, c.customer_number, c.name, s.department, s.case_id, s.case_status,
               s.source
        FROM ({_SCOPE}) s LEFT JOIN customers c USING (customer_id)
        WHERE NOT s.answered ORDER BY s.occurred_at, s.event_id, s.mention_id{cut}""",
        [*scope, *cut_params])
    by_network = _query(system, f"""
        SELECT network, {_STATS} FROM ({_SCOPE}) s
        GROUP BY network ORDER BY network NULLS LAST""", scope)
    # Answered mentions count for the department that replied; waiting ones for the
    # department the mention itself was routed to (if its source says so).
    by_department = _query(system, f"""
        SELECT CASE WHEN answered THEN reply_department ELSE department END AS department,
               {_STATS}
        FROM ({_SCOPE}) s GROUP BY 1 ORDER BY 1 NULLS LAST""", scope)
    overall = _query(system, f"SELECT {_STATS} FROM ({_SCOPE}) s", scope)[0]
    return {
        "now": clock,
        "as_of_position": system.projections.position(),
        "network": network,
        "all": everything,
        **page.fields(int(overall["waiting"])),
        "waiting": waiting,
        "by_network": by_network,
        "by_department": by_department,
        "overall": overall,
    }


# ----------------------------------------------------------------------------- warranty


_PRODUCTS = """
    SELECT p.serial, p.product, p.store, p.purchased_local AS purchased_at,
           p.warranty_months, strftime(p.warranty_ends, '%Y-%m-%d') AS warranty_ends,
           (?::DATE BETWEEN p.purchased_on AND p.warranty_ends) AS in_warranty,
           p.invoice, p.price, p.customer_id, c.customer_number, c.name, p.event_id,
           p.purchase_id, p.source, p.department, p.agent
    FROM products p LEFT JOIN customers c USING (customer_id)
    WHERE {where} ORDER BY p.purchased_at, p.event_id
"""

_CLAIMS = """
    SELECT w.claim_id, w.serial, w.product, w.issue, w.status, w.flags,
           w.filed_local AS filed_at, strftime(w.warranty_ends, '%Y-%m-%d') AS warranty_ends,
           w.in_warranty AS in_warranty_when_filed, w.decided_local AS decided_at, w.approved,
           w.reason, w.customer_id, c.customer_number, c.name, w.filed_department,
           w.filed_agent, w.decided_department, w.decided_agent
    FROM warranty_claims w LEFT JOIN customers c USING (customer_id)
    WHERE {where} ORDER BY w.filed_at NULLS LAST, w.decided_at, w.claim_id
"""


def warranty(system: System, query: str, at: date) -> dict[str, Any] | None:
    """What ``journey warranty QUERY --json`` prints; None when QUERY is nothing known.

    QUERY is first looked up as a serial number (in ``products``, then in ``warranty_claims``:
    a claim for a serial nobody bought is still worth showing); when no row has it, as a
    customer reference (+34..., @handle, e-mail, customer number, ledger id, kind:value).
    """
    system.project()
    day = at.isoformat()
    key = serial_key(query)
    products = _query(system, _PRODUCTS.format(where="p.serial_key = ?"), [day, key])
    claims = _query(system, _CLAIMS.format(where="w.serial_key = ?"), [key])
    if products or claims:
        return {"query": query, "kind": "serial", "serial_key": key, "at": day, "customer": None,
                "as_of_position": system.projections.position(),
                "products": products, "claims": claims}
    try:
        customer_id = system.projections.resolve(reference_key(query))
    except InvalidFact:
        return None
    if customer_id is None:
        return None
    customer = _query(system, "SELECT customer_id, customer_number, name FROM customers "
                      "WHERE customer_id = ?", [customer_id])
    return {"query": query, "kind": "customer", "serial_key": None, "at": day,
            "customer": customer[0] if customer else {"customer_id": customer_id,
                                                      "customer_number": None, "name": None},
            "as_of_position": system.projections.position(),
            "products": _query(system, _PRODUCTS.format(where="p.customer_id = ?"),
                               [day, customer_id]),
            "claims": _query(system, _CLAIMS.format(where="w.customer_id = ?"), [customer_id])}
