"""What network evidence says about each host's coverage: which sensors saw it, when, and whether
its address stands for several machines.

Network evidence can show contact with a C2 server; it cannot show that an app was installed or is
dormant, so it never clears a host on its own (`kind="network"` sources are not process telemetry).
It does make hosts visible that have no endpoint logs at all, so they are reported (`no-evidence`,
with what to collect) instead of silently missing from the report.
"""

from __future__ import annotations

import duckdb

from turncoat.assess.coverage import Gap, HostCoverage, SourceCoverage
from turncoat.store.attribution import attributed_sql, internal_sql, shared_addresses

# Tables whose `source.ip` is a machine of the organisation acting (asking, connecting, fetching).
CLIENT_TABLES = ("net_flow", "net_dns", "net_http", "net_tls", "net_alert")


def add_network_coverage(con: duckdb.DuckDBPyConnection, hosts: dict[str, HostCoverage]) -> list[dict[str, object]]:
    """Add the network sources of every host to `hosts` (creating network-only hosts) and the
    shared-address gaps; returns the shared addresses for the report."""
    rows = " UNION ALL ".join(
        f"""SELECT "source.ip" AS ip, "@timestamp" AS ts, coalesce("event.dataset", '{t}') AS dataset,
                   evidence_id FROM {t} WHERE "source.ip" IS NOT NULL AND "@timestamp" IS NOT NULL"""
        for t in CLIENT_TABLES
    )
    # Hour buckets per address first: attribution then joins thousands of rows, not millions. A
    # bucket in which the address changed hands (an interval of `ip_hosts` starts inside it) is
    # attributed row by row instead, so each host gets its own rows.
    sql = f"""
        WITH r AS ({rows}),
        b AS (SELECT ip, dataset, evidence_id, date_trunc('hour', ts) AS hour, min(ts) AS ts, max(ts) AS last,
                     count(*) AS n FROM r GROUP BY ip, dataset, evidence_id, date_trunc('hour', ts)),
        handover AS (SELECT DISTINCT b.ip, b.hour FROM b JOIN ip_hosts h
                     ON h.ip = lower(b.ip) AND h.valid_from > b.ts AND h.valid_from <= b.last),
        units AS (
          SELECT ip, dataset, evidence_id, ts, last, n FROM b ANTI JOIN handover USING (ip, hour)
          UNION ALL
          SELECT r.ip, r.dataset, r.evidence_id, r.ts, r.ts AS last, 1 AS n FROM r
          SEMI JOIN handover h ON r.ip = h.ip AND date_trunc('hour', r.ts) = h.hour)
        SELECT host_attributed, dataset, min(ts), max(last), sum(n), count(DISTINCT CAST(ts AS DATE))
        FROM ({attributed_sql('SELECT * FROM units')})
        WHERE NOT starts_with(host_attributed, 'ip:') OR {internal_sql('ip')}
        GROUP BY host_attributed, dataset ORDER BY 1, 2"""
    for host, dataset, first, last, records, days in con.execute(sql).fetchall():
        cov = hosts.setdefault(host, HostCoverage(host))
        cov.sources.append(SourceCoverage(f"network:{dataset}", "network", first, last, int(records), int(days), 0))
    shared = []
    for ip, evidence_id, n, observer in shared_addresses(con):
        host = f"ip:{ip}"
        detail = (f"all {n} rows of a {observer} log come from {ip}: a NAT gateway or forwarding resolver "
                  "speaks for several machines, so the machine behind it cannot be named")
        detail_fr = (f"les {n} lignes d'un journal {observer} viennent toutes de {ip} : une passerelle NAT ou un "
                     "résolveur relais parle pour plusieurs machines, impossible de savoir laquelle")
        hosts.setdefault(host, HostCoverage(host)).gaps.append(
            Gap("shared-address", f"network:{observer}", None, None, detail, detail_fr))
        shared.append({"ip": ip, "evidence_id": evidence_id, "rows": n, "observer": observer})
    return shared
