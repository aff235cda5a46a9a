"""Registry hives: real SYSTEM/NTUSER/Amcache hives (ground truth from the shared data's SOURCES.md
§1, §3, §5) and SOFTWARE/NTUSER/Amcache hives written by the simulator's hive writer."""

from __future__ import annotations

import lzma
import random
import shutil
import struct
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import shared
from regipy.registry import RegistryHive

from turncoat.evidence.base import IssueLog
from turncoat.simulate.hive_writer import Key, Value, build_hive, write_hive
from turncoat.store.schema import TRIAGE_TABLES
from turncoat.triage.registry import HiveFacts, base_block_checksum, is_hive, read_hive

MUSEUM = "dfir-artifact-museum"


@pytest.fixture(scope="module")
def xz_hive(tmp_path_factory: pytest.TempPathFactory):
    """Decompress a regipy test hive once per module (the SYSTEM hives unpack to 12-15 MB)."""
    folder = tmp_path_factory.mktemp("xz-hives")
    done: dict[str, Path] = {}

    def get(name: str) -> Path:
        if name not in done:
            source = shared("artifacts", "regipy", "registry", f"{name}.xz")
            target = folder / name
            target.write_bytes(lzma.decompress(source.read_bytes()))
            done[name] = target
        return done[name]

    return get


def read(path: Path, tmp_path: Path, user: str | None = None) -> tuple[HiveFacts, IssueLog]:
    issues = IssueLog()
    facts = read_hive(path, issues, tmp_path / "scratch", user=user)
    return facts, issues


def files(facts: HiveFacts) -> list[dict]:
    return [r for r in facts.rows["tri_amcache"] if r["amcache.kind"] == "file"]


def assert_schema(facts: HiveFacts) -> None:
    for table, rows in facts.rows.items():
        for row in rows:
            assert set(row) == set(TRIAGE_TABLES[table]) | {"ts"}
            assert row["ts"] is None or row["ts"].utcoffset().total_seconds() == 0


# --- Amcache -------------------------------------------------------------------------------------


def test_plaso_amcache_old_and_new_format(tmp_path: Path) -> None:
    facts, issues = read(shared("artifacts", "plaso", "amcache", "Amcache.hve"), tmp_path)
    assert facts.kind == "amcache" and issues.count == 0
    assert facts.dirty  # 41/40, no logs shipped
    assert any("no transaction logs" in n for n in facts.notes)
    by_path = {r["file.path"]: r for r in files(facts)}
    ida = by_path[r"c:\users\user\appdata\local\temp\chocolatey\is-f4510.tmp\idafree50.tmp"]
    assert ida["file.hash.sha1"] == "82274eef0911a948f91425f5e5b0e730517fe75e"   # plaso test
    assert ida["file.name"] == "idafree50.tmp"
    programs = [r["package.name"] for r in facts.rows["tri_amcache"] if r["amcache.kind"] == "program"]
    assert "FileInsight - File analysis tool" in programs
    # Both layouts are read: old Root\File entries (numeric value names) and InventoryApplicationFile.
    vmware = by_path[r"c:\users\user\appdata\local\temp\vmware-user\000052fe\setup64.exe"]
    assert (vmware["pe.product"], vmware["pe.company"], vmware["pe.file_version"]) == (
        "VMware Tools", "VMware, Inc.", "10.1.6.5214329")
    assert vmware["file.size"] == 57353160
    inventory = [r for r in files(facts) if r["file.path"] == r"c:\program files\wireshark\capinfos.exe"
                 and r["file.hash.sha1"] == "ad2871144b3f8d583afd801c152dbee48cfc6091"]
    assert 0x53EA0 in [r["file.size"] for r in inventory]   # Inventory* stores it as text "0x53ea0"
    assert_schema(facts)


def test_win10_amcache_fileid_is_sha1(tmp_path: Path) -> None:
    facts, _ = read(shared("artifacts", "plaso", "amcache", "win10-Amcache.hve"), tmp_path)
    svchost = [r for r in files(facts) if r["file.path"] == r"c:\windows\system32\svchost.exe"]
    assert len(svchost) == 1
    # plaso: file_identifier 000075c5a97f521f760e32a4a9639a653eed862e9c61
    assert svchost[0]["file.hash.sha1"] == "75c5a97f521f760e32a4a9639a653eed862e9c61"
    assert svchost[0]["pe.link_date"].tzinfo is not None
    assert not facts.dirty


def test_server2022_amcache_has_attack_tools(tmp_path: Path) -> None:
    facts, issues = read(shared("artifacts", MUSEUM, "server2022_APTSimulatorVM", "amcache",
                                "Amcache.hve"), tmp_path)
    assert issues.count == 0
    paths = {r["file.path"] for r in files(facts)}
    assert {r"c:\tmp\mim.exe", r"c:\windows\psexesvc.exe"} <= paths
    assert facts.dirty and facts.facts["replayed_log_entries"] == "39"   # SOURCES §1
    assert any(n.startswith("dirty hive: 39 log entries replayed from .LOG1/.LOG2") for n in facts.notes)


def test_win11_amcache_replay_adds_entries(tmp_path: Path) -> None:
    source = shared("artifacts", MUSEUM, "win11_RathbunVM", "amcache", "Amcache.hve")
    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(source, alone / "Amcache.hve")
    before, _ = read(alone / "Amcache.hve", tmp_path / "a")
    after, issues = read(source, tmp_path / "b")
    assert issues.count == 0
    # SOURCES §1: 231 entries from the primary file, 238 after replaying 137 log entries, last
    # timestamp moving from 2022-02-13T03:54:47 to 03:55:19.
    assert (len(files(before)), len(files(after))) == (231, 238)
    assert after.facts["replayed_log_entries"] == "137"
    assert max(r["ts"] for r in files(before)).replace(microsecond=0) == datetime(
        2022, 2, 13, 3, 54, 47, tzinfo=UTC)
    assert max(r["ts"] for r in files(after)).replace(microsecond=0) == datetime(
        2022, 2, 13, 3, 55, 19, tzinfo=UTC)
    assert any("no transaction logs" in n for n in before.notes)


def test_stale_log_entry_is_not_replayed(tmp_path: Path) -> None:
    """The Windows 10 museum LOG2 holds entries 38, 39 and a left-over 27. Replaying only the
    consecutive chain recovers the KAPE binary that SOURCES §1 dates 21:40:49 (its Prefetch)."""
    folder = tmp_path / "evidence"
    folder.mkdir()
    for name in ("Amcache.hve", "Amcache.hve.LOG1", "Amcache.hve.LOG2"):
        shutil.copy(shared("artifacts", MUSEUM, "win10_APTSimulatorVM", "amcache", name),
                    folder / name.lower() if name.endswith("LOG2") else folder / name)  # any case
    snapshot = {p.name: p.read_bytes() for p in folder.iterdir()}
    facts, issues = read(folder / "Amcache.hve", tmp_path)
    assert issues.count == 0
    gkape = [r for r in files(facts) if r["file.path"].endswith(r"\desktop\gkape.exe")]
    assert len(gkape) == 1
    assert gkape[0]["ts"].replace(microsecond=0) == datetime(2022, 3, 10, 21, 40, 49, tzinfo=UTC)
    assert len(files(facts)) == 124
    # the evidence folder is untouched: no file added, none changed
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == snapshot


def test_unreadable_log_is_reported_and_primary_read(tmp_path: Path) -> None:
    folder = tmp_path / "evidence"
    folder.mkdir()
    shutil.copy(shared("artifacts", MUSEUM, "win11_RathbunVM", "amcache", "Amcache.hve"), folder)
    (folder / "Amcache.hve.LOG1").write_bytes(b"regf" + b"\0" * 1020)
    facts, issues = read(folder / "Amcache.hve", tmp_path)
    assert issues.count == 1 and "replay failed" in issues.listed[0].message
    assert len(files(facts)) == 231


# --- SYSTEM, NTUSER ------------------------------------------------------------------------------


def test_system_win7(xz_hive, tmp_path: Path) -> None:
    facts, issues = read(xz_hive("SYSTEM"), tmp_path)
    assert facts.kind == "system" and not facts.dirty and issues.count == 0
    assert facts.facts["computer_name"] == "WKS-WIN732BITA"
    assert ("WKS-WIN732BITA", "name") in facts.aliases
    assert facts.facts["timezone"]
    services = {r["autorun.name"]: r for r in facts.rows["tri_autorun"] if r["autorun.kind"] == "service"}
    assert "system32\\drivers\\tcpip.sys" in services["Tcpip"]["autorun.command"].lower()
    assert services["Tcpip"]["registry.key"] == r"HKLM\SYSTEM\ControlSet001\Services\Tcpip"
    assert services["Tcpip"]["ts"] < datetime(2012, 4, 8, tzinfo=UTC)   # hive last written 2012-04-07
    assert_schema(facts)


def test_system_win10_dirty_without_logs(xz_hive, tmp_path: Path) -> None:
    facts, _ = read(xz_hive("SYSTEM_WIN_10_1709"), tmp_path)
    assert facts.facts["computer_name"] == "DESKTOP-2KGM189"
    assert facts.dirty and facts.facts["sequence_numbers"] == "4317/4316"
    assert "dirty hive and no transaction logs: read as is, recent changes may be missing" in facts.notes


def test_ntuser_uninstall_entries(xz_hive, tmp_path: Path) -> None:
    facts, _ = read(xz_hive("NTUSER_with_winscp.DAT"), tmp_path)
    assert facts.kind == "ntuser"
    packages = facts.rows["tri_package"]
    assert len(packages) == 4            # regipy installed_programs_ntuser: 4
    assert {p["user.name"] for p in packages} == {"tony"}   # from the hive header path
    github = next(p for p in packages if p["package.name"] == "GitHub Desktop")
    assert (github["package.version"], github["package.vendor"], github["package.install_date"]) == (
        "3.0.0", "GitHub, Inc.", "20220428")
    assert github["registry.key"] == (
        r"HKCU\Software\Microsoft\Windows\CurrentVersion\Uninstall\GitHubDesktop")
    named, _ = read(xz_hive("NTUSER_with_winscp.DAT"), tmp_path, user="CORP\\tony")
    assert {p["user.name"] for p in named.rows["tri_package"]} == {"CORP\\tony"}
    runs = {r["autorun.name"] for r in facts.rows["tri_autorun"]}
    assert "OneDrive" in runs and "(default)" not in runs   # the empty default value is skipped


# --- broken input --------------------------------------------------------------------------------


def test_truncated_hive(xz_hive, tmp_path: Path) -> None:
    cut = tmp_path / "SYSTEM.cut"
    cut.write_bytes(xz_hive("SYSTEM").read_bytes()[:10_000])
    _, issues = read(cut, tmp_path)
    messages = " | ".join(i.message for i in issues.listed)
    assert "truncated hive" in messages and "11767808" in messages   # declared hbin bytes


def test_zero_length_and_not_a_hive(tmp_path: Path) -> None:
    empty = tmp_path / "NTUSER.DAT"
    empty.write_bytes(b"")
    facts, issues = read(empty, tmp_path)
    assert facts.kind == "unknown" and issues.listed[0].message.startswith("zero-length file")
    junk = tmp_path / "SOFTWARE"
    junk.write_bytes(b"MZ" + b"\0" * 5000)
    _, issues = read(junk, tmp_path)
    assert "not a registry hive" in issues.listed[0].message
    short = tmp_path / "short"
    short.write_bytes(b"regf" + b"\0" * 100)
    _, issues = read(short, tmp_path)
    assert "truncated hive" in issues.listed[0].message


def test_is_hive() -> None:
    assert is_hive(b"regf\x01\x00") and not is_hive(b"hbin") and not is_hive(b"")


# --- hives written by the simulator --------------------------------------------------------------

T0 = datetime(2023, 3, 22, 9, 14, 7, 123456, tzinfo=UTC)
T1 = datetime(2023, 3, 29, 16, 2, 55, 654321, tzinfo=UTC)
GUID = "{5C0D4AB8-1B6F-4D2C-9A0E-3C7A9C7E1F42}"


def software_root() -> Key:
    root = Key("ROOT", last_written=T0)
    root.path("Microsoft", "Cryptography").values.append(
        Value("MachineGuid", "0f6a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"))
    root.path("Microsoft", "Windows NT", "CurrentVersion").values.extend([
        Value("ProductName", "Windows 10 Pro"), Value("CurrentBuild", "19045"),
        Value("InstallDate", 1672531200, "dword")])
    app = root.path("Microsoft", "Windows", "CurrentVersion", "Uninstall", GUID)
    app.last_written = T1
    app.values.extend([
        Value("DisplayName", "3CX Desktop App"), Value("DisplayVersion", "18.12.416"),
        Value("Publisher", "3CX"), Value("InstallDate", "20230329"),
        Value("InstallLocation", r"C:\Program Files\3CXDesktopApp"),
        Value("EstimatedSize", 123456, "dword")])
    root.path("Wow6432Node", "Microsoft", "Windows", "CurrentVersion", "Uninstall", "7-Zip").values.append(
        Value("DisplayName", "7-Zip 19.00"))
    root.path("Microsoft", "Windows", "CurrentVersion", "Run").values.append(
        Value("3CXDesktopApp", r'"%LOCALAPPDATA%\Programs\3CXDesktopApp\3CXDesktopApp.exe"', "expand_sz"))
    root.path("Microsoft", "Windows NT", "CurrentVersion", "Image File Execution Options",
              "sethc.exe").values.append(Value("Debugger", r"C:\Windows\System32\cmd.exe"))
    root.path("Microsoft", "Windows NT", "CurrentVersion", "Image File Execution Options", "notepad.exe")
    root.path("Microsoft", "Windows NT", "CurrentVersion", "Schedule", "TaskCache", "Tree",
              "GameOver").values.append(Value("Id", "{11111111-2222-3333-4444-555555555555}"))
    root.path("Microsoft", "Windows NT", "CurrentVersion", "Schedule", "TaskCache", "Tasks",
              "{11111111-2222-3333-4444-555555555555}").values.append(Value("Author", r"HOST\admin"))
    root.path("Classes", ".txt")
    return root


def test_written_software_hive(tmp_path: Path) -> None:
    path = tmp_path / "NTUSER.DAT"   # a misleading file name: the kind comes from the content
    write_hive(path, software_root())
    facts, issues = read(path, tmp_path)
    assert issues.count == 0 and facts.kind == "software" and not facts.dirty
    assert facts.facts["machine_guid"] == "0f6a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b"
    assert ("0f6a2b3c-4d5e-4f60-8a7b-9c0d1e2f3a4b", "machine_guid") in facts.aliases
    assert (facts.facts["product_name"], facts.facts["build"]) == ("Windows 10 Pro", "19045")
    assert facts.facts["install_date"] == "2023-01-01T00:00:00+00:00"
    packages = {p["package.name"]: p for p in facts.rows["tri_package"]}
    app = packages["3CX Desktop App"]
    assert (app["package.version"], app["package.vendor"], app["package.install_date"]) == (
        "18.12.416", "3CX", "20230329")
    assert app["package.install_location"] == r"C:\Program Files\3CXDesktopApp"
    assert app["registry.key"] == rf"HKLM\SOFTWARE\Microsoft\Windows\CurrentVersion\Uninstall\{GUID}"
    assert app["ts"] == T1 and app["event.action"] == "installed" and app["user.name"] is None
    assert packages["7-Zip 19.00"]["registry.key"].startswith(r"HKLM\SOFTWARE\Wow6432Node\Microsoft")
    autoruns = {(r["autorun.kind"], r["autorun.name"]): r for r in facts.rows["tri_autorun"]}
    run = autoruns[("run", "3CXDesktopApp")]
    assert run["autorun.command"].endswith(r'3CXDesktopApp.exe"') and run["ts"] == T0
    assert autoruns[("ifeo-debugger", "sethc.exe")]["autorun.command"] == r"C:\Windows\System32\cmd.exe"
    assert ("ifeo-debugger", "notepad.exe") not in autoruns
    assert autoruns[("task", r"\GameOver")]["task.author"] == r"HOST\admin"
    assert_schema(facts)


def test_written_ntuser_hive(tmp_path: Path) -> None:
    root = Key("ROOT", last_written=T0)
    root.path("Control Panel", "Desktop")
    root.path("Environment").values.append(Value("TEMP", r"%USERPROFILE%\AppData\Local\Temp", "expand_sz"))
    app = root.path("Software", "Microsoft", "Windows", "CurrentVersion", "Uninstall", "3CXDesktopApp")
    app.last_written = T1
    app.values.extend([Value("DisplayName", "3CX Desktop App"), Value("DisplayVersion", "18.12.407")])
    root.path("Software", "Microsoft", "Windows", "CurrentVersion", "RunOnce").values.append(
        Value("Setup", "setup.exe /quiet"))
    path = tmp_path / "hive.bin"
    write_hive(path, root, file_name=r"\??\C:\Users\alice\ntuser.dat")
    facts, issues = read(path, tmp_path)
    assert issues.count == 0 and facts.kind == "ntuser"
    (package,) = facts.rows["tri_package"]
    assert (package["package.name"], package["package.version"], package["user.name"]) == (
        "3CX Desktop App", "18.12.407", "alice")
    assert package["ts"] == T1
    (runonce,) = facts.rows["tri_autorun"]
    assert (runonce["autorun.kind"], runonce["autorun.command"], runonce["user.name"]) == (
        "runonce", "setup.exe /quiet", "alice")


def test_written_amcache_hive(tmp_path: Path) -> None:
    root = Key("{11517B7C-E79D-4e20-961B-75A811715ADD}", last_written=T0)
    entry = root.path("Root", "InventoryApplicationFile", "3cxdesktopapp.exe|5a3b2c1d0e9f8a7b")
    entry.last_written = T1
    entry.values.extend([
        Value("LowerCaseLongPath", r"c:\users\alice\appdata\local\programs\3cxdesktopapp\ffmpeg.dll"),
        Value("Name", "ffmpeg.dll"), Value("Size", 2_828_312, "qword"), Value("Version", "18.12.416.0"),
        Value("Publisher", "3cx ltd"), Value("ProductName", "3cx desktop app"),
        Value("FileId", "0000" + "7986bbaee8940da11ce089383521ab420c443ab7"),
        Value("LinkDate", "03/08/2023 10:21:44"), Value("ProgramId", "0000abc")])
    program = root.path("Root", "InventoryApplication", "0000abc")
    program.values.extend([Value("Name", "3CX Desktop App"), Value("Version", "18.12.416"),
                           Value("Publisher", "3CX")])
    path = tmp_path / "Amcache.hve"
    write_hive(path, root)
    facts, issues = read(path, tmp_path)
    assert issues.count == 0 and facts.kind == "amcache"
    (row,) = files(facts)
    assert row["file.hash.sha1"] == "7986bbaee8940da11ce089383521ab420c443ab7"
    assert (row["file.size"], row["file.name"], row["pe.company"]) == (2_828_312, "ffmpeg.dll", "3cx ltd")
    assert row["pe.link_date"] == datetime(2023, 3, 8, 10, 21, 44, tzinfo=UTC)
    assert (row["package.name"], row["package.version"]) == ("3CX Desktop App", "18.12.416")
    assert row["ts"] == T1


# --- the writer's own structure ------------------------------------------------------------------


def test_writer_structure_is_valid(tmp_path: Path) -> None:
    root = software_root()
    for i in range(700):   # enough keys for several bins and an lh list larger than one bin
        root.path("Many", f"Key{i:04d}").values.append(Value("Data", "x" * 200))
    root.path("Many", "big").values.append(Value("Blob", b"\xab" * 16_000, "binary"))
    root.path("Many", "lists").values.extend([Value("M", ["a", "bc"], "multi_sz"), Value("Q", 2**40, "qword"),
                                              Value("", "default"), Value("E", "")])
    data = build_hive(root, "SOFTWARE")
    assert data[:4] == b"regf" and len(data) % 4096 == 0
    assert struct.unpack_from("<II", data, 4) == (1, 1)
    assert struct.unpack_from("<I", data, 508)[0] == base_block_checksum(data[:512])
    assert struct.unpack_from("<I", data, 40)[0] == len(data) - 4096
    # every hive bin is exactly tiled by cells (allocated negative, free positive), 8-byte aligned
    offset = 4096
    while offset < len(data):
        magic, rel, size = struct.unpack_from("<4sII", data, offset)
        assert magic == b"hbin" and rel == offset - 4096 and size % 4096 == 0
        cell = offset + 32
        while cell < offset + size:
            (cell_size,) = struct.unpack_from("<i", data, cell)
            assert cell_size != 0 and abs(cell_size) % 8 == 0
            cell += abs(cell_size)
        assert cell == offset + size
        offset += size
    path = tmp_path / "SOFTWARE"
    path.write_bytes(data)
    hive = RegistryHive(str(path))
    names = [k.name for k in hive.get_key(r"\Many").iter_subkeys()]
    assert len(names) == 702 and names == sorted(names, key=str.upper)
    values = {v.name: v.value for v in hive.get_key(r"\Many\lists").iter_values(trim_values=False)}
    assert values == {"M": ["a", "bc"], "Q": 2**40, "(default)": "default", "E": ""}
    assert hive.get_key(r"\Many\big").get_value("Blob") == b"\xab" * 16_000
    assert hive.get_key(r"\Microsoft").get_security_key_info()["owner"] == "S-1-5-32-544"


def test_writer_rejects_bad_input(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        build_hive(Key("ROOT"))                                   # no time
    with pytest.raises(ValueError):
        build_hive(Key("ROOT", last_written=datetime(2023, 1, 1)))   # naive
    with pytest.raises(TypeError):
        build_hive(Key("ROOT", [Value("n", "5", "dword")], last_written=T0))
    with pytest.raises(ValueError):
        build_hive(Key("ROOT", [Value("b", b"x" * 20_000, "binary")], last_written=T0))
    with pytest.raises(ValueError):
        build_hive(Key("ROOT", subkeys=[Key("a"), Key("A")], last_written=T0))


def test_damaged_written_hives_never_raise(tmp_path: Path) -> None:
    """Random byte damage past the base block: problems become issues, reading never raises."""
    clean = build_hive(software_root())
    rnd = random.Random(7)
    with_issues = 0
    for _ in range(40):
        damaged = bytearray(clean)
        for _ in range(rnd.randint(1, 30)):
            damaged[rnd.randrange(4096, len(damaged))] = rnd.randrange(256)
        path = tmp_path / "damaged"
        path.write_bytes(bytes(damaged))
        _, issues = read(path, tmp_path)
        with_issues += issues.count > 0
    assert with_issues > 0
