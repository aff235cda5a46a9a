"""macOS application bundles in a collection: which app, which version, installed where.

An `.app` bundle's `Contents/Info.plist` names it (CFBundleName, CFBundleIdentifier) and gives its
version (CFBundleShortVersionString, the one users see; CFBundleVersion as a fallback) — on macOS the
equivalent of a Windows Uninstall entry. The plist may be XML or binary; both are read by the standard
library, never by running anything from the bundle.
"""

from __future__ import annotations

import plistlib
import re
from pathlib import Path

from turncoat.evidence.base import IssueLog, ReadIssue, Row
from turncoat.triage.smallfile import read_whole

_BUNDLE_PLIST = re.compile(r"(?P<bundle>.*?[^/\\]+\.app)[/\\]Contents[/\\]Info\.plist$", re.IGNORECASE)
MAX_PLIST_BYTES = 4 * 1024 * 1024


def _plist(path: Path, issues: IssueLog, what: str) -> object | None:
    """A plist (XML or binary) read with the standard library, or None with an issue."""
    data = read_whole(path, issues, what, max_bytes=MAX_PLIST_BYTES)
    if data is None:
        return None
    try:
        return plistlib.loads(data)
    except (plistlib.InvalidFileException, ValueError, OverflowError) as exc:
        issues.add(ReadIssue(f"{what} cannot be read: {exc}", offset=0))
        return None


def bundle_of(machine_path: str) -> str | None:
    """The `.app` folder whose Info.plist this is, or None for any other file."""
    match = _BUNDLE_PLIST.match(machine_path)
    return match.group("bundle") if match else None


def _user(bundle: str) -> str | None:
    match = re.match(r"^/Users/([^/]+)/", bundle.replace("\\", "/"))
    return match.group(1) if match else None


def read_app_plist(path: Path, issues: IssueLog, machine_path: str) -> list[Row]:
    """A `tri_package` row for the bundle, or nothing (with an issue) when the plist cannot be read."""
    bundle = bundle_of(machine_path)
    if bundle is None:
        return []
    info = _plist(path, issues, "Info.plist")
    if info is None:
        return []
    if not isinstance(info, dict):
        issues.add(ReadIssue("Info.plist holds no dictionary", offset=0))
        return []

    def text(key: str) -> str | None:
        value = info.get(key)
        return str(value) if isinstance(value, (str, int, float)) and str(value).strip() else None

    name = text("CFBundleDisplayName") or text("CFBundleName") or Path(bundle.replace("\\", "/")).stem
    return [{
        "package.name": name, "package.version": text("CFBundleShortVersionString") or text("CFBundleVersion"),
        "package.vendor": text("CFBundleIdentifier"), "package.install_location": bundle,
        "user.name": _user(bundle), "registry.key": None, "event.action": "installed", "package.platform": "macos",
    }]


def computer_name(path: Path) -> str | None:
    """The Mac's name from `/Library/Preferences/SystemConfiguration/preferences.plist` (System →
    System → ComputerName), or None when the file does not say."""
    doc = _plist(path, IssueLog(), "preferences.plist")  # a name it cannot give is simply not used
    system = doc.get("System", {}).get("System", {}) if isinstance(doc, dict) else {}
    name = system.get("ComputerName") or system.get("HostName") if isinstance(system, dict) else None
    return str(name) if name else None
