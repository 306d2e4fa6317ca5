#!/usr/bin/env bash
# The whole test suite, as CI runs it: real Kafka and PostgreSQL, slow fault tests included.
# Fetches and starts what it needs (Kafka jars from Maven Central, PostgreSQL from Debian).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
export JOURNEY_REQUIRE_KAFKA=${JOURNEY_REQUIRE_KAFKA:-1}
export JOURNEY_REQUIRE_POSTGRES=${JOURNEY_REQUIRE_POSTGRES:-1}
export JOURNEY_REQUIRE_BROWSER=${JOURNEY_REQUIRE_BROWSER:-1}

echo "== PostgreSQL binaries"
bash scripts/ensure-postgres.sh
echo "== Chromium (console browser tests)"
bash scripts/ensure-chromium.sh
echo "== Kafka jars"
"$VENV/bin/python" -m tests.harness.kafka fetch
echo "== lint"
"$VENV/bin/ruff" check .
"$VENV/bin/mypy"
echo "== layers (import-linter: the contracts in pyproject.toml)"
"$VENV/bin/lint-imports"
echo "== tests"
set +e
"$VENV/bin/pytest" -q -p no:cacheprovider "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure" >&2
  exit 1
fi
exit "$status"
