"""What a host's logs record of what happens on it.

Behaviour code (`noise.py`, `threecx.py`, `attack.py`) says what happened ("this process started",
"that name was resolved"); the recorder turns it into the events the host's configured logs would hold:
a process start becomes Sysmon 1 where Sysmon runs, and Security 4688 where process auditing is on,
and nothing where neither is. That is how a host "without Sysmon" or "whose Sysmon log rolled over" is
simulated without a second copy of any behaviour. Where the office network is logged too, name
resolutions and connections also go to the host's `HostNet` (whatever the host's own logs keep), which
gives the host's address at each instant and says where a proxied connection really went.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import winlog
from .actors import DOMAIN, SYSTEM_SID, HostId, Proc
from .clock import Span, sysmon_time
from .pe import Binary
from .winlog import Channel, Origin

if TYPE_CHECKING:
    from .network import HostNet

#: Event schema versions as the providers write them (Sysmon 14, Windows 10 auditing).
_SYSMON_VERSION = {1: 5, 3: 5, 7: 3, 11: 2, 22: 5}


@dataclass(frozen=True)
class Sources:
    """Which logs a host kept, and since when (None: never)."""

    sysmon_from: datetime | None
    process_audit_from: datetime | None  # Security 4688
    logons: bool  # Security 4624
    application: bool
    defender: bool

    def sysmon_at(self, ts: datetime) -> bool:
        return self.sysmon_from is not None and ts >= self.sysmon_from

    def audit_at(self, ts: datetime) -> bool:
        return self.process_audit_from is not None and ts >= self.process_audit_from


#: One recorded event: time, creation order (tie-break), the Winlogbeat dict.
Recorded = tuple[datetime, int, dict[str, Any]]


class Recorder:
    """Collects one host's events per channel."""

    def __init__(self, host: HostId, sources: Sources, rng: random.Random, span: Span,
                 net: HostNet | None = None) -> None:
        self.host = host
        self.sources = sources
        self.span = span
        self.net = net
        self.events: dict[str, list[Recorded]] = {}
        self._rng = rng
        self._seq = 0
        self._sysmon_pid = 4 * rng.randrange(500, 1200)
        self._lsass_pid = 4 * rng.randrange(150, 250)
        self._defender_pid = 4 * rng.randrange(1200, 2000)

    # -- plumbing -----------------------------------------------------------------------------------

    def _add(self, channel: Channel, ts: datetime, event_id: int, data: dict[str, str], origin: Origin) -> None:
        if ts not in self.span:
            raise ValueError(f"{self.host.short}: event {event_id} at {ts} is outside the evidence span")
        event = winlog.envelope(channel, self.host.fqdn, ts, event_id, data, origin)
        self.events.setdefault(channel.key, []).append((ts, self._seq, event))
        self._seq += 1

    def _tid(self) -> int:
        return 4 * self._rng.randrange(100, 3000)

    def _sysmon(self, ts: datetime, event_id: int, data: dict[str, str]) -> None:
        body = {"RuleName": "-", "UtcTime": sysmon_time(ts), **data}
        origin = Origin(version=_SYSMON_VERSION[event_id], pid=self._sysmon_pid, tid=self._tid(), user_sid=SYSTEM_SID)
        self._add(winlog.SYSMON, ts, event_id, body, origin)

    def _security(self, ts: datetime, event_id: int, data: dict[str, str]) -> None:
        origin = Origin(version=2, pid=self._lsass_pid, tid=self._tid(), keywords=("Audit Success",))
        self._add(winlog.SECURITY, ts, event_id, data, origin)

    def _subject(self, proc: Proc) -> dict[str, str]:
        """Security's description of who acted: a user, or the machine account for SYSTEM."""
        if proc.sid == SYSTEM_SID:
            return {"SubjectUserSid": SYSTEM_SID, "SubjectUserName": f"{self.host.netbios}$",
                    "SubjectDomainName": DOMAIN, "SubjectLogonId": proc.logon_id}
        return {"SubjectUserSid": proc.sid, "SubjectUserName": proc.user.split("\\")[-1],
                "SubjectDomainName": DOMAIN, "SubjectLogonId": proc.logon_id}

    # -- process telemetry (Sysmon and/or Security 4688) ---------------------------------------------

    def process(self, ts: datetime, proc: Proc, parent: Proc, binary: Binary) -> None:
        """A process started."""
        if self.sources.sysmon_at(ts):
            self._sysmon(ts, 1, {
                "ProcessGuid": proc.guid, "ProcessId": str(proc.pid), "Image": proc.image,
                "FileVersion": binary.version, "Description": binary.description, "Product": binary.product,
                "Company": binary.company, "OriginalFileName": binary.original, "CommandLine": proc.cmdline,
                "CurrentDirectory": proc.cwd, "User": proc.user, "LogonGuid": proc.logon_guid,
                "LogonId": proc.logon_id, "TerminalSessionId": proc.session_id,
                "IntegrityLevel": proc.integrity, "Hashes": binary.digests.sysmon(),
                "ParentProcessGuid": parent.guid, "ParentProcessId": str(parent.pid),
                "ParentImage": parent.image, "ParentCommandLine": parent.cmdline, "ParentUser": parent.user,
            })
        if self.sources.audit_at(ts):
            self._security(ts, 4688, {
                **self._subject(proc), "NewProcessId": hex(proc.pid), "NewProcessName": proc.image,
                "TokenElevationType": "%%1938" if proc.session_id != "0" else "%%1936",
                "ProcessId": hex(parent.pid), "CommandLine": proc.cmdline, "TargetUserSid": "S-1-0-0",
                "TargetUserName": "-", "TargetDomainName": "-", "TargetLogonId": "0x0",
                "ParentProcessName": parent.image,
                "MandatoryLabel": "S-1-16-8192" if proc.integrity == "Medium" else "S-1-16-16384",
            })

    def image_load(self, ts: datetime, proc: Proc, path: str, binary: Binary) -> None:
        """A process loaded a DLL (Sysmon 7 only)."""
        if self.sources.sysmon_at(ts):
            self._sysmon(ts, 7, {
                "ProcessGuid": proc.guid, "ProcessId": str(proc.pid), "Image": proc.image, "ImageLoaded": path,
                "FileVersion": binary.version, "Description": binary.description, "Product": binary.product,
                "Company": binary.company, "OriginalFileName": binary.original, "Hashes": binary.digests.sysmon(),
                "Signed": binary.signed, "Signature": binary.signature, "SignatureStatus": binary.signature_status,
                "User": proc.user,
            })

    def dns(self, ts: datetime, proc: Proc, name: str, ips: tuple[str, ...], cname: str | None = None) -> None:
        """A process resolved a name (Sysmon 22; a query to the DNS server on the network)."""
        if self.net is not None:
            self.net.dns(ts, name, ips, cname)
        if self.sources.sysmon_at(ts):
            results = (f"type:  5 {cname};" if cname else "") + "".join(f"::ffff:{ip};" for ip in ips)
            self._sysmon(ts, 22, {
                "ProcessGuid": proc.guid, "ProcessId": str(proc.pid), "QueryName": name, "QueryStatus": "0",
                "QueryResults": results, "Image": proc.image, "User": proc.user,
            })

    def connect(self, ts: datetime, proc: Proc, ip: str, port: int, hostname: str) -> None:
        """A process opened an outbound TCP connection (Sysmon 3; a connection on the network, to the
        proxy for a host that uses it)."""
        sysmon = self.sources.sysmon_at(ts)
        if not sysmon and self.net is None:
            return
        source_ip = self.host.ip
        if sysmon:
            source_port = self._rng.randrange(49152, 65535)
        else:
            assert self.net is not None
            source_port = self.net.source_port()
        if self.net is not None:
            source_ip = self.net.ip_at(ts)
            ip, port, hostname = self.net.connect(ts, proc.image, ip, port, hostname, source_port)
        if sysmon:
            self._sysmon(ts, 3, {
                "ProcessGuid": proc.guid, "ProcessId": str(proc.pid), "Image": proc.image, "User": proc.user,
                "Protocol": "tcp", "Initiated": "true", "SourceIsIpv6": "false", "SourceIp": source_ip,
                "SourceHostname": self.host.fqdn, "SourcePort": str(source_port),
                "SourcePortName": "-", "DestinationIsIpv6": "false", "DestinationIp": ip,
                "DestinationHostname": hostname, "DestinationPort": str(port),
                "DestinationPortName": {443: "https", 80: "http"}.get(port, "-"),
            })

    def file_create(self, ts: datetime, proc: Proc, path: str) -> None:
        """A process created a file (Sysmon 11)."""
        if self.sources.sysmon_at(ts):
            self._sysmon(ts, 11, {
                "ProcessGuid": proc.guid, "ProcessId": str(proc.pid), "Image": proc.image,
                "TargetFilename": path, "CreationUtcTime": sysmon_time(ts), "User": proc.user,
            })

    # -- other logs -----------------------------------------------------------------------------------

    def logon(self, ts: datetime, logon_type: int, ip: str, logon_id: str, logon_guid: str) -> None:
        """The host's user logged on (Security 4624)."""
        if not self.sources.logons:
            return
        h = self.host
        local = logon_type in (2, 7, 11)
        self._security(ts, 4624, {
            "SubjectUserSid": SYSTEM_SID if local else "S-1-0-0",
            "SubjectUserName": f"{h.netbios}$" if local else "-",
            "SubjectDomainName": DOMAIN if local else "-", "SubjectLogonId": "0x3e7" if local else "0x0",
            "TargetUserSid": h.user_sid, "TargetUserName": h.user, "TargetDomainName": DOMAIN,
            "TargetLogonId": logon_id, "LogonType": str(logon_type),
            "LogonProcessName": "User32 " if local else "Kerberos",
            "AuthenticationPackageName": "Negotiate" if local else "Kerberos",
            "WorkstationName": h.netbios if local else "-", "LogonGuid": logon_guid,
            "TransmittedServices": "-", "LmPackageName": "-", "KeyLength": "0",
            "ProcessId": "0x2c4" if local else "0x0",
            "ProcessName": "C:\\Windows\\System32\\svchost.exe" if local else "-",
            "IpAddress": ip, "IpPort": "0" if local else str(self._rng.randrange(49152, 65535)),
            "ImpersonationLevel": "%%1833", "RestrictedAdminMode": "-", "TargetOutboundUserName": "-",
            "TargetOutboundDomainName": "-", "VirtualAccount": "%%1843", "TargetLinkedLogonId": "0x0",
            "ElevatedToken": "%%1843",
        })

    def application(self, ts: datetime, provider: str, event_id: int, params: list[str],
                    level: str = "information") -> None:
        """An Application-log event with unnamed data items (Winlogbeat names them param1, param2, …)."""
        if self.sources.application:
            data = {f"param{i}": value for i, value in enumerate(params, start=1)}
            self._add(winlog.APPLICATION, ts, event_id, data, Origin(provider=provider, level=level))

    def package(self, ts: datetime, event_id: int, name: str, version: str, manufacturer: str) -> None:
        """MsiInstaller: 1033 installed / 1034 removed (name, version, language, status, manufacturer),
        11707 / 11724 completed (one sentence)."""
        if event_id in (1033, 1034):
            self.application(ts, "MsiInstaller", event_id, [name, version, "1033", "0", manufacturer])
        else:
            verb = "Installation" if event_id == 11707 else "Removal"
            self.application(ts, "MsiInstaller", event_id, [f"Product: {name} -- {verb} completed successfully."])

    def defender(self, ts: datetime, event_id: int, data: dict[str, str], level: str = "information") -> None:
        """Microsoft Defender Antivirus operational log (field names contain spaces, as Windows writes them)."""
        if self.sources.defender:
            origin = Origin(pid=self._defender_pid, tid=self._tid(), user_sid=SYSTEM_SID, level=level)
            self._add(winlog.DEFENDER, ts, event_id, data, origin)
