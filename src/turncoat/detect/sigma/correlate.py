"""Sigma correlation rules, evaluated over the hits of the rules they reference.

Sigma's correlation types (event_count, value_count, temporal, temporal_ordered, value_sum,
value_avg, value_percentile, value_median) all ask the same question of a group of events: within
`timespan`, grouped by `group-by` fields (renamed per rule by `aliases`), does an aggregate satisfy
the condition? Windows open at each event of a group and span `timespan` after it; when one satisfies
the condition it is reported once and the next window starts after it ends, so one burst gives one
correlation hit, not one per event.
"""

from __future__ import annotations

import math
from bisect import bisect_right
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from turncoat.detect.sigma.engine import SigmaRun
from turncoat.detect.sigma.rules import CompiledCorrelation, CompiledRule

_OPS = {
    "lt": lambda a, b: a < b, "lte": lambda a, b: a <= b, "gt": lambda a, b: a > b,
    "gte": lambda a, b: a >= b, "eq": lambda a, b: a == b, "neq": lambda a, b: a != b,
}


@dataclass
class CorrelationHit:
    correlation: CompiledCorrelation
    start: Any                      # datetime of the window's first event
    end: Any                        # datetime of its last event
    value: float                    # the aggregate the condition held for
    group: dict[str, str | None]
    events: list[int] = field(default_factory=list)  # rows of SigmaRun.hits in the window


def _references(rules: list[CompiledRule]) -> dict[str, list[int]]:
    refs: dict[str, list[int]] = defaultdict(list)
    for index, rule in enumerate(rules):
        refs[rule.rule_id].append(index)
        if rule.name:
            refs[rule.name].append(index)
    return refs


def _field_for(correlation: CompiledCorrelation, name: str, rule: CompiledRule) -> str:
    """The rule's own field for a group-by name (an alias maps it per rule)."""
    mapping = correlation.aliases.get(name)
    if mapping:
        for ref in (rule.rule_id, rule.name):
            if ref and ref in mapping:
                return mapping[ref]
    return name


def value_fields(correlations: list[CompiledCorrelation], rules: list[CompiledRule]) -> dict[int, list[str]]:
    """Fields whose values the engine must return beside each correlated rule's hits."""
    refs = _references(rules)
    wanted: dict[int, set[str]] = defaultdict(set)
    for correlation in correlations:
        for ref in correlation.rules:
            for index in refs.get(ref, []):
                rule = rules[index]
                names = list(correlation.group_by) + ([correlation.value_field] if correlation.value_field else [])
                wanted[index].update(_field_for(correlation, n, rule) for n in names)
    return {i: sorted(f) for i, f in wanted.items()}


def missing_references(correlation: CompiledCorrelation, rules: list[CompiledRule]) -> list[str]:
    refs = _references(rules)
    return [ref for ref in correlation.rules if ref not in refs]


def _aggregate(correlation: CompiledCorrelation, window: list[tuple[Any, int, str, Any]]) -> float | None:
    kind = correlation.kind
    if kind == "event_count":
        return float(len(window))
    if kind == "value_count":
        return float(len({v for *_, v in window if v is not None}))
    if kind in ("temporal", "temporal_ordered"):
        seen: list[str] = []
        for _, _, ref, _ in window:
            if ref not in seen:
                seen.append(ref)
        if kind == "temporal_ordered":
            # the referenced rules must first fire in the order the correlation lists them
            order = [r for r in correlation.rules if r in seen]
            first = {}
            for ts, _, ref, _ in window:
                first.setdefault(ref, ts)
            times = [first[r] for r in order]
            if times != sorted(times):
                return 0.0
        return float(len(set(seen) & set(correlation.rules)))
    numbers = []
    for *_, v in window:
        try:
            number = float(v)
        except (TypeError, ValueError):
            continue
        if math.isfinite(number):
            numbers.append(number)
    if not numbers:
        return None
    numbers.sort()
    if kind == "value_sum":
        return sum(numbers)
    if kind == "value_avg":
        return sum(numbers) / len(numbers)
    if kind == "value_median":
        mid = len(numbers) // 2
        return numbers[mid] if len(numbers) % 2 else (numbers[mid - 1] + numbers[mid]) / 2
    if kind == "value_percentile":
        rank = (correlation.percentile or 50) / 100 * (len(numbers) - 1)
        low, high = math.floor(rank), math.ceil(rank)
        return numbers[low] + (numbers[high] - numbers[low]) * (rank - low)
    raise ValueError(f"unknown correlation type {kind}")


def _holds(correlation: CompiledCorrelation, value: float | None) -> bool:
    if value is None:
        return False
    if correlation.kind in ("temporal", "temporal_ordered"):
        # temporal: every referenced rule fired in the window (the condition, if any, counts rules)
        needed = correlation.count if correlation.op in ("gte", "gt") and correlation.count > 1 \
            else len(set(correlation.rules))
        return value >= needed
    return _OPS[correlation.op](value, correlation.count)


def evaluate(run: SigmaRun, correlations: list[CompiledCorrelation]) -> list[CorrelationHit]:
    """Every correlation over the run's hits."""
    refs = _references(run.rules)
    rule_col = run.hits.column("rule").to_pylist()
    ts_col = run.hits.column("ts").to_pylist()
    eid_col = run.hits.column("evidence_id").to_pylist()
    seq_col = run.hits.column("seq").to_pylist()
    rows_of: dict[int, list[int]] = defaultdict(list)
    for row, index in enumerate(rule_col):
        rows_of[index].append(row)
    out: list[CorrelationHit] = []
    for correlation in correlations:
        groups: dict[tuple, list[tuple[Any, int, str, Any]]] = defaultdict(list)
        for ref in correlation.rules:
            for index in refs.get(ref, []):
                rule = run.rules[index]
                rows = rows_of.get(index, [])
                table = run.values.get(index)
                by_event = {}
                if table is not None:
                    for item in table.to_pylist():
                        by_event[(item["evidence_id"], item["seq"])] = item
                group_names = [_field_for(correlation, g, rule).casefold() for g in correlation.group_by]
                value_name = _field_for(correlation, correlation.value_field, rule).casefold() \
                    if correlation.value_field else None
                for row in rows:
                    if ts_col[row] is None:
                        continue
                    item = by_event.get((eid_col[row], seq_col[row]), {})
                    key = tuple(item.get(name) for name in group_names)
                    groups[key].append((ts_col[row], row, ref, item.get(value_name) if value_name else None))
        for key, events in groups.items():
            events.sort(key=lambda e: (e[0], e[1]))
            seconds = [e[0].timestamp() for e in events]
            start = 0
            while start < len(events):
                stop = bisect_right(seconds, seconds[start] + correlation.timespan, lo=start)
                window = events[start:stop]
                value = _aggregate(correlation, window)
                if _holds(correlation, value):
                    out.append(CorrelationHit(correlation, window[0][0], window[-1][0], float(value or 0),
                                              dict(zip(correlation.group_by, key)), [e[1] for e in window]))
                    start = stop
                else:
                    start += 1
    return out
