"""`turncoat detect`: run every pack's indicators and behaviour rules, write the `findings` table."""

from __future__ import annotations

from pathlib import Path

import duckdb

from turncoat.detect.beacon import run_beacons
from turncoat.detect.generic import generic_findings
from turncoat.detect.ioc import (
    attribute_findings,
    ioc_findings_queries,
    load_indicators,
)
from turncoat.detect.killchain import killchain_findings_sql
from turncoat.detect.triage_detector import run_triage_detection
from turncoat.intel.pack import Pack
from turncoat.store.schema import FINDINGS_COLUMNS

FINDINGS_DDL = "CREATE OR REPLACE TABLE findings ({})".format(
    ", ".join(f"{name} {sql_type}" for name, sql_type in FINDINGS_COLUMNS.items()))


def run_detection(con: duckdb.DuckDBPyConnection, packs: list[Pack],
                  sigma_rules: list[Path] | None = None) -> dict[str, int]:
    """Replace the findings with those of `packs` (indicators, behaviour rules, their Sigma rules)
    and `sigma_hits` with the hits of every Sigma rule, the analyst's `sigma_rules` included;
    returns the number of findings per pack."""
    from turncoat.detect.sigma_detector import run_sigma

    con.execute(FINDINGS_DDL)
    run_sigma(con, packs, sigma_rules)
    counts: dict[str, int] = {}
    for pack in packs:
        load_indicators(con, pack)
        queries = ioc_findings_queries(pack)
        behaviour = killchain_findings_sql(pack)
        if behaviour:
            queries.append(behaviour)
        for query in queries:  # each match kind yields distinct rows (its view and field are in them)
            con.execute(f"INSERT INTO findings SELECT DISTINCT * FROM ({query})").fetchall()
        run_triage_detection(con, pack)
        counts[pack.id] = con.execute(
            "SELECT count(*) FROM findings WHERE campaign = ?", [pack.id]
        ).fetchall()[0][0]
    attribute_findings(con)
    run_beacons(con)  # IOC-free: every pack's hosts and every other host alike
    generic = generic_findings(con)
    if generic:
        con.executemany(f"INSERT INTO findings VALUES ({', '.join('?' for _ in FINDINGS_COLUMNS)})",
                        [[row[c] for c in FINDINGS_COLUMNS] for row in generic])
    counts["generic"] = len(generic)
    return counts
