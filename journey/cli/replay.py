"""``journey replay rebuild | diff | decision``: rebuild, compare and re-run from the event store.

Exit codes: rebuild 0 done, 2 bad usage (a non-empty target, an unreadable topic); diff 0 the
same, 1 differences, 2 a file missing or locked by another process; decision 0 the recorded
and recomputed verdicts agree, 1 they disagree, 2 not replayable, 3 unknown event.
See docs/audit.md.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from consumers.log_follower import DEFAULT_BATCH
from domain import catalogue
from domain.contact_policy import channel_words
from domain.errors import InvalidFact
from journey.bootstrap import Journey
from journey.cli.kinds import Command
from journey.cli.output import Ticker, dump, plural, project_progress
from journey.cli.textview import printable
from journey.policy import PolicyError
from journey.usecases import replay
from replay import asof
from replay import decision as decisions
from replay import diff as differ
from replay import rebuild as rebuilder

#: Seconds between the lines that say the rebuild is still deriving the customers' rows.
QUIET_EVERY = 5.0


def cmd_rebuild(args: argparse.Namespace, journey: Journey) -> int:
    tick = Ticker("rebuild")
    try:
        with project_progress(Ticker("rebuild"), quiet_every=QUIET_EVERY) as projecting:
            result = replay.rebuild(journey, source=args.source,
                                    into=Path(args.into) if args.into else None,
                                    batch=args.batch, bootstrap=args.bootstrap, topic=args.topic,
                                    on_progress=projecting,
                                    on_read=lambda n: tick(f"{n:,} records read from the topic"))
    except rebuilder.RebuildError as error:
        print(f"journey replay rebuild: {error}", file=sys.stderr)
        return 2
    print(f"rebuild: {result.events:,} events in {result.seconds:.1f} s "
          f"({result.rate:,.0f} events/s)", file=sys.stderr)
    if args.json:
        dump(result.to_json())
    else:
        extra = (f" ({result.records:,} records from {result.partitions} partitions)"
                 if result.source == "kafka" else "")
        origin = "Kafka" if result.source == "kafka" else "the store"
        print(f"rebuilt {result.events:,} events from {origin}{extra} up to position "
              f"{result.position:,} into {result.path} in {result.seconds:.1f} s "
              f"({result.rate:,.0f} events/s)")
    return 0


def cmd_diff(args: argparse.Namespace, journey: Journey) -> int:
    try:
        compared = replay.compare(journey, Path(args.live) if args.live else None,
                                  Path(args.against) if args.against else None)
    except replay.NoRebuild:
        print("journey replay diff: no rebuild in the data directory; run `journey replay "
              "rebuild` first or pass --against DIR", file=sys.stderr)
        return 2
    except (differ.LockedError, FileNotFoundError) as error:
        print(f"journey replay diff: {error}", file=sys.stderr)
        return 2
    live, other, result = compared.live, compared.other, compared.result
    if args.json:
        dump(result.to_json())
        return 0 if result.same else 1
    print(f"live     {live} (position {result.live_position})")
    print(f"rebuilt  {other} (position {result.other_position})")
    print(f"(not compared: table {', '.join(differ.SKIPPED_TABLES)})")
    for t in result.tables:
        if t.same:
            print(f"  same       {t.table:<18} {t.live_rows:>9,} rows  digest {t.live_digest}")
            continue
        print(f"  DIFFERENT  {t.table:<18} live {t.live_rows:,} rows, rebuilt {t.other_rows:,} rows; "
              f"{t.only_live:,} rows only in live, {t.only_other:,} only in the rebuild")
        for example in t.examples:
            print(printable(f"      only in {example['only_in']}: {example['row']}"))
    if result.same:
        print("the live projections equal the rebuild")
        return 0
    differing = [t.table for t in result.tables if not t.same]
    print(f"{plural(len(differing), 'table differs', 'tables differ')}: {', '.join(differing)}")
    if result.live_position != result.other_position:
        print(f"note: the two files are at different store positions ({result.live_position} and "
              f"{result.other_position}); `journey project` or a fresh rebuild first")
    return 1


def _verdict(allowed: bool) -> str:
    return "ALLOWED" if allowed else "DENIED"


def cmd_decision(args: argparse.Namespace, journey: Journey) -> int:
    try:
        done = replay.replay_decision(journey, args.event_id, args.policy)
    except replay.UnknownEvent as error:
        print(f"journey replay decision: {error}", file=sys.stderr)
        return 3
    except (PolicyError, decisions.ReplayError) as error:
        print(f"journey replay decision: {error}", file=sys.stderr)
        return 2
    event, replayed = done.event, done.replayed
    if args.json:
        dump(replayed.to_json())
        return 0 if replayed.agree else 1
    campaign = f", campaign {replayed.campaign}" if replayed.campaign else ""
    print(f"{event.fact['type']} {event.fact['event_id']} (position {event.position}) "
          f"for customer {replayed.customer_id}")
    print(f"  asked: {replayed.purpose} contact by {channel_words(replayed.channel)} at "
          f"{replayed.at.isoformat()}{campaign}, policy {replayed.policy_version}")
    print(f"  history: {plural(replayed.facts, 'fact')} up to store position {replayed.through}")
    rec = replayed.recorded
    print(f"  recorded:   {_verdict(rec['allowed'])}"
          + (f"  [{', '.join(rec['codes'])}]" if rec["codes"] else "")
          + (f"  ({rec['note']})" if rec.get("note") else ""))
    new = replayed.recomputed
    print(f"  recomputed: {_verdict(new.allowed)}"
          + (f"  [{', '.join(r.code for r in new.reasons)}]" if new.reasons else ""))
    for reason in new.reasons:
        print(printable(f"    ✗ [{reason.code}] {reason.message}"))
    if replayed.agree:
        print("  AGREE")
    elif rec.get("note"):
        print(f"  DISAGREE: the contact was made, but policy {replayed.policy_version} denies it over "
              "what was recorded before it")
    else:
        print("  DISAGREE: re-running the same policy version over the same history gives another verdict")
    return 0 if replayed.agree else 1


def cmd_customer_at(args: argparse.Namespace, journey: Journey, key: str) -> int:
    """``journey customer REF --as-of T | --occurred-by T``: folded from the event store."""
    flag, text = ("--as-of", args.as_of) if args.as_of else ("--occurred-by", args.occurred_by)
    try:
        at = catalogue.parse_instant(text, flag)
    except InvalidFact as error:
        print(f"journey customer: {error}", file=sys.stderr)
        return 2
    axis: asof.Axis = "recorded" if args.as_of else "occurred"
    try:
        doc = replay.customer_at(journey, key, at, axis, limit=args.limit,
                                 source=getattr(args, "source", "store"),
                                 bootstrap=args.bootstrap, topic=args.topic)
    except replay.UnreadableTopic as error:
        print(f"journey customer: {error}", file=sys.stderr)
        return 2
    if doc is None:
        when = "known" if args.as_of else "seen"
        print(f"journey customer: nobody {when} as {args.ref!r} ({key}) by {at.isoformat()}",
              file=sys.stderr)
        return 3
    if args.json:
        dump(doc)
        return 0
    _print_at(doc, at, axis)
    return 0


def _print_at(doc: dict[str, Any], at: datetime, axis: Literal["recorded", "occurred"]) -> None:
    """An as-of document for people: whole, or one page of it (``asof.paged``) with its totals."""
    from journey.cli.textview import render_text

    facts = doc["as_of"]["facts"]
    timeline, late = doc["timeline"], doc["recorded_late"]
    paged = "timeline_page" in doc
    late_total = doc["recorded_late_page"]["total"] if paged else len(late)
    shown = f"; the oldest {len(timeline)} shown" if paged else ""
    if axis == "recorded":
        print(f"As the ledger knew it at {at.isoformat()} (facts recorded by then: {facts}, "
              f"through store position {doc['as_of']['through_position']}{shown})")
    else:
        print(f"What had happened by {at.isoformat()} ({plural(facts, 'fact')}, {late_total} of them "
              f"recorded after that instant{shown})")
    print()
    print(render_text(doc, timeline, today=at.date()))
    if late_total:
        print()
        print(f"Recorded late (occurred by {at.isoformat()}, recorded after it): {late_total}"
              + ("" if len(late) == late_total else f" (the oldest {len(late)} shown)"))
        for e in late:
            print(f"  {e['occurred_at']}  {e['type']:<22} recorded {e['recorded_at']}  "
                  f"position {e['position']}  {e['event_id']}")


def cmd_replay(args: argparse.Namespace, journey: Journey) -> int:
    handler: Command = {
        "rebuild": cmd_rebuild, "diff": cmd_diff, "decision": cmd_decision}[args.replay_command]
    return handler(args, journey)


def register(subparsers: Any, commands: dict[str, Command]) -> None:
    p = subparsers.add_parser("replay", help="rebuild projections, compare them, re-run a decision")
    sub = p.add_subparsers(dest="replay_command", required=True)

    r = sub.add_parser("rebuild", help="build every projection from position zero into a fresh file")
    r.add_argument("--source", choices=("store", "kafka"), default="store",
                   help="store: the event store's log; kafka: the topic journey.events from its start")
    r.add_argument("--into", help="a new or empty directory (default DATA_DIR/rebuild-<timestamp>)")
    r.add_argument("--batch", type=int, default=None,
                   help="events per transaction (default: 1,000,000 from the store, "
                        f"{DEFAULT_BATCH:,} from Kafka)")
    r.add_argument("--bootstrap", help="Kafka bootstrap servers (env KAFKA_BOOTSTRAP)")
    r.add_argument("--topic", help="events topic (env JOURNEY_EVENTS_TOPIC)")
    r.add_argument("--json", action="store_true")

    d = sub.add_parser("diff", help="compare the live projections with a rebuild (exit 1: differences)")
    d.add_argument("--against", help="a rebuild directory or file (default: the newest DATA_DIR/rebuild-*)")
    d.add_argument("--live", help="the live projections file (default DATA_DIR/projections.duckdb)")
    d.add_argument("--json", action="store_true")

    e = sub.add_parser("decision", help="re-run a recorded contact decision over what the agent saw")
    e.add_argument("event_id", help="a contact.decided event (or call.outbound, email.sent, ...)")
    e.add_argument("--policy", help="policy file or directory (env JOURNEY_POLICY)")
    e.add_argument("--json", action="store_true")
    commands["replay"] = cmd_replay
