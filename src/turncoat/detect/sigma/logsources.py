"""Where a Sigma rule looks: its `logsource` → explicit rows of the case store, and field names.

A rule is only run where its logsource names a known target: a table plus conditions on channel,
event ID or sensor, and the map from the Sigma field names the rule uses to the store's columns.
There is no catch-all: a rule whose logsource is not listed here is reported as not converted, with
the reason, instead of being run against every event.

A target may have several legs (`process_creation` is Sysmon event 1 *and* Security event 4688, whose
fields have other names); each leg is its own SELECT, renamed to the Sigma names, and the legs are
stacked. Field renames are SQL expressions over the leg's table, written with `{column}`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from turncoat.store.schema import SYSMON

SECURITY = "Security"
POWERSHELL = "Microsoft-Windows-PowerShell/Operational"
POWERSHELL_CLASSIC = "Windows PowerShell"
DEFENDER = "Microsoft-Windows-Windows Defender/Operational"

#: Pseudo-fields of converted rules: the whole event as text (keyword searches), and the event's own
#: timestamp (|minute … |year). Here rather than in the backend, so running cached rules never
#: imports pySigma.
ALL_FIELDS = "*"
TIME_FIELD = "@time"
#: Names a rule may give the event time; all read the event's own timestamp.
TIME_FIELDS = frozenset({"@timestamp", "timestamp", "_time", "ts", "utctime", "systemtime", "timecreated"})


@dataclass(frozen=True)
class Leg:
    """One source of rows for a target: `table` rows where `where` holds, fields renamed."""

    table: str
    where: str
    renames: dict[str, str] = field(default_factory=dict)  # Sigma field (case-folded) → SQL over {columns}


@dataclass(frozen=True)
class Target:
    """Rows a group of rules runs over. `name` is shown to users and keys the per-target batch."""

    name: str
    legs: tuple[Leg, ...]
    time_column: str = "ts"


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _events(channels: str | tuple[str, ...], *event_ids: int, extra: str = "") -> str:
    chans = (channels,) if isinstance(channels, str) else channels
    cond = f"Channel IN ({', '.join(map(_lit, chans))})"
    if event_ids:
        cond += f" AND EventID IN ({', '.join(map(str, event_ids))})"
    return cond + (f" AND {extra}" if extra else "")


def _win(name: str, channels: str | tuple[str, ...], *event_ids: int, extra: str = "",
         renames: dict[str, str] | None = None) -> Target:
    return Target(name, (Leg("win_events", _events(channels, *event_ids, extra=extra), renames or {}),))


# Security 4688 spells the Sysmon process fields differently (Hayabusa and pySigma's Windows audit
# pipeline map them the same way): the new process is NewProcessName/NewProcessId, and its parent's
# id is the event's ProcessId.
SECURITY_4688_RENAMES = {
    "image": "{NewProcessName}",
    "parentimage": "{ParentProcessName}",
    "processid": "{NewProcessId}",
    "parentprocessid": "{ProcessId}",
    "user": "{SubjectUserName}",
    "logonid": "{SubjectLogonId}",
}

# category (product windows) → Sysmon event IDs (Sysmon's schema; registry_add/_delete/_rename are
# event 12/12/14 told apart by EventType, as pySigma's Sysmon pipeline does).
SYSMON_CATEGORIES: dict[str, tuple[tuple[int, ...], str]] = {
    "process_creation": ((1,), ""),
    "file_change": ((2,), ""),
    "network_connection": ((3,), ""),
    "sysmon_status": ((4, 16), ""),
    "process_termination": ((5,), ""),
    "driver_load": ((6,), ""),
    "image_load": ((7,), ""),
    "create_remote_thread": ((8,), ""),
    "raw_access_thread": ((9,), ""),
    "process_access": ((10,), ""),
    "file_event": ((11,), ""),
    "registry_event": ((12, 13, 14), ""),
    "registry_add": ((12,), "EventType = 'CreateKey'"),
    "registry_delete": ((12,), "EventType IN ('DeleteKey', 'DeleteValue')"),
    "registry_set": ((13,), ""),
    "registry_rename": ((14,), ""),
    "create_stream_hash": ((15,), ""),
    "pipe_created": ((17, 18), ""),
    "wmi_event": ((19, 20, 21), ""),
    "dns_query": ((22,), ""),
    "file_delete": ((23, 26), ""),
    "clipboard_capture": ((24,), ""),
    "process_tampering": ((25,), ""),
    "file_delete_detected": ((26,), ""),
    "file_block_executable": ((27,), ""),
    "file_block_shredding": ((28,), ""),
    "file_executable_detected": ((29,), ""),
    "sysmon_error": ((255,), ""),
}

# service (product windows) → event log channel(s).
WINDOWS_SERVICES: dict[str, tuple[str, ...]] = {
    "security": (SECURITY,),
    "system": ("System",),
    "application": ("Application",),
    "sysmon": (SYSMON,),
    "powershell": (POWERSHELL,),
    "powershell-classic": (POWERSHELL_CLASSIC,),
    "windefend": (DEFENDER,),
    "taskscheduler": ("Microsoft-Windows-TaskScheduler/Operational",),
    "wmi": ("Microsoft-Windows-WMI-Activity/Operational",),
    "dns-server": ("DNS Server",),
    "dns-server-analytic": ("Microsoft-Windows-DNS-Server/Analytical",),
    "dns-client": ("Microsoft-Windows-DNS Client Events/Operational",),
    "driver-framework": ("Microsoft-Windows-DriverFrameworks-UserMode/Operational",),
    "ntlm": ("Microsoft-Windows-NTLM/Operational",),
    "dhcp": ("Microsoft-Windows-DHCP-Server/Operational",),
    "printservice-admin": ("Microsoft-Windows-PrintService/Admin",),
    "printservice-operational": ("Microsoft-Windows-PrintService/Operational",),
    "smbclient-security": ("Microsoft-Windows-SmbClient/Security",),
    "smbclient-connectivity": ("Microsoft-Windows-SmbClient/Connectivity",),
    "smbserver-connectivity": ("Microsoft-Windows-SMBServer/Connectivity",),
    "codeintegrity-operational": ("Microsoft-Windows-CodeIntegrity/Operational",),
    "firewall-as": ("Microsoft-Windows-Windows Firewall With Advanced Security/Firewall",),
    "bits-client": ("Microsoft-Windows-Bits-Client/Operational",),
    "applocker": ("Microsoft-Windows-AppLocker/MSI and Script", "Microsoft-Windows-AppLocker/EXE and DLL",
                  "Microsoft-Windows-AppLocker/Packaged app-Deployment",
                  "Microsoft-Windows-AppLocker/Packaged app-Execution"),
    "msexchange-management": ("MSExchange Management",),
    "ldap": ("Microsoft-Windows-LDAP-Client/Debug",),
    "ldap_debug": ("Microsoft-Windows-LDAP-Client/Debug",),
    "security-mitigations": ("Microsoft-Windows-Security-Mitigations/Kernel Mode",
                             "Microsoft-Windows-Security-Mitigations/User Mode"),
    "terminalservices-localsessionmanager": (
        "Microsoft-Windows-TerminalServices-LocalSessionManager/Operational",),
    "openssh": ("OpenSSH/Operational",),
    "diagnosis-scripted": ("Microsoft-Windows-Diagnosis-Scripted/Operational",),
    "shell-core": ("Microsoft-Windows-Shell-Core/Operational",),
    "vhdmp": ("Microsoft-Windows-VHDMP/Operational",),
    "appxdeployment-server": ("Microsoft-Windows-AppXDeploymentServer/Operational",),
    "appxpackaging-om": ("Microsoft-Windows-AppxPackaging/Operational",),
    "appmodel-runtime": ("Microsoft-Windows-AppModel-Runtime/Admin",),
    "capi2": ("Microsoft-Windows-CAPI2/Operational",),
    "certificateservicesclient-lifecycle-system": (
        "Microsoft-Windows-CertificateServicesClient-Lifecycle-System/Operational",),
    "iis-configuration": ("Microsoft-IIS-Configuration/Operational",),
    "lsa-server": ("Microsoft-Windows-LSA/Operational",),
    "microsoft-servicebus-client": ("Microsoft-ServiceBus-Client",),
    "kernel-shimengine": ("Microsoft-Windows-Kernel-ShimEngine/Operational",),
    "bitlocker": ("Microsoft-Windows-BitLocker/BitLocker Management",),
    "ntfs": ("Microsoft-Windows-Ntfs/Operational",),
    "hyper-v-worker": ("Microsoft-Windows-Hyper-V-Worker",),
    "kernel-event-tracing": ("Microsoft-Windows-Kernel-EventTracing/Admin",),
    "wmi-activity": ("Microsoft-Windows-WMI-Activity/Operational",),
}

# PowerShell categories: module logging, script blocks, and the classic engine log.
POWERSHELL_CATEGORIES: dict[str, tuple[str, tuple[int, ...]]] = {
    "ps_module": (POWERSHELL, (4103,)),
    "ps_script": (POWERSHELL, (4104,)),
    "ps_classic_start": (POWERSHELL_CLASSIC, (400,)),
    "ps_classic_provider_start": (POWERSHELL_CLASSIC, (600,)),
    "ps_classic_script": (POWERSHELL_CLASSIC, (800,)),
}

# Categories with no Windows event log behind them (they come from ETW providers that no channel
# records): listed so the reason a rule is not run says so.
NO_WINDOWS_LOG = {
    "file_access": "file access comes from the Kernel-File ETW provider, which no event log channel records",
    "file_rename": "file renames come from the Kernel-File ETW provider, which no event log channel records",
}


def _zeek(table: str, **renames: str) -> Leg:
    base = {"id.orig_h": "{source.ip}", "id.orig_p": "{source.port}", "id.resp_h": "{destination.ip}",
            "id.resp_p": "{destination.port}", "proto": "{network.transport}", "ts": '{@timestamp}'}
    return Leg(table, "\"observer.type\" = 'zeek'", {k: v for k, v in {**base, **renames}.items()})


_URL_PATH = "regexp_extract({url.full}, '^(?:[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*)?([^?#]*)', 1)"
_NET_ADDRESSES = {"src_ip": "{source.ip}", "dst_ip": "{destination.ip}", "src_port": "{source.port}",
                  "dst_port": "{destination.port}"}

NETWORK_TARGETS: dict[tuple[str | None, str | None, str | None], Target] = {
    # Web proxies (Squid, Zeek http, Suricata http): the W3C extended log names SigmaHQ uses.
    (None, "proxy", None): Target("proxy", (Leg("net_http", "true", {
        "c-uri": "{url.full}",
        "c-uri-stem": _URL_PATH,
        "c-uri-query": "nullif(regexp_extract({url.full}, '\\?([^#]*)', 1), '')",
        "c-uri-extension": f"nullif(regexp_extract({_URL_PATH}, '\\.([^./]*)$', 1), '')",
        "cs-uri": "{url.full}",
        "cs-host": "{url.domain}",
        "r-dns": "{url.domain}",
        "cs-method": "{http.request.method}",
        "sc-status": "{http.response.status_code}",
        "c-useragent": "{user_agent.original}",
        "cs-user-agent": "{user_agent.original}",
        "cs-cookie": "{http.cookie}",
        "cs-referrer": "{http.request.referrer}",
        "c-ip": "{source.ip}",
        "s-ip": "{destination.ip}",
        "cs-bytes": "{source.bytes}",
        "sc-bytes": "{destination.bytes}",
        **_NET_ADDRESSES,
    }),), "@timestamp"),
    (None, "dns", None): Target("dns", (Leg("net_dns", "true", {
        "query": "{dns.question.name}",
        "answer": "{dns.answers}",
        "record_type": "{dns.question.type}",
        "rcode": "{dns.response_code}",
        **_NET_ADDRESSES,
    }),), "@timestamp"),
    (None, "firewall", None): Target("firewall", (Leg("net_flow", "true", {
        "action": "{event.action}",
        "protocol": "{network.transport}",
        **_NET_ADDRESSES,
    }),), "@timestamp"),
    ("zeek", None, "conn"): Target("zeek/conn", (_zeek(
        "net_flow", service="{network.protocol}", orig_bytes="{source.bytes}", resp_bytes="{destination.bytes}",
        duration="{event.duration}", conn_state="{event.action}"),), "@timestamp"),
    ("zeek", None, "dns"): Target("zeek/dns", (_zeek(
        "net_dns", query="{dns.question.name}", qtype_name="{dns.question.type}",
        rcode_name="{dns.response_code}", answers="{dns.answers}"),), "@timestamp"),
    ("zeek", None, "http"): Target("zeek/http", (_zeek(
        "net_http", method="{http.request.method}", status_code="{http.response.status_code}",
        user_agent="{user_agent.original}", cookie="{http.cookie}"),), "@timestamp"),
    ("zeek", None, "ssl"): Target("zeek/ssl", (_zeek(
        "net_tls", server_name="{tls.client.server_name}", ja3="{tls.client.ja3}", ja4="{tls.client.ja4}",
        subject="{tls.server.x509.subject}", issuer="{tls.server.x509.issuer}"),), "@timestamp"),
    ("zeek", None, "x509"): Target("zeek/x509", (Leg("net_x509", "\"observer.type\" = 'zeek'", {
        "certificate.subject": "{x509.subject}", "certificate.issuer": "{x509.issuer}",
        "certificate.serial": "{x509.serial_number}", "san.dns": "{x509.san.dns}", "ts": "{@timestamp}",
    }),), "@timestamp"),
    ("zeek", None, "files"): Target("zeek/files", (_zeek(
        "net_files", filename="{file.name}", mime_type="{file.mime_type}", md5="{file.hash.md5}",
        sha1="{file.hash.sha1}", sha256="{file.hash.sha256}"),), "@timestamp"),
    ("zeek", None, "dhcp"): Target("zeek/dhcp", (_zeek(
        "net_dhcp", assigned_addr="{client.ip}", mac="{client.mac}", host_name="{host.hostname}"),), "@timestamp"),
    ("zeek", None, "notice"): Target("zeek/notice", (_zeek("net_alert", note="{rule.name}"),), "@timestamp"),
}

# Zeek logs turncoat reads but does not store row by row (docs/network.md).
ZEEK_NOT_STORED = frozenset({"smb_files", "smb_mapping", "dce_rpc", "kerberos", "rdp", "ntlm", "ssh", "ftp",
                             "smtp", "sip", "snmp", "radius", "tunnel", "pe", "software", "known_hosts"})


class UnknownLogsource(ValueError):
    """The rule's logsource maps to no explicit target; the message says why."""


def resolve(product: str | None, category: str | None, service: str | None) -> Target:
    """The target for a logsource, or UnknownLogsource with the reason."""
    product, category, service = (v.lower() if isinstance(v, str) else None for v in (product, category, service))
    shown = "/".join(v or "-" for v in (product, category, service))
    if product == "windows" or (product is None and category in SYSMON_CATEGORIES):
        if category and service:
            raise UnknownLogsource(f"logsource {shown}: a Windows rule names both a category and a service")
        if category in SYSMON_CATEGORIES:
            ids, extra = SYSMON_CATEGORIES[category]
            sysmon = Leg("win_events", _events(SYSMON, *ids, extra=extra))
            if category == "process_creation":
                security = Leg("win_events", _events(SECURITY, 4688), SECURITY_4688_RENAMES)
                return Target(f"windows/{category}", (sysmon, security))
            return Target(f"windows/{category}", (sysmon,))
        if category in POWERSHELL_CATEGORIES:
            channel, ids = POWERSHELL_CATEGORIES[category]
            return _win(f"windows/{category}", channel, *ids)
        if category in NO_WINDOWS_LOG:
            raise UnknownLogsource(f"logsource {shown}: {NO_WINDOWS_LOG[category]}")
        if service in WINDOWS_SERVICES:
            return _win(f"windows/{service}", WINDOWS_SERVICES[service])
        if category is None and service is None:
            raise UnknownLogsource(f"logsource {shown}: no category or service, so no explicit event log to search")
        raise UnknownLogsource(f"logsource {shown}: no known Windows event log for it")
    key = (product, category, service)
    if key in NETWORK_TARGETS:
        return NETWORK_TARGETS[key]
    if (None, category, None) in NETWORK_TARGETS and service is None:
        return NETWORK_TARGETS[(None, category, None)]
    if product == "zeek" and service in ZEEK_NOT_STORED:
        raise UnknownLogsource(f"logsource {shown}: turncoat counts Zeek {service}.log but does not store its rows")
    raise UnknownLogsource(f"logsource {shown}: no table of the case store holds these records")


def resolve_name(name: str) -> Target:
    """The target a compiled rule recorded by name (its conversion is cached; targets are not)."""
    if name.startswith("windows/"):
        what = name.split("/", 1)[1]
        if what in WINDOWS_SERVICES:
            return resolve("windows", None, what)
        return resolve("windows", what, None)
    for target in NETWORK_TARGETS.values():
        if target.name == name:
            return target
    raise UnknownLogsource(f"no target named {name}")
