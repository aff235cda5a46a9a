"""Writes network records to the store: one Parquet part per network table and flush.

Network readers hand over either whole Arrow tables (the Zeek TSV path, millions of rows) or one
dict per record (text logs). Either way the writer brings the table's fixed columns to their schema
types (see `schema.NET_TABLES`), keeps every other column as text under its source name, and numbers
rows per evidence item (`seq`) so each row can be traced back to its file and line.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from turncoat.store.schema import NET_TABLES, net_columns

ROWS_PER_FLUSH = 65_536
# What Arrow raises for data it cannot convert or a conversion it does not offer: the readers turn
# these into nulls or a per-line fallback, never a failed file.
ARROW_DATA_ERRORS: tuple[type[Exception], ...] = (pa.ArrowInvalid, pa.lib.ArrowNotImplementedError)
UTC_US = pa.timestamp("us", tz="UTC")
_COUNTING: list[pa.Array] = []  # 0, 1, 2, … built once, then sliced and shifted for each part's `seq`
# Columns whose values repeat (sensor, log, protocol, verdict names): dictionary-encoded. Addresses,
# names, URLs and ids are mostly distinct, and trying a dictionary on them costs a third of the write.
_DICTIONARY = ["evidence_id", "observer.type", "event.dataset", "network.transport", "network.protocol",
               "event.action", "dns.question.type", "dns.response_code", "http.request.method", "rule.name"]

# Min/max statistics let queries skip parts by time or item; on every text column they cost a
# tenth of the write and serve no query.
_STATISTICS = ["@timestamp", "evidence_id", "seq", "line"]

# Row numbers and times grow steadily: delta encoding stores them in a sixth less space at no cost.
_DELTA = dict.fromkeys(("seq", "line", "@timestamp"), "DELTA_BINARY_PACKED")


def numbers(start: int, count: int) -> pa.Array:
    """start, start+1, … start+count-1 as int64, without a Python loop per row."""
    if not _COUNTING or len(_COUNTING[0]) < count:
        _COUNTING[:] = [pa.array(range(max(count, 1 << 20)), pa.int64())]
    return pc.add(_COUNTING[0].slice(0, count), pa.scalar(start, pa.int64()))


def epoch_seconds_to_ts(values: pa.Array) -> pa.Array:
    """Epoch seconds (float or text) → UTC microsecond timestamps; unreadable values become null."""
    if not pa.types.is_floating(values.type):
        values = pc.cast(values, pa.float64(), safe=False) if not pa.types.is_string(values.type) \
            else _text_to_float(values)
    micros = pc.round(pc.multiply(values, 1_000_000.0))
    in_range = pc.and_(pc.greater(micros, -62_135_596_800e6), pc.less(micros, 253_402_300_799e6))
    micros = pc.if_else(in_range, micros, pa.scalar(None, pa.float64()))
    return pc.cast(pc.cast(micros, pa.int64()), UTC_US)


def _text_to_float(values: pa.Array) -> pa.Array:
    numeric = pc.match_substring_regex(values, r"^\s*-?\d+(\.\d+)?([eE][-+]?\d+)?\s*$")
    cleaned = pc.if_else(numeric, values, pa.scalar(None, pa.string()))
    return pc.cast(cleaned, pa.float64())


def _conform(column: pa.Array | pa.ChunkedArray, typ: pa.DataType) -> pa.Array | pa.ChunkedArray:
    """Cast a column to its fixed type; values that do not convert become null, never an error."""
    if column.type == typ:
        return column
    if pa.types.is_timestamp(typ):
        if pa.types.is_timestamp(column.type):
            return pc.cast(column, typ)
        if isinstance(column, pa.ChunkedArray):
            return pa.chunked_array([epoch_seconds_to_ts(c) for c in column.chunks], type=typ)
        return epoch_seconds_to_ts(column)
    try:
        return pc.cast(column, typ)
    except ARROW_DATA_ERRORS:
        pass
    if pa.types.is_integer(typ) or pa.types.is_floating(typ):
        text = pc.cast(column, pa.string()) if not pa.types.is_string(column.type) else column
        if isinstance(text, pa.ChunkedArray):
            text = text.combine_chunks()
        numbers = _text_to_float(text)
        if pa.types.is_integer(typ):
            whole = pc.and_(pc.equal(pc.floor(numbers), numbers), pc.less(pc.abs(numbers), 2.0 ** 62))
            numbers = pc.if_else(whole, numbers, pa.scalar(None, pa.float64()))
        return pc.cast(numbers, typ, safe=False)
    return pc.cast(column, pa.string())


class NetWriter:
    """Collects network rows of one worker task and writes them as Parquet parts per table.

    `write` may be called from several threads at once (`concurrent_writes`): row numbers and part
    names are taken under a lock, and the Parquet encoding, which releases the GIL, runs outside it.
    A reader that writes blocks in parallel takes each block's first row number in file order with
    `next_seq` and passes it as `seq_start`, so numbering does not depend on thread timing.
    """

    concurrent_writes = True

    def __init__(self, parquet_root: Path, stem: str) -> None:
        self.root = parquet_root
        self.stem = stem
        self.parts: list[Path] = []
        self._seq: dict[str, int] = {}
        self._count = 0
        self._lock = threading.Lock()

    def next_seq(self, evidence_id: str, rows: int) -> int:
        with self._lock:
            start = self._seq.get(evidence_id, 0)
            self._seq[evidence_id] = start + rows
            return start

    def write(self, table: str, data: pa.Table, evidence_id: str, seq_start: int | None = None) -> int:
        """Write `data` (columns named as in the schema or by the source) to `table`; rows are numbered
        from `seq_start` when given (taken earlier with `next_seq`), else from the next free number."""
        if table not in NET_TABLES:
            raise KeyError(f"unknown network table {table!r}")
        rows = data.num_rows
        if not rows:
            return 0
        start = self.next_seq(evidence_id, rows) if seq_start is None else seq_start
        columns: list[Any] = []
        names: list[str] = []
        for name, typ in net_columns(table).items():
            if name == "evidence_id":
                column = pa.repeat(pa.scalar(evidence_id, pa.string()), rows)
            elif name == "seq":
                column = numbers(start, rows)
            elif name in data.column_names:
                column = _conform(data.column(name), typ)
            else:
                column = pa.nulls(rows, type=typ)
            columns.append(column)
            names.append(name)
        fixed = set(names)
        for name in data.column_names:
            if name in fixed or not name:
                continue
            column = data.column(name)
            if not pa.types.is_string(column.type):
                column = pc.cast(column, pa.string()) if not pa.types.is_null(column.type) \
                    else pa.nulls(rows, pa.string())
            columns.append(column)
            names.append(name)
        out = pa.Table.from_arrays(columns, names=names)
        directory = self.root / table
        directory.mkdir(parents=True, exist_ok=True)
        with self._lock:
            path = directory / f"{self.stem}-{self._count:05d}.parquet"
            self._count += 1
            self.parts.append(path)
        pq.write_table(out, path, compression="zstd", use_dictionary=_DICTIONARY, write_statistics=_STATISTICS,
                       column_encoding=_DELTA)
        return rows


class NetRows:
    """Row-at-a-time front of `NetWriter` for text logs: buffers dicts and writes them in batches.

    Every row carries its `line`; values of fields outside the schema are kept as text.
    """

    def __init__(self, writer: NetWriter, table: str, evidence_id: str, observer: str, dataset: str) -> None:
        self.writer = writer
        self.table = table
        self.evidence_id = evidence_id
        self.observer = observer
        self.dataset = dataset
        self.buffer: list[dict[str, Any]] = []
        self.written = 0

    def add(self, row: dict[str, Any]) -> None:
        self.buffer.append(row)
        if len(self.buffer) >= ROWS_PER_FLUSH:
            self.flush()

    def flush(self) -> None:
        if not self.buffer:
            return
        rows, self.buffer = self.buffer, []
        fixed = net_columns(self.table)
        keys: dict[str, None] = {}
        for row in rows:
            keys.update(dict.fromkeys(row))
        arrays = []
        for key in keys:
            values = [row.get(key) for row in rows]
            typ = fixed.get(key)
            arrays.append(_array(values, typ))
        table = pa.Table.from_arrays(arrays, names=list(keys))
        if "observer.type" not in keys:
            table = table.append_column("observer.type", pa.array([self.observer] * len(rows), pa.string()))
        if "event.dataset" not in keys:
            table = table.append_column("event.dataset", pa.array([self.dataset] * len(rows), pa.string()))
        self.written += self.writer.write(self.table, table, self.evidence_id)


def _all_datetimes(values: list[Any]) -> bool:
    from datetime import datetime

    return all(v is None or isinstance(v, datetime) for v in values)


def _array(values: list[Any], typ: pa.DataType | None) -> pa.Array:
    if typ is None:  # a field of the source's own: kept as text
        return pa.array([None if v is None else v if isinstance(v, str) else str(v) for v in values], pa.string())
    if pa.types.is_timestamp(typ):
        if _all_datetimes(values):
            return pa.array(values, typ)
        return pa.array([None if v is None else float(v) if _is_number(v) else None for v in values], pa.float64())
    try:
        return pa.array(values, typ)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
        return pa.array([None if v is None else str(v) for v in values], pa.string())


def _is_number(value: Any) -> bool:
    if isinstance(value, (int, float)):
        return True
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True
