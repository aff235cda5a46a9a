"""`turncoat ingest`: evidence → case store, with a manifest of every input and what became of it.

Each evidence item is hashed (SHA-256), recognised by content, read by its reader into Parquet
parts, and listed in the manifest with its size, reader, record count (counted from the store) and
problems. Items whose SHA-256 is already in the case are skipped, so ingesting a second collection
adds to a case without duplicating it. Items are read in parallel processes, one item per task.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from turncoat.evidence.base import IssueLog, ReadIssue
from turncoat.evidence.evtx_reader import read_evtx
from turncoat.evidence.json_reader import read_json_document, read_json_lines
from turncoat.evidence.network import BY_NAME as NET_FORMATS
from turncoat.evidence.network import NetContext
from turncoat.evidence.sniff import (
    EMPTY,
    EVTX,
    GZIP,
    JSON_DOCUMENT,
    JSON_LINES,
    TAR,
    UNKNOWN,
    XZ,
    ZIP,
    hash_and_sniff,
)
from turncoat.evidence.sources import EvidenceItem, Walker, cleanup
from turncoat.store.case import Case, safe_text
from turncoat.store.net_writer import NetWriter
from turncoat.store.schema import (
    FROM_NETWORK_LOGS,
    NET_TABLES,
    TRIAGE_TABLES,
    WIN_EVENTS,
)
from turncoat.store.writer import DEFAULT_BATCH_ROWS, TableWriter
from turncoat.timezones import zone_for
from turncoat.triage.ingest import TriageIngest

ARCHIVES = (ZIP, TAR, GZIP, XZ)
READERS: dict[str, Callable[..., int]] = {
    EVTX: read_evtx,
    JSON_LINES: read_json_lines,
    JSON_DOCUMENT: read_json_document,
}

Progress = Callable[[str, int, int], None]  # (item shown, bytes done, bytes total)


# Small items are read together so their rows share Parquet parts (hundreds of one-event files
# would otherwise make hundreds of tiny parts); a task holds items up to this many bytes.
TASK_BYTES = 256 * 1024 * 1024
MIN_TASK_BYTES = 4 * 1024 * 1024


def read_items(task: list[tuple[str, str, str]], stem: str, parquet_dir: str, batch_rows: int,
               source_tz: dict[str, str] | None = None) -> dict[str, Any]:
    """Read a task's evidence items (path, evidence id, reader) into shared Parquet parts.

    Runs in a worker process; returns, per evidence id, its problems and the rows it sent.
    """
    writer = TableWriter(Path(parquet_dir) / WIN_EVENTS, stem, batch_rows=batch_rows)
    net_writer = NetWriter(Path(parquet_dir), stem)
    results: dict[str, Any] = {}
    collecting = gc.isenabled()
    gc.disable()  # millions of short-lived dicts: the cyclic collector would rescan them for nothing
    try:
        _read_task(task, writer, net_writer, source_tz or {}, results)
    finally:
        if collecting:
            gc.enable()
    if writer.bad_times:
        results["_bad_times"] = writer.bad_times
    return results


def _read_task(task: list[tuple[str, str, str]], writer: TableWriter, net_writer: NetWriter,
               source_tz: dict[str, str], results: dict[str, Any]) -> None:
    for path, evidence_id, kind in task:
        issues = IssueLog()
        sent = 0
        zone = None
        try:
            if kind in NET_FORMATS:
                fmt = NET_FORMATS[kind]
                ctx = NetContext(evidence_id, issues, net_writer)
                if fmt.local_time:
                    zone = source_tz.get(kind) or source_tz.get("*") or "UTC"
                    ctx.tz = zone_for(zone)
                sent = fmt.read(Path(path), ctx)
            else:
                sink = writer if kind == EVTX else writer.add  # EVTX rows may take the writer's fast path
                sent = READERS[kind](Path(path), evidence_id, sink, issues)
        except (OSError, MemoryError) as exc:
            issues.add(ReadIssue(f"reading stopped: {exc}"))
        results[evidence_id] = {
            "rows": sent,
            "issues": [i.as_dict() for i in issues.listed],
            "issue_count": issues.count,
        }
        if zone is not None:
            results[evidence_id]["time_zone"] = zone
    writer.flush()


@dataclass
class IngestResult:
    manifest: dict[str, Any]
    new_items: int = 0
    skipped: int = 0
    problems: int = 0
    messages: list[str] = field(default_factory=list)


class _Run:
    """One ingest run: admits items (hash, recognise, skip what the case has) and reads them.

    Items are hashed in the main process while worker processes read the tasks already formed,
    so hashing overlaps with parsing instead of preceding it.
    """

    def __init__(self, case: Case, manifest: dict[str, Any], batch_rows: int, progress: Progress | None,
                 source_tz: dict[str, str] | None = None) -> None:
        self.case = case
        self.source_tz = source_tz or {}
        self.walker = Walker(case.scratch)
        self.manifest = manifest
        self.batch_rows = batch_rows
        self.progress = progress
        self.known = {item["sha256"]: item for item in manifest["items"] if item.get("sha256")}
        self.result = IngestResult(manifest)
        self.total = 0
        self.done = 0
        self.task_bytes = TASK_BYTES
        self.counted: dict[str, int] = {}  # evidence id → bytes it adds to the progress bar
        self.divert: Callable[[EvidenceItem], bool] | None = None

    def note_problem(self, display: str, message: str) -> None:
        _add_unique(self.manifest["problems"], {"path": display, "message": message})
        self.result.problems += 1
        self.result.messages.append(f"{display}: {message}")

    def tick(self, display: str, size: int) -> None:
        self.done += size
        if self.progress:
            self.progress(display, self.done, self.total)

    def admit(self, item: EvidenceItem) -> list[tuple[dict[str, Any], EvidenceItem]]:
        """Entries to read for an item: itself, or the members of an archive (recursively); none for
        a duplicate, an unknown format or an unreadable file. Every input gets a manifest entry."""
        display = safe_text(item.display)
        size = _size(item.path)
        counted = size if item.depth == 0 else 0  # progress counts the inputs' bytes, not unpacked ones
        try:
            digest, kind = hash_and_sniff(item.path)
        except OSError as exc:
            self.note_problem(display, f"cannot read: {exc}")
            return []
        if digest in self.known:
            first = self.known[digest]
            if first["path"] != display:
                _add_unique(first.setdefault("duplicates", []),
                            {"path": display, "sha256": digest, "duplicate_of": first["path"]})
            self.result.skipped += 1
            self.tick(display, counted)
            return []
        if kind == UNKNOWN and self.divert is not None and self.divert(item):
            self.tick(display, counted)  # a loose triage artifact (a PE, a hive…): the triage reader takes it
            return []
        entry = {"evidence_id": digest[:16], "path": display, "sha256": digest, "size": size, "reader": kind,
                 "records": 0, "issues": [], "issue_count": 0, "status": "pending"}
        self.known[digest] = entry
        self.manifest["items"].append(entry)
        if kind in ARCHIVES:
            members, problems = self.walker.expand(item, kind)
            entry.update(status="archive", members=len(members))
            for problem in problems:
                self.note_problem(safe_text(problem.display), problem.message)
            self.tick(display, counted)
            return [admitted for member in members for admitted in self.admit(member)]
        if kind in (UNKNOWN, EMPTY):
            message = "format not recognised by content; not read" if kind == UNKNOWN else "empty file"
            entry.update(status="unknown-format" if kind == UNKNOWN else "empty", issue_count=1,
                         issues=[{"message": message, "offset": 0}])
            self.result.messages.append(f"{display}: {message}")
            self.tick(display, counted)
            return []
        self.counted[entry["evidence_id"]] = counted
        return [(entry, item)]

    def tasks(self, items: list[EvidenceItem]) -> Iterator[list[tuple[dict[str, Any], str]]]:
        """Admitted items grouped in order into tasks of at most `task_bytes`."""
        current: list[tuple[dict[str, Any], str]] = []
        size = 0
        for item in items:
            for entry, readable in self.admit(item):
                if current and size + entry["size"] > self.task_bytes:
                    yield current
                    current, size = [], 0
                current.append((entry, str(readable.path)))
                size += entry["size"]
        if current:
            yield current

    def args(self, task: list[tuple[dict[str, Any], str]]) -> tuple:
        spec = [(path, entry["evidence_id"], entry["reader"]) for entry, path in task]
        return spec, f"{task[0][0]['evidence_id']}-t", str(self.case.parquet), self.batch_rows, self.source_tz

    def collect(self, task: list[tuple[dict[str, Any], str]], outcome: dict[str, Any]) -> None:
        bad_times = outcome.pop("_bad_times", 0)
        if bad_times:
            self.result.messages.append(f"{bad_times} events with an unreadable time were kept with an empty time")
        for entry, _ in task:
            out = outcome[entry["evidence_id"]]
            entry["issues"] = out["issues"]
            entry["issue_count"] = out["issue_count"]
            if "time_zone" in out:
                entry["time_zone"] = out["time_zone"]
            entry["status"] = "read" if out["rows"] or not out["issue_count"] else "unreadable"
            self.result.new_items += 1
            for issue in out["issues"][:5]:
                where = ", ".join(f"{k} {v}" for k, v in issue.items() if k != "message") or "file"
                self.result.messages.append(f"{entry['path']} ({where}): {issue['message']}")
            if out["issue_count"] > 5:
                self.result.messages.append(f"{entry['path']}: {out['issue_count'] - 5} more problems (see manifest)")
            self.tick(entry["path"], self.counted.pop(entry["evidence_id"], 0))

    def read(self, items: list[EvidenceItem], workers: int) -> None:
        self.total = sum(_size(i.path) for i in items)
        # enough tasks to keep every worker busy, few enough to keep Parquet parts large
        self.task_bytes = max(MIN_TASK_BYTES, min(TASK_BYTES, self.total // max(1, workers * 4)))
        if workers <= 1:
            for task in self.tasks(items):
                self.collect(task, read_items(*self.args(task)))
            return
        with ProcessPoolExecutor(max_workers=workers) as pool:
            pending = [(task, pool.submit(read_items, *self.args(task))) for task in self.tasks(items)]
            for task, future in pending:
                self.collect(task, future.result())


def ingest(
    inputs: Iterable[Path],
    case: Case,
    workers: int = 2,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    progress: Progress | None = None,
    source_tz: dict[str, str] | None = None,
    yara_rules: list[Path] | None = None,
) -> IngestResult:
    """Read every evidence item under `inputs` into `case`; returns the updated manifest.

    `source_tz` maps a reader name (or "*" for all) to the IANA zone of sources that log local
    time; they are read as UTC when none is given. Triage collections among the inputs (KAPE,
    Velociraptor, copied volumes and folders: triage/layout.py) are read by the triage readers, their
    event logs by the event readers; `yara_rules` adds rule folders to the packs' own YARA rules.
    """
    case.create()
    manifest = case.load_manifest()
    run = _Run(case, manifest, batch_rows, progress, source_tz)
    try:
        paths = [Path(p) for p in inputs]
        discovery = run.walker.walk(paths)
        for problem in discovery.problems:
            run.note_problem(safe_text(problem.display), problem.message)
        triage = TriageIngest(case, manifest, run.walker, progress, yara_rules)
        plain = triage.claim(paths, discovery.items)
        run.divert = triage.divert
        run.read(plain, workers)
        triage.read(run.result)
    finally:
        cleanup(case.scratch)
    _count_from_store(case, manifest)
    manifest["items"].sort(key=lambda e: e["path"])
    manifest["problems"].sort(key=lambda e: (e["path"], e["message"]))
    case.save_manifest(manifest)
    return run.result


def _add_unique(items: list, entry: dict) -> None:
    if entry not in items:
        items.append(entry)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _count_from_store(case: Case, manifest: dict[str, Any]) -> None:
    """Record counts come from the store itself, so the manifest says what a query will see."""
    con = case.connect(rebuild=True)
    try:
        # findings and verdicts describe the evidence as it was: new evidence makes them stale
        con.execute("DROP TABLE IF EXISTS findings")
        con.execute("DROP TABLE IF EXISTS assessments")
        # a triage file's own `tri_file` row counts only when hashing is all that was done with it
        counted = " UNION ALL ".join(
            f"SELECT evidence_id, count(*) AS n FROM {t} {FROM_NETWORK_LOGS if t in NET_TABLES else ''} GROUP BY 1"
            for t in ("win_events_all", *NET_TABLES, *(t for t in TRIAGE_TABLES if t != "tri_file")))
        counts = dict(con.execute(f"SELECT evidence_id, sum(n) FROM ({counted}) GROUP BY 1").fetchall())
        hashed = dict(con.execute("SELECT evidence_id, count(*) FROM tri_file GROUP BY 1").fetchall())
        repeated = dict(con.execute("SELECT evidence_id, count(*) FROM duplicate_rows GROUP BY 1").fetchall())
    finally:
        con.close()
    for entry in manifest["items"]:
        if "evidence_id" not in entry:
            continue
        entry["records"] = int(counts.get(entry["evidence_id"], 0))
        if entry.get("reader") == "file":
            entry["records"] += int(hashed.get(entry["evidence_id"], 0))
        entry["records_unique"] = entry["records"] - int(repeated.get(entry["evidence_id"], 0))
