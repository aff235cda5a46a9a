"""Read one triage collection into the case store: every file hashed, every artifact parsed.

The machine's own identity comes first (the SYSTEM hive's computer name, the SOFTWARE hive's
MachineGuid, a Velociraptor collection's name), so every row of the collection carries the host the
event logs of that machine also name. Then each file is recognised by its content and its place on
the machine, and handed to the parser of its artifact; every file also gets a `tri_file` row with its
three digests and, for executables, its version and signature facts. Each file is one evidence item
in the manifest, keyed by host, machine path and content, so the same DLL on two machines counts twice
(fleet consensus needs both) while ingesting a collection again adds nothing.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PureWindowsPath
from typing import Any

from turncoat.evidence.base import IssueLog, ReadIssue, Row
from turncoat.evidence.winevent import host_key
from turncoat.store.case import safe_text
from turncoat.store.triage_writer import TriageWriter
from turncoat.triage import browser, defender, macos, prefetch, registry, srum, tasks
from turncoat.triage.hashing import Digests, hash_files
from turncoat.triage.layout import CollectedFile, Collection
from turncoat.triage.macho import inspect_macho, is_macho
from turncoat.triage.pbx import pbx_row
from turncoat.triage.pe import inspect_pe, is_pe
from turncoat.triage.yara_scan import scan_file

HEAD = 4096
# Files this large are hashed but not parsed or scanned (an Electron app's executable is ~150 MB)
MAX_PARSE_BYTES = 512 * 1024 * 1024
# Most file times within this span: the collection was copied without keeping the machine's times.
COPY_SPAN_SECONDS = 600

Progress = Callable[[str, int, int], None]
MACOS_PREFERENCES = "/Library/Preferences/SystemConfiguration/preferences.plist"
WINDOWS_FOLDER = re.compile(r"^[a-z]:\\windows\\", re.IGNORECASE)
TRANSACTION_LOG = re.compile(r"\.log\d*$")


@dataclass
class CollectionResult:
    host: str
    entries: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _head(path: Path) -> bytes:
    try:
        with path.open("rb") as handle:
            return handle.read(HEAD)
    except OSError:
        return b""


def _utc(seconds: float | None) -> datetime | None:
    if seconds is None:
        return None
    try:
        return datetime.fromtimestamp(seconds, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _created(stat: os.stat_result) -> float | None:
    """The file's creation time where the platform keeps one (macOS, Windows); Linux's stat has none."""
    birth = getattr(stat, "st_birthtime", None)
    if birth is not None:
        return birth
    return stat.st_ctime if os.name == "nt" else None


def times_preserved(stats: list[os.stat_result]) -> bool:
    """Whether a collection kept its files' times: a copy that did not stamps (nearly) all of them with
    the few minutes of the copy itself."""
    times = sorted(s.st_mtime for s in stats)
    if len(times) < 5:
        return True
    low = times[int(len(times) * 0.05)]
    high = times[int(len(times) * 0.95) - 1]
    return high - low > COPY_SPAN_SECONDS


def artifact_kind(head: bytes, machine_path: str) -> str:
    """Which parser reads a file: by content first, by its place on the machine where content is ambiguous."""
    lower = machine_path.replace("/", "\\").lower()
    name = PureWindowsPath(lower).name
    if registry.is_hive(head):
        # a hive's transaction logs (.LOG, .LOG1, .LOG2) start like a hive; the hive reader replays them
        return "registry-log" if TRANSACTION_LOG.search(name) else "registry"
    if prefetch.is_prefetch(head):
        return "prefetch"
    if srum.is_ese(head):
        return "srum" if name == "srudb.dat" else "file"
    if head.startswith(b"SQLite format 3\x00"):
        return "browser" if browser.classify(machine_path) else "file"
    if "\\detectionhistory\\" in lower and defender.is_detection_history(head):
        return "defender-history"
    if name.startswith("mplog") and defender.is_mplog(head):
        return "mplog"
    if macos.bundle_of(machine_path):
        return "app-bundle"
    if tasks.is_task_xml(head):
        return "task"
    if name.endswith(".job") and tasks.is_job(head):
        return "job"
    return "file"


def looks_like_artifact(head: bytes) -> bool:
    """Whether a file no event reader knows is still worth the triage readers: by content alone."""
    return bool(registry.is_hive(head) or prefetch.is_prefetch(head) or srum.is_ese(head) or is_pe(head)
                or is_macho(head) or head.startswith(b"SQLite format 3\x00") or tasks.is_task_xml(head))


def _user_of(machine_path: str) -> str | None:
    match = re.search(r"[\\/]users[\\/]([^\\/]+)", machine_path, re.IGNORECASE)
    return match.group(1) if match else None


def _task_path(machine_path: str) -> str:
    """`C:\\Windows\\System32\\Tasks\\Microsoft\\X` → `\\Microsoft\\X` (the name Task Scheduler shows)."""
    parts = re.split(r"[\\/]", machine_path)
    lowered = [p.lower() for p in parts]
    if "tasks" in lowered:
        cut = len(lowered) - 1 - lowered[::-1].index("tasks")
        return "\\" + "\\".join(parts[cut + 1:])
    return "\\" + parts[-1]


class CollectionReader:
    """Reads the files of one collection into a TriageWriter; one instance per collection."""

    def __init__(self, collection: Collection, writer: TriageWriter, scratch: Path, known: set[str],
                 yara_rules: Any = None, progress: Progress | None = None, workers: int = 4) -> None:
        self.collection = collection
        self.writer = writer
        self.scratch = scratch
        self.known = known
        self.yara_rules = yara_rules
        self.progress = progress
        self.workers = workers
        self.result = CollectionResult(host=host_key(collection.host_hint) or "unknown")
        self.hives: dict[Path, registry.HiveFacts] = {}
        self.hive_issues: dict[Path, IssueLog] = {}
        self.notes: dict[str, list[str]] = {}  # per file: what the reader did that the analyst should know
        self.aliases: list[tuple[str, str]] = []  # names from the collection itself, stored with its first file

    def read(self) -> CollectionResult:
        files = self.collection.files
        self._identify(files)
        stats = []
        for item in files:
            try:
                stats.append(item.path.stat())
            except OSError:
                pass
        preserved = times_preserved(stats) if self.collection.layout != "velociraptor" else False
        if not preserved:
            self.result.notes.append(
                "the collection did not keep the machine's file times: file and Prefetch creation times "
                "are the time of the copy, not of the machine")
        total = sum(s.st_size for s in stats)
        done = 0
        by_path = {f.path: f for f in files}
        for path, digests, error in hash_files([f.path for f in files], workers=self.workers):
            item = by_path[path]
            done += digests.size if digests else 0
            self._read_file(item, digests, error, preserved)
            if self.progress:
                self.progress(item.display, done, total)
        self.writer.flush()
        return self.result

    # --- identity ---------------------------------------------------------------------------------

    def _identify(self, files: list[CollectedFile]) -> None:
        """Hives are read first: SYSTEM names the machine for every other row."""
        name = None
        for item in files:
            if artifact_kind(_head(item.path), item.machine_path) != "registry":
                continue
            issues = IssueLog()
            facts = registry.read_hive(item.path, issues, self.scratch, user=_user_of(item.machine_path))
            self.hives[item.path] = facts
            self.hive_issues[item.path] = issues
            if facts.kind == "system" and facts.facts.get("computer_name") and not name:
                name = facts.facts["computer_name"]
        for item in files if not name else []:
            if item.machine_path.lower() == MACOS_PREFERENCES.lower():
                name = macos.computer_name(item.path)
                if name:
                    self.aliases.append((name, "name"))
        if name:
            self.result.host = host_key(name) or self.result.host
        if host_key(self.collection.host_hint) != self.result.host:
            self.aliases.append((self.collection.host_hint, "collection"))

    # --- one file ---------------------------------------------------------------------------------

    def _read_file(self, item: CollectedFile, digests: Digests | None, error: str | None, preserved: bool) -> None:
        display = safe_text(item.display)
        key = f"{self.result.host}|{item.machine_path.lower()}|{digests.sha256 if digests else 'unreadable'}"
        evidence_id = hashlib.sha256(key.encode("utf-8", "surrogateescape")).hexdigest()[:16]
        if evidence_id in self.known:
            return
        self.known.add(evidence_id)
        if digests is None:
            self.result.entries.append({"evidence_id": evidence_id, "path": display, "status": "unreadable",
                                        "reader": "file", "issues": [{"message": error or "cannot read"}],
                                        "issue_count": 1, "records": 0, "host": self.result.host,
                                        "machine_path": safe_text(item.machine_path)})
            return
        head = _head(item.path)
        kind = artifact_kind(head, item.machine_path) if digests.size <= MAX_PARSE_BYTES else "file"
        issues = self.hive_issues.get(item.path) or IssueLog()
        emit = self._emitter(evidence_id, item.machine_path)
        try:
            stat = item.path.stat()
        except OSError as exc:
            issues.add(ReadIssue(f"cannot read file times: {exc}"))
            stat = None
        file_row = self._file_row(item, digests, stat, preserved, head, issues)
        pbx = pbx_row(item.machine_path, digests.sha256)
        # an installer waiting in a PBX's update folder is not installed on the PBX: it stays out of
        # the host's file evidence, and the PBX section of the report says what it is
        emit("tri_file", file_row, "pbx-update" if pbx is not None else "file")
        for alias, alias_kind in self.aliases:
            emit("tri_host", {"alias": alias, "kind": alias_kind}, "host")
        self.aliases = []
        try:
            self._parse(kind, item, issues, emit, file_row)
        except (OSError, MemoryError) as exc:
            issues.add(ReadIssue(f"reading stopped: {exc}"))
        if pbx is not None:
            emit("tri_pbx", pbx, "pbx")
        if self.yara_rules is not None and digests.size <= MAX_PARSE_BYTES:
            for match in scan_file(self.yara_rules, item.path, MAX_PARSE_BYTES, issues):
                match["file.path"] = item.machine_path
                match["file.hash.sha256"] = digests.sha256
                emit("tri_yara", match, "yara")
        self.result.entries.append({
            "evidence_id": evidence_id, "path": display, "sha256": digests.sha256, "size": digests.size,
            "reader": kind, "records": self.writer.sent(evidence_id), "host": self.result.host,
            "machine_path": safe_text(item.machine_path),
            "issues": [i.as_dict() for i in issues.listed], "issue_count": issues.count,
            "status": "read",
            **({"notes": self.notes[str(item.path)]} if self.notes.get(str(item.path)) else {}),
        })

    def _emitter(self, evidence_id: str, machine_path: str) -> Callable[[str, Row, str], None]:
        def emit(table: str, row: Row, artifact: str) -> None:
            self.writer.add(table, row, evidence_id=evidence_id, host=self.result.host,
                            source_path=machine_path, artifact=artifact)
        return emit

    def _file_row(self, item: CollectedFile, digests: Digests, stat: os.stat_result | None, preserved: bool,
                  head: bytes, issues: IssueLog) -> Row:
        row: Row = {
            "file.path": item.machine_path, "file.name": PureWindowsPath(item.machine_path).name
            if "\\" in item.machine_path else Path(item.machine_path).name,
            "file.size": digests.size, "file.hash.sha256": digests.sha256, "file.hash.sha1": digests.sha1,
            "file.hash.md5": digests.md5, "file.times_preserved": preserved, "file.type": "other",
        }
        if stat is not None:
            row.update({"file.created": _utc(_created(stat)), "file.modified": _utc(stat.st_mtime),
                        "file.accessed": _utc(stat.st_atime)})
            row["ts"] = row["file.created"] or row["file.modified"]
        if digests.size <= MAX_PARSE_BYTES:
            if is_pe(head):
                # Windows' own files are mostly signed through catalogs, which a file-only check cannot
                # see: unsigned there means "catalog-signed?", not "unsigned"
                row.update(inspect_pe(item.path, issues, system_file=bool(WINDOWS_FOLDER.match(item.machine_path))))
            elif is_macho(head):
                row.update(inspect_macho(item.path, issues))
            elif head[:4] == b"\x00\x00\x01\x00":
                row["file.type"] = "ico"
        return row

    def _parse(self, kind: str, item: CollectedFile, issues: IssueLog, emit: Callable[[str, Row, str], None],
               file_row: Row) -> None:
        if kind == "registry":
            facts = self.hives.get(item.path)
            if facts is None:
                return
            for table, rows in facts.rows.items():
                for row in rows:
                    emit(table, row, row.get("artifact") or facts.kind)
            self.notes.setdefault(str(item.path), []).extend(facts.notes)
            for alias, alias_kind in facts.aliases:
                if alias:
                    emit("tri_host", {"alias": alias, "kind": alias_kind}, "host")
        elif kind == "prefetch":
            created = file_row.get("file.created") if file_row.get("file.times_preserved") else None
            for row in prefetch.read_prefetch(item.path, issues):
                row["prefetch.file_created"] = created
                emit("tri_execution", row, "prefetch")
        elif kind == "srum":
            rows, _summary = srum.read_srum(item.path, issues, self.scratch)
            for row in rows:
                emit("tri_srum_net", row, "srum")
        elif kind == "browser":
            found = browser.classify(item.machine_path)
            if found is not None and found.artifact in ("history", "history-copy"):
                summary, domains = browser.read_history(item.path, issues, self.scratch, found)
                emit("tri_browser", summary, "browser")
                for row in domains:
                    emit("tri_browser_domain", row, "browser")
            elif found is not None:
                emit("tri_browser", browser.file_row(found, item.machine_path, file_row["file.size"]), "browser")
        elif kind == "defender-history":
            for row in defender.read_detection_history(item.path, issues):
                emit("tri_defender", row, "defender-history")
        elif kind == "mplog":
            for row in defender.read_mplog(item.path, issues):
                emit("tri_defender", row, "mplog")
        elif kind == "task":
            for row in tasks.read_task_xml(item.path, issues, _task_path(item.machine_path)):
                emit("tri_autorun", row, "task")
        elif kind == "app-bundle":
            for row in macos.read_app_plist(item.path, issues, item.machine_path):
                emit("tri_package", row, "app-bundle")
        elif kind == "job":
            for row in tasks.read_job(item.path, issues):
                emit("tri_autorun", row, "task")
