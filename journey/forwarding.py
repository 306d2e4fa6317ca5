"""Commands beside a running ``journey serve`` run inside it.

A server holds the projections for as long as it runs, so a command that reads them would
wait for nothing. Instead the server leaves ``serve.json`` (mode 0600) in the data directory:
its pid, its address and a secret. A command finds it, POSTs its parsed arguments to the
server's ``/internal/cli`` (journey/api/forward.py) with the secret, and prints what the
server's run of the very same command prints, as it prints it, then exits with its code.

Only the user who can read the data directory can read the secret, and the server answers
that endpoint only to callers on its own machine. Standard input is not forwarded.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import secrets
import sys
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson

from journey.config import Settings
from journey.sharing import BUSY, alive, holder_now

#: Where the endpoint lives on the server; not part of the API (not in OpenAPI).
ENDPOINT = "/internal/cli"
#: The header that carries the secret of serve.json (never an API token).
SECRET_HEADER = "x-journey-secret"
#: Arguments that name files: made absolute against the caller's directory before they travel.
PATH_ARGS = frozenset({"file", "rejects", "out", "into", "live", "against", "write_checkpoint",
                       "checkpoint", "policy", "plot"})
#: How long a command waits for a server that wrote serve.json but does not answer yet.
STARTING = 15.0


@dataclass(frozen=True)
class Server:
    pid: int
    url: str
    secret: str
    data_dir: str
    started_at: str

    def describe(self) -> str:
        return f"journey serve at {self.url} (pid {self.pid})"


def local_url(host: str, port: int) -> str:
    """The address this machine reaches a server bound to ``host`` at."""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def announce(settings: Settings, url: str) -> Server:
    """Write serve.json (0600, replaced atomically) for this process serving at ``url``."""
    server = Server(os.getpid(), url, secrets.token_urlsafe(32), str(settings.data_dir.resolve()),
                    datetime.now().astimezone().isoformat(timespec="seconds"))
    path = settings.serve_path
    partial = path.with_name(f".{path.name}.{os.getpid()}")
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        os.write(fd, orjson.dumps(server.__dict__, option=orjson.OPT_INDENT_2))
    finally:
        os.close(fd)
    os.replace(partial, path)
    return server


def withdraw(settings: Settings) -> None:
    """Remove serve.json if this process wrote it (a newer server may have replaced it)."""
    server = read_server(settings)
    if server is not None and server.pid == os.getpid():
        settings.serve_path.unlink(missing_ok=True)


def read_server(settings: Settings) -> Server | None:
    try:
        raw = orjson.loads(settings.serve_path.read_bytes())
        return Server(int(raw["pid"]), str(raw["url"]), str(raw["secret"]), str(raw["data_dir"]),
                      str(raw["started_at"]))
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        return None


def running_server(settings: Settings) -> Server | None:
    """The live server of this data directory, if any (not this very process): the one
    serve.json names, if it holds the projections (a server killed without removing the file,
    its pid taken by another process since, does not)."""
    server = read_server(settings)
    if server is None or server.pid == os.getpid() or not alive(server.pid):
        return None
    holder = holder_now(settings.lock_path)
    return server if holder is not None and holder.pid == server.pid else None


class NotForwarded(Exception):
    """The server could not take the command before running it: run it here instead."""


def travelling(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """The parsed command as the server will see it: paths absolute, the policy named (the
    server may have been started with another JOURNEY_POLICY than this command)."""
    out = dict(vars(args))
    cwd = Path.cwd()
    for name in PATH_ARGS & out.keys():
        value = out[name]
        if isinstance(value, str) and value != "-":
            out[name] = str(cwd / value)
        elif isinstance(value, list):
            out[name] = [str(cwd / v) if isinstance(v, str) and v != "-" else v for v in value]
    if "policy" in out and out["policy"] is None and settings.policy is not None:
        out["policy"] = str(cwd / settings.policy)
    out.pop("data_dir", None)
    return out


def reads_stdin(args: argparse.Namespace) -> bool:
    return any(getattr(args, name, None) == "-" for name in ("file", "query"))


def forward(server: Server, settings: Settings, args: argparse.Namespace) -> int:
    """Run the command in ``server``; its output goes to ours as it comes. Raises
    :class:`NotForwarded` when the server did not start it (refused, gone, not answering)."""
    try:
        body = orjson.dumps({"command": args.command, "args": travelling(args, settings), "cwd": os.getcwd(),
                             "data_dir": str(settings.data_dir.resolve())})
    except TypeError as error:
        raise NotForwarded(f"its arguments cannot travel ({error})") from None
    response = _post(server, body, args.command)
    started = False
    try:
        for line in response:
            frame = orjson.loads(line)
            if "started" in frame:
                started = True
            elif "out" in frame or "err" in frame:
                _show(frame)
            elif "exit" in frame:
                return int(frame["exit"])
    except (OSError, http.client.HTTPException, orjson.JSONDecodeError) as error:
        if not started:
            raise NotForwarded(f"{server.describe()} broke off ({error})") from None
    except KeyboardInterrupt:
        print(f"\njourney {args.command}: interrupted; {server.describe()} finishes what it "
              "started", file=sys.stderr)
        return 130
    finally:
        response.close()
    if not started:
        raise NotForwarded(f"{server.describe()} broke off before starting it")
    print(f"journey {args.command}: {server.describe()} stopped before the command finished; "
          "what it printed above is all that was done: run the command again", file=sys.stderr)
    return BUSY


def _show(frame: dict[str, Any]) -> None:
    stream = sys.stdout if "out" in frame else sys.stderr
    try:
        stream.write(frame.get("out", frame.get("err", "")))
        stream.flush()
    except BrokenPipeError:  # `journey cases | head`: the reader has seen enough
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, stream.fileno())
        os.close(devnull)


def _post(server: Server, body: bytes, command: str) -> http.client.HTTPResponse:
    parts = urlsplit(server.url)
    deadline = time.monotonic() + STARTING
    said = False
    while True:
        connection = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port or 80,
                                                timeout=10)
        try:
            connection.connect()
            break
        except OSError as error:
            connection.close()
            if time.monotonic() > deadline or not alive(server.pid):
                raise NotForwarded(f"{server.describe()} does not answer ({error})") from None
            if not said:  # it wrote serve.json and is starting, or it hangs
                print(f"journey {command}: waiting for {server.describe()} to answer "
                      f"(up to {STARTING:g} s)...", file=sys.stderr, flush=True)
                said = True
            time.sleep(0.2)
    assert connection.sock is not None
    connection.sock.settimeout(None)  # a long `journey project` in the server prints as it goes
    try:
        connection.request("POST", ENDPOINT, body=body,
                           headers={"Content-Type": "application/json", SECRET_HEADER: server.secret})
        response = connection.getresponse()
    except (OSError, http.client.HTTPException) as error:
        connection.close()
        raise NotForwarded(f"{server.describe()} broke off ({error})") from None
    if response.status != 200:
        text = response.read().decode(errors="replace")
        connection.close()
        with contextlib.suppress(orjson.JSONDecodeError, AttributeError):
            text = str(orjson.loads(text).get("error", text))
        raise NotForwarded(f"{server.describe()} refused it: {response.status} {text}")
    return response
