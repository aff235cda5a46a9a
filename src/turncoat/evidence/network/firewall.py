"""Firewall logs → `net_flow`: Windows Firewall `pfirewall.log`, pfSense/OPNsense `filterlog`, and a
generic CSV mapping for every other firewall that can export one.

A firewall line records one packet and the rule's decision on it. `source.*` is the packet's sender as
logged; firewalls log the first packet of a connection, so that is normally the side that opened it.
`event.action` is the decision, in a shared vocabulary (`allow`, `drop`, `reject`, …) so one query
finds blocked traffic whatever the product; the product's own word is kept beside it.

Addresses, protocol names, decisions, numbers, local time and syslog years are read as every network
reader reads them (`values`): local times that a DST change makes ambiguous are reported once per
file, and filterlog's RFC 3164 stamps get their year by the rule the DNS readers use.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from turncoat.evidence.base import IssueLog, ReadIssue
from turncoat.evidence.network.base import NetContext, NetFormat
from turncoat.evidence.network.text import head_lines, text_lines
from turncoat.evidence.network.values import (
    EPOCH,
    LocalClock,
    SyslogClock,
    action_name,
    canonical_ip,
    extra_name,
    is_ip,
    parse_iso,
    port,
    to_int,
    transport_name,
)

# ---------------------------------------------------------------------------------------------------
# Windows Firewall (pfirewall.log)

WINDOWS_FIELDS = ("date", "time", "action", "protocol", "src-ip", "dst-ip", "src-port", "dst-port", "size",
                  "tcpflags", "tcpsyn", "tcpack", "tcpwin", "icmptype", "icmpcode", "info", "path")
_WINDOWS_MAPPED = {"date", "time", "action", "protocol", "src-ip", "dst-ip", "src-port", "dst-port", "size"}
_WINDOWS_DIRECTION = {"RECEIVE": "inbound", "SEND": "outbound"}


def sniff_windows_firewall(head: bytes) -> bool:
    """The W3C-style header Windows writes at the top of every pfirewall.log."""
    lines = [line.strip() for line in head_lines(head, 12)]
    software = any(re.fullmatch(r"#Software:\s*Microsoft Windows Firewall", line) for line in lines)
    fields = [line for line in lines if line.startswith("#Fields:")]
    if not software or not fields:
        return False
    names = set(fields[0][len("#Fields:"):].split())
    return {"date", "time", "action", "src-ip", "dst-ip"} <= names


def read_windows_firewall(path: Path, ctx: NetContext) -> int:
    """Each line is one packet: `path` RECEIVE means the remote host sent it (it is `source.*`),
    SEND means this host did. Times are the host's local time (`ctx.tz`) unless the header says UTC."""
    out = ctx.rows("net_flow", "windows-firewall", "windows_firewall.log")
    clock = LocalClock(ctx.tz, ctx.issues)
    fields: list[str] | None = None
    names: dict[str, str] = {}
    local = True
    for number, offset, line in text_lines(path, ctx.issues):
        text = line.strip()
        if not text:
            continue
        if text.startswith("#"):
            if text.startswith("#Fields:"):
                fields = text[len("#Fields:"):].split()
                names = _extra_names(fields, _WINDOWS_MAPPED)
            elif text.startswith("#Time Format:"):
                local = text.split(":", 1)[1].strip().lower() != "utc"
            continue
        if fields is None:
            fields = list(WINDOWS_FIELDS)
            names = _extra_names(fields, _WINDOWS_MAPPED)
            ctx.issues.add(ReadIssue("no #Fields header before the first entry; assumed the Windows Firewall "
                                     "1.5 field list", line=number, offset=offset))
        values = text.split()
        if len(values) != len(fields):
            ctx.issues.add(ReadIssue(f"entry has {len(values)} fields, #Fields lists {len(fields)}; skipped",
                                     line=number, offset=offset))
            continue
        record = dict(zip(fields, values))
        try:
            moment = datetime.strptime(f"{record.get('date', '')} {record.get('time', '')}", "%Y-%m-%d %H:%M:%S")
            moment = clock.utc(moment, number, offset) if local else moment.replace(tzinfo=UTC)
        except ValueError:
            ctx.issues.add(ReadIssue(f"unreadable date/time {record.get('date', '')[:40]!r} "
                                     f"{record.get('time', '')[:40]!r}; entry skipped", line=number, offset=offset))
            continue
        row: dict[str, Any] = {
            "line": number,
            "@timestamp": moment,
            "event.action": action_name(record.get("action")),
            "network.transport": transport_name(record.get("protocol")),
            "source.ip": canonical_ip(record.get("src-ip")),
            "destination.ip": canonical_ip(record.get("dst-ip")),
            "source.port": port(record.get("src-port")),
            "destination.port": port(record.get("dst-port")),
            "source.bytes": to_int(record.get("size")),
        }
        direction = _WINDOWS_DIRECTION.get(record.get("path", ""))
        if direction:
            row["network.direction"] = direction
        for field, value in record.items():
            if field in names and value != "-":
                row[names[field]] = value
        out.add(row)
    out.flush()
    return out.written


def _extra_names(fields: list[str], mapped: set[str]) -> dict[str, str]:
    used: set[str] = {"network.direction"}
    return {f: extra_name(f, used, "net_flow") for f in fields if f not in mapped}


# ---------------------------------------------------------------------------------------------------
# pfSense / OPNsense filterlog

_PRI = r"(?:<\d{1,3}>)?"
_RFC5424 = re.compile(r"<\d{1,3}>1 (?P<iso>\S+) (?P<host>\S+) filterlog (?P<pid>\S+) \S+ (?:-|(?:\[[^\]]*\])+) "
                      r"(?P<msg>.*)")
_RFC3164 = re.compile(_PRI + r"(?P<mon>[A-Z][a-z]{2}) (?P<day>[ \d]?\d) (?P<time>\d{2}:\d{2}:\d{2}) "
                      r"(?:(?P<host>\S+) )?filterlog(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)")
_ISO_SYSLOG = re.compile(_PRI + r"(?P<iso>\d{4}-\d{2}-\d{2}T\S+) (?:(?P<host>\S+) )?filterlog(?:\[(?P<pid>\d+)\])?: "
                         r"(?P<msg>.*)")
_ANY_SYSLOG = re.compile(_PRI + r"(?:1 \S+|[A-Z][a-z]{2} [ \d]?\d \d{2}:\d{2}:\d{2}|\d{4}-\d{2}-\d{2}T\S+) ")

# Field names follow Netgate's "Raw Filter Log Format" page, in its order.
_PF_COMMON = ("rule_number", "sub_rule_number", "anchor", "tracker", "interface", "reason", "action", "direction",
              "ip_version")
_PF_IPV4 = ("tos", "ecn", "ttl", "id", "offset", "flags", "protocol_id", "protocol_text")
_PF_IPV6 = ("class", "flow_label", "hop_limit", "protocol_text", "protocol_id")
_PF_TCP = ("data_length", "tcp_flags", "sequence_number", "ack_number", "window", "urg", "options")
_PF_ICMP = {
    "request": ("icmp_id", "icmp_sequence"),
    "reply": ("icmp_id", "icmp_sequence"),
    "unreachproto": ("icmp_destination_ip", "icmp_protocol_id"),
    "unreachport": ("icmp_destination_ip", "icmp_protocol_id", "icmp_port"),
    "needfrag": ("icmp_destination_ip", "icmp_mtu"),
    "tstamp": ("icmp_id", "icmp_sequence"),
    "tstampreply": ("icmp_id", "icmp_sequence", "icmp_otime", "icmp_rtime", "icmp_ttime"),
}
_PF_CARP = ("carp_type", "carp_ttl", "carp_vhid", "carp_version", "carp_advbase", "carp_advskew")
_PF_DIRECTION = {"in": "ingress", "out": "egress"}


class FilterlogError(ValueError):
    pass


def parse_filterlog(message: str) -> dict[str, Any]:
    """One filterlog CSV message → net_flow columns and `pf.*` fields; FilterlogError if malformed."""
    values = message.strip().split(",")
    if len(values) < len(_PF_COMMON):
        raise FilterlogError(f"{len(values)} fields, fewer than the {len(_PF_COMMON)} every entry has")
    fields = dict(zip(_PF_COMMON, values))
    rule = fields["rule_number"].strip()
    if rule and not rule.isdigit():
        raise FilterlogError(f"rule number {fields['rule_number'][:40]!r} is not a number")
    if fields["direction"] not in ("in", "out", ""):
        raise FilterlogError(f"direction {fields['direction'][:40]!r} is neither in nor out")
    rest = values[len(_PF_COMMON):]
    version = fields["ip_version"]
    if version == "4":
        layout = _PF_IPV4
    elif version == "6":
        layout = _PF_IPV6
    else:
        raise FilterlogError(f"IP version {version[:40]!r} is neither 4 nor 6")
    if len(rest) < len(layout) + 3:
        raise FilterlogError(f"IPv{version} entry cut short ({len(values)} fields)")
    fields.update(zip(layout, rest))
    fields["length"], src, dst = rest[len(layout):len(layout) + 3]
    if not (is_ip(src) and is_ip(dst)):
        raise FilterlogError(f"source/destination {src[:60]!r}/{dst[:60]!r} are not IP addresses")
    tail = rest[len(layout) + 3:]
    proto_id = to_int(fields["protocol_id"])
    row: dict[str, Any] = {
        "source.ip": canonical_ip(src),
        "destination.ip": canonical_ip(dst),
        "network.transport": transport_name(fields["protocol_text"]) or transport_name(fields["protocol_id"]),
        "event.action": action_name(fields["action"]),
        "source.bytes": to_int(fields["length"]),
    }
    if fields["direction"] in _PF_DIRECTION:
        row["network.direction"] = _PF_DIRECTION[fields["direction"]]
    if proto_id in (6, 17) and len(tail) >= 2:
        row["source.port"] = port(tail[0])
        row["destination.port"] = port(tail[1])
        names = _PF_TCP if proto_id == 6 else _PF_TCP[:1]
        fields.update(zip(names, tail[2:]))
        extra = tail[2 + len(names):]
    elif proto_id == 1 and tail:
        fields["icmp_type"] = tail[0]
        names = _PF_ICMP.get(tail[0], ("icmp_description",))
        fields.update(zip(names, tail[1:]))
        extra = tail[1 + len(names):]
    elif proto_id == 112 and tail:
        fields.update(zip(_PF_CARP, tail))
        extra = tail[len(_PF_CARP):]
    else:
        extra = tail
    if any(extra):
        fields["protocol_data"] = ",".join(extra)
    for name, value in fields.items():
        if value != "":
            row[f"pf.{name}"] = value
    return row


def sniff_pf_filterlog(head: bytes) -> bool:
    """Syslog lines from `filterlog` whose message parses as filterlog CSV; at least half the lines."""
    lines = [line for line in head_lines(head, 40) if line.strip()]
    if not lines:
        return False
    good = 0
    for line in lines:
        match = _match_filterlog(line)
        if match is None:
            continue
        try:
            parse_filterlog(match.group("msg"))
        except FilterlogError:
            continue
        good += 1
    return good >= 1 and good * 2 >= len(lines)


def _match_filterlog(line: str) -> re.Match[str] | None:
    return _RFC5424.fullmatch(line) or _RFC3164.fullmatch(line) or _ISO_SYSLOG.fullmatch(line)


def read_pf_filterlog(path: Path, ctx: NetContext) -> int:
    """RFC 5424 and ISO-stamped lines carry their zone; RFC 3164 lines are the sender's local time
    (`ctx.tz`) and carry no year: it is `ctx.year` (the first line's) when given, else inferred from
    the file's modification time (`values.SyslogYear`; reported once)."""
    out = ctx.rows("net_flow", "pf", "pf.filterlog")
    clock = SyslogClock(path, ctx)
    year_noted = False
    others: list[int] = []
    for number, offset, line in text_lines(path, ctx.issues):
        text = line.strip()
        if not text:
            continue
        match = _match_filterlog(text)
        if match is None:
            if _ANY_SYSLOG.match(text) and "filterlog" not in text[:120]:
                others.append(number)  # another program's syslog line in the same file
            else:
                ctx.issues.add(ReadIssue(f"not a filterlog syslog line: {text[:80]!r}", line=number, offset=offset))
            continue
        try:
            row = parse_filterlog(match.group("msg"))
        except FilterlogError as exc:
            ctx.issues.add(ReadIssue(f"malformed filterlog entry: {exc}", line=number, offset=offset))
            continue
        fields = match.groupdict()
        try:
            moment = clock.time(match, number, offset)
        except ValueError:
            ctx.issues.add(ReadIssue("unreadable syslog time stamp; entry skipped", line=number, offset=offset))
            continue
        if fields.get("mon") and not year_noted and clock.years is not None and clock.years.inferred:
            year_noted = True
            ctx.issues.add(ReadIssue(
                f"RFC 3164 time stamps carry no year; {moment.astimezone(ctx.tz).year} was inferred from the "
                "file's modification time", line=number, offset=offset))
        row["line"] = number
        row["@timestamp"] = moment
        if fields.get("host"):
            row["observer.hostname"] = fields["host"]
        if fields.get("pid") and fields["pid"] != "-":
            row["process.pid"] = fields["pid"]
        out.add(row)
    if others:
        ctx.issues.add(ReadIssue(f"{len(others)} syslog lines from other programs skipped (first at line "
                                 f"{others[0]})", line=others[0]))
    out.flush()
    return out.written


# ---------------------------------------------------------------------------------------------------
# Generic CSV (documented in docs/network-csv.md)

# Normalised header name (lower case, runs of other characters as `_`) → schema column; first alias wins.
CSV_ALIASES: dict[str, tuple[str, ...]] = {
    "@timestamp": ("timestamp", "time", "date_time", "datetime", "start_time", "starttime", "start",
                   "event_time", "eventtime", "receive_time", "generated_time", "generate_time",
                   "time_generated", "log_time", "ts"),
    "source.ip": ("src", "src_ip", "srcip", "source_ip", "sourceip", "srcaddr", "src_addr", "source_address",
                  "source_addr", "source", "src_ip_addr", "ip_src", "client_ip", "c_ip"),
    "destination.ip": ("dst", "dst_ip", "dstip", "destination_ip", "destinationip", "dstaddr", "dst_addr",
                       "destination_address", "destination_addr", "destination", "dest", "dest_ip",
                       "dst_ip_addr", "ip_dst", "server_ip", "s_ip"),
    "source.port": ("sport", "src_port", "srcport", "source_port", "sourceport", "spt", "s_port", "client_port"),
    "destination.port": ("dport", "dst_port", "dstport", "destination_port", "destinationport", "dest_port",
                         "dpt", "d_port", "server_port"),
    "network.transport": ("proto", "protocol", "ip_protocol", "transport", "network_transport"),
    "network.protocol": ("application", "app", "service", "network_protocol", "app_protocol"),
    "event.action": ("action", "disposition", "decision", "verdict", "event_action", "rule_action", "fw_action"),
    "source.bytes": ("bytes_sent", "sent_bytes", "bytes_out", "source_bytes", "src_bytes", "orig_bytes",
                     "client_bytes"),
    "destination.bytes": ("bytes_received", "received_bytes", "bytes_recv", "bytes_in", "destination_bytes",
                          "dst_bytes", "resp_bytes", "server_bytes"),
    "event.duration": ("duration", "elapsed", "elapsed_time", "event_duration"),
}
_CSV_DELIMITERS = (",", ";", "\t", "|")
_MAX_CSV_COLUMNS = 1024
_EPOCH_DIGITS = {13: 1e3, 16: 1e6, 19: 1e9}
_PARSE_ONLY = LocalClock(UTC, IssueLog())  # sniffing and header checks: whether a time parses, nothing reported


def normalise_header(name: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", name.strip().strip('"').lower()).strip("_")


class CsvLayout:
    """Which header column feeds which schema column, and the names other columns are kept under."""

    def __init__(self, header: list[str]) -> None:
        self.header = header
        self.width = len(header)
        normal = [normalise_header(h) for h in header]
        self.mapped: dict[str, int] = {}
        for column, aliases in CSV_ALIASES.items():
            for alias in aliases:
                if alias in normal:
                    self.mapped[column] = normal.index(alias)
                    break
        self.date_index: int | None = None
        time_index = self.mapped.get("@timestamp")
        if "date" in normal and (time_index is None or normal[time_index] == "time"):
            self.date_index = normal.index("date")
            if time_index is None:
                self.mapped["@timestamp"] = self.date_index
                self.date_index = None
        used: set[str] = set()
        taken = set(self.mapped.values()) - {self.mapped.get("event.action")}
        if self.date_index is not None:
            taken.add(self.date_index)
        self.extras = {i: extra_name(h or f"column_{i + 1}", used, "net_flow")
                       for i, h in enumerate(header) if i not in taken}

    @property
    def complete(self) -> bool:
        return {"@timestamp", "source.ip", "destination.ip"} <= set(self.mapped)

    def row(self, values: list[str], clock: LocalClock, line: int | None = None,
            offset: int | None = None) -> dict[str, Any] | None:
        """The net_flow row of one data record, or None when its time cannot be read."""

        def get(column: str) -> str | None:
            index = self.mapped.get(column)
            return values[index] if index is not None and index < len(values) else None

        stamp = get("@timestamp")
        if self.date_index is not None:
            stamp = f"{values[self.date_index].strip()} {stamp or ''}".strip()
        moment = csv_time(stamp or "", clock, line, offset)
        if moment is None:
            return None
        row: dict[str, Any] = {
            "@timestamp": moment,
            "source.ip": canonical_ip(get("source.ip")),
            "destination.ip": canonical_ip(get("destination.ip")),
            "source.port": port(get("source.port")),
            "destination.port": port(get("destination.port")),
            "network.transport": transport_name(get("network.transport")),
            "network.protocol": (get("network.protocol") or "").strip().lower() or None,
            "event.action": action_name(get("event.action")),
            "source.bytes": to_int(get("source.bytes")),
            "destination.bytes": to_int(get("destination.bytes")),
            "event.duration": _seconds(get("event.duration")),
        }
        for index, name in self.extras.items():
            value = values[index] if index < len(values) else ""
            if value != "":
                row[name] = value
        return row


def _seconds(text: str | None) -> float | None:
    if text is None:
        return None
    try:
        value = float(text.strip())
    except ValueError:
        return None
    return value if math.isfinite(value) and abs(value) < 1e12 else None


def csv_time(text: str, clock: LocalClock, line: int | None = None, offset: int | None = None) -> datetime | None:
    """ISO 8601 (with or without zone; `YYYY/MM/DD` too) or epoch seconds / ms / µs / ns."""
    text = text.strip().strip('"')
    if not text:
        return None
    if re.fullmatch(r"\d{9,10}(\.\d{1,9})?|\d{13}|\d{16}|\d{19}", text):
        whole, _, fraction = text.partition(".")
        if fraction:
            micros = int(whole) * 1_000_000 + int((fraction + "000000")[:6])
        else:
            divisor = _EPOCH_DIGITS.get(len(whole), 1.0)
            micros = int(whole) * 1_000_000 // int(divisor)
        try:
            return EPOCH + timedelta(microseconds=micros)
        except OverflowError:
            return None
    try:
        return parse_iso(text, clock, line, offset)
    except ValueError:
        return None


def _csv_dialect(header_line: str) -> str | None:
    counts = {d: header_line.count(d) for d in _CSV_DELIMITERS}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] >= 2 else None


def _split(line: str, delimiter: str) -> list[str]:
    return next(csv.reader([line], delimiter=delimiter, skipinitialspace=True), [])


def sniff_generic_csv(head: bytes) -> bool:
    """A header naming a time, a source address and a destination address column; and, if data rows
    follow in the head, at least one of them with a readable time and an IP address."""
    lines = [line for line in head_lines(head, 25) if line.strip()]
    if not lines:
        return False
    delimiter = _csv_dialect(lines[0])
    if delimiter is None:
        return False
    header = _split(lines[0], delimiter)
    if len(header) > _MAX_CSV_COLUMNS:
        return False
    layout = CsvLayout(header)
    if not layout.complete:
        return False
    rows = [_split(line, delimiter) for line in lines[1:]]
    if not rows:
        return True
    for values in rows:
        if len(values) != layout.width:
            continue
        row = layout.row(values, _PARSE_ONLY)
        if row is not None and (is_ip(row["source.ip"]) or is_ip(row["destination.ip"])):
            return True
    return False


def read_generic_csv(path: Path, ctx: NetContext) -> int:
    """Rows map through the header. A row of another width is skipped and reported, unless it is a
    header itself (files concatenated from several exports): that header applies from there on."""
    out = ctx.rows("net_flow", "csv", "csv.flow")
    records = _csv_records(path, ctx.issues)
    first = next(records, None)
    if first is None:
        out.flush()
        return 0
    number, offset, header = first
    clock = LocalClock(ctx.tz, ctx.issues)
    layout = CsvLayout(header)
    if not layout.complete:
        ctx.issues.add(ReadIssue("header does not name time, source and destination address columns; "
                                 "nothing read", line=number, offset=offset))
        return 0
    for number, offset, values in records:
        if not values or (len(values) == 1 and not values[0].strip()):
            continue
        if _is_header(values):
            if values != layout.header:
                ctx.issues.add(ReadIssue(f"new header with {len(values)} columns; it applies from here",
                                         line=number, offset=offset))
                layout = CsvLayout(values)
            continue
        if len(values) != layout.width:
            ctx.issues.add(ReadIssue(f"row has {len(values)} columns, the header {layout.width}; skipped",
                                     line=number, offset=offset))
            continue
        row = layout.row(values, clock, number, offset)
        if row is None:
            stamp = values[layout.mapped["@timestamp"]]
            ctx.issues.add(ReadIssue(f"unreadable time {stamp[:60]!r}; row skipped", line=number, offset=offset))
            continue
        row["line"] = number
        out.add(row)
    out.flush()
    return out.written


def _is_header(values: list[str]) -> bool:
    """A record that names the columns again: its "time" is no time (only whether it parses counts)."""
    if len(values) > _MAX_CSV_COLUMNS:
        return False
    layout = CsvLayout(values)
    return layout.complete and csv_time(values[layout.mapped["@timestamp"]], _PARSE_ONLY) is None


def _csv_records(path: Path, issues: IssueLog) -> Iterator[tuple[int, int, list[str]]]:
    """(first line, its offset, fields) of each CSV record; quoted fields may span lines. The
    delimiter is the one the header line uses most."""
    lines = text_lines(path, issues)
    delimiter = None
    for number, offset, text in lines:
        if text.strip():
            delimiter = _csv_dialect(text) or ","
            yield number, offset, _split(text, delimiter)
            break
    if delimiter is None:
        return
    start: list[int] = []
    last = [0, 0]

    def feed() -> Iterator[str]:
        for number, offset, text in lines:
            last[:] = [number, offset]
            if not start:
                start[:] = [number, offset]
            yield text + "\n"  # the line end keeps line breaks inside quoted fields

    reader = csv.reader(feed(), delimiter=delimiter, skipinitialspace=True)
    while True:
        start.clear()
        try:
            values = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            where = start or last
            issues.add(ReadIssue(f"CSV error: {exc}; record skipped", line=where[0], offset=where[1]))
            continue
        where = start or last
        yield where[0], where[1], values


FORMATS: list[NetFormat] = [
    NetFormat("windows-firewall", sniff_windows_firewall, read_windows_firewall, local_time=True),
    NetFormat("pf-filterlog", sniff_pf_filterlog, read_pf_filterlog, local_time=True),
    NetFormat("generic-csv", sniff_generic_csv, read_generic_csv, local_time=True),
]

__all__ = [
    "CSV_ALIASES",
    "FORMATS",
    "csv_time",
    "parse_filterlog",
]
