"""Deterministic generator of a realistic customer-touchpoint dataset.

Used by ``journey demo`` (thousands of customers, tens of thousands of facts over
months) and by the benchmark (scaled to 1M+ facts). Every fact is a JSON-able dict
following the ledger's fact contract::

    {"type": "call.outbound", "id": "c-0001", "source": "callcenter-1004",
     "customer": {"phone": "+34600000001"}, "occurred_at": "2026-03-09T22:00:00+01:00",
     "department": "sales", "agent": "A-17",
     "data": {"purpose": "commercial", "campaign": "fibra", "outcome": "not_interested"}}

Design notes (speed): one ``random.Random(seed)``, precomputed lookup tables (names,
cities, postal codes, per-day ISO prefixes and Europe/Madrid offsets, ``HH:MM:SS``
strings), no datetime arithmetic per fact. All generated local times fall between
06:00 and 24:00 so a per-day offset (taken at noon) is always the correct Madrid
offset, DST switch days included.

Facts are collected, then emitted in the order a live ledger would have recorded them,
each with the instant it was recorded (:func:`recorded`): most seconds to minutes after
they happened (a source's queue, a clerk's screen), and two kinds late: ~11% of the call
centres' calls and notes, uploaded 1-8 days later, and the day's sales, visits and claims
of a store whose till was offline that day, uploaded in the night's batch. A person's
facts that came in on time are recorded in the order they happened (one source's queue
never overtakes itself, and a loyalty card is linked before the visit that shows it), so
the only facts recorded after something that happened later are the late uploads.
"""

from __future__ import annotations

import gc
import io
import os
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta
from functools import cache
from math import log
from random import Random
from typing import IO, Any, Final
from zoneinfo import ZoneInfo

import orjson

__all__ = [
    "BRAND_HANDLE",
    "CATALOGUE",
    "DEPARTMENTS",
    "bad_lines",
    "generate",
    "recorded",
    "stories",
    "write_jsonl",
]

MADRID: Final = ZoneInfo("Europe/Madrid")
BRAND_HANDLE: Final = "@ondaluz"

DEPARTMENTS: Final = (
    "sales",
    "customer_care",
    "social_media",
    "stores",
    "technical_service",
    "billing",
    "outsourced_callcenter",
)

CATALOGUE: Final = (
    "customer.registered",
    "identity.linked",
    "address.changed",
    "consent.given",
    "consent.withdrawn",
    "objection.recorded",
    "call.outbound",
    "call.inbound",
    "social.mention",
    "social.reply",
    "store.visit",
    "email.sent",
    "email.received",
    "letter.sent",
    "sms.sent",
    "purchase.recorded",
    "warranty.claim_filed",
    "warranty.claim_decided",
    "case.opened",
    "case.transferred",
    "case.note",
    "case.responded",
    "case.resolved",
    "case.reopened",
    "promise.made",
    "promise.kept",
    "promise.broken",
    "contract.started",
    "contract.ended",
)

# --------------------------------------------------------------------------- tables

_FIRST: Final = (
    "Lucía", "María", "Paula", "Laura", "Marta", "Carmen", "Ana", "Sofía", "Julia", "Elena",
    "Irene", "Nerea", "Ainhoa", "Montserrat", "Núria", "Rocío", "Pilar", "Cristina", "Alba",
    "Sara", "Hugo", "Martín", "Daniel", "Pablo", "Alejandro", "Javier", "David", "Sergio",
    "Jorge", "Manuel", "Carlos", "Jordi", "Iker", "Xabier", "Álvaro", "Adrián", "Raúl",
    "Miguel", "Antonio", "José", "Francisco", "Iván", "Rubén", "Óscar", "Marc", "Pau",
)
_LAST: Final = (
    "García", "Fernández", "González", "Rodríguez", "López", "Martínez", "Sánchez", "Pérez",
    "Gómez", "Martín", "Jiménez", "Ruiz", "Hernández", "Díaz", "Moreno", "Muñoz", "Álvarez",
    "Romero", "Alonso", "Gutiérrez", "Navarro", "Torres", "Domínguez", "Vázquez", "Ramos",
    "Gil", "Ramírez", "Serrano", "Blanco", "Molina", "Morales", "Suárez", "Ortega", "Delgado",
    "Castro", "Ortiz", "Rubio", "Marín", "Sanz", "Iglesias", "Puig", "Etxeberria", "Castells",
)
_ASCII: Final = str.maketrans("áéíóúüñçÁÉÍÓÚÜÑÇ", "aeiouuncAEIOUUNC")


def _ascii_lower(s: str) -> str:
    return s.translate(_ASCII).lower()


_FIRST_A: Final = tuple(_ascii_lower(f) for f in _FIRST)
_LAST_A: Final = tuple(_ascii_lower(f) for f in _LAST)
_MAIL_DOMAINS: Final = (
    "gmail.com", "gmail.com", "gmail.com", "hotmail.com", "hotmail.es", "yahoo.es",
    "outlook.com", "telefonica.net", "icloud.com",
)

# city, 2-digit province prefix, number of postal districts, store codes, timezone,
# (language, probability) for a regional language
_CITIES: Final[tuple[tuple[str, str, int, tuple[str, ...], str, str, float], ...]] = (
    ("Madrid", "28", 55, ("MAD01", "MAD02", "MAD03"), "Europe/Madrid", "es", 0.0),
    ("Barcelona", "08", 42, ("BCN01", "BCN02"), "Europe/Madrid", "ca", 0.45),
    ("Sevilla", "41", 20, ("SVQ01",), "Europe/Madrid", "es", 0.0),
    ("Valencia", "46", 26, ("VLC01",), "Europe/Madrid", "ca", 0.15),
    ("Bilbao", "48", 15, ("BIO01",), "Europe/Madrid", "eu", 0.25),
    ("Zaragoza", "50", 18, ("ZAZ01",), "Europe/Madrid", "es", 0.0),
    ("Málaga", "29", 18, ("AGP01",), "Europe/Madrid", "es", 0.0),
    ("Las Palmas de Gran Canaria", "35", 19, ("LPA01",), "Atlantic/Canary", "es", 0.0),
    ("A Coruña", "15", 11, ("LCG01",), "Europe/Madrid", "gl", 0.3),
    ("Valladolid", "47", 16, ("VLL01",), "Europe/Madrid", "es", 0.0),
    ("Murcia", "30", 12, ("MJV01",), "Europe/Madrid", "es", 0.0),
    ("Palma", "07", 15, ("PMI01",), "Europe/Madrid", "ca", 0.3),
    ("Alicante", "03", 16, ("ALC01",), "Europe/Madrid", "es", 0.0),
    ("Granada", "18", 15, ("GRX01",), "Europe/Madrid", "es", 0.0),
    ("Donostia-San Sebastián", "20", 18, ("EAS01",), "Europe/Madrid", "eu", 0.35),
    ("Santander", "39", 12, ("SDR01",), "Europe/Madrid", "es", 0.0),
    ("Oviedo", "33", 13, ("OVD01",), "Europe/Madrid", "es", 0.0),
    ("Pamplona", "31", 16, ("PNA01",), "Europe/Madrid", "eu", 0.1),
)
# population-ish weights, expanded into a lookup table
_CITY_WEIGHTS: Final = (30, 18, 7, 8, 4, 5, 5, 4, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2)
_CITY_TABLE: Final = tuple(i for i, w in enumerate(_CITY_WEIGHTS) for _ in range(w))
_POSTAL: Final = tuple(
    tuple(f"{p}{n:03d}" for n in range(1, k + 1)) for (_, p, k, *_rest) in _CITIES
)
_STREETS: Final = (
    "Calle Mayor", "Calle Real", "Avenida de la Constitución", "Calle del Sol", "Gran Vía",
    "Calle San Juan", "Paseo de la Castellana", "Calle Nueva", "Avenida de América",
    "Calle de Alcalá", "Carrer de Balmes", "Calle Sierpes", "Calle Colón", "Calle Luna",
    "Avenida del Puerto", "Calle de la Iglesia", "Plaza de España", "Calle Ancha",
    "Calle Doctor Fleming", "Avenida de Andalucía", "Calle Larios", "Calle Uría",
)

_STORES: Final = tuple(s for c in _CITIES for s in c[3])
_STORE_SOURCE: Final = {s: f"pos-{s}" for s in _STORES}
_STORE_SOURCES: Final = frozenset(_STORE_SOURCE.values())

_CAMPAIGNS: Final = ("fibra", "fibra", "movil", "movil", "tv", "energia")
_SERVICES: Final = {
    "fibra": ("fibra_300", "fibra_600", "fibra_1g"),
    "movil": ("movil_20gb", "movil_ilimitado", "movil_familia"),
    "tv": ("tv_futbol", "tv_cine", "tv_total"),
    "energia": ("luz_tarifa_fija", "luz_discriminacion", "gas_hogar"),
}
_ALL_SERVICES: Final = tuple(s for v in _SERVICES.values() for s in v)
_OUTCOMES: Final = (
    ("no_answer", 30), ("voicemail", 12), ("answered", 15), ("not_interested", 20),
    ("knows_offers", 8), ("hung_up", 8), ("sale", 7),
)
_OUTCOME_TABLE: Final = tuple(o for o, w in _OUTCOMES for _ in range(w))
_SERVICE_OUTCOMES: Final = ("answered",) * 6 + ("no_answer",) * 3 + ("voicemail",)
_INBOUND_REASONS: Final = (
    "billing question", "no signal", "router not working", "change tariff",
    "cancel service", "ask about an offer", "unexpected charge", "moving house",
    "slow internet", "tv decoder error", "portability request", "don't call me again",
)
_STORE_REASONS: Final = (
    "browse", "new phone", "pay invoice", "sim replacement", "technical help",
    "change tariff", "warranty question", "return product", "pick up order",
)
_PRODUCTS: Final = (
    ("Smartphone Galaxy A55", 379.0), ("Smartphone iPhone 15", 859.0),
    ("Smartphone Redmi Note 13", 219.0), ("Router WiFi 6 Mesh", 129.0),
    ("Tablet Galaxy Tab A9", 199.0), ("Smartwatch Watch6", 249.0),
    ("Auriculares Buds FE", 89.0), ("TV 55'' 4K", 549.0), ("Decodificador UHD", 99.0),
    ("Smartphone Pixel 8a", 499.0),
)
_ISSUES: Final = (
    "screen flickers", "battery drains fast", "does not charge", "no wifi signal",
    "speaker broken", "reboots randomly", "camera out of focus", "dead on arrival",
)
_CASE_SUBJECTS: Final = {
    "complaint": (
        "charged twice", "unexpected charge on invoice", "rude agent", "promised discount "
        "not applied", "calls after opting out", "installation appointment missed",
    ),
    "incident": (
        "no internet", "intermittent fibre cuts", "no mobile coverage at home",
        "tv channels missing", "router reboots", "slow speed",
    ),
    "request": (
        "change bank account", "duplicate invoice", "change tariff", "cancel contract",
        "move service to new address", "add a mobile line",
    ),
}
_CASE_KINDS: Final = ("complaint",) * 4 + ("incident",) * 4 + ("request",) * 3
_CASE_DEPT: Final = {
    "complaint": "customer_care",
    "incident": "technical_service",
    "request": "customer_care",
    "warranty": "technical_service",
}
_TRANSFER_TO: Final = ("billing", "technical_service", "sales", "customer_care", "stores")
_TRANSFER_REASONS: Final = (
    "needs billing adjustment", "technical diagnosis required", "commercial offer",
    "escalation", "store must check the device", "wrong queue",
)
_NOTES: Final = (
    "customer called again asking for news", "waiting for field technician",
    "checked line remotely, no faults", "customer not reachable",
    "customer says they moved, address on file is old", "sent instructions by e-mail",
    "customer upset, asked for a supervisor", "invoice reviewed",
)
_RESPONSES: Final = (
    "we have applied a credit on your next invoice", "a technician will visit you",
    "the charge is correct according to your tariff", "the issue has been fixed remotely",
    "we cannot offer a discount on this tariff", "your request has been processed",
)
_RESOLUTIONS: Final = (
    "credit applied", "fixed remotely", "technician visit", "explained invoice",
    "request completed", "no action possible", "customer withdrew complaint",
)
_PROMISES: Final = (
    "call back within 48 hours", "10% discount on next invoice", "technician visit",
    "refund the duplicate charge", "send a replacement router", "apply the promised tariff",
)
_CONSENT_CHANNELS: Final = ("phone", "sms", "email", "letter", "social", "any")
_OBJECTION_CHANNELS: Final = (
    "all", "all", "all", ("phone",), ("phone", "sms"), ("email",), ("phone", "email", "sms"),
)
_ADDRESS_REASONS: Final = {
    "customer_care": ("customer request", "customer moved", "typo fixed on request"),
    "billing": ("data cleanup", "returned letter", "postal normalisation", "invoice bounced"),
}
_REQUESTED_BY: Final = {"customer_care": "customer", "billing": "company"}
_MENTION_TEXTS: Final = (
    "three days without internet, anyone there?", "thanks for the quick fix!",
    "why am I charged twice this month?", "your call centre keeps calling me",
    "is there an outage in my area?", "great new fibre offer", "worst customer service ever",
    "still waiting for the technician", "how do I change my tariff?",
)
_REPLY_TEXTS: Final = (
    "Hi! Please send us a DM with your customer number.", "Sorry about that, we are on it.",
    "Thanks for your message! Checking it now.", "Glad to help :)",
    "There is a known outage in your area, fixing it.",
)
_COMMERCIAL_SUBJECTS: Final = {
    "fibra": ("Fibra 1Gb a mitad de precio", "Sube tu velocidad"),
    "movil": ("Gigas ilimitados", "Añade una línea gratis"),
    "tv": ("Todo el fútbol este año", "Estrenos de cine en casa"),
    "energia": ("Tarifa de luz fija", "Ahorra en tu factura de gas"),
}
_SERVICE_SUBJECTS: Final = (
    "Your invoice is ready", "Appointment confirmation", "Case update",
    "Change of conditions", "Welcome to Ondaluz", "Payment reminder",
)
_RECEIVED_SUBJECTS: Final = (
    "Re: your invoice", "complaint", "question about my contract", "cancellation",
    "Re: appointment", "I no longer want advertising",
)
_DNI_LETTERS: Final = "TRWAGMYFPDXBNJZSQVHLCKE"

# sources and their id prefixes; ids are prefix + a global counter, unique per source
_PREFIX: dict[str, str] = {
    "crm": "crm-",
    "callcenter-1004": "c-",
    "callcenter-ext-2001": "xa-",
    "callcenter-ext-2002": "xb-",
    "social-listener": "m-",
    "social-desk": "r-",
    "mailer": "e-",
    "mailbox": "in-",
    "letters": "l-",
    "sms-gw": "s-",
    "ticketing": "t-",
    "billing": "b-",
    "contracts": "k-",
    "consent-hub": "g-",
    "warranty-svc": "w-",
}
for _s in _STORES:
    _PREFIX[_STORE_SOURCE[_s]] = f"v{_s.lower()}-"

_AGENTS: Final = {
    "sales": tuple(f"A-{i}" for i in range(1, 61)),
    "outsourced_callcenter": tuple(f"X-{i}" for i in range(101, 221)),
    "customer_care": tuple(f"CC-{i}" for i in range(1, 41)),
    "technical_service": tuple(f"T-{i}" for i in range(1, 26)),
    "billing": tuple(f"B-{i}" for i in range(1, 16)),
    "stores": tuple(f"S-{i}" for i in range(1, 81)),
    "social_media": tuple(f"SM-{i}" for i in range(1, 9)),
}
_OUTSOURCED_SOURCES: Final = ("callcenter-ext-2001", "callcenter-ext-2002")

_EPOCH: Final = date(1970, 1, 1)
DAY: Final = 86400
HOUR: Final = 3600
_LATE_P: Final = 0.11  # share of call-centre calls/notes uploaded late (≈2% of all facts)
_OFFLINE_P: Final = 0.04  # share of a store's days whose facts come in the night's batch
_BATCH_AT: Final = 2 * HOUR  # when a store's night batch starts: 02:00 local, the day after
#: A prompt fact is recorded this many seconds after it happened, at most (x**3 of it: most
#: within a minute or two, a few after several minutes).
_PROMPT_LAG: Final = 600


@cache
def _hms() -> tuple[str, ...]:
    return tuple(f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}" for s in range(DAY))


# ------------------------------------------------------------------------ customers


class _Cust:
    __slots__ = (
        "card", "cid", "city", "contracts", "email", "name", "nid", "phone", "purchases",
        "store", "twitter",
    )

    def __init__(self) -> None:
        self.cid = ""
        self.name = ""
        self.phone = ""
        self.email = ""
        self.twitter: str | None = None
        self.card: str | None = None
        self.nid: str | None = None
        self.city = 0
        self.store = ""
        self.purchases: list[tuple[int, str, str]] = []  # (t, serial, product)
        self.contracts: list[tuple[str, str]] = []  # (contract_id, service)


class _Gen:
    """Accumulates facts; times are local seconds since ``start`` midnight."""

    def __init__(self, seed: int, start: date, days: int, per_customer: float) -> None:
        self.rng = Random(seed)
        self.r = self.rng.random
        # Recording delays have their own generator: the facts are the same with or without them.
        self.lag = Random(f"recording-{seed}").random
        #: (occurred second, index) of the current person's facts recorded on time.
        self.prompt: list[tuple[int, int]] = []
        self.offline_days: dict[tuple[str, int], bool] = {}
        self.days = days
        self.end_t = days * DAY
        self.per_customer = per_customer
        self.keys: list[int] = []
        self.facts: list[dict[str, Any]] = []
        self.n = 0
        self.case_n = 0
        self.hms = _hms()
        # per-day tables (one extra week so follow-ups never index out of range)
        prefixes: list[str] = []
        offs: list[str] = []
        base: list[int] = []
        for d in range(days + 60):
            day = start + timedelta(days=d)
            noon = datetime(day.year, day.month, day.day, 12, tzinfo=MADRID)
            off = noon.utcoffset()
            assert off is not None
            off_s = int(off.total_seconds())
            prefixes.append(day.isoformat() + "T")
            offs.append(f"{'+' if off_s >= 0 else '-'}{abs(off_s) // 3600:02d}:"
                        f"{abs(off_s) // 60 % 60:02d}")
            base.append((day - _EPOCH).days * DAY - off_s - d * DAY)
        self.prefix = prefixes
        self.offs = offs
        self.base = base  # utc epoch of local time t on day d = base[d] + t

    # ------------------------------------------------------------------ primitives
    def emit(
        self,
        t: int,
        type_: str,
        source: str,
        customer: dict[str, str],
        department: str | None,
        agent: str | None,
        data: dict[str, Any] | None,
        late_ok: bool = False,
    ) -> str | None:
        if t >= self.end_t:
            return None
        d = t // DAY
        self.n += 1
        fid = _PREFIX[source] + str(self.n)
        fact: dict[str, Any] = {
            "type": type_,
            "id": fid,
            "source": source,
            "customer": customer,
            "occurred_at": self.prefix[d] + self.hms[t - d * DAY] + self.offs[d],
        }
        if department is not None:
            fact["department"] = department
        if agent is not None:
            fact["agent"] = agent
        if data is not None:
            fact["data"] = data
        key = self.base[d] + t
        if late_ok and self.r() < _LATE_P:
            key += DAY + int(self.r() * 7 * DAY)
        elif type_ != "customer.registered" and source in _STORE_SOURCES and self.offline(source, d):
            # The night's batch, in the order the till kept; a sign-up goes to the CRM live.
            key = self.base[d + 1] + (d + 1) * DAY + _BATCH_AT + (t - d * DAY) // 60
        else:
            x = self.lag()
            key += 1 + int(x * x * x * _PROMPT_LAG)
            self.prompt.append((self.base[d] + t, len(self.keys)))
        self.keys.append(key)
        self.facts.append(fact)
        return fid

    def offline(self, source: str, d: int) -> bool:
        """Whether the store's till was offline on day ``d`` (its facts come in that night)."""
        found = self.offline_days.get((source, d))
        if found is None:
            found = self.offline_days[source, d] = self.lag() < _OFFLINE_P
        return found

    def in_order(self) -> None:
        """The prompt facts of the person just generated are recorded in the order they
        happened: each no earlier than a second after the one before it."""
        keys = self.keys
        last = -1
        for _, i in sorted(self.prompt):
            if keys[i] <= last:
                keys[i] = last + 1
            last = keys[i]
        self.prompt.clear()

    def pick(self, seq: tuple[Any, ...] | str) -> Any:
        return seq[int(self.r() * len(seq))]

    def at(self, d: int, lo_h: int, hi_h: int) -> int:
        """A random moment on day ``d`` between ``lo_h``:00 and ``hi_h``:00 (hi_h <= 24)."""
        return d * DAY + lo_h * HOUR + int(self.r() * (hi_h - lo_h) * HOUR)

    def later(self, t: int, lo_d: int, hi_d: int, lo_h: int = 8, hi_h: int = 21) -> int:
        """A moment ``lo_d``..``hi_d`` days after ``t`` (lo_d >= 1)."""
        return self.at(t // DAY + lo_d + int(self.r() * (hi_d - lo_d + 1)), lo_h, hi_h)

    def soon(self, t: int, lo_s: int, hi_s: int) -> int:
        """``lo_s``..``hi_s`` seconds after ``t``; night times move to next morning."""
        t2 = t + lo_s + int(self.r() * (hi_s - lo_s))
        s = t2 % DAY
        if s < 6 * HOUR:
            t2 += 8 * HOUR - s + int(self.r() * HOUR)
        return t2

    def agent(self, dept: str) -> str:
        a: tuple[str, ...] = _AGENTS[dept]
        return a[int(self.r() * len(a))]

    def address(self, city: int) -> dict[str, str]:
        c = _CITIES[city]
        return {
            "street": self.pick(_STREETS),
            "number": str(1 + int(self.r() * 180)),
            "postal_code": self.pick(_POSTAL[city]),
            "city": c[0],
        }

    # ------------------------------------------------------------------ people
    def make_customer(self, i: int) -> _Cust:
        r = self.r
        c = _Cust()
        c.cid = f"C-{i + 1:06d}"
        c.phone = f"+346{10_000_000 + (48271 * i + 1234567) % 90_000_000}"
        fi = int(r() * len(_FIRST))
        li = int(r() * len(_LAST))
        c.email = f"{_FIRST_A[fi]}.{_LAST_A[li]}{i}@{self.pick(_MAIL_DOMAINS)}"
        if r() < 0.4:
            c.twitter = f"@{_FIRST_A[fi][:6]}_{i}"
        c.city = _CITY_TABLE[int(r() * len(_CITY_TABLE))]
        c.store = self.pick(_CITIES[c.city][3])
        c.purchases = []
        c.contracts = []
        c.name = f"{_FIRST[fi]} {_LAST[li]} {self.pick(_LAST)}"
        return c

    def register(self, c: _Cust, t: int) -> None:
        r = self.r
        city = _CITIES[c.city]
        lang = city[5] if r() < city[6] else ("en" if r() < 0.03 else "es")
        data: dict[str, Any] = {
            "name": c.name,
            "birthday": f"{1940 + int(r() * 67)}-{1 + int(r() * 12):02d}-{1 + int(r() * 28):02d}",
            "address": self.address(c.city),
            "phone": c.phone,
            "email": c.email,
        }
        if c.twitter is not None:
            data["twitter"] = c.twitter
        data["timezone"] = city[4]
        data["language"] = lang
        x = r()
        if x < 0.5:
            self.emit(t, "customer.registered", "crm", {"customer_id": c.cid}, None, None, data)
        elif x < 0.8:
            self.emit(t, "customer.registered", _STORE_SOURCE[c.store], {"customer_id": c.cid},
                      "stores", self.agent("stores"), data)
        else:
            self.emit(t, "customer.registered", "callcenter-1004", {"customer_id": c.cid},
                      "sales", self.agent("sales"), data)
        if r() < 0.35:  # consent captured at sign-up
            self.emit(self.soon(t, 30, 300), "consent.given", "consent-hub",
                      {"customer_id": c.cid}, None, None, {
                          "channel": self.pick(_CONSENT_CHANNELS), "purpose": "commercial",
                          "text": "I agree to receive commercial offers",
                          "evidence": "sign-up form checkbox"})

    # ------------------------------------------------------------------ episodes
    def ep_commercial_calls(self, c: _Cust, t: int) -> int:
        r = self.r
        campaign = self.pick(_CAMPAIGNS)
        if r() < 0.5:
            dept, source = "sales", "callcenter-1004"
        else:
            dept, source = "outsourced_callcenter", self.pick(_OUTSOURCED_SOURCES)
        n = 0
        tries = 1 + int(r() * 3)
        for k in range(tries):
            if k:
                t = self.later(t, 1, 3, 9, 22) if r() < 0.7 else self.soon(t, 2 * HOUR, 6 * HOUR)
            outcome = _OUTCOME_TABLE[int(r() * len(_OUTCOME_TABLE))]
            dur = (0 if outcome == "no_answer" else 20 + int(r() * 25) if outcome == "voicemail"
                   else 3 + int(r() * 20) if outcome == "hung_up" else 40 + int(r() * 800))
            if self.emit(t, "call.outbound", source, {"phone": c.phone}, dept, self.agent(dept),
                         {"purpose": "commercial", "campaign": campaign, "outcome": outcome,
                          "duration_s": dur}, True):
                n += 1
            if outcome == "sale":
                n += self.start_contract(c, self.later(t, 1, 5), self.pick(_SERVICES[campaign]))
                break
            if outcome not in ("no_answer", "voicemail"):
                break
        return n

    def start_contract(self, c: _Cust, t: int, service: str) -> int:
        n = 0
        if c.nid is None:
            num = (104729 * int(c.cid[2:]) + 12345678) % 100_000_000
            c.nid = f"{num:08d}{_DNI_LETTERS[num % 23]}"
            if self.emit(t, "identity.linked", "contracts", {"customer_id": c.cid}, "billing",
                         self.agent("billing"), {"kind": "national_id", "value": c.nid}):
                n += 1
            t = self.soon(t, 60, 600)
        self.case_n += 1
        ctr = f"CT-{self.case_n:07d}"
        if self.emit(t, "contract.started", "contracts", {"customer_id": c.cid}, "sales", None,
                     {"contract_id": ctr, "service": service}):
            c.contracts.append((ctr, service))
            n += 1
            if self.emit(self.soon(t, 300, 3600), "sms.sent", "sms-gw", {"phone": c.phone},
                         None, None, {"purpose": "service", "subject": "Welcome to Ondaluz"}):
                n += 1
        return n

    def ep_contract(self, c: _Cust, t: int) -> int:
        if c.contracts and self.r() < 0.45:
            ctr, service = c.contracts.pop(int(self.r() * len(c.contracts)))
            dept = "billing" if self.r() < 0.5 else "customer_care"
            return 1 if self.emit(t, "contract.ended", "contracts", {"customer_id": c.cid}, dept,
                                  self.agent(dept),
                                  {"contract_id": ctr, "service": service}) else 0
        return self.start_contract(c, t, self.pick(_ALL_SERVICES))

    def ep_service_call(self, c: _Cust, t: int) -> int:
        dept = self.pick(("customer_care", "technical_service", "billing",
                          "outsourced_callcenter"))
        source = (self.pick(_OUTSOURCED_SOURCES) if dept == "outsourced_callcenter"
                  else "callcenter-1004")
        outcome = self.pick(_SERVICE_OUTCOMES)
        dur = 0 if outcome == "no_answer" else 30 + int(self.r() * 600)
        fid = self.emit(t, "call.outbound", source, {"phone": c.phone}, dept, self.agent(dept),
                        {"purpose": "service", "outcome": outcome, "duration_s": dur}, True)
        return 1 if fid else 0

    def ep_inbound_call(self, c: _Cust, t: int) -> int:
        r = self.r
        reason = self.pick(_INBOUND_REASONS)
        dept = "outsourced_callcenter" if r() < 0.3 else self.pick(
            ("customer_care", "customer_care", "technical_service", "billing"))
        source = (self.pick(_OUTSOURCED_SOURCES) if dept == "outsourced_callcenter"
                  else "callcenter-1004")
        n = 1 if self.emit(t, "call.inbound", source, {"phone": c.phone}, dept, self.agent(dept),
                           {"reason": reason}, True) else 0
        if reason == "don't call me again":
            return n + self.ep_objection(c, self.soon(t, 60, 600), "all")
        if reason == "moving house":
            return n + self.ep_address(c, self.soon(t, 60, 900), "customer_care", "customer moved")
        if r() < 0.35:
            n += self.ep_case(c, self.soon(t, 60, 900))
        return n

    def ep_store(self, c: _Cust, t: int) -> int:
        r = self.r
        n = 0
        src = _STORE_SOURCE[c.store]
        if c.card is None and r() < 0.6:
            c.card = f"L{4_000_000_000 + int(c.cid[2:]) * 7:010d}"
            if self.emit(t, "identity.linked", src, {"customer_id": c.cid}, "stores",
                         self.agent("stores"), {"kind": "loyalty_card", "value": c.card}):
                n += 1
            t = self.soon(t, 30, 120)
        who = {"loyalty_card": c.card} if c.card is not None else {"customer_id": c.cid}
        agent = self.agent("stores")
        buying = r() < 0.45
        reason = "new phone" if buying else self.pick(_STORE_REASONS)
        if self.emit(t, "store.visit", src, who, "stores", agent,
                     {"store": c.store, "reason": reason}):
            n += 1
        if buying:
            product, price = self.pick(_PRODUCTS)
            serial = f"SN{int(r() * 36**8):08X}"
            tp = self.soon(t, 300, 1800)
            data: dict[str, Any] = {"product": product, "serial": serial, "store": c.store,
                                    "invoice": f"F{c.store}-{self.n + 1}",
                                    "warranty_months": 24 if r() < 0.85 else 36,
                                    "price": price}
            if self.emit(tp, "purchase.recorded", src, dict(who), "stores", agent, data):
                c.purchases.append((tp, serial, product))
                n += 1
        return n

    def ep_warranty(self, c: _Cust, t: int) -> int:
        if not c.purchases:
            return self.ep_store(c, t)
        r = self.r
        tp, serial, _product = c.purchases[int(r() * len(c.purchases))]
        if tp >= t:
            return 0
        self.case_n += 1
        claim = f"W-{self.case_n:07d}"
        src = _STORE_SOURCE[c.store]
        who = {"loyalty_card": c.card} if c.card is not None else {"customer_id": c.cid}
        n = 0
        if self.emit(t, "warranty.claim_filed", src, who, "stores", self.agent("stores"),
                     {"claim_id": claim, "serial": serial, "issue": self.pick(_ISSUES)}):
            n += 1
        case_id: str | None = None
        if r() < 0.5:
            case_id = f"K-{self.case_n:07d}"
            if self.emit(self.soon(t, 120, 1800), "case.opened", "ticketing",
                         {"customer_id": c.cid}, "technical_service", None,
                         {"case_id": case_id, "kind": "warranty",
                          "subject": f"warranty claim {claim}"}):
                n += 1
        td = self.later(t, 3, 20)
        approved = r() < 0.8
        if self.emit(td, "warranty.claim_decided", "warranty-svc", {"customer_id": c.cid},
                     "technical_service", self.agent("technical_service"),
                     {"claim_id": claim, "approved": approved,
                      "reason": "within warranty" if approved else self.pick(
                          ("damage by misuse", "liquid damage", "no fault found"))}):
            n += 1
            if case_id is not None and self.emit(
                    self.soon(td, 600, 7200), "case.resolved", "ticketing",
                    {"customer_id": c.cid}, "technical_service", None,
                    {"case_id": case_id,
                     "resolution": "repaired" if approved else "claim rejected"}):
                n += 1
        return n

    def ep_case(self, c: _Cust, t: int, kind: str | None = None) -> int:
        r = self.r
        kind = kind or self.pick(_CASE_KINDS)
        self.case_n += 1
        case_id = f"K-{self.case_n:07d}"
        dept = _CASE_DEPT[kind]
        who = {"customer_id": c.cid}
        if not self.emit(t, "case.opened", "ticketing", who, dept, self.agent(dept),
                         {"case_id": case_id, "kind": kind,
                          "subject": self.pick(_CASE_SUBJECTS[kind])}):
            return 0
        n = 1
        promise: str | None = None
        if r() < 0.3:
            promise = f"P-{self.case_n:07d}"
            due = t // DAY + 3 + int(r() * 12)
            tpm = self.soon(t, 60, 1200)
            if self.emit(tpm, "promise.made", "ticketing", {"customer_id": c.cid}, dept,
                         self.agent(dept), {"promise_id": promise, "case_id": case_id,
                                            "what": self.pick(_PROMISES),
                                            "due_by": self.prefix[due][:10]}):
                n += 1
                x = r()
                if x < 0.5:
                    tk = self.at(t // DAY + 1 + int(r() * (due - t // DAY)), 8, 20)
                    n += 1 if self.emit(tk, "promise.kept", "ticketing", {"customer_id": c.cid},
                                        dept, None, {"promise_id": promise}) else 0
                elif x < 0.75:
                    tb = self.at(due + 1 + int(r() * 4), 8, 12)
                    n += 1 if self.emit(tb, "promise.broken", "ticketing",
                                        {"customer_id": c.cid}, None, None,
                                        {"promise_id": promise}) else 0
        cur = t
        for _ in range(int(r() * 3)):
            cur = self.later(cur, 1, 4)
            ndept = "outsourced_callcenter" if r() < 0.3 else dept
            src = self.pick(_OUTSOURCED_SOURCES) if ndept == "outsourced_callcenter" else "ticketing"
            n += 1 if self.emit(cur, "case.note", src, {"customer_id": c.cid}, ndept,
                                self.agent(ndept), {"case_id": case_id, "text": self.pick(_NOTES)},
                                ndept == "outsourced_callcenter") else 0
        if r() < 0.3:
            to = self.pick(_TRANSFER_TO)
            if to == dept:
                to = "billing" if dept != "billing" else "customer_care"
            cur = self.later(cur, 1, 3)
            n += 1 if self.emit(cur, "case.transferred", "ticketing", {"customer_id": c.cid},
                                dept, self.agent(dept),
                                {"case_id": case_id, "to": to,
                                 "reason": self.pick(_TRANSFER_REASONS)}) else 0
            dept = to
        if r() < 0.75:
            cur = self.later(cur, 1, 6)
            n += 1 if self.emit(cur, "case.responded", "ticketing", {"customer_id": c.cid}, dept,
                                self.agent(dept),
                                {"case_id": case_id, "text": self.pick(_RESPONSES)}) else 0
            if r() < 0.25:
                n += 1 if self.emit(self.soon(cur, 60, 600), "email.sent", "mailer",
                                    {"email": c.email}, dept, None,
                                    {"purpose": "service", "subject": f"Case {case_id}"}) else 0
        if r() < 0.75:
            cur = self.later(cur, 1, 5)
            if self.emit(cur, "case.resolved", "ticketing", {"customer_id": c.cid}, dept,
                         self.agent(dept),
                         {"case_id": case_id, "resolution": self.pick(_RESOLUTIONS)}):
                n += 1
                if r() < 0.1:
                    cur = self.later(cur, 2, 10)
                    n += 1 if self.emit(cur, "case.reopened", "ticketing",
                                        {"customer_id": c.cid}, dept, self.agent(dept),
                                        {"case_id": case_id}) else 0
                    if r() < 0.6:
                        n += 1 if self.emit(self.later(cur, 1, 5), "case.resolved", "ticketing",
                                            {"customer_id": c.cid}, dept, self.agent(dept),
                                            {"case_id": case_id,
                                             "resolution": self.pick(_RESOLUTIONS)}) else 0
        return n

    def ep_consent(self, c: _Cust, t: int) -> int:
        r = self.r
        channel = self.pick(_CONSENT_CHANNELS)
        purpose = "commercial" if r() < 0.75 else "service"
        if r() < 0.4:
            dept: str | None = self.pick(("customer_care", "stores", "sales"))
            evidence = "call recording" if dept != "stores" else "signed form"
        else:
            dept, evidence = None, "web form, IP 83.44.x.x"
        n = 1 if self.emit(t, "consent.given", "consent-hub", {"customer_id": c.cid}, dept, None,
                           {"channel": channel, "purpose": purpose,
                            "text": f"I agree to be contacted by {channel} for {purpose} "
                                    "purposes", "evidence": evidence}) else 0
        if r() < 0.3:
            n += 1 if self.emit(self.later(t, 5, 60), "consent.withdrawn", "consent-hub",
                                {"customer_id": c.cid}, None, None,
                                {"channel": channel, "purpose": purpose,
                                 "evidence": "unsubscribe link"}) else 0
        return n

    def ep_objection(self, c: _Cust, t: int, channels: Any = None) -> int:
        ch = channels if channels is not None else self.pick(_OBJECTION_CHANNELS)
        return 1 if self.emit(t, "objection.recorded", "crm", {"customer_id": c.cid},
                              "customer_care", self.agent("customer_care"),
                              {"channels": ch if isinstance(ch, str) else list(ch),
                               "purpose": "commercial"}) else 0

    def ep_address(self, c: _Cust, t: int, dept: str | None = None, why: str | None = None) -> int:
        """Customer care changes an address because the customer asked (a move, a typo they
        reported); billing changes one on its own (a cleanup, a returned letter): the company's
        change, which the ledger notifies to the customer. ``why``: the reason the episode
        that led here gives (a "moving house" call)."""
        dept = dept or ("billing" if self.r() < 0.4 else "customer_care")
        if self.r() < 0.2:
            c.city = _CITY_TABLE[int(self.r() * len(_CITY_TABLE))]
        agent, address = self.agent(dept), self.address(c.city)
        reason = self.pick(_ADDRESS_REASONS[dept])  # drawn either way: the stream stays the same
        return 1 if self.emit(t, "address.changed", "billing" if dept == "billing" else "crm",
                              {"customer_id": c.cid}, dept, agent,
                              {"address": address, "reason": why or reason,
                               "requested_by": _REQUESTED_BY[dept]}) else 0

    def ep_social(self, c: _Cust, t: int) -> int:
        if c.twitter is None:
            return self.ep_email_received(c, t)
        return self.mention(c.twitter, t, c.cid)

    def mention(self, handle: str, t: int, cid: str | None) -> int:
        r = self.r
        x = r()
        network = "twitter" if x < 0.8 or cid is None else ("instagram" if x < 0.9 else "facebook")
        who = {"twitter": handle} if network == "twitter" else {"customer_id": str(cid)}
        mid = self.emit(t, "social.mention", "social-listener", who, None, None,
                        {"network": network, "handle": handle, "text": self.pick(_MENTION_TEXTS),
                         "to": BRAND_HANDLE})
        if mid is None:
            return 0
        if r() < 0.6:
            tr = self.soon(t, 300, 30 * HOUR) if r() < 0.8 else self.later(t, 2, 6, 8, 22)
            return 2 if self.emit(tr, "social.reply", "social-desk", dict(who), "social_media",
                                  self.agent("social_media"),
                                  {"in_reply_to": mid, "text": self.pick(_REPLY_TEXTS)}) else 1
        return 1

    def ep_email_sent(self, c: _Cust, t: int) -> int:
        if self.r() < 0.55:
            camp = self.pick(_CAMPAIGNS)
            data = {"purpose": "commercial", "subject": self.pick(_COMMERCIAL_SUBJECTS[camp])}
            dept = "sales"
        else:
            data = {"purpose": "service", "subject": self.pick(_SERVICE_SUBJECTS)}
            dept = self.pick(("billing", "customer_care"))
        return 1 if self.emit(t, "email.sent", "mailer", {"email": c.email}, dept, None,
                              data) else 0

    def ep_email_received(self, c: _Cust, t: int) -> int:
        n = 1 if self.emit(t, "email.received", "mailbox", {"email": c.email}, "customer_care",
                           None, {"purpose": "service",
                                  "subject": self.pick(_RECEIVED_SUBJECTS)}) else 0
        if self.r() < 0.3:
            n += self.ep_case(c, self.soon(t, 1800, 6 * HOUR))
        return n

    def ep_letter(self, c: _Cust, t: int) -> int:
        commercial = self.r() < 0.4
        return 1 if self.emit(t, "letter.sent", "letters", {"customer_id": c.cid},
                              "sales" if commercial else "billing", None,
                              {"purpose": "commercial" if commercial else "service",
                               "subject": "Ofertas exclusivas para ti" if commercial
                               else self.pick(("Change of conditions", "Debt notice",
                                               "Annual consumption summary"))}) else 0

    def ep_sms(self, c: _Cust, t: int) -> int:
        commercial = self.r() < 0.5
        return 1 if self.emit(t, "sms.sent", "sms-gw", {"phone": c.phone},
                              "sales" if commercial else None, None,
                              {"purpose": "commercial" if commercial else "service",
                               "subject": self.pick(_COMMERCIAL_SUBJECTS[self.pick(_CAMPAIGNS)])
                               if commercial else self.pick(_SERVICE_SUBJECTS)}) else 0

    def ep_identity(self, c: _Cust, t: int) -> int:
        # the customer adds a second e-mail address
        local, _, _dom = c.email.partition("@")
        new = f"{local}.work@{self.pick(_MAIL_DOMAINS)}"
        c.email = new
        return 1 if self.emit(t, "identity.linked", "crm", {"customer_id": c.cid},
                              "customer_care", self.agent("customer_care"),
                              {"kind": "email", "value": new}) else 0

    # ------------------------------------------------------------------ journeys
    def journey(self, i: int, episodes: tuple[Callable[[_Gen, _Cust, int], int], ...]) -> None:
        r = self.r
        c = self.make_customer(i)
        span = self.days
        budget = max(2, int(-self.per_customer * 1.1 * _log1m(r())))
        if r() < 0.05:  # prospect: appears by phone or handle before (maybe) registering
            t = self.at(int(r() * span * 0.8), 9, 22)
            if c.twitter is not None and r() < 0.5:
                got = self.mention(c.twitter, t, None)
            else:
                got = 0
                for _ in range(1 + int(r() * 3)):
                    dept = "sales" if r() < 0.4 else "outsourced_callcenter"
                    src = "callcenter-1004" if dept == "sales" else self.pick(_OUTSOURCED_SOURCES)
                    outcome = self.pick(("no_answer", "not_interested", "hung_up", "answered"))
                    got += 1 if self.emit(t, "call.outbound", src, {"phone": c.phone}, dept,
                                          self.agent(dept),
                                          {"purpose": "commercial",
                                           "campaign": self.pick(_CAMPAIGNS), "outcome": outcome,
                                           "duration_s": 0 if outcome == "no_answer"
                                           else 5 + int(r() * 200)}, True) else 0
                    t = self.later(t, 1, 10, 9, 22)
            if r() < 0.5:
                return
            t = self.later(t, 1, 30)
            budget = max(2, budget // 2)
        else:
            t = self.at(int(r() * span * 0.7), 8, 21)
        self.register(c, t)
        remaining = self.end_t - t
        if remaining <= DAY:
            return
        mean_gap = remaining / (budget / 2.0 + 1.0)
        got = 1
        neps = len(episodes)
        while got < budget:
            t += int(-mean_gap * _log1m(r())) + 600
            if t >= self.end_t:
                break
            s = t % DAY
            if s < 8 * HOUR or s >= 21 * HOUR:
                t = self.at(t // DAY + (1 if s >= 21 * HOUR else 0), 8, 21)
            got += episodes[int(r() * neps)](self, c, t)


def _log1m(x: float) -> float:
    """log(1 - x) for x in [0, 1): exponential deviates without Random.expovariate's call."""
    return log(1.0 - x)


_EPISODE_WEIGHTS: Final[tuple[tuple[Callable[[_Gen, _Cust, int], int], int], ...]] = (
    (_Gen.ep_commercial_calls, 16),
    (_Gen.ep_service_call, 5),
    (_Gen.ep_inbound_call, 10),
    (_Gen.ep_store, 9),
    (_Gen.ep_warranty, 3),
    (_Gen.ep_case, 7),
    (_Gen.ep_consent, 4),
    (_Gen.ep_objection, 2),
    (_Gen.ep_address, 2),
    (_Gen.ep_social, 6),
    (_Gen.ep_email_sent, 8),
    (_Gen.ep_email_received, 3),
    (_Gen.ep_letter, 3),
    (_Gen.ep_sms, 5),
    (_Gen.ep_contract, 3),
    (_Gen.ep_identity, 1),
)
_EPISODES: Final = tuple(f for f, w in _EPISODE_WEIGHTS for _ in range(w))


# ---------------------------------------------------------------------------- API


def generate(
    customers: int = 3000,
    *,
    seed: int = 7,
    start: date = date(2026, 3, 1),
    days: int = 240,
    per_customer: float = 12.0,
    with_stories: bool = True,
) -> Iterator[dict[str, Any]]:
    """Yield a deterministic, roughly chronological stream of touchpoint facts.

    ``customers`` people (≈5% of them prospects, known at first only by a phone or a
    Twitter handle), ≈``per_customer`` facts each on average, spread over ``days`` days
    from ``start``. Facts are yielded in the order they are recorded (:func:`recorded`):
    by ``occurred_at``, give or take the minutes a source takes to deliver, except the late
    uploads (≈2% of the call centres' facts, a store's offline days). With ``with_stories``
    the hand-written :func:`stories` are merged into the stream at their (fixed) moments.

    All facts are built before the first one is yielded (≈1.5 KB of memory per fact).
    """
    for _, fact in recorded(customers, seed=seed, start=start, days=days,
                            per_customer=per_customer, with_stories=with_stories):
        yield fact


def recorded(
    customers: int = 3000,
    *,
    seed: int = 7,
    start: date = date(2026, 3, 1),
    days: int = 240,
    per_customer: float = 12.0,
    with_stories: bool = True,
) -> Iterator[tuple[int, dict[str, Any]]]:
    """:func:`generate`'s facts with the instant each was recorded (UTC seconds since the
    epoch), never earlier than the one before it: what the demo's ledger stamps them with, so
    "as the company knew it then" means something in the demo."""
    g = _Gen(seed, start, days, per_customer)
    # Nothing built here forms reference cycles; with the collector on, scanning the
    # ever-growing heap of fact dicts costs ~30% at a million facts.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        for i in range(customers):
            g.journey(i, _EPISODES)
            g.in_order()
    finally:
        if was_enabled:
            gc.enable()
    keys, facts = g.keys, g.facts
    if with_stories:
        for n, f in enumerate(stories()):
            # Each within a minute of happening: a story's facts are minutes apart.
            keys.append(int(datetime.fromisoformat(f["occurred_at"]).timestamp()) + 5 + n * 17 % 50)
            facts.append(f)
    # Sort plain ints (recording second << bits | position): stable, no key function.
    bits = max(1, len(keys).bit_length())
    mask = (1 << bits) - 1
    order = [k << bits | i for i, k in enumerate(keys)]
    del keys, g
    order.sort()
    for k in order:
        yield k >> bits, facts[k & mask]


_Writable = IO[bytes] | IO[str]


def write_jsonl(
    path_or_file: str | os.PathLike[str] | _Writable,
    facts: Iterable[dict[str, Any]],
    *,
    append: bool = False,
    chunk: int = 4096,
) -> int:
    """Write ``facts`` as JSON Lines (orjson, one fact per line); return how many.

    ``path_or_file`` is a path (opened in binary mode, truncated unless ``append``) or an
    already open file, binary or text.
    """
    dumps = orjson.dumps
    nl = orjson.OPT_APPEND_NEWLINE
    if isinstance(path_or_file, str | os.PathLike):
        with open(path_or_file, "ab" if append else "wb") as fh:
            return _write(fh.write, facts, dumps, nl, chunk, binary=True)
    binary = not isinstance(path_or_file, io.TextIOBase) and "b" in getattr(
        path_or_file, "mode", "b"
    )
    return _write(path_or_file.write, facts, dumps, nl, chunk, binary=binary)


def _write(
    write: Callable[[Any], Any],
    facts: Iterable[dict[str, Any]],
    dumps: Callable[..., bytes],
    opt: int,
    chunk: int,
    *,
    binary: bool,
) -> int:
    n = 0
    buf: list[bytes] = []
    for f in facts:
        buf.append(dumps(f, option=opt))
        n += 1
        if len(buf) >= chunk:
            out = b"".join(buf)
            write(out if binary else out.decode())
            buf.clear()
    if buf:
        out = b"".join(buf)
        write(out if binary else out.decode())
    return n


# ------------------------------------------------------------------------- stories


def _at(y: int, mo: int, d: int, h: int, mi: int = 0) -> str:
    return datetime(y, mo, d, h, mi, tzinfo=MADRID).isoformat()


def _registered(sid: str, when: str, cid: str, name: str, phone: str, email: str,
                address: dict[str, str], twitter: str | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"name": name, "birthday": "1980-05-17", "address": address,
                            "phone": phone, "email": email}
    if twitter is not None:
        data["twitter"] = twitter
    data["timezone"] = "Europe/Madrid"
    data["language"] = "es"
    return {"type": "customer.registered", "id": sid, "source": "story",
            "customer": {"customer_id": cid}, "occurred_at": when, "data": data}


def _f(sid: str, type_: str, when: str, customer: dict[str, str], department: str | None,
       agent: str | None, data: dict[str, Any]) -> dict[str, Any]:
    fact: dict[str, Any] = {"type": type_, "id": sid, "source": "story", "customer": customer,
                            "occurred_at": when}
    if department is not None:
        fact["department"] = department
    if agent is not None:
        fact["agent"] = agent
    fact["data"] = data
    return fact


def stories() -> list[dict[str, Any]]:
    """The hand-written stories the product exists for (source ``story``, fixed ids/dates).

    Ids are ``s<story>-<nn>``; customers are ``C-90000<story>``.
    """
    out: list[dict[str, Any]] = []

    # 1. six sales calls in three days after "don't call me again"
    ph1 = {"phone": "+34600900001"}
    out.append(_registered("s1-01", _at(2026, 3, 2, 10, 15), "C-900001", "Ramón Ortega Gil",
                           "+34600900001", "ramon.ortega@example.es",
                           {"street": "Calle de Alcalá", "number": "120",
                            "postal_code": "28009", "city": "Madrid"}))
    # A fibre contract: the legitimate interest that makes the first commercial call lawful.
    out.append(_f("s1-01c", "contract.started", _at(2026, 3, 2, 10, 20), {"customer_id": "C-900001"},
                  "sales", "A-17", {"contract_id": "CT-900001", "service": "fibra 300"}))
    out.append(_f("s1-02", "call.outbound", _at(2026, 3, 4, 11), ph1, "sales", "A-17",
                  {"purpose": "commercial", "campaign": "fibra", "outcome": "not_interested",
                   "duration_s": 95}))
    out.append(_f("s1-03", "call.inbound", _at(2026, 3, 5, 9, 25), ph1, "customer_care", "CC-3",
                  {"reason": "don't call me again"}))
    out.append(_f("s1-04", "objection.recorded", _at(2026, 3, 5, 9, 30),
                  {"customer_id": "C-900001"}, "customer_care", "CC-3",
                  {"channels": "all", "purpose": "commercial"}))
    six = (
        ("s1-05", (2026, 3, 9, 10, 12), "sales", "A-17", "fibra", "no_answer", 0),
        ("s1-06", (2026, 3, 9, 17, 40), "outsourced_callcenter", "X-204", "movil", "hung_up", 8),
        ("s1-07", (2026, 3, 9, 22, 0), "outsourced_callcenter", "X-204", "movil", "voicemail",
         31),
        ("s1-08", (2026, 3, 10, 12, 5), "sales", "A-22", "fibra", "not_interested", 42),
        ("s1-09", (2026, 3, 11, 9, 50), "outsourced_callcenter", "X-211", "movil", "no_answer",
         0),
        ("s1-10", (2026, 3, 11, 19, 30), "sales", "A-17", "fibra", "hung_up", 5),
    )
    for sid, (y, mo, d, h, mi), dept, agent, campaign, outcome, dur in six:
        out.append(_f(sid, "call.outbound", _at(y, mo, d, h, mi), ph1, dept, agent,
                      {"purpose": "commercial", "campaign": campaign, "outcome": outcome,
                       "duration_s": dur}))

    # 2. an address changed by an operator without the customer asking
    out.append(_registered("s2-01", _at(2026, 3, 3, 18, 40), "C-900002", "Pilar Navarro Ruiz",
                           "+34600900002", "pilar.navarro@example.es",
                           {"street": "Calle Mayor", "number": "7", "postal_code": "28013",
                            "city": "Madrid"}))
    out.append(_f("s2-02", "address.changed", _at(2026, 4, 14, 10, 2),
                  {"customer_id": "C-900002"}, "billing", "B-7",
                  {"address": {"street": "Calle Mayor", "number": "17", "postal_code": "28013",
                               "city": "Madrid"}, "reason": "data cleanup", "requested_by": "company"}))

    # 3. a warranty claim at a store, product bought 14 months earlier, no invoice at hand
    out.append(_registered("s3-01", _at(2025, 1, 20, 12), "C-900003", "Jordi Puig Castells",
                           "+34600900003", "jordi.puig@example.es",
                           {"street": "Carrer de Balmes", "number": "88",
                            "postal_code": "08008", "city": "Barcelona"}))
    out.append(_f("s3-02", "identity.linked", _at(2025, 2, 10, 17, 30),
                  {"customer_id": "C-900003"}, "stores", "S-12",
                  {"kind": "loyalty_card", "value": "L4900000003"}))
    out.append(_f("s3-03", "purchase.recorded", _at(2025, 2, 10, 17, 45),
                  {"loyalty_card": "L4900000003"}, "stores", "S-12",
                  {"product": "Smartphone Galaxy A55", "serial": "SNR58T20A4K",
                   "store": "BCN01", "warranty_months": 24, "price": 379.0}))
    out.append(_f("s3-04", "store.visit", _at(2026, 4, 10, 11, 5), {"loyalty_card": "L4900000003"},
                  "stores", "S-31", {"store": "BCN01", "reason": "warranty, no invoice at hand"}))
    out.append(_f("s3-05", "warranty.claim_filed", _at(2026, 4, 10, 11, 20),
                  {"loyalty_card": "L4900000003"}, "stores", "S-31",
                  {"claim_id": "W-S3", "serial": "SNR58T20A4K", "issue": "does not charge"}))
    out.append(_f("s3-06", "warranty.claim_decided", _at(2026, 4, 17, 13), {"customer_id":
                  "C-900003"}, "technical_service", "T-4",
                  {"claim_id": "W-S3", "approved": True,
                   "reason": "within 24-month warranty, purchase found by serial"}))

    # 4. contradictory answers: care promises a discount, sales says it is impossible
    c4 = {"customer_id": "C-900004"}
    out.append(_registered("s4-01", _at(2026, 3, 20, 9, 10), "C-900004", "Rocío Molina Sanz",
                           "+34600900004", "rocio.molina@example.es",
                           {"street": "Calle Sierpes", "number": "21", "postal_code": "41004",
                            "city": "Sevilla"}))
    out.append(_f("s4-02", "case.opened", _at(2026, 5, 4, 10), c4, "customer_care", "CC-8",
                  {"case_id": "K-S4", "kind": "complaint",
                   "subject": "charged twice for fibra in April"}))
    out.append(_f("s4-03", "promise.made", _at(2026, 5, 4, 10, 12), c4, "customer_care", "CC-8",
                  {"promise_id": "P-S4", "case_id": "K-S4",
                   "what": "20% discount on the next three invoices", "due_by": "2026-05-31"}))
    out.append(_f("s4-04", "case.transferred", _at(2026, 5, 6, 16), c4, "customer_care", "CC-8",
                  {"case_id": "K-S4", "to": "sales", "reason": "discount needs sales approval"}))
    out.append(_f("s4-05", "case.responded", _at(2026, 5, 12, 12, 30), c4, "sales", "A-5",
                  {"case_id": "K-S4", "answer": "no",
                   "text": "A discount is not possible on your current tariff."}))
    out.append(_f("s4-06", "promise.broken", _at(2026, 6, 1, 9), c4, None, None,
                  {"promise_id": "P-S4"}))

    # 5. tweets nobody answers (two), and one that got a reply
    tw5 = {"twitter": "@lucia_s5"}
    out.append(_registered("s5-01", _at(2026, 4, 2, 20), "C-900005", "Lucía Romero Díaz",
                           "+34600900005", "lucia.romero@example.es",
                           {"street": "Avenida del Puerto", "number": "45",
                            "postal_code": "46023", "city": "Valencia"}, twitter="@lucia_s5"))
    out.append(_f("s5-02", "social.mention", _at(2026, 6, 2, 21, 14), tw5, None, None,
                  {"network": "twitter", "handle": "@lucia_s5", "to": BRAND_HANDLE,
                   "text": f"{BRAND_HANDLE} three days without internet, anyone there?"}))
    out.append(_f("s5-03", "social.mention", _at(2026, 6, 5, 8, 3), tw5, None, None,
                  {"network": "twitter", "handle": "@lucia_s5", "to": BRAND_HANDLE,
                   "text": f"{BRAND_HANDLE} still no internet and no answer. Day six."}))
    out.append(_f("s5-04", "social.mention", _at(2026, 6, 8, 13, 40), tw5, None, None,
                  {"network": "twitter", "handle": "@lucia_s5", "to": BRAND_HANDLE,
                   "text": f"{BRAND_HANDLE} I am cancelling my contract."}))
    out.append(_f("s5-05", "social.reply", _at(2026, 6, 8, 14, 5), tw5, "social_media", "SM-2",
                  {"in_reply_to": "s5-04",
                   "text": "Hi Lucía, sorry! Send us a DM and we will fix it today."}))

    # 6. an outsourced call centre learns the customer moved; it ends up as a case note
    c6 = {"customer_id": "C-900006"}
    out.append(_registered("s6-01", _at(2026, 3, 15, 11), "C-900006", "Iker Etxeberria Marín",
                           "+34600900006", "iker.etxeberria@example.es",
                           {"street": "Calle Uría", "number": "3", "postal_code": "48001",
                            "city": "Bilbao"}))
    out.append(_f("s6-02", "case.opened", _at(2026, 7, 1, 10), c6, "customer_care", "CC-14",
                  {"case_id": "K-S6", "kind": "incident", "subject": "no internet"}))
    out.append(_f("s6-03", "call.outbound", _at(2026, 7, 3, 12, 20), {"phone": "+34600900006"},
                  "outsourced_callcenter", "X-150",
                  {"purpose": "service", "outcome": "answered", "duration_s": 260}))
    out.append(_f("s6-04", "case.note", _at(2026, 7, 3, 12, 26), c6, "outsourced_callcenter",
                  "X-150", {"case_id": "K-S6",
                            "text": "Customer says they moved to Valencia (46010) in May; "
                                    "the technician went to the old Bilbao address."}))

    # 7. one person, two records: known at a store by her DNI, then signed up again by the
    # call centre under a new number (`journey merge C-900007 C-900008` joins them)
    home7 = {"street": "Calle de Alcalá", "number": "45", "postal_code": "28014", "city": "Madrid"}
    out.append(_registered("s7-01", _at(2026, 4, 6, 12, 10), "C-900007", "Marta Gil Serrano",
                           "+34600900007", "marta.gil@example.es", home7))
    out.append(_f("s7-02", "identity.linked", _at(2026, 4, 6, 12, 15), {"customer_id": "C-900007"},
                  "stores", "S-9", {"kind": "national_id", "value": "50123456Q"}))
    out.append(_registered("s7-03", _at(2026, 7, 20, 17, 30), "C-900008", "Marta Gil Serrano",
                           "+34600900008", "marta.gil.serrano@example.es", home7))
    out.append(_f("s7-04", "contract.started", _at(2026, 7, 20, 17, 40), {"customer_id": "C-900008"},
                  "sales", "A-9", {"contract_id": "CT-900008", "service": "movil_20gb"}))
    return out


def bad_lines() -> list[tuple[str, str]]:
    """Invalid JSON Lines the ledger must reject: ``(line, expected_reason_keyword)``.

    The keyword is a lowercase substring expected (case-insensitively) in the rejection
    reason.
    """
    good: dict[str, Any] = {
        "type": "call.outbound", "id": "bad-1", "source": "callcenter-1004",
        "customer": {"phone": "+34600000001"}, "occurred_at": "2026-03-09T22:00:00+01:00",
        "department": "sales", "agent": "A-17",
        "data": {"purpose": "commercial", "campaign": "fibra", "outcome": "not_interested",
                 "duration_s": 35},
    }

    def variant(**changes: Any) -> str:
        f = {k: v for k, v in good.items() if k not in changes or changes[k] is not _DROP}
        for k, v in changes.items():
            if v is not _DROP:
                f[k] = v
        return orjson.dumps(f).decode()

    return [
        ('{"type": "call.outbound", "id": "bad-0", "source": "callcenter-1004", "customer": {',
         "json"),
        (variant(type="call.teleported"), "type"),
        (variant(occurred_at=_DROP), "occurred_at"),
        (variant(occurred_at="2026-03-09T22:00:00"), "offset"),
        (variant(data={**good["data"], "duration_s": "35"}), "duration_s"),
        (variant(customer={}), "customer"),
        (variant(customer={"name": "Ramón"}), "customer"),
        (variant(customer="+34600000001"), "customer"),
    ]


_DROP: Final = object()
