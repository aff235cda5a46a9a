"""Sigma inside `turncoat detect`: packs' own rules and the analyst's rule folders over the case.

Every hit lands in the `sigma_hits` table (docs/schema.md). Hits of a pack's rules — which say the
kill-chain `stage` they prove — also become findings, like IOC hits, with the rule's level mapped to
confidence, so the assessor weighs them the same way. Third-party rules (SigmaHQ's) prove no stage on
their own; their hits are shown per host, and a pack may label the hits it knows to be false
positives (`sigma_false_positives` in pack.yaml), such as SigmaHQ's 3CX execution rule matching the
clean 18.12.422/425 builds by their `18.12.` file version.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from turncoat.detect.killchain import normalise_version, version_expr
from turncoat.detect.sigma import hunt
from turncoat.detect.sigma.output import records
from turncoat.detect.sigma.rules import RuleSet, load_rules
from turncoat.intel.pack import Pack, PackError
from turncoat.store.schema import STAGES

#: Sigma level → confidence of the finding a pack rule's hit becomes.
LEVEL_CONFIDENCE = {"critical": "high", "high": "high", "medium": "medium", "low": "low", "informational": "low"}

SIGMA_HITS_COLUMNS: dict[str, str] = {
    "source": "VARCHAR", "campaign": "VARCHAR", "stage": "VARCHAR", "rule_id": "VARCHAR", "title": "VARCHAR",
    "level": "VARCHAR", "status": "VARCHAR", "tags": "VARCHAR", "target": "VARCHAR", "host": "VARCHAR",
    "ts": "TIMESTAMPTZ", "evidence_id": "VARCHAR", "seq": "BIGINT", "record_id": "BIGINT", "line": "BIGINT",
    "false_positive": "BOOLEAN", "note": "VARCHAR", "note_fr": "VARCHAR",
}


def pack_rules(pack: Pack) -> RuleSet:
    """The pack's sigma/ folder, each rule tagged with the pack; a rule's `stage` must be a stage."""
    folder = pack.root / "sigma"
    ruleset = load_rules([folder]) if folder.is_dir() else RuleSet()
    for rule in ruleset.rules:
        stage = rule.custom.get("stage")
        if stage is not None and stage not in STAGES:
            raise PackError(f"{rule.path}: stage `{stage}` is not one of {', '.join(STAGES)}")
        rule.custom = {**rule.custom, "campaign": pack.id}
    return ruleset


def _table(rows: list[dict[str, Any]]) -> pa.Table:
    """The `sigma_hits` rows of the run's records (output.records, the shape `--jsonl` writes)."""
    picked = {
        "source": [f"pack:{r['campaign']}" if r["campaign"] else "rules" for r in rows],
        "campaign": [r["campaign"] for r in rows],
        "stage": [r["stage"] for r in rows],
        "rule_id": [r["rule_id"] for r in rows],
        "title": [r["rule_title"] for r in rows],
        "level": [r["level"] for r in rows],
        "status": [r["status"] for r in rows],
        "tags": [",".join(r["tags"]) for r in rows],
        "target": [r["target"] for r in rows],
        "host": [r["host"] for r in rows],
        "ts": [r["timestamp"] for r in rows],
        "evidence_id": [r["evidence_id"] for r in rows],
        "seq": [r["seq"] for r in rows],
        "record_id": [r["record_id"] for r in rows],
        "line": [r["line"] for r in rows],
    }
    types = {"VARCHAR": pa.string(), "BIGINT": pa.int64()}
    return pa.table({name: pa.array(values, types.get(SIGMA_HITS_COLUMNS[name], pa.string()))
                     for name, values in picked.items()})


def _label_false_positives(con: duckdb.DuckDBPyConnection, packs: list[Pack]) -> None:
    """Apply each pack's `sigma_false_positives`: a rule id, optionally an event field whose version
    must be in a pack list, and the note shown beside the hit (`caution: true` adds the note only)."""
    for pack in packs:
        for entry in pack.meta.get("sigma_false_positives") or []:
            note = entry.get("note") or {}
            where = f"rule_id = '{str(entry['rule_id']).lower()}'"
            if entry.get("field") and entry.get("version_in"):
                versions = sorted({normalise_version(v) for v in pack.resolve(entry["version_in"])})
                listing = ", ".join("'" + v.replace("'", "''") + "'" for v in versions)
                field = '"' + str(entry["field"]).replace('"', '""') + '"'
                present = {r[0].casefold() for r in con.execute("DESCRIBE win_events_all").fetchall()}
                if str(entry["field"]).casefold() not in present:
                    continue
                where += (f" AND (evidence_id, seq) IN (SELECT evidence_id, seq FROM win_events_all "
                          f"WHERE {version_expr(f'lower(CAST({field} AS VARCHAR))')} IN ({listing}))")
            flag = "false" if entry.get("caution") else "true"
            con.execute(
                f"UPDATE sigma_hits SET false_positive = {flag}, note = ?, note_fr = ? WHERE {where}",
                [note.get("en"), note.get("fr") or note.get("en")]).fetchall()


def run_sigma(con: duckdb.DuckDBPyConnection, packs: list[Pack], user_rules: list[Path] | None = None) -> RuleSet:
    """Write `sigma_hits` (and the findings of packs' rules); returns the rules run, with what could
    not be converted."""
    ruleset = RuleSet()
    for pack in packs:
        ruleset.extend(pack_rules(pack))
    if user_rules:
        ruleset.extend(load_rules(user_rules))
    run, correlation_hits = hunt(con, ruleset)
    rows = list(records(run, correlation_hits, {}, ruleset.correlations))
    con.register("sigma_hits_new", _table(rows))
    try:
        con.execute(
            "CREATE OR REPLACE TABLE sigma_hits AS SELECT * REPLACE (CAST(ts AS TIMESTAMPTZ) AS ts), "
            "false AS false_positive, CAST(NULL AS VARCHAR) AS note, CAST(NULL AS VARCHAR) AS note_fr "
            "FROM sigma_hits_new").fetchall()
    finally:
        con.unregister("sigma_hits_new")
    _label_false_positives(con, packs)
    cases = " ".join(f"WHEN '{level}' THEN '{conf}'" for level, conf in LEVEL_CONFIDENCE.items())
    con.execute(
        f"""INSERT INTO findings
        SELECT DISTINCT campaign, host, ts, stage, CASE level {cases} ELSE 'low' END, 'sigma:' || rule_id, title,
               'sigma/' || target, 'sigma', title, evidence_id, record_id, line
        FROM sigma_hits WHERE campaign IS NOT NULL AND stage IS NOT NULL AND NOT false_positive"""
    ).fetchall()
    return ruleset
