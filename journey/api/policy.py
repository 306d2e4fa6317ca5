"""Who may call what, and which personal fields each role sees: the one place that says so.

docs/security.md renders these tables for people; tests/api/test_roles.py checks every endpoint
against them. A role either may call an endpoint (then it gets the document with the personal
fields its role may not see replaced by :data:`HIDDEN`) or gets 403.

Personal fields are found by *name*, wherever they occur in a response (the customer view, a
timeline event's ``data``, a case's history, the inbox...), following domain/personal.py's list
of personal data fields, plus the identity values a document carries as ``{"kind": K, "value":
V}`` (the view's identities, ``identity.linked`` facts), ``{"field": K, "value": V, "previous":
P}`` (the view's contact history) or ``"K:V"`` strings (the identity keys a merge moved).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import cache
from typing import Any, Final

from domain.catalogue import TYPES

#: What a hidden value reads as (the console shows "hidden for your role" for it). Not None:
#: a client must be able to tell "your role may not see it" from "nothing recorded".
HIDDEN: Final = "[hidden]"

#: Departments that occur in the data (journey/demo_data.py, docs/events.md); each is a role.
DEPARTMENTS: Final = ("sales", "customer_care", "outsourced_callcenter", "social_media", "stores",
                      "technical_service", "billing")
AUDITOR: Final = "auditor"
ANALYST: Final = "analyst"
ADMIN: Final = "admin"
ROLES: Final = (*DEPARTMENTS, AUDITOR, ANALYST, ADMIN)


class Permission(StrEnum):
    #: /api/customers/{ref}, its timeline and can-contact: one person's data; /api/violations
    #: (its reasons name people's phones and e-mails, as can-contact's do).
    READ_CUSTOMERS = "read customers"
    #: cases, promises, inbox, warranty: the departments' work lists (aggregates and cases).
    READ_LISTS = "read lists"
    #: POST /api/facts.
    WRITE_FACTS = "record facts"
    #: /api/tokens.
    MANAGE_TOKENS = "manage tokens"
    #: /api/audit/verify (the hash chains), /api/customers/{ref}/subject-access (the GDPR art. 15
    #: export), /api/customers/{ref}/contact-as-of and /api/decisions/{event_id}/replay (what the
    #: contact policy answered at a past instant): the auditors' desk.
    AUDIT = "audit the ledger"
    #: POST /api/customers/{ref}/forget (GDPR art. 17): irreversible, so a permission of its own.
    FORGET = "forget customers"
    #: /api/quarantine: the stored facts the projection set aside, with the readers' reasons,
    #: for anybody's record. Admin only: running the ledger, not auditing a person.
    READ_QUARANTINE = "read the quarantine"


_DEPARTMENT_PERMISSIONS = frozenset({Permission.READ_CUSTOMERS, Permission.READ_LISTS,
                                     Permission.WRITE_FACTS})
PERMISSIONS: Final[Mapping[str, frozenset[Permission]]] = {
    **{d: _DEPARTMENT_PERMISSIONS for d in DEPARTMENTS},
    AUDITOR: frozenset({Permission.READ_CUSTOMERS, Permission.READ_LISTS, Permission.AUDIT,
                        Permission.FORGET}),
    ANALYST: frozenset({Permission.READ_LISTS}),
    ADMIN: frozenset(Permission),
}


#: The group of data fields the catalogue does not declare for a fact's type.
UNDECLARED: Final = "undeclared"


@dataclass(frozen=True, slots=True)
class FieldGroup:
    """One category of personal data: the document keys and identity kinds it is made of."""

    title: str
    keys: frozenset[str]
    kinds: frozenset[str] = frozenset()


#: The categories of personal data a response may hold (domain/personal.py, docs/privacy.md).
#: The bank group names the fields the company's billing facts use or will use; no demo fact
#: carries one today, but a source that sends one is covered from its first fact.
GROUPS: Final[Mapping[str, FieldGroup]] = {
    "contact": FieldGroup(
        "name, birthday, postal address, phone, e-mail, social handle",
        frozenset({"name", "customer_name", "birthday", "address", "address_verify", "phone",
                   "email", "twitter", "handle"}),
        frozenset({"phone", "email", "twitter"})),
    "customer_numbers": FieldGroup(
        "customer number, loyalty card, the reference a merge named",
        frozenset({"customer_number", "loyalty_card", "from_ref"}),
        frozenset({"customer_id", "loyalty_card"})),
    "free_text": FieldGroup(
        "free texts: notes, answers, mentions, consent wording and evidence, subjects, reasons, "
        "warranty issues",
        frozenset({"text", "reason", "subject", "issue", "evidence"})),
    "national_id": FieldGroup(
        "national id (DNI/NIE, passport)",
        frozenset({"national_id", "dni", "nie", "passport"}),
        frozenset({"national_id"})),
    "bank": FieldGroup(
        "bank and payment data (IBAN, account, card, mandate)",
        frozenset({"iban", "bic", "swift", "bank", "bank_account", "account_number",
                   "account_holder", "card_number", "payment_card", "sepa_mandate", "mandate_id"})),
    #: Matched by what the catalogue does not say, not by name: see FieldPolicy._object.
    UNDECLARED: FieldGroup(
        "data fields the catalogue does not declare for the fact's type (whatever else a source "
        "sent: it may be anything, an IBAN or a national id under a name of its own)",
        frozenset()),
}

_ALL = frozenset(GROUPS)
#: A field nobody declared may hold any kind of personal data, so only the roles that may see
#: every kind see it.
_NOT_ALL = frozenset({UNDECLARED})
#: Which groups each role may see. Departments see full case histories; the personal fields
#: only where their work needs them: billing collects and refunds (bank, national id); sales,
#: customer care and stores sign contracts and check identities in person (national id), but
#: never handle payment data; technical service, the social desk and the outsourced call
#: centre talk to the customer and need nothing more than contact data and the free texts.
VISIBLE: Final[Mapping[str, frozenset[str]]] = {
    "billing": _ALL,
    "sales": _ALL - {"bank"} - _NOT_ALL,
    "customer_care": _ALL - {"bank"} - _NOT_ALL,
    "stores": _ALL - {"bank"} - _NOT_ALL,
    "technical_service": _ALL - {"bank", "national_id"} - _NOT_ALL,
    "social_media": _ALL - {"bank", "national_id"} - _NOT_ALL,
    "outsourced_callcenter": _ALL - {"bank", "national_id"} - _NOT_ALL,
    AUDITOR: _ALL,
    ADMIN: _ALL,
    ANALYST: frozenset(),
}

#: Keys whose value is an identity's value when the same object names the identity's kind.
_VALUE_KEYS = ("value", "previous", "verify")


@dataclass(frozen=True, slots=True)
class FieldPolicy:
    """The keys and identity kinds one role may not see."""

    keys: frozenset[str]
    kinds: frozenset[str]
    #: Hide the data fields a source sent that the catalogue does not declare for the type.
    undeclared: bool = False

    @property
    def hides_nothing(self) -> bool:
        return not self.keys and not self.kinds and not self.undeclared

    def redact(self, doc: Any) -> Any:
        """A copy of ``doc`` with every value this role may not see replaced by :data:`HIDDEN`."""
        if self.hides_nothing:
            return doc
        return self._walk(doc, None)

    def _walk(self, value: Any, key: str | None) -> Any:
        if isinstance(value, dict):
            return self._object(value)
        if isinstance(value, list):
            if key == "identities":
                return [self._identity_key(v) for v in value]
            return [self._walk(v, None) for v in value]
        return value

    def _object(self, obj: dict[str, Any]) -> dict[str, Any]:
        kind = obj.get("kind")
        field = obj.get("field")
        names_hidden_identity = (isinstance(kind, str) and kind in self.kinds
                                 and "value" in obj)
        names_hidden_field = isinstance(field, str) and field in self.keys
        declared = self._declared(obj)
        out: dict[str, Any] = {}
        for k, v in obj.items():
            if k in self.keys or ((names_hidden_identity or names_hidden_field) and k in _VALUE_KEYS):
                out[k] = HIDDEN
            elif k == "data" and declared is not None and isinstance(v, dict):
                data = self._object(v)
                out[k] = {dk: (dv if dk in declared else HIDDEN) for dk, dv in data.items()}
            else:
                out[k] = self._walk(v, k)
        return out

    def _declared(self, obj: dict[str, Any]) -> frozenset[str] | None:
        """The data fields the catalogue declares for the fact ``obj`` is (a timeline event, a
        case's history entry), when this role may not see undeclared ones; None otherwise. The
        ledger's own facts (source "ledger") hold nothing a source invented."""
        if not self.undeclared or obj.get("source") == "ledger":
            return None
        type_name = obj.get("type")
        spec = TYPES.get(type_name) if isinstance(type_name, str) else None
        return None if spec is None else frozenset(f.name for f in spec.fields)

    def _identity_key(self, item: Any) -> Any:
        if isinstance(item, str):
            kind, sep, _ = item.partition(":")
            return f"{kind}:{HIDDEN}" if sep and kind in self.kinds else item
        return self._walk(item, None)


@cache
def field_policy(role: str) -> FieldPolicy:
    hidden = [GROUPS[g] for g in GROUPS if g not in VISIBLE[role]]
    return FieldPolicy(keys=frozenset().union(*(g.keys for g in hidden)),
                       kinds=frozenset().union(*(g.kinds for g in hidden)),
                       undeclared=UNDECLARED not in VISIBLE[role])


def hidden_kinds(role: str) -> frozenset[str]:
    """Identity kinds a role may not look customers up by (a lookup would confirm the value)."""
    return field_policy(role).kinds


def permitted(role: str, permission: Permission) -> bool:
    return permission in PERMISSIONS.get(role, frozenset())


# -------------------------------------------------------------------- recording

#: Every department: the facts of talking with a customer (what was said on a call, a letter
#: sent, a consent or an objection the customer stated to that desk) and of the cases and
#: promises every department works on ("one department's promise is the company's promise").
_EVERY_DESK = frozenset(DEPARTMENTS)
#: The departments that sign contracts and check identities in person or on a contract call
#: (the same ones that may see national ids, see VISIBLE), and billing, whose contracts,
#: collections and refunds hang on them.
_SIGNING = frozenset({"sales", "customer_care", "stores", "billing"})

#: Which departments may record each fact type through ``POST /api/facts`` (docs/security.md
#: renders it, docs/decisions.md says why). Admin records every input type; auditor and analyst
#: record nothing (no WRITE_FACTS). The ledger's own types (``identity.unlinked``,
#: ``customer.forgotten``, ``contact.decided``) are absent: the catalogue refuses them as input
#: from everybody, and a forget goes through ``journey forget``. A type missing here is
#: recorded by admin only, so a type added to the catalogue is closed until decided.
RECORDERS: Final[Mapping[str, frozenset[str]]] = {
    # who the customer is: the desks that sign people up and check their papers
    "customer.registered": frozenset({"sales", "customer_care", "stores"}),
    "identity.linked": _SIGNING | {"social_media"},
    "address.changed": _SIGNING,
    # what the customer stated to the desk they were talking with
    "consent.given": _EVERY_DESK,
    "consent.withdrawn": _EVERY_DESK,
    "objection.recorded": _EVERY_DESK,
    "call.outbound": _EVERY_DESK,
    "call.inbound": _EVERY_DESK,
    "email.sent": _EVERY_DESK,
    "email.received": _EVERY_DESK,
    "letter.sent": _EVERY_DESK,
    "sms.sent": _EVERY_DESK,
    # the social desk listens to and answers the networks
    "social.mention": frozenset({"social_media"}),
    "social.reply": frozenset({"social_media"}),
    # the product in the customer's hands: stores sell and take it back, the technical service
    # examines it and decides the claim
    "store.visit": frozenset({"stores"}),
    "purchase.recorded": frozenset({"stores", "sales"}),
    "warranty.claim_filed": frozenset({"stores", "technical_service"}),
    "warranty.claim_decided": frozenset({"technical_service"}),
    # cases and promises: every department works on them
    "case.opened": _EVERY_DESK,
    "case.transferred": _EVERY_DESK,
    "case.note": _EVERY_DESK,
    "case.responded": _EVERY_DESK,
    "case.resolved": _EVERY_DESK,
    "case.reopened": _EVERY_DESK,
    "promise.made": _EVERY_DESK,
    "promise.kept": _EVERY_DESK,
    "promise.broken": _EVERY_DESK,
    # contracts: signed where people sign up, ended where they cancel or stop paying
    "contract.started": _SIGNING,
    "contract.ended": frozenset({"customer_care", "stores", "billing"}),
    # customer.merged, customer.unmerged: admin only (they move a whole history between people)
}


def may_record(role: str, type_name: str) -> bool:
    """Whether ``role`` may record facts of ``type_name`` through the API (unknown and ledger
    types: True, the catalogue's validation refuses them with its own reason)."""
    spec = TYPES.get(type_name)
    if spec is None or spec.system or role == ADMIN:
        return True
    return role in RECORDERS.get(type_name, frozenset())


def record_refusal(role: str, type_name: str, kind: object = None) -> str | None:
    """Why ``role`` may not record this fact, or None when it may. ``kind``: the identity kind
    of an ``identity.linked`` fact: a role does not link a kind of identity it may not see (it
    cannot check a value it is not shown)."""
    if not may_record(role, type_name):
        who = sorted(RECORDERS.get(type_name, frozenset()))
        by = f"recorded by {', '.join(who)} and admin" if who else "recorded by admin only"
        return f"type: role {role!r} may not record {type_name!r} ({by})"
    if (type_name == "identity.linked" and role != ADMIN and isinstance(kind, str)
            and kind in hidden_kinds(role)):
        return (f"data.kind: role {role!r} may not link identities of kind {kind!r} "
                "(it may not see them)")
    return None


def recorders_table() -> str:
    """The recording table as docs/security.md shows it (tests/api/test_roles.py compares)."""
    lines = ["| fact type | " + " | ".join(DEPARTMENTS) + " | admin |",
             "|---|" + "---|" * (len(DEPARTMENTS) + 1)]
    for name, spec in TYPES.items():
        if spec.system:
            cells = ["no"] * (len(DEPARTMENTS) + 1)
        else:
            cells = ["yes" if may_record(d, name) else "no" for d in DEPARTMENTS] + ["yes"]
        lines.append(f"| `{name}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
