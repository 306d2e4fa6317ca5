"""Pictures from the analyst snapshot: one customer's journey, and the whole base's contacts.

Hand-written SVG (like benchmarks' growth plot): no plotting library to install, the output
is text a test can parse, and every marker carries a ``<title>`` a browser shows on hover.
Both read the snapshot (journey/analytics/snapshots.py), so they work while the ledger runs.
"""

from __future__ import annotations

import calendar
import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, tzinfo
from html import escape
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import duckdb
import orjson

from journey.analytics.snapshots import CONTACT_DIRECTIONS

COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39")
NO_DEPARTMENT = "(no department)"

#: Marker kinds of the customer plot: (legend label, fill colour, shape).
KINDS: dict[str, tuple[str, str, str]] = {
    "after_objection": ("commercial contact after an objection", "#d62728", "circle-ring"),
    "objection": ("objection (don't contact me)", "#d62728", "cross"),
    "complaint": ("complaint opened", "#ff7f0e", "diamond"),
    "outbound": ("the company contacted them", "#1f77b4", "circle"),
    "inbound": ("they contacted the company", "#2ca02c", "circle"),
    "case": ("case, promise or warranty step", "#9467bd", "square"),
    "other": ("other fact", "#7f7f7f", "small"),
}

#: Back to front.
DRAW_ORDER = ("other", "case", "inbound", "outbound", "complaint", "after_objection", "objection")


@dataclass(frozen=True, slots=True)
class Point:
    at: datetime
    type: str
    row: str
    kind: str
    label: str


def _zone(name: str | None) -> tzinfo:
    try:
        return ZoneInfo(name or "Europe/Madrid")
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def customer_points(con: duckdb.DuckDBPyConnection, customer_id: str) -> tuple[list[Point], str | None]:
    """The customer's facts as plot points (oldest first) and their time zone."""
    rows = con.execute(
        "SELECT occurred_at, type, department, channel, purpose, campaign, case_id, data "
        "FROM events WHERE customer_id = ? ORDER BY occurred_at, position", [customer_id]).fetchall()
    zone = con.execute("SELECT any_value(timezone) FROM customers WHERE customer_id = ?",
                       [customer_id]).fetchall()
    return classify(rows), (zone[0][0] if zone else None)


def classify(rows: Sequence[Sequence[Any]]) -> list[Point]:
    """Which marker each fact gets. A commercial contact by the company while an objection on
    its channel stands (no commercial consent since) is the thing to see, so it is marked."""
    points: list[Point] = []
    objections: list[tuple[datetime, str]] = []  # (when, channel: 'any' or one)
    for at, kind, department, channel, purpose, campaign, case_id, raw in rows:
        data = orjson.loads(raw) if isinstance(raw, str) else (raw or {})
        row = department or NO_DEPARTMENT
        detail = [p for p in (department, channel, purpose, campaign, case_id) if p]
        if kind == "objection.recorded":
            objections.append((at, str(channel or "any")))
            marker = "objection"
        elif kind == "consent.given" and purpose == "commercial":
            objections = [(t, c) for t, c in objections if c not in ("any", channel)]
            marker = "other"
        elif kind == "case.opened" and data.get("kind") == "complaint":
            marker = "complaint"
        elif CONTACT_DIRECTIONS.get(kind) == "outbound":
            standing = any(c in ("any", channel) for _, c in objections)
            marker = "after_objection" if standing and purpose == "commercial" else "outbound"
        elif kind in CONTACT_DIRECTIONS:
            marker = "inbound"
        elif kind.startswith(("case.", "promise.", "warranty.")):
            marker = "case"
        else:
            marker = "other"
        points.append(Point(at, kind, row, marker, f"{kind} ({', '.join(detail)})" if detail else kind))
    return points


# --------------------------------------------------------------------------- time axis

def _add_months(day: date, months: int) -> date:
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    return date(year, month + 1, min(day.day, calendar.monthrange(year, month + 1)[1]))


def time_ticks(start: datetime, end: datetime, zone: tzinfo, wanted: int = 8) -> list[tuple[datetime, str]]:
    """Round instants between ``start`` and ``end`` (local midnights, month starts...) with labels."""
    span = (end - start).total_seconds()
    local_start = start.astimezone(zone)
    hours = [1, 3, 6, 12]
    for step in hours:
        if span / (step * 3600) <= wanted:
            first = local_start.replace(minute=0, second=0, microsecond=0)
            ticks = []
            t = first
            while t <= end:
                if t >= start and t.hour % step == 0:
                    ticks.append((t, t.strftime("%d %b %H:%M")))
                t = (t + timedelta(hours=1)).astimezone(zone)
            return ticks
    for days in (1, 2, 7, 14):
        if span / (days * 86400) <= wanted:
            d = local_start.date()
            ticks = []
            while True:
                t = datetime(d.year, d.month, d.day, tzinfo=zone)
                if t > end:
                    return ticks
                if t >= start:
                    ticks.append((t, t.strftime("%d %b %Y" if days >= 7 else "%d %b")))
                d += timedelta(days=days)
    months = next((m for m in (1, 2, 3, 6) if span / (m * 30.4 * 86400) <= wanted), 12)
    ticks = []
    if months < 12:
        d = date(local_start.year, local_start.month, 1)
        while (t := datetime(d.year, d.month, 1, tzinfo=zone)) <= end:
            if t >= start and (d.month - 1) % months == 0:
                ticks.append((t, t.strftime("%b %Y")))
            d = _add_months(d, 1)
        return ticks
    years = max(1, math.ceil(span / (365.25 * 86400) / wanted))
    year = local_start.year
    while (t := datetime(year, 1, 1, tzinfo=zone)) <= end:
        if t >= start and year % years == 0:
            ticks.append((t, str(year)))
        year += 1
    return ticks


# --------------------------------------------------------------------------- customer plot

def _marker(kind: str, x: float, y: float) -> str:
    _, colour, shape = KINDS[kind]
    if shape == "cross":
        return (f'<path d="M{x - 6:.1f},{y - 6:.1f} L{x + 6:.1f},{y + 6:.1f} M{x - 6:.1f},{y + 6:.1f} '
                f'L{x + 6:.1f},{y - 6:.1f}" stroke="{colour}" stroke-width="3"/>')
    if shape == "diamond":
        return (f'<path d="M{x:.1f},{y - 7:.1f} L{x + 7:.1f},{y:.1f} L{x:.1f},{y + 7:.1f} '
                f'L{x - 7:.1f},{y:.1f} Z" fill="{colour}" stroke="white"/>')
    if shape == "square":
        return f'<rect x="{x - 4.5:.1f}" y="{y - 4.5:.1f}" width="9" height="9" fill="{colour}"/>'
    if shape == "circle-ring":
        return (f'<circle cx="{x:.1f}" cy="{y:.1f}" r="8" fill="none" stroke="{colour}" stroke-width="2.5"/>'
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4.5" fill="#1f77b4"/>')
    if shape == "small":
        return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="{colour}"/>'
    return f'<circle cx="{x:.1f}" cy="{y:.1f}" r="5" fill="{colour}" fill-opacity="0.85"/>'


def customer_svg(points: Sequence[Point], title: str, zone_name: str | None = None,
                 width: int = 960) -> str:
    """The journey as a timeline: one row per department, a marker per fact over time."""
    zone = _zone(zone_name)
    rows: list[str] = []
    for p in points:
        if p.row not in rows:
            rows.append(p.row)
    left, right, top, row_h = 180, 30, 64, 34
    legend_h = 22 * math.ceil(len(KINDS) / 3) + 10
    height = top + row_h * max(len(rows), 1) + 40 + legend_h
    plot_w = width - left - right
    if points:
        start, end = points[0].at, points[-1].at
    else:
        start = end = datetime.now(UTC)
    if (end - start).total_seconds() < 3600:
        start, end = start - timedelta(hours=12), end + timedelta(hours=12)
    pad = (end - start) * 0.03
    start, end = start - pad, end + pad
    span = (end - start).total_seconds()

    def x(at: datetime) -> float:
        return left + (at - start).total_seconds() / span * plot_w

    def y(row: str) -> float:
        return top + row_h * rows.index(row) + row_h / 2

    bottom = top + row_h * max(len(rows), 1)
    subtitle = f"{len(points)} facts; times in {zone}"
    if points:
        first, last = (points[i].at.astimezone(zone).strftime("%Y-%m-%d") for i in (0, -1))
        subtitle = f"{len(points)} facts from {first} to {last}; times in {zone}"
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12" '
           'class="journey-customer">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="24" font-size="16" font-weight="bold" class="title">{escape(title)}</text>',
           f'<text x="{left}" y="44" fill="#555" class="subtitle">{escape(subtitle)}</text>']
    for i, row in enumerate(rows):
        ry = top + row_h * i
        if i % 2 == 0:
            out.append(f'<rect x="{left}" y="{ry}" width="{plot_w}" height="{row_h}" fill="#f6f6f6"/>')
        out.append(f'<text x="{left - 8}" y="{ry + row_h / 2 + 4:.1f}" text-anchor="end" class="row">'
                   f'{escape(row)}</text>')
    for at, label in time_ticks(start, end, zone):
        out.append(f'<line x1="{x(at):.1f}" x2="{x(at):.1f}" y1="{top}" y2="{bottom}" stroke="#ddd"/>')
        out.append(f'<text x="{x(at):.1f}" y="{bottom + 16}" text-anchor="middle" class="tick">'
                   f'{escape(label)}</text>')
    for p in points:
        if p.kind == "objection":
            out.append(f'<line x1="{x(p.at):.1f}" x2="{x(p.at):.1f}" y1="{top}" y2="{bottom}" '
                       'stroke="#d62728" stroke-dasharray="4 3" class="objection-line"/>')
    # The marks that matter are drawn last, so a note at the same minute cannot hide them.
    for p in sorted(points, key=lambda p: DRAW_ORDER.index(p.kind)):
        when = p.at.astimezone(zone).strftime("%Y-%m-%d %H:%M")
        out.append(f'<g class="event {p.kind}" data-type="{escape(p.type)}" data-row="{escape(p.row)}">'
                   f'<title>{escape(when)} {escape(p.label)}</title>{_marker(p.kind, x(p.at), y(p.row))}</g>')
    ly = bottom + 40
    for i, (kind, (label, _, _)) in enumerate(KINDS.items()):
        lx = left + (i % 3) * (plot_w / 3)
        cy = ly + 22 * (i // 3)
        out.append(f'<g class="legend" data-kind="{kind}">{_marker(kind, lx + 6, cy)}'
                   f'<text x="{lx + 20:.1f}" y="{cy + 4}">{escape(label)}</text></g>')
    out.append("</svg>")
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- base plot

def daily_contacts(con: duckdb.DuckDBPyConnection, days: int,
                   until: date | None = None) -> tuple[list[date], dict[str, list[int]]]:
    """Contacts per UTC day per department over ``days`` days ending at ``until`` (default: the
    last day with a contact in the snapshot, so an old snapshot still shows its last weeks)."""
    if until is None:
        last = con.execute(
            "SELECT max(CAST(occurred_at AT TIME ZONE 'UTC' AS DATE)) FROM contacts").fetchall()
        until = last[0][0] if last and last[0][0] is not None else datetime.now(UTC).date()
    first = until - timedelta(days=days - 1)
    rows = con.execute(
        "SELECT CAST(occurred_at AT TIME ZONE 'UTC' AS DATE) AS day, "
        f"coalesce(department, '{NO_DEPARTMENT}') AS department, count(*) AS n FROM contacts "
        "WHERE CAST(occurred_at AT TIME ZONE 'UTC' AS DATE) BETWEEN ? AND ? GROUP BY ALL",
        [first, until]).fetchall()
    span = [first + timedelta(days=i) for i in range(days)]
    series: dict[str, list[int]] = {}
    for day, department, n in rows:
        series.setdefault(str(department), [0] * days)[(day - first).days] = int(n)
    ordered = sorted(series, key=lambda d: (-sum(series[d]), d))
    return span, {d: series[d] for d in ordered}


def _nice(top: float) -> tuple[float, float]:
    """A round axis maximum and step for values up to ``top``."""
    if top <= 0:
        return 1.0, 1.0
    raw = top / 5
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return math.ceil(top / step) * step, step


def base_svg(span: Sequence[date], series: dict[str, list[int]], title: str | None = None,
             width: int = 960, height: int = 440) -> str:
    """Stacked bars: contacts per day, one colour per department."""
    left, right, top, bottom = 60, 200, 48, 56
    plot_w, plot_h = width - left - right, height - top - bottom
    totals = [sum(values[i] for values in series.values()) for i in range(len(span))]
    y_max, y_step = _nice(max(totals, default=0))
    slot = plot_w / max(len(span), 1)
    bar = max(slot * 0.85, 1.0)

    def y(v: float) -> float:
        return top + plot_h - v / y_max * plot_h

    first, last = (span[0], span[-1]) if span else (None, None)
    heading = title or f"Contacts per day per department, {first} to {last} (UTC days)"
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11" class="journey-base">',
           f'<rect width="{width}" height="{height}" fill="white"/>',
           f'<text x="{left}" y="24" font-size="15" font-weight="bold" class="title">'
           f'{escape(heading)}</text>']
    v = 0.0
    while v <= y_max + 1e-9:
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>')
        out.append(f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end">{v:g}</text>')
        v += y_step
    every = max(1, math.ceil(len(span) / 10))
    for i, day in enumerate(span):
        if i % every == 0:
            cx = left + slot * (i + 0.5)
            out.append(f'<text x="{cx:.1f}" y="{top + plot_h + 16}" text-anchor="middle" class="tick">'
                       f'{day.strftime("%d %b")}</text>')
    out.append(f'<text x="16" y="{top + plot_h / 2:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 16 {top + plot_h / 2:.0f})">contacts</text>')
    base = [0] * len(span)
    for n, (department, values) in enumerate(series.items()):
        colour = COLOURS[n % len(COLOURS)]
        out.append(f'<g class="series" data-department="{escape(department)}" fill="{colour}">')
        for i, count in enumerate(values):
            if not count:
                continue
            x0 = left + slot * i + (slot - bar) / 2
            y_top, y_bottom = y(base[i] + count), y(base[i])
            out.append(f'<rect x="{x0:.1f}" y="{y_top:.1f}" width="{bar:.1f}" '
                       f'height="{y_bottom - y_top:.1f}">'
                       f'<title>{span[i]} {escape(department)}: {count}</title></rect>')
            base[i] += count
        out.append("</g>")
        ly = top + 16 * n + 6
        out.append(f'<rect x="{left + plot_w + 14}" y="{ly - 8}" width="12" height="12" fill="{colour}"/>')
        out.append(f'<text x="{left + plot_w + 32}" y="{ly + 2}" class="legend">'
                   f'{escape(department)} ({sum(values):,})</text>')
    out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" '
               'stroke="#444"/>')
    out.append("</svg>")
    return "\n".join(out) + "\n"
