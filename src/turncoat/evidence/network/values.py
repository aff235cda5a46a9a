"""Values every network reader parses the same way: addresses, protocol names, decisions, numbers,
local time and syslog years (and the names under which a source's own fields are kept).

They live here, once, because the tables are joined on them: an address spelled one way by the DNS
reader and another by the firewall reader would not match, and a local time read with a DST report
by one reader and silently by another would make the same log line look different by source.

Addresses. `canonical_ip` spells an address the same way for every source: IPv6 compressed and
lower case, an IPv4-mapped IPv6 address as `::ffff:a.b.c.d` (Python's own spelling of it changed in
3.13), `[bracketed]` IPv6 unwrapped. Text that is not an address is kept as written; nothing (None,
empty, or the `-` logs write for "none") is None.

Local time. Many sources log wall-clock time of their own zone (`ctx.tz`). `LocalClock` converts it;
a time that a DST change makes ambiguous or impossible is read with the offset in force before the
change, and that is reported once per file — the analyst should know the hour may be off by one.

Syslog years. BSD syslog stamps (`Mar 27 10:00:00`) carry no year, and every reader of them uses one
rule (`SyslogYear`). Without an explicit first year, each line gets the latest year that does not put
it more than a day after the file's modification time — so a log running from December into January
is dated right whenever its last line was written not long before the file last changed. A copy that
lost its modification time (or a log older than a year) needs the year given (`ctx.year`, the year of
the first line); from there the year advances at each December → January turn.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from typing import Any

from turncoat.evidence.base import IssueLog, ReadIssue
from turncoat.evidence.network.base import NetContext
from turncoat.store.schema import net_columns

MONTHS: dict[str, int] = {m: i for i, m in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _present(text: str | None) -> str | None:
    """A field's text without surrounding blanks, or None when the log wrote nothing: no field, an
    empty one, or the `-` most text logs put in an empty slot."""
    if text is None:
        return None
    text = text.strip()
    return text if text and text != "-" else None


# --- addresses --------------------------------------------------------------------------------------

def _unbracket(text: str) -> str:
    """`[2001:db8::1]` → `2001:db8::1` (URLs, CONNECT targets and some firewalls bracket IPv6)."""
    return text[1:-1] if text.startswith("[") and text.endswith("]") else text


def canonical_ip(text: Any) -> str | None:
    """An address as text the same way for every source (see the module docstring); not-an-IP text
    is kept as written, and None, empty, `-` or a value that is not text at all (a JSON number or
    list where an address belongs) is None."""
    return _canonical_ip(text) if isinstance(text, str) else None


@functools.lru_cache(maxsize=65536)  # the same few thousand addresses recur on every line
def _canonical_ip(text: str) -> str | None:
    value = _present(text)
    if value is None:
        return None
    try:
        address = ipaddress.ip_address(_unbracket(value))
    except ValueError:
        return value
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return f"::ffff:{address.ipv4_mapped}"  # the same on every Python version
    return address.compressed


_IP_SHAPE = re.compile(r"\[?[0-9A-Fa-f:.]+(?:%[^\s\]]+)?\]?")  # optional `%zone` of a link-local address


def is_ip(text: str | None) -> bool:
    """Whether the text is one IP address (bracketed IPv6 and `%zone` included). Names, which are
    most of what DNS logs hold, are refused by a cheap shape test before the full parse."""
    value = _present(text)
    if value is None or not _IP_SHAPE.fullmatch(value) or not ("." in value or ":" in value):
        return False
    try:
        ipaddress.ip_address(_unbracket(value))
    except ValueError:
        return False
    return True


# --- protocol names and decisions -------------------------------------------------------------------

# IANA protocol numbers seen in network logs, by the ECS `network.transport` keyword.
IANA_PROTOCOLS: dict[int, str] = {
    0: "hopopt", 1: "icmp", 2: "igmp", 4: "ipv4", 6: "tcp", 17: "udp", 41: "ipv6", 43: "ipv6-route",
    44: "ipv6-frag", 47: "gre", 50: "esp", 51: "ah", 58: "ipv6-icmp", 59: "ipv6-nonxt", 60: "ipv6-opts",
    89: "ospf", 103: "pim", 112: "vrrp", 132: "sctp",
}
_TRANSPORT_ALIASES = {"icmpv6": "ipv6-icmp", "icmp6": "ipv6-icmp", "ipv6_icmp": "ipv6-icmp", "options": "hopopt"}

# Decisions in a shared vocabulary, so one query finds blocked traffic whatever the product; words
# not listed are kept, lower-cased.
ACTIONS: dict[str, str] = {
    **dict.fromkeys(("allow", "allowed", "accept", "accepted", "pass", "passed", "permit", "permitted"), "allow"),
    **dict.fromkeys(("drop", "dropped", "deny", "denied", "block", "blocked", "discard", "discarded"), "drop"),
    **dict.fromkeys(("reject", "rejected", "reset", "reset-both", "reset-client", "reset-server", "refuse", "refused"),
                    "reject"),
}


def transport_name(text: str | None) -> str | None:
    """`TCP`, `6`, `ICMPv6` … → the ECS transport keyword (`tcp`, `tcp`, `ipv6-icmp`)."""
    text = _present(text)
    if text is not None and text.isdigit():
        return IANA_PROTOCOLS.get(int(text), text)
    return _keyword(text, _TRANSPORT_ALIASES)


def action_name(text: str | None) -> str | None:
    """A product's decision word in the shared vocabulary (`ACTIONS`)."""
    return _keyword(text, ACTIONS)


def _keyword(text: str | None, vocabulary: dict[str, str]) -> str | None:
    """A word lower-cased and put in the shared vocabulary; a word it does not list is kept."""
    text = _present(text)
    if text is None:
        return None
    lowered = text.lower()
    return vocabulary.get(lowered, lowered)


# --- numbers ----------------------------------------------------------------------------------------

def to_int(text: str | None) -> int | None:
    """A count as logged: digits only (no sign, no `-` placeholder), at most 18 so it fits int64."""
    text = _present(text)
    if text is None or not text.isdigit() or len(text) > 18:
        return None
    return int(text)


def port(text: str | None) -> int | None:
    """A port number, or None for anything that cannot be one."""
    value = to_int(text)
    return value if value is not None and value <= 65535 else None


# --- names of a source's own fields -----------------------------------------------------------------

def extra_name(name: str, used: set[str], table: str) -> str:
    """A column name for a source field kept beside the fixed columns, that can never shadow a fixed
    column or another field.

    The store's views bind names case-insensitively, so `Action` and `action` would be one column.
    """
    fixed = {n.lower() for n in net_columns(table)}
    candidate = name.strip() or "column"
    if candidate.lower() in fixed:
        candidate += "_"
    base, n = candidate, 2
    while candidate.lower() in used:
        candidate = f"{base}_{n}"
        n += 1
    used.add(candidate.lower())
    return candidate


# --- local time -------------------------------------------------------------------------------------

class LocalClock:
    """Wall-clock times of the source's zone to UTC, saying once per file when a DST change makes
    one ambiguous or impossible (read with the offset in force before the change). One per file."""

    def __init__(self, tz: tzinfo, issues: IssueLog) -> None:
        self.tz = tz
        self.issues = issues
        self.warned = False
        self.last: tuple[datetime, datetime] | None = None  # (naive, UTC) of the previous call

    def utc(self, naive: datetime, line: int | None = None, offset: int | None = None) -> datetime:
        """UTC of a naive local time; ValueError when the zone's offset takes it out of range."""
        last = self.last  # read once: a clock used only to test parsing may be shared between threads
        if last is not None and last[0] == naive:
            return last[1]  # log lines come many to a second; the DST test costs a few µs
        aware = naive.replace(tzinfo=self.tz)
        if not self.warned and aware.utcoffset() != naive.replace(tzinfo=self.tz, fold=1).utcoffset():
            self.warned = True
            round_trip = aware.astimezone(UTC).astimezone(self.tz).replace(tzinfo=None)
            what = "does not exist (clocks went forward)" if round_trip != naive else \
                "is ambiguous (clocks went back)"
            self.issues.add(ReadIssue(
                f"local time {naive:%Y-%m-%d %H:%M:%S} {what} in {self.tz}; read with the offset before "
                "the change (reported once per file)", line=line, offset=offset))
        try:
            moment = aware.astimezone(UTC)
        except OverflowError as exc:  # year 1 or 9999 moved across the year's edge by the offset
            raise ValueError(f"local time {naive} is out of range in {self.tz}") from exc
        self.last = (naive, moment)
        return moment


def parse_iso(text: str, clock: LocalClock, line: int | None = None, offset: int | None = None) -> datetime:
    """An ISO 8601 stamp as UTC; one without a zone is wall-clock time of the source's zone.

    Also read: `YYYY/MM/DD` dates (CSV exports) and more than six fraction digits (rsyslog writes
    nine; Python reads six). Refused (ValueError): text shorter than a date or not starting with a
    four-digit year, so a plain number in a CSV column is not taken for a date."""
    text = text.strip()
    if len(text) < 10 or not text[:4].isdigit():
        raise ValueError(f"not an ISO 8601 time: {text[:40]!r}")
    if text[4:5] == "/" and text[7:8] == "/":
        text = text.replace("/", "-", 2)
    stamp = datetime.fromisoformat(_trim_fraction(text))
    if stamp.tzinfo is None:
        return clock.utc(stamp, line, offset)
    try:
        return stamp.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError(f"time {text[:40]!r} is out of range") from exc


def _trim_fraction(text: str) -> str:
    """Python reads at most six fraction digits; rsyslog may write nine."""
    return re.sub(r"(\.\d{6})\d+", r"\1", text)


# --- syslog years -----------------------------------------------------------------------------------

class SyslogYear:
    """The year of syslog time stamps, which carry none (see the module docstring for the rule)."""

    def __init__(self, reference: datetime | None, first_year: int | None = None) -> None:
        self.reference = reference  # the file's modification time, wall clock of the source's zone
        self.year = first_year
        self.last_month: int | None = None

    @classmethod
    def for_file(cls, path: Path, tz: tzinfo, first_year: int | None) -> SyslogYear:
        if first_year is not None:
            return cls(None, first_year)
        modified = datetime.fromtimestamp(path.stat().st_mtime, tz).replace(tzinfo=None)
        return cls(modified)

    @property
    def inferred(self) -> bool:
        """Whether years come from the file's modification time rather than from the caller."""
        return self.reference is not None

    def date(self, month: int, day: int, clock: tuple[int, int, int], micro: int = 0) -> datetime:
        """A naive datetime; ValueError when the day does not exist in the chosen year."""
        hour, minute, second = clock
        if self.year is not None:
            if self.last_month is not None and month < self.last_month and self.last_month - month > 6:
                self.year += 1  # December → January
            self.last_month = month
            return datetime(self.year, month, day, hour, minute, second, micro)
        assert self.reference is not None
        latest = self.reference + timedelta(days=1)
        for year in range(self.reference.year, self.reference.year - 8, -1):
            try:
                candidate = datetime(year, month, day, hour, minute, second, micro)
            except ValueError:
                continue  # 29 February outside a leap year
            if candidate <= latest:
                return candidate
        raise ValueError(f"no year puts {month}/{day} before the file's modification time")


def bsd_syslog_time(match: re.Match[str], years: SyslogYear, clock: LocalClock, line: int | None = None,
                    offset: int | None = None) -> datetime:
    """The UTC time of a `Mmm dd HH:MM:SS[.frac]` stamp (groups `mon`, `day`, `time`, optional
    `frac`): wall clock of the source's zone, year inferred. ValueError when it is not a date."""
    month = MONTHS.get(match["mon"])
    if month is None:
        raise ValueError(f"unknown month {match['mon']!r}")
    hour, minute, second = (int(p) for p in match["time"].split(":"))
    micro = int((match.groupdict().get("frac") or ".0")[1:7].ljust(6, "0"))
    return clock.utc(years.date(month, int(match["day"]), (hour, minute, second), micro), line, offset)


class SyslogClock:
    """Times of one file's syslog-style lines: a BSD stamp (groups `mon`, `day`, `time`, `frac`) is
    local time with its year inferred; an ISO / RFC 3339 stamp (group `iso`) is read as written. The
    year rule is set up on first use (the modification time is read only if needed), and the previous
    line's result is reused when the stamp repeats — many lines share a second."""

    def __init__(self, path: Path, ctx: NetContext, first_year: int | None = None) -> None:
        self.path = path
        self.ctx = ctx
        self.first_year = first_year if first_year is not None else getattr(ctx, "year", None)
        self.clock = LocalClock(ctx.tz, ctx.issues)
        self.years: SyslogYear | None = None
        self.last_key: tuple[Any, ...] | None = None
        self.last = datetime.min.replace(tzinfo=UTC)

    def time(self, match: re.Match[str], line: int | None = None, offset: int | None = None) -> datetime:
        """UTC time of one line's stamp; ValueError when it cannot be read."""
        groups = match.groupdict()
        key = (groups.get("iso"), groups.get("mon"), groups.get("day"), groups.get("time"), groups.get("frac"))
        if key == self.last_key:
            return self.last
        if groups.get("iso"):
            self.last = parse_iso(groups["iso"], self.clock, line, offset)
        else:
            if self.years is None:
                self.years = SyslogYear.for_file(self.path, self.ctx.tz, self.first_year)
            self.last = bsd_syslog_time(match, self.years, self.clock, line, offset)
        self.last_key = key
        return self.last
