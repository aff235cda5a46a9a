"""EVTX files, any channel, with the Rust `evtx` parser: every readable record, every bad chunk listed.

Dirty, truncated and corrupt logs are normal in collected evidence (copied while open, recovered from
shadow copies). The parser raises on a bad chunk or record and then carries on with the next one,
so the loop below keeps going and lists each failure with its chunk's byte offset.
"""

from __future__ import annotations

import re
import zlib
from pathlib import Path
from typing import Any, Protocol

import evtx
import orjson

from turncoat.evidence.base import IssueLog, ReadIssue
from turncoat.evidence.winevent import content_key, from_evtx_json, shaped_evtx

FILE_HEADER_SIZE = 4096
CHUNK_SIZE = 65536
# A file that keeps failing without yielding records is given up after this many errors in a row.
MAX_CONSECUTIVE_ERRORS = 10_000

_CHUNK = re.compile(r"chunk (?:number )?(\d+)", re.IGNORECASE)
_RECORD = re.compile(r"record (?:number |id )?(\d+)", re.IGNORECASE)


def issue_from_error(message: str, after_record: int | None = None) -> ReadIssue:
    """Place a parser error: the chunk number gives the byte offset of the chunk; errors the
    parser does not place are placed after the last record read before them."""
    chunk = _CHUNK.search(message)
    record = _RECORD.search(message)
    offset = FILE_HEADER_SIZE + int(chunk.group(1)) * CHUNK_SIZE if chunk else None
    return ReadIssue(
        message=message.splitlines()[0][:500],
        offset=offset,
        record_id=int(record.group(1)) if record else None,
        after_record=None if (chunk or record) else after_record,
    )


class ShapedSink(Protocol):
    """Where rows go: `add` takes a dict row, `add_shaped` a row already split in names and values."""

    def add(self, row: dict[str, Any]) -> None: ...

    def add_shaped(self, names: tuple[str, ...], values: list[Any], evidence_id: str, channel: Any) -> None: ...


def read_evtx(path: Path, evidence_id: str, sink: ShapedSink, issues: IssueLog, threads: int = 1) -> int:
    """Send every readable record of one EVTX file to `sink`; returns the number of records sent."""
    try:
        parser = evtx.PyEvtxParser(str(path), number_of_threads=threads, indent=False)
        records = parser.records_json()
    except (RuntimeError, OSError, ValueError) as exc:
        issues.add(ReadIssue(f"not a readable EVTX file: {exc}", offset=0))
        return 0
    sent = 0
    failures_in_a_row = 0
    last_record: int | None = None
    while True:
        try:
            record = next(records)
        except StopIteration:
            break
        except (RuntimeError, ValueError, OSError) as exc:
            issues.add(issue_from_error(str(exc), last_record))
            failures_in_a_row += 1
            if failures_in_a_row >= MAX_CONSECUTIVE_ERRORS:
                issues.add(ReadIssue("too many consecutive errors; rest of file skipped"))
                break
            continue
        failures_in_a_row = 0
        try:
            doc = orjson.loads(record["data"])
            shaped = shaped_evtx(doc)
            if shaped is not None:  # the common case: no dict per row
                names, values = shaped
                if values[2] is not None:  # record_id: the store's de-duplication key needs it
                    sink.add_shaped(names, values, evidence_id, values[11])
                    last_record = values[2]
                    sent += 1
                    continue
            row = from_evtx_json(doc)
        except (orjson.JSONDecodeError, TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
            issues.add(ReadIssue(f"record not understood: {exc}", record_id=record.get("event_record_id")))
            continue
        if row is None:
            issues.add(ReadIssue("record without a System element", record_id=record.get("event_record_id")))
            continue
        if row.get("record_id") is None:
            row["record_id"] = record.get("event_record_id")
        if row.get("ts") is None and record.get("timestamp"):
            row["ts"] = record["timestamp"].removesuffix(" UTC")
        row["evidence_id"] = evidence_id
        row["dedup_key"] = content_key(row)
        last_record = row["record_id"]
        sink.add(row)
        sent += 1
    if not sent and not issues.count and (problem := _header_problem(path)):
        issues.add(ReadIssue(problem, offset=0))  # nothing read and the parser said nothing: say why
    return sent


def _header_problem(path: Path) -> str | None:
    """Why a file that gave no record is not simply an empty log: its header checksum (CRC32 of the
    first 120 bytes, stored at offset 124) does not match, so the header — and with it the count and
    place of the chunks the parser trusted — is damaged."""
    try:
        with path.open("rb") as handle:
            header = handle.read(128)
    except OSError as exc:
        return f"cannot read the file header: {exc}"
    if len(header) < 128:
        return "file shorter than an EVTX header (128 bytes)"
    stored = int.from_bytes(header[124:128], "little")
    if zlib.crc32(header[:120]) != stored:
        return "no records: the file header is damaged (checksum mismatch)"
    return None
