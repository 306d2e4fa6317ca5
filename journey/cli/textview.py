"""The customer view as text a person in a store or a call centre can read at a glance, and
:func:`printable`, which every human-readable output passes its text through."""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable
from datetime import UTC, date, datetime
from typing import Any

from domain.contact_policy import department_words

#: Characters that reorder what a terminal shows without being seen themselves (Unicode bidi
#: embeddings, overrides and isolates, and the marks that act like them).
BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e"
                          "\u2066\u2067\u2068\u2069")
#: Categories :func:`printable` escapes: controls, line and paragraph separators. Other
#: invisible formatting characters (the zero-width joiner of emoji sequences) stay.
_CONTROLS = frozenset({"Cc", "Zl", "Zp"})
#: The controls people know by a shorter name.
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}


def printable(text: str) -> str:
    """``text`` with every character that could act on a terminal shown as an escape instead.

    Names, notes, tweets and every other text in a fact come from outside: an ESC starts a
    sequence that can clear the screen, recolour, move the cursor or retitle the window; other
    C0 and C1 controls (a CR or an 8-bit CSI included) do the like; a bidi override makes
    "OBJECTION" read backwards; a line or paragraph separator breaks a line the reader takes
    for one. Each is written as a Python-style escape (``\\x1b``, ``\\u202e``), so it is seen
    and does nothing (a backslash already in the text stays as it is). One line in, one line
    out: a newline in the text is escaped too. ``--json`` output never comes here: JSON
    escapes control characters itself and must stay exact.
    """
    if text.isprintable():  # the common case: nothing to escape (spaces are printable)
        return text
    return "".join(_escaped(c) for c in text)


def _escaped(c: str) -> str:
    if c.isprintable() or (c not in BIDI_CONTROLS and unicodedata.category(c) not in _CONTROLS):
        return c
    code = ord(c)
    return _NAMED.get(c) or (f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")


def printable_lines(lines: Iterable[str]) -> str:
    """Lines (each one line of output) as printable text, joined by newlines."""
    return "\n".join(printable(line) for line in lines)


def say(*lines: str) -> None:
    """Print each of ``lines`` as one printable line on standard output."""
    print(printable_lines(lines))


ICONS = {"phone": "☎", "sms": "✉", "email": "@", "letter": "✉", "social": "#", "store": "⌂"}


def when(text: str | None) -> str:
    """``2026-01-09T22:00:00+01:00`` -> ``2026-01-09 22:00 +01:00`` (local time as recorded)."""
    if not text:
        return "-"
    if len(text) == 10:
        return text
    return f"{text[:10]} {text[11:16]} {text[-6:]}" if text[-6] in "+-" else f"{text[:10]} {text[11:16]}"


def plural(n: int, word: str, many: str | None = None) -> str:
    """``plural(1, "key")`` -> "1 key", ``plural(2, "key")`` -> "2 keys"."""
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def _by(item: dict[str, Any]) -> str:
    """Who recorded it, as people read it: "customer care (CC-3)", else the source system."""
    department, agent = item.get("department"), item.get("agent")
    if department and agent:
        return f"{department_words(department)} ({agent})"
    if department or agent:
        return department_words(department) if department else str(agent)
    return f"from {item.get('source') or 'an unnamed source'}"


def describe(kind: str, data: dict[str, Any]) -> str:
    """One line saying what a fact was, in words; an erased fact (its person forgotten) only
    says its type, because its personal fields are gone."""
    try:
        return _describe(kind, data)
    except (KeyError, TypeError):
        return f"{kind} (details erased)"


def _describe(kind: str, data: dict[str, Any]) -> str:
    d = data
    match kind:
        case "call.outbound":
            bits = [d.get("purpose", ""), d.get("campaign"), d.get("outcome")]
            return "outbound call " + " · ".join(b for b in bits if b)
        case "call.inbound":
            return "inbound call" + (f": {d['reason']}" if d.get("reason") else "")
        case "social.mention":
            return f"{d.get('network')} mention: “{d.get('text', '')[:60]}”"
        case "social.reply":
            return f"reply: “{d.get('text', '')[:60]}”"
        case "store.visit":
            return f"visit to {d.get('store')}" + (f": {d['reason']}" if d.get("reason") else "")
        case "email.sent" | "letter.sent" | "sms.sent" | "email.received":
            return f"{kind.replace('.', ' ')} ({d.get('purpose', '-')}) {d.get('subject') or ''}".strip()
        case "customer.registered":
            return f"registered as {d.get('name')}"
        case "address.changed":
            a = d["address"]
            where = f"{a.get('street')} {a.get('number') or ''}, {a.get('postal_code')} {a.get('city')}"
            return f"address → {where}" + (f" ({d['reason']})" if d.get("reason") else "")
        case "consent.given" | "consent.withdrawn":
            return f"{kind.split('.')[1]} consent {d['channel']}/{d['purpose']}"
        case "objection.recorded":
            channels = _channels(d.get("channels", "all"))
            return f"OBJECTION to {d.get('purpose', 'commercial')} contact on {channels}"
        case "purchase.recorded":
            return f"bought {d.get('product')}" + (f" (serial {d['serial']})" if d.get("serial") else "")
        case "warranty.claim_filed":
            return f"warranty claim {d['claim_id']} for {d['serial']}: {d.get('issue') or ''}".strip()
        case "warranty.claim_decided":
            return f"warranty claim {d['claim_id']} {'approved' if d['approved'] else 'refused'}"
        case "promise.made":
            return f"promised “{d['what']}” by {d['due_by']}"
        case "promise.kept" | "promise.broken":
            return f"promise {d['promise_id']} {kind.split('.')[1]}"
        case "identity.linked":
            return f"linked {d['kind']} {d['value']}"
        case "identity.unlinked":
            return f"{d['kind']} {d['value']} moved to another customer"
        case "customer.merged":
            return f"merged record {d['from'][:8]}… ({d.get('reason', '')})"
        case "contact.decided":
            verdict = "allowed" if d.get("allowed") else "DENIED"
            codes = ", ".join(r.get("code", "?") for r in d.get("reasons") or [])
            return f"asked may we contact ({d.get('channel')}/{d.get('purpose')}): {verdict}" + (
                f" [{codes}]" if codes else "")
        case "contract.started" | "contract.ended":
            return f"contract {d['contract_id']} {kind.split('.')[1]} ({d.get('service') or '-'})"
    if kind.startswith("case."):
        rest = {k: v for k, v in d.items() if k != "case_id"}
        detail = " ".join(str(v) for v in rest.values())[:70]
        return f"case {d['case_id']} {kind.split('.')[1]}" + (f": {detail}" if detail else "")
    return kind


def _channels(channels: Any) -> str:
    return "all channels" if channels == "all" else ", ".join(channels)


def render_text(view: dict[str, Any], timeline: list[dict[str, Any]], today: date | None = None) -> str:
    today = today or datetime.now(UTC).date()
    out: list[str] = []
    if view.get("forgotten"):
        counts = view.get("counts", {})
        channels = ", ".join(f"{k} {v}" for k, v in sorted(counts.get("by_channel", {}).items())) or "-"
        return printable_lines([
            f"FORGOTTEN (GDPR art. 17) on {when(view.get('forgotten_at'))}",
            f"ledger id {view['customer_id']}",
            f"{counts.get('events', 0)} events kept without personal data; by channel: {channels}",
        ])
    name = view.get("name") or "(unregistered prospect)"
    number = view.get("customer_number")
    head = f"{name}  ·  {view['kind']}" + (f" {number}" if number else "")
    out += [head, f"ledger id {view['customer_id']}", ""]
    idents = " · ".join(f"{i['kind']} {i['value']}" for i in view["identities"]) or "-"
    out.append(f"Identities   {idents}")
    contact = view["contact"]
    address = contact["address"]
    if address:
        out.append(f"Address      {address.get('street')} {address.get('number') or ''}, "
                   f"{address.get('postal_code')} {address.get('city')}")
    for k in ("phone", "email", "twitter"):
        if contact[k]:
            out.append(f"{k.capitalize():<13}{contact[k]}")
    changes = [c for c in view["contact_history"] if c["change"] != "customer.registered"]
    if changes:
        out.append("Contact changes")
        for c in changes:
            value = c["value"]
            shown = (f"{value.get('street')} {value.get('number') or ''}, {value.get('city')}"
                     if isinstance(value, dict) else value)
            out.append(f"  {when(c['occurred_at'])}  {c['field']} → {shown}  by {_by(c)}"
                       + (f" ({c['reason']})" if c.get("reason") else ""))
    out.append("")
    out.append("Consent and objections")
    active = [o for o in view["objections"] if o["active"]]
    for o in view["objections"]:
        flag = "ACTIVE" if o["active"] else "lifted by later consent"
        out.append(f"  ✗ {when(o['occurred_at'])}  objection to {o['purpose']} contact on "
                   f"{_channels(o['channels'])}  [{flag}]  by {_by(o)}")
    for c in view["consents"]:
        mark = "✓" if c["state"] == "given" else "✗"
        out.append(f"  {mark} {c['channel']}/{c['purpose']} {c['state']} {when(c['occurred_at'])}"
                   f" by {_by(c)}")
    if not view["objections"] and not view["consents"]:
        out.append("  none recorded")
    if view["products"]:
        out += ["", "Products (warranty from purchase history; no paper invoice needed)"]
        for p in view["products"]:
            ends = p["warranty_ends"]
            state = "in warranty" if ends >= today.isoformat() else "warranty expired"
            out.append(f"  {p['product']} {('serial ' + p['serial']) if p.get('serial') else ''} "
                       f"bought {p['purchased_at'][:10]}{(' at ' + p['store']) if p.get('store') else ''}"
                       f" · warranty until {ends} ({state})")
    if view["cases"]:
        out += ["", "Cases"]
        for c in view["cases"]:
            out.append(f"  {c['case_id']} {c['kind'] or '?'} “{c.get('subject') or ''}” {c['status'].upper()}"
                       f" · opened {when(c['opened_at'])} · {plural(c['transfers'], 'transfer')}"
                       f" · {' → '.join(c['departments']) or '-'}")
    if view["promises"]:
        out += ["", "Promises (one department's promise is the company's promise)"]
        for p in view["promises"]:
            late = "  OVERDUE" if p.get("overdue") else ""
            made = p.get("made", {})
            out.append(f"  {p['promise_id']} “{p.get('what', '?')}” due {p.get('due_by', '?')} "
                       f"{p['status'].upper()}{late} by {_by(made) if made else '?'}")
    unanswered = view["social"]["unanswered"]
    if unanswered:
        out += ["", f"Unanswered social mentions: {len(unanswered)}"]
        for m in unanswered:
            out.append(f"  {when(m['occurred_at'])} {m['network']}: “{m['text'][:60]}”")
    out += ["", f"Timeline ({len(timeline)} events across "
            f"{len(view['counts']['by_department'])} departments, by when they happened)"]
    if view.get("quarantined"):  # facts the projection could not handle: not in this view
        out.append(f"  !! {plural(len(view['quarantined']), 'stored fact')} quarantined, not shown "
                   f"(positions {', '.join(map(str, view['quarantined']))}: journey quarantine)")
    for row in timeline:
        icon = ICONS.get(row.get("channel") or "", "·")
        late = "  (recorded late)" if row.get("late") else ""
        dept = row.get("department") or row.get("source")
        what = describe(row["type"], row["data"])
        out.append(f"  {when(row['occurred_at'])}  {icon} {dept:<22} {what}{late}")
    if active:
        out.insert(3, f"!! Objection on record: no {active[-1]['purpose']} contact "
                      f"({_channels(active[-1]['channels'])}) since {when(active[-1]['occurred_at'])}")
    return printable_lines(out)
