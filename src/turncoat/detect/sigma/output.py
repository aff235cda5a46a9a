"""Sigma results as records: JSON lines per hit, a Timesketch timeline, and a Hayabusa-style summary.

One record shape serves every output, so `--jsonl`, `--timeline`, the terminal summary and the case's
`sigma_hits` table always agree.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
from rich.console import Console
from rich.table import Table

from turncoat.detect.sigma.correlate import CorrelationHit
from turncoat.detect.sigma.engine import SigmaRun
from turncoat.detect.sigma.rules import LEVELS, CompiledCorrelation

LEVEL_STYLE = {"critical": "bold red", "high": "red", "medium": "yellow", "low": "green", "informational": "dim"}


def _iso(ts: datetime | None) -> str | None:
    if ts is None:
        return None
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def silenced_rules(run: SigmaRun, correlations: list[CompiledCorrelation]) -> set[int]:
    """Rules that only feed correlations (Sigma's `generate: false`, the default) report nothing alone."""
    refs = {ref for c in correlations if not c.generate for ref in c.rules}
    return {i for i, r in enumerate(run.rules) if r.rule_id in refs or (r.name and r.name in refs)}


def records(run: SigmaRun, correlation_hits: list[CorrelationHit], paths: dict[str, list[str]],
            correlations: list[CompiledCorrelation] | None = None) -> Iterator[dict[str, Any]]:
    """One dict per hit (and per copy of its evidence file when `paths` lists several), then one per
    correlation hit. `paths`: evidence_id → file paths holding it."""
    silent = silenced_rules(run, correlations or [])
    columns = {name: run.hits.column(name).to_pylist() for name in run.hits.column_names}
    for row, index in enumerate(columns["rule"]):
        if index in silent:
            continue
        rule = run.rules[index]
        evidence_id = columns["evidence_id"][row]
        base = {
            "rule_id": rule.rule_id, "rule_title": rule.title, "level": rule.level, "status": rule.status,
            "tags": rule.tags, "host": columns["host"][row], "timestamp": _iso(columns["ts"][row]),
            "evidence_id": evidence_id, "record_id": columns["record_id"][row], "line": columns["line"][row],
            "seq": columns["seq"][row], "channel": columns["channel"][row], "event_id": columns["event_id"][row],
            "target": rule.target, "rule_path": rule.path,
            "campaign": rule.custom.get("campaign"), "stage": rule.custom.get("stage"),  # a pack's own rules
        }
        for path in paths.get(evidence_id) or [None]:
            yield {**base, "evidence_path": path}
    for hit in correlation_hits:
        c = hit.correlation
        first = hit.events[0]
        evidence_id = columns["evidence_id"][first]
        hosts = sorted({columns["host"][r] for r in hit.events if columns["host"][r]})
        yield {
            "rule_id": c.rule_id, "rule_title": c.title, "level": c.level, "status": c.status, "tags": c.tags,
            "host": columns["host"][first], "hosts": hosts,
            "timestamp": _iso(hit.start), "end": _iso(hit.end),
            "evidence_id": evidence_id, "evidence_path": (paths.get(evidence_id) or [None])[0],
            "record_id": columns["record_id"][first], "line": columns["line"][first], "seq": columns["seq"][first],
            "target": f"correlation/{c.kind}", "rule_path": c.path, "correlation": c.kind,
            "value": hit.value, "group": hit.group, "events": len(hit.events),
            "campaign": None, "stage": None,
        }


def write_jsonl(rows: list[dict[str, Any]], path: Path) -> None:
    with path.open("wb") as out:
        for row in rows:
            out.write(orjson.dumps(row) + b"\n")


def _source(row: dict[str, Any]) -> str:
    """` (Security 4688)` or ` (zeek.dns)`: which log the hit came from, for the timeline's message."""
    if not row.get("channel"):
        return ""
    return f" ({row['channel']}{'' if row.get('event_id') is None else ' ' + str(row['event_id'])})"


def write_timeline(rows: list[dict[str, Any]], path: Path) -> None:
    """Timesketch's JSONL import: `message`, `datetime`, `timestamp_desc`, plus every field."""
    with path.open("wb") as out:
        for row in rows:
            if row["timestamp"] is None:
                continue
            event = {
                "message": f"[{row['level']}] {row['rule_title']} on {row['host'] or 'unknown host'}" + _source(row),
                "datetime": row["timestamp"],
                "timestamp_desc": "Correlation window start" if row.get("correlation") else "Event recorded",
                **row,
            }
            out.write(orjson.dumps(event) + b"\n")


def summary(rows: list[dict[str, Any]], searched: int, console: Console, top: int = 10) -> None:
    """Counts by level, the most frequent rules per level and the hosts with hits."""
    by_level = Counter(r["level"] for r in rows)
    events = {(r["evidence_id"], r["seq"]) for r in rows if not r.get("correlation")}
    console.print(f"[bold]{len(rows)}[/bold] detection(s) on [bold]{len(events)}[/bold] of {searched} searched "
                  f"record(s), {len({r['rule_id'] for r in rows})} rule(s), "
                  f"{len({r['host'] for r in rows})} host(s)")
    levels = Table(title="Detections by level", show_header=True, header_style="bold")
    levels.add_column("level")
    levels.add_column("detections", justify="right")
    levels.add_column("rules", justify="right")
    for level in reversed(LEVELS):
        if by_level.get(level):
            levels.add_row(f"[{LEVEL_STYLE[level]}]{level}[/]", str(by_level[level]),
                           str(len({r["rule_id"] for r in rows if r["level"] == level})))
    console.print(levels)
    rules = Table(title=f"Top rules (up to {top} per level)", show_header=True, header_style="bold")
    rules.add_column("level")
    rules.add_column("rule")
    rules.add_column("hits", justify="right")
    for level in reversed(LEVELS):
        counts = Counter(r["rule_title"] for r in rows if r["level"] == level)
        for title, n in counts.most_common(top):
            rules.add_row(f"[{LEVEL_STYLE[level]}]{level}[/]", title, str(n))
    console.print(rules)
    hosts = Table(title="Hosts", show_header=True, header_style="bold")
    hosts.add_column("host")
    for level in reversed(LEVELS):
        hosts.add_column(level, justify="right")
    per_host: dict[str, Counter] = {}
    for r in rows:
        per_host.setdefault(r["host"] or "(unknown host)", Counter())[r["level"]] += 1
    for host, counts in sorted(per_host.items(), key=lambda kv: [-kv[1].get(lv, 0) for lv in reversed(LEVELS)]):
        hosts.add_row(host, *(str(counts.get(lv, 0) or "") for lv in reversed(LEVELS)))
    console.print(hosts)
