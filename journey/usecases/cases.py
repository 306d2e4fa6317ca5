"""Cases across departments and the promises they made: the lists, one case, the clocks.

The rules (deadline, clocks, late facts, tracking keys, contradictions) are in
projections/cases.py and docs/cases.md. "Overdue" and "age" depend on *now*, so they are
computed by the queries here (``now`` to ask about another instant), never stored. Instants
come back as ISO 8601 in the customer's own time zone. ``journey cases``, ``journey case``,
``journey promises`` and the HTTP API's /api/cases and /api/promises all build their documents
here.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any, Final
from zoneinfo import ZoneInfo

from domain import catalogue
from domain.errors import InvalidFact
from journey.references import reference_key
from journey.system import System
from journey.usecases.paging import EVERYTHING, Page
from projections import cases as rules

DEFAULT_TIMEZONE = "Europe/Madrid"  # the customer view's default (projections/customer_view.py)


class UsageError(Exception):
    """Bad flags or parameters (the CLI's exit 2), or a tracking key that names several cases."""


class Unknown(Exception):
    """No such customer or case (the CLI's exit 3)."""


# ----------------------------------------------------------------------------- parameters


def parse_now(text: str | None) -> datetime | None:
    """``--now``: an ISO 8601 instant with offset, or a date (its start, UTC); None: the clock."""
    if text is None:
        return None
    if len(text) == 10:
        try:
            return datetime.combine(date.fromisoformat(text), time(), UTC)
        except ValueError:
            raise UsageError(f"--now: {text!r} is not a date like 2026-05-20") from None
    try:
        return catalogue.parse_instant(text, "--now")
    except InvalidFact as error:
        raise UsageError(str(error)) from None


def answer_days(flag: int | None, configured: int) -> int:
    """The complaint deadline: ``--days``, else the ledger's (``Settings.complaint_days``)."""
    try:
        return rules.check_days(flag, "--days") if flag is not None else configured
    except ValueError as error:
        raise UsageError(str(error)) from None


def resolve_customer(system: System, ref: str | None) -> str | None:
    """The customer ``--customer`` names (None when not given); :class:`Unknown` when nobody is
    known by it, so a typo never reads as "no cases"."""
    if ref is None:
        return None
    try:
        key = reference_key(ref)
    except InvalidFact as error:
        raise UsageError(f"--customer: {error}") from None
    customer_id = system.projections.resolve(key)
    if customer_id is None:
        raise Unknown(f"nobody known as {ref!r} ({key})")
    return customer_id


# ----------------------------------------------------------------------------- queries


def _rows(cursor: Any) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values, strict=True)) for values in cursor.fetchall()]


_CUSTOMER = ("LEFT JOIN (SELECT customer_id, customer_number, name, timezone FROM customers) cu "
             "USING (customer_id)")


def _filters(equal: dict[str, str | None], open_only: bool, overdue_only: bool,
             status: str | None = None) -> tuple[str, list[str]]:
    """The WHERE clause over a list query's columns (``equal``: column -> value, None for any)
    and its parameters; the column names are this module's own, never the caller's text.
    ``status`` is one of :data:`CASE_STATES` or :data:`PROMISE_STATES`."""
    where, params = [], []
    for column, value in equal.items():
        if value is not None:
            where.append(f"{column} = ?")
            params.append(value)
    if open_only:
        where.append("status = 'open'")
    if overdue_only:
        where.append("overdue")
    if status is not None:
        where.append(_STATE_SQL[status])
    return ("WHERE " + " AND ".join(where) if where else ""), params


#: What ``status`` may ask of a case: its own status, or open and past its answer deadline.
CASE_STATES: Final = ("open", "resolved", "overdue")
#: What ``status`` may ask of a promise; ``unkept``: broken, or open past its due instant (what
#: the console's "Promises not kept" lists).
PROMISE_STATES: Final = ("open", "kept", "broken", "overdue", "unkept")
_STATE_SQL: Final = {"open": "status = 'open'", "resolved": "status = 'resolved'",
                     "kept": "status = 'kept'", "broken": "status = 'broken'", "overdue": "overdue",
                     "unkept": "(status = 'broken' OR overdue)"}


def _check_state(status: str | None, states: tuple[str, ...]) -> None:
    if status is not None and status not in states:
        raise UsageError(f"status: {status!r} is not one of {', '.join(states)}")


def _cases_sql(where: str) -> str:
    """Every case with its clock-dependent columns, filtered by ``where``; parameters: the
    answer days, now, the answer days again, then ``where``'s."""
    return f"""
        WITH c AS (
            SELECT *, CASE WHEN kind = 'complaint' AND opened_at IS NOT NULL
                           THEN opened_at + to_seconds(CAST(? AS BIGINT) * 86400) END AS due,
                      coalesce(CAST(? AS TIMESTAMPTZ), now()) AS at_now
            FROM cases)
        SELECT * FROM (
            SELECT c.customer_id, cu.customer_number, cu.name AS customer_name,
                   coalesce(cu.timezone, '{DEFAULT_TIMEZONE}') AS timezone,
                   c.case_id, c.tracking_key, c.kind, c.subject, c.status, c.owner_department,
                   c.departments, c.opened_at, c.opened_department, c.first_response_at,
                   c.first_response_type, c.first_response_department, c.response_s,
                   c.resolved_at, c.resolution, c.resolution_s,
                   CAST(? AS INTEGER) AS answer_days, c.due AS answer_due_by,
                   CASE WHEN c.due IS NULL OR c.first_response_at IS NULL THEN NULL
                        ELSE c.first_response_at > c.due END AS answered_late,
                   coalesce(c.status = 'open' AND c.due IS NOT NULL
                            AND c.first_response_at IS NULL AND c.due < c.at_now, false) AS overdue,
                   CASE WHEN c.status = 'open' AND c.due IS NOT NULL AND c.first_response_at IS NULL
                             AND c.due < c.at_now THEN epoch(c.at_now - c.due) END AS overdue_s,
                   epoch(c.at_now - c.opened_at) AS age_s,
                   c.transfers, c.notes, c.responses, c.reopened, c.late_events, c.contradictions,
                   c.last_activity_at
            FROM c {_CUSTOMER}) AS q
        {where}"""


def _promises_sql(where: str) -> str:
    """Every promise with ``overdue`` computed, filtered by ``where``; parameters: now three
    times, then ``where``'s."""
    return f"""
        SELECT * FROM (
            SELECT p.customer_id, cu.customer_number, cu.name AS customer_name,
                   coalesce(cu.timezone, '{DEFAULT_TIMEZONE}') AS timezone,
                   p.promise_id, p.case_id, p.case_tracking_key, p.topic, p.what, p.due_by, p.due_at,
                   p.status,
                   coalesce(p.status = 'open' AND p.due_at < coalesce(CAST(? AS TIMESTAMPTZ), now()),
                            false) AS overdue,
                   CASE WHEN p.status = 'open' AND p.due_at < coalesce(CAST(? AS TIMESTAMPTZ), now())
                        THEN epoch(coalesce(CAST(? AS TIMESTAMPTZ), now()) - p.due_at) END AS overdue_s,
                   p.made_at, p.made_department, p.made_agent,
                   p.closed_at, p.closed_department, p.closed_agent
            FROM promises p {_CUSTOMER}) AS q
        {where}"""


#: The lists' order: what needs doing first, then a unique key, so that pages never overlap.
_CASE_ORDER = " ORDER BY overdue DESC, status = 'open' DESC, opened_at NULLS LAST, case_id, customer_id"
_PROMISE_ORDER = (" ORDER BY overdue DESC, status = 'open' DESC, due_at NULLS LAST, promise_id, "
                  "customer_id")


def query_cases(system: System, *, now: datetime | None, days: int, open_only: bool = False,
                overdue_only: bool = False, department: str | None = None, kind: str | None = None,
                customer_id: str | None = None, case_id: str | None = None,
                status: str | None = None, page: Page = EVERYTHING) -> list[dict[str, Any]]:
    """Rows of the ``cases`` table with the clock-dependent columns computed at ``now``
    (``page`` of them)."""
    _check_state(status, CASE_STATES)
    where, params = _filters({"owner_department": department, "kind": kind,
                              "customer_id": customer_id, "case_id": case_id},
                             open_only, overdue_only, status)
    cut, cut_params = page.sql()
    cursor = system.projections.con.execute(_cases_sql(where) + _CASE_ORDER + cut,
                                            [days, now, days, *params, *cut_params])
    return [_localised(row) for row in _rows(cursor)]


def query_promises(system: System, *, now: datetime | None, open_only: bool = False,
                   overdue_only: bool = False, customer_id: str | None = None,
                   case_id: str | None = None, status: str | None = None,
                   page: Page = EVERYTHING) -> list[dict[str, Any]]:
    """Rows of the ``promises`` table with ``overdue`` computed at ``now`` (``page`` of them)."""
    _check_state(status, PROMISE_STATES)
    where, params = _filters({"customer_id": customer_id, "case_id": case_id},
                             open_only, overdue_only, status)
    cut, cut_params = page.sql()
    cursor = system.projections.con.execute(_promises_sql(where) + _PROMISE_ORDER + cut,
                                            [now, now, now, *params, *cut_params])
    return [_localised(row) for row in _rows(cursor)]


def _counts(system: System, sql: str, params: list[Any], states: tuple[str, ...]
            ) -> tuple[int, dict[str, int]]:
    """How many rows ``sql`` (a list's query, without the state filters) holds in all and in
    each state: the numbers a console shows beside its filters."""
    columns = "".join(f", count(*) FILTER (WHERE {_STATE_SQL[s]})" for s in states)
    total, *each = system.projections.con.execute(
        f"SELECT count(*){columns} FROM ({sql}) AS s", params).fetchall()[0]
    return int(total), {s: int(n) for s, n in zip(states, each, strict=True)}


def _localised(row: dict[str, Any]) -> dict[str, Any]:
    """Instants as ISO 8601 in the customer's time zone (what --json prints)."""
    zone = ZoneInfo(row["timezone"])
    return {k: v.astimezone(zone).isoformat() if isinstance(v, datetime) else v
            for k, v in row.items()}


def list_cases(system: System, *, now: datetime | None, days: int, open_only: bool = False,
               overdue_only: bool = False, department: str | None = None, kind: str | None = None,
               customer_id: str | None = None, status: str | None = None,
               page: Page = EVERYTHING) -> dict[str, Any]:
    """What ``journey cases --json`` prints: the cases judged at ``now`` (``page`` of them),
    the instant and deadline they were judged by, ``total`` (every case the filters match) and
    ``counts``: the cases of each state (:data:`CASE_STATES`) among those the department, kind
    and customer filters match, whatever state was asked for."""
    _check_state(status, CASE_STATES)
    rows = query_cases(system, now=now, days=days, open_only=open_only, overdue_only=overdue_only,
                       department=department, kind=kind, customer_id=customer_id, status=status,
                       page=page)
    where, params = _filters({"owner_department": department, "kind": kind,
                              "customer_id": customer_id}, open_only, overdue_only, status)
    total, _ = _counts(system, _cases_sql(where), [days, now, days, *params], ())
    where, params = _filters({"owner_department": department, "kind": kind,
                              "customer_id": customer_id}, False, False)
    _, counts = _counts(system, _cases_sql(where), [days, now, days, *params], CASE_STATES)
    return {"now": now.isoformat() if now else None, "answer_days": days,
            "as_of_position": system.projections.position(), **page.fields(total),
            "status": status, "counts": counts, "cases": rows}


def list_promises(system: System, *, now: datetime | None, open_only: bool = False,
                  overdue_only: bool = False, customer_id: str | None = None,
                  status: str | None = None, page: Page = EVERYTHING) -> dict[str, Any]:
    """What ``journey promises --json`` prints: the promises judged at ``now`` (``page`` of
    them), ``total`` (every promise the filters match) and ``counts``: the promises of each
    state (:data:`PROMISE_STATES`) among the customer's (or everybody's)."""
    _check_state(status, PROMISE_STATES)
    rows = query_promises(system, now=now, open_only=open_only, overdue_only=overdue_only,
                          customer_id=customer_id, status=status, page=page)
    where, params = _filters({"customer_id": customer_id}, open_only, overdue_only, status)
    total, _ = _counts(system, _promises_sql(where), [now, now, now, *params], ())
    where, params = _filters({"customer_id": customer_id}, False, False)
    _, counts = _counts(system, _promises_sql(where), [now, now, now, *params], PROMISE_STATES)
    return {"now": now.isoformat() if now else None,
            "as_of_position": system.projections.position(), **page.fields(total),
            "status": status, "counts": counts, "promises": rows}


def find_case(system: System, ref: str) -> tuple[str, str]:
    """``(customer_id, case_id)`` of a case named by its id or its tracking key."""
    con = system.projections.con
    found = con.execute("SELECT customer_id, case_id FROM cases WHERE case_id = ?", [ref]).fetchall()
    if not found:
        key = rules.parse_tracking_key(ref)
        if key is not None:
            found = con.execute("SELECT customer_id, case_id FROM cases WHERE tracking_key = ? "
                                "ORDER BY case_id", [key]).fetchall()
    if not found:
        raise Unknown(f"no case with id or tracking key {ref!r}")
    if len(found) > 1:
        names = ", ".join(str(r[1]) for r in found)
        raise UsageError(f"tracking key {ref!r} names several cases ({names}); give the case id")
    return str(found[0][0]), str(found[0][1])


def case_document(system: System, customer_id: str, case_id: str, now: datetime | None,
                  days: int) -> dict[str, Any]:
    """Everything ``journey case`` shows: the case record, its clocks at ``now``, its promises."""
    view = system.projections.load_views([customer_id])[customer_id]
    sections = view["sections"]
    record = next(c for c in rules.case_records(sections["case"], sections["promise"], days)
                  if c["case_id"] == case_id)
    (row,) = query_cases(system, now=now, days=days, customer_id=customer_id, case_id=case_id)
    return {
        **record,
        "customer": {"customer_id": row["customer_id"], "customer_number": row["customer_number"],
                     "name": row["customer_name"], "timezone": row["timezone"]},
        "overdue": row["overdue"], "overdue_s": row["overdue_s"], "age_s": row["age_s"],
        "promises": query_promises(system, now=now, customer_id=customer_id, case_id=case_id),
        "now": now.isoformat() if now else None,
        "as_of_position": system.projections.position(),
    }
