"""Exclusion lists (Robinson-style "do not contact" lists), kept in a table of their own.

Entries live in ``exclusions.sqlite`` in the data directory, never in the ledger: a list is
not a fact about one customer, and most of its entries name people who are not customers.
Each entry is the SHA-256 (hex) of a normalised phone or e-mail, the date the list applies
from, the file it came from and when it was imported. Files hold one entry per line: a phone
(``+34600000001``), an e-mail (``juan@example.com``) or an already-hashed 64-hex-digit value;
blank lines and ``#`` comments are skipped.
"""

from __future__ import annotations

import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

from domain.contact_policy import Exclusion, identity_hash, recorded_hash
from domain.errors import InvalidFact

FILENAME = "exclusions.sqlite"
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")
_CHUNK = 500


@dataclass(slots=True)
class ImportSummary:
    imported: int = 0
    duplicates: int = 0
    #: (line number, reason, text) of lines that are neither a phone, an e-mail nor a hash.
    rejected: list[tuple[int, str, str]] = field(default_factory=list)


def entry_hash(text: str) -> str:
    """The hash of one line: kept as is when already hashed, else normalised and hashed."""
    value = text.strip()
    if _HEX64.fullmatch(value):
        return value.lower()
    return identity_hash("email" if "@" in value else "phone", value)


class ExclusionStore:
    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.con = sqlite3.connect(self.path)
        self.con.execute(
            "CREATE TABLE IF NOT EXISTS exclusions (hash TEXT NOT NULL, list_date TEXT NOT NULL, "
            "source TEXT NOT NULL, imported_at TEXT NOT NULL, "
            "PRIMARY KEY (hash, list_date, source))")
        self.con.commit()

    def close(self) -> None:
        self.con.close()

    def import_lines(self, lines: Iterable[str], list_date: date, source: str) -> ImportSummary:
        summary = ImportSummary()
        stamp = datetime.now(UTC).isoformat()
        rows = []
        for number, raw in enumerate(lines, start=1):
            text = raw.strip()
            if not text or text.startswith("#"):
                continue
            try:
                rows.append((entry_hash(text), list_date.isoformat(), source, stamp))
            except InvalidFact as error:
                summary.rejected.append((number, str(error).split(": ", 1)[-1], text))
        with self.con:
            before = self.con.total_changes
            self.con.executemany("INSERT OR IGNORE INTO exclusions VALUES (?, ?, ?, ?)", rows)
            summary.imported = self.con.total_changes - before
        summary.duplicates = len(rows) - summary.imported
        return summary

    def import_file(self, path: str | Path, list_date: date) -> ImportSummary:
        with open(path, encoding="utf-8") as handle:
            return self.import_lines(handle, list_date, Path(path).name)

    def entries_for(self, hashes: Iterable[str]) -> list[Exclusion]:
        wanted = sorted(set(hashes))
        found = []
        for i in range(0, len(wanted), _CHUNK):
            chunk = wanted[i:i + _CHUNK]
            rows = self.con.execute(
                f"SELECT hash, list_date, source FROM exclusions WHERE hash IN "
                f"({', '.join('?' * len(chunk))})", chunk).fetchall()
            found += [Exclusion(h, date.fromisoformat(d), s) for h, d, s in rows]
        return found

    def count(self) -> int:
        return int(self.con.execute("SELECT count(*) FROM exclusions").fetchone()[0])


def hashes_of(identity_keys: Iterable[str]) -> list[str]:
    """Exclusion hashes of a customer's identity keys (only phones and e-mails count)."""
    out = []
    for key in identity_keys:
        kind, _, value = key.partition(":")
        if kind in ("phone", "email"):
            out.append(recorded_hash(kind, value))
    return out


def entries_in(data_dir: Path, identity_keys: Iterable[str]) -> list[Exclusion]:
    """The exclusion-list entries naming any of these identities; none when no list was
    imported (the file is created by ``journey exclusions import``)."""
    path = data_dir / FILENAME
    if not path.exists():
        return []
    store = ExclusionStore(path)
    try:
        return store.entries_for(hashes_of(identity_keys))
    finally:
        store.close()
