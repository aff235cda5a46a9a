"""Small SQL-text helpers shared by the store's view builders (quoting, typed empty queries, part
listings), so the event, network and triage views spell them one way."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa


def q(name: str) -> str:
    """A quoted identifier (column names hold dots and spaces)."""
    return '"' + name.replace('"', '""') + '"'


def lit(text: str) -> str:
    """A quoted string literal."""
    return "'" + text.replace("'", "''") + "'"


def parquet_files(parquet_root: Path, table: str) -> list[Path]:
    return sorted((parquet_root / table).glob("*.parquet"))


def no_rows(columns: dict[str, pa.DataType]) -> str:
    """A query with these columns, typed, and no rows: a view's shape before any evidence has it."""
    typed = ", ".join(f"CAST(NULL AS {arrow_sql(t)}) AS {q(n)}" for n, t in columns.items())
    return f"SELECT {typed} WHERE false"


def arrow_sql(typ: pa.DataType) -> str:
    """The DuckDB type of an Arrow type, for the few types the store's fixed columns use."""
    if pa.types.is_timestamp(typ):
        return "TIMESTAMPTZ"
    if pa.types.is_int64(typ):
        return "BIGINT"
    if pa.types.is_int32(typ):
        return "INTEGER"
    if pa.types.is_floating(typ):
        return "DOUBLE"
    if pa.types.is_boolean(typ):
        return "BOOLEAN"
    return "VARCHAR"


def parquet_view_sql(parquet_root: Path, table: str, columns: dict[str, pa.DataType]) -> str:
    """A table's rows from its Parquet parts, with every fixed column present and typed even when no
    part has it (or there are no parts at all)."""
    sql = no_rows(columns)
    files = parquet_files(parquet_root, table)
    if files:
        listing = ", ".join(lit(p.resolve().as_posix()) for p in files)
        sql = f"{sql} UNION ALL BY NAME SELECT * FROM read_parquet([{listing}], union_by_name = true)"
    return sql
