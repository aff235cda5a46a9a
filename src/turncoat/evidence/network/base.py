"""What every network reader shares: where it writes, which time zone its source logs in, and how a
format is recognised.

A network reader is `read(path, ctx) -> rows written`. It streams the file (never all of it in
memory), writes each record to the network table of its kind through `ctx.rows(...)` (text logs)
or `ctx.write(...)` (Arrow tables), records every problem in `ctx.issues` with its line or byte
offset, and goes on after a bad line.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timezone, tzinfo
from pathlib import Path
from typing import Callable

import pyarrow as pa

from turncoat.evidence.base import IssueLog
from turncoat.store.net_writer import NetRows, NetWriter


@dataclass
class NetContext:
    """One evidence item being read: its id, its problems, the writer, and its sources' time zone."""

    evidence_id: str
    issues: IssueLog
    writer: NetWriter
    tz: tzinfo = timezone.utc  # for sources that log local time (Windows DNS debug log, BIND, …)
    year: int | None = None  # year of the first line, for syslog stamps that carry none (else from mtime)

    def rows(self, table: str, observer: str, dataset: str) -> NetRows:
        """A row buffer for one table; call `.flush()` when the file is done."""
        return NetRows(self.writer, table, self.evidence_id, observer, dataset)

    def write(self, table: str, data: pa.Table) -> int:
        return self.writer.write(table, data, self.evidence_id)


@dataclass(frozen=True)
class NetFormat:
    """A network log format: its name (shown in the manifest as the reader), how to recognise it
    from the first bytes of a file, and how to read it."""

    name: str
    sniff: Callable[[bytes], bool]
    read: Callable[[Path, NetContext], int]
    local_time: bool = False  # logs wall-clock time of its zone: `--tz` applies
