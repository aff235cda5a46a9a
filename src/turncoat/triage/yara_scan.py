"""YARA over the files of a triage collection: rule folders compiled once, files scanned in threads.

Why compile once, each file in its own namespace: compiling is the slow part of YARA and a collection
has thousands of files; namespaces keep two rule files that reuse a rule name apart, and tell the
analyst which file a match came from. A rule file that does not compile is reported and left out, so
one bad file (a pack under edit, a third-party file) does not stop the others.

Why threads: yara-python releases the GIL while it scans, so one compiled rule set serves several
threads at once (YARA allows up to 32 concurrent scans per rule set).

Problems are reported, never raised: a file that vanished, is locked, is not a regular file, is larger
than the bound or takes longer than the time-out gives an issue and no matches; the run goes on.

    python -m turncoat.triage.yara_scan [--rules DIR ...] TARGET [TARGET ...]
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import yara

from turncoat.evidence.base import IssueLog, ReadIssue, Row
from turncoat.triage.hashing import ordered_map, walk_files

RULE_SUFFIXES = (".yar", ".yara")
PACK_RULES = Path(__file__).resolve().parents[1] / "intel" / "packs" / "3cx-2023" / "yara"
# Per file: a pathological rule/file pair must not stall a whole collection.
DEFAULT_TIMEOUT = 60
DEFAULT_MAX_BYTES = 512 * 1024 * 1024
# Offsets listed per match; the rest are counted ("+N more"), so one noisy string cannot bloat a row.
MAX_LISTED_STRINGS = 20
# YARA refuses more concurrent scans of one rule set than this (YR_MAX_THREADS).
MAX_SCAN_THREADS = 32

ScanResult = tuple[Path, list[Row], IssueLog]


def rule_files(folders: Iterable[Path]) -> list[tuple[Path, str]]:
    """Every .yar/.yara file under the folders (a folder may also be a single rule file), with a
    namespace unique across all of them: its path relative to its folder, prefixed by the folder's
    position when two folders hold the same relative path."""
    found: list[tuple[Path, str]] = []
    taken: set[str] = set()
    for index, folder in enumerate(folders):
        folder = Path(folder)
        if folder.is_file():
            files, base = [folder], folder.parent
        else:
            files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in RULE_SUFFIXES and p.is_file())
            base = folder
        for path in files:
            namespace = path.relative_to(base).as_posix()
            if namespace in taken:
                namespace = f"{index}/{namespace}"
            taken.add(namespace)
            found.append((path, namespace))
    return found


def _problem(problems: list[str], issues: IssueLog | None, message: str) -> None:
    problems.append(message)
    if issues is not None:
        issues.add(ReadIssue(message))


def compile_rules(folders: list[Path], issues: IssueLog | None = None) -> tuple[Any | None, list[str]]:
    """Compile every rule file under `folders` into one rule set, each file in its own namespace.

    Returns (rules, problems): rules is None when no file compiled. A file that does not compile is
    named in problems with YARA's message and left out; compiler warnings are reported too. The whole
    set is tried first, and files one by one only when it fails, so the usual case compiles once."""
    problems: list[str] = []
    files = rule_files(folders)
    for folder in folders:
        if not Path(folder).exists():
            _problem(problems, issues, f"YARA rule folder not found: {folder}")
    if not files:
        _problem(problems, issues, "no YARA rule files (.yar, .yara) found")
        return None, problems
    good = {namespace: str(path) for path, namespace in files}
    try:
        rules = yara.compile(filepaths=good)
    except yara.Error:
        for path, namespace in files:
            try:
                yara.compile(filepaths={namespace: str(path)})
            except yara.Error as exc:
                _problem(problems, issues, f"YARA rule file {path.name} left out: {exc}")
                del good[namespace]
        if not good:
            return None, problems
        try:
            rules = yara.compile(filepaths=good)
        except yara.Error as exc:  # files that compile alone but clash together (e.g. a shared include)
            _problem(problems, issues, f"YARA rules do not compile together: {exc}")
            return None, problems
    for warning in getattr(rules, "warnings", None) or []:
        _problem(problems, issues, f"YARA warning: {warning}")
    return rules, problems


def rule_meta(rules: Any) -> dict[str, dict[str, Any]]:
    """Each rule's meta (stage, reference, ...) by rule name, so a caller can give a match its stage
    without repeating the rule's facts elsewhere. Names repeated across namespaces keep the first."""
    meta: dict[str, dict[str, Any]] = {}
    for rule in rules:
        meta.setdefault(rule.identifier, dict(rule.meta))
    return meta


def _string_list(match: Any) -> str | None:
    """'identifier@offset' for the first MAX_LISTED_STRINGS hits, ';'-joined; None for a rule that
    matched on its condition alone. Accepts yara-python >= 4.3 objects and the older tuples."""
    hits: list[str] = []
    total = 0
    for item in match.strings:
        if isinstance(item, tuple):  # yara-python < 4.3: (offset, identifier, data)
            total += 1
            if len(hits) < MAX_LISTED_STRINGS:
                hits.append(f"{item[1]}@{item[0]}")
            continue
        for instance in item.instances:
            total += 1
            if len(hits) < MAX_LISTED_STRINGS:
                hits.append(f"{item.identifier}@{instance.offset}")
    if not hits:
        return None
    if total > len(hits):
        hits.append(f"+{total - len(hits)} more")
    return ";".join(hits)


def _match(rules: Any, path: Path, size: int, timeout: int) -> list[Any]:
    """YARA maps the file itself when it can be given the path; on Windows it opens paths through the
    ANSI API, and nowhere can it take a name that is not valid UTF-8, so those files are read here."""
    name = str(path)
    if (os.name != "nt" or name.isascii()) and not _has_surrogates(name):
        return rules.match(filepath=name, timeout=timeout)
    with path.open("rb") as handle:
        data = handle.read(size + 1)
    return rules.match(data=data, timeout=timeout)


def _has_surrogates(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def scan_file(rules: Any, path: Path, max_bytes: int = DEFAULT_MAX_BYTES, issues: IssueLog | None = None,
              timeout: int = DEFAULT_TIMEOUT) -> list[Row]:
    """The matches of `rules` in one file, as `tri_yara` rows (plus "ts", None); `rule.stage` is the
    rule's `stage` meta. `file.path` is the path scanned and `file.hash.sha256` None: the caller knows
    the machine path and the digest. Files above `max_bytes`, unreadable files and time-outs add an
    issue and give no rows."""
    issues = issues if issues is not None else IssueLog()
    try:
        info = path.stat()
    except FileNotFoundError:
        issues.add(ReadIssue("YARA: file not found (it may have been removed during the run)"))
        return []
    except OSError as exc:
        issues.add(ReadIssue(f"YARA: cannot read file: {exc.strerror or exc}"))
        return []
    if not stat.S_ISREG(info.st_mode):
        issues.add(ReadIssue("YARA: not a regular file, not scanned"))
        return []
    if info.st_size > max_bytes:
        issues.add(ReadIssue(f"YARA: not scanned, {info.st_size:,} bytes is above the limit of {max_bytes:,}"))
        return []
    try:
        matches = _match(rules, path, info.st_size, timeout)
    except yara.TimeoutError:
        issues.add(ReadIssue(f"YARA: scan stopped after the time-out of {timeout} s; matches unknown"))
        return []
    except yara.Error as exc:
        issues.add(ReadIssue(f"YARA: cannot scan: {exc}"))
        return []
    except OSError as exc:
        issues.add(ReadIssue(f"YARA: cannot read file: {exc.strerror or exc}"))
        return []
    return [{
        "rule.name": match.rule,
        "rule.namespace": match.namespace,
        "rule.source": PurePosixPath(match.namespace).name,
        "rule.stage": match.meta.get("stage"),
        "file.path": str(path),
        "file.hash.sha256": None,
        "yara.strings": _string_list(match),
        "ts": None,
    } for match in matches]


def scan_files(rules: Any, paths: Iterable[Path], workers: int | None = None,
               max_bytes: int = DEFAULT_MAX_BYTES, timeout: int = DEFAULT_TIMEOUT) -> Iterator[ScanResult]:
    """Scan many files in threads sharing one rule set; yields (path, rows, issues) in input order,
    with a bounded number of files in flight."""
    count = min(workers or max(2, os.cpu_count() or 2), MAX_SCAN_THREADS)

    def one(path: Path) -> ScanResult:
        issues = IssueLog()
        return path, scan_file(rules, path, max_bytes, issues, timeout), issues

    return ordered_map(one, (Path(p) for p in paths), count)


def main(argv: list[str] | None = None) -> int:
    """Print `rule namespace path strings` per match and `ERROR message path` per problem."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m turncoat.triage.yara_scan",
                                     description="Scan files with YARA rule folders (default: the 3cx-2023 pack's).")
    parser.add_argument("targets", nargs="+", type=Path, help="files or folders (walked recursively)")
    parser.add_argument("--rules", action="append", type=Path, help="rule folder or file (repeatable)")
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--max-bytes", type=int, default=DEFAULT_MAX_BYTES)
    parser.add_argument("--timeout", type=int, default=DEFAULT_TIMEOUT)
    args = parser.parse_args(argv)
    rules, problems = compile_rules(args.rules or [PACK_RULES])
    for problem in problems:
        print(f"RULES {problem}", file=sys.stderr)
    if rules is None:
        return 2
    out = sys.stdout
    paths = (path for target in args.targets for path in walk_files(target))
    for path, rows, issues in scan_files(rules, paths, args.workers, args.max_bytes, args.timeout):
        for row in rows:
            out.write(f"{row['rule.name']} {row['rule.namespace']} {path} {row['yara.strings'] or '-'}\n")
        for issue in issues.listed:
            out.write(f"ERROR {issue.message} {path}\n")
    out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
