"""Every connection-like record of the case as one contact stream for the beacon analysis: who
(`host`), to what (`destination`, the best name known), from which program (`process`, when the
source knows it), when (`ts`), and how many bytes the client sent (`bytes`, when known).

The destination is the best name available: the TLS server name, the HTTP Host or the proxy's CONNECT
target, the DNS name asked, else the address. Behind a proxy the address is the proxy's own, so the
proxy log's target is what names the far end. A Zeek connection that its ssl.log or http.log already
names (same `uid`) is counted once, under that name. Network rows name the client by address
(`ip:<address>`); the beacon analysis attributes the few candidates to hosts afterwards.
"""

from __future__ import annotations

import duckdb


def _columns(con: duckdb.DuckDBPyConnection, view: str) -> set[str]:
    return {row[0] for row in con.execute(f"DESCRIBE {view}").fetchall()}


def contacts_sql(con: duckdb.DuckDBPyConnection) -> str:
    """A query over the case's views with columns host, destination, process, ts, bytes."""
    named_uids = []
    for table in ("net_tls", "net_http"):
        if "uid" in _columns(con, table):
            named_uids.append(f"SELECT uid FROM {table} WHERE uid IS NOT NULL")
    flow_filter = ""
    if named_uids and "uid" in _columns(con, "net_flow"):
        flow_filter = f"AND (uid IS NULL OR uid NOT IN ({' UNION '.join(named_uids)}))"
    parts = [
        # TLS: the server name, else the address
        """SELECT 'ip:' || "source.ip" AS host, coalesce(nullif(lower("tls.client.server_name"), ''),
                  "destination.ip") AS destination, NULL AS process, "@timestamp" AS ts, NULL::BIGINT AS bytes
           FROM net_tls""",
        # HTTP and proxies: the Host header or CONNECT target
        """SELECT 'ip:' || "source.ip", coalesce(nullif(lower("url.domain"), ''), "destination.ip"), NULL,
                  "@timestamp", NULL::BIGINT FROM net_http""",
        # DNS questions seen on the wire or by the resolver
        """SELECT 'ip:' || "source.ip", lower("dns.question.name"), NULL, "@timestamp", NULL::BIGINT
           FROM net_dns WHERE "dns.question.name" IS NOT NULL""",
        # connections no other log names, and firewall decisions
        f"""SELECT 'ip:' || "source.ip", "destination.ip", NULL, "@timestamp", "source.bytes" FROM net_flow
            WHERE "destination.ip" IS NOT NULL {flow_filter}""",
        # the host's own view: Sysmon 3 and 22, with the program
        """SELECT "host.name", coalesce(nullif("destination.domain", ''), "destination.ip"), "process.name",
                  "@timestamp", NULL::BIGINT FROM ecs_network""",
        """SELECT "host.name", "dns.question.name", "process.name", "@timestamp", NULL::BIGINT FROM ecs_dns""",
    ]
    union = " UNION ALL ".join(f"({p})" for p in parts)
    return (f"SELECT host, rtrim(lower(destination), '.') AS destination, lower(process) AS process, ts, bytes "
            f"FROM ({union}) WHERE NOT regexp_matches(lower(destination), '{LOCAL_ONLY}')")


# Destinations that are the local network talking to itself, never a remote end: multicast and
# broadcast addresses (IPv6 ff00::/8, IPv4 224.0.0.0/4 and 255.255.255.255: router solicitations, SSDP,
# mDNS) and the mDNS and reverse-lookup names (`*.local`, `*.arpa`).
LOCAL_ONLY = r"^(ff[0-9a-f]{2}:|2(2[4-9]|3[0-9])\.|255\.255\.255\.255$)|\.(local|arpa)$"
