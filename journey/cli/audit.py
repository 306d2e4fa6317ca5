"""``journey verify`` (tamper evidence, checkpoints) and ``journey subject-access`` (GDPR art. 15).

verify: exit 0 intact, 1 broken (the first broken link is named), 2 bad usage (an unreadable
checkpoint file, a checkpoint file that already exists). subject-access: exit 0 written,
3 nobody known by the reference, 2 bad usage.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from domain.contact_policy import channel_words, department_words
from domain.errors import InvalidFact
from journey.bootstrap import Journey
from journey.cli.kinds import Command
from journey.cli.output import Ticker, dump, plural, project_progress
from journey.cli.textview import say
from journey.usecases import audit
from ledger import chain


def register(subparsers: Any, commands: dict[str, Command]) -> None:
    p = subparsers.add_parser("verify", help="recompute every event's hash chain; name the first broken link")
    p.add_argument("--checkpoint", action="append", default=[], metavar="FILE",
                   help="compare with a checkpoint taken earlier (repeatable)")
    p.add_argument("--write-checkpoint", metavar="FILE",
                   help="after a verification that passed, write every chain head to FILE (new file)")
    p.add_argument("--json", action="store_true")
    commands["verify"] = cmd_verify

    p = subparsers.add_parser("subject-access",
                              help="export everything held about one person (GDPR art. 15)")
    p.add_argument("ref", help="+34..., @handle, e-mail, customer number, ledger id, or kind:value")
    p.add_argument("--out", required=True, metavar="FILE", help="where to write the JSON export")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")
    commands["subject-access"] = cmd_subject_access


def cmd_verify(args: argparse.Namespace, journey: Journey) -> int:
    out = Path(args.write_checkpoint) if args.write_checkpoint else None
    ticker = Ticker("verify")

    def show(r: chain.Report, head: int) -> None:
        ticker(f"position {r.head:,} of {head:,}, {r.events:,} events ({r.rate:,.0f} events/s)")

    try:
        done = audit.verify(journey, [Path(name) for name in args.checkpoint], out, on_progress=show)
    except chain.CheckpointError as error:
        print(f"journey verify: {error}", file=sys.stderr)
        return 2
    report, written = done.report, done.checkpoint_written
    if args.json:
        dump({**report.as_dict(), "checkpoint_written": written})
    else:
        _print_report(report, written)
    if out is not None and written is None and report.intact:
        print("journey verify: no checkpoint written: nothing is chained yet", file=sys.stderr)
    return 0 if report.intact else 1


def _print_report(report: chain.Report, written: str | None) -> None:
    if report.covered_from is None:
        coverage = "no event is chained yet"
    elif report.covered_from <= 1:
        coverage = "the whole history is covered"
    else:
        coverage = (f"history is covered from position {report.covered_from:,} (events before it were "
                    "recorded before the chain existed)")
    say(f"{report.events:,} events read, {report.chained:,} chained links checked, "
        f"{report.customers:,} chains; {coverage}")
    for cp in report.checkpoints:
        state = "matches" if cp["matches"] else f"{cp['differences']} differences"
        say(f"checkpoint at position {cp['position']:,} ({cp['taken_at']}): {state}")
    say(f"{report.seconds:.2f} s, {report.rate:,.0f} events/s")
    first = report.first
    if first is None:
        say("INTACT")
    else:
        say(f"BROKEN: {plural(report.problem_count, 'problem')}; first at position {first.position}")
        where = [f"customer {first.customer_id}" if first.customer_id else "",
                 f"stream {first.stream_id}" if first.stream_id else "",
                 f"version {first.stream_version}" if first.stream_version is not None else ""]
        say("  " + ", ".join(w for w in where if w))
        say(f"  {first.what}")
        for p in sorted(report.problems, key=lambda p: p.position)[1:10]:
            say(f"  then position {p.position} (customer {p.customer_id}): {p.what}")
    if written:
        say(f"checkpoint written to {written} (position {report.head:,})")


def cmd_subject_access(args: argparse.Namespace, journey: Journey) -> int:
    out = Path(args.out)
    try:
        summary = audit.access_export(journey, args.ref, out,
                                      on_progress=project_progress(Ticker("project")))
    except InvalidFact as error:
        print(f"journey subject-access: {error}", file=sys.stderr)
        return 2
    if summary is None:
        print(f"journey subject-access: nobody known as {args.ref!r}", file=sys.stderr)
        return 3
    if args.json:
        dump({**summary, "file": str(out)})
    else:
        say(f"subject access export for {summary['who']} written to {out}")
        if summary.get("forgotten"):
            say(f"  {summary['held']}")
            return 0
        say(f"  {summary['events']} events, first contact {summary['first_contact']}, "
            f"last {summary['last_contact']}")
        # "none" and "any" are the export's keys for a fact with no channel and for all of them.
        channels = ", ".join(
            f"{ {'none': 'no channel', 'any': 'every channel'}.get(k) or channel_words(k)} {v:,}"
            for k, v in summary["by_channel"].items())
        departments = ", ".join(f"{department_words(k) if k not in ('', 'none') else 'no department'} {v:,}"
                                for k, v in summary["by_department"].items())
        say(f"  by channel: {channels or '-'}")
        say(f"  by department: {departments or '-'}")
        for table, n in summary["rows_by_table"].items():
            say(f"  {table}: {plural(n, 'row')}")
    return 0
