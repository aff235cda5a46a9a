"""Find triage collections under the user's inputs, and where each file sat on the collected machine.

A collection is one machine's artifacts. Its layout decides the path each file had on that machine:
- KAPE target output: drive folders (`C/Windows/…`, `C%3A/…`) → `C:\\Windows\\…`;
- a mounted or copied volume (`Windows/System32` at the top) → `C:\\…`;
- a macOS folder copy (`Users` beside `Library`, `Applications`, `System` or `private`) → `/…`;
- a Velociraptor offline collection zip (`collection_context.json`, URL-encoded `uploads/auto/C%3A/…`);
- any other folder holding per-machine artifacts (an Amcache, a Prefetch folder, a SYSTEM hive, SRUM)
  or a PBX's `electron/{windows,osx}` update folder: paths are kept relative to the folder.
A folder in which the same per-machine artifact appears under two subfolders holds several machines,
and each subfolder is looked at on its own. Nothing here opens a file; symbolic links are not followed.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

from turncoat.triage.pbx import is_pbx_file

# Artifacts a machine has one of: two of them side by side mean two machines.
_ONE_PER_MACHINE = {"amcache.hve": "amcache", "srudb.dat": "srum", "system": "system-hive",
                    "software": "software-hive", "sam": "sam-hive"}
_DRIVE_FOLDER = re.compile(r"^([A-Za-z])(%3A|_|\$)?$", re.IGNORECASE)
_WINDOWS_TOP = {"windows", "users", "programdata", "program files", "program files (x86)"}
_MACOS_BESIDE_USERS = {"library", "applications", "system", "private"}
# Velociraptor offline collections are named Collection-<host>-<ISO time>.zip
_VELOCIRAPTOR_NAME = re.compile(r"^Collection-(.+?)-\d{4}-\d{2}-\d{2}T", re.IGNORECASE)


@dataclass
class CollectedFile:
    """One file of a collection: its bytes on disk, and where it was on the collected machine."""

    path: Path
    machine_path: str  # `C:\\Users\\…`, `/Users/…`, or relative to a plain folder
    display: str


@dataclass
class Collection:
    display: str
    layout: str        # kape, volume, macos, velociraptor, folder
    platform: str      # windows or macos
    host_hint: str     # the folder's or archive's name: the host until a hive or metadata says better
    files: list[CollectedFile] = field(default_factory=list)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (path, why)


def _children(folder: Path) -> dict[str, Path]:
    try:
        return {p.name.casefold(): p for p in folder.iterdir() if p.is_dir() and not p.is_symlink()}
    except OSError:
        return {}


def _drive_folders(folder: Path) -> list[tuple[str, Path]]:
    """KAPE drive folders (`C`, `C%3A`) that hold a Windows volume's top folders."""
    found = []
    for name, path in _children(folder).items():
        match = _DRIVE_FOLDER.match(name)
        if match and _WINDOWS_TOP & set(_children(path)):
            found.append((match.group(1).upper(), path))
    return sorted(found)


def layout_of(folder: Path) -> str | None:
    """kape, volume or macos when the folder itself is laid out as one machine; else None."""
    children = set(_children(folder))
    if _drive_folders(folder):
        return "kape"
    if "windows" in children and ("users" in children or "system32" in set(_children(folder / "Windows"))):
        return "volume"
    if "users" in children and children & _MACOS_BESIDE_USERS:
        return "macos"
    return None


def _files(root: Path, skipped: list[tuple[str, str]]) -> list[Path]:
    found: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False,
                                                onerror=lambda e: skipped.append((str(e.filename), str(e.strerror)))):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath) / name
            if path.is_symlink():
                skipped.append((str(path), "symbolic link not followed"))
            elif path.is_file():
                found.append(path)
    return found


def _anchor(path: Path) -> str | None:
    name = path.name.casefold()
    if name.endswith(".pf"):
        return "prefetch"
    if is_pbx_file(path.parts):
        return "pbx-update-folder"
    return _ONE_PER_MACHINE.get(name)


def _machine_path(layout: str, root: Path, path: Path) -> str:
    rel = path.relative_to(root).parts
    if layout == "kape":
        drive = _DRIVE_FOLDER.match(rel[0])
        return f"{drive.group(1).upper()}:\\" + "\\".join(rel[1:]) if drive else "\\".join(rel)
    if layout == "volume":
        return "C:\\" + "\\".join(rel)
    if layout == "macos":
        return "/" + "/".join(rel)
    return "\\".join((root.name, *rel))


def _collection(root: Path, layout: str) -> Collection:
    found = Collection(str(root), layout, "macos" if layout == "macos" else "windows", root.name)
    for path in _files(root, found.skipped):
        found.files.append(CollectedFile(path, _machine_path(layout, root, path), str(path)))
    return found


def find_collections(folder: Path) -> list[Collection]:
    """The collections in a folder the user gave: itself, several of its subfolders, or none."""
    layout = layout_of(folder)
    if layout:
        return [_collection(folder, layout)]
    children = sorted(_children(folder).values())
    if any(layout_of(child) for child in children):  # a folder of KAPE targets, volumes or Mac copies
        return [c for child in children for c in find_collections(child)]
    anchors: dict[str, set[str]] = {}  # anchor kind → first-level subfolders holding one
    loose = False
    for path in _files(folder, []):
        kind = _anchor(path)
        if kind is None:
            continue
        rel = path.relative_to(folder).parts
        if len(rel) == 1:
            loose = True
        else:
            anchors.setdefault(kind, set()).add(rel[0])
    if not loose and any(len(where) > 1 for where in anchors.values()):
        return [c for child in children for c in find_collections(child)]
    if anchors or loose:
        return [_collection(folder, "folder")]
    return []


def velociraptor_host(archive_name: str) -> str | None:
    """The host an offline collection was taken from, as its file name says."""
    match = _VELOCIRAPTOR_NAME.match(Path(archive_name).name)
    return match.group(1) if match else None


def velociraptor_machine_path(member: str) -> str | None:
    """`uploads/auto/C%3A/Users/x` → `C:\\Users\\x`; `uploads/ntfs/%5C%5C.%5CC%3A/$Extend/…` →
    `C:\\$Extend\\…`. None for the collection's own files (results, logs, context)."""
    parts = member.replace("\\", "/").split("/")
    if len(parts) < 3 or parts[0] != "uploads":
        return None
    path = unquote("/".join(parts[2:])).replace("/", "\\")
    path = re.sub(r"^\\\\[.?]\\", "", path)  # \\.\C: device prefix of raw NTFS reads
    return path
