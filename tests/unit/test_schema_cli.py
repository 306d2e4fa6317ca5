"""``journey schema``: the published JSON Schema of input facts, and that it says what the ledger accepts.

The ``jsonschema`` package is not a dependency, so a fact is checked here against the schema by
a small validator of the keywords the schema uses; it refuses any keyword it does not know, so
a schema that grows one cannot pass unchecked.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from consumers.jsonl_ingest import parse_line
from domain import schemas
from domain.errors import InvalidFact
from journey import demo_data
from tests.unit.test_catalogue import EXAMPLES

ROOT = Path(__file__).resolve().parents[2]
PUBLISHED = ROOT / "docs" / "schema" / "facts.schema.json"


def journey(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "journey.cli", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=120, check=False)


# ------------------------------------------------------------------------ a small validator

_ANNOTATIONS = {"title", "description", "default", "format", "$schema", "$defs", "discriminator"}


def problems(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "") -> list[str]:
    """Why ``value`` does not validate against ``schema`` (JSON Schema 2020-12, the keywords
    the published schema uses), or [] when it does."""
    out: list[str] = []
    for keyword, rule in schema.items():
        if keyword in _ANNOTATIONS:
            continue
        if keyword == "$ref":
            out += problems(value, root["$defs"][rule.removeprefix("#/$defs/")], root, where)
        elif keyword == "anyOf":
            found = [problems(value, option, root, where) for option in rule]
            if all(found):
                out.append(f"{where}: matches none of {len(rule)} options ({'; '.join(p for f in found for p in f)})")
        elif keyword == "type":
            ok = {"object": isinstance(value, dict), "array": isinstance(value, list),
                  "string": isinstance(value, str), "boolean": isinstance(value, bool),
                  "null": value is None,
                  "integer": isinstance(value, int) and not isinstance(value, bool),
                  "number": isinstance(value, int | float) and not isinstance(value, bool)}[rule]
            if not ok:
                return [f"{where}: not of type {rule}"]
        elif keyword == "enum":
            if value not in rule:
                out.append(f"{where}: {value!r} not in {rule}")
        elif keyword == "properties":
            for name, sub in rule.items():
                if name in value:
                    out += problems(value[name], sub, root, f"{where}.{name}")
        elif keyword == "required":
            out += [f"{where}.{name}: missing" for name in rule if name not in value]
        elif keyword == "additionalProperties":
            extra = [k for k in value if k not in schema.get("properties", {})]
            if rule is False:
                out += [f"{where}.{k}: not allowed" for k in extra]
            else:
                for k in extra:
                    out += problems(value[k], rule, root, f"{where}.{k}")
        elif keyword == "propertyNames":
            for k in value:
                out += problems(k, rule, root, f"{where} key {k!r}")
        elif keyword in ("minProperties", "minItems", "minLength"):
            if len(value) < rule:
                out.append(f"{where}: fewer than {rule}")
        elif keyword in ("maxProperties", "maxItems", "maxLength"):
            if len(value) > rule:
                out.append(f"{where}: more than {rule}")
        elif keyword == "pattern":
            if re.search(rule.replace("$", r"\Z"), value) is None:  # JSON Schema's $ ends the text
                out.append(f"{where}: does not match {rule}")
        elif keyword == "minimum":
            if value < rule:
                out.append(f"{where}: below {rule}")
        elif keyword == "maximum":
            if value > rule:
                out.append(f"{where}: above {rule}")
        elif keyword == "items":
            for i, item in enumerate(value):
                out += problems(item, rule, root, f"{where}[{i}]")
        else:
            raise AssertionError(f"the schema uses {keyword!r}, which this validator does not check")
    return out


# ------------------------------------------------------------------------ the command


def test_the_published_file_is_what_journey_schema_prints(tmp_path: Path) -> None:
    done = journey("schema", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout == PUBLISHED.read_text(encoding="utf-8"), (
        "docs/schema/facts.schema.json is stale: write it again with "
        "`journey schema > docs/schema/facts.schema.json`")
    assert done.stderr == ""
    assert list(tmp_path.iterdir()) == []  # no ledger made on the spot
    assert journey("schema", "--json", cwd=tmp_path).stdout == done.stdout


def test_one_type_and_an_unknown_one(tmp_path: Path) -> None:
    done = journey("schema", "call.outbound", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    doc = json.loads(done.stdout)
    assert doc["$ref"] == "#/$defs/CallOutbound"
    call = doc["$defs"]["CallOutbound"]
    assert call["properties"]["type"] == {"enum": ["call.outbound"]}
    assert doc["$defs"]["CallOutboundData"]["properties"]["purpose"] == {"enum": ["commercial", "service"]}
    wrong = journey("schema", "call.outgoing", cwd=tmp_path)
    assert wrong.returncode == 2
    assert wrong.stdout == ""
    assert wrong.stderr.strip() == "journey schema: unknown type 'call.outgoing' (did you mean 'call.outbound'?)"
    system = journey("schema", "customer.forgotten", cwd=tmp_path)
    assert system.returncode == 2
    assert "is written by the ledger itself" in system.stderr


# ------------------------------------------------------------------------ the schema says what is accepted

SCHEMA = json.loads(PUBLISHED.read_text(encoding="utf-8"))


def test_the_schema_names_every_input_type_and_no_other() -> None:
    mapping = SCHEMA["discriminator"]["mapping"]
    assert SCHEMA["discriminator"]["propertyName"] == "type"
    assert sorted(mapping) == sorted(schemas.input_types())
    assert "identity.unlinked" not in mapping and "contact.decided" not in mapping


def test_every_accepted_demo_and_documented_fact_validates_against_the_schema() -> None:
    facts = [*EXAMPLES.values(), *demo_data.generate(300, seed=11)]
    for fact in facts:
        parse_line(orjson.dumps(fact))  # the ledger accepts it...
        assert problems(fact, SCHEMA, SCHEMA) == [], fact  # ...and so does the schema


@pytest.mark.parametrize(
    ("change", "why"),
    [
        pytest.param({"type": "call.outgoing"}, "matches none", id="unknown-type"),
        pytest.param({"data": {"purpose": "spam"}}, "not in ['commercial', 'service']", id="bad-choice"),
        pytest.param({"data": {}}, ".data.purpose: missing", id="missing-required"),
        pytest.param({"extra": 1}, ".extra: not allowed", id="unknown-top-level"),
        pytest.param({"customer": {"fax": "1"}}, "key 'fax'", id="unknown-identity"),
        pytest.param({"customer": {}}, ".customer: fewer than 1", id="no-identity"),
        pytest.param({"id": "a\u0001b"}, ".id: does not match", id="control-character"),
        pytest.param({"id": "  "}, ".id: does not match", id="blank-id"),
        pytest.param({"data": {"purpose": "service", "duration_s": 86_401}}, "above 86400", id="too-long-a-call"),
        pytest.param({"data": {"purpose": "service", "duration_s": True}}, "not of type integer",
                     id="bool-is-not-int"),
    ],
)
def test_the_schema_refuses_what_the_ledger_refuses(change: dict[str, Any], why: str) -> None:
    fact = {**EXAMPLES["call.outbound"], **change}
    found = problems(fact, SCHEMA, SCHEMA)
    if change.get("type") is None:  # the one type's schema names the field
        found = problems(fact, SCHEMA["$defs"]["CallOutbound"], SCHEMA, "")
    assert any(why in p for p in found), found
    with pytest.raises(InvalidFact):
        parse_line(orjson.dumps(fact))
