"""Several ``journey`` processes on one data directory, as people end up running them: a server
and commands beside it, two projections at once, a command that finds the projections held."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import httpx
import orjson
import pytest

from tests.processes import free_port, stop, stored_events, wait_for_health, wait_for_line

BUSY = 75


def _cmd(home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "journey.cli", "--data-dir", str(home), *args]


def _journey(home: Path, *args: str, env: dict[str, str] | None = None,
             cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(_cmd(home, *args), capture_output=True, text=True, timeout=180, check=False,
                          env={**os.environ, **(env or {})}, cwd=cwd)
    assert "Traceback" not in done.stderr, done.stderr
    return done


def _facts(prefix: str, n: int) -> bytes:
    """``n`` new inbound calls from the demo's first customer, unknown to the demo ledger."""
    return b"".join(orjson.dumps({
        "type": "call.inbound", "id": f"{prefix}-{i}", "source": "shared-dir-test",
        "customer": {"phone": "+34600900001"}, "occurred_at": f"2026-06-01T10:{i:02d}:00+02:00",
        "department": "customer_care", "agent": "CC-9", "data": {"reason": "ask about an offer"},
    }) + b"\n" for i in range(n))


def _projected_events(home: Path) -> int:
    con = duckdb.connect(str(home / "projections.duckdb"), read_only=True)
    try:
        row = con.execute("SELECT count(*) FROM events").fetchone()
    finally:
        con.close()
    assert row is not None
    return int(row[0])


@pytest.fixture
def demo(tmp_path: Path) -> Path:
    home = tmp_path / "ledger"
    made = _journey(home, "demo", "--customers", "60")
    assert made.returncode == 0, made.stderr
    return home


@pytest.fixture
def served(demo: Path, tmp_path: Path) -> Iterator[tuple[Path, str, subprocess.Popen[str]]]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    log = tmp_path / "serve.log"
    with open(log, "w") as err:
        server = subprocess.Popen(_cmd(demo, "serve", "--port", str(port)), stdout=subprocess.DEVNULL,
                                  stderr=err, text=True, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_for_health(url, server, log.read_text)
        yield demo, url, server
    finally:
        stop(server)


def _views(home: Path) -> dict[str, Any]:
    """What the reading commands print, as a person and as a machine would read them."""
    out: dict[str, Any] = {}
    now = ("--now", "2026-06-15T12:00:00+02:00")  # the clocks' documents depend on it
    for args in (("customer", "+34600900001", "--json"), ("customer", "C-900002"), ("status", "--json"),
                 ("cases", "--json", *now), ("cases", "--overdue", *now), ("promises", "--json", *now)):
        done = _journey(home, *args)
        assert done.returncode == 0, (args, done.stderr)
        out[" ".join(args)] = orjson.loads(done.stdout) if "--json" in args else done.stdout
    return out


def test_commands_beside_a_running_server_answer_as_they_would_without_it(
        served: tuple[Path, str, subprocess.Popen[str]], tmp_path: Path) -> None:
    home, url, server = served
    assert (home / "serve.json").stat().st_mode & 0o777 == 0o600
    before = stored_events(home)
    new = tmp_path / "calls.jsonl"
    new.write_bytes(_facts("beside", 7))

    appended = _journey(home, "append", str(new), "--json")
    assert appended.returncode == 0, appended.stderr
    summary = orjson.loads(appended.stdout)
    assert (summary["recorded"], summary["rejected"], summary["projected"]) == (7, 0, False)
    assert summary["projected_by"] == url
    again = _journey(home, "append", str(new))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("recorded 0, duplicates 7, rejected 0;")
    assert f"journey serve at {url}" in again.stdout and "projects them" in again.stdout

    # The server's view has the new calls: the reading commands run inside it.
    customer = _journey(home, "customer", "+34600900001", "--json")
    assert customer.returncode == 0, customer.stderr
    ids = {e["source_id"] for e in orjson.loads(customer.stdout)["timeline"]}
    assert {f"beside-{i}" for i in range(7)} <= ids
    project = _journey(home, "project")
    assert project.returncode == 0, project.stderr
    assert project.stdout.startswith("projected ")
    twice = [subprocess.Popen(_cmd(home, "project", "--json"), stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(2)]
    for p in twice:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0 and "Traceback" not in err, err
        assert orjson.loads(out)["position"] == before + summary["recorded"] + summary["derived"]
    unknown = _journey(home, "customer", "+34699999999")
    assert unknown.returncode == 3 and "nobody known as" in unknown.stderr
    served_views = _views(home)
    assert server.poll() is None

    stop(server)
    assert not (home / "serve.json").exists()
    assert _views(home) == served_views
    assert stored_events(home) == before + 7 + summary["derived"]
    assert _projected_events(home) == stored_events(home)


def test_the_command_endpoint_takes_only_the_secret_of_serve_json(
        served: tuple[Path, str, subprocess.Popen[str]]) -> None:
    home, url, _ = served
    made = _journey(home, "token", "create", "desk", "--role", "customer_care", "--json")
    assert made.returncode == 0, made.stderr
    token = orjson.loads(made.stdout)["secret"]
    secret = orjson.loads((home / "serve.json").read_bytes())["secret"]
    body = {"command": "status", "args": {"command": "status", "json": True},
            "cwd": str(home), "data_dir": str(home.resolve())}
    with httpx.Client(base_url=url, timeout=60) as client:
        assert client.post("/internal/cli", json=body).status_code == 403
        assert client.post("/internal/cli", json=body,
                           headers={"Authorization": f"Bearer {token}"}).status_code == 403
        assert client.post("/internal/cli", json=body,
                           headers={"X-Journey-Secret": secret[:-1] + "x"}).status_code == 403
        assert "/internal/cli" not in client.get("/openapi.json").text
        events = stored_events(home)
        replaced = _journey(home, "demo", "--customers", "10")
        assert replaced.returncode == BUSY and f"journey serve at {url}" in replaced.stderr
        assert stored_events(home) == events
        answered = client.post("/internal/cli", json=body, headers={"X-Journey-Secret": secret})
    assert answered.status_code == 200
    frames = [orjson.loads(line) for line in answered.text.splitlines()]
    assert frames[0] == {"started": True} and frames[-1] == {"exit": 0}
    status = orjson.loads("".join(f.get("out", "") for f in frames))
    assert status["store_position"] == status["projection_position"] == stored_events(home)


def test_a_command_waits_for_the_holder_of_the_projections_and_names_it(
        demo: Path, tmp_path: Path) -> None:
    home = demo
    new = tmp_path / "calls.jsonl"
    new.write_bytes(_facts("later", 5))
    recorded = _journey(home, "append", str(new), "--no-project")
    assert recorded.returncode == 0, recorded.stderr
    holder = subprocess.Popen(_cmd(home, "project"), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env={**os.environ, "JOURNEY_FAULT_PAUSE_BEFORE_COMMIT": "1"})
    waiter: subprocess.Popen[str] | None = None
    try:
        wait_for_line(holder, "fault: paused before commit", timeout=120)
        assert _journey(home, "status", env={"JOURNEY_WAIT": "soon"}).returncode == 2
        busy = _journey(home, "status", env={"JOURNEY_WAIT": "1"})
        assert busy.returncode == BUSY, busy.stderr
        assert f"journey project (pid {holder.pid}, since " in busy.stderr
        assert "gave up after 1 s" in busy.stderr and busy.stdout == ""
        now = _journey(home, "customer", "+34600900001", env={"JOURNEY_WAIT": "0"})
        assert now.returncode == BUSY and "holds the projections" in now.stderr

        waiter = subprocess.Popen(_cmd(home, "status", "--json"), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        line = wait_for_line(waiter, "waiting for journey project", timeout=120)
        assert f"pid {holder.pid}" in line
        holder.kill()  # a holder that dies lets go: its lock goes with it
        out, err = waiter.communicate(timeout=120)
        assert waiter.returncode == 0 and "Traceback" not in err, err
        status = orjson.loads(out)
        assert status["projection_position"] == status["store_position"] == stored_events(home)
    finally:
        for p in (holder, waiter):
            if p is not None and p.poll() is None:
                p.kill()
            if p is not None:
                p.communicate()
    assert _projected_events(home) == stored_events(home)


def test_two_projections_at_once_take_turns(demo: Path, tmp_path: Path) -> None:
    new = tmp_path / "calls.jsonl"
    new.write_bytes(_facts("twice", 6))
    recorded = _journey(demo, "append", str(new), "--no-project")
    assert recorded.returncode == 0, recorded.stderr
    head = stored_events(demo)
    both = [subprocess.Popen(_cmd(demo, "project", "--json"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True) for _ in range(2)]
    done = []
    for p in both:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 0 and "Traceback" not in err, err
        done.append(orjson.loads(out))
    assert [d["position"] for d in done] == [head, head]
    assert sum(d["projected"] for d in done) == 6  # the second found nothing left to do
    assert _projected_events(demo) == head


def test_a_serve_json_left_behind_by_a_killed_server_is_ignored(demo: Path) -> None:
    stale = {"pid": os.getpid(), "url": f"http://127.0.0.1:{free_port()}", "secret": "s",
             "data_dir": str(demo.resolve()), "started_at": "2026-01-01T00:00:00+00:00"}
    (demo / "serve.json").write_bytes(orjson.dumps(stale))
    status = _journey(demo, "status", "--json", env={"JOURNEY_WAIT": "0"})
    assert status.returncode == 0, status.stderr
    assert orjson.loads(status.stdout)["projection_position"] == stored_events(demo)
    appended = _journey(demo, "append", str(demo / "demo.jsonl"), "--json")
    assert appended.returncode == 0, appended.stderr
    assert orjson.loads(appended.stdout)["projected"] is True


def test_a_duckdb_lock_taken_without_ours_is_named_at_once(demo: Path) -> None:
    keeper = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
         "print('open', flush=True); time.sleep(300)", str(demo / "projections.duckdb")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert keeper.stdout is not None and keeper.stdout.readline() == "open\n"
        busy = _journey(demo, "cases")
        assert busy.returncode == BUSY, busy.stderr
        assert f"(pid {keeper.pid}) has the projections in {demo} open without taking" in busy.stderr
        assert not (demo / "projections.lock").read_bytes()  # let go: nobody is named as holder
    finally:
        keeper.kill()
        keeper.communicate()
    assert _journey(demo, "cases").returncode == 0


def test_two_appends_of_same_named_files_keep_their_own_rejects(demo: Path, tmp_path: Path) -> None:
    sources = []
    for side in ("a", "b"):
        (tmp_path / side).mkdir()
        source = tmp_path / side / "calls.jsonl"
        source.write_bytes(_facts(f"rejects-{side}", 3) + b'{"type": "call.inbound", "side": "%s"}\n'
                           % side.encode())
        sources.append(source)
    appends = [subprocess.Popen(_cmd(demo, "append", str(s), "--json"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for s in sources]
    files = []
    for p in appends:
        out, err = p.communicate(timeout=180)
        assert p.returncode == 1 and "Traceback" not in err, err
        files.append(orjson.loads(out)["rejects_file"])
    assert len(set(files)) == 2
    assert sorted(p.name for p in (demo / "rejects").iterdir()) == sorted(Path(f).name for f in files)
    for f, source in zip(files, sources, strict=True):
        [rejected] = [orjson.loads(line) for line in Path(f).read_bytes().splitlines()]
        assert rejected["input"] == str(source) and rejected["line"] == 4
    assert _projected_events(demo) == stored_events(demo)


def _waiting_for_flock(pid: int, lock: Path) -> bool:
    """True while ``pid`` waits (is blocked) for a flock on ``lock`` (Linux's /proc/locks)."""
    inode = os.stat(lock).st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and "FLOCK" in fields:
            rest = fields[fields.index("FLOCK"):]
            if int(rest[3]) == pid and int(rest[4].rsplit(":", 1)[1]) == inode:
                return True
    return False


def test_an_append_waits_its_turn_at_the_store(demo: Path, tmp_path: Path) -> None:
    before = stored_events(demo)
    new = tmp_path / "calls.jsonl"
    new.write_bytes(_facts("turn", 4))
    lock = demo / "writer.lock"
    fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # another writer's batch, as far as the append can tell
        append = subprocess.Popen(_cmd(demo, "append", str(new), "--json"), stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while not _waiting_for_flock(append.pid, lock):
            assert append.poll() is None, append.communicate()
            assert time.monotonic() < deadline, "the append never asked for its turn"
            time.sleep(0.05)
        assert stored_events(demo) == before
    finally:
        os.close(fd)
    out, err = append.communicate(timeout=120)
    assert append.returncode == 0, err
    assert orjson.loads(out)["recorded"] == 4
    assert stored_events(demo) == before + 4
