"""``POST /internal/cli``: a ``journey`` command from this machine, run by the server.

The server holds the projections, so a command run beside it (``journey customer``, ``status``,
``project``...) is handed here by journey/forwarding.py and run by the very same function
with the server's Journey, under the desk's lock, in a thread of its own. What it prints
streams back as newline-delimited JSON frames (``{"started": true}``, then ``{"out": text}``
and ``{"err": text}`` as lines are printed, then ``{"exit": code}``).

The caller proves it may by the secret of serve.json (readable only by the data directory's
owner) and must call from this machine; an API token is not enough. The endpoint is not
part of the API: it is left out of OpenAPI and the access log.

Output is captured per command by replacing ``sys.stdout`` and ``sys.stderr`` (once, at the
first command: only a real server, the writer of serve.json, ever runs one) with
streams that write to the current command's frames when one runs in the calling context
(a ``ContextVar``) and to the real stream otherwise, so the server's own logs are untouched.
"""

from __future__ import annotations

import argparse
import asyncio
import hmac
import ipaddress
import logging
import os
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Mapping
from contextvars import ContextVar
from typing import Any, TextIO, cast

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response, StreamingResponse

from journey.api.service import Desk
from journey.config import Settings
from journey.forwarding import ENDPOINT, SECRET_HEADER, read_server

#: A CLI command: parsed arguments and the open ledger in, exit code out.
Command = Callable[[argparse.Namespace, Any], int]

log = logging.getLogger("journey.api.forward")

Frame = dict[str, Any]
_frames: ContextVar[Callable[[str, str], None] | None] = ContextVar("journey_cli_frames", default=None)


class RoutedStream:
    """``sys.stdout``/``sys.stderr`` of a server: the running command's frames, or the real one."""

    def __init__(self, name: str, real: TextIO) -> None:
        self.name = name
        self.real = real

    def write(self, text: str) -> int:
        emit = _frames.get()
        if emit is None:
            return self.real.write(text)
        emit(self.name, text)
        return len(text)

    def flush(self) -> None:
        if _frames.get() is None:
            self.real.flush()

    def isatty(self) -> bool:
        return False if _frames.get() is not None else self.real.isatty()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def route_output() -> None:
    """Install the routed streams (once per process)."""
    if not isinstance(sys.stdout, RoutedStream):
        sys.stdout = cast(TextIO, RoutedStream("out", sys.stdout))
    if not isinstance(sys.stderr, RoutedStream):
        sys.stderr = cast(TextIO, RoutedStream("err", sys.stderr))


class _Lines:
    """Collects a command's writes into whole lines, so a frame is a line (or the tail)."""

    def __init__(self, send: Callable[[Frame], None]) -> None:
        self.send = send
        self.pending = {"out": "", "err": ""}

    def __call__(self, name: str, text: str) -> None:
        text = self.pending[name] + text
        cut = text.rfind("\n") + 1
        if cut:
            self.send({name: text[:cut]})
        self.pending[name] = text[cut:]

    def close(self) -> None:
        for name, text in self.pending.items():
            if text:
                self.send({name: text})
            self.pending[name] = ""


def _refusal(request: Request, settings: Settings) -> str | None:
    client = request.client.host if request.client else ""
    own = (request.scope.get("server") or ("", 0))[0]
    try:
        local = ipaddress.ip_address(client).is_loopback or client == own
    except ValueError:
        local = False
    if not local:
        return "commands are taken only from this machine"
    server = read_server(settings)
    given = request.headers.get(SECRET_HEADER, "")
    if server is None or server.pid != os.getpid() or not given or not hmac.compare_digest(
            given.encode(), server.secret.encode()):
        return (f"not for API tokens: this endpoint runs `journey` commands for the owner of "
                f"{settings.data_dir} (the secret of serve.json)")
    return None


def _error(status: int, error: str) -> Response:
    return Response(orjson.dumps({"error": error, "detail": None}), status_code=status,
                    media_type="application/json")


def install(app: FastAPI, desk: Desk, settings: Settings, commands: Mapping[str, Command]) -> None:
    """Add the endpoint to ``app``; the first command it runs routes this process's output.
    ``commands``: the ones it may run (the CLI's, handed over by ``journey serve``; the API
    does not import the CLI)."""

    @app.post(ENDPOINT, include_in_schema=False)
    async def run_command(request: Request) -> Response:
        refused = _refusal(request, settings)
        if refused is not None:
            log.warning("refused a command from %s: %s", request.client.host if request.client else "-",
                        refused)
            return _error(403, refused)
        route_output()

        try:
            body = orjson.loads(await request.body())
            command, values = str(body["command"]), dict(body["args"])
            data_dir = str(body["data_dir"])
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            return _error(400, "expected {command, args, cwd, data_dir}")
        if data_dir != str(settings.data_dir.resolve()):
            return _error(409, f"this server serves {settings.data_dir.resolve()}, not {data_dir}")
        if command not in commands:
            return _error(409, f"journey {command} is not run by a server; run it on its own")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Frame] = asyncio.Queue()

        def send(frame: Frame) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, frame)

        args = argparse.Namespace(**values)
        threading.Thread(target=_run, args=(desk, commands[command], args, send), daemon=True,
                         name=f"journey-{command}").start()

        async def frames() -> AsyncIterator[bytes]:
            while True:
                frame = await queue.get()
                yield orjson.dumps(frame) + b"\n"
                if "exit" in frame:
                    return

        return StreamingResponse(frames(), media_type="application/x-ndjson")


def _run(desk: Desk, function: Callable[[argparse.Namespace, Any], int], args: argparse.Namespace,
         send: Callable[[Frame], None]) -> None:
    lines = _Lines(send)
    _frames.set(lines)  # this thread's own context: only this command's prints are captured
    started = time.monotonic()
    code = 1
    try:
        with desk.use() as journey:
            send({"started": True})
            code = function(args, journey)
    except SystemExit as stop:  # what a command's exit would have meant in its own process
        if stop.code is None or isinstance(stop.code, int):
            code = stop.code or 0
        else:
            print(stop.code, file=sys.stderr)
    except Exception as error:
        log.exception("journey %s, run for a command on this machine, failed", args.command)
        print(f"journey {args.command}: failed in the server: {error} (the server's log has the "
              "details)", file=sys.stderr)
    finally:
        lines.close()
        _frames.set(None)
        log.info("ran `journey %s` for a command on this machine: exit %d in %.2f s", args.command,
                 code, time.monotonic() - started)
        send({"exit": code})
