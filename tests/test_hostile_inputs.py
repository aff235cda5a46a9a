"""Bad input never crashes a run: each problem is named with its file and position, counted in the
manifest, and the rest of the evidence is still read."""

from __future__ import annotations

import io
import json
import os
import sys
import tarfile
import zipfile
from pathlib import Path

import orjson
import pytest
from conftest import shared

from turncoat import pipeline
from turncoat.evidence import json_reader

EVENT = {
    "@timestamp": "2023-03-01T10:00:00.000Z",
    "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "computer_name": "PC-1.example.local",
               "event_id": "1", "record_id": 1, "provider_name": "Microsoft-Windows-Sysmon",
               "event_data": {"Image": "C:\\Windows\\notepad.exe", "CommandLine": "notepad.exe"}},
}


def _event(record_id: int, **data: str) -> bytes:
    doc = json.loads(json.dumps(EVENT))
    doc["winlog"]["record_id"] = record_id
    doc["winlog"]["event_data"].update(data)
    return orjson.dumps(doc) + b"\n"


def _manifest(case: Path) -> dict:
    return orjson.loads((case / "manifest.json").read_bytes())


def _item(case: Path, suffix: str) -> dict:
    items = [i for i in _manifest(case)["items"] if i["path"].endswith(suffix)]
    assert len(items) == 1, (suffix, [i["path"] for i in _manifest(case)["items"]])
    return items[0]


def test_missing_path_is_reported_and_the_rest_is_read(tmp_path: Path) -> None:
    good = tmp_path / "good.ndjson"
    good.write_bytes(_event(1))
    case = tmp_path / "case"
    result = pipeline.ingest([tmp_path / "nope", good], case)
    manifest = _manifest(case)
    assert any(p["path"].endswith("nope") and "no such" in p["message"] for p in manifest["problems"])
    assert _item(case, "good.ndjson")["records"] == 1
    assert result.problems == 1


def test_empty_folder_and_unknown_format(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("hello, not a log\n")
    (tmp_path / "zero.evtx").write_bytes(b"")
    case = tmp_path / "case"
    pipeline.ingest([tmp_path / "empty", tmp_path / "notes.txt", tmp_path / "zero.evtx"], case)
    assert _item(case, "notes.txt")["status"] == "unknown-format"
    assert _item(case, "zero.evtx")["status"] == "empty"


def test_unreadable_file_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    locked = tmp_path / "locked.evtx"
    locked.write_bytes(b"ElfFile\x00" + b"\x00" * 100)
    good = tmp_path / "good.ndjson"
    good.write_bytes(_event(1))
    real_open = Path.open

    def deny(self: Path, *args, **kwargs):  # root reads everything; fake the OS refusing
        if self.name == "locked.evtx":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", deny)
    case = tmp_path / "case"
    pipeline.ingest([tmp_path], case, workers=1)
    manifest = _manifest(case)
    assert any(p["path"].endswith("locked.evtx") and "Permission denied" in p["message"] for p in manifest["problems"])
    assert _item(case, "good.ndjson")["records"] == 1


def test_truncated_evtx_keeps_readable_records(tmp_path: Path) -> None:
    src = shared("evtx", "DeepBlueCLI", "evtx", "password-spray.evtx")
    data = src.read_bytes()
    cut = tmp_path / "cut.evtx"
    cut.write_bytes(data[: 4096 + 65536 + 20000])  # first chunk whole, the second cut short
    garbage = tmp_path / "garbage.evtx"
    garbage.write_bytes(b"ElfFile\x00" + os.urandom(5000))
    case = tmp_path / "case"
    pipeline.ingest([cut, garbage], case)
    item = _item(case, "cut.evtx")
    assert 0 < item["records"] < 295
    bad = _item(case, "garbage.evtx")
    assert bad["records"] == 0 and bad["issue_count"] >= 1 and bad["status"] == "unreadable"


def test_huge_line_non_utf8_utf16_and_truncated_json(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_reader, "MAX_LINE_BYTES", 1024 * 1024)
    huge = tmp_path / "huge.ndjson"
    with huge.open("wb") as out:
        out.write(_event(1))
        out.write(b'{"x": "' + b"A" * (3 * 1024 * 1024) + b'"}\n')
        out.write(_event(3))
    latin = tmp_path / "latin.ndjson"
    latin.write_bytes(_event(1, CommandLine="caf\u00e9").decode().replace("\u00e9", "\u00e9").encode("cp1252") + _event(2))
    utf16 = tmp_path / "utf16.ndjson"
    utf16.write_bytes((_event(1) + _event(2)).decode().encode("utf-16"))
    truncated = tmp_path / "truncated.ndjson"
    truncated.write_bytes(_event(1) + _event(2)[:40])
    case = tmp_path / "case"
    pipeline.ingest([huge, latin, utf16, truncated], case, workers=1)
    item = _item(case, "huge.ndjson")
    assert item["records"] == 2
    assert item["issues"][0]["line"] == 2 and "longer than" in item["issues"][0]["message"]
    item = _item(case, "latin.ndjson")
    assert item["records"] == 2 and "Windows-1252" in item["issues"][0]["message"]
    assert _item(case, "utf16.ndjson")["records"] == 2
    item = _item(case, "truncated.ndjson")
    assert item["records"] == 1 and item["issues"][0]["line"] == 2


def test_duplicate_files_and_second_ingest_add_nothing_twice(tmp_path: Path) -> None:
    a = tmp_path / "a" / "sysmon.ndjson"
    a.parent.mkdir()
    a.write_bytes(_event(1) + _event(2))
    b = tmp_path / "b" / "copy.ndjson"
    b.parent.mkdir()
    b.write_bytes(a.read_bytes())
    case = tmp_path / "case"
    pipeline.ingest([tmp_path / "a", tmp_path / "b"], case)
    pipeline.ingest([tmp_path / "a"], case)
    manifest = _manifest(case)
    assert len(manifest["items"]) == 1
    assert manifest["items"][0]["duplicates"][0]["path"].endswith("copy.ndjson")
    # the same events exported again in another file collapse in the store
    c = tmp_path / "c.ndjson"
    c.write_bytes(_event(2) + _event(3))
    pipeline.ingest([c], case)
    report = pipeline.assess(case, None)
    assert report["case"]["records"] == 4 and report["case"]["duplicates_collapsed"] == 1


def test_archive_bomb_traversal_and_links_are_refused(tmp_path: Path) -> None:
    bomb = tmp_path / "bomb.zip"
    with zipfile.ZipFile(bomb, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("zeros.ndjson", b"\x00" * (64 * 1024 * 1024))
        zf.writestr("ok.ndjson", _event(1))
    evil = tmp_path / "evil.zip"
    with zipfile.ZipFile(evil, "w") as zf:
        zf.writestr("../../escape.ndjson", _event(2))
        zf.writestr("C:/Windows/x.ndjson", _event(3))
        zf.writestr("fine/inner.ndjson", _event(4))
    tar = tmp_path / "links.tar.gz"
    with tarfile.open(tar, "w:gz") as tf:
        link = tarfile.TarInfo("passwd.ndjson")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tf.addfile(link)
        data = _event(5)
        info = tarfile.TarInfo("logs/sysmon.ndjson")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    case = tmp_path / "case"
    pipeline.ingest([tmp_path], case)
    problems = {p["path"].split("!", 1)[-1]: p["message"] for p in _manifest(case)["problems"]}
    assert "ratio" in problems["zeros.ndjson"]
    assert "traversal" in problems["../../escape.ndjson"]
    assert "absolute" in problems["C:/Windows/x.ndjson"]
    assert "link" in problems["passwd.ndjson"]
    assert _item(case, "bomb.zip!ok.ndjson")["records"] == 1
    archive = _item(case, "bomb.zip")  # the archive itself is an input: hashed and listed
    assert archive["status"] == "archive" and archive["members"] == 1 and len(archive["sha256"]) == 64
    assert _item(case, "evil.zip!fine/inner.ndjson")["records"] == 1
    assert _item(case, "links.tar.gz!logs/sysmon.ndjson")["records"] == 1
    assert not (tmp_path.parent / "escape.ndjson").exists()
    assert not (case / "tmp").exists(), "scratch space is removed"


@pytest.mark.skipif(sys.platform in ("win32", "darwin"), reason="only Linux file systems accept undecodable names")
def test_hostile_file_names(tmp_path: Path) -> None:
    odd = tmp_path / os.fsdecode(b"evil\nname \xff<script>.ndjson")
    odd.write_bytes(_event(1))
    case = tmp_path / "case"
    pipeline.ingest([tmp_path], case)
    manifest = _manifest(case)
    assert manifest["items"][0]["records"] == 1
    assert "\\xff" in manifest["items"][0]["path"]


def test_evidence_is_not_modified(tmp_path: Path) -> None:
    src = tmp_path / "ev.ndjson"
    src.write_bytes(_event(1))
    before = (src.read_bytes(), src.stat().st_mtime_ns)
    pipeline.ingest([src], tmp_path / "case")
    assert (src.read_bytes(), src.stat().st_mtime_ns) == before


def test_random_json_events_never_crash_the_readers() -> None:
    """Seeded random documents built from the keys the readers look for, with hostile values."""
    import random

    from turncoat.evidence.base import IssueLog
    from turncoat.evidence.json_reader import _emit
    from turncoat.store.writer import ColumnBuffer

    rnd = random.Random(20230329)
    keys = ["Event", "System", "EventData", "UserData", "EventID", "EventRecordID", "Channel", "Computer",
            "TimeCreated", "#attributes", "SystemTime", "Data", "#text", "winlog", "event_data", "user_data",
            "param1", "record_id", "event_id", "channel", "computer_name", "@timestamp", "Hostname", "Image",
            "ProcessId", "processid", "line", "_source", "Provider", "Name", "Value", "Execution", "hits", "events"]
    leaves = [None, True, 0, -1, 2**70, 1.5e300, "", "x", "2023-03-01T10:00:00Z", "1601-01-01T00:00:00Z",
              "9999-99-99T99:99:99Z", "\u202e", -(2**63), 2**63 - 1]

    def value(depth: int = 0):
        roll = rnd.random()
        if depth < 4 and roll < 0.35:
            return {rnd.choice(keys): value(depth + 1) for _ in range(rnd.randint(0, 6))}
        if depth < 4 and roll < 0.45:
            return [value(depth + 1) for _ in range(rnd.randint(0, 4))]
        return rnd.choice(leaves)

    rows: list[dict] = []
    issues = IssueLog()
    for number in range(5000):
        doc = value()
        if isinstance(doc, dict):
            _emit(doc, "e", rows.append, issues, line=number, offset=0)
    buffer = ColumnBuffer()
    for seq, row in enumerate(rows):
        row["seq"] = seq
        buffer.add(row)
    table, _ = buffer.to_table()
    assert table.num_rows == len(rows) > 0 and issues.count > 0
