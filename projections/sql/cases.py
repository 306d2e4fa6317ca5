"""The ``cases``, ``promises`` and ``contradictions`` rows, computed by SQL from ``events``.

The same rules as projections/cases.py (docs/cases.md), said set-based: a touched customer's
rows are deleted and computed again from their ``events`` rows, every customer at once, with
no Python per fact or per customer. The tables and their DDL stay where projections/cases.py
registers them.

How the Python rules are said here:

- A customer's "case" section is every row whose type starts with ``case.``, grouped by its
  ``case_id``; the "promise" section every ``promise.made``/``kept``/``broken`` row, grouped by
  ``data.promise_id``. Within a case or a promise the facts are ordered by (``occurred_at``,
  type rank, ``event_id``) (``row_number()`` as ``ord``), never by position: a late upload or
  another recording order gives the same rows.
- ``late`` uses position by definition: a fact is late when a fact of its case that happened
  strictly later (one microsecond or more: the resolution of ``occurred_at``) has a smaller
  position. A window over the following instants says exactly that.
- "The first X" and "the last X" are ``arg_min_null``/``arg_max_null`` over ``ord`` (the
  ``_null`` kind: a fact whose field is missing still counts as the first or last one).
- Times are the ``occurred_at`` instants; durations are whole microseconds divided by 10**6 in
  floating point, which is what ``timedelta.total_seconds()`` computes, so the floats are the
  same. A complaint's deadline adds ``days`` times 86,400 seconds (an interval of
  microseconds: an interval of days would follow the session's time zone across a DST change).
- A plain-date ``due_by`` ends at the start of the next day at the promise's own UTC offset:
  the offset is the recorded local wall time (``occurred_local``) minus the UTC instant.
- The tracking key (SHA-256 of the case's uuid5, ``domain.identity.case_uuid``) is built from
  DuckDB's ``sha1`` and ``sha256`` over bytes: the uuid5 is the first 16 bytes of SHA-1 of the
  namespace's bytes and ``case:<id>`` in UTF-8, with the version and variant bits set.
- A forgotten customer (a ``customer.forgotten`` row among theirs) has no rows.

The touched customers' facts are read from ``events`` once, into a temporary table the three
statements share (dropped at the end; the caller's rollback drops it after a failure).
"""

from __future__ import annotations

import duckdb

from domain.identity import NAMESPACE
from projections.cases import CROCKFORD, KEY_SYMBOLS
from projections.rules import Rules

TABLES = ("cases", "promises", "contradictions")

#: Ties on occurred_at: what must come first in a case's life (projections/cases.py ``_RANK``).
_RANK = """CASE type WHEN 'case.opened' THEN 0 WHEN 'case.transferred' THEN 1
    WHEN 'case.note' THEN 2 WHEN 'case.responded' THEN 3 WHEN 'case.resolved' THEN 4
    WHEN 'case.reopened' THEN 5 WHEN 'promise.made' THEN 0 WHEN 'promise.kept' THEN 1
    WHEN 'promise.broken' THEN 1 ELSE 9 END"""


def _tracking_keys(name: str, ids: str) -> str:
    """CTEs ending in ``name(case_id, tracking_key)`` for the case ids ``ids`` selects (one
    column, ``case_id``, distinct): projections/cases.py ``tracking_key`` for each."""
    # Hex digits 1-12 of SHA-1, the version (5), 14-16, the variant (8-b, keeping the two low
    # bits of digit 17), 18-32: the uuid5's 16 bytes.
    uuid_hex = ("substr(h, 1, 12) || '5' || substr(h, 14, 3) || "
                "substr('89ab', (('0x' || substr(h, 17, 1))::INTEGER & 3) + 1, 1) || substr(h, 18, 15)")
    bits = 5 * KEY_SYMBOLS
    # The first 50 bits of SHA-256: 13 hex digits (52 bits) shifted right by two; then five bits
    # a symbol, the most significant first. (One lambda plans several times faster than ten
    # spelled-out symbols: the planning is most of a small transaction's time.)
    shifts = f"range({bits - 5}, -5, -5)"
    return f"""
    {name}_sha1 AS (
        SELECT case_id, sha1(unhex('{NAMESPACE.hex}') || encode('case:' || case_id)) AS h
        FROM ({ids})
    ),
    {name}_bits AS (
        SELECT case_id,
            ('0x' || substr(sha256(unhex({uuid_hex})), 1, 13))::BIGINT >> {13 * 4 - bits} AS n
        FROM {name}_sha1
    ),
    {name} AS (
        SELECT case_id, substr(k, 1, 5) || '-' || substr(k, 6, 5) AS tracking_key
        FROM (SELECT case_id, array_to_string(list_transform({shifts},
                  lambda s: substr('{CROCKFORD}', ((n >> s) & 31)::INTEGER + 1, 1)), '') AS k
              FROM {name}_bits)
    )"""


#: The one scan of ``events``: the "case" and "promise" facts of the touched customers who have
#: rows (not forgotten), with the ``data`` fields the rules read (``case_id`` is the column the
#: engine fills from ``data.case_id``, a promise's case too). Every statement below reads
#: this table: a small transaction touches few customers, and nine scans of ``events`` (one per
#: CTE) cost nine times one.
INPUT = "journey_sql_cases_input"

INPUT_SQL = f"""
CREATE OR REPLACE TEMP TABLE {INPUT} AS
WITH picked AS (
    SELECT customer_id, case_id, position, event_id, type, occurred_at, occurred_local, department,
        agent, data
    FROM events
    WHERE customer_id IN (SELECT customer_id FROM touched)
        AND (starts_with(type, 'case.')
             OR type IN ('promise.made', 'promise.kept', 'promise.broken', 'customer.forgotten'))
)
SELECT customer_id, case_id, position, event_id, type, occurred_at, occurred_local, department, agent,
    data ->> 'kind' AS kind, data ->> 'subject' AS subject, data ->> 'to' AS transferred_to,
    data ->> 'text' AS text, data ->> 'answer' AS answer, data ->> 'topic' AS topic,
    data ->> 'resolution' AS resolution, data ->> 'promise_id' AS promise_id,
    data ->> 'what' AS what, data ->> 'due_by' AS due_by
FROM picked
WHERE type <> 'customer.forgotten'
    AND customer_id NOT IN (SELECT customer_id FROM picked WHERE type = 'customer.forgotten')
"""

#: Each case's facts with its place in the case (``ord``) and whether it was recorded late.
_FACTS = f"""
    case_facts AS (
        SELECT *,
            row_number() OVER (PARTITION BY customer_id, case_id
                               ORDER BY occurred_at, {_RANK}, event_id) AS ord,
            coalesce(min(position) OVER (
                PARTITION BY customer_id, case_id ORDER BY occurred_at
                RANGE BETWEEN INTERVAL 1 MICROSECOND FOLLOWING AND UNBOUNDED FOLLOWING) < position,
                false) AS late
        FROM {INPUT}
        WHERE starts_with(type, 'case.')
    )"""

#: Everything said "yes" or "no" on a case by a department, and the pairs that contradict each
#: other (projections/cases.py ``contradictions``): a "no" comes only from a case's own facts,
#: so a pair names a case of the customer.
_PAIRS = f"""
    said AS (
        SELECT customer_id, case_id, answer, topic, type, department, agent, occurred_at, text,
            promise_id, event_id
        FROM {INPUT}
        WHERE type = 'case.responded' AND answer IN ('yes', 'no') AND department <> ''
        UNION ALL
        SELECT customer_id, case_id, 'yes', topic, type, department, agent, occurred_at, what,
            promise_id, event_id
        FROM {INPUT}
        WHERE type = 'promise.made' AND department <> ''
    ),
    pairs AS (
        SELECT y.customer_id, y.case_id, y.topic, greatest(y.occurred_at, n.occurred_at) AS contradicted_at,
            y.type AS yes_type, y.department AS yes_department, y.agent AS yes_agent,
            y.occurred_at AS yes_occurred_at, y.text AS yes_text, y.promise_id AS yes_promise_id,
            y.event_id AS yes_event_id,
            n.type AS no_type, n.department AS no_department, n.agent AS no_agent,
            n.occurred_at AS no_occurred_at, n.text AS no_text, n.promise_id AS no_promise_id,
            n.event_id AS no_event_id
        FROM said y JOIN said n
            ON y.customer_id = n.customer_id AND y.case_id = n.case_id
            AND y.topic IS NOT DISTINCT FROM n.topic AND y.department <> n.department
        WHERE y.answer = 'yes' AND n.answer = 'no'
    )"""

_ANSWER = "(type = 'case.responded' OR (type = 'case.resolved' AND resolution <> ''))"

CASES_SQL = f"""
INSERT INTO cases BY NAME
WITH {_FACTS}, {_PAIRS},
    agg AS (
        SELECT customer_id, case_id,
            count(*) FILTER (WHERE type = 'case.opened') > 0 AS has_opened,
            arg_min_null(occurred_at, ord) FILTER (WHERE type = 'case.opened') AS opened_at,
            arg_min_null(department, ord) FILTER (WHERE type = 'case.opened') AS opened_department,
            arg_min_null(kind, ord) FILTER (WHERE type = 'case.opened') AS kind,
            arg_min_null(subject, ord) FILTER (WHERE type = 'case.opened') AS subject,
            arg_min_null(department, ord) AS first_department,
            arg_min_null(occurred_at, ord) FILTER (WHERE {_ANSWER}) AS first_response_at,
            arg_min_null(type, ord) FILTER (WHERE {_ANSWER}) AS first_response_type,
            arg_min_null(department, ord) FILTER (WHERE {_ANSWER}) AS first_response_department,
            coalesce(max(ord) FILTER (WHERE type = 'case.resolved'), 0)
                > coalesce(max(ord) FILTER (WHERE type = 'case.reopened'), 0) AS is_resolved,
            arg_max_null(occurred_at, ord) FILTER (WHERE type = 'case.resolved') AS last_resolved_at,
            arg_max_null(resolution, ord) FILTER (WHERE type = 'case.resolved') AS last_resolution,
            arg_max_null(transferred_to, ord) FILTER (WHERE type = 'case.transferred') AS last_to,
            count(*) FILTER (WHERE type = 'case.transferred') AS transfers,
            count(*) FILTER (WHERE type = 'case.note') AS notes,
            count(*) FILTER (WHERE type = 'case.responded') AS responses,
            count(*) FILTER (WHERE type = 'case.reopened') AS reopened,
            count(*) FILTER (WHERE late) AS late_events,
            max(occurred_at) AS last_activity_at
        FROM case_facts
        GROUP BY customer_id, case_id
    ),
    -- Each department in the order it first appears: a fact's own, then a transfer's "to".
    named AS (
        SELECT customer_id, case_id, department AS name, 2 * ord AS k FROM case_facts
        UNION ALL
        SELECT customer_id, case_id, transferred_to, 2 * ord + 1 FROM case_facts
        WHERE type = 'case.transferred'
    ),
    departments AS (
        SELECT customer_id, case_id, list(name ORDER BY k) AS departments
        FROM (SELECT customer_id, case_id, name, min(k) AS k FROM named WHERE name <> ''
              GROUP BY customer_id, case_id, name)
        GROUP BY customer_id, case_id
    ),
    counted AS (
        SELECT customer_id, case_id, count(*) AS contradictions FROM pairs GROUP BY customer_id, case_id
    ),
    {_tracking_keys("keys", "SELECT DISTINCT case_id FROM agg")},
    timed AS (
        SELECT *,
            CASE WHEN kind = 'complaint' AND opened_at IS NOT NULL
                THEN opened_at + to_microseconds($days::BIGINT * 86400000000) END AS answer_due_by
        FROM agg
    )
SELECT t.customer_id, t.case_id, keys.tracking_key, t.kind, t.subject,
    CASE WHEN t.is_resolved THEN 'resolved' ELSE 'open' END AS status,
    CASE WHEN t.transfers > 0 THEN t.last_to
        WHEN t.has_opened THEN t.opened_department
        ELSE t.first_department END AS owner_department,
    coalesce(d.departments, []::VARCHAR[]) AS departments,
    t.opened_at, t.opened_department, t.first_response_at, t.first_response_type,
    t.first_response_department,
    CASE WHEN t.is_resolved THEN t.last_resolved_at END AS resolved_at,
    CASE WHEN t.is_resolved THEN t.last_resolution END AS resolution,
    CASE WHEN t.answer_due_by IS NOT NULL THEN $days END AS answer_days,
    t.answer_due_by,
    CASE WHEN t.answer_due_by IS NOT NULL AND t.first_response_at IS NOT NULL
        THEN t.first_response_at > t.answer_due_by END AS answered_late,
    t.transfers, t.notes, t.responses, t.reopened, t.late_events,
    (epoch_us(t.first_response_at) - epoch_us(t.opened_at))::DOUBLE / 1000000 AS response_s,
    CASE WHEN t.is_resolved
        THEN (epoch_us(t.last_resolved_at) - epoch_us(t.opened_at))::DOUBLE / 1000000 END AS resolution_s,
    t.last_activity_at,
    coalesce(c.contradictions, 0) AS contradictions
FROM timed t
JOIN keys USING (case_id)
LEFT JOIN departments d USING (customer_id, case_id)
LEFT JOIN counted c USING (customer_id, case_id)
"""

#: After CASES_SQL: each pair with its case's tracking key and owner from the rows just written.
CONTRADICTIONS_SQL = f"""
INSERT INTO contradictions BY NAME
WITH {_PAIRS}
SELECT p.*, c.tracking_key, c.owner_department
FROM pairs p JOIN cases c USING (customer_id, case_id)
"""

PROMISES_SQL = f"""
INSERT INTO promises BY NAME
WITH promise_facts AS (
        SELECT *,
            row_number() OVER (PARTITION BY customer_id, promise_id
                               ORDER BY occurred_at, {_RANK}, event_id) AS ord
        FROM {INPUT}
        WHERE type IN ('promise.made', 'promise.kept', 'promise.broken')
    ),
    agg AS (
        SELECT customer_id, promise_id,
            arg_min_null(what, ord) FILTER (WHERE type = 'promise.made') AS what,
            arg_min_null(case_id, ord) FILTER (WHERE type = 'promise.made') AS case_id,
            arg_min_null(topic, ord) FILTER (WHERE type = 'promise.made') AS topic,
            arg_min_null(due_by, ord) FILTER (WHERE type = 'promise.made') AS due_by,
            arg_min_null(occurred_at, ord) FILTER (WHERE type = 'promise.made') AS made_at,
            arg_min_null(occurred_local, ord) FILTER (WHERE type = 'promise.made') AS made_local,
            arg_min_null(department, ord) FILTER (WHERE type = 'promise.made') AS made_department,
            arg_min_null(agent, ord) FILTER (WHERE type = 'promise.made') AS made_agent,
            arg_max_null(type, ord) FILTER (WHERE type <> 'promise.made') AS closed_type,
            arg_max_null(occurred_at, ord) FILTER (WHERE type <> 'promise.made') AS closed_at,
            arg_max_null(department, ord) FILTER (WHERE type <> 'promise.made') AS closed_department,
            arg_max_null(agent, ord) FILTER (WHERE type <> 'promise.made') AS closed_agent
        FROM promise_facts
        GROUP BY customer_id, promise_id
    ),
    {_tracking_keys("keys", "SELECT DISTINCT case_id FROM agg WHERE case_id <> ''")}
SELECT a.customer_id, a.promise_id, a.case_id, keys.tracking_key AS case_tracking_key, a.topic,
    a.what, a.due_by,
    CASE WHEN a.due_by IS NULL OR a.due_by = '' THEN NULL
        WHEN length(a.due_by) <> 10 THEN a.due_by::TIMESTAMPTZ
        -- the next day's first instant at the offset of the promise's own wall time
        ELSE ((a.due_by::DATE + 1)::TIMESTAMP
              - (left(a.made_local, 19)::TIMESTAMP - date_trunc('second', a.made_at AT TIME ZONE 'UTC')))
             AT TIME ZONE 'UTC'
    END AS due_at,
    coalesce(substr(a.closed_type, length('promise.') + 1), 'open') AS status,
    a.made_at, a.made_department, a.made_agent, a.closed_at, a.closed_department, a.closed_agent
FROM agg a
LEFT JOIN keys ON keys.case_id = a.case_id
"""


def refresh(con: duckdb.DuckDBPyConnection, rules: Rules) -> None:
    """Rewrite the ``cases``, ``promises`` and ``contradictions`` rows of every customer in
    ``touched(customer_id)`` from their ``events`` rows, under ``rules`` (the complaint
    deadline). Runs in the caller's transaction; the other customers' rows stay as they are."""
    for table in TABLES:
        con.execute(f"DELETE FROM {table} WHERE customer_id IN (SELECT customer_id FROM touched)")
    con.execute(INPUT_SQL)
    con.execute(CASES_SQL, {"days": rules.complaint_days})
    con.execute(CONTRADICTIONS_SQL)
    con.execute(PROMISES_SQL)
    # (A failure leaves the temporary table to the caller's rollback, or to the next refresh's
    # CREATE OR REPLACE: a DROP in an aborted transaction would hide the error.)
    con.execute(f"DROP TABLE {INPUT}")
