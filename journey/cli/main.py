"""The ``journey`` command: thin entry points that parse, hand over to the system, and print.

Exit codes: 0 done; 1 done, but some input lines were rejected; 2 bad usage or input that
cannot be read; 3 the customer asked for is not known; 4 a verdict of "no" (can-contact:
denied; replay diff: the two differ); 75 busy (sysexits.h's EX_TEMPFAIL): another process
kept the projections longer than JOURNEY_WAIT seconds, or a server stopped while running the
command, or an append's parse process died (what was recorded is kept: run it again); 130
interrupted (Ctrl-C).

Beside a running ``journey serve`` the commands that read the projections run inside it
(journey/forwarding.py); the others wait for whoever holds them (journey/sharing.py).
"""

from __future__ import annotations

import argparse
import contextlib
import faulthandler
import os
import signal
import sys
from collections.abc import Sequence
from typing import IO

from consumers.parse_pool import ParseStageFailed
from journey.bootstrap import bootstrap
from journey.cli import (
    analytics,
    append,
    audit,
    bench,
    cases,
    contact,
    customer,
    demo,
    feed,
    forget,
    greetings,
    identity,
    ingest,
    projection,
    quarantine,
    relay,
    replay,
    schema,
    serve,
    service,
)
from journey.cli.kinds import READERS, SERVED, SNAPSHOT_READERS, Command
from journey.cli.output import confirm_forwarded
from journey.config import Settings
from journey.forwarding import NotForwarded, forward, reads_stdin, running_server
from journey.runtime import tune_gc
from journey.sharing import BUSY, Busy, identify

#: The modules of the commands, each with ``register(subparsers, commands)``; in the order
#: ``journey --help`` lists them.
COMMAND_GROUPS = (append, customer, projection, relay, ingest, contact, bench, cases, service,
                  greetings, identity, audit, replay, forget, feed, analytics, serve, quarantine)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="journey", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir",
                        help="where the embedded ledger lives (env JOURNEY_HOME, default ./.journey)")
    sub = parser.add_subparsers(dest="command", required=True)
    demo.register(sub)
    schema.register(sub)
    for module in COMMAND_GROUPS:
        module.register(sub, COMMANDS)
    return parser


#: Command name -> its function, filled by :func:`build_parser`.
COMMANDS: dict[str, Command] = {}

def main(argv: Sequence[str] | None = None, stdout: IO[str] | None = None) -> int:
    """Run one command. Ctrl-C ends it as a kill would (an open transaction is rolled back,
    nothing half-written stays) with exit 130 and a line, not a traceback; a reader that
    closes the pipe early (``| head``) ends it quietly."""
    try:
        return _main(argv)
    except KeyboardInterrupt:
        print("journey: interrupted; nothing of the unfinished batch or transaction was kept",
              file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Whoever read the output has gone: say nothing more, and let Python's own flush at
        # exit find somewhere to write.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _main(argv: Sequence[str] | None) -> int:
    tune_gc()
    # `kill -USR1 PID` prints where every thread of a command is, on its stderr, and lets it go
    # on: how an operator (or a test) sees what a worker that does not stop is waiting for.
    if hasattr(signal, "SIGUSR1") and sys.__stderr__ is not None:
        with contextlib.suppress(AttributeError, OSError, ValueError):  # stderr without a file
            faulthandler.register(signal.SIGUSR1, file=sys.__stderr__, all_threads=True)
    args = build_parser().parse_args(argv)
    if args.command == "schema":  # the contract itself: no settings, no ledger
        return schema.cmd_schema(args)
    try:
        settings = Settings.load(args.data_dir)
    except SystemExit as bad:  # a setting in the environment that means nothing
        print(f"journey {args.command}: {bad.code}", file=sys.stderr)
        return 2
    identify(f"journey {args.command}")
    if args.command == "demo":
        try:
            return demo.cmd_demo(args, settings, COMMANDS)
        except Busy as busy:
            print(busy, file=sys.stderr)
            return BUSY
        except ParseStageFailed as failed:
            print(f"journey demo: {failed}", file=sys.stderr)
            return BUSY
    if args.command in READERS and settings.store == "sqlite" and not settings.data_dir.exists():
        # A mistyped --data-dir must not answer "unknown customer" from a ledger made on the spot.
        print(f"journey {args.command}: no ledger at {settings.data_dir} (no such directory; "
              "check --data-dir or JOURNEY_HOME)", file=sys.stderr)
        return 2
    if args.command in SNAPSHOT_READERS and not settings.data_dir.exists():
        return analytics.no_snapshot(args.command, settings)
    if _served(args):
        code = _forward(args, settings)
        if code is not None:
            return code
    try:
        journey = bootstrap(settings)
    except SystemExit as bad:  # a store that cannot be opened as configured
        if not isinstance(bad.code, str):
            raise
        print(f"journey {args.command}: {bad.code}", file=sys.stderr)
        return 2
    try:
        return COMMANDS[args.command](args, journey)
    except Busy as busy:
        print(busy, file=sys.stderr)
        return BUSY
    except ParseStageFailed as failed:
        print(f"journey {args.command}: {failed}", file=sys.stderr)
        return BUSY
    finally:
        journey.close()


def _served(args: argparse.Namespace) -> bool:
    return args.command in SERVED and getattr(args, "source", "store") == "store"


def _forward(args: argparse.Namespace, settings: Settings) -> int | None:
    """The exit code of the command run by this data directory's server; None: no server
    took it, run it here (waiting for the projections)."""
    server = running_server(settings)
    if server is None:
        return None
    if reads_stdin(args):
        print(f"journey {args.command}: {server.describe()} holds the projections and runs this "
              "command, but standard input is not passed on to it: give a file instead of -",
              file=sys.stderr)
        return 2
    try:
        if getattr(args, "yes", None) is False:  # merge and forget ask first, here, not in the server
            declined = confirm_forwarded(args, settings, lambda checked: forward(server, settings, checked))
            if declined is not None:
                return declined
        return forward(server, settings, args)
    except NotForwarded as why:
        print(f"journey {args.command}: could not hand the command to {server.describe()}: {why}; "
              "running it here", file=sys.stderr)
        return None


if __name__ == "__main__":
    sys.exit(main())
