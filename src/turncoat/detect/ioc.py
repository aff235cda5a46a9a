"""IOC matching as set-based SQL joins between the pack's indicators and the ECS views.

Each observable (a field of a view that can hold an indicator) is joined once against the indicator
table, never a Python loop over events × indicators. A hash seen executing or loaded proves the
indicator's `stage`; the same hash only present on disk (a file written, an AV detection) proves
`stage_on_disk`. Domains match themselves and their subdomains through an equi-join on every
suffix of the observed name, so the cost grows with the events, not with events × indicators.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb

from turncoat.intel.pack import Pack


@dataclass(frozen=True)
class Observable:
    view: str
    field: str
    ioc_type: str
    presence: str  # "active" (ran, loaded, contacted) or "disk" (only present)
    match: str = "equals"  # equals | domain | suffix | contains


OBSERVABLES: tuple[Observable, ...] = (
    *(Observable("ecs_process", f"process.hash.{h}", h, "active") for h in ("sha256", "sha1", "md5")),
    *(Observable("ecs_image_load", f"dll.hash.{h}", h, "active") for h in ("sha256", "sha1", "md5")),
    *(Observable("ecs_file", f"file.hash.{h}", h, "disk") for h in ("sha256", "sha1", "md5")),
    Observable("ecs_dns", "dns.question.name", "domain", "active", "domain"),
    Observable("ecs_network", "destination.domain", "domain", "active", "domain"),
    Observable("ecs_network", "destination.ip", "ip", "active"),
    Observable("ecs_process", "process.command_line", "url", "active", "contains"),
    Observable("ecs_script", "powershell.file.script_block_text", "url", "active", "contains"),
    Observable("ecs_process", "process.name", "filename", "active"),
    Observable("ecs_image_load", "dll.name", "filename", "active"),
    Observable("ecs_file", "file.name", "filename", "disk"),
    Observable("ecs_process", "process.executable", "filepath", "active", "suffix"),
    Observable("ecs_image_load", "dll.path", "filepath", "active", "suffix"),
    Observable("ecs_file", "file.path", "filepath", "disk", "suffix"),
    Observable("ecs_alert", "threat.name", "threat_name", "disk", "contains"),
    Observable("ecs_alert", "file.path", "filepath", "disk", "suffix"),
)


def normalise(ioc_type: str, value: str) -> str:
    """Indicators compare in one canonical form: lower case, no trailing dot, IDNA for domains,
    environment-variable prefixes of paths dropped (the path suffix is what is matched)."""
    text = value.strip()
    if ioc_type == "domain":
        text = text.rstrip(".").lower()
        try:
            text = text.encode("idna").decode("ascii")
        except UnicodeError:
            pass
        return text
    if ioc_type == "filepath":
        text = text.replace("/", "\\").lower()
        if text.startswith("%") and "%" in text[1:]:
            text = text[text.index("%", 1) + 1:]
        return text if text.startswith("\\") else "\\" + text
    if ioc_type == "cert_serial":
        return text.replace(" ", "").replace(":", "").lower()
    return text.lower()


def load_indicators(con: duckdb.DuckDBPyConnection, pack: Pack) -> None:
    """Put the pack's indicators in a temporary table `iocs` in canonical form."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE iocs (type VARCHAR, value VARCHAR, original VARCHAR, role VARCHAR, "
        "stage VARCHAR, stage_on_disk VARCHAR, confidence VARCHAR)"
    )
    rows = [
        (r["type"], normalise(r["type"], r["value"]), r["value"], r["role"], r["stage"],
         r["stage_on_disk"] or "vulnerable-installed", r["confidence"])
        for r in pack.iocs
    ]
    if rows:
        con.executemany("INSERT INTO iocs VALUES (?, ?, ?, ?, ?, ?, ?)", rows)


def _observable_sql(obs: Observable, campaign: str) -> str:
    field = f'"{obs.field}"'
    value = f"lower({field})"
    stage = "i.stage" if obs.presence == "active" else "i.stage_on_disk"
    select = (
        f"SELECT '{campaign}' AS campaign, v.\"host.name\" AS host, v.\"@timestamp\" AS ts, {stage} AS stage, "
        f"i.confidence AS confidence, 'ioc:' || i.type || ':' || i.value AS rule_id, "
        f"i.role || ' — ' || i.type || ' ' || i.original AS title, '{obs.view}' AS view, "
        f"'{obs.field}' AS field, v.{field} AS value, v.evidence_id, v.record_id, v.line"
    )
    typed = f"i.type = '{obs.ioc_type}'"
    if obs.match == "equals":
        return f"{select} FROM {obs.view} v JOIN iocs i ON {typed} AND {value} = i.value WHERE v.{field} IS NOT NULL"
    if obs.match == "suffix":
        return (f"{select} FROM {obs.view} v JOIN iocs i ON {typed} "
                f"AND ends_with(replace({value}, '/', '\\'), i.value) WHERE v.{field} IS NOT NULL")
    if obs.match == "contains":
        return f"{select} FROM {obs.view} v JOIN iocs i ON {typed} AND contains({value}, i.value) WHERE v.{field} IS NOT NULL"
    # domain: every suffix of the observed name (a.b.c → a.b.c, b.c, c) equi-joined to the indicators
    return (
        f"{select} FROM (SELECT *, array_to_string(list_slice(string_split({value}, '.'), k, len(string_split({value}, '.'))), '.') AS suffix "
        f"FROM (SELECT *, unnest(generate_series(1, len(string_split({value}, '.')))) AS k FROM {obs.view} "
        f"WHERE {field} IS NOT NULL)) v JOIN iocs i ON {typed} AND v.suffix = i.value"
    )


def ioc_findings_sql(pack: Pack) -> str:
    """One UNION ALL query producing the findings rows of every indicator match."""
    return " UNION ALL ".join(_observable_sql(o, pack.id) for o in OBSERVABLES)
