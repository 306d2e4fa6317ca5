"""The service desks' tables as set-based SQL: the social inbox (``mentions``) and warranty
from purchase history (``products``, ``warranty_claims``), computed from the ``events`` rows of
the customers a transaction touched.

The rules are those of projections/inbox.py and projections/warranty.py (docs/inbox-and-warranty.md),
which stay the reference: every column here is what those functions give for the same facts.
How each piece is said in SQL, where Python and DuckDB do not agree on their own:

* Order. A section's entries are ordered by ``(occurred_at, event_id)``, a case's facts by
  ``(occurred_at, type rank, event_id)``: never by store position.
* Python's ``str()`` and truthiness of a JSON value (``to``, ``approved``, ``in_reply_to``,
  ``serial``): the ``service_py_str`` and ``service_truthy`` macros, by JSON type.
* A case named in a mention's text. Python's ``re`` with lookarounds under IGNORECASE; DuckDB's
  RE2 has no lookarounds, so the pattern captures what comes before the name (``start``) and the
  name itself (``len``); its classes add the two letters Python's case-insensitive ``[A-Za-z]``
  also takes (U+0130, U+0131, which RE2 does not fold), ``\\s`` is Python's whitespace spelled out,
  and the few letters Python folds together and RE2 does not (i, I, U+0130, U+0131 and three
  more pairs) match each other as in Python. Checked code point by code
  point against ``re`` (tests/integration/test_sql_service.py).
* The tracking key (projections/cases.py ``tracking_key``): uuid5 and SHA-256 with DuckDB's
  ``sha1``/``sha256``, Crockford base32 by bit arithmetic.
* A serial's key (letters and digits, upper case: Python's ``isalnum`` and ``upper``, which
  may lengthen a letter, ß -> SS). ASCII serials by a regex and ``upper``; the others through
  a class of every letter and digit and a table of the upper cases that differ, both built from
  this interpreter's Unicode tables, so the answers are Python's own. Only distinct serials go
  through it. (A Python UDF would need numpy, which this DuckDB build requires for UDFs.)
* Months added to a date: DuckDB's ``date + to_months(n)`` clips to the month's end (31 Jan + 1
  month = 28/29 Feb), as ``warranty_ends`` does.
* ``response_s``: reply minus mention in microseconds over 10^6, one rounding as in
  ``timedelta.total_seconds`` (split in two beyond 2^53 microseconds, where the split rounds once too).

A forgotten customer (a ``customer.forgotten`` row among theirs) has no rows; rows whose
``data`` was erased are never read.
"""

from __future__ import annotations

import functools

import duckdb

from domain.identity import NAMESPACE
from projections.cases import CROCKFORD
from projections.rules import Rules

#: The tables this module writes.
TABLES = ("mentions", "products", "warranty_claims")

#: The fact types these tables read (and every ``case.*`` type).
_TYPES = ("social.mention", "social.reply", "purchase.recorded", "warranty.claim_filed",
          "warranty.claim_decided")

#: Python's ``\s`` in a ``str`` pattern (``str.isspace``), as an RE2 class body.
_SPACE = (r"\t\n\x{b}\x{c}\r\x{1c}-\x{1f} \x{85}\x{a0}\x{1680}\x{2000}-\x{200a}\x{2028}"
          r"\x{2029}\x{202f}\x{205f}\x{3000}")
#: Python's ``[0-9A-Za-z_]`` and ``[0-9A-Za-z]`` under IGNORECASE, as RE2 class bodies (with
#: RE2's own ``(?i)``: it folds the Kelvin sign and the long s as Python does, not U+0130 or
#: U+0131).
_WORD = r"0-9A-Za-z_\x{130}\x{131}"
_ALNUM = r"0-9A-Za-z\x{130}\x{131}"
#: Before a name: start of text, or a character that is not a word character or a hyphen.
_BEFORE = rf"(?s)(?i)^((?:.*?[^{_WORD}-])??)("
#: After a name: end of text, a character that is not a word character or a hyphen, or a
#: hyphen not followed by a letter or digit.
_AFTER = rf")(?:$|[^{_WORD}-]|-(?:$|[^{_ALNUM}]))"

#: Letters Python's IGNORECASE matches with each other and RE2's ``(?i)`` does not (found by
#: comparing the two on every character tied to another by a case mapping): in a name, each is
#: written as the class of its group.
_FOLDS = ("iI\u0131\u0130", "\u0390\u1fd3", "\u03b0\u1fe3", "\ufb05\ufb06")

_RANKS = ("case.opened", "case.transferred", "case.note", "case.responded", "case.resolved",
          "case.reopened")


def _rank(column: str) -> str:
    whens = " ".join(f"WHEN '{kind}' THEN {rank}" for rank, kind in enumerate(_RANKS))
    return f"CASE {column} {whens} ELSE 9 END"


@functools.cache
def _unicode_tables() -> tuple[str, list[tuple[str, str]]]:
    """Python's letters and digits as an RE2 class body, and the upper cases of those whose
    ``upper()`` differs from themselves (``str.upper`` maps each character on its
    own, so a key is the concatenation of its characters' upper cases)."""
    ranges: list[list[int]] = []
    uppers: list[tuple[str, str]] = []
    for code in range(0x110000):
        char = chr(code)
        if not char.isalnum():
            continue
        if code < 0x80:
            pass  # the class below starts with ASCII's letters and digits
        elif ranges and ranges[-1][1] == code - 1:
            ranges[-1][1] = code
        else:
            ranges.append([code, code])
        upper = char.upper()
        if upper != char:
            uppers.append((char, upper))
    body = "".join(rf"\x{{{a:x}}}" if a == b else rf"\x{{{a:x}}}-\x{{{b:x}}}" for a, b in ranges)
    return "0-9A-Za-z" + body, uppers


def _literal(escaped: str) -> str:
    """SQL for an escaped name whose letters of :data:`_FOLDS` match their whole group."""
    for group in _FOLDS:
        escaped = f"regexp_replace({escaped}, '[{group}]', '[{group}]', 'g')"
    return escaped


def _symbol(i: int) -> str:
    """The Crockford symbol of bits ``5i`` to ``5i + 4`` of ``n``."""
    return f"substr('{CROCKFORD}', ((n >> {5 * i}) & 31)::INTEGER + 1, 1)"


def _macros() -> list[str]:
    ns = NAMESPACE.hex
    return [
        # str(value) of a JSON value as Python gives it (None for null or absent); numbers
        # other than integers and containers keep their JSON text.
        """CREATE OR REPLACE TEMP MACRO service_py_str(j) AS CASE json_type(j)
            WHEN 'VARCHAR' THEN j->>'$' WHEN 'NULL' THEN NULL
            WHEN 'BOOLEAN' THEN CASE WHEN j::BOOLEAN THEN 'True' ELSE 'False' END
            ELSE j::VARCHAR END""",
        # bool(value) of a JSON value as Python gives it (False for null or absent).
        """CREATE OR REPLACE TEMP MACRO service_truthy(j) AS CASE json_type(j)
            WHEN 'VARCHAR' THEN (j->>'$') <> '' WHEN 'BOOLEAN' THEN j::BOOLEAN
            WHEN 'BIGINT' THEN j::BIGINT <> 0 WHEN 'UBIGINT' THEN j::UBIGINT <> 0
            WHEN 'DOUBLE' THEN j::DOUBLE <> 0 WHEN 'ARRAY' THEN json_array_length(j) > 0
            WHEN 'OBJECT' THEN len(json_keys(j)) > 0 ELSE false END""",
        # float(value): a number, a boolean, or a text Python's float() reads.
        """CREATE OR REPLACE TEMP MACRO service_float(j) AS CASE json_type(j)
            WHEN 'NULL' THEN NULL WHEN 'BOOLEAN' THEN j::BOOLEAN::INTEGER::DOUBLE
            WHEN 'VARCHAR' THEN TRY_CAST(trim(j->>'$') AS DOUBLE) ELSE j::DOUBLE END""",
        # int(data.get("warranty_months", 24)).
        """CREATE OR REPLACE TEMP MACRO service_months(d) AS CASE json_type(d, 'warranty_months')
            WHEN 'VARCHAR' THEN TRY_CAST(trim(d->>'warranty_months') AS INTEGER)
            WHEN 'BOOLEAN' THEN (d->'warranty_months')::BOOLEAN::INTEGER
            ELSE coalesce(TRY_CAST(d->'warranty_months' AS INTEGER), 24) END""",
        # projections.cases.tracking_key: uuid5(NAMESPACE, "case:" + id), SHA-256 of its 16
        # bytes, the first 50 bits in Crockford base32, two groups of five.
        """CREATE OR REPLACE TEMP MACRO service_uuid5_hex(sha) AS
            substr(sha, 1, 12) || '5' || substr(sha, 14, 3)
            || substr('89ab', ((strpos('0123456789abcdef', substr(sha, 17, 1)) - 1) & 3) + 1, 1)
            || substr(sha, 18, 15)""",
        f"""CREATE OR REPLACE TEMP MACRO service_key_number(case_id) AS
            ('0x' || substr(sha256(unhex(service_uuid5_hex(
                                sha1(unhex('{ns}') || encode('case:' || case_id))))), 1, 16))::UBIGINT
            >> 14""",
        # The key of a number from service_key_number (10 symbols of 5 bits, the first first).
        f"""CREATE OR REPLACE TEMP MACRO service_key_of_number(n) AS
            {' || '.join(_symbol(i) for i in range(9, 4, -1))} || '-'
            || {' || '.join(_symbol(i) for i in range(4, -1, -1))}""",
        """CREATE OR REPLACE TEMP MACRO service_tracking_key(case_id) AS
            service_key_of_number(service_key_number(case_id))""",
        # inbox._pattern: a name as a whole word, case-insensitively; a loose name's hyphens
        # may be a space (Python's \\s) or left out.
        f"""CREATE OR REPLACE TEMP MACRO service_literal(name) AS {_literal("regexp_escape(name)")}""",
        f"""CREATE OR REPLACE TEMP MACRO service_pattern(name) AS
            '{_BEFORE}' || service_literal(name) || '{_AFTER}'""",
        f"""CREATE OR REPLACE TEMP MACRO service_loose_pattern(name) AS
            '{_BEFORE}' || array_to_string(list_transform(string_split(name, '-'),
                                                          lambda p: service_literal(p)), '[-{_SPACE}]?')
            || '{_AFTER}'""",
    ]


def define_macros(con: duckdb.DuckDBPyConnection) -> None:
    """The macros, on this connection (temporary: once per connection, and again after a
    rolled-back transaction took them away)."""
    last = _macros()[-1].split("MACRO ", 1)[1].split("(", 1)[0]
    if not con.execute("SELECT count(*) FROM duckdb_functions() WHERE function_name = ? "
                       "AND schema_name = 'main' AND database_name = 'temp'", [last]).fetchall()[0][0]:
        for macro in _macros():
            con.execute(macro)


def _facts() -> str:
    """This transaction's touched customers' facts these tables read, erased ones left out."""
    types = ", ".join(f"'{t}'" for t in _TYPES)
    return f"""CREATE OR REPLACE TEMP TABLE service_facts AS
        SELECT e.customer_id, e.event_id, e.type, e.occurred_at, e.occurred_local, e.recorded_at,
               e.source, e.source_id, e.department, e.agent, e.case_id, e.data
        FROM events e SEMI JOIN touched t ON e.customer_id = t.customer_id
        WHERE e.data IS NOT NULL AND (e.type IN ({types}) OR starts_with(e.type, 'case.'))
          AND e.customer_id NOT IN (
              SELECT f.customer_id FROM events f SEMI JOIN touched t ON f.customer_id = t.customer_id
              WHERE f.type = 'customer.forgotten')"""


_SERIALS = [
    """CREATE OR REPLACE TEMP TABLE service_serials AS
        SELECT DISTINCT service_py_str(data->'serial') AS serial, NULL::VARCHAR AS serial_key
        FROM service_facts
        WHERE type IN ('purchase.recorded', 'warranty.claim_filed')
          AND service_py_str(data->'serial') IS NOT NULL""",
    """UPDATE service_serials
        SET serial_key = nullif(upper(regexp_replace(serial, '[^0-9A-Za-z]', '', 'g')), '')
        WHERE strlen(serial) = length(serial)""",
]


def _unicode_serials(con: duckdb.DuckDBPyConnection) -> None:
    """The keys of the serials beyond ASCII (when there are any): their letters and digits
    kept by class, each upper-cased by table (``service_upper``)."""
    if not con.execute("SELECT count(*) FROM service_serials WHERE strlen(serial) <> length(serial)"
                       ).fetchall()[0][0]:
        return
    alnum, uppers = _unicode_tables()
    con.execute("CREATE OR REPLACE TEMP TABLE service_upper AS "
                "SELECT unnest(?::VARCHAR[]) AS ch, unnest(?::VARCHAR[]) AS upper",
                [[c for c, _ in uppers], [u for _, u in uppers]])
    con.execute(f"""UPDATE service_serials SET serial_key = k.serial_key FROM (
        SELECT serial, nullif(string_agg(coalesce(u.upper, c.ch), '' ORDER BY c.i), '') AS serial_key
        FROM (SELECT serial, unnest(chars) AS ch, generate_subscripts(chars, 1) AS i
              FROM (SELECT serial, string_split(regexp_replace(serial, '[^{alnum}]', '', 'g'), '') AS chars
                    FROM service_serials WHERE strlen(serial) <> length(serial))) c
        LEFT JOIN service_upper u ON u.ch = c.ch
        GROUP BY serial) k
        WHERE service_serials.serial = k.serial""")
    con.execute("DROP TABLE service_upper")


def serial_keys(con: duckdb.DuckDBPyConnection) -> None:
    """``service_serials``: each distinct serial of ``service_facts`` with its key
    (warranty.serial_key)."""
    for statement in _SERIALS:
        con.execute(statement)
    _unicode_serials(con)


_MENTIONS = f"""INSERT INTO mentions
WITH mention AS (
    SELECT * FROM service_facts WHERE type = 'social.mention'
), reply AS (
    SELECT *, coalesce(service_py_str(data->'in_reply_to'), 'None') AS named
    FROM service_facts WHERE type = 'social.reply'
), answer AS (  -- inbox.first_replies: the first reply naming it, and how many do
    SELECT m.customer_id, m.event_id AS mention_event, r.event_id, r.source_id, r.occurred_at,
           r.occurred_local, r.department, r.agent, r.data->>'text' AS text,
           count(*) OVER w AS replies, row_number() OVER (w ORDER BY r.occurred_at, r.event_id) AS n
    FROM mention m JOIN reply r ON r.customer_id = m.customer_id
                               AND (r.named = m.event_id OR r.named = m.source_id)
    WINDOW w AS (PARTITION BY m.customer_id, m.event_id)
), case_fact AS (
    SELECT customer_id, case_id, occurred_at, type, {_rank('type')} AS rank, event_id
    FROM service_facts WHERE starts_with(type, 'case.') AND case_id IS NOT NULL AND case_id <> ''
), case_now AS (  -- each case's status after its last fact (inbox.case_timelines)
    SELECT customer_id, case_id,
           coalesce(arg_max(CASE type WHEN 'case.resolved' THEN 'resolved' ELSE 'open' END,
                            (occurred_at, rank, event_id))
                        FILTER (WHERE type IN ('case.resolved', 'case.reopened')), 'open') AS status
    FROM case_fact GROUP BY customer_id, case_id
), open_then AS (  -- the cases open at each mention's instant (inbox.status_at)
    SELECT m.customer_id, m.event_id AS mention_event, c.case_id
    FROM mention m JOIN case_fact c ON c.customer_id = m.customer_id AND c.occurred_at <= m.occurred_at
    GROUP BY m.customer_id, m.event_id, c.case_id
    HAVING coalesce(arg_max(CASE c.type WHEN 'case.resolved' THEN 'resolved' ELSE 'open' END,
                            (c.occurred_at, c.rank, c.event_id))
                        FILTER (WHERE c.type IN ('case.resolved', 'case.reopened')), 'open') = 'open'
), linkable AS (
    SELECT DISTINCT case_id FROM open_then
), names AS (  -- how a case may be named: its id, and its tracking key when that differs
    SELECT case_id, service_pattern(case_id) AS pattern FROM linkable
    UNION ALL
    SELECT case_id, service_loose_pattern(key) FROM (
        SELECT case_id, service_key_of_number(n) AS key
        FROM (SELECT case_id, service_key_number(case_id) AS n FROM linkable))
    WHERE key <> case_id
), found AS (
    SELECT customer_id, mention_event, case_id, length(regexp_extract(text, pattern, 1)) AS start,
           length(regexp_extract(text, pattern, 2)) AS size
    FROM (SELECT o.customer_id, o.mention_event, o.case_id, coalesce(m.data->>'text', '') AS text,
                 n.pattern
          FROM open_then o
          JOIN mention m ON m.customer_id = o.customer_id AND m.event_id = o.mention_event
          JOIN names n ON n.case_id = o.case_id)
), linked AS (  -- inbox.linked_case: data.case_id when open, else the first named
    SELECT m.customer_id, m.event_id AS mention_event,
           coalesce(max(o.case_id) FILTER (WHERE o.case_id = m.case_id),
                    arg_min(f.case_id, (f.start, -f.size, f.case_id)) FILTER (WHERE f.size > 0)) AS case_id
    FROM mention m
    LEFT JOIN open_then o ON o.customer_id = m.customer_id AND o.mention_event = m.event_id
                         AND o.case_id = m.case_id
    LEFT JOIN found f ON f.customer_id = m.customer_id AND f.mention_event = m.event_id
    GROUP BY m.customer_id, m.event_id
)
SELECT m.customer_id, m.source_id, m.event_id, m.data->>'network', m.data->>'handle',
       m.data->>'text', m.occurred_at, m.recorded_at, a.occurred_at, a.department, a.agent,
       CASE WHEN a.event_id IS NULL THEN NULL
            WHEN a.occurred_at <= m.occurred_at THEN 0.0
            WHEN epoch_us(a.occurred_at) - epoch_us(m.occurred_at) < 9007199254740992
                THEN (epoch_us(a.occurred_at) - epoch_us(m.occurred_at))::DOUBLE / 1000000
            ELSE ((epoch_us(a.occurred_at) - epoch_us(m.occurred_at)) // 1000000)::DOUBLE
                 + ((epoch_us(a.occurred_at) - epoch_us(m.occurred_at)) % 1000000)::DOUBLE / 1000000
       END,
       l.case_id, c.status, m.source, service_py_str(m.data->'to'), service_truthy(m.data->'to'),
       m.occurred_local, m.department, m.agent, a.event_id, a.source_id, a.occurred_local, a.text,
       coalesce(a.replies, 0)
FROM mention m
LEFT JOIN answer a ON a.customer_id = m.customer_id AND a.mention_event = m.event_id AND a.n = 1
LEFT JOIN linked l ON l.customer_id = m.customer_id AND l.mention_event = m.event_id
LEFT JOIN case_now c ON c.customer_id = m.customer_id AND c.case_id = l.case_id"""


_PRODUCTS = """INSERT INTO products
SELECT p.customer_id, k.serial, p.data->>'product', p.data->>'store', p.occurred_at,
       service_months(p.data),
       (TRY_CAST(substr(p.occurred_local, 1, 10) AS DATE) + to_months(service_months(p.data)))::DATE,
       p.data->>'invoice', service_float(p.data->'price'), k.serial_key,
       TRY_CAST(substr(p.occurred_local, 1, 10) AS DATE), p.occurred_local, p.event_id, p.source_id,
       p.source, p.department, p.agent
FROM service_facts p
LEFT JOIN service_serials k ON k.serial = service_py_str(p.data->'serial')
WHERE p.type = 'purchase.recorded'"""


_CLAIMS = """INSERT INTO warranty_claims
WITH claim_fact AS (
    SELECT *, service_py_str(data->'claim_id') AS claim_id FROM service_facts
    WHERE type IN ('warranty.claim_filed', 'warranty.claim_decided')
), filing AS (  -- the first filing of each claim
    SELECT * FROM claim_fact WHERE type = 'warranty.claim_filed'
    QUALIFY row_number() OVER (PARTITION BY customer_id, claim_id ORDER BY occurred_at, event_id) = 1
), decision AS (  -- the latest decision
    SELECT * FROM claim_fact WHERE type = 'warranty.claim_decided'
    QUALIFY row_number() OVER (PARTITION BY customer_id, claim_id
                               ORDER BY occurred_at DESC, event_id DESC) = 1
), purchase AS (
    SELECT p.*, k.serial_key,
           (TRY_CAST(substr(p.occurred_local, 1, 10) AS DATE) + to_months(service_months(p.data)))::DATE
               AS ends
    FROM service_facts p JOIN service_serials k ON k.serial = service_py_str(p.data->'serial')
    WHERE p.type = 'purchase.recorded' AND k.serial_key IS NOT NULL
), judged AS (  -- warranty.judge_claims: the latest purchase of the serial at or before the
                -- filing, else the earliest (filed before purchase)
    SELECT f.customer_id, f.claim_id,
           coalesce(arg_max(p.event_id, (p.occurred_at, p.event_id))
                        FILTER (WHERE (p.occurred_at, p.event_id) <= (f.occurred_at, f.event_id)),
                    arg_min(p.event_id, (p.occurred_at, p.event_id))) AS purchase_event,
           count(*) FILTER (WHERE (p.occurred_at, p.event_id) <= (f.occurred_at, f.event_id)) = 0
               AS before_purchase
    FROM filing f
    JOIN service_serials k ON k.serial = service_py_str(f.data->'serial')
    JOIN purchase p ON p.customer_id = f.customer_id AND p.serial_key = k.serial_key
    GROUP BY f.customer_id, f.claim_id
), claim AS (
    SELECT DISTINCT customer_id, claim_id FROM claim_fact
), joined AS (
    SELECT c.customer_id, c.claim_id, f.event_id AS filed_event_id, f.occurred_at AS filed_at,
           f.occurred_local AS filed_local, f.department AS filed_department, f.agent AS filed_agent,
           service_py_str(f.data->'serial') AS serial, f.data->>'issue' AS issue,
           d.event_id AS decided_event_id, d.occurred_at AS decided_at, d.occurred_local AS decided_local,
           d.department AS decided_department, d.agent AS decided_agent, d.data->>'reason' AS reason,
           service_truthy(d.data->'approved') AS approved,
           p.event_id AS purchase_event_id, p.occurred_at AS purchased_at, p.data->>'product' AS product,
           p.ends, j.before_purchase,
           substr(f.occurred_local, 1, 10) <= strftime(p.ends, '%Y-%m-%d') AS in_warranty
    FROM claim c
    LEFT JOIN filing f ON f.customer_id = c.customer_id AND f.claim_id = c.claim_id
    LEFT JOIN decision d ON d.customer_id = c.customer_id AND d.claim_id = c.claim_id
    LEFT JOIN judged j ON j.customer_id = c.customer_id AND j.claim_id = c.claim_id
    LEFT JOIN purchase p ON p.customer_id = c.customer_id AND p.event_id = j.purchase_event
)
SELECT x.customer_id, x.claim_id, x.serial, x.filed_at,
       CASE WHEN x.decided_event_id IS NULL THEN 'open' WHEN x.approved THEN 'approved' ELSE 'refused' END,
       CASE WHEN x.filed_event_id IS NULL THEN ['not_filed']
            WHEN x.purchase_event_id IS NULL THEN ['unknown_product']
            ELSE list_filter(['filed_before_purchase', 'out_of_warranty'],
                             lambda flag: (flag = 'filed_before_purchase' AND x.before_purchase)
                                          OR (flag = 'out_of_warranty' AND NOT x.in_warranty))
       END,
       x.ends, x.decided_at, CASE WHEN x.decided_event_id IS NOT NULL THEN x.approved END,
       k.serial_key, x.issue, x.in_warranty, x.product, x.purchased_at, x.purchase_event_id,
       x.filed_local, x.filed_event_id, x.filed_department, x.filed_agent, x.decided_local,
       x.decided_event_id, x.decided_department, x.decided_agent, x.reason
FROM joined x LEFT JOIN service_serials k ON k.serial = x.serial"""


def refresh(con: duckdb.DuckDBPyConnection, rules: Rules) -> None:
    """Rewrite the ``mentions``, ``products`` and ``warranty_claims`` rows of every customer in
    the ``touched`` table from their ``events`` rows (``rules``: none of these tables depends on
    the configured rules; taken for the common contract)."""
    define_macros(con)
    for table in TABLES:
        con.execute(f"DELETE FROM {table} WHERE customer_id IN (SELECT customer_id FROM touched)")
    con.execute(_facts())
    serial_keys(con)
    for statement in (_MENTIONS, _PRODUCTS, _CLAIMS):
        con.execute(statement)
    for temporary in ("service_facts", "service_serials"):
        con.execute(f"DROP TABLE {temporary}")
