"""The one place where the case store's tables and columns are named (see docs/schema.md).

Readers produce rows keyed by these names; views, detectors and reports read them. A column that
is not named here (an EventData field) keeps the Windows name the source gave it.
"""

from __future__ import annotations

import pyarrow as pa

SCHEMA_VERSION = 1

# Verdict ladder, best first. A host's verdict is the highest stage with evidence.
VERDICTS: tuple[str, ...] = (
    "not-affected",
    "no-evidence",
    "vulnerable-installed",
    "armed-dormant",
    "c2-contact",
    "payload",
    "data-stolen",
)
# The stages evidence can prove (the ladder above `no-evidence`).
STAGES: tuple[str, ...] = VERDICTS[2:]
CONFIDENCES: tuple[str, ...] = ("low", "medium", "high")


def verdict_rank(verdict: str) -> int:
    """Position on the ladder; larger is worse."""
    return VERDICTS.index(verdict)


SYSMON = "Microsoft-Windows-Sysmon/Operational"

# --- win_events: every Windows event, whatever the export format -------------------------------

WIN_EVENTS = "win_events"

# Fixed columns, in order, with their Arrow types. Everything else is an EventData/UserData field.
WIN_EVENT_FIXED: dict[str, pa.DataType] = {
    "evidence_id": pa.string(),
    "seq": pa.int64(),
    "record_id": pa.int64(),
    "line": pa.int64(),
    "offset": pa.int64(),
    "ts": pa.timestamp("us", tz="UTC"),
    "host": pa.string(),
    "Computer": pa.string(),
    "Channel": pa.string(),
    "EventID": pa.int32(),
    "Provider_Name": pa.string(),
    "Level": pa.string(),
    "Task": pa.string(),
    "Keywords": pa.string(),
    "Execution_ProcessID": pa.string(),
    "Security_UserID": pa.string(),
    "dedup_key": pa.string(),
}

# Unnamed <Data> items of an event (MsiInstaller, many Application events) as a JSON array.
UNNAMED_DATA = "Data"

# Canonical spellings of EventData fields that sources spell with varying case. A name found here
# case-insensitively takes this spelling; see FieldNames for the rule on all other names.
KNOWN_FIELDS: tuple[str, ...] = (
    # Sysmon
    "RuleName", "UtcTime", "ProcessGuid", "ProcessId", "Image", "FileVersion", "Description",
    "Product", "Company", "OriginalFileName", "CommandLine", "CurrentDirectory", "User",
    "LogonGuid", "LogonId", "TerminalSessionId", "IntegrityLevel", "Hashes", "ParentProcessGuid",
    "ParentProcessId", "ParentImage", "ParentCommandLine", "ParentUser", "ImageLoaded", "Signed",
    "Signature", "SignatureStatus", "Protocol", "Initiated", "SourceIsIpv6", "SourceIp",
    "SourceHostname", "SourcePort", "SourcePortName", "DestinationIsIpv6", "DestinationIp",
    "DestinationHostname", "DestinationPort", "DestinationPortName", "TargetFilename",
    "CreationUtcTime", "PreviousCreationUtcTime", "QueryName", "QueryStatus", "QueryResults",
    "TargetObject", "Details", "EventType", "SourceImage", "TargetImage", "GrantedAccess",
    "CallTrace", "SourceProcessGuid", "SourceProcessId", "SourceThreadId", "TargetProcessGuid",
    "TargetProcessId", "StartAddress", "StartModule", "StartFunction", "PipeName", "Contents",
    "Archived", "IsExecutable", "Hash", "Device", "State", "Version", "SchemaVersion",
    # Security
    "SubjectUserSid", "SubjectUserName", "SubjectDomainName", "SubjectLogonId", "NewProcessId",
    "NewProcessName", "TokenElevationType", "MandatoryLabel", "TargetUserSid", "TargetUserName",
    "TargetDomainName", "TargetLogonId", "ParentProcessName", "LogonType", "LogonProcessName",
    "AuthenticationPackageName", "WorkstationName", "IpAddress", "IpPort", "ProcessName",
    "ServiceName", "ImagePath", "ServiceType", "StartType", "AccountName", "ObjectName",
    "ObjectType", "ObjectServer", "AccessMask", "HandleId", "Application", "SourceAddress",
    "DestAddress", "DestPort", "Direction", "LayerName", "ScriptBlockText", "ScriptBlockId",
    "MessageNumber", "MessageTotal", "Path",
)
KNOWN_BY_FOLD: dict[str, str] = {name.casefold(): name for name in KNOWN_FIELDS}

# Columns readers may never overwrite from EventData (they would shadow provenance).
RESERVED = frozenset(k.casefold() for k in WIN_EVENT_FIXED)

# --- other tables --------------------------------------------------------------------------------

FINDINGS_COLUMNS: dict[str, str] = {  # name → DuckDB type; docs/schema.md describes each
    "campaign": "VARCHAR", "host": "VARCHAR", "ts": "TIMESTAMPTZ", "stage": "VARCHAR", "confidence": "VARCHAR",
    "rule_id": "VARCHAR", "title": "VARCHAR", "view": "VARCHAR", "field": "VARCHAR", "value": "VARCHAR",
    "evidence_id": "VARCHAR", "record_id": "BIGINT", "line": "BIGINT",
}

# Channels grouped by what they can prove, for coverage: clearing a host needs a "process" source.
PROCESS_CHANNELS: dict[str, tuple[int, ...]] = {
    SYSMON: (1, 7),
    "Security": (4688,),
}

# --- network tables: one table per kind of network record, whatever the sensor -------------------
#
# Readers of network evidence (Zeek, Suricata, DNS servers, proxies, firewalls) write each record to
# the table of its kind. The columns below carry ECS names and fixed types, so detection reads every
# sensor the same way; every other field the source logged is kept beside them under the source's own
# name (Zeek's `uid`, `conn_state`, a `label` column…) as text.

NET_COMMON: dict[str, pa.DataType] = {
    "evidence_id": pa.string(),
    "seq": pa.int64(),
    "line": pa.int64(),
    "record_id": pa.int64(),          # for rows from event logs (DNS Server analytical events), else null
    "@timestamp": pa.timestamp("us", tz="UTC"),
    "observer.type": pa.string(),     # which sensor wrote it: zeek, suricata, squid, windows-dns, …
    "event.dataset": pa.string(),     # the sensor's own log name: zeek.conn, suricata.dns, squid.access, …
    "source.ip": pa.string(),         # the side that started it: the client, the querier, the host
    "source.port": pa.int32(),
    "destination.ip": pa.string(),
    "destination.port": pa.int32(),
    "network.transport": pa.string(), # tcp, udp, icmp … (lower case)
}

NET_TABLES: dict[str, dict[str, pa.DataType]] = {
    # connections and firewall decisions
    "net_flow": {
        "network.protocol": pa.string(),   # application protocol if known (Zeek service)
        "source.bytes": pa.int64(),
        "destination.bytes": pa.int64(),
        "event.duration": pa.float64(),    # seconds
        "event.action": pa.string(),       # allow / drop / reject … for firewalls; conn_state for Zeek
    },
    # DNS questions and answers (sensors and resolvers alike)
    "net_dns": {
        "dns.question.name": pa.string(),
        "dns.question.type": pa.string(),
        "dns.response_code": pa.string(),
        "dns.answers": pa.string(),        # answers joined by ","
    },
    # HTTP requests, including proxy logs; CONNECT host:port puts the host in url.domain
    "net_http": {
        "url.domain": pa.string(),
        "url.full": pa.string(),
        "http.request.method": pa.string(),
        "http.response.status_code": pa.int32(),
        "user_agent.original": pa.string(),
        "http.cookie": pa.string(),
        "event.action": pa.string(),       # proxy result code (TCP_MISS, TCP_TUNNEL …)
    },
    # TLS sessions
    "net_tls": {
        "tls.client.server_name": pa.string(),
        "tls.client.ja3": pa.string(),
        "tls.client.ja4": pa.string(),
        "tls.server.x509.subject": pa.string(),
        "tls.server.x509.issuer": pa.string(),
        "tls.server.x509.serial_number": pa.string(),
    },
    # certificates seen on the wire (Zeek x509.log)
    "net_x509": {
        "x509.subject": pa.string(),
        "x509.issuer": pa.string(),
        "x509.serial_number": pa.string(),
        "x509.san.dns": pa.string(),       # SAN DNS names joined by ","
        "tls.server.hash.sha1": pa.string(),
    },
    # address leases: who had which IP when (Zeek dhcp.log, Windows DHCP Server audit log)
    "net_dhcp": {
        "client.ip": pa.string(),          # the address leased
        "client.mac": pa.string(),
        "host.hostname": pa.string(),      # the name the client gave
        "dhcp.lease_seconds": pa.float64(),
        "event.action": pa.string(),       # ACK, renew, release, …
    },
    # sensor alerts and notices (Suricata alert, Zeek notice and weird)
    "net_alert": {
        "rule.name": pa.string(),
        "rule.id": pa.string(),
        "event.severity": pa.int32(),
        "event.action": pa.string(),
    },
    # files carried over the network (Zeek files.log, Suricata fileinfo)
    "net_files": {
        "file.name": pa.string(),
        "file.mime_type": pa.string(),
        "file.hash.md5": pa.string(),
        "file.hash.sha1": pa.string(),
        "file.hash.sha256": pa.string(),
    },
}


# DNS questions the `net_dns` view takes from Windows DNS Server analytical events (an event log,
# counted as events), and the filter that keeps only rows read from network logs, to count each once.
DNS_ANALYTICAL_DATASET = "windows_dns.analytical"
FROM_NETWORK_LOGS = f"""WHERE "event.dataset" IS DISTINCT FROM '{DNS_ANALYTICAL_DATASET}'"""


def net_columns(table: str) -> dict[str, pa.DataType]:
    """The fixed columns of a network table, common ones first."""
    return {**NET_COMMON, **NET_TABLES[table]}


# --- triage tables: what a triage collection (KAPE, Velociraptor, a mounted or copied disk) holds ---
#
# One table per kind of artifact. Every row carries the common columns below: the evidence item it
# came from (the artifact file), its position in that item (`seq`), the host of the collection, the
# time the row is about, and where the artifact sat on the collected machine (`source_path`, a
# Windows path `C:\...` or a macOS path `/...`). Artifact parsers (turncoat/triage/) return the
# table's own columns; the triage writer adds the common ones.

TRIAGE_COMMON: dict[str, pa.DataType] = {
    "evidence_id": pa.string(),
    "seq": pa.int64(),
    "host": pa.string(),
    "ts": pa.timestamp("us", tz="UTC"),
    "source_path": pa.string(),
    "artifact": pa.string(),          # prefetch, amcache, uninstall, run-key, service, task, srum, …
}

_TS = pa.timestamp("us", tz="UTC")

TRIAGE_TABLES: dict[str, dict[str, pa.DataType]] = {
    # every regular file of the collection: hashes (one read, three digests), times, PE / Mach-O facts
    "tri_file": {
        "file.path": pa.string(), "file.name": pa.string(), "file.size": pa.int64(),
        "file.hash.sha256": pa.string(), "file.hash.sha1": pa.string(), "file.hash.md5": pa.string(),
        "file.created": _TS, "file.modified": _TS, "file.accessed": _TS,
        "file.times_preserved": pa.bool_(),      # did the collection keep the machine's timestamps?
        "file.type": pa.string(),                # pe, macho, ico, other
        "pe.file_version": pa.string(), "pe.product_version": pa.string(), "pe.product": pa.string(),
        "pe.company": pa.string(), "pe.original_file_name": pa.string(), "pe.description": pa.string(),
        "pe.imphash": pa.string(), "pe.imports": pa.string(),     # imported DLL names joined by ";"
        "code_signature.status": pa.string(),    # valid, invalid, unsigned, catalog-signed?, self-signed, …
        "code_signature.subject_name": pa.string(), "code_signature.issuer": pa.string(),
        "code_signature.serial_number": pa.string(), "code_signature.timestamp": _TS,
        "code_signature.team_id": pa.string(), "code_signature.identifier": pa.string(),
        "code_signature.digest_match": pa.bool_(),
        "pe.cert_padding_bytes": pa.int64(),     # non-zero bytes after the PKCS#7 blob inside WIN_CERTIFICATE
        "pe.overlay_bytes": pa.int64(),          # bytes after the certificate table (break the signature)
        "code_signature.problems": pa.string(),  # ";"-joined reasons
    },
    # runs of a program: Prefetch (one row per recorded run time), Windows 11 PCA
    "tri_execution": {
        "process.name": pa.string(), "process.executable": pa.string(),
        "prefetch.hash": pa.string(), "prefetch.version": pa.int32(), "prefetch.run_count": pa.int64(),
        "prefetch.run_index": pa.int32(),        # 0 = last run
        "prefetch.loaded": pa.string(),          # files the program touched in its first seconds, "|"-joined
        "prefetch.volume_serial": pa.string(), "prefetch.file_created": _TS,
        "event.action": pa.string(),             # run
    },
    # Amcache.hve inventory: presence of a file or program, not execution
    "tri_amcache": {
        "file.path": pa.string(), "file.name": pa.string(), "file.size": pa.int64(),
        "file.hash.sha1": pa.string(),           # of the first 31,457,280 bytes only
        "pe.file_version": pa.string(), "pe.product": pa.string(), "pe.company": pa.string(),
        "pe.link_date": _TS, "amcache.kind": pa.string(),   # file, program
        "package.name": pa.string(), "package.version": pa.string(),
    },
    # installed software: Uninstall keys of SOFTWARE and of every NTUSER.DAT, macOS app bundles
    "tri_package": {
        "package.name": pa.string(), "package.version": pa.string(), "package.vendor": pa.string(),
        "package.install_location": pa.string(), "package.install_date": pa.string(),
        "user.name": pa.string(), "registry.key": pa.string(), "event.action": pa.string(),  # installed
        "package.platform": pa.string(),         # windows (Uninstall keys) or macos (an .app's Info.plist)
    },
    # what starts by itself: Run/RunOnce keys, services, scheduled tasks, IFEO debuggers
    "tri_autorun": {
        "autorun.kind": pa.string(), "autorun.name": pa.string(), "autorun.command": pa.string(),
        "user.name": pa.string(), "registry.key": pa.string(), "task.author": pa.string(),
        "task.trigger": pa.string(),
    },
    # SRUM network usage: bytes per application per hour (no destinations)
    "tri_srum_net": {
        "process.executable": pa.string(), "user.id": pa.string(),
        "network.bytes_sent": pa.int64(), "network.bytes_received": pa.int64(),
        "network.interface": pa.string(),
    },
    # browser profiles and their files; domains only, never URLs (docs/privacy)
    "tri_browser": {
        "browser.name": pa.string(), "browser.profile": pa.string(), "user.name": pa.string(),
        "browser.artifact": pa.string(),         # history, history-copy, cookies, login-data, web-data, …
        "file.path": pa.string(), "file.size": pa.int64(),
        "browser.last_visit": _TS, "browser.visits": pa.int64(), "browser.domains": pa.int64(),
    },
    "tri_browser_domain": {
        "browser.name": pa.string(), "browser.profile": pa.string(), "user.name": pa.string(),
        "url.domain": pa.string(), "browser.visits": pa.int64(),
    },
    # Defender DetectionHistory records and MPLog detections
    "tri_defender": {
        "threat.name": pa.string(), "file.path": pa.string(), "event.action": pa.string(),
        "process.command_line": pa.string(),
    },
    # YARA matches over the collection's files
    "tri_yara": {
        "rule.name": pa.string(), "rule.namespace": pa.string(), "rule.source": pa.string(),
        "rule.stage": pa.string(),               # the stage the rule's `stage` meta says a match proves
        "file.path": pa.string(), "file.hash.sha256": pa.string(), "yara.strings": pa.string(),
    },
    # client installers and updates in a self-hosted PBX's update folder
    "tri_pbx": {
        "pbx.platform": pa.string(), "file.path": pa.string(), "file.name": pa.string(),
        "package.version": pa.string(), "file.hash.sha256": pa.string(), "pbx.build": pa.string(),
    },
    # names a collected machine goes by: computer name, MachineGuid, collection metadata
    "tri_host": {
        "alias": pa.string(), "kind": pa.string(),
    },
}


def triage_columns(table: str) -> dict[str, pa.DataType]:
    """The columns of a triage table, common ones first."""
    return {**TRIAGE_COMMON, **TRIAGE_TABLES[table]}
