"""Rows → Arrow batches → Parquet parts of one store table, with memory bounded by the batch size.

Readers hand rows (dicts) to a `TableWriter`; every `batch_rows` rows become one Parquet part file,
so a reader never holds a whole evidence file in memory. EventData columns vary from batch to batch;
the views read the parts with `union_by_name`.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from turncoat.store.schema import WIN_EVENT_FIXED

DEFAULT_BATCH_ROWS = 50_000


def _timestamps(values: list[Any]) -> tuple[pa.Array, int]:
    """Cast ISO-8601 strings to UTC microseconds; unparseable values become NULL and are counted."""
    arr = pa.array(values, type=pa.string())
    try:
        return pc.cast(arr, pa.timestamp("us", tz="UTC")), 0
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
        pass
    out: list[datetime | None] = []
    bad = 0
    for text in values:
        parsed = _parse_time(text)
        if parsed is None and text is not None:
            bad += 1
        out.append(parsed)
    return pa.array(out, type=pa.timestamp("us", tz="UTC")), bad


def _parse_time(text: str | None) -> datetime | None:
    """Slow path for odd time strings: 7-digit fractions, missing zone, space separator."""
    if not text:
        return None
    t = text.strip().replace(" ", "T", 1)
    if t.endswith("Z"):
        t = t[:-1] + "+00:00"
    if "." in t:
        head, _, frac = t.partition(".")
        digits = "".join(ch for ch in frac if ch.isdigit())
        zone = frac[len(digits):]
        t = f"{head}.{digits[:6].ljust(6, '0')}{zone}"
    try:
        parsed = datetime.fromisoformat(t)
    except ValueError:
        return None
    if parsed.tzinfo is None:
        from datetime import timezone

        parsed = parsed.replace(tzinfo=timezone.utc)
    return parsed


class ColumnBuffer:
    """Accumulates dict rows column-wise so building the Arrow table costs one pass per batch."""

    def __init__(self) -> None:
        self.columns: dict[str, list[Any]] = {}
        self.rows = 0

    def add(self, row: dict[str, Any]) -> None:
        n = self.rows
        columns = self.columns
        for key, value in row.items():
            col = columns.get(key)
            if col is None:
                col = columns[key] = [None] * n
            elif len(col) < n:
                col.extend([None] * (n - len(col)))
            col.append(value)
        self.rows = n + 1

    def to_table(self) -> tuple[pa.Table, int]:
        """The batch as an Arrow table (fixed columns typed, the rest strings) and bad-time count."""
        n = self.rows
        arrays: list[pa.Array] = []
        names: list[str] = []
        bad_times = 0
        for name, typ in WIN_EVENT_FIXED.items():
            values = self.columns.get(name, [])
            if len(values) < n:
                values = values + [None] * (n - len(values))
            if name == "ts":
                arr, bad_times = _timestamps(values)
            else:
                arr = pa.array(values, type=typ)
            arrays.append(arr)
            names.append(name)
        for name in sorted(k for k in self.columns if k not in WIN_EVENT_FIXED):
            values = self.columns[name]
            if len(values) < n:
                values.extend([None] * (n - len(values)))
            arrays.append(pa.array(values, type=pa.string()))
            names.append(name)
        return pa.Table.from_arrays(arrays, names=names), bad_times


class TableWriter:
    """Writes one evidence item's rows of one table as numbered Parquet parts."""

    def __init__(self, directory: Path, stem: str, batch_rows: int = DEFAULT_BATCH_ROWS) -> None:
        self.directory = directory
        self.stem = stem
        self.batch_rows = batch_rows
        self.buffer = ColumnBuffer()
        self.parts: list[Path] = []
        self.rows_written = 0
        self.bad_times = 0
        self.columns: set[str] = set()

    def add(self, row: dict[str, Any]) -> None:
        self.buffer.add(row)
        if self.buffer.rows >= self.batch_rows:
            self.flush()

    def flush(self) -> None:
        if not self.buffer.rows:
            return
        table, bad = self.buffer.to_table()
        self.bad_times += bad
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.directory / f"{self.stem}-{len(self.parts):05d}.parquet"
        pq.write_table(table, path, compression="zstd")
        self.parts.append(path)
        self.rows_written += table.num_rows
        self.columns.update(table.column_names)
        self.buffer = ColumnBuffer()

    def discard(self) -> None:
        """Remove what was written (an item that failed half-way is re-read whole next time)."""
        for part in self.parts:
            part.unlink(missing_ok=True)
        self.parts.clear()
        self.rows_written = 0
