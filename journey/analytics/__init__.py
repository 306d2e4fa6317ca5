"""Analysts' access while the ledger runs: Parquet snapshots, an analyst database, plots.

DuckDB lets only one process hold ``projections.duckdb`` open while it writes, so analysts never
touch that file: the projection's owner publishes snapshots (``snapshots``) and everything
here reads those. See docs/analytics.md.
"""
