"""Configuration: flags first, then environment, then the embedded defaults."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

DEFAULT_HOME = ".journey"


@dataclass(frozen=True, slots=True)
class Settings:
    data_dir: Path
    #: "sqlite" (embedded default, a file in data_dir) or "postgres" (JOURNEY_POSTGRES_URL).
    store: str = "sqlite"
    postgres_url: str | None = None

    @classmethod
    def load(cls, data_dir: str | None = None) -> Settings:
        home = Path(data_dir or os.environ.get("JOURNEY_HOME") or DEFAULT_HOME)
        return cls(
            data_dir=home,
            store=os.environ.get("JOURNEY_STORE", "sqlite"),
            postgres_url=os.environ.get("JOURNEY_POSTGRES_URL"),
        )

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "ledger.sqlite"

    @property
    def duckdb_path(self) -> Path:
        return self.data_dir / "projections.duckdb"

    @property
    def rejects_dir(self) -> Path:
        return self.data_dir / "rejects"
