"""The triage side of `turncoat ingest`: which inputs are collections, and reading them.

Event logs inside a collection (a KAPE target's `winevt\\Logs`) are still read by the event readers:
`claim` hands them back. Everything else in a collection is read by `collect.CollectionReader`, and
each of its files becomes a manifest entry with the host it belongs to.
"""

from __future__ import annotations

import hashlib
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from turncoat.evidence.sniff import EMPTY, HEAD_BYTES, UNKNOWN, ZIP, sniff_bytes
from turncoat.evidence.sources import EvidenceItem, Walker
from turncoat.store.case import Case, safe_text
from turncoat.store.triage_writer import TriageWriter
from turncoat.triage import macos
from turncoat.triage.collect import CollectionReader, looks_like_artifact
from turncoat.triage.layout import (
    CollectedFile,
    Collection,
    find_collections,
    velociraptor_host,
    velociraptor_machine_path,
)

Progress = Callable[[str, int, int], None]
# Kinds the event and network readers take even inside a collection.
_NOT_TRIAGE = {UNKNOWN, EMPTY, ZIP}


def _sniff(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return sniff_bytes(handle.read(HEAD_BYTES))
    except OSError:
        return UNKNOWN


def is_velociraptor_collection(path: Path) -> bool:
    """An offline collection zip: Velociraptor writes `collection_context.json` at its top."""
    try:
        with path.open("rb") as handle:
            if handle.read(4) != b"PK\x03\x04":
                return False
        with zipfile.ZipFile(path) as archive:
            return "collection_context.json" in archive.namelist()
    except (OSError, zipfile.BadZipFile, ValueError):
        return False


def pack_yara_folders() -> list[Path]:
    """The YARA folders of the built-in packs (`<pack>/yara/`)."""
    from turncoat.intel.pack import builtin_pack_dirs

    return [d / "yara" for d in builtin_pack_dirs() if (d / "yara").is_dir()]


class TriageIngest:
    def __init__(self, case: Case, manifest: dict[str, Any], walker: Walker, progress: Progress | None,
                 yara_rules: list[Path] | None) -> None:
        self.case = case
        self.manifest = manifest
        self.walker = walker
        self.progress = progress
        self.user_yara = yara_rules or []
        self.collections: list[Collection] = []
        self.inputs: list[Path] = []
        self.loose: dict[str, Collection] = {}  # loose artifacts, by the input folder or archive they came in

    def divert(self, item: EvidenceItem) -> bool:
        """Take a file outside any collection that no event reader knows but that is a triage artifact
        (an executable, a hive, a Prefetch or SQLite file…): files given together form one loose
        collection per input folder (or per archive), named after it."""
        try:
            with item.path.open("rb") as handle:
                head = handle.read(4096)
        except OSError:
            return False
        if not looks_like_artifact(head) and not macos.bundle_of(item.display.replace("!", "/")):
            return False
        if "!" in item.display:  # an archive member: the archive is its collection
            key, member = item.display.rsplit("!", 1)
            name = Path(key).name.split(".")[0] or "archive"
            machine_path = "\\".join((name, *member.replace("\\", "/").split("/")))
        else:
            root = next((p for p in self.inputs if p.is_dir() and item.path.is_relative_to(p)), item.path.parent)
            key, name = str(root), root.name or "evidence"
            machine_path = "\\".join((name, *item.path.relative_to(root).parts))
        collection = self.loose.get(key)
        if collection is None:
            collection = self.loose[key] = Collection(key, "folder", "windows", name)
            self.collections.append(collection)
        collection.files.append(CollectedFile(item.path, machine_path, item.display))
        return True

    def claim(self, inputs: list[Path], items: list[EvidenceItem]) -> list[EvidenceItem]:
        """Find the collections among the inputs; return the items the event readers should read."""
        self.inputs = [p for p in inputs if p.is_dir()]
        for path in inputs:
            if path.is_dir():
                self.collections.extend(find_collections(path))
        in_collection = {f.path for c in self.collections for f in c.files}
        plain = []
        for item in items:
            if item.path in in_collection:
                if _sniff(item.path) not in _NOT_TRIAGE:
                    plain.append(item)  # an event or network log: its reader knows it best
                continue
            if is_velociraptor_collection(item.path):
                self._velociraptor(item)
                continue
            plain.append(item)
        # event logs of a collection are read by their readers, not hashed again as triage files
        plain_paths = {i.path for i in plain}
        for collection in self.collections:
            collection.files = [f for f in collection.files if f.path not in plain_paths]
        return plain

    def _velociraptor(self, item: EvidenceItem) -> None:
        members, problems = self.walker.expand(item, ZIP)
        collection = Collection(item.display, "velociraptor", "windows",
                                velociraptor_host(item.path.name) or item.path.stem)
        for problem in problems:
            collection.skipped.append((problem.display, problem.message))
        for member in members:
            name = member.display.rsplit("!", 1)[-1]
            machine_path = velociraptor_machine_path(name)
            if machine_path is not None:
                collection.files.append(CollectedFile(member.path, machine_path, member.display))
        self.collections.append(collection)

    def read(self, result: Any) -> None:
        """Read every collection found; manifest entries and messages go to the ingest result."""
        if not self.collections:
            return
        rules = self._rules(result)
        known = {e["evidence_id"] for e in self.manifest["items"] if e.get("evidence_id")}
        for number, collection in enumerate(self.collections):
            stem = "tri-" + hashlib.sha256(f"{collection.display}|{time.time_ns()}|{number}".encode(
                "utf-8", "surrogateescape")).hexdigest()[:16]
            writer = TriageWriter(self.case.parquet, stem)
            reader = CollectionReader(collection, writer, self.case.scratch / stem, known, rules, self.progress)
            outcome = reader.read()
            for path, why in collection.skipped:
                result.problems += 1
                self.manifest["problems"].append({"path": safe_text(path), "message": why})
            self.manifest.setdefault("collections", []).append({
                "path": safe_text(collection.display), "layout": collection.layout, "host": outcome.host,
                "files": len(collection.files), "notes": outcome.notes})
            for entry in outcome.entries:
                self.manifest["items"].append(entry)
                result.new_items += 1
                for issue in entry["issues"][:3]:
                    where = ", ".join(f"{k} {v}" for k, v in issue.items() if k != "message") or "file"
                    result.messages.append(f"{entry['path']} ({where}): {issue['message']}")
            for note in outcome.notes:
                result.messages.append(f"{collection.display}: {note}")

    def _rules(self, result: Any) -> Any:
        from turncoat.triage.yara_scan import compile_rules

        folders = pack_yara_folders() + [Path(p) for p in self.user_yara]
        if not folders:
            return None
        rules, problems = compile_rules(folders)
        for problem in problems:
            result.messages.append(f"YARA: {problem}")
        return rules
