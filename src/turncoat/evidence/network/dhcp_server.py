"""Windows DHCP Server audit logs → `net_dhcp`: which machine held which address when.

Network logs name hosts by address; the DHCP audit log (`%windir%\\System32\\dhcp\\DhcpSrvLog-<Day>.log`
and `DhcpV6SrvLog-<Day>.log`) is what turns an address at a moment into a machine name and MAC, so a
contact to a C2 server can be pinned on a workstation.

Layout (Microsoft's documented format): a text preamble listing event IDs, then a CSV header
`ID,Date,Time,Description,IP Address,Host Name,MAC Address,…` (IPv6: `…,IPv6 Address,Host Name,Error
Code,…`) and one row per event. Date is MM/DD/YY and time the server's local wall clock (`ctx.tz`).
Rows often stop early or carry extra empty fields, so columns are read by position, and a row only
needs the first four. Localised servers translate the preamble and header; rows are recognised by
their shape, not by the header's words. A local time that a DST change makes ambiguous or impossible
(the night clocks go back, 02:30 happens twice) is read with the offset before the change and
reported once per file.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path
from typing import Any

from turncoat.evidence.base import ReadIssue
from turncoat.evidence.network.base import NetContext, NetFormat
from turncoat.evidence.network.text import head_lines, text_lines
from turncoat.evidence.network.values import LocalClock, canonical_ip

_ROW = re.compile(r"(\d{1,5}),(\d{2})/(\d{2})/(\d{2}),(\d{2}):(\d{2}):(\d{2}),")
_HEADER = re.compile(r"ID,Date,Time,Description,IP(?:v6)? Address,", re.IGNORECASE)
_HEX_MAC = re.compile(r"[0-9A-Fa-f]{12}")

# Column names by position (the header's words, without its stray spaces and final full stop).
V4_COLUMNS = ("ID", "Date", "Time", "Description", "IP Address", "Host Name", "MAC Address", "User Name",
              "TransactionID", "QResult", "Probationtime", "CorrelationID", "Dhcid", "VendorClass(Hex)",
              "VendorClass(ASCII)", "UserClass(Hex)", "UserClass(ASCII)", "RelayAgentInformation", "DnsRegError")
V6_COLUMNS = ("ID", "Date", "Time", "Description", "IPv6 Address", "Host Name", "Error Code", "Duid Length",
              "Duid Bytes(Hex)", "User Name", "Dhcid", "Subnet Prefix")
_MAPPED = {"ID", "Date", "Time", "IP Address", "IPv6 Address", "Host Name", "MAC Address"}

# Event ID → event.action. IDs from the preamble Microsoft writes at the top of each log.
V4_ACTIONS: dict[int, str] = {
    0: "log-started", 1: "log-stopped", 2: "log-paused",
    10: "assign", 11: "renew", 12: "release", 13: "conflict", 14: "scope-full", 15: "nack", 16: "delete",
    17: "expire", 18: "expire",
    20: "bootp-assign", 21: "bootp-assign", 22: "bootp-scope-full", 23: "bootp-delete",
    24: "cleanup-begin", 25: "cleanup-stats",
    30: "dns-update-request", 31: "dns-update-failed", 32: "dns-update-success", 33: "nap-drop",
    34: "dns-update-failed", 35: "dns-update-failed", 36: "failover-drop",
}
V6_ACTIONS: dict[int, str] = {
    11000: "solicit", 11001: "advertise", 11002: "request", 11003: "confirm", 11004: "renew", 11005: "rebind",
    11006: "decline", 11007: "release", 11008: "information-request", 11009: "scope-full",
    11010: "service-started", 11011: "service-stopped", 11012: "log-paused", 11013: "log-file",
    11014: "bad-address", 11015: "conflict", 11016: "delete", 11017: "dns-record-not-deleted", 11018: "expire",
    11019: "expire", 11020: "cleanup-begin", 11021: "cleanup-end", 11022: "dns-update-request",
    11023: "dns-update-failed", 11024: "dns-update-success", 11028: "dns-update-failed",
    11029: "dns-update-failed", 11030: "stateless-purge", 11031: "stateless-purge",
    11032: "stateless-information-request",
}


def _rogue(event_id: int) -> bool:
    """50–64 (and 1103 in the IPv6 log) report rogue-server detection and authorisation."""
    return 50 <= event_id < 100 or 1100 <= event_id < 1200


def sniff_windows_dhcp_audit(head: bytes) -> bool:
    """The documented header, or rows of the audit shape after a preamble that names DHCP (or none)."""
    lines = [line for line in head_lines(head, 80) if line.strip()]
    if any(_HEADER.match(line) for line in lines):
        return True
    first = next((i for i, line in enumerate(lines) if _ROW.match(line)), None)
    if first is None:
        return False
    preamble = lines[:first]
    if preamble and not any("DHCP" in line for line in preamble):
        return False
    rows = lines[first:]
    good = sum(1 for line in rows if _ROW.match(line))
    return good * 5 >= len(rows) * 4


def mac_text(value: str | None) -> str | None:
    """`AABBCCDDEEFF` → `aa:bb:cc:dd:ee:ff` (Zeek's spelling); other client ids are kept as written."""
    if not value:
        return None
    value = value.strip()
    if _HEX_MAC.fullmatch(value):
        value = value.lower()
        return ":".join(value[i:i + 2] for i in range(0, 12, 2))
    return value or None


def read_windows_dhcp_audit(path: Path, ctx: NetContext) -> int:
    out = ctx.rows("net_dhcp", "windows-dhcp", "windows_dhcp.audit")
    clock = LocalClock(ctx.tz, ctx.issues)
    columns: tuple[str, ...] | None = None
    seen_row = False
    for number, offset, line in text_lines(path, ctx.issues):
        text = line.strip()
        if not text:
            continue
        if _HEADER.match(text):
            columns = V6_COLUMNS if text.lower().startswith("id,date,time,description,ipv6") else V4_COLUMNS
            continue
        match = _ROW.match(text)
        if match is None:
            if seen_row and not (text.upper().startswith("ID,") and text.count(",") >= 10):
                ctx.issues.add(ReadIssue(f"not a DHCP audit log row: {text[:80]!r}", line=number, offset=offset))
            continue  # the preamble, or a (localised) header
        seen_row = True
        event_id = int(match.group(1))
        month, day, year, hour, minute, second = (int(g) for g in match.groups()[1:])
        try:
            moment = clock.utc(datetime(2000 + year, month, day, hour, minute, second), number, offset)
        except ValueError:
            ctx.issues.add(ReadIssue(f"unreadable date/time in {text[:40]!r} (MM/DD/YY expected); row skipped",
                                     line=number, offset=offset))
            continue
        values = text.split(",")
        layout = columns or (V6_COLUMNS if event_id >= 11000 else V4_COLUMNS)
        out.add(_row(number, moment, event_id, values, layout))
    if not seen_row:
        ctx.issues.add(ReadIssue("no DHCP audit log rows found"))
    out.flush()
    return out.written


def _row(number: int, moment: datetime, event_id: int, values: list[str], layout: tuple[str, ...]) -> dict[str, Any]:
    record = {name: values[i].strip() for i, name in enumerate(layout) if i < len(values)}
    actions = V6_ACTIONS if layout is V6_COLUMNS else V4_ACTIONS
    action = actions.get(event_id) or V4_ACTIONS.get(event_id) or V6_ACTIONS.get(event_id)
    if action is None and _rogue(event_id):
        action = "rogue-detection"
    address = record.get("IPv6 Address") or record.get("IP Address")
    row: dict[str, Any] = {
        "line": number,
        "@timestamp": moment,
        "event.code": str(event_id),
        "event.action": action,
        "client.ip": canonical_ip(address),
        "client.mac": mac_text(record.get("MAC Address")),
        "host.hostname": record.get("Host Name") or None,
        "dhcp.ip_version": "6" if layout is V6_COLUMNS else "4",
    }
    for name, value in record.items():
        if name not in _MAPPED and value:
            row[name] = value
    extra = [v for v in values[len(layout):] if v.strip()]
    if extra:
        row["extra"] = ",".join(extra)
    return row


FORMATS: list[NetFormat] = [
    NetFormat("windows-dhcp-audit", sniff_windows_dhcp_audit, read_windows_dhcp_audit, local_time=True),
]
