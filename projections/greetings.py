"""Remember people kindly: birthdays and first-purchase anniversaries worth a letter.

Pure rules, no I/O (journey/usecases/greetings.py, behind ``journey greetings``, reads the
projections and hands the candidates in). For a window of days, :func:`plan` lists each
customer's occasions (a birthday, or an anniversary of their first purchase) and decides, for
each, whether to write:

* the contact policy (domain/contact_policy.py) is asked, for purpose ``commercial`` and
  campaign ``greetings``, at 10:00 local time on the greeting date, for each channel in turn
  (letter first, then e-mail); the first channel it allows is used. A customer without a
  postal address (or e-mail) is not asked on that channel;
* without being pesky: at most ``per_year`` greetings per customer in any 365 consecutive days,
  counting greetings already sent (a ``letter.sent`` or ``email.sent`` whose ``data.campaign``
  is ``greetings``, or whose subject starts with "greetings") and those planned earlier in the
  same run;
* a birthday on 29 February is celebrated on 28 February in non-leap years (the same for a
  first purchase made on 29 February).

Everything refused is kept, with every reason (see docs/greetings-and-addresses.md).
"""

from __future__ import annotations

import calendar
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from domain.contact_policy import ContactHistory, Exclusion, Policy, PolicyBook, decide

CAMPAIGN = "greetings"
#: Facts that are a greeting when marked as one, and the channel each uses.
GREETING_TYPES: dict[str, str] = {"letter.sent": "letter", "email.sent": "email"}
CHANNELS = ("letter", "email")
YEAR_DAYS = 365
#: The local hour the policy is asked about on the greeting date.
GREETING_HOUR = 10
DEFAULT_TIMEZONE = "Europe/Madrid"


# ----------------------------------------------------------------------------- dates


def occurrence(original: date, year: int) -> date:
    """The day ``original`` (a birthday, a first purchase) is celebrated in ``year``:
    29 February falls on 28 February in non-leap years."""
    if original.month == 2 and original.day == 29 and not calendar.isleap(year):
        return date(year, 2, 28)
    return original.replace(year=year)


def window(start: date, days: int) -> tuple[date, date]:
    """The first and last day of a window of ``days`` days from ``start`` (inclusive)."""
    if days < 1:
        raise ValueError("days: a window needs at least one day")
    return start, start + timedelta(days=days - 1)


def anniversaries(original: date, start: date, days: int) -> list[tuple[date, int]]:
    """``(day, years)`` of each anniversary of ``original`` in the window (years >= 1)."""
    first, last = window(start, days)
    found = []
    for year in range(first.year, last.year + 1):
        day = occurrence(original, year)
        if first <= day <= last and year > original.year:
            found.append((day, year - original.year))
    return found


def month_days(start: date, days: int) -> list[str]:
    """Every ``MM-DD`` whose anniversary falls in the window (for a query's filter):
    ``02-29`` too when the window holds 28 February of a non-leap year."""
    first, last = window(start, days)
    found: set[str] = set()
    day = first
    while day <= last and len(found) < 366:
        found.add(day.strftime("%m-%d"))
        if day.month == 2 and day.day == 28 and not calendar.isleap(day.year):
            found.add("02-29")
        day += timedelta(days=1)
    return sorted(found)


# ----------------------------------------------------------------------------- the facts


def is_greeting(fact: Mapping[str, Any]) -> bool:
    """A letter or e-mail sent as a greeting: ``data.campaign`` is ``greetings``, or the
    subject starts with "greetings" (any case), for sources that cannot set a campaign."""
    if fact.get("type") not in GREETING_TYPES:
        return False
    data = fact.get("data") or {}
    subject = data.get("subject")
    return data.get("campaign") == CAMPAIGN or (
        isinstance(subject, str) and subject.strip().lower().startswith(CAMPAIGN))


def greeting_date(fact: Mapping[str, Any]) -> date:
    """The day a greeting was for: ``data.greeting_date`` (what ``journey greetings --record``
    writes, as letters are sent ahead of the day), else the day it was sent as its source saw
    it (the local date of ``occurred_at``)."""
    given = (fact.get("data") or {}).get("greeting_date")
    if isinstance(given, str):
        try:
            return date.fromisoformat(given)
        except ValueError:
            pass
    return datetime.fromisoformat(fact["occurred_at"]).date()


@dataclass(frozen=True, slots=True)
class Occasion:
    kind: str  # "birthday" | "first_purchase"
    day: date
    years: int
    since: date
    event_id: str | None = None

    @property
    def text(self) -> str:
        if self.kind == "birthday":
            return f"birthday, {self.years} year{'s' if self.years != 1 else ''}"
        return f"{self.years} year{'s' if self.years != 1 else ''} since first purchase"

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind, "years": self.years, "since": self.since.isoformat(),
                               "text": self.text}
        if self.event_id is not None:
            doc["event_id"] = self.event_id
        return doc


@dataclass(frozen=True, slots=True)
class Candidate:
    """A customer who may have an occasion in the window, with what the rules read."""

    customer_id: str
    name: str | None = None
    customer_number: str | None = None
    birthday: date | None = None
    first_purchase: date | None = None
    first_purchase_event: str | None = None
    address: Mapping[str, Any] | None = None
    address_verify: Sequence[str] = ()
    email: str | None = None
    timezone: str | None = None
    #: The customer's facts the contact policy reads (dicts with type, event_id, occurred_at,
    #: department, data, position), earlier greetings included, in any order.
    history: Sequence[Mapping[str, Any]] = ()
    identities: Sequence[str] = ()
    exclusions: Sequence[Exclusion] = ()


def occasions(candidate: Candidate, start: date, days: int) -> list[Occasion]:
    found = []
    if candidate.birthday is not None:
        found += [Occasion("birthday", day, years, candidate.birthday)
                  for day, years in anniversaries(candidate.birthday, start, days)]
    if candidate.first_purchase is not None:
        found += [Occasion("first_purchase", day, years, candidate.first_purchase,
                           candidate.first_purchase_event)
                  for day, years in anniversaries(candidate.first_purchase, start, days)]
    return sorted(found, key=lambda o: (o.day, o.kind))


# ----------------------------------------------------------------------------- the plan


@dataclass(slots=True)
class Plan:
    start: date
    end: date
    per_year: int
    greetings: list[dict[str, Any]] = field(default_factory=list)
    skipped: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {"from": self.start.isoformat(), "to": self.end.isoformat(),
                "days": (self.end - self.start).days + 1, "per_year": self.per_year,
                "greetings": self.greetings, "skipped": self.skipped}


def one_line(address: Mapping[str, Any] | None) -> str | None:
    """An address as written on an envelope, on one line."""
    if not address:
        return None
    street = " ".join(str(address[k]) for k in ("street", "number") if address.get(k))
    town = " ".join(str(address[k]) for k in ("postal_code", "city") if address.get(k))
    country = address.get("country")
    return ", ".join(p for p in (street, town, str(country) if country else "") if p)


def _earlier(greetings: Iterable[tuple[date, str | None]], day: date, limit: int
             ) -> list[tuple[date, str | None]] | None:
    """The greetings that leave no room for one more on ``day`` (None when there is room):
    at most ``limit`` in any ``YEAR_DAYS`` consecutive days."""
    near = sorted((g for g in greetings if abs((g[0] - day).days) < YEAR_DAYS),
                  key=lambda g: (g[0], g[1] or ""))
    if len(near) < limit:
        return None
    for back in range(YEAR_DAYS):
        first = day - timedelta(days=back)
        last = first + timedelta(days=YEAR_DAYS - 1)
        inside = [g for g in near if first <= g[0] <= last]
        if len(inside) >= limit:
            return near
    return None


def plan(candidates: Iterable[Candidate], *, start: date, days: int = 7, per_year: int = 1,
         policy: Policy | PolicyBook | None = None, channels: Sequence[str] = CHANNELS,
         position: int | None = None, head: int | None = None,
         hour: int = GREETING_HOUR) -> Plan:
    """Who to greet in the window, on which channel; and who not, with every reason.

    ``policy``: the contact policy (a :class:`PolicyBook` uses the version in force on each
    greeting date); None means no policy is asked. ``position``/``head``: the projection's
    and the store's positions, so a stale history fails closed as in ``journey can-contact``.
    """
    if per_year < 1:
        raise ValueError("per_year: at least 1")
    for channel in channels:
        if channel not in CHANNELS:
            raise ValueError(f"channel: {channel!r} is not one of {', '.join(CHANNELS)}")
    first, last = window(start, days)
    result = Plan(first, last, per_year)
    book = PolicyBook((policy,)) if isinstance(policy, Policy) else policy
    for candidate in candidates:
        found = occasions(candidate, first, days)
        if not found:
            continue
        history = ContactHistory(candidate.history)
        sent = [(greeting_date(f), str(f["event_id"])) for f in candidate.history
                if is_greeting(f)]
        planned: list[tuple[date, str | None]] = []
        by_day: dict[date, list[Occasion]] = {}
        for occasion in found:
            by_day.setdefault(occasion.day, []).append(occasion)
        for day, todays in sorted(by_day.items()):
            item = _decide(candidate, history, day, todays, sent + planned, per_year, book,
                           channels, position, head, hour)
            if item["channel"] is not None:
                planned.append((day, None))
                result.greetings.append(item)
            else:
                result.skipped.append(item)
    result.greetings.sort(key=_order)
    result.skipped.sort(key=_order)
    return result


def _order(item: dict[str, Any]) -> tuple[str, str, str]:
    return item["date"], item["name"] or "", item["customer_id"]


def _decide(candidate: Candidate, history: ContactHistory, day: date, todays: list[Occasion],
            greeted: list[tuple[date, str | None]], per_year: int, book: PolicyBook | None,
            channels: Sequence[str], position: int | None, head: int | None,
            hour: int) -> dict[str, Any]:
    tz = _zone(candidate.timezone or (book.latest.default_timezone if book else DEFAULT_TIMEZONE))
    at = datetime.combine(day, time(hour), tz)
    reasons: list[dict[str, Any]] = []
    blocking = _earlier(greeted, day, per_year)
    if blocking is not None:
        when = ", ".join(f"{d.isoformat()}" + ("" if e else " (planned in this run)")
                         for d, e in blocking)
        reasons.append({
            "code": "once_a_year", "channel": None,
            "message": (f"already greeted on {when}: at most {per_year} greeting(s) per customer in "
                        f"any {YEAR_DAYS} days"),
            "event_ids": [e for _, e in blocking if e]})
    chosen: str | None = None
    version: str | None = None
    for channel in channels:
        if channel == "letter" and not candidate.address:
            reasons.append({"code": "no_postal_address", "channel": channel,
                            "message": "no postal address on record", "event_ids": []})
            continue
        if channel == "email" and not candidate.email:
            reasons.append({"code": "no_email", "channel": channel,
                            "message": "no e-mail address on record", "event_ids": []})
            continue
        if book is not None:
            policy = book.in_force(at)
            decision = decide(history, channel=channel, purpose="commercial", at=at, campaign=CAMPAIGN,
                              policy=policy, exclusions=candidate.exclusions, position=position,
                              head=head, identities=candidate.identities)
            version = decision.policy_version
            if not decision.allowed:
                reasons += [{"code": r["code"], "channel": channel, "message": r["message"],
                             "event_ids": r["event_ids"]} for r in decision.to_json()["reasons"]]
                continue
        if blocking is None:
            chosen = channel  # reasons now say why earlier channels were passed over
        break
    return {
        "date": day.isoformat(),
        "at": at.isoformat(),
        "customer_id": candidate.customer_id,
        "customer_number": candidate.customer_number,
        "name": candidate.name,
        "occasion": "; ".join(o.text for o in todays),
        "occasions": [o.to_json() for o in todays],
        "channel": chosen,
        "to": (one_line(candidate.address) if chosen == "letter" else
               candidate.email if chosen == "email" else None),
        "address": dict(candidate.address) if candidate.address else None,
        "address_verify": list(candidate.address_verify),
        "email": candidate.email,
        "policy_version": version,
        "reasons": reasons,
    }


def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (KeyError, ValueError):
        return ZoneInfo(DEFAULT_TIMEZONE)
