"""Windows events exported as JSON: JSON lines (Winlogbeat/Elastic Agent, Velociraptor, OTRF) and
JSON documents holding a list of events (`[...]` or `{"events": [...]}`).

Text evidence is hostile in ordinary ways: a 1 GB line, a UTF-16 file written by PowerShell, a line in
Windows-1252, a truncated last line. Each is read line by line with a bounded line length; a line that
cannot be used is listed with its line number and byte offset and the file goes on.
"""

from __future__ import annotations

import codecs
import io
import json
import re
from pathlib import Path
from typing import BinaryIO, Iterator

import orjson

from turncoat.evidence.base import IssueLog, ReadIssue, RowSink
from turncoat.evidence.winevent import content_key, from_any_json

_RECORD_HEADER = re.compile(r"Record \d+[ \t]*\r?\n")
MAX_LINE_BYTES = 16 * 1024 * 1024
MAX_DOCUMENT_BYTES = 512 * 1024 * 1024
_SKIP_CHUNK = 1024 * 1024


def _open_text_bytes(raw: BinaryIO) -> BinaryIO:
    """UTF-16 exports (PowerShell's default) are re-encoded to UTF-8 on the fly."""
    head = raw.peek(4)[:4] if hasattr(raw, "peek") else b""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = io.TextIOWrapper(raw, encoding="utf-16", errors="replace", newline="")
        return _Utf8Lines(text)
    return raw


class _Utf8Lines(io.RawIOBase):
    """Minimal binary view of a text stream: readline() returns UTF-8 bytes."""

    def __init__(self, text: io.TextIOWrapper) -> None:
        super().__init__()
        self.text = text

    def readline(self, limit: int = -1) -> bytes:  # type: ignore[override]
        return self.text.readline(limit if limit and limit > 0 else -1).encode("utf-8")

    def readable(self) -> bool:
        return True


def iter_lines(stream: BinaryIO, issues: IssueLog) -> Iterator[tuple[int, int, bytes]]:
    """(line number, byte offset, content) of each line, oversize lines skipped and reported."""
    number = 0
    offset = 0
    while True:
        line = stream.readline(MAX_LINE_BYTES)
        if not line:
            return
        number += 1
        start = offset
        offset += len(line)
        if len(line) >= MAX_LINE_BYTES and not line.endswith(b"\n"):
            skipped = len(line)
            while True:
                rest = stream.readline(_SKIP_CHUNK)
                offset += len(rest)
                skipped += len(rest)
                if not rest or rest.endswith(b"\n"):
                    break
            issues.add(ReadIssue(f"line longer than {MAX_LINE_BYTES} bytes ({skipped} bytes) skipped",
                                 line=number, offset=start))
            continue
        yield number, start, line


def _decode(line: bytes, number: int, offset: int, issues: IssueLog) -> dict | None:
    stripped = line.strip()
    if not stripped:
        return None
    if stripped.startswith(codecs.BOM_UTF8):
        stripped = stripped[3:]
    try:
        doc = orjson.loads(stripped)
    except orjson.JSONDecodeError:
        try:
            doc = orjson.loads(stripped.decode("cp1252", errors="replace").encode("utf-8"))
            issues.add(ReadIssue("line is not UTF-8; read as Windows-1252", line=number, offset=offset))
        except orjson.JSONDecodeError as exc:
            issues.add(ReadIssue(f"not JSON: {str(exc)[:200]}", line=number, offset=offset))
            return None
    if not isinstance(doc, dict):
        issues.add(ReadIssue("JSON value is not an object", line=number, offset=offset))
        return None
    return doc


def read_json_lines(path: Path, evidence_id: str, sink: RowSink, issues: IssueLog) -> int:
    """One Windows event per line; returns the number of events sent to `sink`."""
    sent = 0
    with path.open("rb") as raw_file:
        stream = _open_text_bytes(io.BufferedReader(raw_file))  # type: ignore[arg-type]
        for number, offset, line in iter_lines(stream, issues):
            doc = _decode(line, number, offset, issues)
            if doc is None:
                continue
            sent += _emit(doc, evidence_id, sink, issues, line=number, offset=offset)
    return sent


def read_json_document(path: Path, evidence_id: str, sink: RowSink, issues: IssueLog) -> int:
    """A JSON array of events, or an object with an `events` (or `hits.hits`) list."""
    size = path.stat().st_size
    if size > MAX_DOCUMENT_BYTES:
        issues.add(ReadIssue(f"JSON document of {size} bytes is larger than {MAX_DOCUMENT_BYTES}; "
                             "export it as JSON lines", offset=0))
        return 0
    data = path.read_bytes()
    if data.startswith(codecs.BOM_UTF8):
        data = data[3:]
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        data = data.decode("utf-16", errors="replace").encode("utf-8")
    try:
        doc = orjson.loads(data)
        events = events_of_document(doc)
        if events is None and isinstance(doc, dict):
            events = [doc]
    except orjson.JSONDecodeError:
        events = _concatenated(data, issues)
    if events is None:
        issues.add(ReadIssue("JSON document holds no list of events", offset=0))
        return 0
    sent = 0
    for index, item in enumerate(events):
        if isinstance(item, dict) and "_source" in item and isinstance(item["_source"], dict):
            item = item["_source"]
        if not isinstance(item, dict):
            issues.add(ReadIssue(f"event #{index} is not an object"))
            continue
        sent += _emit(item, evidence_id, sink, issues, line=index + 1, offset=None)
    return sent


def _concatenated(data: bytes, issues: IssueLog) -> list | None:
    """Objects written one after another (`evtx_dump -o json`); stops at the first broken one."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        issues.add(ReadIssue("document is not UTF-8; undecodable bytes replaced", offset=exc.start))
        text = data.decode("utf-8", errors="replace")
    decoder = json.JSONDecoder()
    events: list = []
    pos = 0
    while True:
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        header = _RECORD_HEADER.match(text, pos)  # `evtx_dump` prints "Record N" before each event
        if header:
            pos = header.end()
            continue
        if pos >= len(text):
            break
        try:
            obj, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            issues.add(ReadIssue(f"JSON broken after {len(events)} objects: {exc.msg}",
                                 line=exc.lineno, offset=len(text[:exc.pos].encode("utf-8"))))
            break
        events.append(obj)
    return events if events else None


def events_of_document(doc: object) -> list | None:
    """The event list inside a JSON document, or None."""
    if isinstance(doc, list):
        return doc
    if isinstance(doc, dict):
        if isinstance(doc.get("events"), list):
            return doc["events"]
        hits = doc.get("hits")
        if isinstance(hits, dict) and isinstance(hits.get("hits"), list):
            return hits["hits"]
    return None


def _emit(doc: dict, evidence_id: str, sink: RowSink, issues: IssueLog, line: int, offset: int | None) -> int:
    try:
        row = from_any_json(doc)
    except (TypeError, ValueError, AttributeError, KeyError, OverflowError) as exc:
        issues.add(ReadIssue(f"event not understood: {exc}", line=line, offset=offset))
        return 0
    if row is None:
        issues.add(ReadIssue("JSON object is not a Windows event", line=line, offset=offset))
        return 0
    row["evidence_id"] = evidence_id
    row["line"] = line
    row["offset"] = offset
    row["dedup_key"] = content_key(row)
    sink(row)
    return 1
