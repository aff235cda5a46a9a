"""The IOC-free campaigns: drift of trusted apps, their dormancy, and their beacons, as findings of
`generic:<signer>/<product>/<version>` campaigns on the same ladder as the packs (docs/generic.md).

Drift (detect/drift.py) says which build changed in a way updates should not; dormancy
(detect/dormancy.py) which build waited days before reaching somewhere new; the beacon analysis
(detect/beacon.py) which series keep a rhythm. A beacon alone names no app and proves no compromise —
benign services keep rhythms too — so it becomes generic evidence only from the program of a build that
drifted, on a host that ran that build, after it first ran there.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from turncoat.detect.dormancy import dormancy_findings
from turncoat.detect.drift import (
    AppBuild,
    AppVersion,
    campaign_name,
    drift_analysis,
    finding_row,
)
from turncoat.report.present import period_text

RULE_BEACON = "generic:beacon:drifted-app"


def _build_on_host(build: AppBuild, host: str, when: datetime) -> AppVersion | None:
    """The newest version of the app that had first run on the host before `when`."""
    ran = [v for v in build.versions if host in v.hosts and v.hosts[host] <= when]
    return max(ran, key=lambda v: v.hosts[host]) if ran else None


def beacon_findings(con: duckdb.DuckDBPyConnection, builds: list[AppBuild], drifted: set[str]) -> list[dict[str, Any]]:
    """Beacon candidates whose program is a drifted build running on that host."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "beacons" not in tables or not drifted:
        return []
    by_program = {b.executable.lower(): b for b in builds}
    rows = con.execute(
        """SELECT host, destination, process, score, period_s, jitter, count, first_seen, hosts_sharing
           FROM beacons WHERE candidate AND process IS NOT NULL""").fetchall()
    out = []
    for host, destination, process, score, period, jitter, count, first_seen, sharing in rows:
        build = by_program.get(process.lower())
        version = _build_on_host(build, host, first_seen) if build else None
        if version is None or version.campaign not in drifted:
            continue
        title = (f"Beacon from the drifted build: {process} {version.version} → {destination} every "
                 f"{period_text(period)} (jitter {jitter or 0:.0%}, {count} beats, score {score:.2f}, "
                 f"{sharing} host(s) reach it)")
        evidence_id, record_id, line = _first_contact(con, host, process, destination, first_seen)
        out.append(finding_row(version.campaign, host, first_seen, "c2-contact", "medium", RULE_BEACON, title,
                               "beacons", "destination", destination, evidence_id, record_id, line))
    return out


def _first_contact(con: duckdb.DuckDBPyConnection, host: str, process: str, destination: str,
                   first_seen: datetime) -> tuple[str | None, int | None, int | None]:
    """The event that opened the series (its Sysmon 3 or 22 record), so the finding points at a row."""
    found = con.execute(
        """SELECT evidence_id, record_id, line FROM (
             SELECT "@timestamp" AS ts, evidence_id, record_id, line FROM ecs_network
             WHERE "host.name" = $1 AND lower("process.name") = $2
               AND $3 IN (lower(rtrim("destination.domain", '.')), "destination.ip")
             UNION ALL
             SELECT "@timestamp", evidence_id, record_id, line FROM ecs_dns
             WHERE "host.name" = $1 AND lower("process.name") = $2 AND lower(rtrim("dns.question.name", '.')) = $3)
           WHERE ts >= $4 - INTERVAL 10 SECOND ORDER BY ts LIMIT 1""",
        [host, process.lower(), destination, first_seen]).fetchall()
    return found[0] if found else (None, None, None)


CHANGE_COLUMNS = {"campaign": "VARCHAR", "kind": "VARCHAR", "name": "VARCHAR", "before": "VARCHAR",
                  "after": "VARCHAR", "hosts": "VARCHAR", "finding": "BOOLEAN"}


def store_changes(con: duckdb.DuckDBPyConnection, changes: list[dict[str, Any]]) -> None:
    """The `generic_changes` table: what each new build changed (modules before → after, new children,
    new destinations), findings or not, so the report can show an app's behaviour before and after."""
    campaigns = {(app_id, vkey): campaign_name(signer, product, version)
                 for app_id, vkey, signer, product, version in con.execute(
                     "SELECT a.app_id, r.vkey, a.signer, a.product, r.version FROM drift_app a "
                     "JOIN drift_rank r USING (app_id)").fetchall()}
    grouped: dict[tuple[str, str, str], dict[str, Any]] = {}
    for c in changes:
        key = (campaigns.get((c["app_id"], c["vkey"]), ""), c["kind"], c["name"])
        row = grouped.setdefault(key, {"campaign": key[0], "kind": c["kind"], "name": c["name"],
                                       "before": c.get("before"), "after": c.get("after"), "hosts": set(),
                                       "finding": False})
        if c.get("host"):
            row["hosts"].add(c["host"])
        row["finding"] = row["finding"] or bool(c.get("finding", True))
    con.execute("CREATE OR REPLACE TABLE generic_changes ({})".format(
        ", ".join(f'"{k}" {t}' for k, t in CHANGE_COLUMNS.items())))
    if grouped:
        con.executemany(f"INSERT INTO generic_changes VALUES ({', '.join('?' for _ in CHANGE_COLUMNS)})",
                        [[r["campaign"], r["kind"], r["name"], r["before"], r["after"],
                          ", ".join(sorted(r["hosts"])) or None, r["finding"]] for r in grouped.values()])


def generic_findings(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Every generic finding of the case (drift, dormancy, beacons of drifted builds); what each build
    changed goes to `generic_changes`."""
    analysis = drift_analysis(con)
    store_changes(con, analysis.changes)
    rows = list(analysis.findings)
    rows += dormancy_findings(con, prepared=True)
    drifted = {r["campaign"] for r in analysis.findings}
    rows += beacon_findings(con, analysis.builds, drifted)
    return rows
