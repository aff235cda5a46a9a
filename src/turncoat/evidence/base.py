"""What every reader shares: where a problem was, and the result of reading one evidence item."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

Row = dict[str, Any]
RowSink = Callable[[Row], None]

# A reader keeps at most this many problems per item in the manifest; the rest are only counted.
MAX_LISTED_ISSUES = 200


@dataclass
class ReadIssue:
    """One problem in one evidence item, with where it is (byte offset, line, chunk, record)."""

    message: str
    offset: int | None = None
    line: int | None = None
    record_id: int | None = None
    after_record: int | None = None  # for errors the parser cannot place: the last good record

    def where(self) -> str:
        parts = []
        if self.line is not None:
            parts.append(f"line {self.line}")
        if self.offset is not None:
            parts.append(f"offset {self.offset}")
        if self.record_id is not None:
            parts.append(f"record {self.record_id}")
        if self.after_record is not None:
            parts.append(f"after record {self.after_record}")
        return ", ".join(parts) or "file"

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass
class IssueLog:
    """Problems of one item: the first MAX_LISTED_ISSUES listed, all of them counted."""

    listed: list[ReadIssue] = field(default_factory=list)
    count: int = 0

    def add(self, issue: ReadIssue) -> None:
        self.count += 1
        if len(self.listed) < MAX_LISTED_ISSUES:
            self.listed.append(issue)
