"""``journey demo``: a fresh embedded ledger with a realistic generated dataset, what to look at
in it, and with ``--serve`` the console with a sign-in link per desk.

Exit codes: 0 built (and served until Ctrl-C); 2 the data directory holds a ledger that is not a
demo; 75 another process is using the data directory.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from journey.bootstrap import bootstrap
from journey.cli.kinds import Command
from journey.cli.output import Ticker, ingest_progress, project_progress
from journey.config import Settings
from journey.sharing import BUSY
from journey.usecases import demo

#: Seconds between the lines that say the projection is still deriving the customers' rows.
QUIET_EVERY = 5.0


def register(sub: Any) -> None:
    p = sub.add_parser("demo", help="a fresh embedded ledger with a realistic generated dataset")
    p.add_argument("--customers", type=int, default=3000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--force", action="store_true", help="replace a non-demo ledger in DATA_DIR")
    p.add_argument("--serve", action="store_true",
                   help="then start the console and the API (journey serve) with a token per desk")
    p.add_argument("--host", default="127.0.0.1", help="with --serve: address to bind")
    p.add_argument("--port", type=int, default=8000, help="with --serve: port")


def cmd_demo(args: argparse.Namespace, settings: Settings, commands: Mapping[str, Command]) -> int:
    home = settings.data_dir
    try:
        source = demo.prepare(settings, force=args.force)
    except demo.InUse as busy:
        print(f"journey demo: {busy} is using {home}; stop it before the demo "
              "replaces that ledger", file=sys.stderr)
        return BUSY
    except demo.NotADemo:
        print(f"journey demo: {home} holds a ledger that is not a demo; "
              "use --data-dir for another place, or --force to replace it", file=sys.stderr)
        return 2
    print(f"demo: generating {args.customers:,} customers' touchpoints into {source}", file=sys.stderr)
    count = demo.write_facts(source, args.customers, args.seed)
    journey = bootstrap(settings)
    try:
        with project_progress(Ticker("project"), quiet_every=QUIET_EVERY) as projecting:
            built = demo.record(journey, source, ingest_progress(Ticker("append"), total=count),
                                projecting)
    finally:
        journey.close()
    summary, counts = built.summary, built.counts
    print(f"recorded {summary.recorded:,} touchpoints of {count:,} lines in {summary.seconds:.1f} s "
          f"({summary.rate:,.0f}/s); projections: {counts['customers']:,} customers, "
          f"{counts['events']:,} events")
    prog = _program()
    print(f"""
The demo ledger is in {home}/ (event store ledger.sqlite, projections projections.duckdb).
Look at the customer who got six sales calls after saying "don't call me again":
    {prog} --data-dir {home} customer +34600900001
An address changed by billing without asking; a warranty without the paper invoice;
contradictory answers on one complaint; tweets nobody answered; a call centre that learned
the customer moved:
    {prog} --data-dir {home} customer C-900002   (and C-900003 ... C-900006)
What each department works from: complaints past their deadline, one case with its clocks and
contradictions, promises not kept, unanswered tweets, a warranty without the invoice:
    {prog} --data-dir {home} cases --overdue
    {prog} --data-dir {home} case K-S4
    {prog} --data-dir {home} promises --overdue
    {prog} --data-dir {home} inbox
    {prog} --data-dir {home} warranty SNR58T20A4K
The same views for machines: add --json.  Positions and row counts: {prog} --data-dir {home} status
""")
    if args.serve:
        return serve_demo(args, settings, commands)
    print(f"The department console: {prog} --data-dir {home} demo --serve   (or: journey serve)")
    return 0


def serve_demo(args: argparse.Namespace, settings: Settings, commands: Mapping[str, Command]) -> int:
    """Tokens for the demo's desks, sign-in links that open the console, then ``journey serve``."""
    from journey.api.tokens import open_tokens
    from journey.cli.serve import cmd_serve

    tokens = open_tokens(settings)
    links = []
    try:
        for name, role in demo.DESKS:
            _, secret = tokens.create(name, role, None)
            links.append((name, role, secret))
    finally:
        tokens.close()
    base = f"http://{args.host}:{args.port}"
    lines = [f"{role:<15} {base}/console/#token={secret}" for _, role, secret in links]
    (settings.data_dir / "demo-tokens.txt").write_text(
        "".join(f"{name} {role} {secret}\n" for name, role, secret in links))
    print("\nThe department console is starting. Open one of these sign-in links in a browser\n"
          "(each signs in as a different desk; try the first one, then search +34600900001):\n    "
          + "\n    ".join(lines)
          + f"\nThe tokens are also in {settings.data_dir}/demo-tokens.txt. The HTTP API is under "
          f"{base}/api (OpenAPI: {base}/openapi.json). Ctrl-C stops the server.\n",
          flush=True)
    serve = argparse.Namespace(host=args.host, port=args.port, tick=1.0, log_level="warning")
    journey = bootstrap(settings)
    try:
        return cmd_serve(serve, journey, commands)
    finally:
        journey.close()


def _program() -> str:
    """How the user invoked us, so printed commands can be pasted back (.venv/bin/journey)."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "journey" and argv0.exists():
        return os.path.relpath(argv0) if not str(argv0).startswith("/usr") else "journey"
    return "journey"
