"""DNS server logs — Windows DNS Server debug log, BIND query log, dnsmasq / Pi-hole, Unbound — read
into `net_dns`, one row per question a client asked.

A resolver's own log is often the only record of which machine looked up a command-and-control
name: the sensor may not see inside the network, and the workstation's own DNS cache is long gone.
Every row names the client that asked (`source.ip`), the name without its trailing dot, the type,
and — when the server logs it — the response code and the answers.

Time. These servers log wall-clock time of their own zone, except where the format says otherwise:
Unbound's default `[epoch]` stamp, BIND's `iso8601-utc`, and syslog lines written with an RFC 3339
offset. Local times are converted with `ctx.tz` by `values.LocalClock` (a time that a DST change
makes ambiguous or impossible is read with the offset in force before the change and reported once
per file). Syslog-style stamps (`Mar 27 10:00:00`, dnsmasq and syslog channels of BIND and Unbound)
carry no year: it is inferred by the rule every syslog reader shares (`values.SyslogYear`), or
counted from the year of the first line when given (`year=`, else `ctx.year`).

Pairing. Servers that log questions and answers on separate lines (Windows, dnsmasq, Unbound) are
paired in a bounded window (`PAIR_WINDOW` of log time, at most `MAX_PENDING` open questions), so a
file of any size streams; a question whose answer never comes is written without one.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections import OrderedDict
from collections.abc import Callable, Hashable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from turncoat.evidence.base import ReadIssue
from turncoat.evidence.network.base import NetContext, NetFormat
from turncoat.evidence.network.text import head_lines, head_text, text_lines
from turncoat.evidence.network.values import MONTHS, LocalClock, SyslogClock, canonical_ip, is_ip, parse_iso
from turncoat.store.net_writer import NetRows

PAIR_WINDOW = timedelta(seconds=30)  # resolvers give up on a question well within this
MAX_PENDING = 50_000
ORDER_SCAN_BYTES = 1024 * 1024  # how much of a Windows debug log is read to learn its date order
SNIFF_LINES = 200


# --- shared helpers -------------------------------------------------------------------------------

def _every_line(head: bytes, judge: Callable[[str], bool | None]) -> bool:
    """The sniffing rule of the text DNS logs: every non-blank line of the head is the format's own
    or a syslog line of another program (`judge` says None for anything else: refused), and at least
    one is a client's question or its answer (`judge` says True)."""
    found = False
    for line in head_lines(head, SNIFF_LINES):
        if not line.strip():
            continue
        verdict = judge(line)
        if verdict is None:
            return False
        found = found or verdict
    return found


def dns_name(text: str) -> str:
    """A name as asked, without its trailing dot; the root stays "."."""
    name = text.strip()
    return name.rstrip(".") or "."


_SYSLOG = re.compile(
    r"^(?P<mon>[A-Z][a-z]{2}) {1,2}(?P<day>\d{1,2}) (?P<time>\d{2}:\d{2}:\d{2})(?P<frac>\.\d{1,9})? "
    r"(?:(?P<host>\S+) )??(?P<prog>[A-Za-z0-9_.\-/]+?)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$")
_RFC3339_SYSLOG = re.compile(
    r"^(?P<iso>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?) "
    r"(?:(?P<host>\S+) )??(?P<prog>[A-Za-z0-9_.\-/]+?)(?:\[(?P<pid>\d+)\])?: (?P<msg>.*)$")


def syslog_parts(text: str) -> re.Match[str] | None:
    """A syslog line's stamp (BSD or RFC 3339), host, program, pid and message, for `SyslogClock`."""
    return _SYSLOG.match(text) or _RFC3339_SYSLOG.match(text)


class Pending:
    """Questions waiting for their answer; written once answered elsewhere, superseded, too old, or
    at the end of the file. Keys are whatever pairs a question with its answer in the source."""

    def __init__(self, out: NetRows) -> None:
        self.out = out
        self.rows: OrderedDict[Hashable, dict[str, Any]] = OrderedDict()

    def add(self, key: Hashable, row: dict[str, Any]) -> None:
        old = self.rows.pop(key, None)
        if old is not None:
            emit(self.out, old)
        self.rows[key] = row

    def pop(self, key: Hashable) -> dict[str, Any] | None:
        return self.rows.pop(key, None)

    def get(self, key: Hashable) -> dict[str, Any] | None:
        return self.rows.get(key)

    def expire(self, now: datetime | None) -> None:
        while self.rows:
            key, row = next(iter(self.rows.items()))
            stamp = row.get("@timestamp")
            too_old = now is not None and stamp is not None and stamp < now - PAIR_WINDOW
            if not too_old and len(self.rows) <= MAX_PENDING:
                return
            del self.rows[key]
            emit(self.out, row)

    def close(self) -> None:
        for row in self.rows.values():
            emit(self.out, row)
        self.rows.clear()


def emit(out: NetRows, row: dict[str, Any]) -> None:
    """Write a row; internal `_` keys are dropped and the answer list becomes `dns.answers`."""
    answers = row.pop("_answers", None)
    if answers:
        row["dns.answers"] = ",".join(answers)
    for key in [k for k in row if k.startswith("_")]:
        del row[key]
    out.add(row)


# --- Windows DNS Server debug log -------------------------------------------------------------------
#
# Written when "Log packets for debugging" is on (%SystemRoot%\System32\dns\dns.log). One line per
# packet: date and time in the server's locale, thread, context (PACKET, EVENT …), then for
# packets: internal id, UDP/TCP, Snd/Rcv, remote IP, xid, R (response) or blank, opcode,
# [flags hex, flag letters, response code], question type and the name in label form
# `(3)www(7)example(3)com(0)`. With "Details" on, an indented dump of the whole message follows
# each packet line; its "Remote addr" gives the client port and its ANSWER SECTION the answers.
#
# Date formats read (the server writes its locale's short date and long time):
#   M/D/YYYY h:mm:ss AM|PM  (en-US)        D/M/YYYY HH:mm:ss  (en-GB, fr-FR …)
#   D.M.YYYY HH:mm:ss       (de-DE …)      YYYY-MM-DD / YYYY/MM/DD HH:mm:ss (ISO, sv-SE, zh-CN, ja-JP)
# Day/month order of slash dates is learned from the first MiB of the file (a day above 12 decides);
# when nothing decides, a 12-hour clock means month first and a 24-hour clock day first, and the
# guess is reported. AM/PM markers other than the English ones, and two-digit years, are reported
# as lines not understood.

_WIN_LINE = re.compile(
    r"^(?P<date>\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4}) (?P<time>\d{1,2}:\d{2}:\d{2})(?: (?P<ampm>[AaPp][Mm]))? "
    r"(?P<thread>[0-9A-Fa-f]{1,8}) (?P<context>\S+)(?:\s+(?P<rest>.*?))?\s*$")
_WIN_DATED = re.compile(r"^\d{1,4}[/.-]\d{1,2}[/.-]\d{1,4} \d{1,2}:\d{2}")
_WIN_PACKET = re.compile(
    r"^(?P<packet>[0-9A-Fa-f]+) +(?P<proto>UDP|TCP) +(?P<dir>Snd|Rcv) +(?P<ip>\S+) +(?P<xid>[0-9A-Fa-f]{1,4}) "
    r"(?P<qr>[R ]) (?P<opcode>[QNU?]) \[(?P<flags>[0-9A-Fa-f]{4}) (?P<letters>[ATDR ]{4}) *(?P<rcode>[A-Za-z0-9_]+)\]"
    r" +(?P<qtype>\S+) +(?P<qname>\S.*?)\s*$")
_WIN_DATE = re.compile(r"^(\d{1,4})([/.-])(\d{1,2})\2(\d{1,4})$")
_WIN_HEADER_STAMP = re.compile(r"^(?P<date>\S+) (?P<time>\S+)(?: (?P<ampm>[AaPp][Mm]))?$")
_WIN_HEADER = ("DNS Server log file creation at", "Log file wrap at", "Message logging key")
_WIN_DETAIL_START = re.compile(r"^(?:UDP|TCP) \w+ info at [0-9A-Fa-f]+\s*$")
_WIN_REMOTE = re.compile(r"^\s+Remote addr (?P<ip>[^,\s]+), port (?P<port>\d+)")
_WIN_SECTION = re.compile(r"^\s+(?P<section>QUESTION|ANSWER|AUTHORITY|ADDITIONAL) SECTION:")
_WIN_RR_TYPE = re.compile(r"^\s+TYPE\s+(?P<type>\S+)")
_WIN_RR_DATA = re.compile(r"^\s+DATA\s+(?P<data>\S.*?)\s*$")
_LABEL_LENGTH = re.compile(r"\((\d{1,3})\)")
_POINTER = re.compile(r"\[C[0-9A-Fa-f]{3}\]")


@functools.lru_cache(maxsize=65536)
def decode_labels(text: str) -> str | None:
    """`(3)www(7)example(3)com(0)` → `www.example.com`; a dotted name (Windows 2003) is kept."""
    text = _POINTER.sub("", text.strip())
    if not text.startswith("("):
        return (text.strip(".") or ".") if text else None  # Windows 2003 wrote `.www.example.com.`
    labels: list[str] = []
    pos = 0
    while pos < len(text):
        match = _LABEL_LENGTH.match(text, pos)
        if match is None:
            break
        length = int(match[1])
        pos = match.end()
        if length == 0:
            return ".".join(labels) if labels else "."
        labels.append(text[pos:pos + length])
        pos += length
    # lengths that do not fit (bytes shown as more than one character): split at the markers instead
    parts = [p for p in _LABEL_LENGTH.split(text)[2::2] if p]
    return ".".join(parts) if parts else None


def windows_date_order(path: Path) -> tuple[str, bool]:
    """"mdy" or "dmy" for slash dates, and whether the file itself decided it."""
    with path.open("rb") as handle:
        text = head_text(handle.read(ORDER_SCAN_BYTES))
    first_big = second_big = twelve_hour = False
    for line in text.splitlines():
        stamp = line.removeprefix("DNS Server log file creation at ").removeprefix("Log file wrap at ")
        match = _WIN_LINE.match(stamp) or _WIN_HEADER_STAMP.match(stamp)
        if not match:
            continue
        date = _WIN_DATE.match(match["date"])
        if not date or len(date[1]) == 4:
            continue
        if date[2] == ".":
            return "dmy", True
        first_big |= int(date[1]) > 12
        second_big |= int(date[3]) > 12
        twelve_hour |= bool(match["ampm"])
    if first_big != second_big:
        return ("dmy" if first_big else "mdy"), True
    return ("mdy" if twelve_hour else "dmy"), False


def windows_datetime(date: str, time: str, ampm: str | None, order: str) -> datetime:
    match = _WIN_DATE.match(date)
    if not match:
        raise ValueError(f"date {date!r} not understood")
    first, sep, second, third = match.groups()
    if len(first) == 4:
        year, month, day = int(first), int(second), int(third)
    elif len(third) != 4:
        raise ValueError(f"date {date!r} has no four-digit year")
    elif order == "mdy" and sep == "/":
        month, day, year = int(first), int(second), int(third)
    else:
        day, month, year = int(first), int(second), int(third)
    hour, minute, second_ = (int(p) for p in time.split(":"))
    if ampm:
        if not 1 <= hour <= 12:
            raise ValueError(f"hour {hour} with {ampm}")
        hour = hour % 12 + (12 if ampm.upper() == "PM" else 0)
    return datetime(year, month, day, hour, minute, second_)


class WindowsDebugReader:
    """One Windows DNS debug log: client questions (Rcv, not R, opcode Q), each paired with the
    response the server sent back to the same client, xid and question (Snd, R) for its response
    code and — with Details on — its answers. A response whose question is not in the file (logged
    before the file began, or question logging off) becomes a row of its own. The server's own
    recursive queries (Snd Q) and the replies it got (Rcv R), notifies and updates are not rows."""

    def __init__(self, path: Path, ctx: NetContext) -> None:
        self.path = path
        self.ctx = ctx
        self.clock = LocalClock(ctx.tz, ctx.issues)
        self.out = ctx.rows("net_dns", "windows-dns", "windows_dns.debug")
        self.pending = Pending(self.out)
        self.order, decided = windows_date_order(path)
        if not decided:
            how = "month/day (12-hour clock)" if self.order == "mdy" else "day/month (24-hour clock)"
            ctx.issues.add(ReadIssue(f"no date in the first lines tells day from month; dates read as {how}",
                                     line=None, offset=0))
        self.block: dict[str, Any] | None = None  # row that the detail lines below a packet fill
        self.block_is_response = False
        self.finished: dict[str, Any] | None = None  # answered row, written when its details end
        self.section: str | None = None
        self.rr_type: str | None = None
        self.seen_dated = False
        self.last_key: tuple[str, str, str | None] | None = None
        self.last_stamp = datetime.min.replace(tzinfo=UTC)

    def read(self) -> int:
        for number, offset, text in text_lines(self.path, self.ctx.issues):
            if "\x00" in text:
                self._bad("line holds NUL bytes (binary data?)", number, offset)
                continue
            if _WIN_DATED.match(text):
                self._dated(text, number, offset)
            elif not text.strip():
                continue
            elif self.seen_dated and self._detail_shape(text):
                self._detail(text)  # the message dump under a packet line, or the rest of an EVENT's text
            elif not self.seen_dated and (text.startswith(_WIN_HEADER) or text[:1] in " \t"):
                continue  # preamble and the field key
            else:
                self._bad(f"line not understood: {text[:80]!r}", number, offset)
        self._end_block()
        self.pending.close()
        self.out.flush()
        return self.out.written

    @staticmethod
    def _detail_shape(text: str) -> bool:
        return bool(_WIN_DETAIL_START.match(text)) or text[:1] in " \t"

    def _bad(self, message: str, number: int, offset: int) -> None:
        self.ctx.issues.add(ReadIssue(message, line=number, offset=offset))

    def _end_block(self) -> None:
        if self.finished is not None:
            emit(self.out, self.finished)
            self.finished = None
        self.block = None
        self.block_is_response = False
        self.section = self.rr_type = None

    def _dated(self, text: str, number: int, offset: int) -> None:
        self._end_block()
        self.seen_dated = True
        match = _WIN_LINE.match(text)
        if match is None:
            self._bad(f"line not understood (date, time or thread): {text[:80]!r}", number, offset)
            return
        if match["context"].upper() != "PACKET":
            return  # EVENT and other non-packet lines
        packet = _WIN_PACKET.match(match["rest"] or "")
        if packet is None:
            self._bad(f"packet line not understood: {text[:100]!r}", number, offset)
            return
        received, response = packet["dir"] == "Rcv", packet["qr"] == "R"
        if packet["opcode"] != "Q" or received == response:
            return  # notify/update, our own recursion, or the upstream's reply to it
        try:
            stamp = self._stamp(match["date"], match["time"], match["ampm"], number, offset)
        except ValueError as exc:
            self._bad(f"time stamp not understood: {exc}", number, offset)
            return
        self.pending.expire(stamp)
        name = decode_labels(packet["qname"])
        if name is None:
            self._bad(f"question name not understood: {packet['qname'][:80]!r}", number, offset)
            return
        client = canonical_ip(packet["ip"])
        key = (client, packet["xid"].lower(), name.lower(), packet["qtype"])
        if received:
            row = {
                "line": number, "@timestamp": stamp, "source.ip": client,
                "network.transport": packet["proto"].lower(), "dns.question.name": name,
                "dns.question.type": packet["qtype"], "dns.id": packet["xid"].lower(),
                "windows_dns.flags": packet["flags"], "windows_dns.thread": match["thread"],
                "windows_dns.packets": "query",
            }
            self.pending.add(key, row)
            self.block = row
            return
        row = self.pending.pop(key)
        if row is None:
            row = {
                "line": number, "@timestamp": stamp, "source.ip": client,
                "network.transport": packet["proto"].lower(), "dns.question.name": name,
                "dns.question.type": packet["qtype"], "dns.id": packet["xid"].lower(),
                "windows_dns.thread": match["thread"], "windows_dns.packets": "response",
            }
        else:
            row["windows_dns.packets"] = "query+response"
        row["dns.response_code"] = packet["rcode"]
        row["windows_dns.response_flags"] = packet["flags"]
        self.block = self.finished = row
        self.block_is_response = True

    def _stamp(self, date: str, time: str, ampm: str | None, number: int, offset: int) -> datetime:
        """UTC time of a packet line; lines come many to a second, so the last one is remembered."""
        key = (date, time, ampm)
        if key != self.last_key:
            self.last_stamp = self.clock.utc(windows_datetime(date, time, ampm, self.order), number, offset)
            self.last_key = key
        return self.last_stamp

    def _detail(self, text: str) -> None:
        row = self.block
        if row is None:
            return
        remote = _WIN_REMOTE.match(text)
        if remote:
            if row.get("source.port") is None:
                row["source.port"] = int(remote["port"])
            return
        section = _WIN_SECTION.match(text)
        if section:
            self.section = section["section"]
            self.rr_type = None
            return
        if not self.block_is_response or self.section != "ANSWER":
            return
        rr_type = _WIN_RR_TYPE.match(text)
        if rr_type:
            self.rr_type = rr_type["type"]
            return
        data = _WIN_RR_DATA.match(text)
        if data:
            value = data["data"]
            if value.startswith(("(", "[")):
                value = decode_labels(value) or value
            else:
                value = canonical_ip(value) or value
            row.setdefault("_answers", []).append(value)


def read_windows_dns_debug(path: Path, ctx: NetContext) -> int:
    """Rows written from one Windows DNS Server debug log."""
    return WindowsDebugReader(path, ctx).read()


def sniff_windows_dns_debug(head: bytes) -> bool:
    lines = [line for line in head_lines(head, SNIFF_LINES) if line.strip()]
    if not lines:
        return False
    if lines[0].startswith(_WIN_HEADER[:2]):
        return True
    first = _WIN_LINE.match(lines[0])
    if first is None:
        return False
    for line in lines:
        match = _WIN_LINE.match(line)
        if match and match["context"] == "PACKET" and _WIN_PACKET.match(match["rest"] or ""):
            return True
    return False


# --- BIND query log ---------------------------------------------------------------------------------
#
# `querylog yes;` lines, written by named's `queries` category to a file channel or to syslog:
#   27-Mar-2023 10:00:00.123 queries: info: client @0x7f… 10.0.0.23#53211 (www.example.com): query:
#       www.example.com IN A +E(0)K (10.0.0.1)
# Time: `print-time` local (dd-Mon-yyyy, default), iso8601 (local) or iso8601-utc (…Z); a syslog
# channel's BSD stamp. `print-category` / `print-severity` prefixes optional; the client object
# (`@0x…`, BIND 9.10+), the echoed name in parentheses (9.9+), the view, an ECS block (`[ECS …]`)
# and the destination address in parentheses (9.7+) are optional. Flags: + or - (recursion
# desired), S signed, E(n) EDNS version, T TCP, D DO, C CD, V/K cookie.

_BIND_STAMP = re.compile(
    r"^(?:(?P<native>\d{2}-[A-Z][a-z]{2}-\d{4} \d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)"
    r"|(?P<iso>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,6})?(?:Z|[+-]\d{2}:?\d{2})?)) (?P<msg>.*)$")
_BIND_QUERY = re.compile(
    r"^(?:(?P<category>[a-z][a-z-]*): )?(?:(?P<severity>critical|error|warning|notice|info|debug(?: \d+)?|dynamic): )?"
    r"client (?:@0x[0-9a-fA-F]+ )?(?P<client>[^\s#]+)#(?P<port>\d+)(?: \((?P<echo>[^)]*)\))?: "
    r"(?:view (?P<view>[^:]+): )?query: (?P<name>\S+) (?P<qclass>\S+) (?P<qtype>\S+) (?P<flags>[-+][A-Z0-9()]*)"
    r"(?: \[ECS (?P<ecs>[^\]]*)\])?(?: \((?P<dst>[^)]+)\))?\s*$")


def _bind_stamp(match: re.Match[str], clock: LocalClock, line: int, offset: int) -> datetime:
    if match["native"]:
        day, month, rest = match["native"].split("-", 2)
        year, clock_text = rest.split(" ", 1)
        hms, _, frac = clock_text.partition(".")
        hour, minute, second = (int(p) for p in hms.split(":"))
        if month not in MONTHS:
            raise ValueError(f"unknown month {month!r}")
        local = datetime(int(year), MONTHS[month], int(day), hour, minute, second, int(frac.ljust(6, "0") or 0))
        return clock.utc(local, line, offset)
    return parse_iso(match["iso"], clock, line, offset)


def read_bind_query(path: Path, ctx: NetContext, year: int | None = None) -> int:
    """Rows written from one BIND query log (a file channel, or syslog lines of named)."""
    syslog_clock = SyslogClock(path, ctx, year)
    clock = syslog_clock.clock  # one clock per file: a DST report is made once
    out = ctx.rows("net_dns", "bind", "bind.query")
    for number, offset, text in text_lines(path, ctx.issues):
        if not text.strip():
            continue
        stamped = _BIND_STAMP.match(text)
        parts = None if stamped else syslog_parts(text)
        if stamped:
            message = stamped["msg"]
        elif parts is None:
            ctx.issues.add(ReadIssue(f"line not understood: {text[:80]!r}", line=number, offset=offset))
            continue
        elif parts["prog"] != "named":
            continue  # another program's line in the same syslog file
        else:
            message = parts["msg"]
        query = _BIND_QUERY.match(message)
        if query is None:
            if " query: " in message and "client " in message:
                ctx.issues.add(ReadIssue(f"query line not understood: {text[:100]!r}", line=number, offset=offset))
            continue  # other categories (general, security …) are not questions
        try:
            if stamped:
                stamp = _bind_stamp(stamped, clock, number, offset)
            else:
                stamp = syslog_clock.time(parts, number, offset)
        except ValueError as exc:
            ctx.issues.add(ReadIssue(f"time stamp not understood: {exc}", line=number, offset=offset))
            continue
        flags = query["flags"]
        row: dict[str, Any] = {
            "line": number, "@timestamp": stamp, "source.ip": canonical_ip(query["client"]),
            "source.port": int(query["port"]),
            "destination.ip": canonical_ip(query["dst"]) if query["dst"] else None,
            "network.transport": "tcp" if "T" in flags else "udp",
            "dns.question.name": dns_name(query["name"]), "dns.question.type": query["qtype"],
            "dns.question.class": query["qclass"], "bind.flags": flags,
        }
        if query["view"]:
            row["bind.view"] = query["view"]
        if query["ecs"]:
            row["bind.ecs"] = query["ecs"]
        out.add(row)
    out.flush()
    return out.written


def sniff_bind_query(head: bytes) -> bool:
    return _every_line(head, _bind_line)


def _bind_line(line: str) -> bool | None:
    stamped = _BIND_STAMP.match(line)
    if stamped:
        return bool(_BIND_QUERY.match(stamped["msg"]))
    parts = syslog_parts(line)
    if parts is None:
        return None
    return parts["prog"] == "named" and bool(_BIND_QUERY.match(parts["msg"]))


# --- dnsmasq / Pi-hole -------------------------------------------------------------------------------
#
# `log-queries` lines, in dnsmasq's own `log-facility` file (`Mar  7 10:00:00 dnsmasq[1234]: …`,
# Pi-hole's pihole.log) or via syslog (a host name after the stamp, or an RFC 3339 stamp):
#   query[A] www.example.com from 10.0.0.23           a client's question (query[type=65] when unnamed)
#   forwarded www.example.com to 9.9.9.9              sent upstream
#   reply www.example.com is 93.184.216.34            answer from upstream (<CNAME>, NXDOMAIN, NODATA…)
#   cached www.example.com is 93.184.216.34           answer from the cache
#   config / /etc/hosts / DHCP … x is …               answer from local data
#   /etc/pihole/gravity.list x is 0.0.0.0             Pi-hole v4 block; v5+: "gravity blocked x is 0.0.0.0",
#                                                     "regex blacklisted …", "exactly blacklisted …"
# With `log-queries=extra` each line starts with a serial and the client's address/port
# (`12 10.0.0.23/53211 query[A] …`); answers are then paired by serial, otherwise by name (the most
# recent open question for it). A reverse answer names the address (`reply 10.0.0.5 is host.lan`)
# and is paired to its in-addr.arpa / ip6.arpa question; the lines that follow `is <CNAME>` answer
# the same question.

_DNSMASQ_EXTRA = re.compile(r"^(?P<serial>\d+|\*) (?P<src>\S+)/(?P<sport>\d+) (?P<msg>.*)$")
_DNSMASQ_QUERY = re.compile(r"^query\[(?P<qtype>[^\]]+)\] (?P<name>\S+) from (?P<client>\S+)$")
_DNSMASQ_FORWARD = re.compile(r"^forwarded (?P<name>\S+) to (?P<server>\S+)$")
_DNSMASQ_ANSWER = re.compile(r"^(?P<source>\S.*?) (?P<name>\S+) is (?P<dest>\S+)$")
_DNSMASQ_NOT_ANSWERS = ("validation", "ipset add", "nftset add", "dnssec-query", "dnssec-retry", "query[")
_RCODE_WORDS = {"SERVFAIL", "REFUSED", "NOTIMP", "FORMERR", "NXDOMAIN"}


def _dnsmasq_type(text: str) -> str:
    """`type=65` (a type dnsmasq has no name for) in the RFC 3597 spelling BIND and Unbound use."""
    return f"TYPE{text[5:]}" if text.startswith("type=") else text


def _answer_rcode(dest: str) -> str | None:
    word = dest.split("-", 1)[0]
    if word == "NODATA":
        return "NOERROR"
    if word in _RCODE_WORDS:
        return word
    return None


def _reverse_name(name: str) -> str:
    """The arpa name a reverse answer belongs to (dnsmasq logs the address instead)."""
    try:
        return ipaddress.ip_address(name).reverse_pointer
    except ValueError:
        return name


class DnsmasqReader:
    """One dnsmasq or Pi-hole log: a row per `query[…]` line, with the answers that follow it."""

    def __init__(self, path: Path, ctx: NetContext, year: int | None) -> None:
        self.path = path
        self.ctx = ctx
        self.clock = SyslogClock(path, ctx, year)
        self.out = ctx.rows("net_dns", "dnsmasq", "dnsmasq.log")
        self.pending = Pending(self.out)
        self.chain: dict[str, Any] | None = None  # question answered by a CNAME chain in progress
        self.chain_line = -1

    def read(self) -> int:
        for number, offset, text in text_lines(self.path, self.ctx.issues):
            if not text.strip():
                continue
            parts = syslog_parts(text)
            if parts is None:
                self.ctx.issues.add(ReadIssue(f"line not understood: {text[:80]!r}", line=number, offset=offset))
                continue
            if parts["prog"] != "dnsmasq":
                continue  # dnsmasq-dhcp, dnsmasq-tftp, or another program in the same syslog
            try:
                self._message(parts, number, offset)
            except ValueError as exc:
                self.ctx.issues.add(ReadIssue(f"time stamp not understood: {exc}", line=number, offset=offset))
        self.pending.close()
        self.out.flush()
        return self.out.written

    def _message(self, parts: re.Match[str], number: int, offset: int) -> None:
        message = parts["msg"]
        serial = src = sport = None
        extra = _DNSMASQ_EXTRA.match(message)
        if extra:
            serial, src, sport, message = extra["serial"], extra["src"], extra["sport"], extra["msg"]
        query = _DNSMASQ_QUERY.match(message)
        if query:
            stamp = self.clock.time(parts, number, offset)
            self.pending.expire(stamp)
            name = dns_name(query["name"])
            row: dict[str, Any] = {
                "line": number, "@timestamp": stamp, "source.ip": canonical_ip(query["client"]),
                "dns.question.name": name, "dns.question.type": _dnsmasq_type(query["qtype"]),
            }
            if sport is not None and src is not None and canonical_ip(src) == row["source.ip"]:
                row["source.port"] = int(sport)
            if serial not in (None, "*"):
                row["dnsmasq.serial"] = serial
            self.pending.add(self._key(serial, name), row)
            self.chain = None
            return
        forward = _DNSMASQ_FORWARD.match(message)
        if forward:
            row = self.pending.get(self._key(serial, dns_name(forward["name"])))
            if row is not None:
                row.setdefault("dnsmasq.upstream", canonical_ip(forward["server"]))
            return
        answer = _DNSMASQ_ANSWER.match(message)
        if answer is None or answer["source"].startswith(_DNSMASQ_NOT_ANSWERS):
            return  # start-up, cache and DHCP messages: not questions
        name = dns_name(answer["name"])
        row = self.pending.get(self._key(serial, name))
        if row is None and serial is None and is_ip(name):
            row = self.pending.get(self._key(None, _reverse_name(name)))
        if row is None and self.chain is not None and number == self.chain_line + 1:
            row = self.chain  # the next link of a CNAME chain
            answers = row.setdefault("_answers", [])
            if name not in answers:
                answers.append(name)  # the CNAME's target
        if row is None:
            return  # an answer whose question is not in the file
        dest = answer["dest"]
        rcode = _answer_rcode(dest)
        row["dns.response_code"] = rcode or row.get("dns.response_code") or "NOERROR"
        row.setdefault("dnsmasq.answer_source", answer["source"])
        if dest == "<CNAME>":
            self.chain, self.chain_line = row, number
            return
        if rcode is None and not (dest.startswith("<") and dest.endswith(">")):
            row.setdefault("_answers", []).append(canonical_ip(dest) or dest)
        if self.chain is row:
            self.chain_line = number

    @staticmethod
    def _key(serial: str | None, name: str) -> Hashable:
        if serial not in (None, "*"):
            return ("serial", serial)
        return ("name", name.lower())


def read_dnsmasq(path: Path, ctx: NetContext, year: int | None = None) -> int:
    """Rows written from one dnsmasq / Pi-hole log; `year` is the year of its first line if known."""
    return DnsmasqReader(path, ctx, year).read()


def sniff_dnsmasq(head: bytes) -> bool:
    return _every_line(head, _dnsmasq_line)


def _dnsmasq_line(line: str) -> bool | None:
    parts = syslog_parts(line)
    if parts is None:
        return None
    if parts["prog"] != "dnsmasq":
        return False
    message = parts["msg"]
    extra = _DNSMASQ_EXTRA.match(message)
    if extra:
        message = extra["msg"]
    return bool(_DNSMASQ_QUERY.match(message) or _DNSMASQ_FORWARD.match(message))


# --- Unbound -----------------------------------------------------------------------------------------
#
# `log-queries: yes` and `log-replies: yes` lines:
#   [1679911200] unbound[1234:0] info: 10.0.0.23 www.example.com. A IN
#   [1679911200] unbound[1234:0] info: 10.0.0.23 www.example.com. A IN NOERROR 0.000000 0 45
# (rcode, time taken in seconds, 1 if served from cache, reply size; `- - - FORMERR - - -` for a
# message that could not be parsed). With `log-tag-queryreply: yes` the level word is `query` /
# `reply` instead of `info`. Time: `[epoch seconds]` (UTC; default), `log-time-ascii: yes`
# (`Mar 27 10:00:00`, local, no year), an ISO 8601 stamp with offset (`log-time-iso`), or syslog
# (`Mar 27 10:00:00 host unbound: [1234:0] info: …`). A reply is paired with the most recent open
# question from the same client for the same name and type; a reply without one is a row itself.

_UNBOUND_EPOCH = re.compile(
    r"^\[(?P<epoch>\d{1,12})\] (?P<ident>[^\s\[]+)\[(?P<pid>\d+):(?P<tid>[0-9a-fA-F]+)\] (?P<level>\w+): (?P<msg>.*)$")
_UNBOUND_ASCII = re.compile(
    r"^(?P<mon>[A-Z][a-z]{2}) (?P<day>\d{1,2}) (?P<time>\d{2}:\d{2}:\d{2}) "
    r"(?P<ident>[^\s\[]+)\[(?P<pid>\d+):(?P<tid>[0-9a-fA-F]+)\] (?P<level>\w+): (?P<msg>.*)$")
_UNBOUND_ISO = re.compile(
    r"^(?P<iso>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:?\d{2})?) "
    r"(?P<ident>[^\s\[]+)\[(?P<pid>\d+):(?P<tid>[0-9a-fA-F]+)\] (?P<level>\w+): (?P<msg>.*)$")
_UNBOUND_SYSLOG_MSG = re.compile(r"^\[(?P<pid>\d+):(?P<tid>[0-9a-fA-F]+)\] (?P<level>\w+): (?P<msg>.*)$")
_UNBOUND_QUERY = re.compile(r"^(?P<client>\S+) (?P<name>\S+) (?P<qtype>\S+) (?P<qclass>\S+)$")
_UNBOUND_REPLY = re.compile(
    r"^(?P<client>\S+) (?P<name>\S+) (?P<qtype>\S+) (?P<qclass>\S+) (?P<rcode>[A-Z0-9]+) "
    r"(?P<elapsed>\d+\.\d+) (?P<cached>[01]) (?P<size>\d+)$")
_UNBOUND_FORMERR = re.compile(r"^(?P<client>\S+) - - - (?P<rcode>\S+) - - -\s*$")


def _unbound_line(text: str) -> tuple[str, str, re.Match[str]] | None:
    """(level, message, match) of an Unbound log line, or None."""
    for pattern in (_UNBOUND_EPOCH, _UNBOUND_ASCII, _UNBOUND_ISO):
        match = pattern.match(text)
        if match:
            return match["level"], match["msg"], match
    parts = syslog_parts(text)
    if parts and parts["prog"] == "unbound":
        inner = _UNBOUND_SYSLOG_MSG.match(parts["msg"])
        if inner:
            return inner["level"], inner["msg"], parts
    return None


def read_unbound(path: Path, ctx: NetContext, year: int | None = None) -> int:
    """Rows written from one Unbound log (its own file or syslog lines)."""
    syslog_clock = SyslogClock(path, ctx, year)
    out = ctx.rows("net_dns", "unbound", "unbound.log")
    pending = Pending(out)
    for number, offset, text in text_lines(path, ctx.issues):
        if not text.strip():
            continue
        parsed = _unbound_line(text)
        if parsed is None:
            if syslog_parts(text) is None:
                ctx.issues.add(ReadIssue(f"line not understood: {text[:80]!r}", line=number, offset=offset))
            continue
        level, message, match = parsed
        if level not in ("info", "query", "reply"):
            continue
        reply = _UNBOUND_REPLY.match(message) or _UNBOUND_FORMERR.match(message)
        query = None if reply else _UNBOUND_QUERY.match(message)
        hit = reply or query
        if hit is None or not is_ip(hit["client"].split("@")[0]):
            continue  # other info messages (start-up, statistics, local-zone actions …)
        try:
            if match.groupdict().get("epoch"):
                stamp = datetime.fromtimestamp(int(match["epoch"]), UTC)
            else:  # `log-time-iso`, `log-time-ascii` or a syslog line
                stamp = syslog_clock.time(match, number, offset)
        except (ValueError, OverflowError, OSError) as exc:
            ctx.issues.add(ReadIssue(f"time stamp not understood: {exc}", line=number, offset=offset))
            continue
        pending.expire(stamp)
        client = canonical_ip(hit["client"].split("@")[0])
        name = dns_name(hit["name"]) if "name" in hit.groupdict() else None
        qtype = hit["qtype"] if "qtype" in hit.groupdict() else None
        key = (client, (name or "").lower(), qtype)
        if query:
            pending.add(key, {"line": number, "@timestamp": stamp, "source.ip": client,
                              "dns.question.name": name, "dns.question.type": qtype,
                              "dns.question.class": query["qclass"]})
            continue
        row = pending.pop(key) if name else None
        if row is None:
            row = {"line": number, "@timestamp": stamp, "source.ip": client, "dns.question.name": name,
                   "dns.question.type": qtype, "dns.question.class": hit["qclass"] if name else None}
        row["dns.response_code"] = hit["rcode"]
        if name:
            row["unbound.elapsed"] = hit["elapsed"]
            row["unbound.cached"] = hit["cached"]
            row["unbound.reply_size"] = hit["size"]
        emit(out, row)
    pending.close()
    out.flush()
    return out.written


def sniff_unbound(head: bytes) -> bool:
    return _every_line(head, _unbound_sniff_line)


def _unbound_sniff_line(line: str) -> bool | None:
    parsed = _unbound_line(line)
    if parsed is None:
        return None if syslog_parts(line) is None else False
    level, message, _ = parsed
    hit = _UNBOUND_REPLY.match(message) or _UNBOUND_QUERY.match(message)
    return bool(level in ("info", "query", "reply") and hit and is_ip(hit["client"].split("@")[0]))


FORMATS: list[NetFormat] = [
    NetFormat("windows-dns-debug", sniff_windows_dns_debug, read_windows_dns_debug, local_time=True),
    NetFormat("bind-query", sniff_bind_query, read_bind_query, local_time=True),
    NetFormat("dnsmasq", sniff_dnsmasq, read_dnsmasq, local_time=True),
    NetFormat("unbound", sniff_unbound, read_unbound, local_time=True),
]
