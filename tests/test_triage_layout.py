"""Where collections start and end, and where each file sat on the collected machine."""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import pytest

from turncoat import pipeline
from turncoat.triage.collect import artifact_kind, times_preserved
from turncoat.triage.layout import find_collections, layout_of, velociraptor_host, velociraptor_machine_path
from turncoat.triage.pbx import pbx_row


def _touch(root: Path, *parts: str, data: bytes = b"x") -> Path:
    path = root.joinpath(*parts)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def test_kape_volume_and_macos_layouts(tmp_path: Path) -> None:
    kape = tmp_path / "kape"
    _touch(kape, "C", "Windows", "Prefetch", "A.EXE-00000000.pf")
    _touch(kape, "C", "Users", "bob", "NTUSER.DAT")
    volume = tmp_path / "volume"
    _touch(volume, "Windows", "System32", "config", "SYSTEM")
    mac = tmp_path / "mac"
    _touch(mac, "Users", "ann", "Library", "x")
    _touch(mac, "Applications", "A.app", "Contents", "Info.plist")
    assert (layout_of(kape), layout_of(volume), layout_of(mac)) == ("kape", "volume", "macos")
    [collection] = find_collections(kape)
    assert {f.machine_path for f in collection.files} == {
        "C:\\Windows\\Prefetch\\A.EXE-00000000.pf", "C:\\Users\\bob\\NTUSER.DAT"}
    assert {f.machine_path for f in find_collections(volume)[0].files} == {"C:\\Windows\\System32\\config\\SYSTEM"}
    assert "/Applications/A.app/Contents/Info.plist" in {f.machine_path for f in find_collections(mac)[0].files}


def test_a_folder_of_machines_is_split_by_their_one_per_machine_artifacts(tmp_path: Path) -> None:
    for host in ("pc1", "pc2"):
        _touch(tmp_path, host, "amcache", "Amcache.hve")
        _touch(tmp_path, host, "prefetch", "B.EXE-11111111.pf")
    _touch(tmp_path, "pc3", "C", "Windows", "System32", "config", "SOFTWARE")
    found = find_collections(tmp_path)
    assert [(c.host_hint, c.layout) for c in found] == [("pc1", "folder"), ("pc2", "folder"), ("pc3", "kape")]
    # one machine's own subfolders (amcache/, prefetch/) do not split it
    assert [c.host_hint for c in find_collections(tmp_path / "pc1")] == ["pc1"]
    assert find_collections(tmp_path / "pc1" / "nothing-here") == []


def test_symbolic_links_are_not_followed(tmp_path: Path) -> None:
    outside = _touch(tmp_path, "outside", "secret.txt")
    root = tmp_path / "kape"
    _touch(root, "C", "Windows", "Prefetch", "A.EXE-00000000.pf")
    try:
        os.symlink(outside, root / "C" / "Windows" / "link.txt")
    except (OSError, NotImplementedError):
        pytest.skip("symbolic links not available")
    [collection] = find_collections(root)
    assert all(f.path.name != "link.txt" for f in collection.files)
    assert any("symbolic link" in why for _, why in collection.skipped)


def test_velociraptor_names() -> None:
    assert velociraptor_host("Collection-PC-42.corp-2023-04-01T10_00_00Z.zip") == "PC-42.corp"
    assert velociraptor_machine_path("uploads/auto/C%3A/Users/x/NTUSER.DAT") == "C:\\Users\\x\\NTUSER.DAT"
    assert velociraptor_machine_path("uploads/ntfs/%5C%5C.%5CC%3A/$MFT") == "C:\\$MFT"
    assert velociraptor_machine_path("results/x.json") is None


def test_pbx_rows_and_file_kinds() -> None:
    row = pbx_row("/var/lib/3cxpbx/Instance1/Data/Http/electron/osx/3CXDesktopApp-18.12.416.dmg", "ab")
    assert row == {"pbx.platform": "macos", "file.path": row["file.path"], "file.name": "3CXDesktopApp-18.12.416.dmg",
                   "package.version": "18.12.416", "file.hash.sha256": "ab"}
    assert pbx_row("C:\\Users\\x\\Downloads\\3CXDesktopApp-18.12.416.msi", "ab") is None
    hive = b"regf" + b"\0" * 60
    assert artifact_kind(hive, "C:\\Windows\\System32\\config\\SYSTEM") == "registry"
    assert artifact_kind(hive, "C:\\Windows\\System32\\config\\SYSTEM.LOG1") == "registry-log"
    assert artifact_kind(b"SQLite format 3\x00", "C:\\Users\\a\\AppData\\Local\\Google\\Chrome\\User Data\\Default\\History") == "browser"
    assert artifact_kind(b"SQLite format 3\x00", "C:\\ProgramData\\app.db") == "file"
    assert artifact_kind(b"<?xml", "/Applications/X.app/Contents/Info.plist") == "app-bundle"


def test_copied_collections_are_told_from_preserved_ones(tmp_path: Path) -> None:
    stats = []
    for number in range(10):
        path = _touch(tmp_path, f"f{number}")
        stamp = 1_600_000_000 + number * 86_400
        os.utime(path, (stamp, stamp))
        stats.append(path.stat())
    assert times_preserved(stats)
    for path in tmp_path.iterdir():
        os.utime(path, (1_700_000_000, 1_700_000_000))
    assert not times_preserved([p.stat() for p in tmp_path.iterdir()])


def test_hostile_collection_files_are_reported_and_the_run_goes_on(tmp_path: Path) -> None:
    root = tmp_path / "kape" / "PC9"
    _touch(root, "C", "Windows", "System32", "config", "SYSTEM", data=b"regf" + os.urandom(2000))
    _touch(root, "C", "Windows", "Prefetch", "X.EXE-12345678.pf", data=b"\x1e\x00\x00\x00SCCA" + os.urandom(100))
    _touch(root, "C", "Windows", "appcompat", "Programs", "Amcache.hve", data=b"")
    _touch(root, "C", "Users", "a", "AppData", "Local", "Google", "Chrome", "User Data", "Default", "History",
           data=b"SQLite format 3\x00" + b"\xff" * 3000)
    _touch(root, "C", "Users", "a", "AppData", "Local", "x", "evil\u202eexe.txt", data=b"MZ" + b"\0" * 10)
    case = tmp_path / "case"
    result = pipeline.ingest([tmp_path / "kape"], case)
    items = {Path(i["path"]).name: i for i in result.manifest["items"]}
    assert items["SYSTEM"]["issue_count"] and items["X.EXE-12345678.pf"]["issue_count"]
    assert items["History"]["issue_count"]
    assert result.manifest["collections"][0]["host"] == "pc9"  # the garbage SYSTEM hive names nothing
    assert all(i["status"] == "read" for i in items.values())


def test_velociraptor_zip_inside_a_folder_is_its_own_collection(tmp_path: Path) -> None:
    archive = tmp_path / "in" / "Collection-HOST7-2024-01-02T03_04_05Z.zip"
    archive.parent.mkdir()
    with zipfile.ZipFile(archive, "w") as out:
        out.writestr("collection_context.json", "{}")
        out.writestr("uploads/auto/C%3A/Users/z/AppData/Local/Programs/3CXDesktopApp/app/manifest", b"1")
        out.writestr("uploads/auto/C%3A/../../evil", b"1")
    result = pipeline.ingest([tmp_path / "in"], tmp_path / "case")
    [collection] = result.manifest["collections"]
    assert collection["host"] == "host7" and collection["layout"] == "velociraptor"
    paths = {i.get("machine_path") for i in result.manifest["items"]}
    assert "C:\\Users\\z\\AppData\\Local\\Programs\\3CXDesktopApp\\app\\manifest" in paths
    assert any("refused" in p["message"] for p in result.manifest["problems"])


def test_xz_files_are_unpacked_within_the_archive_bounds(tmp_path: Path) -> None:
    import lzma

    from turncoat.evidence.sniff import XZ
    from turncoat.evidence.sources import EvidenceItem, Walker

    hive = tmp_path / "SYSTEM.xz"
    hive.write_bytes(lzma.compress(b"regf" + b"\0" * 4092))
    bomb = tmp_path / "bomb.xz"
    bomb.write_bytes(lzma.compress(b"A" * (40 * 1024 * 1024)))
    walker = Walker(tmp_path / "scratch")
    members, problems = walker.expand(EvidenceItem(str(hive), hive), XZ)
    assert [m.display for m in members] == [f"{hive}!SYSTEM"] and not problems
    assert members[0].path.read_bytes().startswith(b"regf")
    members, problems = walker.expand(EvidenceItem(str(bomb), bomb), XZ)
    assert not members and "ratio" in problems[0].message


def test_unsigned_windows_files_are_marked_catalog_signed(tmp_path: Path) -> None:
    from turncoat.simulate.pe_file import build_pe
    from turncoat.store.case import Case

    pe = build_pe({"CompanyName": "Microsoft Corporation", "FileVersion": "10.0.1"}, "10.0.1", dll=True)
    root = tmp_path / "kape" / "PC1"
    _touch(root, "C", "Windows", "System32", "kernelbase.dll", data=pe)
    _touch(root, "C", "Users", "a", "Downloads", "tool.dll", data=pe)
    pipeline.ingest([tmp_path / "kape"], tmp_path / "case")
    con = Case(tmp_path / "case").connect(read_only=True)
    try:
        status = dict(con.execute('SELECT "file.name", "code_signature.status" FROM tri_file').fetchall())
    finally:
        con.close()
    assert status == {"kernelbase.dll": "catalog-signed?", "tool.dll": "unsigned"}
