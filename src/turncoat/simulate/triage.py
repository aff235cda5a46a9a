"""Simulated triage collections: what an MSP's KAPE run would bring back from an office with no event
logs at all, and the office PBX's client update folder.

Each Windows host is a KAPE target folder (`<out>/triage/<HOST>/C/...`) holding the registry hives
(SYSTEM, SOFTWARE, the user's NTUSER.DAT, Amcache.hve), Prefetch, the user's Chrome profile and the 3CX
app folder; the Mac is a folder copy of its disk (`<out>/triage/MAC-01/Applications/…`). The executables are inert PE files built here (a version resource, no code), so their hashes
are never the published indicators: versions, places, Prefetch runs, the `manifest` delay file, the
signature-padding trick and browser-history copies are what give each host its verdict. SRUM is not
simulated (no ESE writer); the readers are tested on real SRUM databases instead.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from turncoat.simulate.hive_writer import Key, Value, write_hive
from turncoat.simulate.pe_file import build_pe, dummy_signature
from turncoat.simulate.prefetch_writer import (
    build_prefetch,
    prefetch_filename,
    scca_hash,
    volume_guid_path,
)
from turncoat.simulate.writer import write_ground_truth

COLLECTED = datetime(2023, 3, 31, 17, 0, tzinfo=UTC)
APP = "Users\\{user}\\AppData\\Local\\Programs\\3CXDesktopApp"
CHROME = "Users\\{user}\\AppData\\Local\\Google\\Chrome\\User Data\\Default"
VOLUME_SERIAL = 0x2CA3D1AE
VOLUME_CREATED = datetime(2022, 6, 1, 8, 0, tzinfo=UTC)


@dataclass(frozen=True)
class TriageHost:
    name: str
    user: str
    version: str             # 3CX Desktop App build installed
    installed: datetime
    runs: tuple[datetime, ...] = ()   # Prefetch run times of the app
    stolen: datetime | None = None    # ICONIC copied the Chrome history then
    verdict: str = "no-evidence"
    story: str = ""


HOSTS: tuple[TriageHost, ...] = (
    TriageHost("TRI-01", "c.dupont", "18.11.1213", datetime(2022, 10, 3, 9, 12, tzinfo=UTC),
               runs=tuple(datetime(2023, 3, d, 8, 30, tzinfo=UTC) for d in (20, 21, 22, 23, 24, 27, 28, 29, 30)),
               verdict="no-evidence",
               story="clean 18.11.1213, run every working day; triage alone cannot clear the window"),
    TriageHost("TRI-02", "m.bernard", "18.12.416", datetime(2023, 3, 20, 14, 5, tzinfo=UTC),
               verdict="vulnerable-installed", story="18.12.416 installed on 2023-03-20, never run"),
    TriageHost("TRI-03", "n.girard", "18.12.416", datetime(2023, 3, 25, 10, 0, tzinfo=UTC),
               runs=(datetime(2023, 3, 25, 10, 2, tzinfo=UTC), datetime(2023, 3, 27, 8, 41, tzinfo=UTC),
                     datetime(2023, 3, 29, 8, 37, tzinfo=UTC)),
               verdict="armed-dormant", story="18.12.416 installed and first run 2023-03-25; manifest written"),
    TriageHost("TRI-04", "e.lambert", "18.12.416", datetime(2023, 3, 6, 9, 0, tzinfo=UTC),
               runs=tuple(datetime(2023, 3, d, 8, 15, tzinfo=UTC) for d in (6, 7, 8, 9, 10, 13, 14, 15, 16)),
               stolen=datetime(2023, 3, 15, 11, 20, tzinfo=UTC),
               verdict="data-stolen", story="18.12.416 since 2023-03-06; Chrome history copied 2023-03-15"),
)
PBX_BUILDS = ("18.11.1213", "18.12.416", "18.12.425")


def _hive(path: Path, root: Key, when: datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    write_hive(path, root)
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))


def _write(path: Path, data: bytes, when: datetime) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))


def _guid(label: str) -> str:
    return "{" + str(uuid.UUID(hashlib.md5(label.encode()).hexdigest())).upper() + "}"


def _app_exe(version: str) -> bytes:
    return build_pe({"CompanyName": "3CX Ltd", "FileDescription": "3CX Desktop App",
                     "FileVersion": f"{version}.0", "ProductName": "3CX Desktop App",
                     "ProductVersion": version, "OriginalFilename": "3CXDesktopApp.exe"}, version)


def _d3dcompiler(trojanized: bool) -> bytes:
    """Microsoft's DLL as Electron ships it; the trojanized build hides a blob behind FE ED FA CE
    inside the signature area (the real blob is RC4-encrypted shellcode; here it is filler)."""
    hidden = (b"\xfe\xed\xfa\xce" + hashlib.sha256(b"filler").digest() * 2200) if trojanized else b""
    return build_pe({"CompanyName": "Microsoft Corporation", "FileDescription": "Direct3D HLSL Compiler",
                     "FileVersion": "10.0.20348.1 (WinBuild.160101.0800)", "ProductName": "Microsoft® Windows® Operating System",
                     "OriginalFilename": "D3DCOMPILER_47.DLL"}, "10.0.20348.1", dll=True,
                    signature=dummy_signature("Microsoft Corporation"), hidden_after_signature=hidden)


def _ffmpeg(version: str) -> bytes:
    return build_pe({"FileDescription": "FFmpeg library", "ProductName": "3CX Desktop App",
                     "FileVersion": f"{version}.0", "OriginalFilename": "ffmpeg.dll"}, version, dll=True)


def _system_hive(host: TriageHost) -> Key:
    root = Key("ROOT", last_written=host.installed)
    root.path("Select").values.append(Value("Current", 1, "dword"))
    control = root.path("ControlSet001", "Control")
    control.path("ComputerName", "ComputerName").values.append(Value("ComputerName", host.name))
    control.path("TimeZoneInformation").values.append(Value("TimeZoneKeyName", "Romance Standard Time"))
    services = root.path("ControlSet001", "Services")
    services.path("Spooler").values.append(Value("ImagePath", "%SystemRoot%\\System32\\spoolsv.exe", "expand_sz"))
    return root


def _software_hive(host: TriageHost) -> Key:
    root = Key("ROOT", last_written=VOLUME_CREATED)
    root.path("Microsoft", "Cryptography").values.append(Value("MachineGuid", str(uuid.UUID(
        hashlib.md5(host.name.encode()).hexdigest()))))
    current = root.path("Microsoft", "Windows NT", "CurrentVersion")
    current.values += [Value("ProductName", "Windows 10 Pro"), Value("CurrentBuild", "19045")]
    uninstall = root.path("Microsoft", "Windows", "CurrentVersion", "Uninstall")
    chrome = uninstall.subkey("Google Chrome")
    chrome.values += [Value("DisplayName", "Google Chrome"), Value("DisplayVersion", "111.0.5563.65"),
                      Value("Publisher", "Google LLC")]
    root.path("Microsoft", "Windows", "CurrentVersion", "Run").values.append(
        Value("SecurityHealth", "%windir%\\system32\\SecurityHealthSystray.exe", "expand_sz"))
    return root


def _ntuser_hive(host: TriageHost) -> Key:
    root = Key("ROOT", last_written=host.installed)
    key = root.path("Software", "Microsoft", "Windows", "CurrentVersion", "Uninstall", _guid(host.name + "3cx"))
    key.last_written = host.installed
    key.values += [Value("DisplayName", "3CX Desktop App"), Value("DisplayVersion", host.version),
                   Value("Publisher", "3CX Ltd"),
                   Value("InstallLocation", f"C:\\{APP.format(user=host.user)}"),
                   Value("InstallDate", host.installed.strftime("%Y%m%d"))]
    return root


def _amcache_hive(host: TriageHost, exe: bytes) -> Key:
    root = Key("ROOT", last_written=host.installed)
    files = root.path("Root", "InventoryApplicationFile")
    path = f"c:\\{APP.format(user=host.user).lower()}\\app\\3cxdesktopapp.exe"
    entry = files.subkey("3cxdesktopapp.exe|" + hashlib.md5(path.encode()).hexdigest()[:16])
    entry.last_written = host.installed + timedelta(minutes=1)
    entry.values += [Value("LowerCaseLongPath", path), Value("Name", "3CXDesktopApp.exe"),
                     Value("Size", len(exe), "qword"), Value("Version", f"{host.version}.0"),
                     Value("BinFileVersion", f"{host.version}.0"), Value("Publisher", "3cx ltd"),
                     Value("ProductName", "3cx desktop app"),
                     Value("FileId", "0000" + hashlib.sha1(exe).hexdigest()),
                     Value("LinkDate", "03/21/2023 10:00:00")]
    programs = root.path("Root", "InventoryApplication")
    program = programs.subkey(hashlib.md5(host.name.encode()).hexdigest()[:20])
    program.last_written = host.installed
    program.values += [Value("Name", "3CX Desktop App"), Value("Version", host.version), Value("Publisher", "3CX Ltd")]
    return root


def _history(path: Path, visits: list[tuple[str, datetime]], when: datetime) -> None:
    """A Chromium `History` database (the tables and columns a reader needs) with these visits."""
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path)
    con.executescript(
        "CREATE TABLE meta(key LONGVARCHAR NOT NULL UNIQUE PRIMARY KEY, value LONGVARCHAR);"
        "INSERT INTO meta VALUES ('version', '60');"
        "CREATE TABLE urls(id INTEGER PRIMARY KEY AUTOINCREMENT, url LONGVARCHAR, title LONGVARCHAR, "
        "visit_count INTEGER DEFAULT 0 NOT NULL, typed_count INTEGER DEFAULT 0 NOT NULL, "
        "last_visit_time INTEGER NOT NULL, hidden INTEGER DEFAULT 0 NOT NULL);"
        "CREATE TABLE visits(id INTEGER PRIMARY KEY, url INTEGER NOT NULL, visit_time INTEGER NOT NULL, "
        "from_visit INTEGER, transition INTEGER DEFAULT 0 NOT NULL, segment_id INTEGER, visit_duration INTEGER "
        "DEFAULT 0 NOT NULL);")
    epoch = datetime(1601, 1, 1, tzinfo=UTC)
    for number, (url, moment) in enumerate(visits, 1):
        webkit = (moment - epoch) // timedelta(microseconds=1)
        con.execute("INSERT INTO urls VALUES (?, ?, ?, 1, 0, ?, 0)", (number, url, "page", webkit))
        con.execute("INSERT INTO visits VALUES (?, ?, ?, 0, 805306368, 0, 0)", (number, number, webkit))
    con.commit()
    con.close()
    stamp = when.timestamp()
    os.utime(path, (stamp, stamp))


def _visits(host: TriageHost) -> list[tuple[str, datetime]]:
    sites = ("https://intranet.example.org/wiki/Accueil", "https://mail.example.org/owa/",
             "https://www.service-public.fr/particuliers", "https://github.com/")
    start = datetime(2023, 3, 1, 9, 0, tzinfo=UTC)
    return [(f"{site}?n={i}", start + timedelta(days=i, minutes=7 * n))
            for i in range(20) for n, site in enumerate(sites) if (i + n) % 3 != 0]


def write_host(root: Path, host: TriageHost) -> dict[str, Any]:
    drive = root / host.name / "C"
    user_home = f"Users\\{host.user}"
    app = drive / APP.format(user=host.user).replace("\\", "/")
    exe = _app_exe(host.version)
    trojanized = host.version in ("18.12.407", "18.12.416")
    _write(app / "app" / "3CXDesktopApp.exe", exe, host.installed)
    _write(app / "app" / "ffmpeg.dll", _ffmpeg(host.version), host.installed)
    _write(app / "app" / "d3dcompiler_47.dll", _d3dcompiler(trojanized), host.installed)
    _write(app / "Update.exe", build_pe({"CompanyName": "3CX Ltd", "FileVersion": "1.5.0.0",
                                         "OriginalFilename": "Update.exe"}, "1.5.0"), host.installed)
    first_run = min(host.runs) if host.runs else None
    if trojanized and first_run:
        # the loader writes its delay file on first run; only its existence is relied on
        _write(app / "app" / "manifest", b"1680343320", first_run)
    config = drive / "Windows" / "System32" / "config"
    _hive(config / "SYSTEM", _system_hive(host), COLLECTED)
    _hive(config / "SOFTWARE", _software_hive(host), COLLECTED)
    _hive(drive / "Users" / host.user / "NTUSER.DAT", _ntuser_hive(host), COLLECTED)
    _hive(drive / "Windows" / "appcompat" / "Programs" / "Amcache.hve", _amcache_hive(host, exe), COLLECTED)
    if host.runs:
        device = volume_guid_path(VOLUME_CREATED, VOLUME_SERIAL)
        exe_path = f"C:\\{APP.format(user=host.user)}\\app\\3CXDesktopApp.exe"
        loaded = [f"C:\\{APP.format(user=host.user)}\\app\\{n}" for n in ("ffmpeg.dll", "d3dcompiler_47.dll")]
        loaded += ["C:\\Windows\\System32\\ntdll.dll", "C:\\Windows\\System32\\kernel32.dll"]
        hashed = scca_hash("\\DEVICE\\HARDDISKVOLUME3\\" + exe_path[3:].upper())
        data = build_prefetch(exe_path, list(host.runs), len(host.runs) + 3, loaded, device, VOLUME_SERIAL,
                              VOLUME_CREATED, prefetch_hash=hashed, compress=True)  # as Windows 10 writes them
        _write(drive / "Windows" / "Prefetch" / prefetch_filename(exe_path, hashed), data, max(host.runs))
    chrome = drive / CHROME.format(user=host.user).replace("\\", "/")
    _history(chrome / "History", _visits(host), COLLECTED)
    _write(chrome / "Cookies", b"SQLite format 3\x00" + b"\x00" * 84, COLLECTED)
    _write(chrome / "Login Data", b"SQLite format 3\x00" + b"\x00" * 84, COLLECTED)
    if host.stolen:
        recent = [v for v in _visits(host) if v[1] <= host.stolen][-500:]
        _history(chrome / "History.old", recent, host.stolen)
    return {"host": host.name.lower(), "verdict": host.verdict, "user": host.user, "version": host.version,
            "installed": host.installed.isoformat(), "first_execution": first_run.isoformat() if first_run else None,
            "story": host.story, "home": user_home}


MAC = "MAC-01"
MAC_USER = "j.martin"
MAC_INSTALLED = datetime(2023, 3, 10, 15, 0, tzinfo=UTC)
MAC_DROPPED = datetime(2023, 3, 17, 15, 4, tzinfo=UTC)


def write_mac(root: Path) -> dict[str, Any]:
    """A macOS folder copy: the trojanized 18.12.416 bundle and the files its libffmpeg.dylib drops
    in the user's Application Support folder (`.main_storage`, `.session-lock`, then `UpdateAgent`)."""
    import plistlib

    top = root / MAC
    bundle = top / "Applications" / "3CX Desktop App.app" / "Contents"
    _write(bundle / "Info.plist", plistlib.dumps({
        "CFBundleName": "3CX Desktop App", "CFBundleIdentifier": "com.electron.3cx-desktop-app",
        "CFBundleShortVersionString": "18.12.416", "CFBundleVersion": "18.12.416"}), MAC_INSTALLED)
    _write(top / "Library" / "Preferences" / "SystemConfiguration" / "preferences.plist", plistlib.dumps(
        {"System": {"System": {"ComputerName": MAC, "HostName": MAC.lower() + ".example.org"}}}), COLLECTED)
    support = top / "Users" / MAC_USER / "Library" / "Application Support" / "3CX Desktop App"
    _write(support / ".main_storage", hashlib.sha256(b"victim id").digest(), MAC_DROPPED)
    _write(support / ".session-lock", b"", MAC_DROPPED)
    _write(support / "UpdateAgent", b"\xcf\xfa\xed\xfe" + b"\0" * 60, MAC_DROPPED + timedelta(days=2))
    return {"host": MAC.lower(), "verdict": "payload", "user": MAC_USER, "version": "18.12.416",
            "installed": MAC_INSTALLED.isoformat(), "first_execution": MAC_DROPPED.isoformat(),
            "story": "macOS 18.12.416; libffmpeg.dylib dropped .main_storage, then the UpdateAgent second stage",
            "home": f"/Users/{MAC_USER}"}


def write_pbx(root: Path) -> list[dict[str, Any]]:
    folder = root / "PBX-01" / "var" / "lib" / "3cxpbx" / "Instance1" / "Data" / "Http" / "electron" / "windows"
    out = []
    for version in PBX_BUILDS:
        data = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + f"simulated MSI 3CXDesktopApp {version}".encode() * 64
        _write(folder / f"3CXDesktopApp-{version}.msi", data, COLLECTED - timedelta(days=30))
        out.append({"file": f"3CXDesktopApp-{version}.msi", "version": version,
                    "build": "trojanized" if version in ("18.12.407", "18.12.416") else "clean"})
    return out


def simulate_triage(out: Path) -> dict[str, Any]:
    """Write `out/triage/<HOST>/C/…` per host and `out/triage/PBX-01/var/lib/3cxpbx/…`, plus
    `out/ground-truth.json`; return the ground truth."""
    root = Path(out) / "triage"
    if root.exists() and any(root.iterdir()):
        raise FileExistsError(f"{root} is not empty; simulate into a fresh folder")
    root.mkdir(parents=True, exist_ok=True)
    truth = {"scenario": "triage", "collection_end": COLLECTED.isoformat(),
             "hosts": [*(write_host(root, h) for h in HOSTS), write_mac(root)], "pbx": write_pbx(root)}
    write_ground_truth(Path(out) / "ground-truth.json", truth)
    return truth
