"""No answer tells a caller whether a thing exists when the caller may not look it up.

For every endpoint that takes a name (a customer reference, a case, a serial, a token), and
every caller that may not look that thing up (no token, a role without the permission, a role
that may not look customers up by that kind of identity), the answer for a name that exists
and for one that does not are the same bytes: same status, same body. Otherwise a call
centre agent could confirm a national id, or an analyst a phone number, by asking.

Every role may read cases, promises and the inbox (they are the departments' work lists), so
those are compared for callers without a token only; the inbox takes no name.
"""

from __future__ import annotations

from typing import NamedTuple

import pytest
from fastapi.testclient import TestClient

from journey.api.policy import ROLES, hidden_kinds
from tests.api.conftest import NID, NOW, auth

#: Existing and missing names of each identity kind (the scenario's Ana, and nobody).
NAMES = {
    "national_id": (f"national_id:{NID}", "national_id:87654321X"),
    "phone": ("+34600111001", "+34600999999"),
    "email": ("ana@example.es", "nobody@example.es"),
    "twitter": ("@ana_m", "@nobody_here"),
    "customer_id": ("C-1001", "C-9999"),
}

#: Endpoints that look a customer up; ``{ref}`` is the name.
CUSTOMER_LOOKUPS = (
    "/api/customers/{ref}",
    "/api/customers/{ref}/timeline",
    f"/api/customers/{{ref}}/as-of?occurred_by={NOW.replace('+', '%2B')}",
    "/api/customers/{ref}/can-contact?channel=phone&purpose=commercial",
    "/api/cases?customer={ref}",
    "/api/promises?customer={ref}",
    "/api/warranty/{ref}",
)
#: Endpoints whose names are not identities: (path, existing name, missing name).
OTHER_LOOKUPS = (
    ("/api/cases/{ref}", "K-1", "K-999"),
    ("/api/warranty/{ref}", "X200-5581-AB", "X200-0000-ZZ"),
)


class Probe(NamedTuple):
    method: str
    path: str
    role: str | None  # None: no token
    present: str
    absent: str


def _quoted(ref: str) -> str:
    return ref.replace("+", "%2B").replace("@", "%40")


def probes() -> list[Probe]:
    out = []
    for template in CUSTOMER_LOOKUPS:
        for kind, (present, absent) in NAMES.items():
            p, a = template.format(ref=_quoted(present)), template.format(ref=_quoted(absent))
            out.append(Probe("GET", template, None, p, a))
            for role in ROLES:
                if kind in hidden_kinds(role):
                    out.append(Probe("GET", template, role, p, a))
    for template, present, absent in OTHER_LOOKUPS:
        out.append(Probe("GET", template, None, template.format(ref=present),
                         template.format(ref=absent)))
    # Token names: only an admin may list or revoke tokens.
    for role in (None, *(r for r in ROLES if r != "admin")):
        out.append(Probe("DELETE", "/api/tokens/{name}", role, "/api/tokens/t-sales",
                         "/api/tokens/t-nobody"))
    return out


PROBES = probes()


@pytest.mark.parametrize("probe", PROBES,
                         ids=[f"{p.method} {p.present} as {p.role or 'no token'}" for p in PROBES])
def test_an_existing_and_a_missing_name_get_the_same_answer(
        client: TestClient, secrets: dict[str, str], probe: Probe) -> None:
    headers = auth(secrets[probe.role]) if probe.role else {}
    present = client.request(probe.method, probe.present, headers=headers)
    absent = client.request(probe.method, probe.absent, headers=headers)
    assert present.status_code >= 400, f"{probe.present} answered {present.status_code}"
    assert (present.status_code, present.content) == (absent.status_code, absent.content)


def test_the_names_exist_for_a_role_that_may_look_them_up(client: TestClient,
                                                         secrets: dict[str, str]) -> None:
    """The comparisons above are between a name that exists and one that does not."""
    headers = auth(secrets["billing"])
    for present, absent in NAMES.values():
        assert client.get(f"/api/customers/{_quoted(present)}", headers=headers).status_code == 200
        assert client.get(f"/api/customers/{_quoted(absent)}", headers=headers).status_code == 404
        assert client.get(f"/api/warranty/{_quoted(present)}", headers=headers).status_code == 200
    for template, present, absent in OTHER_LOOKUPS:
        assert client.get(template.format(ref=present), headers=headers).status_code == 200
        assert client.get(template.format(ref=absent), headers=headers).status_code == 404
    admin = auth(secrets["admin"])
    assert [t["name"] for t in client.get("/api/tokens", headers=admin).json()["tokens"]
            if t["name"] == "t-sales"] == ["t-sales"]
