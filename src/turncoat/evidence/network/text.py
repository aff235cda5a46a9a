"""Line-by-line reading of text logs for every network reader: bounded lines, any usual encoding.

Text logs arrive in UTF-8, in a Windows code page, or in UTF-16 (files saved by PowerShell or
Notepad); lines may be huge or cut short. Each reader gets decoded lines with their number and byte
offset, so every problem it reports can name its place in the file.
"""

from __future__ import annotations

import codecs
import io
from pathlib import Path
from typing import Iterator

from turncoat.evidence.base import IssueLog, ReadIssue
from turncoat.evidence.json_reader import _open_text_bytes, iter_lines


def decode_line(raw: bytes, number: int, offset: int, issues: IssueLog) -> str:
    """UTF-8, else Windows-1252 (reported once per line), without the line end."""
    raw = raw.rstrip(b"\r\n")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        issues.add(ReadIssue("line is not UTF-8; read as Windows-1252", line=number, offset=offset))
        return raw.decode("cp1252", errors="replace")


def text_lines(path: Path, issues: IssueLog) -> Iterator[tuple[int, int, str]]:
    """(line number, byte offset, text) of every line of `path`; a BOM is dropped."""
    with path.open("rb") as raw_file:
        stream = _open_text_bytes(io.BufferedReader(raw_file))  # type: ignore[arg-type]
        for number, offset, raw in iter_lines(stream, issues):
            if number == 1 and raw.startswith(codecs.BOM_UTF8):
                raw = raw[3:]
            yield number, offset, decode_line(raw, number, offset, issues)


def head_text(head: bytes) -> str:
    """The first bytes of a file as text, for sniffing (UTF-16 and BOMs handled, errors replaced)."""
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", errors="replace")
    return head.removeprefix(codecs.BOM_UTF8).decode("utf-8", errors="replace")


def head_lines(head: bytes, limit: int = 20) -> list[str]:
    """The first complete lines of `head` (the last, maybe cut, line is dropped when there are more)."""
    lines = head_text(head).splitlines()
    if len(lines) > 1 and not head.endswith(b"\n"):
        lines = lines[:-1]
    return lines[:limit]
