"""Recognise an evidence file by its content, never by its name alone.

Collected evidence arrives renamed (`Security.evtx.bak`, `export(1).txt`, `host42`), so the first
bytes decide: EVTX magic, archive magics, and for JSON the shape of the first event.
"""

from __future__ import annotations

import codecs
import hashlib
import mmap
import re
from pathlib import Path

import orjson

from turncoat.evidence.network import sniff_network
from turncoat.evidence.winevent import from_any_json

HEAD_BYTES = 256 * 1024
HASH_SLICE = 64 * 1024 * 1024

EVTX = "evtx"
JSON_LINES = "winevent-jsonl"
JSON_DOCUMENT = "winevent-json"
ZIP = "zip"
TAR = "tar"
GZIP = "gzip"
XZ = "xz"
UNKNOWN = "unknown"
EMPTY = "empty"


def hash_and_sniff(path: Path) -> tuple[str, str]:
    """SHA-256 and reader name in one pass over the file (its head serves both).

    The file is mapped read-only, so hashing reads the page cache directly instead of copying every
    byte into Python buffers first; files that cannot be mapped (empty, special) are read. It is hashed
    a slice at a time and each slice is unmapped once hashed, so the process's RSS stays at one slice
    instead of growing to the size of the file.
    """
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        try:
            mapped = mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
        except (ValueError, OSError):
            mapped = None
        if mapped is not None:
            with mapped:
                head = mapped[:HEAD_BYTES]
                with memoryview(mapped) as view:
                    for start in range(0, len(mapped), HASH_SLICE):
                        digest.update(view[start:start + HASH_SLICE])
                        if hasattr(mmap, "MADV_DONTNEED"):  # not on Windows, which trims the working set itself
                            mapped.madvise(mmap.MADV_DONTNEED, start, min(HASH_SLICE, len(mapped) - start))
        else:
            head = handle.read(HEAD_BYTES)
            digest.update(head)
            while chunk := handle.read(1024 * 1024):
                digest.update(chunk)
    return digest.hexdigest(), sniff_bytes(head)


def sniff_bytes(head: bytes) -> str:
    if not head:
        return EMPTY
    if head.startswith(b"ElfFile\x00"):
        return EVTX
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return ZIP
    if head.startswith(b"\x1f\x8b"):
        return GZIP
    if head.startswith(b"\xfd7zXZ\x00"):
        return XZ
    if len(head) > 262 and head[257:262] == b"ustar":
        return TAR
    network = sniff_network(head)
    if network is not None:
        return network
    return _sniff_json(head)


def _sniff_json(head: bytes) -> str:
    text = head
    if text.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        text = text.decode("utf-16", errors="ignore").encode("utf-8")
    text = text.removeprefix(codecs.BOM_UTF8).lstrip()
    if re.match(rb"Record \d+[ \t]*\r?\n\s*\{", text):  # `evtx_dump -o json` with its record headers
        return JSON_DOCUMENT
    if text.startswith(b"["):
        return JSON_DOCUMENT
    if not text.startswith(b"{"):
        return UNKNOWN
    first, newline, _ = text.partition(b"\n")
    if newline:
        try:
            doc = orjson.loads(first)
        except orjson.JSONDecodeError:
            try:  # a line in a legacy code page is still a JSON line
                doc = orjson.loads(first.decode("cp1252", errors="replace").encode("utf-8"))
            except orjson.JSONDecodeError:
                # a pretty-printed document, or several one after another (`evtx_dump -o json`)
                return JSON_DOCUMENT
        return _json_kind(doc)
    try:
        doc = orjson.loads(text)
    except orjson.JSONDecodeError:
        # one line longer than the head: the line reader bounds and reports it
        return JSON_LINES if len(head) >= HEAD_BYTES else UNKNOWN
    return _json_kind(doc)


def _json_kind(doc: object) -> str:
    """A whole JSON value: one event (read as lines), a list of events, or neither."""
    from turncoat.evidence.json_reader import events_of_document

    if isinstance(doc, dict) and from_any_json(doc) is not None:
        return JSON_LINES
    return JSON_DOCUMENT if events_of_document(doc) is not None else UNKNOWN
