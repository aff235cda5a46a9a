"""IOC matching as set-based SQL joins between the pack's indicators and the ECS views.

Each observable (a field of a view that can hold an indicator) is joined once against the indicator
table, never a Python loop over events × indicators. A hash seen executing or loaded proves the
indicator's `stage`; the same hash only present on disk (a file written, an AV detection) proves
`stage_on_disk`. Domains match themselves and their subdomains through an equi-join on every
suffix of the observed name, so the cost grows with the events, not with events × indicators.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

import duckdb

from turncoat.intel.pack import MIN_CIDR_PREFIX, Pack
from turncoat.store.attribution import attributed_sql
from turncoat.store.schema import FINDINGS_COLUMNS, NET_TABLES


@dataclass(frozen=True)
class Observable:
    view: str
    field: str
    ioc_type: str
    presence: str  # "active" (ran, loaded, contacted) or "disk" (only present)
    match: str = "equals"  # equals | address | domain | suffix | contains

    @property
    def network(self) -> bool:
        """Network tables name the client address, not the host: findings carry `ip:<address>`
        until `attribute_findings` puts the host that had the address at the time."""
        return self.view in NET_TABLES


OBSERVABLES: tuple[Observable, ...] = (
    *(Observable("ecs_process", f"process.hash.{h}", h, "active") for h in ("sha256", "sha1", "md5")),
    *(Observable("ecs_image_load", f"dll.hash.{h}", h, "active") for h in ("sha256", "sha1", "md5")),
    *(Observable("ecs_file", f"file.hash.{h}", h, "disk") for h in ("sha256", "sha1", "md5")),
    Observable("ecs_dns", "dns.question.name", "domain", "active", "domain"),
    Observable("ecs_network", "destination.domain", "domain", "active", "domain"),
    Observable("ecs_network", "destination.ip", "ip", "active", "address"),
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
    # network evidence: what the wire, the resolver, the proxy or the firewall saw
    Observable("net_dns", "dns.question.name", "domain", "active", "domain"),
    Observable("net_http", "url.domain", "domain", "active", "domain"),
    Observable("net_http", "url.full", "url", "active", "contains"),
    Observable("net_http", "user_agent.original", "user_agent", "active"),
    Observable("net_http", "http.cookie", "cookie", "active", "contains"),
    Observable("net_tls", "tls.client.server_name", "domain", "active", "domain"),
    Observable("net_tls", "tls.client.ja3", "ja3", "active"),
    Observable("net_tls", "tls.client.ja4", "ja4", "active"),
    Observable("net_tls", "tls.server.x509.serial_number", "cert_serial", "active"),
    *(Observable(t, "destination.ip", "ip", "active", "address") for t in ("net_flow", "net_tls", "net_http")),
)


DOMAIN_TAIL = r"[^.]*\.?[^.]+$"  # the last two labels of a name (or its only one)


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
        return text.replace(" ", "").replace(":", "").lower().lstrip("0") or "0"
    if ioc_type == "ip":
        try:
            return str(ipaddress.ip_address(text))
        except ValueError:
            return text.lower()
    return text.lower()


def unicode_form(domain: str) -> str | None:
    """The Unicode spelling of a punycode domain (logs may show either), or None if it has none."""
    if "xn--" not in domain:
        return None
    try:
        return domain.encode("ascii").decode("idna")
    except UnicodeError:
        return None


def cidr_bounds(value: str) -> tuple[int, int] | None:
    """First and last address of an indicator network as integers (IPv4, /16 or narrower: the
    pack validator refuses others)."""
    net = ipaddress.ip_network(value.strip(), strict=False)
    if net.version != 4 or net.prefixlen < MIN_CIDR_PREFIX:
        return None
    return int(net.network_address), int(net.broadcast_address)


def load_indicators(con: duckdb.DuckDBPyConnection, pack: Pack) -> None:
    """Put the pack's indicators in a temporary table `iocs` in canonical form."""
    con.execute(
        "CREATE OR REPLACE TEMP TABLE iocs (type VARCHAR, value VARCHAR, original VARCHAR, role VARCHAR, "
        "stage VARCHAR, stage_on_disk VARCHAR, confidence VARCHAR)"
    )
    rows = []
    members = []
    for r in pack.iocs:
        value = normalise(r["type"], r["value"])
        row = (r["type"], value, r["value"], r["role"], r["stage"], r["stage_on_disk"] or "vulnerable-installed",
               r["confidence"])
        rows.append(row)
        if r["type"] == "domain" and (spelled := unicode_form(value)):
            rows.append((row[0], spelled, *row[2:]))
        if r["type"] == "cidr" and (bounds := cidr_bounds(value)):
            members.append((*bounds, *row))
    if rows:
        con.executemany("INSERT INTO iocs VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE ioc_addresses AS SELECT value AS raw, * FROM iocs WHERE type = 'ip'")
    if members:  # every address of each network, so networks match by the same hash join as addresses
        con.execute("CREATE OR REPLACE TEMP TABLE ioc_networks AS SELECT * FROM iocs WHERE false")
        con.execute("ALTER TABLE ioc_networks ADD COLUMN lo BIGINT")
        con.execute("ALTER TABLE ioc_networks ADD COLUMN hi BIGINT")
        con.executemany("INSERT INTO ioc_networks (lo, hi, type, value, original, role, stage, stage_on_disk, "
                        "confidence) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", members)
        con.execute(
            """INSERT INTO ioc_addresses
            SELECT (n // 16777216) || '.' || (n // 65536 % 256) || '.' || (n // 256 % 256) || '.' || (n % 256),
                   type, value, original, role, stage, stage_on_disk, confidence
            FROM (SELECT *, unnest(range(lo, hi + 1)) AS n FROM ioc_networks)"""
        ).fetchall()
    # the last two labels of every domain indicator: names that do not end in one are never expanded
    con.execute(
        "CREATE OR REPLACE TEMP TABLE ioc_domain_tails AS SELECT DISTINCT "
        f"regexp_extract(value, '{DOMAIN_TAIL}') AS tail FROM iocs WHERE type = 'domain'")


def _observable_sql(obs: Observable, campaign: str) -> str:
    """Matches of one observable. The distinct values of the field are matched first (a large
    table holds far fewer distinct addresses or names than rows), then joined back to the rows
    by plain equality: the work grows with the rows only through one scan and one hash probe."""
    field = f'"{obs.field}"'
    stage = "h.stage" if obs.presence == "active" else "h.stage_on_disk"
    host = "'ip:' || v.\"source.ip\"" if obs.network else 'v."host.name"'
    # addresses: one hash probe per row into the indicator addresses (IPs and the members of
    # indicator networks), cheaper than finding the distinct addresses first
    hits = "ioc_addresses" if obs.match == "address" else f"({_value_hits_sql(obs)})"
    return (
        f"SELECT '{campaign}' AS campaign, {host} AS host, v.\"@timestamp\" AS ts, {stage} AS stage, "
        f"h.confidence AS confidence, 'ioc:' || h.type || ':' || h.value AS rule_id, "
        f"h.role || ' — ' || h.type || ' ' || h.original AS title, '{obs.view}' AS view, "
        f"'{obs.field}' AS field, v.{field} AS value, v.evidence_id, v.record_id, v.line "
        f"FROM {obs.view} v JOIN {hits} h ON v.{field} = h.raw"
    )


def _value_hits_sql(obs: Observable) -> str:
    """(raw, indicator columns…) for every distinct value of the field that matches an indicator."""
    field = f'"{obs.field}"'
    values = f"(SELECT DISTINCT {field} AS raw FROM {obs.view} WHERE {field} IS NOT NULL)"
    of_type = f"(SELECT * FROM iocs WHERE type = '{obs.ioc_type}')"
    if obs.match == "equals":
        observed = "lower(d.raw)"
        if obs.ioc_type == "cert_serial":  # as `normalise`: `1B:66:…`, `1b 66 …`, `01b66…` are one serial
            observed = "coalesce(nullif(ltrim(replace(replace(lower(d.raw), ':', ''), ' ', ''), '0'), ''), '0')"
        return f"SELECT d.raw, i.* FROM {values} d JOIN {of_type} i ON {observed} = i.value"
    if obs.match == "suffix":
        return (f"SELECT d.raw, i.* FROM {values} d JOIN {of_type} i "
                f"ON ends_with(replace(lower(d.raw), '/', '\\'), i.value)")
    if obs.match == "contains":
        observed = "lower(d.raw)"
        if obs.ioc_type == "url":  # `http://host:443/path` is the URL `host/path` too
            observed = r"regexp_replace(lower(d.raw), '^([a-z][a-z0-9+.-]*://)?([^/:@]+):[0-9]+', '\1\2')"
        return f"SELECT d.raw, i.* FROM {values} d JOIN {of_type} i ON contains({observed}, i.value)"
    # domain: names whose last two labels end some indicator are expanded into every suffix
    # (a.b.c → a.b.c, b.c, c) and equi-joined to the indicators
    return (
        f"SELECT d.raw, i.* FROM (SELECT raw, array_to_string(list_slice(labels, k, len(labels)), '.') AS suffix "
        f"FROM (SELECT raw, labels, unnest(generate_series(1, len(labels))) AS k "
        f"FROM (SELECT raw, string_split(name, '.') AS labels "
        f"FROM (SELECT raw, rtrim(lower(raw), '.') AS name FROM {values}) "
        f"WHERE regexp_extract(name, '{DOMAIN_TAIL}') IN (SELECT tail FROM ioc_domain_tails)))) d "
        f"JOIN {of_type} i ON d.suffix = i.value"
    )


def ioc_findings_queries(pack: Pack) -> list[str]:
    """One query per observable producing its findings rows. They run one after another: run as
    one UNION, every view would be scanned at once and memory would grow with the observables."""
    return [_observable_sql(o, pack.id) for o in OBSERVABLES]


def attribute_findings(con: duckdb.DuckDBPyConnection) -> None:
    """Put on every network finding (host `ip:<address>`) the host that had that address at the
    time of the row, where DHCP or the host's own events tell (store/attribution.py)."""
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE attributed_findings AS
        {attributed_sql("SELECT *, substr(host, 4) AS ip FROM findings WHERE starts_with(host, 'ip:')")}"""
    ).fetchall()
    con.execute("DELETE FROM findings WHERE starts_with(host, 'ip:')").fetchall()
    columns = ", ".join("host_attributed AS host" if c == "host" else c for c in FINDINGS_COLUMNS)
    con.execute(f"INSERT INTO findings SELECT DISTINCT {columns} FROM attributed_findings").fetchall()
