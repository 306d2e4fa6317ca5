"""What the agent saw: re-run a recorded contact decision over the history it was made on.

For a ``contact.decided`` fact (``journey can-contact --record``): the customer's facts are read
from the event store up to the decision's ``as_of_position`` (the projection position the
decision read; else the position just before the decision), the policy version it names is
loaded, and :func:`domain.contact_policy.decide` is asked the same question (channel, purpose,
at, campaign). The store's head at decision time is taken as the position just before the
decision, so a ``stale`` verdict is recomputed too.

For a contact itself (``call.outbound``, ``email.sent``, ``sms.sent``, ``letter.sent``): the
contact was made, so the recorded verdict is "allowed"; the replay judges it at its
``occurred_at`` over the history recorded before it, by the policy version in force then.

Exclusion-list entries come from the exclusion store as it is now; entries carry the date they
apply from, so entries imported later but applying earlier do count (docs/audit.md).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from domain import catalogue
from domain.contact_policy import CONTACT_TYPES, Decision, Exclusion, PolicyBook, decide
from ledger.application import JourneyApplication, StoredFact, decode_notification
from projections import customer_view
from replay.asof import fold, through_position

DECISION = "contact.decided"
REPLAYABLE = (DECISION, *CONTACT_TYPES)
SCAN_BATCH = 5_000


class ReplayError(ValueError):
    """The event cannot be replayed (not a decision, or its policy version is unknown)."""


def find_event(app: JourneyApplication, event_id: str) -> StoredFact | None:
    """The recorded fact with this event id (a scan of the log; the index says if it exists)."""
    if not app.index.known_events([event_id]):
        return None
    head = app.recorder.max_notification_id() or 0
    position = 0
    while position < head:
        notifications = app.recorder.select_notifications(position, SCAN_BATCH, stop=head,
                                                          inclusive_of_start=False)
        if not notifications:
            break
        for n in notifications:
            sf = decode_notification(app, n)
            if sf.fact.get("event_id") == event_id:
                return sf
        position = notifications[-1].id
    return None


@dataclass
class Replayed:
    event: StoredFact
    customer_id: str
    channel: str
    purpose: str
    at: datetime
    campaign: str | None
    policy_version: str
    #: the history's last store position (inclusive).
    through: int
    facts: int
    recorded: dict[str, Any]
    recomputed: Decision

    @property
    def agree(self) -> bool:
        return (self.recorded["allowed"] == self.recomputed.allowed
                and sorted(self.recorded["codes"]) == sorted(r.code for r in self.recomputed.reasons))

    def to_json(self) -> dict[str, Any]:
        fact = self.event.fact
        return {
            "event_id": fact["event_id"], "type": fact["type"], "position": self.event.position,
            "customer_id": self.customer_id,
            "asked": {"channel": self.channel, "purpose": self.purpose, "at": self.at.isoformat(),
                      "campaign": self.campaign, "policy_version": self.policy_version},
            "history": {"through_position": self.through, "facts": self.facts},
            "recorded": self.recorded, "recomputed": self.recomputed.to_json(),
            "agree": self.agree,
        }


def _policy_facts(facts: Iterable[StoredFact]) -> list[dict[str, Any]]:
    out = []
    for sf in facts:
        fact = catalogue.upcast(sf.fact)
        out.append({"type": fact["type"], "event_id": fact["event_id"],
                    "occurred_at": fact["occurred_at"], "position": sf.position,
                    "department": fact.get("department"), "agent": fact.get("agent"),
                    "data": fact.get("data", {})})
    return out


def replay(app: JourneyApplication, event: StoredFact, book: PolicyBook,
           exclusions: Callable[[list[str]], list[Exclusion]] = lambda keys: []) -> Replayed:
    fact = event.fact
    kind = fact["type"]
    data = fact.get("data", {})
    customer_id = str(fact["customer_uuid"])
    before_event: str | None = None
    if kind == DECISION:
        channel, purpose = data["channel"], data["purpose"]
        at = catalogue.parse_instant(data["at"], "data.at")
        campaign = data.get("campaign")
        version = str(data["policy_version"])
        matching = [p for p in book.policies if p.version == version]
        if not matching:
            known = ", ".join(sorted(p.version for p in book.policies))
            raise ReplayError(f"the decision used policy version {version!r}, which is not in the "
                              f"policy file(s) (known: {known}); pass --policy with that version")
        policy = matching[0]
        as_of = data.get("as_of_position")
        through = int(as_of) if isinstance(as_of, int) else event.position - 1
        recorded = {"allowed": bool(data["allowed"]),
                    "codes": [r["code"] for r in data.get("reasons", [])],
                    "reasons": data.get("reasons", [])}
        position: int | None = through
        head: int | None = event.position - 1
    elif kind in CONTACT_TYPES:
        channel, purpose = CONTACT_TYPES[kind], data.get("purpose")
        if purpose is None:
            raise ReplayError(f"{kind} {fact['event_id']} has no purpose: the policy does not judge it")
        at = catalogue.parse_instant(fact["occurred_at"], "occurred_at")
        campaign = data.get("campaign")
        policy = book.in_force(at)
        version = policy.version
        through = event.position - 1
        recorded = {"allowed": True, "codes": [], "reasons": [],
                    "note": "the contact was made: the company acted as if it were allowed"}
        position = head = None
        before_event = fact["event_id"]
    else:
        raise ReplayError(f"{kind} is not a contact decision (replayable: {', '.join(REPLAYABLE)})")
    facts = through_position(app, customer_id, through)
    rendered = customer_view.render(fold(customer_id, facts))
    keys = [f"{i['kind']}:{i['value']}" for i in rendered["identities"]]
    verdict = decide(_policy_facts(facts), channel=channel, purpose=purpose, at=at, campaign=campaign,
                     policy=policy, exclusions=exclusions(keys), position=position, head=head,
                     identities=keys, before_event=before_event)
    return Replayed(event, customer_id, channel, purpose, at, campaign, version, through, len(facts),
                    recorded, verdict)
