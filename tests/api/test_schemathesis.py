"""Property-based: requests generated from /openapi.json never get a server error.

Schemathesis generates valid and invalid (positive and negative) parameters and bodies for every operation and sends
them with an admin token (every endpoint open to it) to the app over a real ledger; any 5xx
fails, and so does a status code the schema does not document.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import schemathesis
from fastapi import FastAPI
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, status_code_conformance

from journey.api.app import create_app
from journey.config import Settings
from tests.api.conftest import SCENARIO, make_tokens, record

CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance]


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> tuple[schemathesis.BaseSchema, str]:
    home = tmp_path_factory.mktemp("schemathesis") / "ledger"
    record(home, SCENARIO)
    secret = make_tokens(home)["admin"]
    app: FastAPI = create_app(Settings(data_dir=home), duties=[])
    return schemathesis.openapi.from_asgi("/openapi.json", app), secret


def _exercise(operation: Any, headers: dict[str, str], mode: schemathesis.GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    def exercise(case: Any) -> None:
        case.call_and_validate(headers=headers, checks=CHECKS)

    try:
        exercise()
    except Unsatisfiable:
        if mode is schemathesis.GenerationMode.POSITIVE:
            raise  # negative: an operation without parameters or body has nothing to break


@pytest.mark.slow  # about 20 s: every operation, positive and negative examples
def test_no_server_errors(api: tuple[schemathesis.BaseSchema, str]) -> None:
    schema, secret = api
    operations = [result.ok() for result in schema.get_all_operations()]  # type: ignore[union-attr]
    assert len(operations) >= 15
    for operation in operations:
        headers = {"Authorization": f"Bearer {secret}"}
        if operation.path == "/api/session" and operation.method.upper() == "POST":
            headers = {}  # signing in takes no token; a generated one must just be refused
        for mode in (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE):
            _exercise(operation, headers, mode)


def test_the_schema_is_served(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path), duties=[])
    loaded = schemathesis.openapi.from_asgi("/openapi.json", app)
    assert len(list(loaded.get_all_operations())) >= 15
