"""May we contact this person now? A pure decision over the customer's whole history.

:func:`decide` looks at every fact that happened up to the instant asked about (consents,
withdrawals, objections, contracts, earlier contacts and their outcomes, the customer's
timezone, and their address, whose postal code says which public holidays they keep) plus the
exclusion-list entries for their phones and e-mails, and lists EVERY rule that forbids the
contact, each reason naming the events behind it. No I/O: the caller hands in
the facts (dicts with ``type``, ``event_id``, ``occurred_at``, ``department``, ``data``; store
``position`` when known) in any order, and the policy (``journey/policy.py`` loads it).

For speed, the facts can be indexed once per customer (:class:`ContactHistory`); ``decide``
then answers with a few binary searches instead of scanning the history on every call.

The rules and their reason codes are documented in docs/contact-policy.md.
"""

from __future__ import annotations

import bisect
import calendar
import hashlib
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

from domain import identity, postal_codes
from domain.errors import InvalidFact

#: Facts that are the company contacting the person, and the channel each one uses.
CONTACT_TYPES: dict[str, str] = {
    "call.outbound": "phone",
    "sms.sent": "sms",
    "email.sent": "email",
    "letter.sent": "letter",
}
CHANNELS = ("phone", "sms", "email", "letter", "social")
PURPOSES = ("commercial", "service")
REASON_CODES = ("stale", "objection", "consent_withdrawn", "no_legal_basis", "excluded_list",
                "quiet_hours", "frequency_cap", "cooldown")
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

#: Fact types the policy reads; everything else in a history is irrelevant to it (callers that
#: query a store for a customer's history ask for these types only).
FACT_TYPES = frozenset({*CONTACT_TYPES, "consent.given", "consent.withdrawn", "objection.recorded",
                        "contract.started", "contract.ended", "customer.registered",
                        "address.changed", "identity.linked", "identity.unlinked"})
_LAST = sys.maxsize


# ----------------------------------------------------------------------------- the policy


@dataclass(frozen=True, slots=True)
class FrequencyCap:
    """At most ``limit`` contacts on ``channel`` for ``purpose`` in any rolling ``days``."""

    channel: str
    purpose: str
    limit: int
    days: float


@dataclass(frozen=True, slots=True)
class Policy:
    version: str
    #: From when this version is in force (None: since the beginning); see PolicyBook.
    effective_from: datetime | None = None
    #: A contract ended less than this many months ago is still a legitimate interest.
    legitimate_interest_months: int = 12
    #: Channels the calling hours apply to, and the local windows [start, end) allowed.
    quiet_hours_channels: tuple[str, ...] = ("phone",)
    call_windows: tuple[tuple[time, time], ...] = ((time(9), time(21)),)
    working_days: frozenset[int] = frozenset({0, 1, 2, 3, 4})  # Monday = 0
    #: The company's own closed days (local dates). Public holidays are not listed here: they
    #: come from the calendar of the customer's autonomous community (:func:`public_holiday`).
    closed_days: frozenset[date] = frozenset()
    #: Whether the calling hours bind service contact too (marketing rules never do).
    quiet_hours_for_service: bool = False
    default_timezone: str = "Europe/Madrid"
    frequency_caps: tuple[FrequencyCap, ...] = (FrequencyCap("phone", "commercial", 2, 7),)
    cooldown_days: float = 90
    cooldown_outcomes: frozenset[str] = frozenset({"not_interested", "knows_offers"})
    #: How many events the projection may lag behind the store before decisions fail closed.
    max_lag: int = 0


@dataclass(frozen=True, slots=True)
class Exclusion:
    """One exclusion-list entry: SHA-256 (hex) of a normalised phone or e-mail."""

    hash: str
    list_date: date
    source: str = ""


@dataclass(frozen=True, slots=True)
class Reason:
    code: str
    message: str
    event_ids: list[str] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Decision:
    allowed: bool
    reasons: list[Reason]
    policy_version: str
    as_of_position: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {"allowed": self.allowed,
                "reasons": [{"code": r.code, "message": r.message, "event_ids": list(r.event_ids)}
                            for r in self.reasons],
                "policy_version": self.policy_version, "as_of_position": self.as_of_position}


def identity_hash(kind: str, value: str) -> str:
    """The exclusion-list hash of a phone or e-mail: SHA-256 hex of its normalised spelling."""
    return hashlib.sha256(identity.normalise(kind, value, kind).encode()).hexdigest()


def recorded_hash(kind: str, value: str) -> str:
    """The exclusion-list hash of a phone or e-mail the ledger holds: one today's rules would
    refuse was taken by earlier ones and keeps the hash of its stored spelling, so an entry
    imported for it still applies."""
    return hashlib.sha256(identity.recorded(kind, value).encode()).hexdigest()


# ----------------------------------------------------------------------------- the history


@dataclass(frozen=True, slots=True)
class _Fact:
    key: tuple[datetime, int]
    type: str
    event_id: str
    occurred_at: str
    department: str | None
    data: Mapping[str, Any]

    @property
    def at(self) -> datetime:
        return self.key[0]


class _Series:
    """Facts of one kind, sorted by (instant, order), cut by binary search."""

    __slots__ = ("facts", "keys")

    def __init__(self) -> None:
        self.facts: list[_Fact] = []
        self.keys: list[tuple[datetime, int]] = []

    def add(self, fact: _Fact) -> None:
        self.facts.append(fact)

    def seal(self) -> None:
        self.facts.sort(key=lambda f: f.key)
        self.keys = [f.key for f in self.facts]

    def upto(self, cut: tuple[datetime, int]) -> int:
        """How many facts come before the cut."""
        return bisect.bisect_left(self.keys, cut)

    def since(self, start: tuple[datetime, int], cut: tuple[datetime, int]) -> list[_Fact]:
        return self.facts[bisect.bisect_left(self.keys, start):self.upto(cut)]

    def last(self, cut: tuple[datetime, int]) -> _Fact | None:
        n = self.upto(cut)
        return self.facts[n - 1] if n else None


def _instant(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:
        raise InvalidFact(f"occurred_at: {text!r} has no UTC offset")
    return moment.astimezone(UTC)


class ContactHistory:
    """The facts of one customer that the policy reads, indexed once for many decisions."""

    def __init__(self, facts: Iterable[Mapping[str, Any]]) -> None:
        self.contacts: dict[tuple[str, str], _Series] = {}
        self.outcomes: dict[str, _Series] = {}  # campaign -> contacts that had an outcome
        self.consents: dict[tuple[str, str], _Series] = {}  # (channel, purpose), given+withdrawn
        self.given: dict[tuple[str, str], _Series] = {}
        self.objections = _Series()
        self.contracts = _Series()
        self.registrations = _Series()
        self.identities = _Series()
        self.addresses = _Series()  # registrations with an address, and address changes
        self.order: dict[str, tuple[datetime, int]] = {}
        every: list[_Series] = [self.objections, self.contracts, self.registrations, self.identities,
                                self.addresses]
        for n, raw in enumerate(facts):
            kind = raw["type"]
            if kind not in FACT_TYPES:
                continue
            data = raw.get("data") or {}
            position = raw.get("position")
            fact = _Fact((_instant(raw["occurred_at"]), position if isinstance(position, int) else n),
                         kind, str(raw["event_id"]), raw["occurred_at"], raw.get("department"), data)
            self.order[fact.event_id] = fact.key
            if kind in CONTACT_TYPES:
                series = _get(self.contacts, (CONTACT_TYPES[kind], data.get("purpose", "")), every)
                series.add(fact)
                campaign = data.get("campaign")
                if campaign and data.get("outcome"):
                    _get(self.outcomes, campaign, every).add(fact)
            elif kind in ("consent.given", "consent.withdrawn"):
                slot = (data.get("channel", ""), data.get("purpose", ""))
                _get(self.consents, slot, every).add(fact)
                if kind == "consent.given":
                    _get(self.given, slot, every).add(fact)
            elif kind == "objection.recorded":
                self.objections.add(fact)
            elif kind.startswith("contract."):
                self.contracts.add(fact)
            elif kind == "customer.registered":
                self.registrations.add(fact)
                if data.get("phone") or data.get("email"):
                    self.identities.add(fact)
                if data.get("address"):
                    self.addresses.add(fact)
            elif kind == "address.changed":
                self.addresses.add(fact)
            elif data.get("kind") in ("phone", "email"):
                self.identities.add(fact)
        for series in every:
            series.seal()

    def cut(self, at: datetime, before_event: str | None = None) -> tuple[datetime, int]:
        """Facts strictly before this key count: everything at or before ``at``, or (for
        ``before_event``) everything before that event in the history's order."""
        limit = (at.astimezone(UTC), _LAST)
        if before_event is not None and before_event in self.order:
            limit = min(limit, self.order[before_event])
        return limit


def _get(table: dict[Any, _Series], key: Any, every: list[_Series]) -> _Series:
    series = table.get(key)
    if series is None:
        series = table[key] = _Series()
        every.append(series)
    return series


# ----------------------------------------------------------------------------- decide


def decide(history: ContactHistory | Iterable[Mapping[str, Any]], *, channel: str, purpose: str,
           at: datetime, campaign: str | None = None, policy: Policy,
           exclusions: Iterable[Exclusion] = (), position: int | None = None,
           head: int | None = None, identities: Iterable[str] = (),
           before_event: str | None = None) -> Decision:
    """May the company contact this customer on ``channel`` for ``purpose`` at ``at``?

    ``history``: the customer's facts in any order (or a :class:`ContactHistory` built from
    them); only facts with occurred_at <= ``at`` count (or, with ``before_event``, only those
    before that event). ``exclusions``: exclusion-list entries (only those matching one of the
    customer's phones or e-mails apply; ``identities`` adds keys like ``phone:+34...`` known
    from elsewhere). ``position``/``head``: the projection's and the store's positions.
    """
    if at.tzinfo is None:
        raise ValueError("at: a time without UTC offset is ambiguous")
    if channel not in CHANNELS:
        raise ValueError(f"channel: {channel!r} is not one of {', '.join(CHANNELS)}")
    if purpose not in PURPOSES:
        raise ValueError(f"purpose: {purpose!r} is not one of {', '.join(PURPOSES)}")
    h = history if isinstance(history, ContactHistory) else ContactHistory(history)
    cut = h.cut(at, before_event)
    commercial = purpose == "commercial"
    reasons: list[Reason] = []
    if position is not None and head is not None and head - position > policy.max_lag:
        reasons.append(Reason("stale", (
            f"the customer history is {_count(head - position, 'event')} behind the ledger "
            f"(read at position {position:,}, ledger at {head:,}; the policy allows {policy.max_lag:,}): "
            "deciding on an incomplete history is refused")))
    given = _latest(h.given, channel, purpose, cut)
    state = _latest(h.consents, channel, purpose, cut)
    consented = state is not None and state.type == "consent.given"
    reasons += _objection(h, channel, purpose, cut, given)
    if state is not None and state.type == "consent.withdrawn":
        reasons.append(Reason("consent_withdrawn", (
            f"consent to {purpose} contact by {_channels(state.data.get('channel'))} was withdrawn on "
            f"{_when(state)} ({_dept(state)})"), [state.event_id]))
    if commercial:
        if not consented:
            basis = _legal_basis(h, cut, at, policy)
            if basis is not None:
                reasons.append(basis)
            reasons += _excluded(h, cut, at, policy, exclusions, identities)
        reasons += _cooldown(h, campaign, cut, at, policy)
    if channel in policy.quiet_hours_channels and (commercial or policy.quiet_hours_for_service):
        quiet = _quiet_hours(h, channel, cut, at, policy)
        if quiet is not None:
            reasons.append(quiet)
    reasons += _frequency(h, channel, purpose, cut, at, policy)
    return Decision(not reasons, reasons, policy.version, position)


def _latest(table: Mapping[tuple[str, str], _Series], channel: str, purpose: str,
            cut: tuple[datetime, int]) -> _Fact | None:
    """The most recent fact (before the cut) about this channel, or any channel, and purpose."""
    best = None
    for slot in ((channel, purpose), ("any", purpose)):
        series = table.get(slot)
        fact = series.last(cut) if series is not None else None
        if fact is not None and (best is None or fact.key > best.key):
            best = fact
    return best


def _covers(channels: Any, channel: str) -> bool:
    if channels == "all" or channels == "any":
        return True
    if isinstance(channels, str):
        return channels == channel
    return channel in channels or "any" in channels


def _objection(h: ContactHistory, channel: str, purpose: str, cut: tuple[datetime, int],
               given: _Fact | None) -> list[Reason]:
    """Objections covering the channel and purpose not lifted by a LATER consent."""
    series = h.objections
    n = series.upto(cut)
    lifted_before = given.key if given is not None else None
    found = []
    for fact in reversed(series.facts[:n]):
        if lifted_before is not None and fact.key < lifted_before:
            break
        data = fact.data
        if data.get("purpose", "commercial") != purpose or not _covers(data.get("channels", "all"),
                                                                       channel):
            continue
        found.append(fact)
    if not found:
        return []
    found.reverse()
    first = found[0]
    what = _channels(first.data.get("channels", "all"))
    message = (f"the customer objected to {purpose} contact on {what} on {_when(first)} "
               f"({_dept(first)}), and has given no {purpose} consent for {_channel(channel)} since")
    if len(found) > 1:
        message += "; repeated on " + ", ".join(f"{_when(f)} ({_dept(f)})" for f in found[1:])
    return [Reason("objection", message, [f.event_id for f in found])]


def _legal_basis(h: ContactHistory, cut: tuple[datetime, int], at: datetime,
                 policy: Policy) -> Reason | None:
    """Commercial contact without consent needs a legitimate interest: a (recent) contract."""
    started: dict[str, _Fact] = {}
    ended: dict[str, _Fact] = {}
    for fact in h.contracts.facts[:h.contracts.upto(cut)]:
        contract = str(fact.data.get("contract_id"))
        if fact.type == "contract.started":
            started[contract] = fact
            ended.pop(contract, None)
        else:
            ended[contract] = fact
    if any(c not in ended for c in started):
        return None
    months = policy.legitimate_interest_months
    recent = [f for f in ended.values() if _add_months(f.at, months) > at]
    if recent:
        return None
    if ended:
        last = max(ended.values(), key=lambda f: f.key)
        return Reason("no_legal_basis", (
            f"no consent for commercial contact, and the last contract "
            f"({last.data.get('contract_id')}) ended on {_when(last)} ({_dept(last)}), more than "
            f"{months} months ago: no legitimate interest left"), [last.event_id])
    return Reason("no_legal_basis", (
        "no consent for commercial contact on this channel and no contract "
        "(active or ended in the last "
        f"{months} months): no legal basis to contact"))


def _customer_hashes(h: ContactHistory, cut: tuple[datetime, int],
                     extra: Iterable[str]) -> dict[str, tuple[str, _Fact | None]]:
    keys: dict[str, _Fact | None] = {}
    for fact in h.identities.facts[:h.identities.upto(cut)]:
        data = fact.data
        if fact.type == "customer.registered":
            for kind in ("phone", "email"):
                if data.get(kind):
                    keys.setdefault(f"{kind}:{data[kind]}", fact)
        elif fact.type == "identity.linked":
            keys.setdefault(f"{data['kind']}:{data.get('value')}", fact)
        else:
            keys.pop(f"{data['kind']}:{data.get('value')}", None)
    for key in extra:
        if key.startswith(("phone:", "email:")):
            keys.setdefault(key, None)
    hashes: dict[str, tuple[str, _Fact | None]] = {}
    for key, known in keys.items():
        kind, _, value = key.partition(":")
        hashes[recorded_hash(kind, value)] = (key, known)
    return hashes


def _excluded(h: ContactHistory, cut: tuple[datetime, int], at: datetime, policy: Policy,
              exclusions: Iterable[Exclusion], identities: Iterable[str]) -> list[Reason]:
    entries = list(exclusions)
    if not entries:
        return []
    hashes = _customer_hashes(h, cut, identities)
    today = at.astimezone(_zone(_timezone(h, cut, policy)[0])).date()
    reasons = []
    for entry in sorted(entries, key=lambda e: (e.list_date, e.hash)):
        if entry.hash not in hashes or entry.list_date > today:
            continue
        key, fact = hashes[entry.hash]
        kind, _, value = key.partition(":")
        known = f", known from {_when(fact)} ({_dept(fact)})" if fact is not None else ""
        reasons.append(Reason("excluded_list", (
            f"the customer's {'e-mail' if kind == 'email' else kind} {value}{known} is on the "
            f"exclusion list {entry.source or '(unnamed)'} since {entry.list_date.isoformat()}, "
            "and there is no consent for this channel"), [fact.event_id] if fact else []))
    return reasons


def _cooldown(h: ContactHistory, campaign: str | None, cut: tuple[datetime, int], at: datetime,
              policy: Policy) -> list[Reason]:
    if not campaign or campaign not in h.outcomes:
        return []
    start = (at.astimezone(UTC) - timedelta(days=policy.cooldown_days), 0)
    hits = [f for f in h.outcomes[campaign].since(start, cut)
            if f.data.get("outcome") in policy.cooldown_outcomes]
    if not hits:
        return []
    last = hits[-1]
    until = last.at + timedelta(days=policy.cooldown_days)
    return [Reason("cooldown", (
        f"the customer answered “{_outcome(last.data.get('outcome'))}” to campaign {campaign} on "
        f"{_when(last)} ({_dept(last)}); the campaign waits {_count(policy.cooldown_days, 'day')}, until "
        f"{until.astimezone(datetime.fromisoformat(last.occurred_at).tzinfo).date().isoformat()}"),
        [f.event_id for f in hits])]


def _timezone(h: ContactHistory, cut: tuple[datetime, int], policy: Policy) -> tuple[str, _Fact | None]:
    registration = h.registrations.last(cut)
    if registration is not None and isinstance(registration.data.get("timezone"), str):
        return registration.data["timezone"], registration
    return policy.default_timezone, None


@lru_cache(maxsize=256)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo("Europe/Madrid")


def _quiet_hours(h: ContactHistory, channel: str, cut: tuple[datetime, int], at: datetime,
                 policy: Policy) -> Reason | None:
    tz_name, registration = _timezone(h, cut, policy)
    local = at.astimezone(_zone(tz_name))
    day, clock = local.date(), local.time().replace(tzinfo=None)
    windows = ", ".join(f"{a:%H:%M}-{b:%H:%M}" for a, b in policy.call_windows)
    days = _day_ranges(policy.working_days)
    whose = (f"the customer's timezone {tz_name}, from the registration of {_when(registration)} "
             f"({_dept(registration)})" if registration is not None
             else f"timezone {tz_name}, the default")
    stamp = f"on {_day(local.date())} at {local:%H:%M}"
    events = [registration.event_id] if registration is not None else []
    if day in policy.closed_days:
        why = f"{day.isoformat()} is one of the company's closed days (contact policy {policy.version})"
    elif (holiday := _holiday(h, cut, day)) is not None:
        why, address = holiday
        if address is not None and address.event_id not in events:  # not the registration again
            events.append(address.event_id)
    elif day.weekday() not in policy.working_days:
        why = f"{DAY_WORDS[day.weekday()]} is not a working day (the working days are {days})"
    elif not any(a <= clock < b for a, b in policy.call_windows):
        why = f"outside the allowed hours {windows}"
    else:
        return None
    return Reason("quiet_hours", (
        f"contact by {_channel(channel)} {stamp} local time is not allowed: {why} ({whose})"), events)


def _holiday(h: ContactHistory, cut: tuple[datetime, int], day: date) -> tuple[str, _Fact | None] | None:
    """Why ``day`` is a public holiday for this customer (and the address fact that placed
    them in their community), or None. The address is the one recorded last before the cut;
    without a Spanish postal code only the national holidays apply."""
    address = h.addresses.last(cut)
    community = postal_codes.address_community(address.data.get("address")) if address else None
    name = public_holiday(day, community)
    if name is None:
        return None
    if address is None or community is None or public_holiday(day, None) is not None:
        return f"{day.isoformat()} is a public holiday in Spain ({name})", None
    source = "registration" if address.type == "customer.registered" else "address change"
    return (f"{day.isoformat()} is a holiday in {postal_codes.COMMUNITIES[community]} ({name}), the "
            f"autonomous community of the customer's address, from the {source} of {_when(address)} "
            f"({_dept(address)})"), address


def public_holiday(day: date, community: str | None = None) -> str | None:
    """The name of the public holiday on ``day`` in Spain (``community`` None: the national
    holidays only) or in that autonomous community (a code of
    :data:`domain.postal_codes.COMMUNITIES`: national holidays as it keeps them, plus its own).
    None on any other day. The calendars are those of the ``holidays`` package, which knows
    Spain from 2008 to 2100; a year outside those has no public holidays here."""
    return _calendar(community, day.year).get(day)


@lru_cache(maxsize=1024)
def _calendar(community: str | None, year: int) -> dict[date, str]:
    """One community's (or the nation's) public holidays of one year, in Spanish.

    Built once per (community, year) and kept: a build takes about 0.3 ms, a whole decision
    0.04 ms. The package is imported here, not with the module: importing it loads the
    calendars of every country it knows (0.2-0.4 s), which only a process that decides on
    calling hours should pay, once."""
    import holidays

    found = holidays.country_holidays("ES", subdiv=community, years=year, language="es")
    return dict(found.items())


def _frequency(h: ContactHistory, channel: str, purpose: str, cut: tuple[datetime, int],
               at: datetime, policy: Policy) -> list[Reason]:
    reasons = []
    for cap in policy.frequency_caps:
        if cap.channel not in (channel, "any") or cap.purpose != purpose:
            continue
        start = (at.astimezone(UTC) - timedelta(days=cap.days), 0)
        if cap.channel == "any":
            recent = sorted((f for (c, p), s in h.contacts.items() if p == purpose
                             for f in s.since(start, cut)), key=lambda f: f.key)
        else:
            series = h.contacts.get((channel, purpose))
            recent = series.since(start, cut) if series is not None else []
        if len(recent) < cap.limit:
            continue
        listed = "; ".join(f"{_when(f)} ({_dept(f)}{_campaign(f)})" for f in recent)
        reasons.append(Reason("frequency_cap", (
            f"already {_count(len(recent), purpose + ' contact')} by {_channels(cap.channel)} in the "
            f"last {_count(cap.days, 'day')} (at most {cap.limit}, across all departments and campaigns): "
            f"{listed}"), [f.event_id for f in recent]))
    return reasons


# ----------------------------------------------------------------------------- wording


def _when(fact: _Fact | None) -> str:
    if fact is None:
        return "-"
    text = fact.occurred_at
    return f"{text[:10]} {text[11:16]} {text[-6:]}" if text[-6] in "+-" else f"{text[:10]} {text[11:16]}"


def _dept(fact: _Fact | None) -> str:
    """Who recorded the fact, as a person reads it: "by customer care", never the code."""
    department = fact.department if fact is not None else None
    return f"by {department_words(department)}" if department else "recorded without a department"


#: How a department's code reads in a sentence; any other code reads with its underscores as
#: spaces. People read the reasons (console, CLI), machines read the codes beside them.
DEPARTMENT_WORDS = {"outsourced_callcenter": "the outsourced call centre", "stores": "a store"}

#: How a channel reads in "contact by ...".
CHANNEL_WORDS = {"phone": "phone", "sms": "SMS", "email": "e-mail", "letter": "letter",
                 "social": "social media", "any": "any channel", "all": "any channel"}

#: How an answer to a call reads in a sentence.
OUTCOME_WORDS = {"not_interested": "not interested", "knows_offers": "already knows the offers",
                 "no_answer": "no answer", "hung_up": "hung up"}

DAY_WORDS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
MONTH_WORDS = ("January", "February", "March", "April", "May", "June", "July", "August",
               "September", "October", "November", "December")


def _day(day: date) -> str:
    """"Sunday 8 March 2026", whatever the process's locale."""
    return f"{DAY_WORDS[day.weekday()]} {day.day} {MONTH_WORDS[day.month - 1]} {day.year}"


def department_words(code: str) -> str:
    return DEPARTMENT_WORDS.get(code, code.replace("_", " "))


def channel_words(code: Any) -> str:
    """How a channel reads in "contact by ...": "phone", "SMS", "e-mail", "social media"."""
    return CHANNEL_WORDS.get(str(code), str(code).replace("_", " "))


_channel = channel_words


def _outcome(code: Any) -> str:
    return OUTCOME_WORDS.get(str(code), str(code).replace("_", " "))


def _count(n: float, word: str) -> str:
    """``_count(1, "day")`` -> "1 day", ``_count(2, "day")`` -> "2 days"."""
    return f"{n:g} {word}" if n == 1 else f"{n:g} {word}s"


def _campaign(fact: _Fact) -> str:
    campaign = fact.data.get("campaign")
    return f", campaign {campaign}" if campaign else ""


def _channels(channels: Any) -> str:
    if channels in ("all", "any"):
        return "all channels"
    if isinstance(channels, str):
        return _channel(channels)
    return _listed([_channel(c) for c in channels])


def _listed(words: list[str]) -> str:
    """"a", "a and b", "a, b and c"."""
    return " and ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " and " + words[-1]


def _day_ranges(days: frozenset[int]) -> str:
    """Working days as a person says them: "Monday to Friday", "Monday to Wednesday and Friday"."""
    runs: list[list[int]] = []
    for d in sorted(days):
        if runs and runs[-1][-1] == d - 1:
            runs[-1].append(d)
        else:
            runs.append([d])
    words = [w for r in runs for w in ([f"{DAY_WORDS[r[0]]} to {DAY_WORDS[r[-1]]}"] if len(r) > 2
                                       else [DAY_WORDS[d] for d in r])]
    return _listed(words) or "none"


def _add_months(moment: datetime, months: int) -> datetime:
    year, month0 = divmod(moment.month - 1 + months, 12)
    year += moment.year
    day = min(moment.day, calendar.monthrange(year, month0 + 1)[1])
    return moment.replace(year=year, month=month0 + 1, day=day)


def contact_channel(fact_type: str) -> str | None:
    """The channel of a contact fact (call.outbound -> phone), None when it is not a contact."""
    return CONTACT_TYPES.get(fact_type)


__all__: Sequence[str] = ("CONTACT_TYPES", "ContactHistory", "Decision", "Exclusion",
                          "FrequencyCap", "Policy", "Reason", "decide", "identity_hash", "recorded_hash")


@dataclass(frozen=True, slots=True)
class PolicyBook:
    """Every version of the policy, each in force from its ``effective_from``.

    Past contacts are judged by the version in force when they happened, so changing the
    policy today never turns yesterday's lawful call into a violation (or the reverse).
    """

    policies: tuple[Policy, ...]

    def __post_init__(self) -> None:
        if not self.policies:
            raise ValueError("a policy book needs at least one policy")
        starts = [p.effective_from for p in self.policies]
        if len(set(starts)) != len(starts):
            raise ValueError("two policy versions take effect at the same instant")

    def in_force(self, at: datetime) -> Policy:
        """The version in force at ``at`` (the earliest one for instants before them all)."""
        ordered = sorted(self.policies, key=lambda p: p.effective_from or datetime.min.replace(tzinfo=UTC))
        chosen = ordered[0]
        for policy in ordered:
            if policy.effective_from is None or policy.effective_from <= at:
                chosen = policy
        return chosen

    @property
    def latest(self) -> Policy:
        return self.in_force(datetime.max.replace(tzinfo=UTC))
