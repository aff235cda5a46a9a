"""A pack's behaviour rules (killchain.yaml) compiled to SQL over the ECS views.

Rules are data an analyst can review; this module only translates their few operators. All
comparisons are case-insensitive, as Windows paths and names are.
"""

from __future__ import annotations

from typing import Any

from turncoat.intel.pack import Pack

# Fields too generic to show as "what matched" when a rule has a more telling one.
_DULL = ("process.name", "event.action", "process.parent.name")


def _lit(text: str) -> str:
    return "'" + str(text).replace("'", "''") + "'"


def normalise_version(text: str) -> str:
    """`18.12.416.0` and `18.12.416 (x64)` both mean 18.12.416."""
    head = str(text).strip().split(" ")[0]
    while head.endswith(".0") and head.count(".") > 1:
        head = head[:-2]
    return head.lower()


def version_expr(column: str) -> str:
    """SQL twin of `normalise_version` for a (lower-cased) column expression."""
    return f"regexp_replace(split_part(trim({column}), ' ', 1), '(\\.0)+$', '')"


def condition_sql(cond: dict[str, Any]) -> str:
    """One killchain.yaml condition as SQL (also used by the assessor for its own questions)."""
    column = f'lower("{cond["field"]}")'
    op = cond["op"]
    values = [str(v).lower() for v in cond["values"]]
    if op == "equals":
        return f"{column} IN ({', '.join(map(_lit, values))})"
    if op == "not_equals":
        return f"({column} IS NULL OR {column} NOT IN ({', '.join(map(_lit, values))}))"
    if op == "version_in":
        norm = version_expr(column)
        wanted = sorted({normalise_version(v) for v in values})
        return f"{norm} IN ({', '.join(map(_lit, wanted))})"
    func = {"startswith": "starts_with", "endswith": "ends_with", "contains": "contains"}[op]
    return "(" + " OR ".join(f"{func}({column}, {_lit(v)})" for v in values) + ")"


def _shown_field(rule: dict[str, Any]) -> str:
    if rule.get("show"):
        return str(rule["show"])
    fields = [c["field"] for c in list(rule.get("where") or []) + list(rule.get("any") or [])]
    for name in fields:
        if name not in _DULL:
            return name
    return fields[0]


def rule_sql(pack: Pack, rule: dict[str, Any]) -> str:
    view = f"ecs_{rule['view']}"
    where = [condition_sql(c) for c in rule.get("where") or []]
    if rule.get("any"):
        where.append("(" + " OR ".join(condition_sql(c) for c in rule["any"]) + ")")
    shown = _shown_field(rule)
    title = rule.get("title") or {}
    title_en = title.get("en", rule["id"]) if isinstance(title, dict) else str(title)
    return (
        f"SELECT {_lit(pack.id)} AS campaign, \"host.name\" AS host, \"@timestamp\" AS ts, "
        f"{_lit(rule['stage'])} AS stage, {_lit(rule['confidence'])} AS confidence, "
        f"{_lit('rule:' + rule['id'])} AS rule_id, {_lit(title_en)} AS title, {_lit(view)} AS view, "
        f"{_lit(shown)} AS field, \"{shown}\" AS value, evidence_id, record_id, line "
        f"FROM {view} WHERE {' AND '.join(where)}"
    )


def killchain_findings_sql(pack: Pack) -> str | None:
    parts = [rule_sql(pack, rule) for rule in pack.rules]
    return " UNION ALL ".join(parts) if parts else None
