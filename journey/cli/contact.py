"""``journey can-contact``, ``journey violations`` and ``journey exclusions import``.

The contact policy (domain/contact_policy.py, docs/contact-policy.md) asked from the command
line: may we contact this person now, which past contacts broke the policy, and the exclusion
lists the policy reads. Exit codes of can-contact: 0 allowed, 4 denied, 3 unknown customer,
2 bad usage (a bad reference, instant or policy file).
"""

from __future__ import annotations

import argparse
import itertools
import sys
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from domain import catalogue, identity
from domain.contact_policy import (
    CHANNELS,
    CONTACT_TYPES,
    FACT_TYPES,
    PURPOSES,
    ContactHistory,
    Decision,
    Exclusion,
    Policy,
    PolicyBook,
    decide,
)
from domain.errors import InvalidFact
from journey.bootstrap import Journey
from journey.cli.output import dump
from journey.cli.textview import say
from journey.exclusions import FILENAME, ExclusionStore, entries_in, hashes_of
from journey.policy import PolicyError, load_policies
from journey.references import reference_key
from projections.duckdb_store import ProjectionStore

EXIT_DENIED = 4
#: Fact types the policy reads (everything else in a history is irrelevant to it): the domain's
#: own list, so a rule that reads a new type (an address change) gets it from every query.
POLICY_TYPES = tuple(sorted(FACT_TYPES))



def _when(text: str) -> str:
    return f"{text[:10]} {text[11:16]} {text[-6:]}" if text[-6] in "+-" else f"{text[:10]} {text[11:16]}"


def _exclusions(journey: Journey, keys: Iterable[str]) -> list[Exclusion]:
    return entries_in(journey.settings.data_dir, keys)


def _identity_keys(store: ProjectionStore, customer_id: str) -> list[str]:
    rows = store.con.execute("SELECT identity FROM identities WHERE customer_id = ?",
                             [customer_id]).fetchall()
    return [str(r[0]) for r in rows]


def _head(journey: Journey) -> int:
    return int(journey.app.recorder.max_notification_id() or 0)


class RecordError(RuntimeError):
    pass


def _reference_for(store: ProjectionStore, customer_id: str) -> dict[str, str]:
    """How the decision names its customer: their customer number, else an identity they own.

    Not ``{"customer_id": <ledger uuid>}``: ledger/writer.py's prefetch reads such a reference
    as a customer number and then clashes with the existing stream (see the report), and the
    customer view would learn the uuid as a new ``customer_id`` identity.
    """
    keys = _identity_keys(store, customer_id)
    for kind in identity.RESOLUTION_ORDER:
        for key in sorted(keys):
            if key.startswith(kind + ":"):
                return {kind: key.split(":", 1)[1]}
    return {"customer_id": customer_id}


def _record(journey: Journey, customer_id: str, args: argparse.Namespace, at: datetime,
            decision: Decision) -> str:
    """Record the decision as a ``contact.decided`` fact in the customer's stream."""
    doc = decision.to_json()
    data: dict[str, Any] = {"channel": args.channel, "purpose": args.purpose, "at": at.isoformat(),
                            "allowed": decision.allowed, "reasons": doc["reasons"],
                            "policy_version": decision.policy_version}
    if args.campaign:
        data["campaign"] = args.campaign
    if decision.as_of_position is not None:
        data["as_of_position"] = decision.as_of_position
    fact: dict[str, Any] = {
        "type": "contact.decided",
        "v": catalogue.TYPES["contact.decided"].version,
        "id": str(uuid.uuid4()),
        "source": "contact-policy",
        "customer": _reference_for(journey.projections, customer_id),
        "occurred_at": datetime.now(UTC).isoformat(),
        "data": data,
    }
    result = journey.ledger.append([(1, fact)])
    if result.rejected:
        raise RecordError(f"the decision was not recorded: {result.rejected[0].reason}")
    if fact.get("customer_uuid") != customer_id:
        raise RecordError(f"the decision was recorded for {fact.get('customer_uuid')}, not "
                          f"{customer_id}: an identity moved meanwhile")
    journey.project()
    return str(fact["event_id"])


class ContactQuestionError(Exception):
    """The question cannot be asked: a bad reference, instant, channel, purpose or policy file."""


class UnknownCustomer(ContactQuestionError):
    """Nobody is known by the reference."""


@dataclass(frozen=True, slots=True)
class ContactAnswer:
    customer_id: str
    at: datetime
    decision: Decision


def contact_decision(journey: Journey, ref: str, *, channel: str, purpose: str, at: str | None = None,
                     campaign: str | None = None, policy: str | None = None) -> ContactAnswer:
    """The decision ``journey can-contact`` prints, for any caller (the CLI, the HTTP API).

    One function so that the command line and the API can never disagree on whether a person
    may be contacted. Raises :class:`UnknownCustomer` or :class:`ContactQuestionError` with the
    message the CLI prints.
    """
    if channel not in CHANNELS:
        raise ContactQuestionError(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    if purpose not in PURPOSES:
        raise ContactQuestionError(f"purpose {purpose!r} is not one of {', '.join(PURPOSES)}")
    try:
        key = reference_key(ref)
        instant = (catalogue.parse_instant(at, "--at") if at else
                   datetime.now(UTC).replace(microsecond=0))
    except InvalidFact as error:
        raise ContactQuestionError(str(error)) from None
    try:
        in_force = load_policies(policy).in_force(instant)
    except PolicyError as error:
        raise ContactQuestionError(str(error)) from None
    journey.project()
    store = journey.projections
    customer_id = store.resolve(key)
    if customer_id is None:
        raise UnknownCustomer(f"nobody known as {ref!r} ({key})")
    history = store.timeline(customer_id)
    keys = _identity_keys(store, customer_id)
    decision = decide(history, channel=channel, purpose=purpose, at=instant,
                      campaign=campaign, policy=in_force, exclusions=_exclusions(journey, keys),
                      position=store.position(), head=_head(journey), identities=keys)
    return ContactAnswer(customer_id, instant, decision)


def cmd_can_contact(args: argparse.Namespace, journey: Journey) -> int:
    try:
        answer = contact_decision(journey, args.ref, channel=args.channel, purpose=args.purpose,
                                  at=args.at, campaign=args.campaign, policy=args.policy)
    except UnknownCustomer as error:
        print(f"journey can-contact: {error}", file=sys.stderr)
        return 3
    except ContactQuestionError as error:
        print(f"journey can-contact: {error}", file=sys.stderr)
        return 2
    customer_id, at, decision = answer.customer_id, answer.at, answer.decision
    if args.record:
        try:
            event_id = _record(journey, customer_id, args, at, decision)
        except RecordError as error:
            print(f"journey can-contact: {error}", file=sys.stderr)
            return 1
        print(f"journey can-contact: decision recorded as contact.decided {event_id}", file=sys.stderr)
    if args.json:
        dump(decision.to_json())
    else:
        verdict = "ALLOWED" if decision.allowed else "DENIED"
        campaign = f", campaign {args.campaign}" if args.campaign else ""
        say(f"{verdict}: {args.purpose} contact by {args.channel} with {args.ref} at "
            f"{_when(at.isoformat())}{campaign}")
        for reason in decision.reasons:
            say(f"  ✗ [{reason.code}] {reason.message}")
        say(f"  (policy {decision.policy_version}, history as of position "
            f"{decision.as_of_position})")
    return 0 if decision.allowed else EXIT_DENIED


# ----------------------------------------------------------------------------- violations


def _since(text: str | None, policy: Policy) -> datetime | None:
    if text is None:
        return None
    if len(text) == 10:
        day = date.fromisoformat(text)
        return datetime.combine(day, time(), ZoneInfo(policy.default_timezone))
    return catalogue.parse_instant(text, "--since")


def find_violations(store: ProjectionStore, policy: Policy | PolicyBook, since: datetime | None = None,
                    exclusions: Callable[[Iterable[str]], list[Exclusion]] | None = None
                    ) -> tuple[int, list[dict[str, Any]]]:
    """Every past contact that broke the policy as it stood then: ``(checked, violations)``.

    Each contact is judged by the policy version in force at its ``occurred_at``.

    One query fetches, for every customer with a contact (since ``since``), the facts the
    policy reads; each customer's history is indexed once and every contact of theirs is
    re-decided at its instant over the history before it, with its own campaign.
    """
    book = policy if isinstance(policy, PolicyBook) else PolicyBook((policy,))
    contact_types = list(CONTACT_TYPES)
    where_since = " AND occurred_at >= ?" if since is not None else ""
    params: list[Any] = [contact_types]
    if since is not None:
        params.append(since)
    targets = (f"SELECT DISTINCT customer_id FROM events WHERE type IN (SELECT unnest(?::VARCHAR[]))"
               f"{where_since}")
    rows = store.con.execute(
        f"SELECT customer_id, position, event_id, type, occurred_local, "
        f"epoch_ms(occurred_at) AS ms, department, agent, data FROM events "
        f"WHERE customer_id IN ({targets}) AND type IN (SELECT unnest(?::VARCHAR[])) "
        f"ORDER BY customer_id, occurred_at, position", [*params, list(POLICY_TYPES)]).fetchall()
    customers = sorted({r[0] for r in rows})
    numbers: dict[str, str | None] = {}
    keys: dict[str, list[str]] = {c: [] for c in customers}
    if customers:
        numbers = dict(store.con.execute(
            "SELECT customer_id, customer_number FROM customers WHERE customer_id IN "
            "(SELECT unnest(?::VARCHAR[]))", [customers]).fetchall())
        for cid, ident in store.con.execute(
                "SELECT customer_id, identity FROM identities WHERE customer_id IN "
                "(SELECT unnest(?::VARCHAR[])) AND (identity LIKE 'phone:%' OR identity LIKE 'email:%')",
                [customers]).fetchall():
            keys[cid].append(ident)
    entries: dict[str, list[Exclusion]] = {}
    if exclusions is not None:
        for entry in exclusions(itertools.chain.from_iterable(keys.values())):
            entries.setdefault(entry.hash, []).append(entry)
    since_ms = since.timestamp() * 1000 if since is not None else None
    checked = 0
    found: list[dict[str, Any]] = []
    for customer_id, group in itertools.groupby(rows, key=lambda r: r[0]):
        facts = []
        for _, position, event_id, kind, occurred, ms, department, agent, data in group:
            facts.append({"type": kind, "event_id": event_id, "occurred_at": occurred,
                          "position": position, "department": department, "agent": agent,
                          "ms": ms, "data": orjson.loads(data) if data else {}})
        history = ContactHistory(facts)
        own = _customer_entries(keys.get(customer_id, []), entries)
        for fact in facts:
            if fact["type"] not in CONTACT_TYPES or (since_ms is not None and fact["ms"] < since_ms):
                continue
            data = fact["data"]
            purpose = data.get("purpose")
            if purpose not in PURPOSES:
                continue
            checked += 1
            channel = CONTACT_TYPES[fact["type"]]
            at = datetime.fromisoformat(fact["occurred_at"])
            decision = decide(history, channel=channel, purpose=purpose, at=at,
                              campaign=data.get("campaign"), policy=book.in_force(at), exclusions=own,
                              identities=keys.get(customer_id, []), before_event=fact["event_id"])
            if decision.allowed:
                continue
            found.append({
                "event_id": fact["event_id"], "customer_id": customer_id,
                "customer_number": numbers.get(customer_id), "type": fact["type"],
                "channel": channel, "purpose": purpose, "campaign": data.get("campaign"),
                "occurred_at": fact["occurred_at"], "department": fact["department"],
                "agent": fact["agent"], "position": fact["position"],
                "reasons": decision.to_json()["reasons"],
                "policy_version": decision.policy_version,
            })
    found.sort(key=lambda v: (v["department"] or "", v["campaign"] or "", v["occurred_at"]))
    return checked, found


def _customer_entries(keys: Sequence[str], entries: dict[str, list[Exclusion]]) -> list[Exclusion]:
    if not entries:
        return []
    return [e for h in hashes_of(keys) for e in entries.get(h, [])]


def cmd_violations(args: argparse.Namespace, journey: Journey) -> int:
    try:
        book = load_policies(args.policy)
        policy = book.latest
        since = _since(args.since, policy)
    except PolicyError as error:
        print(f"journey violations: {error}", file=sys.stderr)
        return 2
    except (InvalidFact, ValueError) as error:
        print(f"journey violations: --since: {error}", file=sys.stderr)
        return 2
    journey.project()
    store = journey.projections
    checked, found = find_violations(store, book, since,
                                     lambda keys: _exclusions(journey, keys))
    if args.json:
        dump({"policy_versions": sorted(p.version for p in book.policies),
               "policy_version": policy.version, "as_of_position": store.position(),
               "checked": checked, "violations": found})
        return 0
    versions = ", ".join(sorted(p.version for p in book.policies))
    say(f"{len(found)} of {checked} contacts broke the contact policy (versions {versions}, "
        "each contact judged by the version in force then)"
        + (f" since {args.since}" if args.since else ""))
    for (department, campaign), group in itertools.groupby(
            found, key=lambda v: (v["department"], v["campaign"])):
        items = list(group)
        say("", f"{department or '(no department)'} · campaign {campaign or '-'}: {len(items)}")
        for v in items:
            who = v["customer_number"] or v["customer_id"]
            codes = ", ".join(r["code"] for r in v["reasons"])
            say(f"  {_when(v['occurred_at'])}  {v['type']} {v['purpose']} to {who} "
                f"by {v['agent'] or '?'}: {codes}")
            for r in v["reasons"]:
                say(f"      - {r['message']}")
    return 0


# ----------------------------------------------------------------------------- exclusions


def cmd_exclusions(args: argparse.Namespace, journey: Journey) -> int:
    try:
        as_of = date.fromisoformat(args.as_of)
    except ValueError:
        print(f"journey exclusions import: --as-of {args.as_of!r} is not a date like 2026-11-01",
              file=sys.stderr)
        return 2
    if not Path(args.file).is_file():
        print(f"journey exclusions import: no such file: {args.file}", file=sys.stderr)
        return 2
    store = ExclusionStore(journey.settings.data_dir / FILENAME)
    try:
        summary = store.import_file(args.file, as_of)
        total = store.count()
    finally:
        store.close()
    if args.json:
        dump({"imported": summary.imported, "duplicates": summary.duplicates,
               "rejected": [{"line": n, "reason": why, "text": text}
                            for n, why, text in summary.rejected], "entries": total})
    else:
        print(f"imported {summary.imported}, duplicates {summary.duplicates}, "
              f"rejected {len(summary.rejected)} (list applies from {as_of.isoformat()}; "
              f"{total} entries in all)")
        for n, why, text in summary.rejected[:10]:
            print(f"  line {n}: {why}: {text!r}", file=sys.stderr)
    return 1 if summary.rejected else 0


def register(subparsers: Any, commands: dict[str, Callable[[argparse.Namespace, Journey], int]]) -> None:
    p = subparsers.add_parser(
        "can-contact", help="may we contact this person now? (exit 0 allowed, 4 denied, 3 unknown)")
    p.add_argument("ref", help="+34..., @handle, e-mail, customer number, ledger id, or kind:value")
    p.add_argument("--channel", required=True, choices=CHANNELS)
    p.add_argument("--purpose", required=True, choices=PURPOSES)
    p.add_argument("--at", help="the instant, ISO 8601 with offset (default: now)")
    p.add_argument("--campaign", help="the campaign (for its cool-down after a refusal)")
    p.add_argument("--record", action="store_true",
                   help="record the decision in the ledger (a contact.decided event)")
    p.add_argument("--policy", help="policy file (env JOURNEY_POLICY, default journey/contact-policy.toml)")
    p.add_argument("--json", action="store_true")
    commands["can-contact"] = cmd_can_contact

    p = subparsers.add_parser("violations", help="past contacts that broke the contact policy")
    p.add_argument("--since", help="only contacts from this date (or ISO instant) on")
    p.add_argument("--policy", help="policy file (env JOURNEY_POLICY, default journey/contact-policy.toml)")
    p.add_argument("--json", action="store_true")
    commands["violations"] = cmd_violations

    p = subparsers.add_parser("exclusions", help="exclusion lists the contact policy reads")
    sub = p.add_subparsers(dest="exclusions_command", required=True)
    imp = sub.add_parser("import", help="import a list: one phone, e-mail or SHA-256 hex per line")
    imp.add_argument("file")
    imp.add_argument("--as-of", required=True, help="the date the list applies from (YYYY-MM-DD)")
    imp.add_argument("--json", action="store_true")
    commands["exclusions"] = cmd_exclusions
