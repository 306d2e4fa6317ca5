"""The unified customer view, as a pure fold over a customer's facts.

The state keeps, per section, the facts that matter to it, each sorted by when it happened
(``at``, UTC) and then by store position. Everything a department reads (current address,
consent state, case status) is derived from those sorted entries by :func:`render`. So the
state depends only on the SET of facts, not on the order they arrived in: a late upload, a
rebuild from zero, a different batch split, or two merged histories all give the same view.
The projection builds it from a customer's rows when somebody reads it
(projections/view_rows.py); the as-of views fold the store's facts themselves.
"""

from __future__ import annotations

import bisect
from datetime import UTC, datetime
from typing import Any

from domain import postal_codes
from domain.identity import ledger_uuid
from projections import cases as case_rules
from projections.rules import DEFAULT_RULES, Rules
from projections.warranty import judge_claims, warranty_ends

View = dict[str, Any]
Entry = dict[str, Any]

#: Which section of the state keeps a fact of each type (a fact may feed several).
SECTIONS: dict[str, tuple[str, ...]] = {
    "customer.registered": ("profile", "contact"),
    "identity.linked": ("contact",),
    "identity.unlinked": ("contact",),
    "address.changed": ("contact",),
    "consent.given": ("consent",),
    "consent.withdrawn": ("consent",),
    "objection.recorded": ("consent",),
    "purchase.recorded": ("product",),
    "warranty.claim_filed": ("claim",),
    "warranty.claim_decided": ("claim",),
    "promise.made": ("promise",),
    "promise.kept": ("promise",),
    "promise.broken": ("promise",),
    "contract.started": ("contract",),
    "contract.ended": ("contract",),
    "social.mention": ("social",),
    "social.reply": ("social",),
}
SECTION_NAMES = ("profile", "contact", "consent", "product", "claim", "case", "promise", "contract",
                 "social")


def utc_key(occurred_at: str) -> str:
    """A sortable UTC spelling of an ISO instant with offset."""
    moment = datetime.fromisoformat(occurred_at).astimezone(UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def entry_of(fact: dict[str, Any], position: int, recorded_at: str) -> Entry:
    """What the view keeps of one fact: enough to render it, nothing store-specific."""
    entry: Entry = {
        "at": utc_key(fact["occurred_at"]),
        "pos": position,
        "type": fact["type"],
        "event_id": fact["event_id"],
        "occurred_at": fact["occurred_at"],
        "recorded_at": recorded_at,
        "source": fact["source"],
        "id": fact["id"],
        "data": fact.get("data", {}),
    }
    for name in ("department", "agent"):
        if name in fact:
            entry[name] = fact[name]
    return entry


def new_view(customer_id: str) -> View:
    return {
        "customer_id": customer_id,
        "merged_from": [],
        "identities": {},
        "sections": {name: [] for name in SECTION_NAMES},
        "counts": {"events": 0, "by_channel": {}, "by_department": {}, "by_type": {}},
        "first_seen": None,
        "last_seen": None,
        "position": 0,
    }


def _sort_key(entry: Entry) -> tuple[str, int]:
    return entry["at"], entry["pos"]


def apply(view: View, fact: dict[str, Any], entry: Entry, channel: str | None) -> None:
    """Fold one fact into the state (order-insensitive, see the module docstring)."""
    kind = fact["type"]
    sections = view["sections"]
    names = ("case",) if kind.startswith("case.") else SECTIONS.get(kind, ())
    for name in names:
        bisect.insort(sections[name], entry, key=_sort_key)
    # (A personal value is None in an erased fact, whose customer was forgotten.)
    for ident_kind, value in fact["customer"].items():
        if value is None or (ident_kind == "customer_id" and ledger_uuid(value) is not None):
            continue  # a ledger id names the customer; it is not one of their identities
        _see_identity(view, f"{ident_kind}:{value}", entry)
    if kind == "customer.registered":
        for ident_kind in ("phone", "email", "twitter"):
            if fact["data"].get(ident_kind) is not None:
                _see_identity(view, f"{ident_kind}:{fact['data'][ident_kind]}", entry)
    elif kind == "identity.linked" and fact["data"].get("value") is not None:
        _see_identity(view, f"{fact['data']['kind']}:{fact['data']['value']}", entry)
    elif kind == "customer.merged":
        view["merged_from"] = sorted({*view["merged_from"], fact["data"]["from"]})
    elif kind == "customer.unmerged":
        view["merged_from"] = [m for m in view["merged_from"] if m != fact["data"]["from"]]
    counts = view["counts"]
    counts["events"] += 1
    _bump(counts["by_type"], kind)
    if channel:
        _bump(counts["by_channel"], channel)
    if "department" in fact:
        _bump(counts["by_department"], fact["department"])
    view["position"] = max(view["position"], entry["pos"])
    if kind == "customer.forgotten":
        tombstone(view, entry)
    if kind in ("customer.merged", "customer.unmerged", "customer.forgotten"):
        return  # bookkeeping about records, not a moment the person was in touch
    at = entry["at"]
    if view["first_seen"] is None or at < view["first_seen"]:
        view["first_seen"] = at
    if view["last_seen"] is None or at > view["last_seen"]:
        view["last_seen"] = at


#: What a tombstone keeps of the analysts' summary (counts, nothing personal).
KEPT = ("kind", "cases", "open_cases", "open_promises", "products", "active_objections")


def tombstone(view: View, entry: Entry) -> None:
    """The customer was forgotten: keep the counts, drop everything that could name them.

    The same state whether the earlier facts were folded in clear (live) or erased (a rebuild
    after the keys were destroyed): the kept counts read only public fields."""
    if view.get("forgotten"):
        return
    before = summary(view)
    view["forgotten"] = True
    view["forgotten_at"] = entry["at"]
    view["kept"] = {k: before[k] for k in KEPT}
    view["identities"] = {}
    view["sections"] = {name: [] for name in SECTION_NAMES}


def _bump(counter: dict[str, int], key: str) -> None:
    counter[key] = counter.get(key, 0) + 1


def _see_identity(view: View, key: str, entry: Entry) -> None:
    known = view["identities"].get(key)
    mark = {"since": entry["at"], "pos": entry["pos"], "event_id": entry["event_id"],
            "source": entry["source"]}
    if known is None or (mark["since"], mark["pos"]) < (known["since"], known["pos"]):
        view["identities"][key] = mark


# ----------------------------------------------------------------------------- rendering


def render(view: View, now: datetime | None = None, rules: Rules = DEFAULT_RULES) -> dict[str, Any]:
    """The view every department reads, derived from the state, under the ledger's ``rules``
    (the complaint deadline of its cases)."""
    if view.get("forgotten"):
        return _forgotten(view, now, rules)
    sections = view["sections"]
    profile = _profile(sections["profile"])
    contact, contact_history, unlinked = _contact(sections["contact"])
    identities = [
        {"kind": key.split(":", 1)[0], "value": key.split(":", 1)[1], **mark}
        for key, mark in sorted(view["identities"].items())
        if key not in unlinked or unlinked[key] < (mark["since"], mark["pos"])
    ]
    number = next((i["value"] for i in identities if i["kind"] == "customer_id"), None)
    return {
        "customer_id": view["customer_id"],
        "customer_number": number,
        "kind": "customer" if profile else "prospect",
        **(profile or {}),
        "identities": identities,
        "contact": contact,
        "contact_history": contact_history,
        **_consents(sections["consent"]),
        "products": _products(sections["product"]),
        "warranty_claims": _claims(sections["claim"], sections["product"]),
        "cases": _cases(sections["case"], sections["promise"], now, rules.complaint_days),
        "promises": _promises(sections["promise"], now),
        "contracts": _contracts(sections["contract"]),
        "social": _social(sections["social"]),
        "counts": view["counts"],
        "first_seen": view["first_seen"],
        "last_seen": view["last_seen"],
        "merged_from": view["merged_from"],
        # Store positions of this customer's facts the projection could not handle: the
        # view is built without them (``journey quarantine``).
        "quarantined": view.get("quarantined", []),
    }


def _forgotten(view: View, now: datetime | None, rules: Rules) -> dict[str, Any]:
    """A tombstone, rendered: the shape of a view, nothing personal, the counts kept."""
    rendered = render({**view, "forgotten": False}, now, rules)
    return {**rendered, "kind": view["kept"]["kind"], "name": None, "forgotten": True,
            "forgotten_at": view["forgotten_at"], "kept": view["kept"]}


def summary(view: View) -> dict[str, Any]:
    """The few derived fields the analysts' ``customers`` table holds, without rendering
    every history (the projection computes this for each touched customer of each batch)."""
    if view.get("forgotten"):
        counted = summary({**view, "forgotten": False})
        return {**counted, **view["kept"], "forgotten": True}
    sections = view["sections"]
    profile = _profile(sections["profile"])
    contact, _, unlinked = _contact(sections["contact"], verify=False)
    identities = [
        key for key, mark in sorted(view["identities"].items())
        if key not in unlinked or unlinked[key] < (mark["since"], mark["pos"])
    ]
    case_status: dict[str, str] = {}  # the same rules as _cases, without the histories
    for e in sections["case"]:
        case_id = e["data"]["case_id"]
        case_status.setdefault(case_id, "open")
        if e["type"] == "case.resolved":
            case_status[case_id] = "resolved"
        elif e["type"] == "case.reopened":
            case_status[case_id] = "open"
    promise_status: dict[str, str] = {}  # the same rules as _promises
    for e in sections["promise"]:
        pid = e["data"]["promise_id"]
        promise_status.setdefault(pid, "open")
        if e["type"] != "promise.made":
            promise_status[pid] = e["type"]
    objections = _consents(sections["consent"])["objections"]
    return {
        "customer_id": view["customer_id"],
        "customer_number": next((k.split(":", 1)[1] for k in identities
                                 if k.startswith("customer_id:")), None),
        "kind": "customer" if profile else "prospect",
        **(profile or {}),
        "identities": identities,
        "contact": contact,
        "events": view["counts"]["events"],
        "first_seen": view["first_seen"],
        "last_seen": view["last_seen"],
        "cases": len(case_status),
        "open_cases": sum(1 for s in case_status.values() if s == "open"),
        "open_promises": sum(1 for s in promise_status.values() if s == "open"),
        "products": len(sections["product"]),
        "active_objections": sum(1 for o in objections if o["active"]),
        "departments": sorted(view["counts"]["by_department"]),
        "merged_from": view["merged_from"],
    }


def _who(entry: Entry) -> dict[str, Any]:
    return {k: entry[k] for k in ("occurred_at", "recorded_at", "department", "agent", "source",
                                  "event_id") if k in entry}


def _profile(entries: list[Entry]) -> dict[str, Any] | None:
    registrations = [e for e in entries if e["type"] == "customer.registered"]
    if not registrations:
        return None
    first, last = registrations[0], registrations[-1]
    data = last["data"]
    return {
        "name": data.get("name"),
        "birthday": data.get("birthday"),
        "language": data.get("language"),
        "timezone": data.get("timezone", "Europe/Madrid"),
        "registered_at": first["occurred_at"],
    }


def _contact(entries: list[Entry], verify: bool = True
             ) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """Current contact data, its history and the identities unlinked; ``verify=False`` skips
    the postal-code checks (the analysts' summary, computed for every touched customer)."""
    current: dict[str, Any] = {"address": None, "phone": None, "email": None, "twitter": None}
    history: list[dict[str, Any]] = []
    unlinked: dict[str, tuple[str, int]] = {}
    for e in entries:
        data = e["data"]
        changes: list[tuple[str, Any]] = []
        if e["type"] == "customer.registered":
            changes = [(k, data[k]) for k in ("address", "phone", "email", "twitter") if k in data]
        elif e["type"] == "address.changed":
            changes = [("address", data["address"])]
        elif e["type"] == "identity.linked" and data["kind"] in current:
            changes = [(data["kind"], data["value"])]
        elif e["type"] == "identity.unlinked":
            unlinked[f"{data['kind']}:{data['value']}"] = (e["at"], e["pos"])
            if current.get(data["kind"]) == data["value"]:
                changes = [(data["kind"], None)]
        for name, value in changes:
            change = {"field": name, "value": value, "previous": current[name],
                      "reason": data.get("reason"), "change": e["type"], **_who(e)}
            if name == "address" and verify:  # recorded as given, flagged for verification
                change["verify"] = postal_codes.check(value)
            if e["type"] == "address.changed":  # anything but the customer's own request is notified
                change["requested_by"] = data.get("requested_by", "company")
                change["customer_notified"] = change["requested_by"] != "customer"
            history.append(change)
            current[name] = value
    if verify:
        current["address_verify"] = postal_codes.check(current["address"])
    return current, history, unlinked


def _covers(channels: Any, channel: str) -> bool:
    return channels == "all" or channel == "any" or channel in channels or "any" in channels


def _consents(entries: list[Entry]) -> dict[str, Any]:
    state: dict[str, dict[str, Any]] = {}
    history: list[dict[str, Any]] = []
    objections: list[dict[str, Any]] = []
    for e in entries:
        data = e["data"]
        if e["type"] == "objection.recorded":
            objections.append({"channels": data.get("channels", "all"),
                               "purpose": data.get("purpose", "commercial"), "active": True,
                               **_who(e)})
            continue
        given = e["type"] == "consent.given"
        item = {"channel": data["channel"], "purpose": data["purpose"],
                "state": "given" if given else "withdrawn", "text": data.get("text"),
                "evidence": data.get("evidence"), **_who(e)}
        history.append(item)
        state[f"{data['channel']}/{data['purpose']}"] = item
        if given:  # a new consent lifts earlier objections for that purpose and channel
            for objection in objections:
                if objection["purpose"] == data["purpose"] and _covers(objection["channels"],
                                                                       data["channel"]):
                    objection["active"] = False
    return {"consents": sorted(state.values(), key=lambda c: (c["channel"], c["purpose"])),
            "consent_history": history, "objections": objections}


def _products(entries: list[Entry]) -> list[dict[str, Any]]:
    return [
        {**{k: e["data"].get(k) for k in ("product", "serial", "store", "invoice", "price")},
         "purchased_at": e["occurred_at"], "warranty_months": e["data"].get("warranty_months", 24),
         "warranty_ends": warranty_ends(e), **_who(e)}
        for e in entries
    ]


def _claims(entries: list[Entry], purchases: list[Entry]) -> list[dict[str, Any]]:
    claims = []
    for c in judge_claims(entries, purchases):
        filing, decision, purchase = c["filing"], c["decision"], c["purchase"]
        claim: dict[str, Any] = {"claim_id": c["claim_id"], "status": c["status"]}
        if filing is not None:
            claim.update(serial=c["serial"], issue=filing["data"].get("issue"), filed=_who(filing),
                         product_known=purchase is not None, warranty_ends=c["warranty_ends"],
                         in_warranty=bool(c["in_warranty"]),
                         product=purchase["data"].get("product") if purchase else None)
        if decision is not None:
            claim.update(reason=decision["data"].get("reason"), decided=_who(decision))
        claim["flags"] = c["flags"]
        claims.append(claim)
    return claims


def _cases(entries: list[Entry], promises: list[Entry] | None = None, now: datetime | None = None,
           days: int = DEFAULT_RULES.complaint_days) -> list[dict[str, Any]]:
    """Case records, clocks and contradictions: the rules live in projections/cases.py."""
    records = case_rules.case_records(entries, promises or [], days)
    for case in records:
        case["overdue"] = case_rules.is_overdue(case, now)
    return records


def _promises(entries: list[Entry], now: datetime | None) -> list[dict[str, Any]]:
    promises = case_rules.promise_records(entries)
    for promise in promises:
        due = promise["due_at"]
        promise["overdue"] = bool(now is not None and promise["status"] == "open" and due is not None
                                  and datetime.fromisoformat(due) < now)
    return promises


def _contracts(entries: list[Entry]) -> list[dict[str, Any]]:
    contracts: dict[str, dict[str, Any]] = {}
    for e in entries:
        data = e["data"]
        contract = contracts.setdefault(data["contract_id"], {"contract_id": data["contract_id"],
                                                              "service": data.get("service"),
                                                              "started_at": None, "ended_at": None})
        if e["type"] == "contract.started":
            contract.update(service=data["service"], started_at=e["occurred_at"], ended_at=None)
        else:
            contract["ended_at"] = e["occurred_at"]
    return list(contracts.values())


def _social(entries: list[Entry]) -> dict[str, Any]:
    from projections.inbox import first_replies, response_seconds  # the inbox's rules

    answers = first_replies(entries)
    mentions = sorted((e for e in entries if e["type"] == "social.mention"),
                      key=lambda e: (e["at"], e["event_id"]))  # ties: never by position
    unanswered = [
        {"mention_id": e["id"], "network": e["data"]["network"], "handle": e["data"].get("handle"),
         "to": e["data"].get("to"), "text": e["data"]["text"], **_who(e)}
        for e in mentions if e["event_id"] not in answers
    ]
    answered = []
    for e in mentions:
        if e["event_id"] in answers:
            reply = answers[e["event_id"]][0]
            answered.append({
                "mention_id": e["id"], "network": e["data"]["network"],
                "mentioned_at": e["occurred_at"], "replied_at": reply["occurred_at"],
                "reply_department": reply.get("department"), "reply_agent": reply.get("agent"),
                "response_s": response_seconds(e, reply)})
    return {"mentions": len(mentions), "replies": len(entries) - len(mentions),
            "unanswered": unanswered, "answered": answered}
