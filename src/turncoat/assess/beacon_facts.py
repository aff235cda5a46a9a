"""The beacon analysis as the report shows it: ranked candidates, per host and for the whole case."""

from __future__ import annotations

import json
from typing import Any

import duckdb

from turncoat.intel.pack import iso

MAX_IN_REPORT = 50
MAX_PER_HOST = 10


def beacon_report(con: duckdb.DuckDBPyConnection) -> tuple[dict[str, Any], dict[str, list[dict[str, Any]]]]:
    """(case-level summary with the best candidates, candidates per host). Empty when `detect` did not
    score beacons."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "beacons" not in tables:
        return {"scored": 0, "candidates": [], "suppressed": []}, {}
    rows = con.execute(
        """SELECT host, destination, process, score, period_s, jitter, regularity, omission, count, connections,
                  size_dispersion, first_seen, last_seen, hosts_sharing, suppressed_by, candidate, address,
                  histogram, established
           FROM beacons ORDER BY suppressed_by IS NOT NULL, NOT candidate, established, score DESC, host,
                    destination""").fetchall()
    keys = ("host", "destination", "process", "score", "period_s", "jitter", "regularity", "omission", "count",
            "connections", "size_dispersion", "first_seen", "last_seen", "hosts_sharing", "suppressed_by",
            "candidate", "address", "histogram", "established")
    series = []
    for row in rows:
        item = dict(zip(keys, row))
        item["first_seen"], item["last_seen"] = iso(item["first_seen"]), iso(item["last_seen"])
        item["histogram"] = json.loads(item["histogram"]) if item["histogram"] else None
        series.append(item)
    candidates = [s for s in series if s["candidate"]]
    suppressed = [s for s in series if s["suppressed_by"]]
    # per host, the rhythms that began during the logs first, then those there from the start
    per_host: dict[str, list[dict[str, Any]]] = {}
    for item in candidates:
        if len(per_host.setdefault(item["host"], [])) < MAX_PER_HOST:
            per_host[item["host"]].append(item)
    summary = {"scored": len(series), "candidates": candidates[:MAX_IN_REPORT],
               "candidates_total": len(candidates),
               "established_total": sum(1 for s in candidates if s["established"]),
               "suppressed": [{"host": s["host"], "destination": s["destination"], "score": s["score"],
                               "period_s": s["period_s"], "suppressed_by": s["suppressed_by"]}
                              for s in suppressed[:MAX_IN_REPORT]],
               "suppressed_total": len(suppressed)}
    return summary, per_host
