"""Rows → Arrow batches → Parquet parts of one store table, with memory bounded by the batch size.

Readers hand rows (dicts) to a `TableWriter`; every `batch_rows` rows become one Parquet part file,
so a reader never holds a whole evidence file in memory. EventData columns vary from batch to batch;
the views read the parts with `union_by_name`.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from turncoat.store.schema import WIN_EVENT_FIXED

DEFAULT_BATCH_ROWS = 50_000


def _timestamps(values: Any) -> tuple[pa.Array, int]:
    """Cast ISO-8601 strings to UTC microseconds; unparseable values become NULL and are counted."""
    arr = values if isinstance(values, pa.Array) else pa.array(values, type=pa.string())
    try:
        # Windows writes 100 ns ticks (7 digits); keep microseconds
        trimmed = pc.replace_substring_regex(arr, r"(\.\d{6})\d+", r"\1")
        return pc.cast(trimmed, pa.timestamp("us", tz="UTC")), 0
    except pa.ArrowException:  # invalid or unsupported time text: take the slow path
        pass
    out: list[datetime | None] = []
    bad = 0
    for text in arr.to_pylist():
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
        digits = re.match(r"\d*", frac).group()
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


def _array(values: Any, typ: pa.DataType) -> pa.Array:
    """An Arrow column; a value of the wrong kind (hostile evidence) becomes text, or NULL in an
    integer column, instead of failing the whole batch."""
    try:
        return pa.array(values, type=typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        pass
    if pa.types.is_integer(typ):
        limit = 2 ** (typ.bit_width - 1)
        return pa.array([v if type(v) is int and -limit <= v < limit else None for v in values], type=typ)
    return pa.array([None if v is None else str(v) for v in values], type=typ)


class ColumnBuffer:
    """Accumulates dict rows grouped by their shape (the tuple of their keys).

    Events of one kind carry the same fields in the same order, so a batch has few shapes; each
    shape's rows are transposed in C (`zip`) into columns, and the per-shape tables are unified by
    Arrow. This keeps the per-row Python cost to two tuple builds whatever the number of columns.
    """

    def __init__(self) -> None:
        self.shapes: dict[tuple[str, ...], list[Any]] = {}
        self.by_identity: dict[int, list[Any]] = {}  # fast path: readers reuse one names object per layout
        self.rows = 0

    def add(self, row: dict[str, Any]) -> None:
        names = tuple(row)
        bucket = self.shapes.get(names)
        if bucket is None:
            bucket = self.shapes[names] = []
        bucket.append(list(row.values()))
        self.rows += 1

    def add_shaped(self, names: tuple[str, ...], values: list[Any]) -> None:
        """A row already split into its column names and values (the readers' fast path). Looking
        the layout up by identity avoids hashing a tuple of thirty names for every row."""
        bucket = self.by_identity.get(id(names))
        if bucket is None:
            bucket = self.shapes.get(names)
            if bucket is None:
                bucket = self.shapes[names] = []
            self.by_identity[id(names)] = bucket
        bucket.append(values)
        self.rows += 1

    def to_table(self) -> tuple[pa.Table, int]:
        """The batch as an Arrow table (fixed columns typed, the rest strings) and bad-time count."""
        tables = []
        for keys, values in self.shapes.items():
            arrays = []
            for name, column in zip(keys, zip(*values)):
                typ = WIN_EVENT_FIXED.get(name, pa.string())
                arrays.append(_array(column, pa.string() if name == "ts" else typ))
            tables.append(pa.Table.from_arrays(arrays, names=list(keys)))
        table = pa.concat_tables(tables, promote_options="default") if len(tables) > 1 else tables[0]
        bad_times = 0
        columns: list[pa.Array] = []
        names: list[str] = []
        for name, typ in WIN_EVENT_FIXED.items():
            if name in table.column_names:
                column = table.column(name)
                if name == "ts":
                    column, bad_times = _timestamps(column.to_pylist() if column.num_chunks > 1 else column.chunk(0))
            else:
                column = pa.nulls(table.num_rows, type=typ)
            columns.append(column)
            names.append(name)
        for name in sorted(n for n in table.column_names if n not in WIN_EVENT_FIXED):
            columns.append(table.column(name))
            names.append(name)
        return pa.Table.from_arrays(columns, names=names), bad_times


class TableWriter:
    """Writes evidence rows of one table as numbered Parquet parts, one part per channel and flush.

    Keeping channels apart keeps each part narrow (a Sysmon part has Sysmon's fields, not the union
    of every channel's), which makes both writing and later column scans cheaper.
    """

    def __init__(self, directory: Path, stem: str, batch_rows: int = DEFAULT_BATCH_ROWS) -> None:
        self.directory = directory
        self.stem = stem
        self.batch_rows = batch_rows
        self.buffers: dict[Any, ColumnBuffer] = {}
        self.pending = 0
        self.parts: list[Path] = []
        self.bad_times = 0
        self._seq: dict[str, int] = {}

    def add(self, row: dict[str, Any]) -> None:
        evidence_id = row["evidence_id"]
        seq = self._seq.get(evidence_id, 0)
        row["seq"] = seq  # (evidence_id, seq) identifies a row for de-duplication
        self._seq[evidence_id] = seq + 1
        self._buffer(row.get("Channel")).add(row)

    def add_shaped(self, names: tuple[str, ...], values: list[Any], evidence_id: str, channel: Any) -> None:
        """The fast path: `names` already ends with `evidence_id`, `seq`, whose values are added here."""
        seq = self._seq.get(evidence_id, 0)
        self._seq[evidence_id] = seq + 1
        values.append(evidence_id)
        values.append(seq)
        self._buffer(channel).add_shaped(names, values)

    def _buffer(self, channel: Any) -> ColumnBuffer:
        buffer = self.buffers.get(channel)
        if buffer is None:
            buffer = self.buffers[channel] = ColumnBuffer()
        self.pending += 1
        if self.pending > self.batch_rows:
            self.flush()
            buffer = self.buffers[channel] = ColumnBuffer()
            self.pending = 1
        return buffer

    def flush(self) -> None:
        if not self.pending:
            return
        self.directory.mkdir(parents=True, exist_ok=True)
        for channel in sorted(self.buffers, key=lambda c: (c is None, str(c))):
            table, bad = self.buffers[channel].to_table()
            self.bad_times += bad
            path = self.directory / f"{self.stem}-{len(self.parts):05d}.parquet"
            pq.write_table(table, path, compression="zstd")
            self.parts.append(path)
        self.buffers = {}
        self.pending = 0
