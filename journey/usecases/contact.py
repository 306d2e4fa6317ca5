"""Asking the contact policy: may we contact this person now, which past contacts broke it, and
the exclusion lists it reads.

The rules are in domain/contact_policy.py (docs/contact-policy.md); this module gathers what
they read from the projections and the data directory. ``journey can-contact``, ``journey
violations``, ``journey exclusions import`` and the HTTP API's ``can-contact`` all end here, so
the command line and the API can never disagree on whether a person may be contacted.

The policy file is a parameter (``policy``: a path, None for the one journey/policy.py finds);
which file that is stays the caller's to decide.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
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
    REASON_CODES,
    ContactHistory,
    Decision,
    Exclusion,
    Policy,
    PolicyBook,
    decide,
)
from domain.errors import InvalidFact
from journey.exclusions import FILENAME, ExclusionStore, ImportSummary, entries_in, hashes_of
from journey.policy import PolicyError, load_policies
from journey.references import reference_key
from journey.system import System
from journey.usecases.paging import EVERYTHING, Page
from projections.duckdb_store import ProjectionStore

#: Fact types the policy reads (everything else in a history is irrelevant to it): the domain's
#: own list, so a rule that reads a new type (an address change) gets it from every query.
POLICY_TYPES = tuple(sorted(FACT_TYPES))


class ContactQuestionError(Exception):
    """The question cannot be asked: a bad reference, instant, channel, purpose or policy file."""


class UnknownCustomer(ContactQuestionError):
    """Nobody is known by the reference."""


class RecordError(RuntimeError):
    """The decision could not be recorded as asked."""


# ----------------------------------------------------------------------------- shared reads


def exclusions(system: System, keys: Iterable[str]) -> list[Exclusion]:
    """The entries of the data directory's exclusion lists that name one of ``keys``."""
    return entries_in(system.settings.data_dir, keys)


def exclusions_by_customer(system: System, keys: Mapping[str, Sequence[str]]
                           ) -> dict[str, list[Exclusion]]:
    """Each customer's exclusion-list entries, from their identity keys; the list file is read
    once for all of them (a per-customer read is a file open each)."""
    return _by_customer(exclusions(system, itertools.chain.from_iterable(keys.values())), keys)


def _by_customer(entries: Iterable[Exclusion], keys: Mapping[str, Sequence[str]]
                 ) -> dict[str, list[Exclusion]]:
    by_hash: dict[str, list[Exclusion]] = {}
    for entry in entries:
        by_hash.setdefault(entry.hash, []).append(entry)
    return {cid: [e for h in hashes_of(own) for e in by_hash.get(h, [])] if by_hash else []
            for cid, own in keys.items()}


def identity_keys(store: ProjectionStore, customer_id: str) -> list[str]:
    rows = store.con.execute("SELECT identity FROM identities WHERE customer_id = ?",
                             [customer_id]).fetchall()
    return [str(r[0]) for r in rows]


def reference_for(keys: Sequence[str], customer_id: str) -> dict[str, str]:
    """How a fact written for a customer names them: their customer number, else an identity
    they own.

    Not ``{"customer_id": <ledger uuid>}`` unless nothing else is known: ledger/writer.py's
    prefetch reads such a reference as a customer number and then clashes with the existing
    stream, and the customer view would learn the uuid as a new ``customer_id`` identity.
    """
    for kind in identity.RESOLUTION_ORDER:
        for key in sorted(keys):
            if key.startswith(kind + ":"):
                return {kind: key.split(":", 1)[1]}
    return {"customer_id": customer_id}


def head(system: System) -> int:
    """The store's last position: how far the projections may lag behind what is recorded."""
    return int(system.app.recorder.max_notification_id() or 0)


# ----------------------------------------------------------------------------- can-contact


@dataclass(frozen=True, slots=True)
class ContactAnswer:
    customer_id: str
    at: datetime
    decision: Decision


def contact_decision(system: System, ref: str, *, channel: str, purpose: str, at: str | None = None,
                     campaign: str | None = None, policy: str | None = None) -> ContactAnswer:
    """The decision ``journey can-contact`` prints, for any caller (the CLI, the HTTP API).

    Raises :class:`UnknownCustomer` or :class:`ContactQuestionError` with the message the CLI
    prints.
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
        in_force = load_policies(policy or system.settings.policy).in_force(instant)
    except PolicyError as error:
        raise ContactQuestionError(str(error)) from None
    system.project()
    store = system.projections
    customer_id = store.resolve(key)
    if customer_id is None:
        raise UnknownCustomer(f"nobody known as {ref!r} ({key})")
    history = store.timeline(customer_id)
    keys = identity_keys(store, customer_id)
    decision = decide(history, channel=channel, purpose=purpose, at=instant,
                      campaign=campaign, policy=in_force, exclusions=exclusions(system, keys),
                      position=store.position(), head=head(system), identities=keys)
    return ContactAnswer(customer_id, instant, decision)


def record_decision(system: System, answer: ContactAnswer, *, channel: str, purpose: str,
                    campaign: str | None = None) -> str:
    """Record the decision as a ``contact.decided`` fact in the customer's stream; its event id.

    Raises :class:`RecordError` when the fact was refused, or landed with another customer
    (an identity moved between the question and the recording).
    """
    decision, customer_id = answer.decision, answer.customer_id
    doc = decision.to_json()
    data: dict[str, Any] = {"channel": channel, "purpose": purpose, "at": answer.at.isoformat(),
                            "allowed": decision.allowed, "reasons": doc["reasons"],
                            "policy_version": decision.policy_version}
    if campaign:
        data["campaign"] = campaign
    if decision.as_of_position is not None:
        data["as_of_position"] = decision.as_of_position
    fact: dict[str, Any] = {
        "type": "contact.decided",
        "v": catalogue.TYPES["contact.decided"].version,
        "id": str(uuid.uuid4()),
        "source": "contact-policy",
        "customer": reference_for(identity_keys(system.projections, customer_id), customer_id),
        "occurred_at": datetime.now(UTC).isoformat(),
        "data": data,
    }
    result = system.ledger.append([(1, fact)])
    if result.rejected:
        raise RecordError(f"the decision was not recorded: {result.rejected[0].reason}")
    if fact.get("customer_uuid") != customer_id:
        raise RecordError(f"the decision was recorded for {fact.get('customer_uuid')}, not "
                          f"{customer_id}: an identity moved meanwhile")
    system.project()
    return str(fact["event_id"])


# ----------------------------------------------------------------------------- violations


def parse_since(text: str | None, policy: Policy) -> datetime | None:
    """``--since``: a date (its start in the policy's default time zone) or an ISO instant."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            return datetime.combine(day, time(), ZoneInfo(policy.default_timezone))
        return catalogue.parse_instant(text, "--since")
    except (InvalidFact, ValueError) as error:
        raise ContactQuestionError(f"--since: {error}") from None


#: Customers named in a violations summary's ``worst_customers``.
WORST_CUSTOMERS = 5


def violations(system: System, *, since: str | None = None, policy: str | None = None,
               department: str | None = None, channel: str | None = None, rule: str | None = None,
               page: Page = EVERYTHING) -> dict[str, Any]:
    """What ``journey violations --json`` prints: the past contacts (since ``since``) that
    broke the policy version in force when they happened, how many contacts were judged, and a
    ``summary`` of them all.

    ``department``, ``channel`` and ``rule`` (a reason code: ``objection``, ``quiet_hours``...)
    keep the violations that match all three; ``total`` counts them and ``summary`` is theirs
    (by rule, department and channel, and the customers with the most), whatever ``page`` of
    them ``violations`` holds. A violation that broke two rules counts once under each rule.

    Raises :class:`ContactQuestionError` for a bad policy file, ``since``, ``channel`` or ``rule``.
    """
    if channel is not None and channel not in CHANNELS:
        raise ContactQuestionError(f"channel {channel!r} is not one of {', '.join(CHANNELS)}")
    if rule is not None and rule not in REASON_CODES:
        raise ContactQuestionError(f"rule {rule!r} is not one of {', '.join(REASON_CODES)}")
    try:
        book = load_policies(policy or system.settings.policy)
    except PolicyError as error:
        raise ContactQuestionError(str(error)) from None
    latest = book.latest
    start = parse_since(since, latest)
    system.project()
    store = system.projections
    checked, found = find_violations(store, book, start, lambda keys: exclusions(system, keys))
    matching = [v for v in found
                if (department is None or v["department"] == department)
                and (channel is None or v["channel"] == channel)
                and (rule is None or any(r["code"] == rule for r in v["reasons"]))]
    return {"policy_versions": sorted(p.version for p in book.policies),
            "policy_version": latest.version, "as_of_position": store.position(),
            "checked": checked, "since": since, "department": department, "channel": channel,
            "rule": rule, **page.fields(len(matching)), "summary": summarise(matching),
            "violations": page.cut(matching)}


def summarise(found: Sequence[dict[str, Any]], worst: int = WORST_CUSTOMERS) -> dict[str, Any]:
    """Counts of ``found`` by rule (reason code), department, channel and campaign (None: no
    department, no campaign), most first, and the ``worst`` customers by how many of their
    contacts broke the policy: what a person reads before deciding which of twelve thousand
    lines to look at."""
    rules: dict[str, int] = {}
    departments: dict[str, int] = {}
    channels: dict[str, int] = {}
    campaigns: dict[str, int] = {}
    customers: dict[str, list[dict[str, Any]]] = {}
    for v in found:
        for code in dict.fromkeys(r["code"] for r in v["reasons"]):
            rules[code] = rules.get(code, 0) + 1
        dept = v["department"] or ""
        departments[dept] = departments.get(dept, 0) + 1
        channels[v["channel"]] = channels.get(v["channel"], 0) + 1
        campaign = v["campaign"] or ""
        campaigns[campaign] = campaigns.get(campaign, 0) + 1
        customers.setdefault(v["customer_id"], []).append(v)

    def ranked(counts: dict[str, int], key: str) -> list[dict[str, Any]]:
        return [{key: name or None, "violations": n}
                for name, n in sorted(counts.items(), key=lambda item: (-item[1], item[0]))]

    heaviest = sorted(customers.items(), key=lambda item: (
        -len(item[1]), item[1][0]["customer_number"] is None, item[1][0]["customer_number"] or "",
        item[0]))[:worst]
    return {"by_rule": ranked(rules, "rule"), "by_department": ranked(departments, "department"),
            "by_channel": ranked(channels, "channel"), "by_campaign": ranked(campaigns, "campaign"),
            "customers": len(customers),
            "worst_customers": [{"customer_id": cid, "customer_number": vs[0]["customer_number"],
                                 "violations": len(vs),
                                 "last_at": max((v["occurred_at"] for v in vs),
                                                key=datetime.fromisoformat)}
                                for cid, vs in heaviest]}


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
    entries = _by_customer(exclusions(itertools.chain.from_iterable(keys.values()))
                           if exclusions is not None else (), keys)
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
        own = entries.get(customer_id, [])
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


# ----------------------------------------------------------------------------- exclusions


class ExclusionImportError(ValueError):
    """The list cannot be imported: a bad date, or no such file."""


@dataclass(frozen=True, slots=True)
class ExclusionsImported:
    summary: ImportSummary
    #: The day the list applies from.
    as_of: date
    #: Entries in all the data directory's lists after the import.
    entries: int

    def to_json(self) -> dict[str, Any]:
        """What ``journey exclusions import --json`` prints."""
        return {"imported": self.summary.imported, "duplicates": self.summary.duplicates,
                "rejected": [{"line": n, "reason": why, "text": text}
                             for n, why, text in self.summary.rejected], "entries": self.entries}


def import_exclusions(system: System, file: str, as_of: str) -> ExclusionsImported:
    """Import an exclusion list (one phone, e-mail or SHA-256 hex a line) that applies from
    ``as_of`` (YYYY-MM-DD) into the data directory's lists; a rejected line is reported in the
    summary, never a reason to drop the others."""
    try:
        day = date.fromisoformat(as_of)
    except ValueError:
        raise ExclusionImportError(f"--as-of {as_of!r} is not a date like 2026-11-01") from None
    if not Path(file).is_file():
        raise ExclusionImportError(f"no such file: {file}")
    store = ExclusionStore(system.settings.data_dir / FILENAME)
    try:
        summary = store.import_file(file, day)
        total = store.count()
    finally:
        store.close()
    return ExclusionsImported(summary, day, total)
