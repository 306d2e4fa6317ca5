"""``journey serve`` (the HTTP API and the console) and ``journey token`` (who may use it).

``serve`` binds 127.0.0.1 unless told otherwise: the API hands out personal data, so exposing
it is a decision (a reverse proxy with TLS in front, docs/security.md), not a default. While it
runs it holds the projections, and the commands run beside it that read them are run inside
it (journey/forwarding.py, docs/deployment.md). Exit
codes of ``token``: 0 done, 2 bad usage (a bad name, role, department or lifetime, or rotating a
revoked token), 3 no such token.
"""

from __future__ import annotations

import argparse
import functools
import logging
import sys
from collections.abc import Callable, Mapping
from typing import Any

from journey.api.policy import DEPARTMENTS, ROLES
from journey.api.tokens import Token, TokenError, TokenRevoked, lifetime, open_tokens
from journey.bootstrap import Journey
from journey.cli.kinds import SERVED, Command
from journey.cli.output import dump
from journey.forwarding import announce, local_url, withdraw
from journey.sharing import identify


def cmd_serve(args: argparse.Namespace, journey: Journey,
              commands: Mapping[str, Command] | None = None) -> int:
    """Serve until stopped; ``commands``: the CLI's, of which those in SERVED are run for the
    commands started beside the server (journey/api/forward.py)."""
    import uvicorn

    from journey.api.app import create_app

    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    api_log = logging.getLogger("journey.api")
    api_log.addHandler(handler)
    api_log.setLevel(args.log_level.upper())
    api_log.propagate = False

    tokens = open_tokens(journey.settings)
    try:
        active = [t for t in tokens.tokens() if t.active]
    finally:
        tokens.close()
    if not active:
        print("journey serve: no API tokens yet; every request will get 401. Create one with\n"
              "    journey token create NAME --role admin", file=sys.stderr)
    url = local_url(args.host, args.port)
    identify("journey serve", url)
    # The server holds the projections from its start to its end: take them now (waiting for a
    # `journey project` that has them), and tell other commands where to send their work.
    journey.projections  # noqa: B018
    served = {name: run for name, run in (commands or {}).items() if name in SERVED}
    app = create_app(journey.settings, journey=journey, tick_seconds=args.tick, commands=served)
    announce(journey.settings, url)
    try:
        print(f"journey serve: {journey.settings.data_dir} on http://{args.host}:{args.port}/ "
              f"(API under /api, OpenAPI at /openapi.json, console at /console/)", file=sys.stderr,
              flush=True)
        uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level, access_log=False,
                    server_header=False)
    finally:
        withdraw(journey.settings)
    return 0


def _lifetime(token: Token) -> str:
    return f"expires {token.expires_at}" if token.expires_at else "never expires"


def cmd_token(args: argparse.Namespace, journey: Journey) -> int:
    try:
        tokens = open_tokens(journey.settings)
    except TokenError as error:
        print(f"journey token: {error}", file=sys.stderr)
        return 2
    try:
        if args.token_command == "create":
            try:
                token, secret = tokens.create(args.name, args.role, args.department, days=args.days)
            except TokenError as error:
                print(f"journey token create: {error}", file=sys.stderr)
                return 2
            if args.json:
                dump({**token.to_json(), "secret": secret})
            else:
                dept = f", department {token.department}" if token.department else ""
                print(secret)
                print(f"token {token.name!r} created: role {token.role}{dept}, {_lifetime(token)}. "
                      "The secret above is shown only now; keep it somewhere safe.", file=sys.stderr)
            return 0
        if args.token_command == "rotate":
            try:
                token, secret = tokens.rotate(args.name, days=args.days)
            except TokenRevoked as error:
                print(f"journey token rotate: {error}", file=sys.stderr)
                return 2
            except TokenError as error:
                print(f"journey token rotate: {error}", file=sys.stderr)
                return 2 if tokens.get(args.name) is not None else 3
            if args.json:
                dump({**token.to_json(), "secret": secret})
            else:
                print(secret)
                print(f"token {token.name!r} rotated: the secret above replaces the old one, which "
                      f"is refused from now on; {_lifetime(token)}. It is shown only now.",
                      file=sys.stderr)
            return 0
        if args.token_command == "list":
            listed = tokens.tokens()
            if args.json:
                dump({"tokens": [t.to_json() for t in listed]})
            elif not listed:
                print("no tokens (journey token create NAME --role ROLE)")
            else:
                width = max(len(t.name) for t in listed)
                for t in listed:
                    state = (f"revoked {t.revoked_at}" if t.revoked_at else
                             f"expired {t.expires_at}" if t.expired else
                             f"active, {_lifetime(t)}")
                    used = f"last used {t.last_used_at}" if t.last_used_at else "never used"
                    print(f"{t.name:<{width}}  {t.role:<21} {t.department or '-':<21} "
                          f"created {t.created_at}  {state}  {used}")
            return 0
        try:
            token = tokens.revoke(args.name)
        except TokenError as error:
            print(f"journey token revoke: {error}", file=sys.stderr)
            return 3
        if args.json:
            dump(token.to_json())
        else:
            print(f"token {token.name!r} revoked at {token.revoked_at}")
        return 0
    finally:
        tokens.close()


def _days(text: str) -> float:
    """``--days``: a lifetime argparse refuses with the reason when it is not one."""
    try:
        days = float(text)
        lifetime(days)
    except (ValueError, TokenError):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a number of days from 0 (never expires) to 36500") from None
    return days


def register(subparsers: Any, commands: dict[str, Callable[[argparse.Namespace, Journey], int]]) -> None:
    p = subparsers.add_parser("serve", help="the HTTP API and the department console (docs/security.md)")
    p.add_argument("--host", default="127.0.0.1",
                   help="address to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--tick", type=float, default=1.0, metavar="SECONDS",
                   help="how often the background duties run (default 1 s)")
    p.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"),
                   help="info logs every API request (token name, role, path, status)")
    commands["serve"] = functools.partial(cmd_serve, commands=commands)

    p = subparsers.add_parser("token", help="API tokens for journey serve: create, list, rotate, revoke")
    sub = p.add_subparsers(dest="token_command", required=True)
    c = sub.add_parser("create", help="a new token; prints its secret once")
    c.add_argument("name")
    c.add_argument("--role", required=True, choices=ROLES)
    c.add_argument("--department", choices=DEPARTMENTS,
                   help="the department (implied by a department role; optional for the others)")
    days = ("its lifetime in days from now (0: never expires; default JOURNEY_TOKEN_DAYS, "
            "else 90)")
    c.add_argument("--days", type=_days, metavar="N", help=days)
    c.add_argument("--json", action="store_true")
    c = sub.add_parser("rotate", help="a new secret for a token (printed once); the old one stops "
                                      "working at once")
    c.add_argument("name")
    c.add_argument("--days", type=_days, metavar="N", help=days)
    c.add_argument("--json", action="store_true")
    c = sub.add_parser("list", help="every token, revoked ones too (never a secret)")
    c.add_argument("--json", action="store_true")
    c = sub.add_parser("revoke", help="revoke a token at once")
    c.add_argument("name")
    c.add_argument("--json", action="store_true")
    commands["token"] = cmd_token
