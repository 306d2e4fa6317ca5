"""The ``journey`` command: thin entry points that parse, hand over to the system, and print.

Exit codes: 0 done; 1 done, but some input lines were rejected; 2 bad usage or input that
cannot be read; 3 the customer asked for is not known; 4 a verdict of "no" (can-contact:
denied; replay diff: the two differ); 75 busy (sysexits.h's EX_TEMPFAIL): another process
kept the projections longer than JOURNEY_WAIT seconds, or a server stopped while running the
command; 130 interrupted (Ctrl-C).

Beside a running ``journey serve`` the commands that read the projections run inside it
(journey/forwarding.py); the others wait for whoever holds them (journey/sharing.py).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shutil
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from consumers.jsonl_ingest import IngestSummary, OverlongLine, RejectedLine, ingest, read_lines
from consumers.log_follower import DEFAULT_BATCH, GROUPED_BATCH, Progress
from domain.errors import InvalidFact
from journey.bootstrap import Journey, bootstrap
from journey.config import Settings
from journey.faults import pause_at_batch
from journey.forwarding import NotForwarded, Server, forward, reads_stdin, running_server
from journey.references import reference_key
from journey.runtime import tune_gc
from journey.sharing import BUSY, Busy, holder_now, identify
from journey.textview import printable, render_text

DEMO_MARKER = ".demo"


class Ticker:
    """Progress on stderr at most once a second, so long runs show they are alive."""

    def __init__(self, label: str, every: float = 1.0) -> None:
        self.label = label
        self.every = every
        self.last = time.monotonic()

    def __call__(self, text: str, force: bool = False) -> None:
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            print(f"{self.label}: {text}", file=sys.stderr, flush=True)


def _dump(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


def _open_lines(source: str) -> Iterator[bytes | OverlongLine]:
    """The file's lines as a spreadsheet export writes them (BOM, CRLF or CR-only line ends),
    an over-long one cut off unread instead of held in memory whole."""
    if source == "-":
        yield from read_lines(sys.stdin.buffer)
        return
    with open(source, "rb") as handle:
        yield from read_lines(handle)


def _write_rejects(path: Path, rejected: Sequence[RejectedLine], source: str, *,
                   fresh: bool = False) -> Path:
    """Write the rejected lines to ``path``; ``fresh``: never an existing file (another
    append's), so ``.1``, ``.2``... is added until the name is free. Returns the file written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    flags = os.O_WRONLY | os.O_CREAT | os.O_CLOEXEC | (os.O_EXCL if fresh else os.O_TRUNC)
    chosen, n = path, 0
    while True:
        try:
            fd = os.open(chosen, flags, 0o600)
            break
        except FileExistsError:
            n += 1
            chosen = path.with_name(f"{path.name.removesuffix('.rejects.jsonl')}.{n}.rejects.jsonl")
    with open(fd, "wb") as out:
        for r in rejected:
            out.write(orjson.dumps({"input": source, "line": r.line, "reason": r.reason, "text": r.text}))
            out.write(b"\n")
    return chosen


def _ingest_progress(ticker: Ticker) -> Callable[[IngestSummary], None]:
    def show(s: IngestSummary) -> None:
        ticker(f"{s.lines:,} lines read, {s.recorded:,} recorded, {s.duplicates:,} duplicates, "
               f"{len(s.rejected):,} rejected ({s.rate:,.0f} lines/s)")
    return show


def _project_progress(ticker: Ticker) -> Callable[[Progress], None]:
    def show(p: Progress) -> None:
        rate = p.projected / p.elapsed if p.elapsed else 0.0
        ticker(f"position {p.position:,} of {p.head:,} ({rate:,.0f} events/s)")
    return show


def append_file(journey: Journey, source: str, rejects: Path | None, *, project: bool = True,
                batch: int = 2000) -> tuple[IngestSummary, Path | None]:
    summary = ingest(journey.ledger, _open_lines(source), batch_size=batch,
                     on_progress=_ingest_progress(Ticker("append")))
    path = None
    if summary.rejected:
        if rejects is None:
            # Two appends of same-named files in the same second must not share a file.
            stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
            name = "stdin" if source == "-" else Path(source).name
            path = _write_rejects(
                journey.settings.rejects_dir / f"{name}.{stamp}.{os.getpid()}.rejects.jsonl",
                summary.rejected, source, fresh=True)
        else:
            path = _write_rejects(rejects, summary.rejected, source)
    if project:
        journey.project(on_progress=_project_progress(Ticker("project")))
    return summary, path


def cmd_append(args: argparse.Namespace, journey: Journey) -> int:
    if args.file != "-" and not Path(args.file).is_file():
        print(f"journey append: no such file: {args.file}", file=sys.stderr)
        return 2
    summary, path = append_file(journey, args.file, Path(args.rejects) if args.rejects else None,
                                project=False, batch=args.batch)
    # A running server follows the store and holds the projections: it projects these facts.
    server = None if args.no_project else running_server(journey.settings)
    projected = False
    try:
        if not args.no_project and server is None:
            try:
                journey.project(on_progress=_project_progress(Ticker("project")))
                projected = True
            except Busy as busy:
                print(f"{busy}\njourney append: the facts are recorded but not projected yet; the "
                      "next command that reads the projections catches up", file=sys.stderr)
    finally:  # what was recorded is always said, whatever happened to the projecting
        _append_summary(args, summary, path, projected, server)
    return 1 if summary.rejected else 0


def _append_summary(args: argparse.Namespace, summary: IngestSummary, path: Path | None,
                    projected: bool, server: Server | None) -> None:
    if args.json:
        _dump({"recorded": summary.recorded, "duplicates": summary.duplicates,
               "rejected": len(summary.rejected), "derived": summary.derived,
               "rejects_file": str(path) if path else None, "lines": summary.lines,
               "seconds": round(summary.seconds, 3), "lines_per_second": round(summary.rate),
               "projected": projected, "projected_by": server.url if server else None})
        return
    line = (f"recorded {summary.recorded}, duplicates {summary.duplicates}, "
            f"rejected {len(summary.rejected)}")
    if path is not None:
        line += f" -> {path}"
    if server is not None:
        line += f"; {server.describe()} projects them"
    print(line, flush=True)
    for r in summary.rejected[:10]:
        print(f"  line {r.line}: {printable(r.reason)}", file=sys.stderr)
    if len(summary.rejected) > 10:
        print(f"  ... {len(summary.rejected) - 10} more in {path}", file=sys.stderr)


def cmd_customer(args: argparse.Namespace, journey: Journey) -> int:
    try:
        key = reference_key(args.ref)
    except InvalidFact as error:
        print(f"journey customer: {error}", file=sys.stderr)
        return 2
    if args.limit is not None and args.limit < 1:
        print(f"journey customer: --limit must be at least 1 (got {args.limit})", file=sys.stderr)
        return 2
    if args.as_of or args.occurred_by:
        from journey.cli_replay import cmd_customer_at

        return cmd_customer_at(args, journey, key)
    view = journey.customer(args.ref, timeline_limit=args.limit,
                            on_progress=_project_progress(Ticker("project")))
    if view is None:
        print(f"journey customer: nobody known as {args.ref!r} ({key})", file=sys.stderr)
        return 3
    if args.json:
        _dump(view)
    else:
        print(render_text(view, view["timeline"]))
    return 0


def _fault_pause() -> Callable[[], None] | None:
    """Crash tests: JOURNEY_FAULT_PAUSE_BEFORE_COMMIT=N stalls batch N mid-transaction."""
    return pause_at_batch("JOURNEY_FAULT_PAUSE_BEFORE_COMMIT", "paused before commit of batch")


def cmd_project(args: argparse.Namespace, journey: Journey) -> int:
    if args.source == "kafka":
        return _project_from_kafka(args, journey)
    if args.batch is not None and args.batch < 1:
        print("journey project: --batch must be at least 1", file=sys.stderr)
        return 2
    started = time.monotonic()
    count = journey.project(on_progress=_project_progress(Ticker("project")), batch=args.batch,
                            before_commit=_fault_pause())
    seconds = time.monotonic() - started
    position = journey.projections.position()
    if args.json:
        _dump({"projected": count, "position": position, "seconds": round(seconds, 3)})
    else:
        print(f"projected {count} events, now at position {position} ({seconds:.1f} s)")
    return 0


def _project_from_kafka(args: argparse.Namespace, journey: Journey) -> int:
    from consumers.kafka_projector import ProjectorStats, run_projector
    from journey.signals import stop_flag

    settings = journey.settings
    stop = stop_flag()
    ticker = Ticker("project")

    def show(stats: ProjectorStats) -> None:
        ticker(f"{stats.records:,} records, {stats.applied:,} applied ({stats.rate:,.0f}/s)")

    stats = run_projector(
        journey.app, bootstrap=args.bootstrap or settings.kafka_bootstrap,
        topic=args.topic or settings.events_topic, directory=settings.partitions_dir,
        group=args.group, stop=stop.is_set, once=args.once, on_progress=show,
        before_commit=_fault_pause())
    if args.json:
        _dump({"records": stats.records, "applied": stats.applied, "stopped": stop.is_set()})
    else:
        print(f"consumed {stats.records} records, applied {stats.applied} events "
              f"into {settings.partitions_dir}")
    return 0


def cmd_status(args: argparse.Namespace, journey: Journey) -> int:
    head = journey.app.recorder.max_notification_id() or 0
    journey.project()
    counts = journey.projections.table_counts()
    status = {"data_dir": str(journey.settings.data_dir), "store": journey.settings.store,
              "store_position": head, "projection_position": journey.projections.position(),
              **{f"{k}_rows": v for k, v in counts.items()}}
    from projections import quarantine

    held = quarantine.status(journey.projections.con)
    if args.json:
        _dump({**status, **held})
    else:
        for k, v in status.items():
            print(f"{k:<22} {v}")
        print(f"{'quarantined':<22} {held['quarantined']}")
        for e in held["quarantine_latest"]:  # the newest; `journey quarantine` lists them all
            print(f"  position {e['position']} ({e['reader']}): {e['reason']}")
    return 0


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from journey import demo_data

    home = settings.data_dir
    holder = holder_now(settings.lock_path)
    if holder is not None:
        print(f"journey demo: {holder.describe()} is using {home}; stop it before the demo "
              "replaces that ledger", file=sys.stderr)
        return BUSY
    if home.exists() and any(home.iterdir()):
        if not (home / DEMO_MARKER).exists() and not args.force:
            print(f"journey demo: {home} holds a ledger that is not a demo; "
                  "use --data-dir for another place, or --force to replace it", file=sys.stderr)
            return 2
        shutil.rmtree(home)
    home.mkdir(parents=True)
    (home / DEMO_MARKER).write_text("created by journey demo\n")
    source = home / "demo.jsonl"
    print(f"demo: generating {args.customers:,} customers' touchpoints into {source}", file=sys.stderr)
    facts = demo_data.generate(args.customers, seed=args.seed)
    count = demo_data.write_jsonl(source, facts)
    journey = bootstrap(settings)
    try:
        summary, _ = append_file(journey, str(source), None)
        counts = journey.projections.table_counts()
    finally:
        journey.close()
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
        return serve_demo(args, settings)
    print(f"The department console: {prog} --data-dir {home} demo --serve   (or: journey serve)")
    return 0


#: The demo's people at the console: (token name, role). One per kind of desk a newcomer
#: might sit at, so each sees what their role may see (docs/security.md).
DEMO_DESKS = (("clerk-ana", "stores"), ("agent-luis", "customer_care"), ("social-marta", "social_media"),
              ("auditor-irene", "auditor"), ("admin", "admin"))


def serve_demo(args: argparse.Namespace, settings: Settings) -> int:
    """Tokens for the demo's desks, sign-in links that open the console, then ``journey serve``."""
    from journey.api.tokens import open_tokens
    from journey.cli_serve import cmd_serve

    tokens = open_tokens(settings)
    links = []
    try:
        for name, role in DEMO_DESKS:
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
        return cmd_serve(serve, journey)
    finally:
        journey.close()


def _program() -> str:
    """How the user invoked us, so printed commands can be pasted back (.venv/bin/journey)."""
    argv0 = Path(sys.argv[0])
    if argv0.name == "journey" and argv0.exists():
        return os.path.relpath(argv0) if not str(argv0).startswith("/usr") else "journey"
    return "journey"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="journey", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--data-dir",
                        help="where the embedded ledger lives (env JOURNEY_HOME, default ./.journey)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("append", help="record facts from a JSON Lines file (or - for stdin)")
    p.add_argument("file")
    p.add_argument("--rejects", help="where to write rejected lines (default: DATA_DIR/rejects/...)")
    p.add_argument("--batch", type=int, default=2000, help="facts per store transaction")
    p.add_argument("--no-project", action="store_true", help="only record; project later")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("customer", help="the unified view of one customer")
    p.add_argument("ref", help="+34..., @handle, e-mail, customer number, ledger id, or kind:value")
    p.add_argument("--limit", type=int, default=None,
                   help="show at most N timeline events (the oldest; with --as-of/--occurred-by also "
                        "at most N late facts, from the fold checkpoint of a long history)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--as-of", metavar="T",
                      help="the view as the company knew it at T (facts recorded by T), from the store")
    when.add_argument("--occurred-by", metavar="T",
                      help="what had happened by T (occurred by T, even if recorded later), from the store")
    p.add_argument("--source", choices=("store", "kafka"), default="store",
                   help="with --as-of/--occurred-by: read the event store (default) or journey.events, "
                        "seeking by time")
    p.add_argument("--bootstrap", help="with --source kafka (env KAFKA_BOOTSTRAP)")
    p.add_argument("--topic", help="with --source kafka (env JOURNEY_EVENTS_TOPIC)")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("project", help="bring the projections up to date with the store")
    p.add_argument("--batch", type=int, default=None,
                   help=f"events per projection transaction (default: {DEFAULT_BATCH:,}, or "
                        f"{GROUPED_BATCH:,} for a long catch-up of a SQLite store, read record by record)")
    p.add_argument("--source", choices=("store", "kafka"), default="store",
                   help="store: follow the event store (embedded); kafka: consume journey.events "
                        "into one DuckDB file per partition (distributed)")
    p.add_argument("--bootstrap", help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP)")
    p.add_argument("--topic", help="events topic (env JOURNEY_EVENTS_TOPIC)")
    p.add_argument("--group", default="journey-projections", help="consumer group")
    p.add_argument("--once", action="store_true", help="kafka: stop when caught up")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("status", help="positions and row counts")
    p.add_argument("--json", action="store_true")

    p = sub.add_parser("demo", help="a fresh embedded ledger with a realistic generated dataset")
    p.add_argument("--customers", type=int, default=3000)
    p.add_argument("--seed", type=int, default=7)
    p.add_argument("--force", action="store_true", help="replace a non-demo ledger in DATA_DIR")
    p.add_argument("--serve", action="store_true",
                   help="then start the console and the API (journey serve) with a token per desk")
    p.add_argument("--host", default="127.0.0.1", help="with --serve: address to bind")
    p.add_argument("--port", type=int, default=8000, help="with --serve: port")
    for name in PLUGINS:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as missing:
            if missing.name != name:
                raise
            continue
        module.register(sub, COMMANDS)
    return parser


#: Commands that only read the ledger: they refuse a data directory without one, where the
#: others (append, ingest, serve...) start a new ledger.
READERS = frozenset({"customer", "status", "can-contact", "violations", "cases", "case", "promises",
                     "inbox", "warranty", "greetings", "verify", "subject-access", "export",
                     "quarantine"})
#: Commands that read the analyst snapshot only: without a data directory there is none (they
#: say so, as in a ledger never exported, and make no ledger on the spot).
SNAPSHOT_READERS = frozenset({"sql", "plot"})
#: Commands that read the projections (or follow the store into them): beside a running
#: ``journey serve``, which holds them, they run inside it. ``append`` is not one: it records
#: here and leaves the projecting to the server. Those with ``--source kafka`` never are.
SERVED = frozenset({"customer", "project", "status", "can-contact", "violations", "cases", "case",
                    "promises", "inbox", "warranty", "greetings", "subject-access", "export",
                    "merge", "unmerge", "forget", "quarantine"})

COMMANDS: dict[str, Callable[[argparse.Namespace, Journey], int]] = {
    "append": cmd_append,
    "customer": cmd_customer,
    "project": cmd_project,
    "status": cmd_status,
}

#: Modules that add their own subcommands: each has register(subparsers, commands).
#: One module per worker keeps the workers' owners out of each other's way.
PLUGINS = ("journey.cli_relay", "journey.cli_ingest", "journey.cli_contact", "journey.cli_bench",
           "journey.cli_cases", "journey.cli_service", "journey.cli_greetings", "journey.cli_identity",
           "journey.cli_audit", "journey.cli_replay", "journey.cli_forget", "journey.cli_feed",
           "journey.cli_analytics", "journey.cli_serve", "journey.cli_quarantine")


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
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.load(args.data_dir)
    except SystemExit as bad:  # a setting in the environment that means nothing
        print(f"journey {args.command}: {bad.code}", file=sys.stderr)
        return 2
    identify(f"journey {args.command}")
    if args.command == "demo":
        try:
            return cmd_demo(args, settings)
        except Busy as busy:
            print(busy, file=sys.stderr)
            return BUSY
    if args.command in READERS and settings.store == "sqlite" and not settings.data_dir.exists():
        # A mistyped --data-dir must not answer "unknown customer" from a ledger made on the spot.
        print(f"journey {args.command}: no ledger at {settings.data_dir} (no such directory; "
              "check --data-dir or JOURNEY_HOME)", file=sys.stderr)
        return 2
    if args.command in SNAPSHOT_READERS and not settings.data_dir.exists():
        from journey.cli_analytics import no_snapshot

        return no_snapshot(args.command, settings)
    if _served(args):
        code = _forward(args, settings)
        if code is not None:
            return code
    journey = bootstrap(settings)
    try:
        return COMMANDS[args.command](args, journey)
    except Busy as busy:
        print(busy, file=sys.stderr)
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
        return forward(server, settings, args)
    except NotForwarded as why:
        print(f"journey {args.command}: could not hand the command to {server.describe()}: {why}; "
              "running it here", file=sys.stderr)
        return None


if __name__ == "__main__":
    sys.exit(main())
