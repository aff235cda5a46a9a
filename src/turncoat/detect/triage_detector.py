"""Findings that need more than one triage row: a browser-history copy on a machine the campaign
reached, and matches of a pack's own YARA rules.

A `History.old` beside a browser profile is what the ICONIC stealer leaves (the pack's sources), but
browsers, backup and cleaning tools leave such copies too. So a copy counts as theft only on a host
where the campaign's app already shows up (any stage), and never with high confidence.
"""

from __future__ import annotations

import duckdb

from turncoat.intel.pack import Pack
from turncoat.store.schema import STAGES
from turncoat.store.sqltext import lit


def history_copy_sql(pack: Pack) -> str:
    return f"""
    SELECT {lit(pack.id)} AS campaign, b.host, coalesce(b.ts, b."browser.last_visit") AS ts,
           'data-stolen' AS stage, 'medium' AS confidence, 'triage:browser-history-copy' AS rule_id,
           'Copy of a browser history database beside the profile (ICONIC stealer leaves History.old)' AS title,
           'tri_browser' AS view, 'file.path' AS field, b."file.path" AS value, b.evidence_id,
           b.seq AS record_id, NULL AS line
    FROM tri_browser b
    WHERE b."browser.artifact" = 'history-copy'
      AND b.host IN (SELECT host FROM findings WHERE campaign = {lit(pack.id)})"""


def yara_sql(pack: Pack) -> str | None:
    """Matches of the pack's own rules (rule files under `<pack>/yara/`) prove the stage their meta
    names; an analyst's rules stay in `tri_yara` for the report, without a verdict."""
    folder = pack.root / "yara"
    if not folder.is_dir():
        return None
    names = sorted(p.name for p in folder.iterdir() if p.suffix.lower() in (".yar", ".yara"))
    if not names:
        return None
    stages = ", ".join(lit(s) for s in STAGES)
    return f"""
    SELECT {lit(pack.id)} AS campaign, host, ts, "rule.stage" AS stage, 'high' AS confidence,
           'yara:' || "rule.name" AS rule_id, 'YARA rule ' || "rule.name" || ' matched' AS title,
           'tri_yara' AS view, 'file.path' AS field, "file.path" AS value, evidence_id, seq AS record_id,
           NULL AS line
    FROM tri_yara
    WHERE "rule.source" IN ({", ".join(lit(n) for n in names)}) AND "rule.stage" IN ({stages})"""


def run_triage_detection(con: duckdb.DuckDBPyConnection, pack: Pack) -> None:
    """Add the pack's triage findings; runs after its indicators and behaviour rules."""
    query = yara_sql(pack)
    if query:
        con.execute(f"INSERT INTO findings SELECT DISTINCT * FROM ({query})").fetchall()
    con.execute(f"INSERT INTO findings SELECT DISTINCT * FROM ({history_copy_sql(pack)})").fetchall()
