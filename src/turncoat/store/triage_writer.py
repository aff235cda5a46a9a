"""Writes the rows of triage artifacts to the store: one Parquet part per triage table and collection.

A collection yields thousands of rows, not millions, so rows are held per table until the collection
is done and written once; the part is then as large as it can usefully be. Columns take the types of
`schema.TRIAGE_TABLES`; keys a parser returns beyond them are dropped, never invented as columns.
"""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from turncoat.store.schema import TRIAGE_TABLES, triage_columns


def _utc(value: Any) -> Any:
    """Parsers return aware UTC datetimes; a naive one is taken as UTC rather than the analyst's zone."""
    if isinstance(value, datetime) and value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value


class TriageWriter:
    """Collects rows per triage table and writes them as `<parquet_root>/<table>/<stem>.parquet`."""

    def __init__(self, parquet_root: Path, stem: str) -> None:
        self.parquet_root = parquet_root
        self.stem = stem
        self.rows: dict[str, list[dict[str, Any]]] = {}
        self.seq: dict[str, int] = {}  # evidence id → rows sent so far (row position in its item)

    def add(self, table: str, row: dict[str, Any], *, evidence_id: str, host: str, source_path: str,
            artifact: str) -> None:
        if table not in TRIAGE_TABLES:
            raise KeyError(f"not a triage table: {table}")
        seq = self.seq.get(evidence_id, 0)
        self.seq[evidence_id] = seq + 1
        full = {name: _utc(row.get(name)) for name in TRIAGE_TABLES[table]}
        full.update(evidence_id=evidence_id, seq=seq, host=host, ts=_utc(row.get("ts")),
                    source_path=source_path, artifact=row.get("artifact") or artifact)
        self.rows.setdefault(table, []).append(full)

    def sent(self, evidence_id: str) -> int:
        return self.seq.get(evidence_id, 0)

    def flush(self) -> None:
        for table, rows in self.rows.items():
            if not rows:
                continue
            schema = pa.schema(list(triage_columns(table).items()))
            data = pa.Table.from_pylist(rows, schema=schema)
            folder = self.parquet_root / table
            folder.mkdir(parents=True, exist_ok=True)
            pq.write_table(data, folder / f"{self.stem}.parquet")
        self.rows = {}
