"""Zeek logs → the network tables: TSV as Zeek's ASCII writer makes it, and JSON lines as its JSON writer
makes it (plus exports that reshape it, with `id_orig_h` names and an `@stream` log name).

A sensor writes millions of rows a day, so rows are never handled one at a time in Python. The file
is read in blocks of whole lines; Arrow's CSV or JSON parser reads each block in a worker thread (Arrow
releases the GIL), Arrow compute renames and converts the columns, and the blocks are handed to the
writer in file order, so row numbering (`seq`, `line`) is the same on every run. A block Arrow cannot
take whole (rows with the wrong number of fields, blank lines, stray carriage returns, bytes that are
not UTF-8, lines that are not JSON) is read again line by line: every problem is reported with its line
and byte offset, and the good rows are kept.

Which table a log goes to comes from its name (`#path`, `_path`, `@stream`), else from its fields, else
from the file name. Logs that only describe connections again (smb_*, kerberos, ssh, rdp, dce_rpc, …)
or the sensor itself (stats, loaded_scripts, capture_loss, packet_filter, …) are recognised and counted
as read but not stored: their connection is already in conn.log, and a second copy in `net_flow` would
double every flow count. They yield no rows and no problem.

Values keep Zeek's own text except where the store needs one shape for every source: `-` (unset) is
null, `(empty)` is an empty string, the TSV escapes (`\\xHH`, a doubled backslash) are undone when the
result is UTF-8 text, sets are joined by ",", booleans are `T`/`F` whichever writer made the log, and
IPv6 addresses are in canonical form.
"""

from __future__ import annotations

import codecs
import os
import re
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.json as pa_json

from turncoat.evidence.base import ReadIssue
from turncoat.evidence.json_reader import MAX_LINE_BYTES
from turncoat.evidence.network.base import NetContext, NetFormat
from turncoat.evidence.network.values import canonical_ip
from turncoat.store.net_writer import ARROW_DATA_ERRORS, epoch_seconds_to_ts, numbers

BLOCK_BYTES = 16 * 1024 * 1024  # one block of whole lines: one parse task, one Parquet part per table
JSON_PARSE_BYTES = 2 * 1024 * 1024  # Arrow's JSON chunk size: the fastest measured (longer lines still parse)
THREADS = max(1, min(2, os.cpu_count() or 1))
IN_FLIGHT = THREADS + 2  # blocks parsed ahead of the writer; bounds memory to a few blocks
OBSERVER = "zeek"
SNIFF_BYTES = 256 * 1024  # what ingest gives a sniffer
UTC_US = pa.timestamp("us", tz="UTC")

# ---------------------------------------------------------------------------------------------------
# which Zeek log goes where


@dataclass(frozen=True)
class _Kind:
    """A stored Zeek log: its table, and each fixed column with the Zeek fields that fill it (first found)."""

    table: str
    fields: tuple[tuple[str, tuple[str, ...]], ...]
    lists: tuple[str, ...] = ()  # fixed columns holding Zeek sets, joined by ","


_ADDRESSING = (
    ("@timestamp", ("ts",)),
    ("source.ip", ("id.orig_h",)),
    ("source.port", ("id.orig_p",)),
    ("destination.ip", ("id.resp_h",)),
    ("destination.port", ("id.resp_p",)),
    ("network.transport", ("proto",)),
)
_TLS = _Kind("net_tls", _ADDRESSING + (
    ("tls.client.server_name", ("server_name",)),
    ("tls.client.ja3", ("ja3",)),
    ("tls.client.ja4", ("ja4",)),
    ("tls.server.x509.subject", ("subject",)),
    ("tls.server.x509.issuer", ("issuer",)),
))
KINDS: dict[str, _Kind] = {
    "conn": _Kind("net_flow", _ADDRESSING + (
        ("network.protocol", ("service",)),
        ("source.bytes", ("orig_bytes",)),
        ("destination.bytes", ("resp_bytes",)),
        ("event.duration", ("duration",)),
        ("event.action", ("conn_state",)),
    )),
    "dns": _Kind("net_dns", _ADDRESSING + (
        ("dns.question.name", ("query",)),
        ("dns.question.type", ("qtype_name",)),
        ("dns.response_code", ("rcode_name",)),
        ("dns.answers", ("answers",)),
    ), lists=("dns.answers",)),
    "http": _Kind("net_http", _ADDRESSING + (
        ("http.request.method", ("method",)),
        ("http.response.status_code", ("status_code",)),
        ("user_agent.original", ("user_agent",)),
        ("http.cookie", ("cookie",)),
    )),
    "ssl": _TLS,
    "quic": _TLS,  # QUIC carries TLS 1.3: its SNI is what a TLS beacon hunt looks for
    "x509": _Kind("net_x509", (
        ("@timestamp", ("ts",)),
        ("x509.subject", ("certificate.subject",)),
        ("x509.issuer", ("certificate.issuer",)),
        ("x509.serial_number", ("certificate.serial",)),
        ("x509.san.dns", ("san.dns",)),
    ), lists=("x509.san.dns",)),
    "files": _Kind("net_files", _ADDRESSING + (
        ("file.name", ("filename",)),
        ("file.mime_type", ("mime_type",)),
        ("file.hash.md5", ("md5",)),
        ("file.hash.sha1", ("sha1",)),
        ("file.hash.sha256", ("sha256",)),
    )),
    # Zeek ≥ 2.6 logs one row per exchange (client_addr, assigned_addr, msg_types); older Bro/Zeek one
    # row per ACK with the connection's 5-tuple and `assigned_ip`.
    "dhcp": _Kind("net_dhcp", (
        ("@timestamp", ("ts",)),
        ("source.ip", ("id.orig_h", "client_addr")),
        ("source.port", ("id.orig_p",)),
        ("destination.ip", ("id.resp_h", "server_addr")),
        ("destination.port", ("id.resp_p",)),
        ("client.ip", ("assigned_addr", "assigned_ip")),
        ("client.mac", ("mac",)),
        ("host.hostname", ("host_name",)),
        ("dhcp.lease_seconds", ("lease_time",)),
        ("event.action", ("msg_types",)),
    ), lists=("event.action",)),
    "notice": _Kind("net_alert", (
        ("@timestamp", ("ts",)),
        ("source.ip", ("id.orig_h", "src")),
        ("source.port", ("id.orig_p",)),
        ("destination.ip", ("id.resp_h", "dst")),
        ("destination.port", ("id.resp_p", "p")),
        ("network.transport", ("proto",)),
        ("rule.name", ("note",)),
        ("event.action", ("actions",)),
    ), lists=("event.action",)),
    "weird": _Kind("net_alert", _ADDRESSING + (("rule.name", ("name",)),)),
}
PATH_ALIASES = {"open_conn": "conn", "open_http": "http", "open_ssl": "ssl"}
_IP_COLUMNS = ("source.ip", "destination.ip", "client.ip")
_RESERVED = {"evidence_id", "seq", "line", "observer.type", "event.dataset"}
# Log names Zeek and common packages write, to find one in a file name (longest first, so `smb_files` is
# not taken for `files`).
_LOG_NAMES = (*KINDS, *PATH_ALIASES, "smb_files", "smb_mapping", "dce_rpc", "known_hosts", "known_services",
              "known_certs", "known_devices", "loaded_scripts", "capture_loss", "packet_filter", "software",
              "kerberos", "ntlm", "rdp", "ssh", "smtp", "ftp", "dpd", "tunnel", "pe", "ocsp", "ntp", "snmp", "sip",
              "mysql", "radius", "socks", "irc", "rfb", "modbus", "dnp3", "stats", "reporter", "signatures",
              "notice_alarm", "intel", "netcontrol", "telemetry", "arp", "app_stats", "conn_long", "weird_stats")
_LOG_IN_NAME = re.compile(r"(?<![a-z])(" + "|".join(sorted(_LOG_NAMES, key=len, reverse=True)) + r")(?![a-z])")


def kind_of(path: str | None) -> _Kind | None:
    """The stored kind of a Zeek log path (`conn`, `open_conn`, …), or None for logs not stored."""
    if not path:
        return None
    return KINDS.get(PATH_ALIASES.get(path, path))


def infer_path(fields: set[str]) -> str | None:
    """The log a set of field names belongs to, for JSON exports and TSV headers without a log name."""
    names = fields | {f.replace("_", ".", 1) for f in fields if f.startswith(("id_", "certificate_", "san_"))}
    if "conn_state" in names or ("history" in names and "orig_bytes" in names):
        return "conn"
    if "query" in names and names & {"qtype_name", "rcode_name", "answers", "trans_id", "qclass"}:
        return "dns"
    if "method" in names and "uri" in names:
        return "http"
    if names & {"certificate.subject", "certificate.serial", "certificate.issuer"}:
        return "x509"
    if names & {"established", "resumed"} or {"server_name", "version", "cipher"} <= names:
        return "ssl"
    if "client_initial_dcid" in names:
        return "quic"
    if "fuid" in names and names & {"mime_type", "analyzers", "source", "depth", "seen_bytes"}:
        return "files"
    if names & {"assigned_addr", "assigned_ip", "msg_types"} or ("mac" in names and "client_addr" in names):
        return "dhcp"
    if "note" in names:
        return "notice"
    if "name" in names and "notice" in names:
        return "weird"
    return None


def path_from_file_name(path: Path) -> str | None:
    """A log name in the file name (`NASHUA_conn.log`, `ssl.16:00:00-17:00:00.log`) — the last resort."""
    match = _LOG_IN_NAME.search(path.name.lower())
    return match.group(1) if match else None


# ---------------------------------------------------------------------------------------------------
# Arrow helpers shared by both formats

def _any(mask: pa.Array | pa.ChunkedArray) -> bool:
    return bool(pc.any(mask).as_py())


# Upper case, brackets or a zone, a leading zero in a group, two or more zero groups not compressed,
# an IPv4-mapped address in hex: not how RFC 5952 (and `canonical_ip`) write an address.
_NOT_RFC5952 = r"[A-F\[\]%]|(^|:)0[0-9a-f]|(^|:)0:0(:|$)|^::ffff:[0-9a-f]{1,4}:[0-9a-f]{1,4}$"


def _canon_ips(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """IPv6 (and bracketed) addresses in canonical form. Zeek already writes them so, so this is
    usually a check; each distinct address is converted once per process."""
    if not pa.types.is_string(column.type):
        return column
    odd = pc.match_substring(column, ":")
    if not _any(odd):
        return column
    # Zeek writes RFC 5952 text; only distinct values breaking one of its rules go through `ipaddress`
    candidates = pc.unique(pc.filter(column, odd))
    suspect = pc.or_(pc.match_substring_regex(candidates, _NOT_RFC5952),
                     pc.and_(pc.equal(pc.count_substring(candidates, ":"), 7), pc.match_substring(candidates, "::")))
    distinct = pc.filter(candidates, suspect).to_pylist()
    changed = {value: canonical_ip(value) or value for value in distinct if value is not None}
    changed = {k: v for k, v in changed.items() if k != v}
    if not changed:
        return column
    keys = pa.array(list(changed), pa.string())
    values = pa.array(list(changed.values()), pa.string())
    return pc.coalesce(pc.take(values, pc.index_in(column, value_set=keys)), column)


def _as_text(column: pa.ChunkedArray | pa.Array, list_sep: str = ",") -> pa.ChunkedArray | pa.Array:
    """Any JSON-parsed column as text the way the TSV writer shows it: sets joined, booleans T/F."""
    typ = column.type
    if pa.types.is_string(typ):
        return column
    if pa.types.is_null(typ):
        return pa.nulls(len(column), pa.string())
    if pa.types.is_large_string(typ) or pa.types.is_dictionary(typ):
        return pc.cast(column, pa.string())
    if pa.types.is_boolean(typ):
        return pc.if_else(column, "T", "F")
    if pa.types.is_list(typ) or pa.types.is_large_list(typ):
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        values = _as_text(column.values, list_sep)
        rebuilt = type(column).from_arrays(column.offsets, values, mask=column.is_null())
        return pc.binary_join(rebuilt, list_sep)
    try:
        return pc.cast(column, pa.string())
    except ARROW_DATA_ERRORS:
        return pa.array([None if v is None else orjson.dumps(v, default=str).decode() for v in column.to_pylist()],
                        pa.string())


_ISO = r"^\d{4}-\d\d-\d\d[T ]\d\d:\d\d(:\d\d(\.\d+)?)?(Z|[+-]\d\d:?\d\d)?$"
_ISO_ZONE = r"(Z|[+-]\d\d:?\d\d)$"


def _zeek_time(column: pa.ChunkedArray | pa.Array) -> pa.ChunkedArray | pa.Array:
    """`ts` as a UTC timestamp: epoch seconds as text (TSV) in one cast, ISO 8601 text (Zeek's JSON writer
    set to ISO times) through Arrow's parser. Numbers, and text the casts refuse, are left to the writer,
    which makes unreadable values null."""
    if not pa.types.is_string(column.type):
        return column
    try:  # the usual case: every value is epoch seconds
        return epoch_seconds_to_ts(pc.cast(column, pa.float64()) if isinstance(column, pa.Array)
                                   else pc.cast(column.combine_chunks(), pa.float64()))
    except ARROW_DATA_ERRORS:
        pass
    iso = pc.match_substring_regex(column, _ISO)
    if not _any(iso):
        return column
    if isinstance(column, pa.ChunkedArray):
        column, iso = column.combine_chunks(), iso.combine_chunks()
    text = pc.if_else(iso, column, pa.scalar(None, pa.string()))
    zoned = pc.match_substring_regex(text, _ISO_ZONE)
    text = pc.if_else(pc.fill_null(zoned, True), text, pc.binary_join_element_wise(text, "Z", ""))
    try:
        moments = pc.cast(pc.cast(text, pa.timestamp("ns", tz="UTC")), UTC_US, safe=False)
    except pa.ArrowInvalid:  # outside the nanosecond range, or a form Arrow does not take
        moments = pa.array([_iso_moment(v) for v in text.to_pylist()], UTC_US)
    rest = epoch_seconds_to_ts(pc.if_else(iso, pa.scalar(None, pa.string()), column))
    return pc.coalesce(moments, rest)


def _iso_moment(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment.astimezone(UTC) if moment.tzinfo else moment.replace(tzinfo=UTC)


def _find(names: dict[str, str], candidate: str) -> str | None:
    """The column holding a Zeek field, under its own name or the `id_orig_h` spelling of exports."""
    for name in (candidate, candidate.replace(".", "_")):
        found = names.get(name.lower())
        if found is not None:
            return found
    return None


def _http_url(data: pa.Table, names: dict[str, str]) -> dict[str, Any]:
    """url.domain: the Host header without its port, else (CONNECT) the host of `host:port`;
    url.full: the absolute URI when the request had one (proxies, CONNECT), else http://host + uri."""
    host_name, uri_name, method_name = (_find(names, n) for n in ("host", "uri", "method"))
    raw_host = _as_text(data.column(host_name)) if host_name else None
    host = pc.utf8_lower(raw_host) if raw_host is not None else None
    uri = _as_text(data.column(uri_name)) if uri_name else None
    if host is None and uri is None:
        return {}

    def without_port(text: Any) -> Any:
        text = pc.replace_substring_regex(text, r"^\[([^\]]*)\](:\d+)?$", r"\1")
        return pc.replace_substring_regex(text, r"^([^:/]*):\d+$", r"\1")

    domain = without_port(host) if host is not None else None
    out: dict[str, Any] = {}
    if uri is not None:
        connect = pc.fill_null(pc.equal(_as_text(data.column(method_name)), "CONNECT"), False) if method_name \
            else None
        if connect is not None:
            from_uri = without_port(pc.utf8_lower(uri))
            domain = from_uri if domain is None else pc.if_else(
                pc.and_(connect, pc.fill_null(pc.equal(domain, ""), True)), from_uri, domain)
        absolute = pc.fill_null(pc.match_substring_regex(uri, r"^[A-Za-z][A-Za-z0-9+.-]*://"), False)
        if connect is not None:
            absolute = pc.or_(absolute, connect)
        if host is not None:
            joined = pc.binary_join_element_wise("http://", raw_host, uri, "")
            out["url.full"] = pc.if_else(pc.or_(absolute, pc.is_null(host)), uri, joined)
        else:
            out["url.full"] = uri
    if domain is not None:
        out["url.domain"] = pc.if_else(pc.equal(domain, ""), pa.scalar(None, pa.string()), domain)
    return out


def _shape(data: pa.Table, kind: _Kind, dataset: str, lines: pa.Array, list_sep: str = ",") -> pa.Table:
    """Zeek columns → the table's fixed columns (renamed, not copied), derived columns, every other
    field under its Zeek name, and `line`, `observer.type`, `event.dataset`."""
    names = {n.lower(): n for n in data.column_names}
    columns: dict[str, Any] = {}
    used: set[str] = set()
    for target, candidates in kind.fields:
        for candidate in candidates:
            name = _find(names, candidate)
            if name is not None and name not in used:
                columns[target] = data.column(name)
                used.add(name)
                break
    if kind.table == "net_http":
        columns.update(_http_url(data, names))
    if kind.table == "net_x509":
        name = _find(names, "fingerprint")
        if name is not None:  # newer Zeek logs a SHA-256 here; the fixed column takes SHA-1 only
            fingerprint = _as_text(data.column(name))
            sha1 = pc.match_substring_regex(fingerprint, r"^[0-9A-Fa-f]{40}$")
            columns["tls.server.hash.sha1"] = pc.if_else(sha1, pc.utf8_lower(fingerprint),
                                                         pa.scalar(None, pa.string()))
    for target in kind.lists:
        if target in columns:
            text = _as_text(columns[target])
            columns[target] = text if list_sep == "," else pc.replace_substring(text, list_sep, ",")
    if "@timestamp" in columns:
        columns["@timestamp"] = _zeek_time(columns["@timestamp"])
    for target in _IP_COLUMNS:
        if target in columns:
            columns[target] = _canon_ips(_as_text(columns[target]))
    taken = {n.lower() for n in columns} | _RESERVED
    for name in data.column_names:
        if name in used:
            continue
        out_name = name if name.lower() not in taken else f"zeek.{name}"
        if out_name.lower() in taken:
            continue
        taken.add(out_name.lower())
        columns[out_name] = _as_text(data.column(name), list_sep)
    rows = data.num_rows
    columns["line"] = lines
    columns["observer.type"] = pa.repeat(pa.scalar(OBSERVER), rows)
    columns["event.dataset"] = pa.repeat(pa.scalar(dataset), rows)
    return pa.Table.from_arrays(list(columns.values()), names=list(columns))


# ---------------------------------------------------------------------------------------------------
# the block pipeline shared by both formats


@dataclass
class _Result:
    """What one block gave: tables to write (in order) and problems to record."""

    tables: list[tuple[str, pa.Table]] = field(default_factory=list)
    issues: list[ReadIssue] = field(default_factory=list)


@dataclass
class _Task:
    """One block to parse in a worker thread; `line`/`offset` place it if it fails as a whole."""

    parse: Callable[..., _Result]
    args: tuple[Any, ...]
    line: int
    offset: int

    def __call__(self) -> _Result:
        try:
            return self.parse(*self.args)
        except Exception as exc:  # noqa: BLE001 - a defect or an Arrow limit in one block must not lose the file
            return _Result(issues=[ReadIssue(f"block could not be read ({type(exc).__name__}: {exc}); its rows "
                                             "were skipped", line=self.line, offset=self.offset)])


def _run(tasks: Iterator[_Task | _Result], ctx: NetContext) -> int:
    """Parse blocks in worker threads, a few ahead; record problems and write tables in file order.

    Row numbers (`seq`) follow the file whatever thread writes: they are taken in order here. A writer
    that says it may be called from several threads (`concurrent_writes`) gets the Parquet encoding done
    in the worker threads too; otherwise this thread writes.
    """
    written = 0
    pending: deque[Future[_Result]] = deque()
    writes: deque[Future[int]] = deque()
    concurrent = bool(getattr(ctx.writer, "concurrent_writes", False))

    with ThreadPoolExecutor(max_workers=THREADS, thread_name_prefix="zeek") as pool:

        def deliver(result: _Result) -> int:
            for issue in result.issues:
                ctx.issues.add(issue)
            if not concurrent:
                return sum(ctx.write(table, data) for table, data in result.tables)
            for table, data in result.tables:
                start = ctx.writer.next_seq(ctx.evidence_id, data.num_rows)
                writes.append(pool.submit(ctx.writer.write, table, data, ctx.evidence_id, seq_start=start))
            done = 0
            while len(writes) > THREADS:
                done += writes.popleft().result()
            return done

        try:
            for task in tasks:
                if isinstance(task, _Result):
                    ready: Future[_Result] = Future()
                    ready.set_result(task)
                    pending.append(ready)
                else:
                    pending.append(pool.submit(task))
                while len(pending) > IN_FLIGHT or (pending and pending[0].done()):
                    written += deliver(pending.popleft().result())
            while pending:
                written += deliver(pending.popleft().result())
            while writes:
                written += writes.popleft().result()
        finally:
            for future in (*pending, *writes):
                future.cancel()
    return written


@dataclass
class _Block:
    """Whole lines of the file: their bytes, the number of the first line, its byte offset, and
    whether the file ends inside the last one (no line end)."""

    data: bytes
    first_line: int
    offset: int
    cut: bool
    count: int = -1  # lines, counted once

    def line_count(self) -> int:
        if self.count < 0:
            self.count = self.data.count(b"\n") + (1 if self.data and not self.data.endswith(b"\n") else 0)
        return self.count

    def one_per_line(self, records: int) -> bool:
        """Whether `records` (rows read plus rows refused) came one per line, so row k is line k.

        Arrow skips empty lines and also ends a line at a bare CR; without any CR, a count equal to
        the number of lines therefore proves that no line was skipped.
        """
        if records != self.line_count():
            return False
        data = self.data
        if data.find(b"\r") < 0:
            return True
        if data.startswith((b"\n", b"\r\n")) or b"\n\n" in data or b"\n\r\n" in data:
            return False
        return data.count(b"\r") == data.count(b"\r\n")

    def lines(self) -> Iterator[tuple[int, int, bytes]]:
        """(line number, byte offset, line without its end) of every line."""
        number, offset = self.first_line, self.offset
        for raw in self.data.split(b"\n"):
            if raw or offset < self.offset + len(self.data):
                yield number, offset, raw[:-1] if raw.endswith(b"\r") else raw
            number += 1
            offset += len(raw) + 1

    def offsets(self, indexes: list[int]) -> list[int]:
        """Byte offsets of the lines with these 0-based indexes (ascending), in one forward walk."""
        out, pos, at = [], 0, 0
        for index in indexes:
            while at < index:
                pos = self.data.index(b"\n", pos) + 1
                at += 1
            out.append(self.offset + pos)
        return out


def _blocks(handle: Any, issues: list[ReadIssue]) -> Iterator[_Block]:
    """Whole-line blocks of about BLOCK_BYTES; a line over MAX_LINE_BYTES is skipped and reported."""
    carry = b""
    offset = 0  # file offset of carry's first byte (or of the next byte read when carry is empty)
    line = 1
    oversize: tuple[int, int] | None = None  # (line, offset) of a line being skipped
    skipped = 0
    data = handle.read(BLOCK_BYTES)
    if data.startswith(codecs.BOM_UTF8):
        data, offset = data[3:], 3
    while True:
        if oversize is not None:
            end = data.find(b"\n")
            if end < 0:
                skipped += len(data)
                offset += len(data)
                if data:
                    data = handle.read(BLOCK_BYTES)
                    continue
            else:
                skipped += end + 1
                offset += end + 1
                data = data[end + 1:]
            issues.append(ReadIssue(f"line longer than {MAX_LINE_BYTES} bytes ({skipped} bytes) skipped",
                                    line=oversize[0], offset=oversize[1]))
            oversize, line = None, line + 1
            if end < 0:
                return
            if not data:
                data = handle.read(BLOCK_BYTES)
                continue
        if not data:
            if carry:
                yield _Block(carry, line, offset, cut=True)
            return
        block = carry + data if carry else data
        cut = block.rfind(b"\n") + 1
        if cut == 0:
            if len(block) > MAX_LINE_BYTES:
                oversize, skipped, carry = (line, offset), len(block), b""
                offset += len(block)
            else:
                carry = block
        else:
            whole, carry = block[:cut], block[cut:]
            lines = whole.count(b"\n")
            yield _Block(whole, line, offset, cut=False, count=lines)
            line += lines
            offset += cut
        data = handle.read(BLOCK_BYTES)


# ---------------------------------------------------------------------------------------------------
# TSV


_ESCAPE = re.compile(rb"\\(\\|x[0-9A-Fa-f]{2})")


def _unescape(text: bytes) -> bytes:
    r"""Zeek's ASCII escapes, left to right: `\xHH` is a byte (`#separator \x09` is a tab), `\\` a backslash."""
    return _ESCAPE.sub(lambda m: b"\\" if m.group(1) == b"\\" else bytes([int(m.group(1)[1:], 16)]), text)


@dataclass(frozen=True)
class _Header:
    """The header lines in force: separator, set separator, empty and unset markers, log name, fields."""

    separator: bytes = b"\t"
    set_separator: str = ","
    empty: str = "(empty)"
    unset: str = "-"
    path: str | None = None
    fields: tuple[str, ...] | None = None
    types: tuple[str, ...] | None = None
    line: int | None = None  # of #fields

    def columns(self) -> list[str]:
        """Field names made unique (case-insensitively, as the store's views bind them) and non-empty."""
        seen: set[str] = set()
        out = []
        for index, name in enumerate(self.fields or ()):
            candidate = name or f"field_{index + 1}"
            base, n = candidate, 2
            while candidate.lower() in seen:
                candidate = f"{base}_{n}"
                n += 1
            seen.add(candidate.lower())
            out.append(candidate)
        return out


def sniff_tsv(head: bytes) -> bool:
    """`#separator` on the first line, then only header lines down to a `#fields` line naming fields."""
    head = head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t")
    if not head.startswith(b"#separator") or head[10:11] not in (b" ", b"\t"):
        return False
    lines = head.split(b"\n", 64)
    separator = _unescape(lines[0][11:].rstrip(b"\r"))
    if not separator or len(lines) < 2:
        return False
    whole = len(lines) <= 64 and len(head) < SNIFF_BYTES  # the head is the whole file: its last line is complete
    for raw in lines[1:] if whole else lines[1:-1]:
        raw = raw.rstrip(b"\r")
        if not raw.startswith(b"#"):
            return False
        name, _, value = raw.partition(separator)
        if name == b"#fields":
            names = value.split(separator)
            return bool(value) and all(n and len(n) < 200 and not n.isspace() for n in names)
        if not re.fullmatch(rb"#[a-z_]{1,32}", name):
            return False
    return False


def read_tsv(path: Path, ctx: NetContext) -> int:
    """Read a Zeek TSV log: every header segment with its own columns, rows to their table."""
    return _run(_tsv_tasks(path), ctx)


def _tsv_tasks(path: Path) -> Iterator[_Task | _Result]:
    header = _Header()
    guessed = path_from_file_name(path)
    with path.open("rb") as handle:
        issues: list[ReadIssue] = []
        for block in _blocks(handle, issues):
            if issues:
                yield _Result(issues=issues[:])
                issues.clear()
            data = block.data
            pos, line, size = 0, block.first_line, len(data)
            if block.first_line == 1:  # blanks before the first header line (hand-edited logs) are tolerated
                pos = len(data) - len(data.lstrip(b" \t"))
            while pos < size:
                if data[pos] == 0x23:  # '#': a header line
                    end = data.find(b"\n", pos)
                    end = size if end < 0 else end
                    header, problem = _directive(data[pos:end].rstrip(b"\r"), header, line, block.offset + pos)
                    if problem is not None:
                        yield _Result(issues=[problem])
                    pos, line = end + 1, line + 1
                    continue
                following = _header_line(data, pos)
                stop = size if following < 0 else following
                run = _Block(data[pos:stop], line, block.offset + pos, cut=block.cut and stop == size,
                             count=block.count if pos == 0 and stop == size else -1)
                line += run.line_count()
                pos = stop
                task = _tsv_task(run, header, guessed)
                if task is not None:
                    yield task
        if issues:
            yield _Result(issues=issues)


def _header_line(data: bytes, pos: int) -> int:
    """Where the next line starting with `#` begins, or -1. Looks for `#` alone (a fast byte scan; the
    two-byte `\n#` search is several times slower on lines this short)."""
    while True:
        hit = data.find(b"#", pos)
        if hit <= 0 or data[hit - 1] == 0x0A:
            return hit
        pos = hit + 1


def _directive(raw: bytes, header: _Header, line: int, offset: int) -> tuple[_Header, ReadIssue | None]:
    if raw.startswith(b"#separator"):
        separator = _unescape(raw[11:]) if raw[10:11] in (b" ", b"\t") else b""
        if not separator:
            return header, ReadIssue("unreadable #separator line; the previous separator stays", line=line,
                                     offset=offset)
        return _Header(separator=separator), None  # a new header begins
    name, _, value = raw.partition(header.separator)
    text = value.decode("utf-8", errors="replace")
    if name == b"#fields":
        fields = tuple(part.decode("utf-8", errors="replace") for part in value.split(header.separator))
        return replace(header, fields=fields, line=line), None
    if name == b"#types":
        return replace(header, types=tuple(part.decode("utf-8", errors="replace") for part in
                                           value.split(header.separator))), None
    if name == b"#path":
        return replace(header, path=text.strip()), None
    if name == b"#set_separator":
        return replace(header, set_separator=_unescape(value).decode("utf-8", errors="replace")), None
    if name == b"#empty_field":
        return replace(header, empty=text), None
    if name == b"#unset_field":
        return replace(header, unset=text), None
    return header, None  # #open, #close, and comments


def _tsv_task(run: _Block, header: _Header, guessed: str | None) -> _Task | _Result | None:
    if run.data.isspace():
        return None
    if header.fields is None:
        return _Result(issues=[ReadIssue(f"{run.line_count()} data lines before any #fields header; skipped",
                                         line=run.first_line, offset=run.offset)])
    path = header.path or infer_path(set(header.fields)) or guessed
    kind = kind_of(path)
    if kind is None:
        return None  # a log the store does not keep (see the module docstring)
    return _Task(_parse_tsv, (run, header, kind, f"zeek.{path}"), run.first_line, run.offset)


def _parse_tsv(run: _Block, header: _Header, kind: _Kind, dataset: str) -> _Result:
    columns = header.columns()
    result = _Result()
    table = None
    separator = header.separator
    if len(separator) == 1 and separator[0] < 0x80 and separator not in (b"\n", b"\r") and _utf8(run.data):
        invalid: list[tuple[int, int]] = []

        def bad_row(row: Any) -> str:
            invalid.append((row.number or 0, row.actual_columns))
            return "skip"

        try:
            table = pa_csv.read_csv(
                pa.py_buffer(run.data),
                read_options=pa_csv.ReadOptions(column_names=columns, use_threads=False, block_size=1 << 20),
                parse_options=pa_csv.ParseOptions(delimiter=separator.decode("ascii"), quote_char=False,
                                                  escape_char=False, double_quote=False, newlines_in_values=False,
                                                  ignore_empty_lines=True, invalid_row_handler=bad_row),
                convert_options=pa_csv.ConvertOptions(column_types=dict.fromkeys(columns, pa.string()),
                                                      null_values=[header.unset], strings_can_be_null=True,
                                                      quoted_strings_can_be_null=False, check_utf8=False))
        except (*ARROW_DATA_ERRORS, UnicodeError):
            table = None
        total = run.line_count()
        if table is not None and run.one_per_line(table.num_rows + len(invalid)) and all(n > 0 for n, _ in invalid):
            bad = {n - 1 for n, _ in invalid}
            if bad:
                lines = pa.array([run.first_line + i for i in range(total) if i not in bad], pa.int64())
                offsets = run.offsets([n - 1 for n, _ in invalid])
                for (number, actual), offset in zip(invalid, offsets):
                    result.issues.append(_count_issue(actual, len(columns), header, run, number - 1, offset))
            else:
                lines = numbers(run.first_line, table.num_rows)
        else:
            table = None
    if table is None:
        table, lines = _tsv_by_line(run, header, columns, result.issues)
    if table.num_rows:
        table = _tsv_values(table, header, run.data)
        result.tables.append((kind.table, _shape(table, kind, dataset, lines, header.set_separator)))
    return result


def _utf8(data: bytes) -> bool:
    """Whether the block is valid UTF-8 (checked once by Arrow, so the CSV parser need not check each value,
    and rows it refuses can always be shown as text)."""
    if data.isascii():
        return True
    offsets = pa.array([0, len(data)], pa.int64()).buffers()[1]
    whole = pa.Array.from_buffers(pa.large_binary(), 1, [None, offsets, pa.py_buffer(data)])
    try:
        whole.cast(pa.large_string())
    except pa.ArrowInvalid:
        return False
    return True


def _count_issue(actual: int, expected: int, header: _Header, run: _Block, index: int, offset: int) -> ReadIssue:
    line = run.first_line + index
    last = run.cut and index == run.line_count() - 1
    return ReadIssue(f"row has {actual} fields, the #fields header (line {header.line}) has {expected}; "
                     + ("the file ends inside this row (cut short); " if last else "") + "row skipped",
                     line=line, offset=offset)


def _tsv_by_line(run: _Block, header: _Header, columns: list[str],
                 issues: list[ReadIssue]) -> tuple[pa.Table, pa.Array]:
    """The slow, exact path: line by line, for blocks Arrow could not take whole."""
    width = len(columns)
    values: list[list[str | None]] = [[] for _ in columns]
    lines: list[int] = []
    for index, (number, offset, raw) in enumerate(run.lines()):
        if not raw.strip():
            continue
        parts = raw.split(header.separator)
        if len(parts) != width:
            issues.append(_count_issue(len(parts), width, header, run, index, offset))
            continue
        try:
            fields = [part.decode("utf-8") for part in parts]
        except UnicodeDecodeError:
            fields = [part.decode("cp1252", errors="replace") for part in parts]
            issues.append(ReadIssue("row is not UTF-8; read as Windows-1252", line=number, offset=offset))
        lines.append(number)
        for column, value in zip(values, fields):
            column.append(None if value == header.unset else value)
    table = pa.Table.from_arrays([pa.array(v, pa.string()) for v in values], names=columns)
    return table, pa.array(lines, pa.int64())


def _tsv_values(table: pa.Table, header: _Header, raw: bytes) -> pa.Table:
    """`(empty)` → "", escapes decoded; columns are looked at only while the block's bytes say some
    value still holds one."""
    marker = header.empty.encode("utf-8")
    empties = bool(marker) and raw.find(marker[:1]) >= 0 and marker in raw
    escapes = raw.find(b"\\") >= 0
    if not empties and not escapes:
        return table
    types = header.types if header.types and len(header.types) == table.num_columns else None
    columns = list(table.columns)
    for index, column in enumerate(columns):
        if types is not None and not types[index].startswith(_TEXT_TYPES):
            continue  # numbers, addresses, times: never empty, never escaped
        if empties:
            found = pc.equal(column, header.empty)
            if _any(found):
                column = pc.if_else(found, "", column)
        if escapes:
            found = pc.match_substring(column, "\\")
            if _any(found):
                column = _decode_escapes(column, found)
        columns[index] = column
    return pa.Table.from_arrays(columns, names=table.column_names)


_TEXT_TYPES = ("string", "set", "vector", "table", "enum", "pattern", "func", "file", "opaque", "record", "any")


def _decode_escapes(column: pa.ChunkedArray, found: pa.ChunkedArray) -> pa.Array:
    column, found = column.combine_chunks(), pc.fill_null(found, False).combine_chunks()
    decoded = []
    for value in pc.filter(column, found).to_pylist():
        raw = _unescape(value.encode("utf-8"))
        try:
            decoded.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            decoded.append(value)  # not text once decoded (binary payload): kept as Zeek wrote it
    return pc.replace_with_mask(column, found, pa.array(decoded, pa.string()))


# ---------------------------------------------------------------------------------------------------
# JSON

_WINDOWS_KEYS = {"EventID", "EventId", "Channel", "winlog", "Event", "System", "EventRecordID", "event_id"}
# Field names only Zeek uses; a JSON line with `ts` and one of them is a Zeek log.
_ZEEK_KEYS = {"uid", "uids", "fuid", "id.orig_h", "id_orig_h", "certificate.subject", "fingerprint", "conn_uids",
              "tx_hosts", "note", "software_type", "ts_delta", "pkts_proc", "percent_lost"}
_PATH_KEYS = ("_path", "@stream")


def _looks_zeek(doc: Any) -> bool:
    if not isinstance(doc, dict) or "event_type" in doc or _WINDOWS_KEYS & doc.keys():
        return False
    if "ts" not in doc:
        return False
    if any(isinstance(doc.get(k), str) and doc[k] for k in _PATH_KEYS):
        return True
    return bool(_ZEEK_KEYS & doc.keys())


def sniff_json(head: bytes) -> bool:
    """The first line is a JSON object as Zeek writes one: `ts` and a log name or a Zeek field (`uid`,
    `id.orig_h`, `fuid`, …); Suricata's `event_type` and Windows event fields rule it out."""
    text = head.removeprefix(codecs.BOM_UTF8).lstrip(b" \t\r\n")
    if not text.startswith(b"{"):
        return False
    first, newline, _ = text.partition(b"\n")
    if not newline and len(head) >= SNIFF_BYTES:
        return False  # first line longer than the head
    try:
        doc = orjson.loads(first)
    except orjson.JSONDecodeError:
        return False
    return _looks_zeek(doc)


def read_json(path: Path, ctx: NetContext) -> int:
    """Read Zeek JSON lines; each row goes to the table of its log (`_path`/`@stream`, else inferred)."""
    return _run(_json_tasks(path), ctx)


def _json_tasks(path: Path) -> Iterator[_Task | _Result]:
    guessed = path_from_file_name(path)
    with path.open("rb") as handle:
        issues: list[ReadIssue] = []
        for block in _blocks(handle, issues):
            if issues:
                yield _Result(issues=issues[:])
                issues.clear()

            yield _Task(_parse_json, (block, guessed), block.first_line, block.offset)
        if issues:
            yield _Result(issues=issues)


def _parse_json(block: _Block, guessed: str | None) -> _Result:
    result = _Result()
    try:
        table = _arrow_json(block.data)
        lines = _json_lines(block, table.num_rows)
    except ARROW_DATA_ERRORS:
        table, lines = _json_by_line(block, result.issues)
    if table is None or not table.num_rows:
        return result
    while any(pa.types.is_struct(f.type) for f in table.schema):
        table = table.flatten()
    path_name = next((n for n in _PATH_KEYS if n in table.column_names), None)
    fallback = infer_path(set(table.column_names)) or guessed
    if path_name is None:
        groups: list[tuple[str | None, pa.Table, pa.Array]] = [(fallback, table, lines)]
    else:
        paths = _as_text(table.column(path_name))
        groups = []
        for value in pc.unique(paths).to_pylist():
            mask = pc.is_null(paths) if value is None else pc.fill_null(pc.equal(paths, value), False)
            chosen = table.filter(mask)
            groups.append((value or fallback, chosen, pc.filter(lines, mask)))
    for log, part, part_lines in groups:
        kind = kind_of(log)
        if kind is not None and part.num_rows:
            result.tables.append((kind.table, _shape(part, kind, f"zeek.{log}", part_lines)))
    return result


def _arrow_json(data: bytes) -> pa.Table:
    return pa_json.read_json(
        pa.py_buffer(data),
        read_options=pa_json.ReadOptions(use_threads=False, block_size=JSON_PARSE_BYTES),
        parse_options=pa_json.ParseOptions(newlines_in_values=False, unexpected_field_behavior="infer"))


def _json_lines(block: _Block, rows: int) -> pa.Array:
    """Line numbers of the rows Arrow read (it skips blank lines)."""
    if block.one_per_line(rows):
        return numbers(block.first_line, rows)
    return pa.array([number for number, _, raw in block.lines() if raw.strip()], pa.int64())


def _json_by_line(block: _Block, issues: list[ReadIssue]) -> tuple[pa.Table | None, pa.Array]:
    """The slow, exact path: find the lines that are not JSON objects, report them, read the rest."""
    good: list[bytes] = []
    numbers: list[int] = []
    docs: list[dict[str, Any]] = []
    last = block.first_line + block.line_count() - 1
    for number, offset, raw in block.lines():
        text = raw.strip()
        if not text:
            continue
        try:
            doc = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            try:
                doc = orjson.loads(text.decode("cp1252", errors="replace").encode("utf-8"))
                text = orjson.dumps(doc)
                issues.append(ReadIssue("line is not UTF-8; read as Windows-1252", line=number, offset=offset))
            except orjson.JSONDecodeError:
                message = ("the file ends inside this line (cut short); skipped" if block.cut and number == last
                           else f"not JSON ({str(exc)[:120]}); line skipped")
                issues.append(ReadIssue(message, line=number, offset=offset))
                continue
        if not isinstance(doc, dict):
            issues.append(ReadIssue(f"JSON {type(doc).__name__}, not an object; line skipped", line=number,
                                    offset=offset))
            continue
        good.append(text)
        numbers.append(number)
        docs.append(doc)
    if not good:
        return None, pa.array([], pa.int64())
    lines = pa.array(numbers, pa.int64())
    try:
        return _arrow_json(b"\n".join(good)), lines
    except ARROW_DATA_ERRORS:
        pass
    # fields whose JSON type changes from row to row: every value as text
    flat = [_flatten(doc) for doc in docs]
    keys: dict[str, None] = {}
    for doc in flat:
        keys.update(dict.fromkeys(doc))
    arrays = [pa.array([_json_text(doc.get(key)) for doc in flat], pa.string()) for key in keys]
    return pa.Table.from_arrays(arrays, names=list(keys)), lines


def _flatten(doc: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in doc.items():
        if isinstance(value, dict):
            out.update(_flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _json_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return ",".join(t for t in (_json_text(v) for v in value) if t is not None)
    if isinstance(value, (int, float)):
        return repr(value)
    return orjson.dumps(value).decode()


FORMATS: list[NetFormat] = [
    NetFormat("zeek-tsv", sniff_tsv, read_tsv),
    NetFormat("zeek-json", sniff_json, read_json),
]
