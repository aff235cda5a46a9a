"""Bad network evidence through the whole ingest: every problem named with its file and position,
counted in the manifest, and the rest of the folder still read.

Reader-level cases are in the tests of each reader; here a collection mixes them, as a technician's
folder would.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import orjson
from conftest import shared

from turncoat import pipeline

HEADER = (
    "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
    "#open\t2023-03-20-10-00-00\n"
    "#fields\tts\tuid\tid.orig_h\tid.orig_p\tid.resp_h\tid.resp_p\tproto\n"
    "#types\ttime\tstring\taddr\tport\taddr\tport\tenum\n"
)


def _conn_rows(n: int, orig: str = "10.0.0.5", resp: str = "203.0.113.9") -> str:
    return "".join(f"{1679306400 + i}.000000\tC{i}\t{orig}\t{40000 + i}\t{resp}\t443\ttcp\n" for i in range(n))


def _items(case: Path) -> tuple[dict[str, dict], dict]:
    """Manifest items by their path below the evidence folder (`evidence/x/y.log` → `x/y.log`)."""
    manifest = orjson.loads((case / "manifest.json").read_bytes())
    return {i["path"].replace("\\", "/").split("evidence/", 1)[-1]: i for i in manifest["items"]}, manifest


def test_a_mixed_bad_collection_is_read_around_its_problems(tmp_path: Path) -> None:
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    good = HEADER + _conn_rows(50) + "#close\t2023-03-20-11-00-00\n"
    (evidence / "conn.log").write_text(good, encoding="utf-8")
    # a rotated log cut short: the readable part is read, the cut is reported
    packed = gzip.compress((HEADER + _conn_rows(400, orig="10.0.0.6")).encode())
    (evidence / "conn.10:00:00-11:00:00.log.gz").write_bytes(packed[: len(packed) * 2 // 3])
    # prose named like a Zeek log, binary junk named like a DNS log
    (evidence / "notes").mkdir()
    (evidence / "notes" / "conn.log").write_text("Lorem ipsum dolor sit amet.\n" * 40, encoding="utf-8")
    (evidence / "dns.log").write_bytes(os.urandom(4096))
    # IPv6 everywhere, and a row whose column count is wrong in the middle
    v6 = HEADER + _conn_rows(3, orig="FE80:0:0:0:0:0:0:1", resp="2001:DB8::1") + "1679306500.0\tCx\t10.0.0.7\n"
    v6 += _conn_rows(2, orig="fd00::5", resp="2001:db8::2")
    (evidence / "conn-v6.log").write_text(v6, encoding="utf-8")
    case = tmp_path / "case"
    result = pipeline.ingest([evidence], case)
    items, manifest = _items(case)

    assert items["conn.log"]["status"] == "read" and items["conn.log"]["records"] == 50
    rotated = items["conn.10:00:00-11:00:00.log.gz!conn.10:00:00-11:00:00.log"]
    assert rotated["status"] == "read" and 0 < rotated["records"] < 400
    damaged = [p for p in manifest["problems"] if p["path"].endswith(".log.gz!conn.10:00:00-11:00:00.log")]
    assert damaged and "damaged" in damaged[0]["message"]
    prose = items["notes/conn.log"]
    assert prose["status"] == "unknown-format" and prose["records"] == 0
    assert items["dns.log"]["status"] == "unknown-format"
    v6_item = items["conn-v6.log"]
    assert v6_item["records"] == 5 and v6_item["issue_count"] == 1
    assert v6_item["issues"][0]["line"] == 12
    assert any("conn-v6.log" in m for m in result.messages)

    import duckdb

    con = duckdb.connect(str(case / "case.duckdb"), read_only=True)
    try:
        sources = {r[0] for r in con.execute('SELECT DISTINCT "source.ip" FROM net_flow').fetchall()}
    finally:
        con.close()
    assert {"fe80::1", "fd00::5", "10.0.0.5", "10.0.0.6"} <= sources


def test_real_zeek_oddities_in_place() -> None:
    """zat's corrupt gzip is reported (not fatal); the header-only log is read with no rows."""
    corrupt = shared("zeek", "zat", "data", "http.log.corrupt.gz")
    empty = shared("zeek", "zat", "data", "http_empty.log")
    assert corrupt.exists() and empty.exists()


def test_zat_odd_files_through_ingest(tmp_path: Path) -> None:
    folder = tmp_path / "zat"
    folder.mkdir()
    for name in ("http.log.corrupt.gz", "http_empty.log", "http.log.gz"):
        (folder / name).write_bytes(shared("zeek", "zat", "data", name).read_bytes())
    case = tmp_path / "case"
    pipeline.ingest([folder], case)
    manifest = orjson.loads((case / "manifest.json").read_bytes())
    by_path = {i["path"]: i for i in manifest["items"]}
    empty = next(i for p, i in by_path.items() if p.endswith("http_empty.log"))
    assert empty["records"] == 0 and empty["status"] == "read" and not empty["issue_count"]
    good = next(i for p, i in by_path.items() if p.endswith("http.log.gz!http.log"))
    assert good["records"] > 0
    corrupt_rows = [i for p, i in by_path.items() if "corrupt" in p and "!" in p]
    problems = [p for p in manifest["problems"] if "corrupt" in p["path"]]
    # the damage is named; what came out before it is read, never silently more or less
    assert problems or all(i["issue_count"] for i in corrupt_rows)


def test_nul_padding_after_a_gzip_member_is_not_damage(tmp_path: Path) -> None:
    folder = tmp_path / "evidence"
    folder.mkdir()
    (folder / "conn.log.gz").write_bytes(gzip.compress((HEADER + _conn_rows(20)).encode()) + b"\0" * 512)
    case = tmp_path / "case"
    pipeline.ingest([folder], case)
    items, manifest = _items(case)
    assert items["conn.log.gz!conn.log"]["records"] == 20
    assert not manifest["problems"]
