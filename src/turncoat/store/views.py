"""DuckDB views over the case's Parquet: the de-duplicated `win_events`, the ECS views, one view
per network table, and the `ip_hosts` attribution table (store/attribution.py).

The ECS views are how detectors and packs see events, whatever channel or export they came from.
EventData columns exist only when some evidence had them, so every view is generated against the
columns actually present: a missing source field reads as NULL instead of failing the whole view.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from turncoat.store.attribution import build_ip_hosts
from turncoat.store.schema import (
    DNS_ANALYTICAL_DATASET,
    NET_TABLES,
    SYSMON,
    WIN_EVENT_FIXED,
    WIN_EVENTS,
    net_columns,
)
from turncoat.store.sqltext import lit as _lit
from turncoat.store.sqltext import no_rows as _no_rows
from turncoat.store.sqltext import parquet_files, parquet_view_sql
from turncoat.store.sqltext import q as _q
from turncoat.store.triage_views import TRIAGE_SOURCES, create_triage_views

DEFENDER = "Microsoft-Windows-Windows Defender/Operational"
POWERSHELL = "Microsoft-Windows-PowerShell/Operational"


@dataclass(frozen=True)
class Source:
    """One event type feeding an ECS view: which rows, and which expression fills each column."""

    where: str
    columns: dict[str, str]  # ECS name → SQL expression over win_events fields (use {Field})
    # Rows from a triage table instead (store/triage_views.py): columns are plain SQL over its
    # fixed columns, and the common ones come from its own `ts`, `host`, `artifact`.
    table: str = WIN_EVENTS


def _basename(expr: str) -> str:
    return f"nullif(lower(regexp_extract({expr}, '[^\\\\/]*$')), '')"


def _hash(expr: str, algo: str) -> str:
    # no braces in the pattern: the expression is later filled with str.format_map
    return f"nullif(lower(regexp_extract({expr}, '(?i)\\b{algo}=([0-9a-f]+)', 1)), '')"


def _ch(channel: str, *ids: int) -> str:
    return f"Channel = {_lit(channel)} AND EventID IN ({', '.join(map(str, ids))})"


ECS_VIEWS: dict[str, list[Source]] = {
    "ecs_process": [
        Source(_ch(SYSMON, 1), {
            "process.executable": "{Image}", "process.name": _basename("{Image}"),
            "process.command_line": "{CommandLine}", "process.pid": "{ProcessId}",
            "process.parent.executable": "{ParentImage}", "process.parent.name": _basename("{ParentImage}"),
            "process.hash.sha256": _hash("{Hashes}", "SHA256"), "process.hash.sha1": _hash("{Hashes}", "SHA1"),
            "process.hash.md5": _hash("{Hashes}", "MD5"), "process.pe.file_version": "{FileVersion}",
            "process.pe.product": "{Product}", "process.pe.company": "{Company}",
            "process.pe.original_file_name": "{OriginalFileName}", "user.name": "{User}",
        }),
        Source(_ch("Security", 4688), {
            "process.executable": "{NewProcessName}", "process.name": _basename("{NewProcessName}"),
            "process.command_line": "{CommandLine}", "process.pid": "{NewProcessId}",
            "process.parent.executable": "{ParentProcessName}",
            "process.parent.name": _basename("{ParentProcessName}"),
            "user.name": "coalesce({TargetUserName}, {SubjectUserName})",
        }),
    ],
    "ecs_image_load": [
        Source(_ch(SYSMON, 7), {
            "process.executable": "{Image}", "process.name": _basename("{Image}"),
            "dll.path": "{ImageLoaded}", "dll.name": _basename("{ImageLoaded}"),
            "dll.hash.sha256": _hash("{Hashes}", "SHA256"), "dll.hash.sha1": _hash("{Hashes}", "SHA1"),
            "dll.hash.md5": _hash("{Hashes}", "MD5"), "dll.pe.file_version": "{FileVersion}",
            "dll.code_signature.signed": "{Signed}", "dll.code_signature.subject_name": "{Signature}",
            "dll.code_signature.status": "{SignatureStatus}",
        }),
    ],
    "ecs_network": [
        Source(_ch(SYSMON, 3), {
            "process.executable": "{Image}", "process.name": _basename("{Image}"),
            "source.ip": "{SourceIp}", "source.port": "{SourcePort}",
            "destination.ip": "{DestinationIp}", "destination.port": "{DestinationPort}",
            "destination.domain": "nullif(lower(rtrim({DestinationHostname}, '.')), '')",
            "network.transport": "lower({Protocol})",
            "network.direction": "CASE lower({Initiated}) WHEN 'true' THEN 'outbound' WHEN 'false' THEN 'inbound' END",
        }),
        Source(_ch("Security", 5156), {
            "process.executable": "{Application}", "process.name": _basename("{Application}"),
            "source.ip": "{SourceAddress}", "source.port": "{SourcePort}",
            "destination.ip": "{DestAddress}", "destination.port": "{DestPort}",
            "network.transport": "{Protocol}",
            "network.direction": "CASE {Direction} WHEN '%%14593' THEN 'outbound' WHEN '%%14592' THEN 'inbound' END",
        }),
    ],
    "ecs_dns": [
        Source(_ch(SYSMON, 22), {
            "process.executable": "{Image}", "process.name": _basename("{Image}"),
            "dns.question.name": "nullif(lower(rtrim({QueryName}, '.')), '')",
            "dns.answers": "{QueryResults}", "dns.response_code": "{QueryStatus}",
        }),
    ],
    "ecs_file": [
        Source(_ch(SYSMON, 11, 15, 23, 26), {
            "process.executable": "{Image}", "process.name": _basename("{Image}"),
            "file.path": "{TargetFilename}", "file.name": _basename("{TargetFilename}"),
            "file.hash.sha256": _hash("coalesce({Hashes}, {Hash})", "SHA256"),
            "file.hash.sha1": _hash("coalesce({Hashes}, {Hash})", "SHA1"),
            "file.hash.md5": _hash("coalesce({Hashes}, {Hash})", "MD5"),
            "event.action": "CASE EventID WHEN 11 THEN 'creation' WHEN 15 THEN 'stream' ELSE 'deletion' END",
        }),
    ],
    "ecs_package": [
        Source(_ch("Application", 1033, 1034, 11707, 11724) + " AND Provider_Name = 'MsiInstaller'", {
            "package.name": (
                "CASE WHEN EventID IN (1033, 1034) THEN json_extract_string({Data}, '$[0]') "
                "ELSE nullif(regexp_extract(json_extract_string({Data}, '$[0]'), 'Product: (.*?) --', 1), '') END"
            ),
            "package.version": "CASE WHEN EventID IN (1033, 1034) THEN json_extract_string({Data}, '$[1]') END",
            "package.vendor": "CASE WHEN EventID IN (1033, 1034) THEN json_extract_string({Data}, '$[4]') END",
            "event.action": "CASE WHEN EventID IN (1033, 11707) THEN 'installed' ELSE 'removed' END",
            "event.outcome": (
                "CASE WHEN EventID IN (1033, 1034) THEN CASE json_extract_string({Data}, '$[3]') "
                "WHEN '0' THEN 'success' ELSE 'failure' END ELSE 'success' END"
            ),
        }),
    ],
    "ecs_alert": [
        Source(_ch(DEFENDER, 1116, 1117), {
            "threat.name": "{Threat Name}", "file.path": "{Path}",
            "event.action": "CASE EventID WHEN 1116 THEN 'detected' ELSE 'remediated' END",
        }),
    ],
    "ecs_service": [
        Source(_ch("System", 7045), {"service.name": "{ServiceName}", "service.executable": "{ImagePath}"}),
    ],
    "ecs_script": [
        Source(_ch(POWERSHELL, 4104), {"powershell.file.script_block_text": "{ScriptBlockText}"}),
    ],
    "ecs_logon": [
        Source(_ch("Security", 4624), {
            "user.name": "{TargetUserName}", "source.ip": "{IpAddress}", "winlog.logon.type": "{LogonType}",
        }),
    ],
    "ecs_log_cleared": [
        Source(_ch("Security", 1102) + " OR " + _ch("System", 104), {
            "event.action": "'log-cleared'", "user.name": "{SubjectUserName}",
        }),
    ],
}

# Triage rows have no event code or record number: the artifact names the provider, `seq` places the
# row in its file.
TRIAGE_COMMON_COLUMNS = {
    "@timestamp": "ts", "host.name": "host", "event.code": "NULL", "event.provider": "artifact",
    "evidence_id": "evidence_id", "record_id": "seq", "line": "NULL",
}

for _view, _sources in TRIAGE_SOURCES.items():
    ECS_VIEWS.setdefault(_view, []).extend(Source(where, columns, table) for table, where, columns in _sources)

COMMON = {
    "@timestamp": "ts", "host.name": "host", "event.code": "EventID", "event.provider": "Channel",
    "evidence_id": "evidence_id", "record_id": "record_id", "line": "line",
}


def view_columns(view: str) -> list[str]:
    """Every column an ECS view exposes, in order (common columns first)."""
    names = list(COMMON)
    for source in ECS_VIEWS[view]:
        for name in source.columns:
            if name not in names:
                names.append(name)
    return names


class _Fields(dict):
    """Format map that turns `{Field}` into a quoted column, or NULL when no evidence has it."""

    def __init__(self, present: set[str]) -> None:
        super().__init__()
        self.present = {p.casefold(): p for p in present}

    def __missing__(self, key: str) -> str:
        real = self.present.get(key.casefold())
        return _q(real) if real else "CAST(NULL AS VARCHAR)"


def _source_sql(view: str, source: Source, fields: _Fields) -> str:
    cols = []
    common = COMMON if source.table == WIN_EVENTS else TRIAGE_COMMON_COLUMNS
    for name in view_columns(view):
        if name in COMMON:
            expr = common[name]
        elif source.table == WIN_EVENTS:
            expr = source.columns.get(name, "NULL").format_map(fields)
        else:
            expr = source.columns.get(name, "NULL")
        cols.append(f"CAST({expr} AS {'VARCHAR' if name not in COMMON else _common_type(name)}) AS {_q(name)}")
    return f"SELECT {', '.join(cols)} FROM {source.table} WHERE {source.where}"


def _common_type(name: str) -> str:
    return {"@timestamp": "TIMESTAMPTZ", "event.code": "INTEGER", "record_id": "BIGINT", "line": "BIGINT"}.get(
        name, "VARCHAR"
    )


def _has_table(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    return bool(con.execute(
        "SELECT count(*) FROM duckdb_tables() WHERE table_name = ? AND schema_name = 'main'", [name]
    ).fetchall()[0][0])


def create_views(con: duckdb.DuckDBPyConnection, parquet_root: Path, materialise: bool = False) -> None:
    """(Re)create the views of the case. `materialise` recomputes the `duplicate_rows` table from
    the Parquet (after an ingest); otherwise the existing one is kept."""
    con.execute("SET enable_progress_bar = false")
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET TimeZone = 'UTC'")  # days and displayed times never depend on the analyst's zone
    files = parquet_files(parquet_root, WIN_EVENTS)
    if files:
        listing = ", ".join(_lit(p.resolve().as_posix()) for p in files)
        con.execute(
            f"CREATE OR REPLACE VIEW win_events_all AS "
            f"SELECT * FROM read_parquet([{listing}], union_by_name = true)"
        )
    else:
        con.execute(f"CREATE OR REPLACE VIEW win_events_all AS {_no_rows(WIN_EVENT_FIXED)}")
    if materialise or not _has_table(con, "duplicate_rows"):
        # Only the key columns are read to find duplicates; the wide rows stay in Parquet.
        # Two scans, no window: an aggregate finds the event keys stored more than once and the
        # row to keep for each (smallest evidence_id, then seq); a join then lists the others. The
        # aggregate spills to disk past the memory limit, so memory stays bounded at any case size.
        key = ["host", "Channel", "record_id", "sec", "dedup_key"]
        row_id = "{t}evidence_id || ':' || lpad(CAST({t}seq AS VARCHAR), 12, '0')"  # orders as (evidence_id, seq)
        matches = " AND ".join(f"k.{c} IS NOT DISTINCT FROM f.{c}" for c in key)
        con.execute(
            f"""CREATE OR REPLACE TABLE duplicate_rows AS
            WITH keyed AS (
              SELECT evidence_id, seq, host, Channel, record_id, date_trunc('second', ts) AS sec, dedup_key
              FROM win_events_all),
            repeated AS (
              SELECT {', '.join(key)}, min({row_id.format(t="")}) AS keep FROM keyed GROUP BY ALL HAVING count(*) > 1)
            SELECT k.evidence_id, k.seq FROM keyed k JOIN repeated f ON {matches}
            WHERE {row_id.format(t="k.")} <> f.keep"""
        ).fetchall()
    con.execute(
        f"""CREATE OR REPLACE VIEW {WIN_EVENTS} AS
        SELECT * FROM win_events_all ANTI JOIN duplicate_rows USING (evidence_id, seq)"""
    )
    create_triage_views(con, parquet_root)
    con.execute(
        """CREATE OR REPLACE VIEW host_aliases AS
        SELECT DISTINCT host, Computer AS alias,
               CASE WHEN contains(Computer, '.') THEN 'fqdn' ELSE 'name' END AS kind
        FROM win_events_all WHERE host IS NOT NULL AND Computer IS NOT NULL
        UNION SELECT DISTINCT host, alias, kind FROM tri_host WHERE host IS NOT NULL AND alias IS NOT NULL"""
    )
    present = {row[0] for row in con.execute(f"DESCRIBE {WIN_EVENTS}").fetchall()}
    fields = _Fields(present)
    _create_network_views(con, parquet_root, fields)
    if materialise or not _has_table(con, "ip_hosts"):
        build_ip_hosts(con)
    for view, sources in ECS_VIEWS.items():
        sql = " UNION ALL ".join(_source_sql(view, s, fields) for s in sources)
        con.execute(f"CREATE OR REPLACE VIEW {view} AS {sql}")


def _create_network_views(con: duckdb.DuckDBPyConnection, parquet_root: Path, fields: _Fields) -> None:
    """One view per network table over its Parquet parts (typed and empty when there are none).
    `net_dns` also holds the questions of Windows DNS Server analytical events, which arrive as
    event logs (EVTX or their JSON exports) and so live in `win_events`."""
    for table in NET_TABLES:
        sql = parquet_view_sql(parquet_root, table, net_columns(table))
        if table == "net_dns":
            sql = f"{sql} UNION ALL BY NAME {DNS_SERVER_EVENTS.format_map(fields)}"
        con.execute(f"CREATE OR REPLACE VIEW {table} AS {sql}")


# Windows DNS Server analytical log: 256 query received (the client is `Source`), 257 response sent,
# 258 response failure (the client is `Destination`). Recursive queries the server itself sends
# (259–261) are not a client's question and stay out.
DNS_SERVER_EVENTS = (
    "SELECT evidence_id, seq, line, record_id, ts AS \"@timestamp\", 'windows-dns' AS \"observer.type\", "
    "'" + DNS_ANALYTICAL_DATASET + "' AS \"event.dataset\", "
    "CAST(CASE WHEN EventID = 256 THEN {Source} ELSE {Destination} END AS VARCHAR) AS \"source.ip\", "
    "TRY_CAST({Port} AS INTEGER) AS \"source.port\", CAST({InterfaceIP} AS VARCHAR) AS \"destination.ip\", "
    "CASE WHEN {TCP} = '1' THEN 'tcp' ELSE 'udp' END AS \"network.transport\", "
    "nullif(rtrim(lower(CAST({QNAME} AS VARCHAR)), '.'), '') AS \"dns.question.name\", "
    "CAST({QTYPE} AS VARCHAR) AS \"dns.question.type\", CAST({RCODE} AS VARCHAR) AS \"dns.response_code\" "
    f"FROM {WIN_EVENTS} WHERE Provider_Name = 'Microsoft-Windows-DNSServer' AND EventID IN (256, 257, 258)"
)


