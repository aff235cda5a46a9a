"""Suricata EVE JSON (`eve.json`) read into the network tables: alerts, DNS, HTTP, TLS, flows and
files — the records that show a host talking to the 3CX actor's infrastructure, or a signature
for it firing.

EVE is one JSON object per line with `event_type` and `timestamp` (with its UTC offset, e.g.
`2023-03-29T10:00:00.123456+0200`; a stamp without one, from Suricata before 3.x, is read in
`ctx.tz` — a flow's start and end too — and reported once). Other event types (stats, anomaly,
netflow, smb …) are counted in `EveReader.skipped` and not stored. `flow_id`, `community_id`,
`in_iface` and every other field of the record are kept beside the fixed columns, nested fields
flattened with dots.

Direction. The network tables want the client in `source.*`. Suricata writes app-layer records
(http, tls, dns queries, flows) in flow direction, but alerts, DNS answers and file records in the
direction of the packet that produced them. So: an alert's own `flow` block (Suricata 7) gives the
flow's direction; else `direction: to_client` (Suricata 7) swaps; else DNS answers are swapped; else
a file record from a well-known port (< 1024) to a high one is taken as server → client and swapped.

DNS. Suricata logs a query and its answer as separate records: v1 one record per answer RR, v2 one
answer record with `answers` (detailed) or `grouped`, v3 (Suricata 8) `request`/`response` with
`queries`/`answers` lists. They are paired per flow and DNS id within `PAIR_WINDOW` of log time, so a
row carries the question, the response code and all answers; an answer whose query was not logged
becomes a row of its own.
"""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from turncoat.evidence.base import ReadIssue
from turncoat.evidence.network.base import NetContext, NetFormat
from turncoat.evidence.network.dns_servers import Pending, dns_name
from turncoat.evidence.network.text import head_lines, text_lines
from turncoat.evidence.network.values import LocalClock, canonical_ip, parse_iso
from turncoat.store.net_writer import NetRows

_STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")
DNS_PORTS = {53, 853, 5353}
MAX_EXTRA_DEPTH = 3  # nested fields deeper than this are kept as JSON text
FLUSH_ROWS = 16_384  # EVE rows are wide (every field kept): written in smaller batches to bound memory
_COMMON = {"timestamp", "event_type", "src_ip", "src_port", "dest_ip", "dest_port", "proto"}


class _SmallBatches(NetRows):
    """NetRows writing every FLUSH_ROWS rows."""

    def add(self, row: dict[str, Any]) -> None:
        super().add(row)
        if len(self.buffer) >= FLUSH_ROWS:
            self.flush()


def _text(value: Any) -> str | None:
    """An extra field's value as text: JSON spelling for booleans and containers."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return orjson.dumps(value).decode()
    return str(value)


def _flatten(doc: dict[str, Any], skip: set[str], prefix: str = "", depth: int = 1) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for key, value in doc.items():
        name = prefix + key
        if name in skip:
            continue
        if isinstance(value, dict) and depth < MAX_EXTRA_DEPTH:
            out.update(_flatten(value, skip, name + ".", depth + 1))
        else:
            out[name] = _text(value)
    return out


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _sub(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


class EveReader:
    """One eve.json file; `skipped` counts the records of types not stored."""

    def __init__(self, path: Path, ctx: NetContext) -> None:
        self.path = path
        self.ctx = ctx
        self.skipped: Counter[str] = Counter()
        self.outs: dict[str, NetRows] = {}
        self.dns_pending: Pending | None = None
        self.by_tx: dict[Any, list[Any]] = {}  # (flow, DNS id) → keys of pending DNS rows
        self.clock = LocalClock(ctx.tz, ctx.issues)
        self.zone_warned = False

    def out(self, table: str, kind: str) -> NetRows:
        if table not in self.outs:
            self.outs[table] = _SmallBatches(self.ctx.writer, table, self.ctx.evidence_id, "suricata",
                                             f"suricata.{kind}")
        return self.outs[table]

    def read(self) -> int:
        handlers = {"alert": self._alert, "dns": self._dns, "http": self._http, "tls": self._tls,
                    "flow": self._flow, "fileinfo": self._fileinfo}
        for number, offset, text in text_lines(self.path, self.ctx.issues):
            stripped = text.strip()
            if not stripped:
                continue
            try:
                doc = orjson.loads(stripped)
            except orjson.JSONDecodeError as exc:
                what = "truncated JSON record" if stripped.startswith("{") and not stripped.endswith("}") else \
                    "not JSON"
                self.ctx.issues.add(ReadIssue(f"{what}: {str(exc)[:120]}", line=number, offset=offset))
                continue
            if not isinstance(doc, dict) or not isinstance(doc.get("event_type"), str):
                self.ctx.issues.add(ReadIssue("JSON line is not an EVE record (no event_type)", line=number,
                                              offset=offset))
                continue
            kind = doc["event_type"]
            handler = handlers.get(kind)
            if handler is None:
                self.skipped[kind] += 1
                continue
            stamp = self._stamp(doc.get("timestamp"), number, offset)
            try:
                handler(doc, stamp, number)
            except (TypeError, ValueError, AttributeError, KeyError) as exc:
                self.ctx.issues.add(ReadIssue(f"{kind} record not understood: {exc}", line=number, offset=offset))
        if self.dns_pending is not None:
            self.dns_pending.close()
        written = 0
        for rows in self.outs.values():
            rows.flush()
            written += rows.written
        return written

    # --- common parts -------------------------------------------------------------------------

    def _stamp(self, value: Any, number: int, offset: int) -> datetime | None:
        """A record's time as UTC; one without an offset (Suricata before 3.x) is local time of
        `ctx.tz`, and that is said once per file."""
        if not isinstance(value, str):
            self.ctx.issues.add(ReadIssue("record has no timestamp", line=number, offset=offset))
            return None
        try:
            stamp = datetime.fromisoformat(value)
            if stamp.tzinfo is not None:
                return stamp.astimezone(UTC)
            if not self.zone_warned:
                self.zone_warned = True
                self.ctx.issues.add(ReadIssue(f"timestamps carry no UTC offset; read in {self.ctx.tz} "
                                              "(reported once per file)", line=number, offset=offset))
            return self.clock.utc(stamp, number, offset)
        except (ValueError, OverflowError):  # not ISO 8601, or out of range once moved to UTC
            self.ctx.issues.add(ReadIssue(f"timestamp {value[:40]!r} not understood", line=number, offset=offset))
            return None

    @staticmethod
    def _endpoints(doc: dict[str, Any], swap_default: bool) -> dict[str, Any]:
        """Client side in `source.*` (see the module docstring for how direction is decided)."""
        flow = _sub(doc, "flow")
        if flow.get("src_ip") and doc.get("event_type") == "alert":
            src, sport, dst, dport = flow.get("src_ip"), flow.get("src_port"), flow.get("dest_ip"), flow.get("dest_port")
        else:
            src, sport, dst, dport = doc.get("src_ip"), doc.get("src_port"), doc.get("dest_ip"), doc.get("dest_port")
            direction = doc.get("direction")
            swap = direction == "to_client" if direction in ("to_client", "to_server") else swap_default
            if swap:
                src, sport, dst, dport = dst, dport, src, sport
        proto = doc.get("proto")
        return {
            "source.ip": canonical_ip(src), "source.port": _int(sport), "destination.ip": canonical_ip(dst),
            "destination.port": _int(dport),
            "network.transport": proto.lower() if isinstance(proto, str) else _text(proto),
        }

    def _base(self, doc: dict[str, Any], stamp: datetime | None, number: int, swap_default: bool,
              consumed: set[str]) -> dict[str, Any]:
        row: dict[str, Any] = {"line": number, "@timestamp": stamp}
        row.update(self._endpoints(doc, swap_default))
        row.update(_flatten(doc, _COMMON | consumed))
        return row

    # --- event types --------------------------------------------------------------------------

    def _alert(self, doc: dict[str, Any], stamp: datetime | None, number: int) -> None:
        alert = _sub(doc, "alert")
        row = self._base(doc, stamp, number, False, {"alert.signature", "alert.signature_id", "alert.severity",
                                                     "alert.action"})
        row["rule.name"] = _text(alert.get("signature"))
        row["rule.id"] = _text(alert.get("signature_id"))
        row["event.severity"] = _int(alert.get("severity"))
        row["event.action"] = _text(alert.get("action"))
        self.out("net_alert", "alert").add(row)

    def _http(self, doc: dict[str, Any], stamp: datetime | None, number: int) -> None:
        http = _sub(doc, "http")
        row = self._base(doc, stamp, number, False, {"http.hostname", "http.http_method", "http.status",
                                                     "http.http_user_agent", "http.cookie"})
        host = http.get("hostname")
        url = http.get("url")
        row["url.domain"] = _text(host)
        row["url.full"] = _full_url(host, http.get("http_port"), url)
        row["http.request.method"] = _text(http.get("http_method"))
        row["http.response.status_code"] = _int(http.get("status"))
        row["user_agent.original"] = _text(http.get("http_user_agent"))
        row["http.cookie"] = _text(http.get("cookie"))
        self.out("net_http", "http").add(row)

    def _tls(self, doc: dict[str, Any], stamp: datetime | None, number: int) -> None:
        tls = _sub(doc, "tls")
        ja3 = _sub(tls, "ja3")
        ja4 = tls.get("ja4")
        row = self._base(doc, stamp, number, False, {"tls.sni", "tls.subject", "tls.issuerdn", "tls.serial",
                                                     "tls.ja3.hash", "tls.ja4"})
        row["tls.client.server_name"] = _text(tls.get("sni"))
        row["tls.client.ja3"] = _text(ja3.get("hash"))
        row["tls.client.ja4"] = _text(ja4.get("hash") if isinstance(ja4, dict) else ja4)
        row["tls.server.x509.subject"] = _text(tls.get("subject"))
        row["tls.server.x509.issuer"] = _text(tls.get("issuerdn"))
        row["tls.server.x509.serial_number"] = _text(tls.get("serial"))
        self.out("net_tls", "tls").add(row)

    def _flow(self, doc: dict[str, Any], stamp: datetime | None, number: int) -> None:
        flow = _sub(doc, "flow")
        row = self._base(doc, stamp, number, False, {"app_proto", "flow.bytes_toserver", "flow.bytes_toclient",
                                                     "flow.state"})
        start = self._flow_time(flow.get("start"), number)
        end = self._flow_time(flow.get("end"), number)
        if start is not None:
            row["@timestamp"] = start  # a flow is placed at its beginning, as Zeek's conn.log does
        row["network.protocol"] = _text(doc.get("app_proto"))
        row["source.bytes"] = _int(flow.get("bytes_toserver"))
        row["destination.bytes"] = _int(flow.get("bytes_toclient"))
        row["event.duration"] = (end - start).total_seconds() if start and end else \
            (float(flow["age"]) if isinstance(flow.get("age"), (int, float)) else None)
        row["event.action"] = _text(flow.get("state"))
        self.out("net_flow", "flow").add(row)

    def _flow_time(self, value: Any, number: int) -> datetime | None:
        """A flow's start or end, read like the record's own time (local when it has no offset)."""
        if not isinstance(value, str):
            return None
        try:
            return parse_iso(value, self.clock, number)
        except ValueError:
            return None

    def _fileinfo(self, doc: dict[str, Any], stamp: datetime | None, number: int) -> None:
        info = _sub(doc, "fileinfo")
        sport, dport = _int(doc.get("src_port")), _int(doc.get("dest_port"))
        from_server = sport is not None and dport is not None and sport < 1024 <= dport
        row = self._base(doc, stamp, number, from_server, {"fileinfo.filename", "fileinfo.md5", "fileinfo.sha1",
                                                           "fileinfo.sha256", "fileinfo.mimetype"})
        row["file.name"] = _text(info.get("filename"))
        row["file.mime_type"] = _text(info.get("mimetype"))
        row["file.hash.md5"] = _text(info.get("md5"))
        row["file.hash.sha1"] = _text(info.get("sha1"))
        row["file.hash.sha256"] = _text(info.get("sha256"))
        self.out("net_files", "fileinfo").add(row)

    # --- DNS ----------------------------------------------------------------------------------

    def _dns(self, doc: dict[str, Any], stamp: datetime | None, number: int) -> None:
        dns = _sub(doc, "dns")
        kind = dns.get("type")
        if self.dns_pending is None:
            self.dns_pending = Pending(self.out("net_dns", "dns"))
        self.dns_pending.expire(stamp)
        self._forget_expired()
        is_answer = kind in ("answer", "response")
        swap = is_answer and _from_dns_server(doc)
        flow_key = doc.get("flow_id")
        if flow_key is None:
            ends = self._endpoints(doc, swap)
            flow_key = (ends["source.ip"], ends["source.port"], ends["destination.ip"], ends["destination.port"])
        tx = (flow_key, dns.get("id"))
        if kind in ("query", "request"):
            for question in self._questions(dns):
                row = self._base(doc, stamp, number, False, {"dns.rrname", "dns.rrtype", "dns.queries", "dns.type"})
                row["dns.question.name"] = question[0]
                row["dns.question.type"] = question[1]
                row["suricata.dns_records"] = "query"
                key = (tx, number, question[0].lower() if question[0] else None)
                self.dns_pending.add(key, row)
                self.by_tx.setdefault(tx, []).append(key)
            return
        if not is_answer:
            self.skipped[f"dns.{kind}"] += 1
            return
        row = None
        for key in reversed(self.by_tx.get(tx, [])):
            row = self.dns_pending.get(key)
            if row is not None:
                break
        if row is None:
            row = self._base(doc, stamp, number, swap, {"dns.rrname", "dns.rrtype", "dns.rdata", "dns.answers",
                                                        "dns.grouped", "dns.queries", "dns.rcode", "dns.type"})
            questions = self._questions(dns)
            row["dns.question.name"], row["dns.question.type"] = questions[0] if questions else (None, None)
            row["suricata.dns_records"] = "answer"
            key = (tx, number, None)
            self.dns_pending.add(key, row)
            self.by_tx.setdefault(tx, []).append(key)
        elif row.get("suricata.dns_records") == "query":
            row["suricata.dns_records"] = "query+answer"
        if dns.get("rcode") is not None:
            row["dns.response_code"] = _text(dns.get("rcode"))
        answers = row.setdefault("_answers", [])
        answers.extend(self._answers(dns))

    def _forget_expired(self) -> None:
        """Drop index entries of rows already written, so the index stays as small as the window."""
        if self.dns_pending is None or len(self.by_tx) < 4 * len(self.dns_pending.rows) + 1024:
            return
        live = self.dns_pending.rows
        self.by_tx = {tx: kept for tx, keys in self.by_tx.items() if (kept := [k for k in keys if k in live])}

    @staticmethod
    def _questions(dns: dict[str, Any]) -> list[tuple[str | None, str | None]]:
        queries = dns.get("queries")
        if isinstance(queries, list) and queries:  # EVE DNS v3 (Suricata 8)
            return [(dns_name(q["rrname"]) if isinstance(q.get("rrname"), str) else None, _text(q.get("rrtype")))
                    for q in queries if isinstance(q, dict)]
        name = dns_name(dns["rrname"]) if isinstance(dns.get("rrname"), str) else None
        if dns.get("type") == "answer" and not dns.get("version") and dns.get("rdata") is not None:
            return [(name, None)]  # a v1 answer record: its owner name and type are the RR's, not the question's
        return [(name, _text(dns.get("rrtype")))]

    @staticmethod
    def _answers(dns: dict[str, Any]) -> list[str]:
        found: list[str] = []
        answers = dns.get("answers")
        if isinstance(answers, list):  # v2 detailed, v3
            for answer in answers:
                if isinstance(answer, dict) and answer.get("rdata") is not None:
                    found.append(_answer_text(answer["rdata"]))
        grouped = dns.get("grouped")
        if isinstance(grouped, dict):  # v2 grouped
            for values in grouped.values():
                if isinstance(values, list):
                    found.extend(_answer_text(v) for v in values if isinstance(v, (str, int, float)))
        if dns.get("rdata") is not None and answers is None and grouped is None:  # v1: one RR per record
            found.append(_answer_text(dns["rdata"]))
        return found


def _from_dns_server(doc: dict[str, Any]) -> bool:
    """Whether an answer record runs server → client: written in packet direction by Suricata up to
    7; the DNS port tells when it is on one side only."""
    sport, dport = _int(doc.get("src_port")), _int(doc.get("dest_port"))
    return not (dport in DNS_PORTS and sport not in DNS_PORTS)


def _answer_text(value: Any) -> str:
    text = str(value)
    return canonical_ip(text) or text  # an answer that is not an address is kept as written


def _full_url(host: Any, port: Any, url: Any) -> str | None:
    """The URL as the client meant it: Suricata logs the Host header and the request target apart."""
    if not isinstance(url, str):
        return None
    if "://" in url[:12] or not isinstance(host, str) or not host or not url.startswith("/"):
        return url  # absolute form (proxy requests) or nothing to join
    return f"http://{host}{f':{port}' if isinstance(port, int) and port != 80 else ''}{url}"


def read_suricata_eve(path: Path, ctx: NetContext) -> int:
    """Rows written from one eve.json file."""
    return EveReader(path, ctx).read()


def sniff_suricata_eve(head: bytes) -> bool:
    """The first line is a JSON object with a string `event_type` and an ISO `timestamp`."""
    lines = [line for line in head_lines(head, 5) if line.strip()]
    if not lines:
        return False
    try:
        doc = orjson.loads(lines[0])
    except orjson.JSONDecodeError:
        return False
    if not isinstance(doc, dict):
        return False
    event_type, stamp = doc.get("event_type"), doc.get("timestamp")
    return isinstance(event_type, str) and isinstance(stamp, str) and bool(_STAMP.match(stamp))


FORMATS: list[NetFormat] = [NetFormat("suricata-eve", sniff_suricata_eve, read_suricata_eve, local_time=True)]
