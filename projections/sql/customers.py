"""The analysts' ``customers`` table and the ``identities`` index, derived by SQL from ``events``.

The same rows as ``customer_view.summary`` gives for each customer (written by the projection's
``_customer_row`` and identities list), computed set-based over the rows of the customers a
transaction touched: no fold of a view, no Python per event or per customer.

The view orders a section's facts by when they happened and then by store position; here that
order is ``seq``, each row's rank among its customer's rows by (``occurred_at``, ``position``),
so "the last setter", "a later consent", "unlinked after it was first seen" are comparisons of
one integer. The merge markers are the exception: the view applies them in log order, so
``merged_from`` reads them by position.

A forgotten customer's rows lose ``ref`` and ``data`` when the forget is projected. What their
``customers`` row keeps (customer_view.KEPT) is counted before that by
:func:`remember_forgotten` into ``tombstones``, from fields the ledger keeps public (types, case
and promise ids, consent channels and purposes, merge sources), so a rebuild after erasure, whose
rows hold only the public fields, counts the same.
"""

from __future__ import annotations

import duckdb

from projections.rules import Rules

#: What a forgotten customer's ``customers`` row keeps, counted before their personal data went
#: (customer_view.tombstone). ``merged_from`` is kept too: it is read from the merge markers'
#: ``data``, which the forget nulls with the rest.
TOMBSTONES_DDL = """CREATE TABLE IF NOT EXISTS tombstones (
    customer_id VARCHAR NOT NULL, forgotten_at VARCHAR NOT NULL, kind VARCHAR, cases INTEGER,
    open_cases INTEGER, open_promises INTEGER, products INTEGER, active_objections INTEGER,
    merged_from VARCHAR[])"""

#: The instant spelling of ``customer_view.utc_key``.
UTC_KEY = "%Y-%m-%dT%H:%M:%S.%fZ"

#: Rows that are bookkeeping about records, not a moment the person was in touch.
_BOOKKEEPING = "('customer.merged', 'customer.unmerged', 'customer.forgotten')"

#: What ``int()`` strips as white space around a number (not U+001C-U+001F, which
#: ``str.isspace`` counts), as an RE2 class body.
_SPACE = (r"\t\n\x0b\x0c\r \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}\x{2029}"
          r"\x{202f}\x{205f}\x{3000}")
#: A digit ``int(text, 16)`` reads: ASCII hex, or any Unicode decimal digit (as far as RE2's
#: Unicode tables and Python's agree: DuckDB's RE2 knows the 20 digits Unicode 15 added, which
#: Python 3.11 does not read).
_HEX = r"[0-9a-fA-F\p{Nd}]"
#: What ``int(text, 16)`` accepts: white space, a ``+`` (a ``-`` is gone by then), an optional
#: ``0x`` prefix, digits with single underscores between them.
_INT16 = rf"^[{_SPACE}]*\+?(0[xX]_?)?{_HEX}(_?{_HEX})*[{_SPACE}]*$"


def ledger_uuid_sql(text: str) -> str:
    """SQL true when ``text`` (a VARCHAR expression) is a ledger id by ``domain.identity.ledger_uuid``.

    That is ``uuid.UUID(text)`` on a text of 32 or 36 characters, which reads more than the
    canonical spelling: every ``urn:`` and ``uuid:`` removed, braces stripped from both ends,
    every hyphen removed, then 32 characters that ``int(..., 16)`` reads."""
    bare = f"replace(trim(replace(replace({text}, 'urn:', ''), 'uuid:', ''), '{{}}'), '-', '')"
    return (f"(length({text}) IN (32, 36) AND length({bare}) = 32 "
            f"AND regexp_full_match({bare}, '{_INT16}'))")


#: Fields of ``data`` the rules read, extracted once per row: as text, and as JSON (where a
#: JSON null must differ from an absent field, or the value is an object).
_TEXT_FIELDS = ("kind", "value", "from", "promise_id", "channel")
_JSON_FIELDS = ("value", "purpose", "channels", "address", "phone", "email", "twitter")
#: The types whose ``data`` the rules read (the others' is not parsed).
_DATA_TYPES = ("('customer.registered', 'identity.linked', 'identity.unlinked', 'address.changed', "
               "'consent.given', 'objection.recorded', 'promise.made', 'promise.kept', 'promise.broken', "
               "'customer.merged', 'customer.unmerged')")


def _rows(table: str, where: str) -> str:
    """A temporary table of the chosen events rows with the ``data`` fields the rules read, and
    ``seq``: each row's rank among its customer's rows in the view's order."""
    texts = ", ".join(f"'$.{name}'" for name in _TEXT_FIELDS)
    jsons = ", ".join(f"'$.{name}'" for name in _JSON_FIELDS)
    fields = ", ".join([*(f"t[{i}] AS {name}_text" for i, name in enumerate(_TEXT_FIELDS, 1)),
                        *(f"j[{i}] AS {name}_json" for i, name in enumerate(_JSON_FIELDS, 1))])
    return f"""
    CREATE OR REPLACE TEMP TABLE {table} AS
    SELECT customer_id, position, type, occurred_at, department, case_id, ref,
           CASE WHEN type = 'customer.registered' THEN data END AS profile, {fields},
           row_number() OVER (PARTITION BY customer_id ORDER BY occurred_at, position) AS seq
    FROM (SELECT *, CASE WHEN type IN {_DATA_TYPES} THEN json_extract_string(data, [{texts}]) END AS t,
                 CASE WHEN type IN {_DATA_TYPES} THEN json_extract(data, [{jsons}]) END AS j
          FROM events WHERE {where})"""


def _counts(rows: str) -> str:
    """CTEs ``kept`` (customer_id, registered, cases, open_cases, open_promises, products,
    active_objections) and ``markers`` (customer_id, merged_from) over the rows in ``rows``:
    only public fields, so they count the same from erased facts."""
    return f"""
    case_state AS (  -- a case is open until resolved, and open again when reopened
        SELECT customer_id, case_id,
               arg_max(type, seq) FILTER (WHERE type IN ('case.resolved', 'case.reopened')) AS last
        FROM {rows} WHERE starts_with(type, 'case.') GROUP BY customer_id, case_id),
    cases AS (
        SELECT customer_id, count(*) AS cases,
               count(*) FILTER (WHERE last IS DISTINCT FROM 'case.resolved') AS open_cases
        FROM case_state GROUP BY customer_id),
    promise_state AS (  -- a promise is open until kept or broken
        SELECT customer_id, promise_id_text, bool_or(type <> 'promise.made') AS closed
        FROM {rows} WHERE type IN ('promise.made', 'promise.kept', 'promise.broken')
        GROUP BY customer_id, promise_id_text),
    promises AS (
        SELECT customer_id, count(*) FILTER (WHERE NOT closed) AS open_promises
        FROM promise_state GROUP BY customer_id),
    objection AS (  -- channels "all" and purpose "commercial" unless given (null is not absent)
        SELECT customer_id, seq,
               CASE WHEN purpose_json IS NULL THEN 'commercial'
                    ELSE json_extract_string(purpose_json, '$') END AS purpose,
               channels_json IS NULL OR (json_type(channels_json) = 'VARCHAR'
                                         AND json_extract_string(channels_json, '$') = 'all')
                   AS every_channel,
               CASE WHEN json_type(channels_json) = 'ARRAY'
                    THEN json_extract_string(channels_json, '$[*]') END AS channels
        FROM {rows} WHERE type = 'objection.recorded'),
    consent AS (
        SELECT customer_id, seq, channel_text AS channel,
               json_extract_string(purpose_json, '$') AS purpose
        FROM {rows} WHERE type = 'consent.given'),
    objections AS (  -- lifted by a later consent for its purpose on a channel it covers
        SELECT customer_id, count(*) AS active_objections FROM objection o
        WHERE NOT EXISTS (
            SELECT 1 FROM consent g
            WHERE g.customer_id = o.customer_id AND g.seq > o.seq AND g.purpose = o.purpose
              AND (o.every_channel OR g.channel = 'any' OR list_contains(o.channels, g.channel)
                   OR list_contains(o.channels, 'any')))
        GROUP BY customer_id),
    marker AS (  -- a merge adds its source, an unmerge takes it away, in log order
        SELECT customer_id, from_text AS source, arg_max(type, position) AS last
        FROM {rows}
        WHERE type IN ('customer.merged', 'customer.unmerged') AND from_text IS NOT NULL
        GROUP BY customer_id, from_text),
    markers AS (
        SELECT customer_id, list_sort(list(source)) AS merged_from
        FROM marker WHERE last = 'customer.merged' GROUP BY customer_id),
    simple AS (
        SELECT customer_id,
               bool_or(type = 'customer.registered') AS registered,
               count(*) FILTER (WHERE type = 'purchase.recorded') AS products
        FROM {rows} GROUP BY customer_id),
    kept AS (
        SELECT s.customer_id, s.registered, coalesce(c.cases, 0) AS cases,
               coalesce(c.open_cases, 0) AS open_cases,
               coalesce(p.open_promises, 0) AS open_promises, s.products,
               coalesce(o.active_objections, 0) AS active_objections
        FROM simple s
        LEFT JOIN cases c USING (customer_id)
        LEFT JOIN promises p USING (customer_id)
        LEFT JOIN objections o USING (customer_id))"""


def _identity_keys(rows: str, table: str) -> str:
    """A temporary table of each live customer's identity keys as the view lists them: every
    key ever seen (a ledger id in ``ref`` is the customer's name, not an identity), unless the
    customer's last unlink of it came at or after its first sighting."""
    value = "json_extract_string(j.value, '$')"
    registered = " UNION ALL ".join(
        f"SELECT customer_id, '{kind}:' || json_extract_string({kind}_json, '$') AS key, seq "
        f"FROM live WHERE type = 'customer.registered' "
        f"AND json_extract_string({kind}_json, '$') IS NOT NULL"
        for kind in ("phone", "email", "twitter"))
    return f"""
    CREATE OR REPLACE TEMP TABLE {table} AS
    WITH live AS (
        SELECT * FROM {rows} WHERE customer_id NOT IN
            (SELECT customer_id FROM {rows} WHERE type = 'customer.forgotten')),
    reference AS (  -- most facts name their customer the same way: each way read once
        SELECT customer_id, ref::VARCHAR AS ref, min(seq) AS seq FROM live WHERE ref IS NOT NULL
        GROUP BY customer_id, ref::VARCHAR),
    sighting AS (
        SELECT r.customer_id, j.key || ':' || {value} AS key, r.seq
        FROM reference r, json_each(r.ref) j
        WHERE {value} IS NOT NULL AND NOT (j.key = 'customer_id' AND {ledger_uuid_sql(value)})
        UNION ALL {registered}
        UNION ALL
        SELECT customer_id, kind_text || ':' || value_text AS key, seq FROM live
        WHERE type = 'identity.linked' AND value_text IS NOT NULL),
    first_sighting AS (
        SELECT customer_id, key, min(seq) AS seq FROM sighting GROUP BY customer_id, key),
    unlinked AS (
        SELECT customer_id, kind_text || ':' || value_text AS key, max(seq) AS seq
        FROM live WHERE type = 'identity.unlinked' GROUP BY customer_id, key)
    SELECT f.customer_id, f.key FROM first_sighting f LEFT JOIN unlinked u USING (customer_id, key)
    WHERE u.seq IS NULL OR u.seq < f.seq"""


def _contact(rows: str) -> str:
    """CTE ``contact`` (customer_id, address JSON, phone, email, twitter): the last value set
    wins; an unlink clears a field only when it names the value the field holds."""
    registered = " UNION ALL ".join(  # a registration sets each field it has, even to null
        f"SELECT customer_id, seq, '{field}' AS field, {field}_json AS value, true AS sets "
        f"FROM {rows} WHERE type = 'customer.registered' AND {field}_json IS NOT NULL"
        for field in ("address", "phone", "email", "twitter"))
    return f"""
    change AS (
        {registered}
        UNION ALL
        SELECT customer_id, seq, 'address', address_json, true FROM {rows}
        WHERE type = 'address.changed'
        UNION ALL
        SELECT customer_id, seq, kind_text, value_json, true FROM {rows}
        WHERE type = 'identity.linked' AND kind_text IN ('address', 'phone', 'email', 'twitter')
        UNION ALL
        SELECT customer_id, seq, kind_text, value_json, false FROM {rows}
        WHERE type = 'identity.unlinked'),
    last_set AS (
        SELECT customer_id, field, max(seq) AS seq,
               struct_extract(arg_max({{'v': value}}, seq), 'v') AS value
        FROM change WHERE sets GROUP BY customer_id, field),
    field_value AS (
        SELECT l.customer_id, l.field,
               CASE WHEN json_type(l.value) = 'VARCHAR' AND EXISTS (
                        SELECT 1 FROM change u
                        WHERE NOT u.sets AND u.customer_id = l.customer_id AND u.field = l.field
                          AND u.seq > l.seq AND json_type(u.value) = 'VARCHAR'
                          AND json_extract_string(u.value, '$') = json_extract_string(l.value, '$'))
                    THEN NULL ELSE l.value END AS value
        FROM last_set l),
    contact AS (
        SELECT customer_id,
               any_value(value) FILTER (WHERE field = 'address') AS address,
               any_value(json_extract_string(value, '$')) FILTER (WHERE field = 'phone') AS phone,
               any_value(json_extract_string(value, '$')) FILTER (WHERE field = 'email') AS email,
               any_value(json_extract_string(value, '$')) FILTER (WHERE field = 'twitter') AS twitter
        FROM field_value GROUP BY customer_id)"""


_ROWS = "_customers_rows"
_KEYS = "_customers_keys"
_HELD = "_customers_held"
_BEFORE = "_customers_before_forget"

#: Touched records known only by facts the projection set aside (projections/quarantine.py):
#: the fold keeps a view for them (the quarantine marks), so they have a ``customers`` row and
#: a ``ledger:`` identity, with no events rows. A record merged away (an alias) has neither.
_INSERT_HELD = f"""
    INSERT INTO {_HELD}
    SELECT DISTINCT customer_id FROM quarantine
    WHERE customer_id IN (SELECT customer_id FROM touched)
      AND customer_id NOT IN (SELECT customer_id FROM {_ROWS})
      AND customer_id NOT IN (SELECT alias FROM customer_aliases)"""

_INSERT_CUSTOMERS = f"""
    INSERT INTO customers (customer_id, customer_number, kind, name, birthday, language, timezone,
        street, number, postal_code, city, phone, email, twitter, identities, events, first_seen,
        last_seen, cases, open_cases, open_promises, products, active_objections, departments,
        merged_from)
    WITH {_counts(_ROWS)},
    {_contact(_ROWS)},
    base AS (
        SELECT customer_id, count(*) AS events,
               min(occurred_at) FILTER (WHERE type NOT IN {_BOOKKEEPING}) AS first_seen,
               max(occurred_at) FILTER (WHERE type NOT IN {_BOOKKEEPING}) AS last_seen,
               coalesce(list_sort(list(DISTINCT department) FILTER (WHERE department IS NOT NULL)),
                        []::VARCHAR[]) AS departments,
               bool_or(type = 'customer.forgotten') AS forgotten,
               struct_extract(arg_max({{'data': profile}}, seq)
                                  FILTER (WHERE type = 'customer.registered'), 'data') AS profile
        FROM {_ROWS} GROUP BY customer_id),
    profiled AS (
        SELECT *, json_extract_string(profile, ['$.name', '$.birthday', '$.language', '$.timezone']) AS p
        FROM base),
    addressed AS (
        SELECT *, json_extract_string(address, ['$.street', '$.number', '$.postal_code', '$.city']) AS a
        FROM contact),
    keys AS (
        SELECT customer_id, list_sort(list(key)) AS identities,
               min(key) FILTER (WHERE starts_with(key, 'customer_id:')) AS number_key
        FROM {_KEYS} GROUP BY customer_id),
    live AS (
        SELECT b.customer_id, substr(k.number_key, length('customer_id:') + 1) AS customer_number,
               CASE WHEN kept.registered THEN 'customer' ELSE 'prospect' END AS kind,
               b.p[1] AS name, CAST(b.p[2] AS DATE) AS birthday, b.p[3] AS language,
               CASE WHEN b.profile IS NULL THEN NULL
                    WHEN json_extract(b.profile, '$.timezone') IS NULL THEN 'Europe/Madrid'
                    ELSE b.p[4] END AS timezone,
               c.a[1] AS street, c.a[2] AS number, c.a[3] AS postal_code, c.a[4] AS city,
               c.phone, c.email, c.twitter,
               coalesce(k.identities, []::VARCHAR[]) AS identities,
               kept.cases, kept.open_cases, kept.open_promises, kept.products,
               kept.active_objections, coalesce(m.merged_from, []::VARCHAR[]) AS merged_from
        FROM profiled b JOIN kept USING (customer_id)
        LEFT JOIN keys k USING (customer_id)
        LEFT JOIN addressed c USING (customer_id)
        LEFT JOIN markers m USING (customer_id)
        WHERE NOT b.forgotten),
    gone AS (  -- a tombstone: nothing that could name them, the counts kept
        SELECT b.customer_id, NULL AS customer_number, t.kind, NULL AS name, NULL AS birthday,
               NULL AS language, NULL AS timezone, NULL AS street, NULL AS number,
               NULL AS postal_code, NULL AS city, NULL AS phone, NULL AS email, NULL AS twitter,
               []::VARCHAR[] AS identities, t.cases, t.open_cases, t.open_promises, t.products,
               t.active_objections, coalesce(t.merged_from, m.merged_from, []::VARCHAR[])
                   AS merged_from
        FROM base b
        LEFT JOIN (SELECT * FROM tombstones QUALIFY row_number() OVER
                       (PARTITION BY customer_id ORDER BY forgotten_at) = 1) t USING (customer_id)
        LEFT JOIN markers m USING (customer_id)
        WHERE b.forgotten),
    summary AS (SELECT * FROM live UNION ALL BY NAME SELECT * FROM gone)
    SELECT s.customer_id, s.customer_number, s.kind, s.name, s.birthday, s.language, s.timezone,
           s.street, s.number, s.postal_code, s.city, s.phone, s.email, s.twitter, s.identities,
           b.events, b.first_seen, b.last_seen, s.cases, s.open_cases, s.open_promises, s.products,
           s.active_objections, b.departments, s.merged_from
    FROM summary s JOIN base b USING (customer_id)
    UNION ALL  -- a view without facts
    SELECT customer_id, NULL, 'prospect', NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
           NULL, NULL, []::VARCHAR[], 0, NULL, NULL, 0, 0, 0, 0, 0, []::VARCHAR[], []::VARCHAR[]
    FROM {_HELD}"""

_INSERT_IDENTITIES = f"""
    INSERT INTO identities (identity, customer_id)
    SELECT key, customer_id FROM {_KEYS}
    UNION ALL  -- every live customer is found by their ledger id
    SELECT DISTINCT 'ledger:' || customer_id, customer_id FROM {_ROWS}
    WHERE customer_id NOT IN (SELECT customer_id FROM {_ROWS} WHERE type = 'customer.forgotten')
    UNION ALL
    SELECT 'ledger:' || customer_id, customer_id FROM {_HELD}"""

_INSERT_TOMBSTONES = f"""
    INSERT INTO tombstones (customer_id, forgotten_at, kind, cases, open_cases, open_promises,
                            products, active_objections, merged_from)
    WITH forget AS (
        SELECT customer_id, arg_min(occurred_at, position) AS occurred_at
        FROM events
        WHERE type = 'customer.forgotten' AND customer_id IN (SELECT customer_id FROM touched)
          AND customer_id NOT IN (SELECT customer_id FROM tombstones)
        GROUP BY customer_id),
    {_counts(_BEFORE)}
    SELECT f.customer_id, strftime(timezone('UTC', f.occurred_at), '{UTC_KEY}'),
           CASE WHEN k.registered THEN 'customer' ELSE 'prospect' END,
           coalesce(k.cases, 0), coalesce(k.open_cases, 0), coalesce(k.open_promises, 0),
           coalesce(k.products, 0), coalesce(k.active_objections, 0),
           coalesce(m.merged_from, []::VARCHAR[])
    FROM forget f LEFT JOIN kept k USING (customer_id) LEFT JOIN markers m USING (customer_id)"""

_BEFORE_FORGET = """
    position < (SELECT min(f.position) FROM events f
                WHERE f.customer_id = events.customer_id AND f.type = 'customer.forgotten')
    AND customer_id IN (SELECT customer_id FROM touched)
    AND customer_id NOT IN (SELECT customer_id FROM tombstones)"""


def refresh(con: duckdb.DuckDBPyConnection, rules: Rules) -> None:
    """Rewrite the ``customers`` and ``identities`` rows of every customer in ``touched``.

    A touched customer without events rows (merged away) is left without rows. ``rules`` (the
    complaint deadline) changes nothing here: no column of these tables depends on it."""
    del rules
    con.execute(TOMBSTONES_DDL)
    con.execute(_rows(_ROWS, "customer_id IN (SELECT customer_id FROM touched)"))
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {_HELD} (customer_id VARCHAR)")
        if _has_tables(con, "quarantine", "customer_aliases"):
            con.execute(_INSERT_HELD)
        con.execute(_identity_keys(_ROWS, _KEYS))
        for table in ("customers", "identities"):
            con.execute(f"DELETE FROM {table} WHERE customer_id IN (SELECT customer_id FROM touched)")
        con.execute(_INSERT_CUSTOMERS)
        con.execute(_INSERT_IDENTITIES)
    finally:
        for table in (_KEYS, _HELD, _ROWS):
            con.execute(f"DROP TABLE IF EXISTS {table}")


def _has_tables(con: duckdb.DuckDBPyConnection, *names: str) -> bool:
    [(found,)] = con.execute(
        "SELECT count(DISTINCT table_name) FROM duckdb_tables() "
        "WHERE database_name = current_database() AND table_name IN (SELECT unnest(?::VARCHAR[]))",
        [list(names)]).fetchall()
    return bool(found == len(names))


def remember_forgotten(con: duckdb.DuckDBPyConnection) -> None:
    """Count what a forgotten customer's ``customers`` row keeps, while their rows still hold it.

    For each customer in ``touched`` with a ``customer.forgotten`` row and no ``tombstones`` row
    yet: the counts of ``customer_view.KEPT`` over their rows before the (first) forget, as the
    view's tombstone took them. Call it before the forgotten customers' ``ref`` and ``data`` are
    nulled; the counts and ``merged_from`` read only public fields of ``data`` (``promise_id``,
    an objection's ``channels`` and ``purpose``, a consent's ``channel`` and ``purpose``, a
    marker's ``from``), which an erased fact keeps."""
    con.execute(TOMBSTONES_DDL)
    con.execute(_rows(_BEFORE, _BEFORE_FORGET))
    try:
        con.execute(_INSERT_TOMBSTONES)
    finally:
        con.execute(f"DROP TABLE IF EXISTS {_BEFORE}")
