"""Campaign packs: a folder of data (pack.yaml, iocs.csv, killchain.yaml), loaded and checked here.

A new campaign is a folder, not a module (docs/packs.md). The loader validates what it reads so a
user's own pack fails with a message naming the file and the row, not with a crash in a detector.
"""

from __future__ import annotations

import csv
import ipaddress
import re
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import yaml

from turncoat.store.schema import CONFIDENCES, STAGES, VERDICTS
from turncoat.store.views import ECS_VIEWS, view_columns

BUILTIN = Path(__file__).parent / "packs"
IOC_COLUMNS = ("type", "value", "role", "stage", "stage_on_disk", "confidence", "platform", "source", "note")
IOC_TYPES = ("sha256", "sha1", "md5", "domain", "url", "ip", "cidr", "filename", "filepath", "user_agent",
             "cookie", "ja3", "ja4", "cert_serial", "threat_name")
OPERATORS = ("equals", "startswith", "endswith", "contains", "version_in", "not_equals")
_HASH_LEN = {"sha256": 64, "sha1": 40, "md5": 32}
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")


MIN_CIDR_PREFIX = 16  # wider networks are never sound indicators, and are matched address by address


def _address_problem(kind: str, value: str) -> str | None:
    try:
        if kind == "ip":
            ipaddress.ip_address(value)
            return None
        net = ipaddress.ip_network(value, strict=False)
    except ValueError:
        return f"`{value}` is not an {'IP address' if kind == 'ip' else 'IP network'}"
    if net.version != 4 or net.prefixlen < MIN_CIDR_PREFIX:
        return f"`{value}`: only IPv4 networks of /{MIN_CIDR_PREFIX} or narrower are indicators (list IPv6 addresses as `ip`)"
    return None


class PackError(ValueError):
    """A pack that cannot be used; the message names the file and what is wrong."""


@dataclass
class Pack:
    id: str
    root: Path
    meta: dict[str, Any]
    iocs: list[dict[str, str]] = field(default_factory=list)
    rules: list[dict[str, Any]] = field(default_factory=list)

    @property
    def name(self) -> str:
        return str(self.meta.get("name", self.id))

    @property
    def window(self) -> tuple[datetime, datetime]:
        win = self.meta["exposure_window"]
        return _utc(win["start"]), _utc(win["end"])

    @property
    def dormancy(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.meta["dormancy_days"].items()}

    def resolve(self, dotted: str) -> list[str]:
        """A list in pack.yaml named by dotted path (`versions.windows.affected`)."""
        node: Any = self.meta
        for part in dotted.split("."):
            if not isinstance(node, dict) or part not in node:
                raise PackError(f"{self.root / 'pack.yaml'}: `{dotted}` is not defined")
            node = node[part]
        if not isinstance(node, list):
            raise PackError(f"{self.root / 'pack.yaml'}: `{dotted}` is not a list")
        return [str(v) for v in node]

    def remediation(self, stage: str) -> dict[str, list[str]]:
        steps = (self.meta.get("remediation") or {}).get(stage) or {}
        out: dict[str, list[str]] = {}
        for lang in ("en", "fr"):
            value = steps.get(lang, [])
            out[lang] = [value] if isinstance(value, str) else [str(v) for v in value]
        return out

    def summary(self) -> dict[str, Any]:
        start, end = self.window
        return {
            "id": self.id, "name": self.name,
            "exposure_window": {"start": iso(start), "end": iso(end)},
            "dormancy_days": self.meta["dormancy_days"],
        }


def iso(moment: datetime | None) -> str | None:
    if moment is None:
        return None
    return moment.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _utc(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=timezone.utc)
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def builtin_pack_dirs() -> list[Path]:
    return sorted(p for p in BUILTIN.iterdir() if (p / "pack.yaml").is_file())


def find_pack(name_or_path: str) -> Path:
    """A pack by id among the shipped ones, or a folder path."""
    candidate = Path(name_or_path)
    if (candidate / "pack.yaml").is_file():
        return candidate
    for root in builtin_pack_dirs():
        if root.name == name_or_path:
            return root
    known = ", ".join(p.name for p in builtin_pack_dirs())
    raise PackError(f"no pack `{name_or_path}` (shipped packs: {known}; or give a folder with pack.yaml)")


def load_pack(root: Path) -> Pack:
    meta_path = root / "pack.yaml"
    try:
        meta = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise PackError(f"{meta_path}: {exc}") from exc
    if not isinstance(meta, dict) or not _ID.match(str(meta.get("id", ""))):
        raise PackError(f"{meta_path}: needs an `id` of lower-case letters, digits and dashes")
    pack = Pack(id=str(meta["id"]), root=root, meta=meta)
    problems = _check_meta(pack)
    pack.iocs = _load_iocs(root / "iocs.csv", problems)
    pack.rules = _load_rules(root / "killchain.yaml", pack, problems)
    if problems:
        raise PackError("\n".join(problems))
    return pack


def load_packs(names: list[str] | None) -> list[Pack]:
    roots = [find_pack(n) for n in names] if names else builtin_pack_dirs()
    return [load_pack(r) for r in roots]


def _check_meta(pack: Pack) -> list[str]:
    where = pack.root / "pack.yaml"
    problems = []
    for key in ("exposure_window", "dormancy_days"):
        if not isinstance(pack.meta.get(key), dict):
            problems.append(f"{where}: `{key}` is missing")
    if not problems:
        try:
            start, end = pack.window
            if end <= start:
                problems.append(f"{where}: exposure_window ends before it starts")
        except (KeyError, ValueError) as exc:
            problems.append(f"{where}: exposure_window: {exc}")
        dorm = pack.meta["dormancy_days"]
        if not all(isinstance(dorm.get(k), (int, float)) for k in ("min", "typical", "max")):
            problems.append(f"{where}: dormancy_days needs numbers min, typical, max")
    for stage in (pack.meta.get("remediation") or {}):
        if stage not in VERDICTS:
            problems.append(f"{where}: remediation for unknown stage `{stage}`")
    return problems


def _load_iocs(path: Path, problems: list[str]) -> list[dict[str, str]]:
    if not path.is_file():
        return []
    rows: list[dict[str, str]] = []
    seen: set[tuple[str, str]] = set()
    with path.open(encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        if tuple(reader.fieldnames or ()) != IOC_COLUMNS:
            problems.append(f"{path}: header must be {','.join(IOC_COLUMNS)}")
            return []
        for number, row in enumerate(reader, start=2):
            where = f"{path}:{number}"
            kind = (row.get("type") or "").strip()
            value = (row.get("value") or "").strip()
            if kind not in IOC_TYPES:
                problems.append(f"{where}: unknown type `{kind}`")
                continue
            if not value:
                problems.append(f"{where}: empty value")
                continue
            if kind in _HASH_LEN and not re.fullmatch(f"[0-9a-fA-F]{{{_HASH_LEN[kind]}}}", value):
                problems.append(f"{where}: `{value}` is not a {kind}")
                continue
            if kind in ("ip", "cidr") and (problem := _address_problem(kind, value)):
                problems.append(f"{where}: {problem}")
                continue
            if row.get("stage") not in STAGES or (row.get("stage_on_disk") or STAGES[0]) not in STAGES:
                problems.append(f"{where}: stage must be one of {', '.join(STAGES)}")
                continue
            if row.get("confidence") not in CONFIDENCES:
                problems.append(f"{where}: confidence must be one of {', '.join(CONFIDENCES)}")
                continue
            if (kind, value.lower()) in seen:
                problems.append(f"{where}: duplicate indicator {kind} {value}")
                continue
            seen.add((kind, value.lower()))
            rows.append({k: (row.get(k) or "").strip() for k in IOC_COLUMNS})
    return rows


def _load_rules(path: Path, pack: Pack, problems: list[str]) -> list[dict[str, Any]]:
    if not path.is_file():
        return []
    try:
        doc = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        problems.append(f"{path}: {exc}")
        return []
    rules = doc.get("rules") or []
    ids: set[str] = set()
    for index, rule in enumerate(rules):
        where = f"{path}: rule #{index + 1} ({rule.get('id', '?')})"
        if not rule.get("id") or rule["id"] in ids:
            problems.append(f"{where}: needs a unique id")
        ids.add(rule.get("id"))
        if rule.get("stage") not in STAGES:
            problems.append(f"{where}: stage must be one of {', '.join(STAGES)}")
        if rule.get("confidence") not in CONFIDENCES:
            problems.append(f"{where}: confidence must be one of {', '.join(CONFIDENCES)}")
        view = f"ecs_{rule.get('view')}"
        if view not in ECS_VIEWS:
            problems.append(f"{where}: unknown view `{rule.get('view')}`")
            continue
        columns = set(view_columns(view))
        conditions = list(rule.get("where") or []) + list(rule.get("any") or [])
        if not rule.get("where"):
            problems.append(f"{where}: needs at least one `where` condition")
        for cond in conditions:
            if cond.get("field") not in columns:
                problems.append(f"{where}: view {view} has no field `{cond.get('field')}`")
            if cond.get("op") not in OPERATORS:
                problems.append(f"{where}: unknown operator `{cond.get('op')}`")
            if "values_from" in cond:
                try:
                    cond["values"] = pack.resolve(cond["values_from"])
                except PackError as exc:
                    problems.append(f"{where}: {exc}")
            if not cond.get("values"):
                problems.append(f"{where}: condition on `{cond.get('field')}` has no values")
    return rules
