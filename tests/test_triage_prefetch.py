"""Prefetch reader against real files of every format version, and the simulator's writer round trip.

Expected values are what upstream projects assert in their own tests (plaso
tests/parsers/winprefetch.py, EricZimmerman/Prefetch Prefetch.Test/TestVersion*.cs) or what
shared/data/artifacts/SOURCES.md records for the DFIR Artifact Museum hosts.
"""

from __future__ import annotations

import io
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyscca
import pytest
from conftest import shared

from turncoat.evidence.base import IssueLog
from turncoat.simulate.prefetch_writer import (
    build_prefetch,
    prefetch_filename,
    scca_hash,
    volume_guid_path,
)
from turncoat.store.schema import TRIAGE_TABLES
from turncoat.triage.prefetch import is_prefetch, read_prefetch

COLUMNS = set(TRIAGE_TABLES["tri_execution"]) | {"ts"}


def _read(*parts: str) -> tuple[list[dict], IssueLog]:
    issues = IssueLog()
    rows = read_prefetch(shared("artifacts", *parts), issues)
    return rows, issues


def _utc(text: str) -> datetime:
    """An upstream timestamp (any offset) as UTC, cut to the microsecond like the reader."""
    return datetime.fromisoformat(text).astimezone(UTC)


# (folder, file, version, run count, last run as upstream states it, first volume serial)
UPSTREAM = [
    # plaso tests/parsers/winprefetch.py
    ("plaso/prefetch", "CMD.EXE-087B4001.pf", 17, None, "2013-03-10T10:11:49.281250+00:00", "24CB074B"),
    ("plaso/prefetch", "PING.EXE-B29F6629.pf", 23, 14, "2012-04-06T19:00:55.932955+00:00", "AC036525"),
    ("plaso/prefetch", "WUAUCLT.EXE-830BCC14.pf", 23, 25, "2012-03-15T21:17:39.807996+00:00", "AC036525"),
    ("plaso/prefetch", "TASKHOST.EXE-3AE259FC.pf", 26, 4, "2013-10-04T15:40:09.037833+00:00", "686C4249"),
    ("plaso/prefetch", "BYTECODEGENERATOR.EXE-C1E9BCE6.pf", 30, 7, "2015-05-14T22:11:58.091134+00:00",
     "3E0D2D25"),
    ("plaso/prefetch", "ONEDRIVE.EXE-7E152375.pf", 30, 2, "2015-05-14T22:11:05.485277+00:00", "3E0D2D25"),
    ("plaso/prefetch", "NOTEPAD.EXE-D8414F97.pf", 30, 2, "2019-06-05T19:55:04.877778+00:00", "2CA3D1AE"),
    ("plaso/prefetch", "AM_DELTA_PATCH_1.443.990.0.EX-7037CF86.pf", 31, 1, None, "BC1F1BFC"),
    # EricZimmerman/Prefetch TestVersion17/23/26/30.cs (times there are in -07:00)
    ("ez-prefetch/XPPro", "CALC.EXE-02CD573A.pf", 17, 3, "2016-01-13T15:05:51.281250-07:00",
     "E0F7E847"),
    ("ez-prefetch/Vista", "EXPLORER.EXE-7A3328DA.pf", 23, 1, "2016-01-16T13:02:00.832676-07:00",
     "E8EAB8B5"),
    ("ez-prefetch/Win7", "CALC.EXE-77FDF17F.pf", 23, 2, "2016-01-16T13:27:01.196750-07:00",
     "88008C2F"),
    ("ez-prefetch/Win8x", "CALC.EXE-77FDF17F.pf", 26, 2, "2016-01-16T14:10:26.058341-07:00",
     "C6EE7444"),
    ("ez-prefetch/Win8x", "_CMD.EXE-4A81B364.pf", 26, 2, "2016-01-16T14:25:41.534117-07:00",
     "A26E529A"),
    ("ez-prefetch/Win10", "CHROME.EXE-B3BA7868.pf", 30, 20, "2016-01-13T11:06:55.334457-07:00",
     "8C9F49EC"),
    ("ez-prefetch/Win10", "DEVENV.EXE-854D7862.pf", 30, 54, "2016-01-13T09:50:34.657841-07:00",
     "8C9F49EC"),
    ("ez-prefetch/Win10", "DCODEDCODEDCODEDCODEDCODEDCOD-E65B9FE8.pf", 30, 2,
     "2016-01-13T15:47:25.748075-07:00", "66F451BC"),
    ("ez-prefetch/Win10", "CMD.EXE-D269B812.pf", 30, 55, None, None),   # SOURCES.md: 55 runs
]


@pytest.mark.parametrize(("folder", "name", "version", "runs", "last", "serial"), UPSTREAM,
                         ids=[f"{u[0]}/{u[1]}" for u in UPSTREAM])
def test_upstream_ground_truth(folder, name, version, runs, last, serial):
    rows, issues = _read(*folder.split("/"), name)
    assert issues.count == 0
    assert rows and all(set(row) == COLUMNS for row in rows)
    first = rows[0]
    assert first["prefetch.run_index"] == 0
    assert first["prefetch.version"] == version
    assert first["prefetch.hash"] == name.rsplit("-", 1)[1][:8]
    assert first["event.action"] == "run"
    if runs is not None:
        assert first["prefetch.run_count"] == runs
        assert len(rows) == min(runs, 8 if version >= 26 else 1)
    if last is not None:
        assert first["ts"] == _utc(last)
    if serial is not None:
        assert first["prefetch.volume_serial"] == serial


def test_taskhost_keeps_every_previous_run_time():
    rows, _ = _read("plaso", "prefetch", "TASKHOST.EXE-3AE259FC.pf")
    # plaso: last run 15:40:09.0378333 and previous runs, newest first
    assert [r["ts"] for r in rows] == [
        datetime(2013, 10, 4, 15, 40, 9, 37833, tzinfo=UTC),
        datetime(2013, 10, 4, 15, 28, 9, 10356, tzinfo=UTC),
        datetime(2013, 10, 4, 6, 19, 54, 596060, tzinfo=UTC),
        datetime(2013, 10, 4, 6, 11, 13, 642937, tzinfo=UTC),
    ]
    assert [r["prefetch.run_index"] for r in rows] == [0, 1, 2, 3]
    loaded = rows[0]["prefetch.loaded"].split("|")
    assert len(loaded) == 51
    assert rows[0]["process.executable"] == "\\DEVICE\\HARDDISKVOLUME2\\WINDOWS\\SYSTEM32\\TASKHOST.EXE"


def test_loaded_file_lists_match_plaso():
    cmd, _ = _read("plaso", "prefetch", "CMD.EXE-087B4001.pf")
    loaded = cmd[0]["prefetch.loaded"].split("|")
    assert len(loaded) == 33
    assert loaded[3] == "\\DEVICE\\HARDDISKVOLUME1\\WINDOWS\\SYSTEM32\\LOCALE.NLS"
    assert loaded[-1] == "\\DEVICE\\HARDDISKVOLUME1\\WINDOWS\\IE7\\SPUNINST\\IERESETICONS.EXE"
    for name, count in (("BYTECODEGENERATOR.EXE-C1E9BCE6.pf", 1085), ("ONEDRIVE.EXE-7E152375.pf", 134),
                        ("NOTEPAD.EXE-D8414F97.pf", 56)):
        rows, _ = _read("plaso", "prefetch", name)
        assert len(rows[0]["prefetch.loaded"].split("|")) == count


def test_truncated_executable_name_still_finds_the_program():
    rows, _ = _read("plaso", "prefetch", "AM_DELTA_PATCH_1.443.990.0.EX-7037CF86.pf")
    assert rows[0]["process.name"] == "AM_DELTA_PATCH_1.443.990.0.EX"
    assert rows[0]["process.executable"].endswith(
        "\\WINDOWS\\SOFTWAREDISTRIBUTION\\DOWNLOAD\\INSTALL\\AM_DELTA_PATCH_1.443.990.0.EXE")
    assert rows[0]["ts"].date().isoformat() == "2026-02-04"   # SOURCES.md


def test_every_prefetch_file_in_the_shared_data_parses():
    root = shared("artifacts")
    versions: Counter = Counter()
    failed = []
    for path in sorted(root.rglob("*.pf")):
        issues = IssueLog()
        rows = read_prefetch(path, issues)
        if rows:
            versions[rows[0]["prefetch.version"]] += 1
        else:
            failed.append(path.name)
    # plaso 1 + EZ XPPro 7; plaso 2 + Vista 4 + Win7 9; plaso 1 + Win8x 12;
    # plaso 3 + EZ Win10 6 + artemis 10 + museum 191 + 31; plaso's single v31 file
    assert versions == {17: 8, 23: 15, 26: 13, 30: 241, 31: 1}
    assert sorted(failed) == ["bad_compression.pf", "malformed.pf", "notAPrefetch.pf"]


def test_apt_simulator_host_shows_the_attack_tools():
    folder = ("dfir-artifact-museum", "win10_APTSimulatorVM", "prefetch")
    p_exe, _ = _read(*folder, "P.EXE-07691575.pf")
    assert p_exe[0]["process.name"] == "P.EXE"
    assert p_exe[0]["prefetch.run_count"] == 7
    assert len(p_exe) == 7
    assert p_exe[0]["ts"].replace(microsecond=0) == datetime(2022, 3, 10, 20, 41, 24, tzinfo=UTC)
    assert p_exe[0]["process.executable"].endswith("\\TMP\\P.EXE")
    nbtscan, _ = _read(*folder, "NBTSCAN.EXE-50688432.pf")
    assert nbtscan[0]["prefetch.run_count"] == 3
    assert nbtscan[0]["ts"].replace(microsecond=0) == datetime(2022, 3, 10, 20, 38, 1, tzinfo=UTC)


def test_all_museum_runs_fall_in_the_documented_window():
    root = shared("artifacts", "dfir-artifact-museum", "win10_APTSimulatorVM", "prefetch")
    newest = max(read_prefetch(path, IssueLog())[0]["ts"] for path in root.glob("*.pf"))
    assert newest.replace(microsecond=0) == datetime(2022, 3, 10, 21, 40, 49, tzinfo=UTC)


@pytest.mark.parametrize(("parts", "expected"), [
    (("ez-prefetch", "Bad", "notAPrefetch.pf"), "not a Prefetch file"),
    (("artemis", "prefetch", "bad_data", "bad_compression.pf"), "could not be decompressed"),
    (("artemis", "prefetch", "bad_data", "malformed.pf"), "is corrupt"),
    (("dfir-artifact-museum", "win11_RathbunVM2", "prefetch", "cadrespri.7db"), "not a Prefetch"),
])
def test_bad_files_give_a_clear_message(parts, expected):
    rows, issues = _read(*parts)
    assert rows == []
    assert issues.count == 1
    assert expected in issues.listed[0].message


def test_empty_truncated_and_missing_files(tmp_path: Path):
    empty = tmp_path / "EMPTY.EXE-00000000.pf"
    empty.write_bytes(b"")
    issues = IssueLog()
    assert read_prefetch(empty, issues) == []
    assert "empty file" in issues.listed[0].message

    real = shared("artifacts", "plaso", "prefetch", "NOTEPAD.EXE-D8414F97.pf").read_bytes()
    for size in (6, 10, 200, len(real) // 2):
        cut = tmp_path / f"CUT{size}.pf"
        cut.write_bytes(real[:size])
        issues = IssueLog()
        assert read_prefetch(cut, issues) == []
        assert issues.count == 1

    issues = IssueLog()
    assert read_prefetch(tmp_path / "absent.pf", issues) == []
    assert "cannot read file" in issues.listed[0].message


def test_unknown_version_is_reported(tmp_path: Path):
    path = tmp_path / "X.pf"
    path.write_bytes((99).to_bytes(4, "little") + b"SCCA" + bytes(200))
    issues = IssueLog()
    assert read_prefetch(path, issues) == []
    assert "unsupported Prefetch format version 99" in issues.listed[0].message


def test_is_prefetch_sniffs_both_forms():
    assert is_prefetch(b"\x11\0\0\0SCCA\x0f\0\0\0")
    assert is_prefetch(b"MAM\x04\x00\x4d\x00\x00")
    assert not is_prefetch(b"\x1e\0\0\0SDCA")
    assert not is_prefetch(b"MZ\x90\0")
    assert not is_prefetch(b"")


# --- the simulator's writer ---

def test_scca_hash_reproduces_real_prefetch_names():
    # device paths whose hashes are in real file names (museum APT Simulator host, EZ Win7)
    assert scca_hash("\\DEVICE\\HARDDISKVOLUME3\\TMP\\P.EXE") == 0x07691575
    assert scca_hash("\\DEVICE\\HARDDISKVOLUME3\\TMP\\NBTSCAN.EXE") == 0x50688432
    assert scca_hash("\\DEVICE\\HARDDISKVOLUME2\\WINDOWS\\SYSTEM32\\NOTEPAD.EXE") == 0xD8414F97
    assert scca_hash("\\DEVICE\\HARDDISKVOLUME1\\WINDOWS\\SYSTEM32\\PING.EXE") == 0xB29F6629
    assert prefetch_filename("C:\\TMP\\p.exe", 0x07691575) == "P.EXE-07691575.pf"


def test_volume_guid_path_matches_windows_10_form():
    # plaso NOTEPAD.EXE-D8414F97.pf: volume created 2017-07-30T19:40:03.5487843, serial 2CA3D1AE
    created = datetime(2017, 7, 30, 19, 40, 3, 548784, tzinfo=UTC)
    assert volume_guid_path(created, 0x2CA3D1AE).startswith("\\VOLUME{01d3096ba3a4")
    assert volume_guid_path(created, 0x2CA3D1AE).endswith("-2ca3d1ae}")


def test_writer_round_trip(tmp_path: Path):
    created = datetime(2021, 6, 1, 8, 30, 0, 250000, tzinfo=UTC)
    serial = 0x5A3C9E11
    volume = volume_guid_path(created, serial)
    start = datetime(2023, 3, 29, 9, 12, 7, 123456, tzinfo=UTC)
    runs = [start + timedelta(hours=5 * i, microseconds=i) for i in range(10)]
    app = "C:\\Users\\alice\\AppData\\Local\\Programs\\3CXDesktopApp\\3CXDesktopApp.exe"
    loaded = ["C:\\Windows\\System32\\ntdll.dll",
              "C:\\Users\\alice\\AppData\\Local\\Programs\\3CXDesktopApp\\ffmpeg.dll",
              "C:\\Users\\alice\\AppData\\Local\\Programs\\3CXDesktopApp\\d3dcompiler_47.dll"]
    exe_hash = scca_hash("\\DEVICE\\HARDDISKVOLUME3" + app[2:].upper())
    data = build_prefetch(app, runs, 14, loaded, volume, serial, created, prefetch_hash=exe_hash)
    path = tmp_path / prefetch_filename(app, exe_hash)
    path.write_bytes(data)

    stored = [
        f"{volume}\\WINDOWS\\SYSTEM32\\NTDLL.DLL",
        f"{volume}\\USERS\\ALICE\\APPDATA\\LOCAL\\PROGRAMS\\3CXDESKTOPAPP\\3CXDESKTOPAPP.EXE",
        f"{volume}\\USERS\\ALICE\\APPDATA\\LOCAL\\PROGRAMS\\3CXDESKTOPAPP\\FFMPEG.DLL",
        f"{volume}\\USERS\\ALICE\\APPDATA\\LOCAL\\PROGRAMS\\3CXDESKTOPAPP\\D3DCOMPILER_47.DLL",
    ]
    newest_eight = sorted(runs, reverse=True)[:8]

    scca = pyscca.file()
    scca.open_file_object(io.BytesIO(data))
    assert scca.format_version == 30
    assert scca.executable_filename == "3CXDESKTOPAPP.EXE"
    assert scca.prefetch_hash == exe_hash
    assert scca.run_count == 14
    assert list(scca.filenames) == stored
    assert [scca.get_last_run_time(i).replace(tzinfo=UTC) for i in range(8)] == newest_eight
    volume_info = scca.get_volume_information(0)
    assert volume_info.serial_number == serial
    assert volume_info.device_path == volume
    assert volume_info.creation_time.replace(tzinfo=UTC) == created
    scca.close()

    issues = IssueLog()
    rows = read_prefetch(path, issues)
    assert issues.count == 0
    assert [r["ts"] for r in rows] == newest_eight
    assert {r["process.name"] for r in rows} == {"3CXDESKTOPAPP.EXE"}
    assert rows[0]["process.executable"] == stored[1]
    assert rows[0]["prefetch.loaded"] == "|".join(stored)
    assert rows[0]["prefetch.volume_serial"] == "5A3C9E11"
    assert rows[0]["prefetch.hash"] == f"{exe_hash:08X}"
    assert rows[0]["prefetch.run_count"] == 14


def test_writer_with_no_run_time_still_yields_one_row(tmp_path: Path):
    created = datetime(2021, 6, 1, tzinfo=UTC)
    data = build_prefetch("C:\\TMP\\p.exe", [], 3, [], "\\DEVICE\\HARDDISKVOLUME3", 0x1234, created)
    path = tmp_path / "P.EXE-07691575.pf"
    path.write_bytes(data)
    issues = IssueLog()
    rows = read_prefetch(path, issues)
    assert len(rows) == 1 and rows[0]["ts"] is None and rows[0]["prefetch.run_count"] == 3
    assert rows[0]["prefetch.hash"] == "07691575"       # default: hash of the program's device path
    assert rows[0]["process.executable"] == "\\DEVICE\\HARDDISKVOLUME3\\TMP\\P.EXE"
    assert "no run time" in issues.listed[0].message


def test_writer_rejects_inconsistent_input():
    created = datetime(2021, 6, 1, tzinfo=UTC)
    with pytest.raises(ValueError):
        build_prefetch("a.exe", [created, created], 1, [], "\\DEVICE\\HARDDISKVOLUME1", 1, created)
    with pytest.raises(ValueError):
        build_prefetch("a.exe", [datetime(2023, 1, 1)], 1, [], "\\DEVICE\\HARDDISKVOLUME1", 1,
                       created)


@pytest.mark.parametrize("number_of_files", [0, 40, 1500])   # 1500 names: more than one 64 KiB chunk
def test_writer_mam_compressed_round_trip(tmp_path: Path, number_of_files: int):
    created = datetime(2022, 1, 5, tzinfo=UTC)
    runs = [datetime(2023, 3, 29, 10, 1, 2, 345678, tzinfo=UTC)]
    loaded = [f"C:\\Windows\\System32\\lib{i:05d}.dll" for i in range(number_of_files)]
    plain = build_prefetch("C:\\TMP\\p.exe", runs, 1, loaded, "\\DEVICE\\HARDDISKVOLUME3", 7, created)
    packed = build_prefetch("C:\\TMP\\p.exe", runs, 1, loaded, "\\DEVICE\\HARDDISKVOLUME3", 7, created,
                            compress=True)
    assert packed[:4] == b"MAM\x04" and int.from_bytes(packed[4:8], "little") == len(plain)
    assert len(packed) < len(plain)
    path = tmp_path / "P.EXE-07691575.pf"
    path.write_bytes(packed)
    issues = IssueLog()
    rows = read_prefetch(path, issues)
    assert issues.count == 0
    assert rows[0]["ts"] == runs[0]
    assert len(rows[0]["prefetch.loaded"].split("|")) == number_of_files + 1
    assert rows[0]["prefetch.loaded"].endswith(f"LIB{number_of_files - 1:05d}.DLL" if number_of_files
                                               else "\\TMP\\P.EXE")


def test_huffman_code_lengths_are_limited_and_complete():
    from collections import Counter

    from turncoat.simulate.prefetch_writer import _code_lengths

    fibonacci = [1, 1]
    while len(fibonacci) < 24:                  # skewed counts give a 23-bit Huffman code unlimited
        fibonacci.append(fibonacci[-1] + fibonacci[-2])
    lengths = _code_lengths(Counter(dict(enumerate(fibonacci))))
    assert max(lengths.values()) <= 15
    assert sum(2.0 ** -length for length in lengths.values()) == 1.0
