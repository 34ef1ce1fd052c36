"""The history store's tables, in SQLAlchemy Core (the same on SQLite and PostgreSQL).

Imported only by :mod:`lrpilot.history` when a store is opened, so ``import lrpilot`` never
loads SQLAlchemy.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    MetaData,
    String,
    Table,
)

__all__ = ["SCHEMA_VERSION", "metadata", "records", "meta", "COLUMNS"]

SCHEMA_VERSION = "1"
"""The layout of the tables; stored in ``lrpilot_meta`` under ``"schema"``."""

metadata = MetaData()

records = Table(
    "lrpilot_records",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),  # "range_test", "run" or "trial"
    Column("created", Float, nullable=False),  # Unix time
    Column("task_id", String(64), index=True),  # Task.fingerprint()["id"]
    Column("task_name", String(200)),
    Column("family", String(32), index=True),
    Column("model", String(200)),
    Column("parameters", BigInteger),
    Column("batch_size", Integer),
    Column("steps", Integer),
    Column("lr", Float),  # the LR chosen (range test) or trained at (run, trial)
    Column("metric", Float),  # the outcome, higher is better; NULL when unknown
    Column("diverged", Boolean),
    Column("features", JSON),  # the curve's features, or the run's
    Column("fingerprint", JSON),
    Column("details", JSON),
)

meta = Table(
    "lrpilot_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(200)),
)

COLUMNS = tuple(c.name for c in records.columns)
"""The record's columns, in order (the CSV export's header)."""
