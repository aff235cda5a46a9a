"""Loading Sigma rule folders and converting them once: rules → `RuleSet` of compiled rules.

Each rule file is read on its own, so a malformed file, an unknown modifier or a logsource with no
target costs that rule only: it is listed in `RuleSet.unconverted` with its path and reason. The
conversion of a file is cached under its content hash (plus the engine version and the placeholder
values), so a re-run over 2,400 SigmaHQ rules reads and hashes the files but converts nothing.
"""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import yaml

from turncoat.detect.sigma.logsources import UnknownLogsource, resolve

#: Bump when conversion output changes, so cached conversions of older engines are not reused.
ENGINE_VERSION = "5"

LEVELS: tuple[str, ...] = ("informational", "low", "medium", "high", "critical")
STATUSES: tuple[str, ...] = ("stable", "test", "experimental", "deprecated", "unsupported")
CORRELATION_TYPES: tuple[str, ...] = (
    "event_count", "value_count", "temporal", "temporal_ordered", "value_sum", "value_avg",
    "value_percentile", "value_median")
MAX_RULE_FILE_BYTES = 4 * 1024 * 1024  # SigmaHQ's largest rule is ~60 kB; a bigger file is not a rule


@dataclass
class RuleMeta:
    """What every Sigma rule says about itself, and where it was read from."""

    rule_id: str
    title: str
    level: str
    status: str
    tags: list[str]
    path: str


@dataclass
class CompiledRule(RuleMeta):
    """A converted detection rule: where it looks (`target`) and the expression that must hold there."""

    target: str
    expr: str
    name: str | None = None
    description: str = ""
    falsepositives: list[str] = field(default_factory=list)
    custom: dict[str, Any] = field(default_factory=dict)  # extra top-level keys (a pack's `stage`)


@dataclass
class CompiledCorrelation(RuleMeta):
    """A Sigma correlation rule, kept as data: the engine evaluates it over its rules' hits."""

    kind: str
    rules: list[str]             # ids or names of the rules it correlates
    group_by: list[str]
    timespan: int                # seconds
    op: str                      # lt, lte, gt, gte, eq, neq
    count: float
    value_field: str | None
    percentile: int | None
    aliases: dict[str, dict[str, str]]  # alias → {rule id or name → field}
    generate: bool
    name: str | None = None
    description: str = ""
    custom: dict[str, Any] = field(default_factory=dict)


@dataclass
class Unconverted:
    path: str
    rule_id: str
    title: str
    reason: str


@dataclass
class RuleSet:
    rules: list[CompiledRule] = field(default_factory=list)
    correlations: list[CompiledCorrelation] = field(default_factory=list)
    unconverted: list[Unconverted] = field(default_factory=list)
    files: int = 0
    cached: int = 0

    def extend(self, other: RuleSet) -> None:
        self.rules += other.rules
        self.correlations += other.correlations
        self.unconverted += other.unconverted
        self.files += other.files
        self.cached += other.cached


def cache_dir() -> Path:
    """Per-user cache folder (TURNCOAT_CACHE_DIR overrides), in each platform's usual place."""
    if os.environ.get("TURNCOAT_CACHE_DIR"):
        return Path(os.environ["TURNCOAT_CACHE_DIR"])
    if sys.platform == "win32":
        return Path(os.environ.get("LOCALAPPDATA", Path.home() / "AppData" / "Local")) / "turncoat" / "cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "turncoat"
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "turncoat"


def rule_files(paths: Iterable[Path]) -> list[Path]:
    """Every .yml/.yaml under the given files and folders, in a stable order."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            found += sorted(p for p in path.rglob("*") if p.suffix.lower() in (".yml", ".yaml") and p.is_file())
        else:
            found.append(path)
    return found


class _Converter:
    """pySigma parsing and conversion, created only when some file is not in the cache."""

    def __init__(self, placeholders: dict[str, list[str]]) -> None:
        from sigma.processing.pipeline import ProcessingItem, ProcessingPipeline
        from sigma.processing.transformations import ValueListPlaceholderTransformation

        from turncoat.detect.sigma.backend import DuckDBBackend

        pipeline = ProcessingPipeline()
        if placeholders:
            pipeline = ProcessingPipeline(
                items=[ProcessingItem(ValueListPlaceholderTransformation(include=sorted(placeholders)),
                                      identifier="turncoat-placeholders")],
                vars=dict(placeholders))
        self.backend = DuckDBBackend(pipeline)

    def convert_file(self, path: Path, text: str) -> list[dict[str, Any]]:
        from sigma.collection import SigmaCollection
        from sigma.correlations import SigmaCorrelationRule
        from sigma.exceptions import SigmaError

        try:
            collection = SigmaCollection.from_yaml(text, collect_errors=True, resolve_references=False)
        except (SigmaError, yaml.YAMLError) as error:
            return [_unconverted(path, "", "", f"not valid Sigma YAML: {_first_line(error)}")]
        out: list[dict[str, Any]] = []
        for error in collection.errors:
            out.append(_unconverted(path, "", "", f"not valid Sigma: {_first_line(error)}"))
        for rule in collection.rules:
            meta = _meta(rule, path)
            if getattr(rule, "errors", None):  # pySigma keeps a broken rule, empty, with its errors
                out.append(_unconverted(path, meta["rule_id"], meta["title"], _first_line(rule.errors[0])))
                continue
            if isinstance(rule, SigmaCorrelationRule):
                out.append(_correlation(rule, meta))
                continue
            try:
                target = resolve(rule.logsource.product, rule.logsource.category, rule.logsource.service)
                converted = self.backend.convert_rule(rule)
                if not converted:
                    raise ValueError("the rule's condition converts to nothing")
            except UnknownLogsource as error:
                out.append(_unconverted(path, meta["rule_id"], meta["title"], str(error)))
                continue
            except Exception as error:  # noqa: BLE001 - pySigma raises many kinds; one rule never stops the run
                out.append(_unconverted(path, meta["rule_id"], meta["title"], _first_line(error)))
                continue
            expr = converted[0].expr if len(converted) == 1 else \
                "(" + " OR ".join(f"coalesce({c.expr}, false)" for c in converted) + ")"
            out.append({"kind": "rule", **meta, "target": target.name, "expr": expr})
        return out


def _first_line(error: BaseException) -> str:
    text = str(error).strip() or type(error).__name__
    return text.splitlines()[0][:500]


def _unconverted(path: Path, rule_id: str, title: str, reason: str) -> dict[str, Any]:
    return {"kind": "unconverted", "path": str(path), "rule_id": rule_id, "title": title, "reason": reason}


_KNOWN_KEYS = {"title", "id", "name", "status", "description", "references", "author", "date", "modified",
               "tags", "logsource", "detection", "fields", "falsepositives", "level", "related", "license",
               "correlation", "taxonomy", "scope", "generate", "regression_tests_path", "simulation"}


def _meta(rule: Any, path: Path) -> dict[str, Any]:
    custom = {k: v for k, v in (rule.custom_attributes or {}).items() if k not in _KNOWN_KEYS}
    return {
        "rule_id": str(rule.id) if rule.id else "",
        "title": str(rule.title or ""),
        "level": rule.level.name.lower() if rule.level else "",
        "status": rule.status.name.lower() if rule.status else "",
        "tags": [str(t) for t in rule.tags],
        "path": str(path),
        "name": rule.name,
        "description": str(rule.description or ""),
        "falsepositives": [str(f) for f in (getattr(rule, "falsepositives", None) or [])],
        "custom": orjson.loads(orjson.dumps(custom, default=str)),
    }


def _correlation(rule: Any, meta: dict[str, Any]) -> dict[str, Any]:
    from sigma.correlations import SigmaExtendedCorrelationCondition

    kind = rule.type.name.lower()
    if isinstance(rule.condition, SigmaExtendedCorrelationCondition) or kind not in CORRELATION_TYPES:
        return _unconverted(Path(meta["path"]), meta["rule_id"], meta["title"],
                            f"correlation type {kind} with an extended condition is not supported")
    cond = rule.condition
    value_field = cond.fieldref if isinstance(cond.fieldref, str) or cond.fieldref is None else cond.fieldref[0]
    meta = {k: v for k, v in meta.items() if k != "falsepositives"}
    return {
        "kind": "correlation", **meta, "kind_of": kind,
        "rules": [ref.reference for ref in (rule.rules or [])],
        "group_by": list(rule.group_by or []),
        "timespan": int(rule.timespan.seconds),
        "op": cond.op.name.lower(), "count": float(cond.count),
        "value_field": value_field, "percentile": cond.percentile,
        "aliases": {a.alias: {ref.reference: name for ref, name in a.mapping.items()} for a in rule.aliases},
        "generate": bool(rule.generate),
    }


def _from_entry(entry: dict[str, Any], ruleset: RuleSet) -> None:
    entry = dict(entry)
    kind = entry.pop("kind")
    if kind == "rule":
        ruleset.rules.append(CompiledRule(**entry))
    elif kind == "correlation":
        entry["kind"] = entry.pop("kind_of")
        ruleset.correlations.append(CompiledCorrelation(**entry))
    else:
        ruleset.unconverted.append(Unconverted(**entry))


class ConversionCache:
    """Converted entries per rule file content, in one JSON file per engine version."""

    def __init__(self, folder: Path | None, placeholders: dict[str, list[str]]) -> None:
        salt = orjson.dumps({"engine": ENGINE_VERSION, "placeholders": placeholders}, option=orjson.OPT_SORT_KEYS)
        self.salt = hashlib.sha256(salt).hexdigest()[:16]
        self.path = folder / f"sigma-conversions-{ENGINE_VERSION}.json" if folder else None
        self.entries: dict[str, list[dict[str, Any]]] = {}
        self.dirty = False
        if self.path and self.path.is_file():
            try:
                self.entries = orjson.loads(self.path.read_bytes())
            except orjson.JSONDecodeError:
                self.entries = {}  # a damaged cache is only a slower run

    def key(self, data: bytes) -> str:
        return self.salt + hashlib.sha256(data).hexdigest()

    def save(self) -> None:
        if not (self.path and self.dirty):
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f"{self.path.name}.{os.getpid()}.tmp")
        tmp.write_bytes(orjson.dumps(self.entries))
        os.replace(tmp, self.path)


def load_rules(paths: Iterable[Path], placeholders: dict[str, list[str]] | None = None,
               cache: Path | None | bool = True,
               progress: Callable[[int, int], None] | None = None) -> RuleSet:
    """Convert every rule under `paths` (files or folders). `cache=False` disables the cache; a Path
    puts it there. Paths in the result are as given (relative stays relative)."""
    placeholders = placeholders or {}
    folder = cache_dir() if cache is True else (cache or None)
    store = ConversionCache(folder, placeholders)
    converter: _Converter | None = None
    ruleset = RuleSet()
    files = rule_files(paths)
    for number, path in enumerate(files, 1):
        ruleset.files += 1
        try:
            if path.stat().st_size > MAX_RULE_FILE_BYTES:
                raise ValueError(f"{path.stat().st_size} bytes is too large for a rule file")
            data = path.read_bytes()
            text = data.decode("utf-8-sig")
        except (OSError, UnicodeDecodeError, ValueError) as error:
            _from_entry(_unconverted(path, "", "", f"cannot read: {_first_line(error)}"), ruleset)
            continue
        key = store.key(data)
        entries = store.entries.get(key)
        if entries is None:
            converter = converter or _Converter(placeholders)
            entries = converter.convert_file(path, text)
            store.entries[key] = entries
            store.dirty = True
        else:
            ruleset.cached += 1
        for entry in entries:
            _from_entry({**entry, "path": str(path)}, ruleset)
        if progress:
            progress(number, len(files))
    store.save()
    return ruleset


def keep(ruleset: RuleSet, min_level: str | None = None, statuses: Iterable[str] | None = None) -> RuleSet:
    """Only rules at or above `min_level` and with one of `statuses` (correlations alike)."""
    floor = LEVELS.index(min_level) if min_level else 0
    wanted = set(statuses) if statuses else None

    def ok(level: str, status: str) -> bool:
        rank = LEVELS.index(level) if level in LEVELS else 0
        return rank >= floor and (wanted is None or status in wanted)

    correlations = [c for c in ruleset.correlations if ok(c.level, c.status)]
    needed = {ref for c in correlations for ref in c.rules}  # a kept correlation keeps its rules
    return RuleSet([r for r in ruleset.rules if ok(r.level, r.status) or r.rule_id in needed or r.name in needed],
                   correlations,
                   ruleset.unconverted, ruleset.files, ruleset.cached)

