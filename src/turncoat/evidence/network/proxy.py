"""Squid access logs → `net_http`: which client asked the proxy for which host, when, and the outcome.

A proxy log is often the only record of a workstation's contacts to the outside: behind the proxy,
firewalls and sensors see only the proxy. Two layouts are read:

* `squid-native` — Squid's default `access.log` (`squid` logformat): epoch time, elapsed ms, client,
  `RESULT/STATUS`, bytes, method, URL, user, `HIERARCHY/peer`, content type.
* `squid-common` — Squid's `common` and `combined` logformats: a web-server-style line (zone in the
  line) ending in Squid's `RESULT:HIERARCHY` codes.

A web server's own common/combined log (Apache, nginx) looks like `squid-common` but is not a proxy
log: its URLs are the server's own paths, and its clients are visitors, not internal hosts reaching
out. It lacks Squid's trailing `RESULT:HIERARCHY` token, and sniffing requires that token, so such a
log is refused rather than read as contacts to hosts.

`@timestamp` is when Squid logged the request, which is when it ended (for a CONNECT tunnel, when the
tunnel closed); the native format's elapsed time gives its start, kept as `event.start` (ISO 8601, UTC).

`url.domain` is the host the client asked for (for `CONNECT host:port`, that host, with the port in
`destination.port`; otherwise the URL's port or its scheme's default). `destination.ip` is the peer
Squid forwarded to when the log names it by address: the origin server for DIRECT, the parent proxy
for parent hierarchies.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from turncoat.evidence.base import ReadIssue
from turncoat.evidence.network.base import NetContext, NetFormat
from turncoat.evidence.network.text import head_lines, text_lines
from turncoat.evidence.network.values import EPOCH, MONTHS, canonical_ip, is_ip, port

_RESULT = r"[A-Z][A-Z0-9_]*"
_NATIVE = re.compile(
    r"(?P<time>\d{1,12}(?:\.\d{1,6})?)\s+(?P<elapsed>-?\d+)\s+(?P<client>\S+)\s+"
    rf"(?P<result>{_RESULT})/(?P<status>\d{{1,3}})\s+(?P<bytes>-?\d+)\s+(?P<method>\S+)\s+(?P<url>\S+)\s+"
    rf"(?P<user>\S+)\s+(?P<hier>{_RESULT})/(?P<peer>\S+)\s+(?P<type>\S+)(?:\s+(?P<rest>.*))?")
_QUOTED = r'"(?:[^"\\]|\\.)*"'
_COMMON = re.compile(
    r"(?P<client>\S+) (?P<ident>\S+) (?P<user>\S+) \[(?P<time>[^\]]{1,40})\] "
    rf"(?P<request>{_QUOTED}) (?P<status>\d{{1,3}}) (?P<bytes>\d+|-)"
    rf"(?: (?P<referer>{_QUOTED}) (?P<agent>{_QUOTED}))? (?P<result>{_RESULT}):(?P<hier>{_RESULT})")
_CLF_TIME = re.compile(r"(\d{2})/([A-Z][a-z]{2})/(\d{4}):(\d{2}):(\d{2}):(\d{2}) ([+-])(\d{2})(\d{2})")
_HIER_TOKEN = re.compile(rf"{_RESULT}/\S+")
_MAX_URL_TOKENS = 64  # a URL with more spaces than this is taken for a broken line
_SCHEME_PORTS = {"http": 80, "https": 443, "ftp": 21, "ws": 80, "wss": 443}


def _native_match(line: str) -> re.Match[str] | None:
    return _NATIVE.fullmatch(line.strip())


def _common_match(line: str) -> re.Match[str] | None:
    return _COMMON.fullmatch(line.strip())


def _mostly(head: bytes, match: Callable[[str], re.Match[str] | None]) -> bool:
    """At least one line, and four in five of the first non-blank lines, have the layout."""
    lines = [line for line in head_lines(head, 25) if line.strip()]
    good = sum(1 for line in lines if match(line))
    return good >= 1 and good * 5 >= len(lines) * 4


def sniff_squid_native(head: bytes) -> bool:
    return _mostly(head, _native_match)


def sniff_squid_common(head: bytes) -> bool:
    return _mostly(head, _common_match)


def request_target(method: str, url: str) -> tuple[str | None, int | None]:
    """(host, port) the client asked for: `CONNECT host:port`, or an absolute URL's host and port.
    A relative URL (transparent interception, error placeholders) names no host."""
    if method.upper() == "CONNECT" and "://" not in url:
        host, sep, port_text = url.rpartition(":")
        if not sep:
            return _host(url), None
        return _host(host), port(port_text)
    if "://" not in url:
        return None, None
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        return None, None
    try:
        number = parts.port
    except ValueError:  # a port that is not one names no port, not the scheme's default
        return _host(host), None
    if number is None:
        number = _SCHEME_PORTS.get(parts.scheme.lower())
    return _host(host), number


def _host(host: str | None) -> str | None:
    if not host:
        return None
    host = host.strip().strip("[]").rstrip(".")
    if not host:
        return None
    return canonical_ip(host) if is_ip(host) else host.lower()


def _dash(value: str | None) -> str | None:
    return None if value in (None, "", "-") else value


def _native_time(text: str) -> datetime | None:
    whole, _, fraction = text.partition(".")
    try:
        return EPOCH + timedelta(seconds=int(whole), microseconds=int((fraction + "000000")[:6]))
    except (ValueError, OverflowError):
        return None


def _clf_time(text: str) -> datetime | None:
    """`27/Mar/2023:10:00:00 +0200` → UTC."""
    match = _CLF_TIME.fullmatch(text.strip())
    if match is None:
        return None
    day, month, year, hour, minute, second, sign, off_h, off_m = match.groups()
    offset = timedelta(hours=int(off_h), minutes=int(off_m)) * (-1 if sign == "-" else 1)
    try:
        local = datetime(int(year), MONTHS[month], int(day), int(hour), int(minute), int(second),
                         tzinfo=timezone(offset))
    except (KeyError, ValueError):
        return None
    return local.astimezone(UTC)


def _unquote(text: str | None) -> str | None:
    if text is None:
        return None
    inner = text[1:-1] if len(text) >= 2 and text[0] == text[-1] == '"' else text
    inner = inner.replace('\\"', '"').replace("\\\\", "\\")
    return None if inner in ("", "-") else inner


def _http_row(method: str, url: str) -> dict[str, Any]:
    host, number = request_target(method, url)
    return {
        "http.request.method": method if method not in ("-", "NONE") else None,
        "url.full": _dash(url),
        "url.domain": host,
        "destination.port": number,
    }


def read_squid_native(path: Path, ctx: NetContext) -> int:
    out = ctx.rows("net_http", "squid", "squid.access")
    for number, offset, line in text_lines(path, ctx.issues):
        if not line.strip():
            continue
        match = _native_match(line)
        if match is None:
            match = _spaced_url(line)
        if match is None:
            ctx.issues.add(ReadIssue(f"not a Squid native access.log line: {line.strip()[:80]!r}",
                                     line=number, offset=offset))
            continue
        fields = match if isinstance(match, dict) else match.groupdict()
        moment = _native_time(fields["time"])
        if moment is None:
            ctx.issues.add(ReadIssue(f"unreadable time {fields['time']!r}; line skipped", line=number, offset=offset))
            continue
        peer = _dash(fields["peer"])
        row: dict[str, Any] = {
            "line": number,
            "@timestamp": moment,
            "source.ip": canonical_ip(fields["client"]),
            "destination.ip": canonical_ip(peer) if is_ip(peer) else None,
            **_http_row(fields["method"], fields["url"]),
            "http.response.status_code": int(fields["status"]),
            "event.action": fields["result"],
            "squid.elapsed_ms": fields["elapsed"],
            "http.response.bytes": fields["bytes"],
            "user.name": _dash(fields["user"]),
            "squid.hierarchy_code": fields["hier"],
            "squid.peer": peer,
            "http.response.mime_type": _dash(fields["type"]),
        }
        elapsed = int(fields["elapsed"])
        if 0 < elapsed < 10**11:  # Squid stamps a request when it ends; a tunnel can last hours
            row["event.start"] = (moment - timedelta(milliseconds=elapsed)).isoformat().replace("+00:00", "Z")
        if fields.get("rest"):
            row["squid.extra"] = fields["rest"]  # e.g. headers logged by `log_mime_hdrs on`
        out.add(row)
    out.flush()
    return out.written


def _spaced_url(line: str) -> dict[str, str] | None:
    """A native line whose URL holds spaces (Squid's `uri_whitespace allow`): the fields after the URL
    are found from the first `HIERARCHY/peer` token instead of by position."""
    tokens = line.split()
    if len(tokens) > _MAX_URL_TOKENS:
        return None
    for index in range(8, len(tokens) - 1):
        if _HIER_TOKEN.fullmatch(tokens[index]):
            match = _native_match(" ".join([*tokens[:6], "-", *tokens[index - 1:]]))
            if match is None:
                return None
            fields = match.groupdict()
            fields["url"] = " ".join(tokens[6:index - 1])
            return fields
    return None


def read_squid_common(path: Path, ctx: NetContext) -> int:
    out = ctx.rows("net_http", "squid", "squid.access")
    for number, offset, line in text_lines(path, ctx.issues):
        if not line.strip():
            continue
        match = _common_match(line)
        if match is None:
            ctx.issues.add(ReadIssue(f"not a Squid common/combined log line: {line.strip()[:80]!r}",
                                     line=number, offset=offset))
            continue
        moment = _clf_time(match["time"])
        if moment is None:
            ctx.issues.add(ReadIssue(f"unreadable time {match['time']!r}; line skipped", line=number, offset=offset))
            continue
        request = _unquote(match["request"]) or ""
        parts = request.split(" ")
        method, url, version = (parts + ["", "", ""])[:3] if len(parts) <= 3 else \
            (parts[0], " ".join(parts[1:-1]), parts[-1])
        row: dict[str, Any] = {
            "line": number,
            "@timestamp": moment,
            "source.ip": canonical_ip(match["client"]),
            **_http_row(method or "-", url or "-"),
            "http.response.status_code": int(match["status"]),
            "event.action": match["result"],
            "http.response.bytes": _dash(match["bytes"]),
            "user.name": _dash(match["user"]),
            "squid.ident": _dash(match["ident"]),
            "squid.hierarchy_code": match["hier"],
            "http.version": version.removeprefix("HTTP/") or None,
            "http.request.referrer": _unquote(match["referer"]),
            "user_agent.original": _unquote(match["agent"]),
        }
        out.add(row)
    out.flush()
    return out.written


FORMATS: list[NetFormat] = [
    NetFormat("squid-native", sniff_squid_native, read_squid_native),
    NetFormat("squid-common", sniff_squid_common, read_squid_common),
]
