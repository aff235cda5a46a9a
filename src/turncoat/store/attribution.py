"""Which host had which IP address when: the `ip_hosts` table, and attribution of network rows.

Network evidence names addresses, verdicts name hosts. Addresses move (DHCP leases, laptops going
home), so attribution is over time: every observation of an address in use by a named host — a DHCP
lease (Zeek dhcp.log, Windows DHCP Server audit log) or the host's own Sysmon event 3 with
`Initiated=true` (its `SourceIp` is its own address; Security 4624's `IpAddress` is the *remote*
client and is never used) — starts an interval that lasts until another host is seen with that
address. The first interval of an address starts at its first observation when that observation is
a new lease (before the lease, the address was someone else's or no one's); an address first seen in a
host's own events, or in the renewal of a lease it already held, is taken to have been that host's
before too.

Where neither shows an address, the organisation's own DNS answers do (an internal name resolved to
an internal address, or a PTR answer for one): registrations go stale when addresses move, so they
are used only for addresses no lease or host event names.

An address that no interval covers stays visible as `ip:<address>`. Only internal addresses (private,
link-local, loopback, CGNAT, unique-local IPv6) are hosts of the organisation; the far ends of
connections are not listed as hosts.

An address through which one network source sees all of its traffic (a NAT gateway in front of the
sensor, a resolver that forwards for everyone) speaks for many machines: `shared_addresses` finds
them so the report can say the machine behind cannot be named, instead of guessing.
"""

from __future__ import annotations

import duckdb

from turncoat.evidence.network.values import canonical_ip
from turncoat.store.schema import NET_TABLES, SYSMON

# The lease events that mean "this host has this address from now on" (the last message of a Zeek
# exchange such as "DISCOVER,OFFER,REQUEST,ACK"; the Windows audit log's actions; old Zeek dhcp.log
# rows, which carry no message types, are ACKs). Everything else —
# NAKs, releases, expiries, conflicts, DNS updates, solicits — names an address it may not hold.
LEASE = r"(?i)^(ack|assign|bootp-assign|renew|rebind|confirm)$"
# DHCPv6: the Windows server logs the Request it grants; a Zeek exchange ending in REQUEST was not acked.
V6_GRANT = "(\"observer.type\" = 'windows-dhcp' AND lower({action}) = 'request')"
# Lease events by which a host keeps an address it already had.
RENEWAL = r"(?i)^(renew|rebind)"
# Logs of DNS servers: all of an organisation's clients ask them, so a single client is a forwarder.
RESOLVER_OBSERVERS = ("windows-dns", "bind", "dnsmasq", "unbound")
# Below this many rows a source with one client proves nothing about NAT or forwarding.
SHARED_MIN_ROWS = 20

# Internal addresses: RFC 1918, CGNAT (RFC 6598), link-local, loopback, unique-local and link-local IPv6.
INTERNAL_IP = (
    r"^(10\.|192\.168\.|172\.(1[6-9]|2[0-9]|3[01])\.|100\.(6[4-9]|[7-9][0-9]|1[01][0-9]|12[0-7])\.|"
    r"169\.254\.|127\.|f[cd][0-9a-f]{2}:|fe[89ab][0-9a-f]:|::1$)"
)


def host_key_sql(expr: str) -> str:
    """The canonical host key (lower-case short name) of a host name, as in the endpoint readers."""
    return f"nullif(lower(split_part(trim({expr}), '.', 1)), '')"


def internal_sql(expr: str) -> str:
    return f"regexp_matches(lower({expr}), '{INTERNAL_IP}')"


# DNS registrations: an A/AAAA answer of one internal address for a host-like name, and PTR
# answers for internal addresses (preferred where both exist); an address several names claim is
# a shared service, not a host, and is left out. Host-like: three labels or more, no `_` label, not
# one of the names Active Directory and auto-configuration publish for services.
_PRIVATE_ANSWER = r"(^|,)\s*(10\.|192\.168\.|172\.(1[6-9]|2[0-9]|3[01])\.|f[cd][0-9a-f]{2}:)"
_SERVICE_NAMES = ("gc", "domaindnszones", "forestdnszones", "wpad", "isatap", "localhost")
_FIRST_ANSWER = """split_part("dns.answers", ',', 1)"""
_QUESTION = '"dns.question.name"'
_REGISTERED_SQL = f"""
    WITH forward AS (
      SELECT lower(trim("dns.answers")) AS ip, {host_key_sql(_QUESTION)} AS host, "@timestamp" AS ts, evidence_id
      FROM net_dns
      WHERE "dns.answers" IS NOT NULL AND "@timestamp" IS NOT NULL AND NOT contains("dns.answers", ',')
        AND regexp_matches("dns.answers", '{_PRIVATE_ANSWER}') AND {internal_sql('trim("dns.answers")')}
        AND len(string_split({_QUESTION}, '.')) >= 3 AND NOT regexp_matches({_QUESTION}, '(^|\\.)_')
        AND lower(split_part({_QUESTION}, '.', 1)) NOT IN ({", ".join(f"'{n}'" for n in _SERVICE_NAMES)})
        AND NOT ends_with(lower({_QUESTION}), '.arpa')),
    reverse AS (
      SELECT * FROM (
        SELECT array_to_string(list_reverse(string_split(
                 regexp_replace(lower({_QUESTION}), '\\.in-addr\\.arpa$', ''), '.')), '.') AS ip,
               {host_key_sql(_FIRST_ANSWER)} AS host, "@timestamp" AS ts, evidence_id
        FROM net_dns
        WHERE ends_with(lower({_QUESTION}), '.in-addr.arpa') AND "dns.answers" IS NOT NULL
          AND "@timestamp" IS NOT NULL AND NOT regexp_matches("dns.answers", '^[0-9.]+$'))
      WHERE {internal_sql('ip')}),
    claims AS (SELECT * FROM reverse UNION ALL SELECT * FROM forward WHERE ip NOT IN (SELECT ip FROM reverse)),
    single AS (SELECT ip FROM claims GROUP BY ip HAVING count(DISTINCT host) = 1)
    SELECT ip, host, min(ts) AS ts, min(evidence_id) AS evidence_id FROM claims
    WHERE ip IN (SELECT ip FROM single) GROUP BY ip, host
    UNION ALL
    SELECT ip, host, max(ts), min(evidence_id) FROM claims WHERE ip IN (SELECT ip FROM single) GROUP BY ip, host"""


def _canonical_addresses(con: duckdb.DuckDBPyConnection) -> None:
    """Endpoint logs write IPv6 their own way (Sysmon: `fd00:0:0:0:0:0:0:23`); network readers write
    RFC 5952 (`fd00::23`). The few distinct IPv6 observations are rewritten in the readers' form so
    that the two meet in the join."""
    spelled = [ip for (ip,) in con.execute(
        "SELECT DISTINCT ip FROM ip_observations WHERE contains(ip, ':')").fetchall()]
    changes = [(ip, canon) for ip in spelled if (canon := canonical_ip(ip)) and canon != ip]
    if changes:
        con.execute("CREATE OR REPLACE TEMP TABLE ip_spellings (spelled VARCHAR, canonical VARCHAR)")
        con.executemany("INSERT INTO ip_spellings VALUES (?, ?)", changes)
        con.execute("UPDATE ip_observations SET ip = s.canonical FROM ip_spellings s WHERE ip = s.spelled").fetchall()
    con.execute("DELETE FROM ip_observations WHERE ip IN ('127.0.0.1', '::1')").fetchall()


def build_ip_hosts(con: duckdb.DuckDBPyConnection) -> None:
    """(Re)build `ip_observations`, `ip_hosts` and `shared_sources` from the store."""
    has_sysmon_ip = {"sourceip", "initiated"} <= {
        r[0].lower() for r in con.execute("DESCRIBE win_events").fetchall()}
    endpoint = (
        f"""SELECT SourceIp AS ip, host, ts, 'endpoint' AS source, evidence_id FROM win_events
            WHERE Channel = '{SYSMON}' AND EventID = 3 AND lower(Initiated) = 'true'
              AND SourceIp IS NOT NULL AND host IS NOT NULL AND ts IS NOT NULL"""
        if has_sysmon_ip else
        "SELECT NULL::VARCHAR AS ip, NULL::VARCHAR AS host, NULL::TIMESTAMPTZ AS ts, NULL AS source, "
        "NULL::VARCHAR AS evidence_id WHERE false"
    )
    # a Zeek exchange from a client that already had the address (its ciaddr, source.ip) renews it
    renewed = 'coalesce("source.ip" = "client.ip", false)'
    last_action = """regexp_extract(coalesce("event.action", ''), '[^,]*$')"""
    con.execute(
        f"""CREATE OR REPLACE TABLE ip_observations AS
        SELECT lower(ip) AS ip, host, ts, source, evidence_id FROM (
          SELECT "client.ip" AS ip, {host_key_sql('"host.hostname"')} AS host, "@timestamp" AS ts,
                 CASE WHEN {renewed} OR regexp_matches({last_action}, '{RENEWAL}') THEN 'dhcp-renewal'
                      ELSE 'dhcp' END AS source, evidence_id
          FROM net_dhcp
          WHERE "client.ip" IS NOT NULL AND "host.hostname" IS NOT NULL AND "@timestamp" IS NOT NULL
            AND "client.ip" NOT IN ('0.0.0.0', '::')
            AND ("event.action" IS NULL OR regexp_matches({last_action}, '{LEASE}')
                 OR {V6_GRANT.format(action=last_action)})
          UNION ALL {endpoint})
        WHERE host IS NOT NULL AND ip NOT IN ('127.0.0.1', '::1')"""
    ).fetchall()
    _canonical_addresses(con)
    # DNS registrations (what the organisation's resolver answers for its own names) name the
    # addresses no lease or host event covers; records go stale when an address moves, so they
    # never override a lease or the host's own events.
    con.execute(
        f"""INSERT INTO ip_observations
        WITH registered AS ({_REGISTERED_SQL})
        SELECT ip, host, ts, 'dns', evidence_id FROM registered
        WHERE ip NOT IN (SELECT ip FROM ip_observations) AND host IS NOT NULL"""
    ).fetchall()
    # Runs of the same host per address, in time order; each run holds until the next one starts.
    con.execute(
        """CREATE OR REPLACE TABLE ip_hosts AS
        WITH ordered AS (
          SELECT *, CASE WHEN host IS DISTINCT FROM lag(host) OVER (PARTITION BY ip ORDER BY ts, host)
                         THEN 1 ELSE 0 END AS starts
          FROM ip_observations),
        runs AS (SELECT *, sum(starts) OVER (PARTITION BY ip ORDER BY ts, host) AS run FROM ordered),
        spans AS (
          SELECT ip, host, run, min(ts) AS first_seen, max(ts) AS last_seen,
                 arg_min(source, ts) AS first_source, list(DISTINCT source ORDER BY source) AS sources
          FROM runs GROUP BY ip, host, run)
        SELECT ip, host,
               CASE WHEN run = 1 AND first_source <> 'dhcp' THEN '-infinity'::TIMESTAMPTZ ELSE first_seen END
                 AS valid_from,
               coalesce(lead(first_seen) OVER (PARTITION BY ip ORDER BY run), 'infinity'::TIMESTAMPTZ) AS valid_to,
               first_seen, last_seen, array_to_string(sources, ',') AS sources
        FROM spans ORDER BY ip, valid_from"""
    ).fetchall()
    _build_shared_sources(con)


def attributed_sql(rows_sql: str) -> str:
    """`rows_sql` (with `ip`, `ts`, `evidence_id`) plus `host_attributed`: the host that had `ip` at
    `ts`, else `ip:<address>` — always the address for rows of a shared source."""
    return (
        f"""SELECT r.*, CASE WHEN s.ip IS NOT NULL THEN 'ip:' || r.ip ELSE coalesce(h.host, 'ip:' || r.ip) END
                 AS host_attributed
        FROM ({rows_sql}) r ASOF LEFT JOIN ip_hosts h ON lower(r.ip) = h.ip AND r.ts >= h.valid_from
        LEFT JOIN shared_sources s ON s.evidence_id = r.evidence_id AND s.ip = lower(r.ip)"""
    )


def _build_shared_sources(con: duckdb.DuckDBPyConnection) -> None:
    """`shared_sources`: network sources that see every row come from one address standing for many
    machines — a public address (the sensor sits outside a NAT gateway), or the only client of a
    DNS server's log (a resolver forwarding for everyone). A capture of one internal host by Zeek or
    Suricata also has a single client, and is attributed normally."""
    parts = " UNION ALL ".join(
        f"""SELECT evidence_id, min("observer.type") AS observer, count(*) AS n,
                   min(lower("source.ip")) = max(lower("source.ip")) AS one_client, min(lower("source.ip")) AS ip
            FROM {t} WHERE "source.ip" IS NOT NULL GROUP BY evidence_id"""
        for t in NET_TABLES if t not in ("net_dhcp", "net_x509", "net_files")
    )
    resolvers = ", ".join(f"'{o}'" for o in RESOLVER_OBSERVERS)
    con.execute(
        f"""CREATE OR REPLACE TABLE shared_sources AS
        SELECT ip, evidence_id, sum(n) AS n, min(observer) AS observer FROM ({parts})
        WHERE one_client AND n >= {SHARED_MIN_ROWS} AND (NOT {internal_sql('ip')} OR observer IN ({resolvers}))
        GROUP BY ip, evidence_id"""
    ).fetchall()


def shared_addresses(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, int, str]]:
    """(address, evidence_id, rows, observer) of every shared source (see `_build_shared_sources`)."""
    return [(ip, e, int(n), o) for ip, e, n, o in con.execute(
        "SELECT ip, evidence_id, n, observer FROM shared_sources ORDER BY ip, evidence_id").fetchall()]
