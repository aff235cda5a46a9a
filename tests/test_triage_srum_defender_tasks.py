"""SRUM, Defender DetectionHistory/MPLog and scheduled-task readers against real third-party data.

Ground truth is from the shared data's artifacts/SOURCES.md (§1 DFIR Artifact Museum, §6 plaso and
artemis) and the upstream tests it cites; figures marked "computed" were checked by hand against
the bytes (hex dumps) while writing these readers.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path, PureWindowsPath

import pytest
from conftest import shared

from turncoat.evidence.base import IssueLog
from turncoat.store.schema import TRIAGE_TABLES
from turncoat.triage.defender import (
    is_detection_history,
    is_mplog,
    read_detection_history,
    read_mplog,
)
from turncoat.triage.srum import ese_state, is_ese, read_srum, sid_text
from turncoat.triage.tasks import (
    is_job,
    is_task_xml,
    read_job,
    read_task_xml,
    task_date,
)

MUSEUM = "dfir-artifact-museum"


def _museum(*parts: str) -> Path:
    return shared("artifacts", MUSEUM, *parts)


def _columns_ok(rows: list[dict], table: str) -> None:
    allowed = set(TRIAGE_TABLES[table]) | {"ts"}
    for row in rows:
        assert set(row) <= allowed, set(row) - allowed
        assert row["ts"] is None or row["ts"].tzinfo is not None


# --- SRUM ---------------------------------------------------------------------------------------


def test_srum_win10_clean_matches_ground_truth(tmp_path: Path) -> None:
    issues = IssueLog()
    rows, summary = read_srum(_museum("win10_APTSimulatorVM", "srum", "SRUDB.dat"), issues, tmp_path)
    assert issues.count == 0
    assert summary["state"] == "clean"
    assert summary["network_table"] is True
    assert summary["network_rows"] == 96 and len(rows) == 96
    assert summary["app_resource_rows"] == 1660
    # 527 id-map entries name an app/service/package; with the 186 user SIDs and the two empty
    # entries the table holds 714 (computed; ids 1..714 are contiguous).
    assert summary["id_map_names"] == 527
    assert summary["id_map"] == 714
    assert summary["first"] == "2022-03-10T16:35:00+00:00"
    assert summary["last"] == "2022-03-10T21:10:00+00:00"
    _columns_ok(rows, "tri_srum_net")
    executables = {row["process.executable"] for row in rows}
    assert "\\device\\harddiskvolume3\\tmp\\nbtscan.exe" in executables
    first, last = datetime(2022, 3, 10, 16, 35, tzinfo=UTC), datetime(2022, 3, 10, 21, 10, tzinfo=UTC)
    assert all(first <= row["ts"] <= last for row in rows)
    assert all(row["network.bytes_sent"] >= 0 and row["network.bytes_received"] >= 0 for row in rows)
    assert any(row["user.id"] == "S-1-5-18" for row in rows)  # LocalSystem, decoded from its binary SID
    interfaces = [row["network.interface"] for row in rows]
    assert interfaces.count("ethernet (0x6008001000000)") == 94  # a wired VM (computed)
    assert interfaces.count(None) == 2  # InterfaceLuid 0
    assert list(tmp_path.iterdir()) == []  # the scratch copy is gone


def test_srum_win11_dirty_is_read_and_reported(tmp_path: Path) -> None:
    issues = IssueLog()
    rows, summary = read_srum(_museum("win11_RathbunVM", "srum_dirty", "SRUDB.dat"), issues, tmp_path)
    assert summary["state"] == "dirty"
    assert summary["id_map_names"] == 829
    assert any("dirty" in issue.message for issue in issues.listed)
    assert rows and summary["network_rows"] == len(rows)
    assert summary["first"].startswith("2022-05-28") and summary["last"].startswith("2022-07-03")


def test_srum_server_has_no_network_table(tmp_path: Path) -> None:
    issues = IssueLog()
    db = _museum("server2022_APTSimulatorVM", "srum_1daylater", "SRU", "SRUDB.dat")
    rows, summary = read_srum(db, issues, tmp_path)
    assert rows == [] and issues.count == 0
    assert summary["network_table"] is False and summary["state"] == "clean"
    assert summary["tables"] == 8
    assert summary["first"] == "2023-10-18T03:30:00+00:00"
    assert summary["last"] == "2023-10-18T12:12:00+00:00"


def test_srum_header_helpers() -> None:
    head = _museum("win11_RathbunVM", "srum_dirty", "SRUDB.dat").read_bytes()[:4096]
    assert is_ese(head) and ese_state(head) == "dirty"
    assert not is_ese(b"regf" + b"\x00" * 100)
    assert sid_text(bytes.fromhex("010100000000000512000000")) == "S-1-5-18"
    assert sid_text(b"\x01\x05\x00") is None


@pytest.mark.parametrize("content", [b"", b"\x00" * 3, "ESE_TRUNC", "ESE_GARBAGE"])
def test_srum_broken_databases_give_issues(tmp_path: Path, content: object) -> None:
    real = _museum("win10_APTSimulatorVM", "srum", "SRUDB.dat").read_bytes()
    data = {"ESE_TRUNC": real[:16384], "ESE_GARBAGE": real[:8192] + b"\xa5" * 65536}.get(content, content)
    evidence = tmp_path / "SRUDB.dat"
    evidence.write_bytes(data)  # type: ignore[arg-type]
    issues = IssueLog()
    rows, summary = read_srum(evidence, issues, tmp_path / "scratch")
    assert rows == [] and issues.count >= 1 and summary["network_rows"] == 0
    assert all(issue.message for issue in issues.listed)


def test_srum_truncated_copies_are_reported(tmp_path: Path) -> None:
    """pyesedb skips unreadable pages silently; the reader must still say the data is partial."""
    real = _museum("win10_APTSimulatorVM", "srum", "SRUDB.dat").read_bytes()
    odd = tmp_path / "odd" / "SRUDB.dat"
    odd.parent.mkdir()
    odd.write_bytes(real[:200_000])
    issues = IssueLog()
    read_srum(odd, issues, tmp_path / "scratch")
    assert any("not a whole number of 4096-byte pages" in i.message for i in issues.listed)
    # cut on a page boundary, past the network table but before the id map's pages (computed)
    paged = tmp_path / "paged" / "SRUDB.dat"
    paged.parent.mkdir()
    paged.write_bytes(real[:196 * 4096])
    issues = IssueLog()
    rows, _ = read_srum(paged, issues, tmp_path / "scratch")
    assert len(rows) == 96  # what could be read is returned
    assert any("SruDbIdMapTable does not resolve" in i.message for i in issues.listed)


# --- Defender DetectionHistory ----------------------------------------------------------------


def test_detection_history_plaso_container_detection() -> None:
    path = shared("artifacts", "plaso", "defender", "DetectionHistory", "6AFE33A0-19BA-4FFF-892F-B700539D7D63")
    assert is_detection_history(path.read_bytes()[:4096])
    issues = IssueLog()
    rows = read_detection_history(path, issues)
    assert issues.count == 0
    _columns_ok(rows, "tri_defender")
    assert {row["threat.name"] for row in rows} == {"Virus:DOS/EICAR_Test_File"}
    paths = [row["file.path"] for row in rows]
    assert paths == ["C:\\Users\\testuser\\Downloads\\eicar_com.zip",
                     "C:\\Users\\testuser\\Downloads\\eicar_com.zip->eicar.com"]
    # plaso: recorded_time 2022-07-22T05:36:18.9094421 (100 ns; we keep microseconds)
    assert all(row["ts"] == datetime(2022, 7, 22, 5, 36, 18, 909442, tzinfo=UTC) for row in rows)
    assert all(row["event.action"] == "detected" for row in rows)


def test_detection_history_plaso_webfile_detection() -> None:
    path = shared("artifacts", "plaso", "defender", "DetectionHistory", "FC380697-A68D-4C94-B67F-9B6449039463")
    issues = IssueLog()
    rows = read_detection_history(path, issues)
    assert issues.count == 0
    assert len(rows) == 1  # the webfile resource names the same file and is not repeated
    row = rows[0]
    assert row["threat.name"] == "PUA:Win32/EICAR_Test_File"
    assert row["file.path"] == "C:\\Users\\testuser\\Downloads\\PotentiallyUnwanted.exe"
    # the file resource's own start time; plaso reports the webfile resource's, 176 ms later
    assert row["ts"] == datetime(2022, 7, 22, 5, 32, 27, 654741, tzinfo=UTC)
    plaso_recorded = datetime(2022, 7, 22, 5, 32, 27, 830278, tzinfo=UTC)
    assert timedelta(0) < plaso_recorded - row["ts"] < timedelta(seconds=1)


def _museum_detections() -> list[dict]:
    root = _museum("win10_APTSimulatorVM", "defender", "Scans", "History", "Service", "DetectionHistory")
    rows: list[dict] = []
    issues = IssueLog()
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert len(files) == 14
    for path in files:
        rows.extend(read_detection_history(path, issues))
    assert issues.count == 0
    return rows


def test_detection_history_museum_threats() -> None:
    rows = _museum_detections()
    _columns_ok(rows, "tri_defender")
    names = {row["threat.name"] for row in rows}
    assert names >= {
        "HackTool:Win32/DumpLsass.E", "Trojan:Win32/Ceprolad.A", "Backdoor:PowerShell/Powercat.A",
        "Trojan:MSIL/Cryptor", "Trojan:Win32/ReverseShell!ml", "Behavior:Win32/AccessibilityEscalation.F",
        "HackTool:Win32/Vigorf.A", "Trojan:BAT/Vigorf.A",
    }
    by_threat = {row["threat.name"]: row for row in rows}
    assert by_threat["HackTool:Win32/DumpLsass.E"]["process.command_line"] == (
        "C:\\Users\\Public\\procdump64.exe -accepteula -ma lsass.exe C:\\TMP\\somethingwindows.dmp")
    assert by_threat["HackTool:Win32/DumpLsass.E"]["file.path"] is None
    assert "certutil.exe -urlcache" in by_threat["Trojan:Win32/Ceprolad.A"]["process.command_line"]
    assert by_threat["Backdoor:PowerShell/Powercat.A"]["file.path"] == "C:\\TMP\\nc.ps1"
    assert by_threat["Trojan:MSIL/Cryptor"]["file.path"] == "C:\\TMP\\xCmd.exe"
    assert by_threat["Trojan:Win32/ReverseShell!ml"]["file.path"] == "C:\\TMP\\schtasks-backdoor.ps1"
    ifeo = [r["file.path"] for r in rows if r["threat.name"] == "Behavior:Win32/AccessibilityEscalation.F"]
    assert any(p and p.startswith("regkeyvalue:_HKLM\\SOFTWARE\\Microsoft\\Windows NT\\CurrentVersion"
                                  "\\Image File Execution Options\\sethc.exe") for p in ifeo)
    day = datetime(2022, 3, 10, tzinfo=UTC)
    assert all(day <= row["ts"] < day + timedelta(days=1) for row in rows)


def test_detection_history_times_agree_with_mplog() -> None:
    """Every DetectionHistory record has a DETECTIONEVENT for the same threat in the MPLog, <1 s apart."""
    history = _museum_detections()
    log = read_mplog(_museum("win10_APTSimulatorVM", "defender", "Support", "MPLog-20220310-113238.log"),
                     IssueLog())
    detected = [r for r in log if r["event.action"] == "detected"]
    for row in history:
        gaps = [abs(row["ts"] - r["ts"]) for r in detected if r["threat.name"] == row["threat.name"]]
        assert gaps and min(gaps) < timedelta(seconds=1), row


@pytest.mark.parametrize("cut", [0, 40, 300, 1500])
def test_detection_history_truncated(tmp_path: Path, cut: int) -> None:
    source = shared("artifacts", "plaso", "defender", "DetectionHistory", "FC380697-A68D-4C94-B67F-9B6449039463")
    path = tmp_path / "FC380697"
    path.write_bytes(source.read_bytes()[:cut])
    issues = IssueLog()
    rows = read_detection_history(path, issues)
    assert issues.count >= 1
    if cut == 40:
        assert "truncated" in issues.listed[0].message
    if cut == 1500:  # threat name and first resource survive the cut
        assert rows and rows[0]["threat.name"] == "PUA:Win32/EICAR_Test_File"
        assert any("does not fit" in issue.message for issue in issues.listed)


def test_detection_history_rejects_other_files(tmp_path: Path) -> None:
    path = tmp_path / "notes"
    path.write_bytes(b"\xff\xfe" + "hello".encode("utf-16-le"))
    issues = IssueLog()
    assert read_detection_history(path, issues) == [] and issues.count == 1


# --- Defender MPLog -----------------------------------------------------------------------------


def test_mplog_win10_detections() -> None:
    path = _museum("win10_APTSimulatorVM", "defender", "Support", "MPLog-20220310-113238.log")
    assert is_mplog(path.read_bytes()[:65536])
    issues = IssueLog()
    rows = read_mplog(path, issues)
    assert issues.count == 0
    _columns_ok(rows, "tri_defender")
    # computed: 12 REALTIME + 4 SYSTEM + 4 UNKNOWN DETECTIONEVENT lines and 13 DETECTION_CLEANEVENT
    # lines, one row per non-internal resource
    assert len(rows) == 35
    actions = {row["event.action"] for row in rows}
    assert actions == {"detected", "mplog-quarantine", "mplog-remove"}
    first = rows[0]
    assert first["ts"] == datetime(2022, 3, 10, 19, 49, 22, 667000, tzinfo=UTC)
    assert first["threat.name"] == "Trojan:BAT/Vigorf.A"
    assert first["file.path"].endswith("\\test-sets\\command-and-control\\wmi-backdoor-c2.bat")
    lsass = [r for r in rows if r["threat.name"] == "HackTool:Win32/DumpLsass.E"]
    assert {r["event.action"] for r in lsass} == {"detected", "mplog-remove"}
    assert all(r["process.command_line"].endswith("lsass.exe C:\\TMP\\somethingwindows.dmp") for r in lsass)


def test_mplog_server2022_detections() -> None:
    rows = read_mplog(_museum("server2022_APTSimulatorVM", "defender", "MPLog-20231017-224350.log"), IssueLog())
    assert {r["threat.name"] for r in rows if r["event.action"] == "detected"} == {
        "Trojan:JS/SharpShooter.A", "HackTool:JS/Jsprat", "Backdoor:PowerShell/Powercat.A",
        "Backdoor:PHP/Remoteshell.V", "Trojan:Win32/Tiggre!rfn",
    }
    assert "C:\\Temp\\APTSimulator-master\\APTSimulator-master\\toolset\\nc.ps1" in {r["file.path"] for r in rows}


def test_mpdetection_bom_only_is_empty_not_an_error() -> None:
    path = _museum("win10_APTSimulatorVM", "defender", "Support", "MPDetection-20220310-113238.log")
    issues = IssueLog()
    assert read_mplog(path, issues) == [] and issues.count == 0


def test_mplog_utf8_and_bad_encoding(tmp_path: Path) -> None:
    source = _museum("win10_APTSimulatorVM", "defender", "Support", "MPLog-20220310-113238.log")
    text = source.read_bytes().decode("utf-16")
    utf8 = tmp_path / "MPLog-utf8.log"
    utf8.write_bytes(text.encode("utf-8"))
    assert is_mplog(utf8.read_bytes()[:65536])
    assert read_mplog(utf8, IssueLog()) == read_mplog(source, IssueLog())
    broken = tmp_path / "MPLog-broken.log"
    line = "2022-03-10T19:49:22.667Z DETECTIONEVENT MPSOURCE_REALTIME Trojan:X/Y file:C:\\a.exe;\r\n"
    lone_surrogate = b"\x00\xd8\r\x00\n\x00"
    broken.write_bytes(b"\xff\xfe" + lone_surrogate + line.encode("utf-16-le"))
    issues = IssueLog()
    rows = read_mplog(broken, issues)
    assert issues.count == 1 and "replaced" in issues.listed[0].message
    assert [r["file.path"] for r in rows] == ["C:\\a.exe"]


# --- scheduled tasks --------------------------------------------------------------------------


def test_all_win10_tasks_parse() -> None:
    root = _museum("win10_APTSimulatorVM", "Tasks")
    files = sorted(p for p in root.rglob("*") if p.is_file())
    assert len(files) == 202
    issues = IssueLog()
    rows = []
    for path in files:
        assert is_task_xml(path.read_bytes()[:4096]), path
        assert not is_job(path.read_bytes()[:4096]), path
        rows.extend(read_task_xml(path, issues, "\\" + str(PureWindowsPath(*path.relative_to(root).parts))))
    assert issues.count == 0
    assert len(rows) == 202  # every task here has exactly one action (112 ComHandler, 90 Exec; computed)
    _columns_ok(rows, "tri_autorun")
    assert sum(1 for r in rows if (r["autorun.command"] or "").startswith("ComHandler {")) == 112
    game_over = [r for r in rows if r["autorun.name"] == "\\GameOver"]
    assert len(game_over) == 1
    row = game_over[0]
    assert row["autorun.kind"] == "task"
    assert row["task.author"] == "DESKTOP-TMKU40H\\TestUser"
    assert row["user.name"] == "DESKTOP-TMKU40H\\TestUser"
    assert row["ts"] == datetime(2022, 3, 10, 15, 59, 3, tzinfo=UTC)
    assert row["task.trigger"] == "TimeTrigger every PT5M"
    assert row["autorun.command"] == "C:\\TMP\\mim.exe sekurlsa::LogonPasswords > C:\\TMP\\o.txt"
    google = [r for r in rows if r["autorun.name"].startswith("\\GoogleUpdateTaskMachineUA")]
    assert google[0]["autorun.command"].endswith("GoogleUpdate.exe /ua /installsource scheduler")


def test_server2022_malicious_tasks() -> None:
    issues = IssueLog()
    game_over = read_task_xml(_museum("server2022_APTSimulatorVM", "Tasks", "GameOver"), issues, "\\GameOver")
    flash = read_task_xml(_museum("server2022_APTSimulatorVM", "Tasks", "falshupdate22"), issues, "")
    assert issues.count == 0
    assert game_over[0]["task.author"] == "WIN-FUDU2CKJOE8\\Test"
    assert game_over[0]["ts"] == datetime(2023, 10, 17, 23, 4, 39, tzinfo=UTC)
    assert game_over[0]["autorun.command"].startswith("C:\\TMP\\mim.exe")
    assert flash[0]["autorun.name"] == "\\falshupdate22"  # from RegistrationInfo/URI
    assert flash[0]["ts"] == datetime(2023, 10, 17, 23, 7, 23, tzinfo=UTC)
    assert flash[0]["task.trigger"] == "TimeTrigger every PT2M"
    assert flash[0]["autorun.command"] == 'powershell.exe -WindowStyle Hidden -nop -c ""'


def test_task_xml_utf8_multi_action_and_broken(tmp_path: Path) -> None:
    source = _museum("win10_APTSimulatorVM", "Tasks", "GameOver")
    text = source.read_bytes().decode("utf-16")
    utf8 = tmp_path / "GameOver"
    utf8.write_bytes(text.replace('encoding="UTF-16"', 'encoding="UTF-8"').encode("utf-8"))
    assert is_task_xml(utf8.read_bytes())
    assert read_task_xml(utf8, IssueLog(), "\\GameOver") == read_task_xml(source, IssueLog(), "\\GameOver")

    two = tmp_path / "Two"
    second = "<Exec><Command>cmd.exe</Command><Arguments>/c whoami</Arguments></Exec></Actions>"
    two.write_bytes(text.replace("</Actions>", second, 1).encode("utf-16"))
    commands = [r["autorun.command"] for r in read_task_xml(two, IssueLog(), "\\Two")]
    assert commands == ["C:\\TMP\\mim.exe sekurlsa::LogonPasswords > C:\\TMP\\o.txt", "cmd.exe /c whoami"]

    cut = tmp_path / "Cut"
    cut.write_bytes(source.read_bytes()[:1200])
    issues = IssueLog()
    assert read_task_xml(cut, issues, "\\Cut") == []
    assert issues.count == 1 and "malformed" in issues.listed[0].message

    empty = tmp_path / "Empty"
    empty.write_bytes(b"")
    issues = IssueLog()
    assert read_task_xml(empty, issues, "\\Empty") == [] and "empty" in issues.listed[0].message

    hostile = tmp_path / "Hostile"
    hostile.write_text('<?xml version="1.0"?><!DOCTYPE t [<!ENTITY a "aaaa">]><Task>&a;</Task>')
    issues = IssueLog()
    assert read_task_xml(hostile, issues, "\\Hostile") == [] and issues.count == 1


def test_task_sniffer_wants_task_root() -> None:
    assert is_task_xml('<?xml version="1.0"?>\r\n<!-- x -->\r\n<Task version="1.2">'.encode("utf-16"))
    assert not is_task_xml(b'<?xml version="1.0"?><Project><UsingTask TaskName="x"/><Task/></Project>')
    assert not is_task_xml(b"")


def test_task_date_forms() -> None:
    assert task_date("2022-03-10T15:59:03") == datetime(2022, 3, 10, 15, 59, 3, tzinfo=UTC)
    assert task_date("2019-12-07T09:14:57.6578384") == datetime(2019, 12, 7, 9, 14, 57, 657838, tzinfo=UTC)
    assert task_date("2022-03-10T15:59:03+02:00") == datetime(2022, 3, 10, 13, 59, 3, tzinfo=UTC)
    assert task_date("$(@%SystemRoot%\\system32\\x.dll,-1)") is None


def test_plaso_job_ground_truth() -> None:
    path = shared("artifacts", "plaso", "scheduled_tasks", "wintask.job")
    assert is_job(path.read_bytes())
    issues = IssueLog()
    rows = read_job(path, issues)
    assert issues.count == 0 and len(rows) == 1
    _columns_ok(rows, "tri_autorun")
    row = rows[0]
    assert row["autorun.command"] == (
        "C:\\Program Files (x86)\\Google\\Update\\GoogleUpdate.exe /ua /installsource scheduler")
    assert row["task.author"] == "Brian"
    assert row["ts"] == datetime(2013, 8, 24, 12, 42, 0, 112000, tzinfo=UTC)
    assert row["task.trigger"] == "Daily at 15:42 from 2013-07-12 every 60 min"  # computed from the trigger bytes


def test_artemis_at_job(tmp_path: Path) -> None:
    path = shared("artifacts", "artemis", "scheduled_tasks", "win10", "At1.job")
    data = path.read_bytes()
    assert is_job(data) and not is_task_xml(data)
    rows = read_job(path, IssueLog())
    assert rows[0]["autorun.name"] == "At1.job"
    assert rows[0]["autorun.command"] == "cmd.exe"
    assert rows[0]["task.author"] == "WORKGROUP\\DESKTOP-EIS938N$"
    assert rows[0]["ts"] is None  # never ran: its last run time is all zeros
    cut = tmp_path / "At1.job"
    cut.write_bytes(data[:0x50])
    issues = IssueLog()
    assert read_job(cut, issues) == [] and "truncated" in issues.listed[0].message
    other = tmp_path / "Other.job"
    shutil.copyfile(_museum("win10_APTSimulatorVM", "Tasks", "GameOver"), other)
    issues = IssueLog()
    assert read_job(other, issues) == [] and issues.count == 1
