"""docker-compose.yml and the Dockerfile agree with the code (no Docker needed).

Every container built from the repo runs a real ``journey`` subcommand with flags the CLI
accepts, and reaches Kafka and PostgreSQL at addresses the kafka and postgres services serve.
"""

from __future__ import annotations

import json
import re
import shlex
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from journey.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent
WORKERS = {
    "relay": ("relay", {}),
    "route": ("route", {}),
    "ingest": ("ingest", {"routed": True}),
    "projector": ("project", {"source": "kafka"}),
}
WORKER_ENV = {
    "JOURNEY_STORE": "postgres",
    "JOURNEY_POSTGRES_URL": "postgresql://journey:journey@postgres:5432/journey",
    "KAFKA_BOOTSTRAP": "kafka:19092",
    "JOURNEY_HOME": "/data",
}


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    doc = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    assert isinstance(doc, dict)
    return doc


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = compose["services"]
    return found


def _env(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a dict (compose allows a mapping or a list of K=V)."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {str(k): str(v) for k, v in env.items()}


def _command(service: dict[str, Any]) -> list[str]:
    command = service["command"]
    return shlex.split(command) if isinstance(command, str) else [str(part) for part in command]


def _listeners(value: str) -> dict[str, str]:
    """``NAME://host:port,...`` -> {NAME: "host:port"}."""
    out = {}
    for item in value.split(","):
        name, sep, address = item.strip().partition("://")
        assert sep, f"not a listener: {item!r}"
        out[name] = address
    return out


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = (ROOT / "Dockerfile").read_text()
    text = re.sub(r"\\\n", " ", text)  # continuation lines
    instructions = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            instructions.append((keyword.upper(), rest.strip()))
    return instructions


def test_services_exist(services: dict[str, dict[str, Any]]) -> None:
    assert {"kafka", "postgres", "route", "relay", "ingest", "projector", "api"} <= services.keys()


def test_api_serves_on_loopback_of_the_host_and_publishes_the_feed(services: dict[str, dict[str, Any]]) -> None:
    api = services["api"]
    args = build_parser().parse_args(_command(api))
    assert args.command == "serve" and args.host == "0.0.0.0" and args.port == 8000
    assert any(str(p).startswith("127.0.0.1:") and str(p).endswith(":8000") for p in api["ports"])
    env = _env(api)
    assert env["JOURNEY_VIEW_FEED"] == "1" and env["JOURNEY_STORE"] == "postgres"


def test_every_built_service_runs_a_real_journey_subcommand(services: dict[str, dict[str, Any]]) -> None:
    built = {name for name, service in services.items() if "build" in service}
    assert set(WORKERS) <= built
    parser = build_parser()
    for name in built:
        argv = _command(services[name])
        args = parser.parse_args(argv)  # SystemExit (a failure) on an unknown command or flag
        if name in WORKERS:
            command, expected = WORKERS[name]
            assert args.command == command, name
            for key, value in expected.items():
                assert getattr(args, key) == value, (name, key)
            assert not getattr(args, "once", False), f"{name} must follow, not stop when caught up"


def test_workers_env_dependencies_and_lifecycle(services: dict[str, dict[str, Any]]) -> None:
    for name in WORKERS:
        service = services[name]
        env = _env(service)
        for key, value in WORKER_ENV.items():
            assert env.get(key) == value, (name, key)
        depends = service["depends_on"]
        assert isinstance(depends, dict), f"{name}: depends_on needs conditions"
        for needed in ("kafka", "postgres"):
            assert depends[needed]["condition"] == "service_healthy", (name, needed)
        assert service["restart"] == "unless-stopped", name
        assert service.get("stop_grace_period"), name
        assert "container_name" not in service, f"{name}: a fixed name prevents --scale"


def test_healthchecks(services: dict[str, dict[str, Any]]) -> None:
    for name in ("kafka", "postgres"):
        check = services[name]["healthcheck"]
        test = check["test"]
        assert test and test[0] in ("CMD", "CMD-SHELL"), name
    assert "pg_isready" in " ".join(services["postgres"]["healthcheck"]["test"])


def test_workers_reach_the_listener_kafka_advertises(services: dict[str, dict[str, Any]]) -> None:
    kafka = _env(services["kafka"])
    assert set(kafka["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert kafka["KAFKA_NODE_ID"] == "1"
    assert kafka["CLUSTER_ID"]
    advertised = _listeners(kafka["KAFKA_ADVERTISED_LISTENERS"])
    listening = _listeners(kafka["KAFKA_LISTENERS"])
    protocols = _listeners(kafka["KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"].replace(":", "://"))
    controllers = set(kafka["KAFKA_CONTROLLER_LISTENER_NAMES"].split(","))
    for name in WORKERS:
        bootstrap = _env(services[name])["KAFKA_BOOTSTRAP"]
        names = [n for n, address in advertised.items() if address == bootstrap]
        assert names, f"{name} uses {bootstrap}, kafka advertises {advertised}"
        listener = names[0]
        assert listener not in controllers
        assert listener in protocols
        # The broker listens on that listener's port, and the service is reachable by that host.
        host, _, port = bootstrap.rpartition(":")
        assert listening[listener].rpartition(":")[2] == port
        assert host == "kafka"
    voters = kafka["KAFKA_CONTROLLER_QUORUM_VOTERS"]
    node, _, address = voters.partition("@")
    assert node == kafka["KAFKA_NODE_ID"]
    assert address.rpartition(":")[2] == listening[next(iter(controllers))].rpartition(":")[2]


def test_single_broker_replication_and_topics(services: dict[str, dict[str, Any]]) -> None:
    kafka = _env(services["kafka"])
    for key in ("KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR", "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
                "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"):
        assert kafka[key] == "1", key
    assert kafka["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "true"
    # An events topic auto-created (a projector subscribing before the relay made it) gets the
    # partition count the relay would have given it.
    for name in WORKERS:
        partitions = _env(services[name]).get("JOURNEY_PARTITIONS")
        if partitions is not None:
            assert partitions == kafka["KAFKA_NUM_PARTITIONS"], name


def test_postgres_matches_the_workers_url(services: dict[str, dict[str, Any]]) -> None:
    pg = services["postgres"]
    assert str(pg["image"]).startswith("postgres:16")
    env = _env(pg)
    url = urlsplit(WORKER_ENV["JOURNEY_POSTGRES_URL"])
    assert (env["POSTGRES_USER"], env["POSTGRES_PASSWORD"], env["POSTGRES_DB"]) == (
        url.username, url.password, url.path.lstrip("/"))
    assert url.hostname == "postgres"
    assert any(str(v).endswith(":/var/lib/postgresql/data") for v in pg["volumes"])


def test_projector_partitions_on_the_shared_volume(compose: dict[str, Any],
                                                   services: dict[str, dict[str, Any]]) -> None:
    assert "journey-data" in compose["volumes"]
    projector = services["projector"]
    assert "journey-data:/data" in projector["volumes"]
    assert _env(projector)["JOURNEY_HOME"] == "/data"
    assert not projector.get("ports"), "published ports prevent --scale projector=2"


def test_dockerfile() -> None:
    instructions = _dockerfile_instructions()
    keywords = [k for k, _ in instructions]
    assert instructions[0] == ("FROM", "python:3.11-slim")
    entrypoints = [json.loads(rest) for k, rest in instructions if k == "ENTRYPOINT"]
    assert entrypoints[-1] == ["journey"]
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["scripts"]
    assert "journey" in scripts
    users = [rest for k, rest in instructions if k == "USER"]
    assert users and users[-1] not in ("root", "0"), "the workers run as a non-root user"
    assert keywords.index("USER") > max(i for i, k in enumerate(keywords) if k == "RUN")
    installs = " ".join(rest for k, rest in instructions if k == "RUN" and "pip install" in rest)
    assert "pip install" in installs and "[test]" not in installs
    env = " ".join(rest for k, rest in instructions if k == "ENV")
    assert "JOURNEY_HOME=/data" in env


def test_dockerignore_keeps_local_state_out() -> None:
    patterns = {line.strip().rstrip("/") for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")}
    assert {".venv", ".journey", ".git"} <= patterns
