"""Reading a small artifact whole (a Task XML, a Defender record, a Prefetch file, a plist): one place
says the same thing, with the file's own name, when it cannot be read, is empty or is too big to be
what it claims."""

from __future__ import annotations

from pathlib import Path

from turncoat.evidence.base import IssueLog, ReadIssue
from turncoat.triage.text import decode_bom_text


def read_whole(path: Path, issues: IssueLog, what: str, *, max_bytes: int | None = None,
               empty_ok: bool = False) -> bytes | None:
    """The file's bytes, or None with an issue; an empty file is an issue unless `empty_ok`."""
    try:
        if max_bytes is not None and (size := path.stat().st_size) > max_bytes:
            issues.add(ReadIssue(f"{what} is {size} bytes, more than the {max_bytes} it can be; not read"))
            return None
        data = path.read_bytes()
    except OSError as exc:
        issues.add(ReadIssue(f"cannot read {what}: {exc}"))
        return None
    if not data and not empty_ok:
        issues.add(ReadIssue(f"{what} is empty (zero bytes)"))
        return None
    return data


def read_text(path: Path, issues: IssueLog, what: str) -> str | None:
    """A small Windows text artifact decoded by its byte-order mark (triage/text.py), or None with an
    issue; bytes that had to be replaced are reported too."""
    data = read_whole(path, issues, what)
    if data is None:
        return None
    text, replaced = decode_bom_text(data)
    if replaced:
        issues.add(ReadIssue(f"{what} is not valid UTF-16/UTF-8 throughout; unreadable bytes were replaced"))
    return text
