"""The office's network log files, written from the spooled records in time order.

Each source writes its own format as the real product does, because the readers must be tested on
exactly that: Zeek 6 TSV logs (conn, dns, ssl, dhcp) with their `#` header and `#close` footer; the
domain controller's Windows DNS Server debug log, in the server's local time with US-locale dates,
the `(3)www(6)google(3)com(0)` name encoding and its forwarding to public resolvers on a cache miss;
and the access.log of a Squid 5 that inspects TLS (SSL bump), in Squid's built-in `combined` logformat
(local time, referer and user agent): a bumped connection is its CONNECT, logged once the client's TLS
is terminated, then one line per request inside it with the full `https://` URL; a spliced one (the
domains of `network.PROXY_SPLICED`) is one CONNECT tunnel line, written (and stamped) when it closes.
No standard Squid format logs request cookies, so the implant's `__tutma` cookie is not in the log.
"""

from __future__ import annotations

import hashlib
import heapq
import random
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from .actors import DNS_SUFFIX
from .clock import UTC, Span
from .network import (
    DC_IP,
    DNS_DIR,
    FORWARDERS,
    PROXY_DIR,
    PROXY_IP,
    TIME_ZONE,
    ZEEK_DIR,
    micros,
    proxy_bumps,
)

#: Zeek 6 default fields and types of the logs written here.
CONN_FIELDS = (
    ("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"), ("id.resp_h", "addr"),
    ("id.resp_p", "port"), ("proto", "enum"), ("service", "string"), ("duration", "interval"),
    ("orig_bytes", "count"), ("resp_bytes", "count"), ("conn_state", "string"), ("local_orig", "bool"),
    ("local_resp", "bool"), ("missed_bytes", "count"), ("history", "string"), ("orig_pkts", "count"),
    ("orig_ip_bytes", "count"), ("resp_pkts", "count"), ("resp_ip_bytes", "count"),
    ("tunnel_parents", "set[string]"),
)
DNS_FIELDS = (
    ("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"), ("id.resp_h", "addr"),
    ("id.resp_p", "port"), ("proto", "enum"), ("trans_id", "count"), ("rtt", "interval"), ("query", "string"),
    ("qclass", "count"), ("qclass_name", "string"), ("qtype", "count"), ("qtype_name", "string"),
    ("rcode", "count"), ("rcode_name", "string"), ("AA", "bool"), ("TC", "bool"), ("RD", "bool"), ("RA", "bool"),
    ("Z", "count"), ("answers", "vector[string]"), ("TTLs", "vector[interval]"), ("rejected", "bool"),
)
SSL_FIELDS = (
    ("ts", "time"), ("uid", "string"), ("id.orig_h", "addr"), ("id.orig_p", "port"), ("id.resp_h", "addr"),
    ("id.resp_p", "port"), ("version", "string"), ("cipher", "string"), ("curve", "string"),
    ("server_name", "string"), ("resumed", "bool"), ("last_alert", "string"), ("next_protocol", "string"),
    ("established", "bool"), ("ssl_history", "string"), ("cert_chain_fps", "vector[string]"),
    ("client_cert_chain_fps", "vector[string]"), ("sni_matches_cert", "bool"),
)
DHCP_FIELDS = (
    ("ts", "time"), ("uids", "set[string]"), ("client_addr", "addr"), ("server_addr", "addr"), ("mac", "string"),
    ("host_name", "string"), ("client_fqdn", "string"), ("domain", "string"), ("requested_addr", "addr"),
    ("assigned_addr", "addr"), ("lease_time", "interval"), ("client_message", "string"),
    ("server_message", "string"), ("msg_types", "vector[string]"), ("duration", "interval"),
)

#: DNS debug log legend, as the server writes it at the top of the file.
_DNS_LEGEND = (
    "Message logging key (for packets - other items use a subset of these fields):",
    "\tField #  Information         Values",
    "\t-------  -----------         ------",
    "\t   1     Date",
    "\t   2     Time",
    "\t   3     Thread ID",
    "\t   4     Context",
    "\t   5     Internal packet identifier",
    "\t   6     UDP/TCP indicator",
    "\t   7     Send/Receive indicator",
    "\t   8     Remote IP",
    "\t   9     Xid (hex)",
    "\t  10     Query/Response      R = Response",
    "\t                             blank = Query",
    "\t  11     Opcode              Q = Standard Query",
    "\t                             N = Notify",
    "\t                             U = Update",
    "\t                             ? = Unknown",
    "\t  12     [ Flags (hex)",
    "\t  13     Flags (char codes)  A = Authoritative Answer",
    "\t                             T = Truncated Response",
    "\t                             D = Recursion Desired",
    "\t                             R = Recursion Available",
    "\t  14     ResponseCode ]",
    "\t  15     Question Type",
    "\t  16     Question Name",
)
_LOCAL_NETS = ("192.168.", "10.", "172.16.")
_DNS_HIT_RTT = (0.0002, 0.0012)
_DNS_MISS_RTT = (0.012, 0.065)
_CNAME_TTL = 3600
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
#: The bumped CONNECT is logged once the client's TLS handshake with the proxy is done.
_BUMP_HANDSHAKE_US = 25_000


def _local(ip: str | None) -> bool:
    return ip is not None and ip.startswith(_LOCAL_NETS)


def _time(us: int) -> str:
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def _interval(us: int) -> str:
    return f"{us / 1_000_000:.6f}"


def _zeek_value(value: Any) -> str:
    if type(value) is str and value and "\t" not in value:
        return value
    if type(value) is int:
        return str(value)
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "T" if value else "F"
    if isinstance(value, (list, tuple)):
        return ",".join(_zeek_value(v) for v in value) if value else "(empty)"
    text = str(value)
    return "(empty)" if text == "" else text.replace("\t", "\\x09")


def _a_record_ttl(name: str) -> int:
    """The TTL the name's authority gives its A record (stable per name)."""
    return (20, 60, 300, 300, 600, 3600)[hashlib.sha256(name.encode()).digest()[0] % 6]


def wire_name(name: str) -> str:
    """`www.google.com` as the DNS debug log writes it: `(3)www(6)google(3)com(0)`."""
    return "".join(f"({len(label)}){label}" for label in name.rstrip(".").split(".") if label) + "(0)"


def us_local_time(us: int, zone: ZoneInfo) -> str:
    """`3/26/2023 9:05:07 AM`: a US-locale Windows date and time, in `zone`."""
    t = datetime.fromtimestamp(us // 1_000_000, UTC).astimezone(zone)
    hour = t.hour % 12 or 12
    return f"{t.month}/{t.day}/{t.year} {hour}:{t.minute:02d}:{t.second:02d} {'AM' if t.hour < 12 else 'PM'}"


class _ZeekLog:
    """One Zeek TSV log: header at open, one row per call, `#close` at the end."""

    def __init__(self, path: Path, name: str, fields: tuple[tuple[str, str], ...], opened: datetime) -> None:
        self.fields = fields
        self.rows = 0
        self._f: TextIO = path.open("w", encoding="utf-8", newline="\n")
        self._f.write(
            "#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
            f"#path\t{name}\n#open\t{opened:%Y-%m-%d-%H-%M-%S}\n"
            f"#fields\t{chr(9).join(f for f, _ in fields)}\n#types\t{chr(9).join(t for _, t in fields)}\n"
        )

    def row(self, *values: Any) -> None:
        assert len(values) == len(self.fields)
        self._f.write("\t".join(_zeek_value(v) for v in values) + "\n")
        self.rows += 1

    def close(self, closed: datetime) -> None:
        self._f.write(f"#close\t{closed:%Y-%m-%d-%H-%M-%S}\n")
        self._f.close()


class _DnsServerLog:
    """The DC's DNS debug log (packets, UDP, queries and answers), CRLF, local time."""

    def __init__(self, path: Path, opened: datetime, rng: random.Random) -> None:
        self.zone = ZoneInfo(TIME_ZONE)
        self.rows = 0
        self._rng = rng
        self._threads = [f"{rng.randrange(0x0400, 0x1FFF):04X}" for _ in range(4)]
        self._f: TextIO = path.open("w", encoding="ascii", newline="\r\n")
        created = us_local_time(micros(opened), self.zone)
        self._f.write(f"DNS Server log file creation at {created}\nLog file wrap at {created}\n\n")
        self._f.write("\n".join(_DNS_LEGEND) + "\n\n")

    def packet_id(self) -> int:
        return 0x000001F600000000 + self._rng.randrange(0x10000000) * 16

    def line(self, us: int, packet: int, direction: str, ip: str, xid: int, response: bool, name: str) -> None:
        flags = "[8081   DR  NOERROR]" if response else "[0001   D   NOERROR]"  # RD(+RA), byte-swapped
        self._f.write(
            f"{us_local_time(us, self.zone)} {self._rng.choice(self._threads)} PACKET  {packet:016X} UDP "
            f"{direction} {ip:<15} {xid:04x} {'R' if response else ' '} Q {flags} {'A':<6} {wire_name(name)}\n"
        )
        self.rows += 1

    def close(self) -> None:
        self._f.close()


def clf_time(us: int, zone: ZoneInfo) -> str:
    """`27/Mar/2023:10:00:00 +0200`: Squid's `%tl` (local time, whole seconds, English month), in `zone`."""
    t = datetime.fromtimestamp(us // 1_000_000, UTC).astimezone(zone)
    return f"{t.day:02d}/{_MONTHS[t.month - 1]}/{t.year}:{t:%H:%M:%S %z}"


class _SquidLog:
    """Squid's access.log in the `combined` logformat; each line is written in the order Squid logs it
    (when its transaction ends), so a tunnel's line comes after the requests of shorter connections."""

    def __init__(self, path: Path) -> None:
        self.zone = ZoneInfo(TIME_ZONE)
        self.rows = 0
        self._pending: list[tuple[int, int, str]] = []
        self._n = 0
        self._f: TextIO = path.open("w", encoding="utf-8", newline="\n")

    def tunnel(self, start_us: int, duration_us: int, client: str, domain: str, port: int, sent: int,
               agent: str | None) -> None:
        """A spliced connection: one CONNECT line, stamped with the tunnel's end, with the bytes relayed."""
        self._log(start_us + duration_us, client, "CONNECT", f"{domain}:{port}", 200, sent, agent,
                  "TCP_TUNNEL:HIER_DIRECT")

    def bump(self, start_us: int, handshake_us: int, client: str, domain: str, port: int, agent: str | None,
             requests: list[list[Any]]) -> None:
        """A bumped connection: its CONNECT (answered by Squid itself: no bytes, no peer yet), then each
        request the client sent inside it, with the full URL, stamped when its answer ended."""
        self._log(handshake_us + _BUMP_HANDSHAKE_US, client, "CONNECT", f"{domain}:{port}", 200, 0, agent,
                  "NONE_NONE:HIER_NONE")
        suffix = "" if port == 443 else f":{port}"
        for done_us, method, path, status, sent in requests:
            self._log(start_us + done_us, client, method, f"https://{domain}{suffix}{path}", status, sent, agent,
                      "TCP_MISS:HIER_DIRECT")

    def _log(self, end_us: int, client: str, method: str, url: str, status: int, sent: int, agent: str | None,
             codes: str) -> None:
        line = (f'{client} - - [{clf_time(end_us, self.zone)}] "{method} {url} HTTP/1.1" {status} {sent} '
                f'"-" "{agent or "-"}" {codes}')
        heapq.heappush(self._pending, (end_us // 1000, self._n, line))
        self._n += 1

    def until(self, us: int) -> None:
        """Write every line whose transaction had ended by `us`."""
        while self._pending and self._pending[0][0] * 1000 <= us:
            self._f.write(heapq.heappop(self._pending)[2] + "\n")
            self.rows += 1

    def close(self) -> None:
        self.until(1 << 62)
        self._f.close()


def write_logs(folder: Path, records: Iterable[list[Any]], span: Span, seed_key: str) -> dict[str, int]:
    """Write every network log under `folder` (`evidence/network`); return the row count per file."""
    rng = random.Random(f"{seed_key}:network-logs")
    for sub in (ZEEK_DIR, DNS_DIR, PROXY_DIR):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    zeek = folder / ZEEK_DIR
    conn = _ZeekLog(zeek / "conn.log", "conn", CONN_FIELDS, span.start)
    dns = _ZeekLog(zeek / "dns.log", "dns", DNS_FIELDS, span.start)
    ssl = _ZeekLog(zeek / "ssl.log", "ssl", SSL_FIELDS, span.start)
    dhcp = _ZeekLog(zeek / "dhcp.log", "dhcp", DHCP_FIELDS, span.start)
    server = _DnsServerLog(folder / DNS_DIR / "dns.log", span.start, rng)
    squid = _SquidLog(folder / PROXY_DIR / "access.log")
    cache: dict[str, tuple[int, int]] = {}  # name -> (cached at, expires at), microseconds
    for record in records:
        us, kind, fields = record[0], record[3], record[4:]
        squid.until(us)
        if kind == "dns":
            _dns(us, fields, conn, dns, server, cache, rng)
        elif kind == "tcp":
            _tcp(us, fields, conn, ssl, squid, rng)
        else:
            _dhcp(us, fields, conn, dhcp)
    for log in (conn, dns, ssl, dhcp):
        log.close(span.end)
    server.close()
    squid.close()
    return {
        f"{ZEEK_DIR}/conn.log": conn.rows, f"{ZEEK_DIR}/dns.log": dns.rows, f"{ZEEK_DIR}/ssl.log": ssl.rows,
        f"{ZEEK_DIR}/dhcp.log": dhcp.rows, f"{DNS_DIR}/dns.log": server.rows, f"{PROXY_DIR}/access.log": squid.rows,
    }


def _dns(us: int, f: list[Any], conn: _ZeekLog, dns: _ZeekLog, server: _DnsServerLog,
         cache: dict[str, tuple[int, int]], rng: random.Random) -> None:
    client, port, xid, name, cname, ips, uid = f
    ttl = _a_record_ttl(name)
    cached = cache.get(name)
    hit = cached is not None and cached[1] > us
    rtt_us = int(rng.uniform(*(_DNS_HIT_RTT if hit else _DNS_MISS_RTT)) * 1_000_000)
    if hit:
        assert cached is not None
        age = (us - cached[0]) // 1_000_000
        ttls = ([max(1, _CNAME_TTL - age)] if cname else []) + [max(1, ttl - age)] * len(ips)
    else:
        cache[name] = (us, us + ttl * 1_000_000)
        ttls = ([_CNAME_TTL] if cname else []) + [ttl] * len(ips)
    answers = ([cname] if cname else []) + list(ips)
    dns.row(_time(us), uid, client, port, DC_IP, 53, "udp", xid, _interval(rtt_us), name, 1, "C_INTERNET", 1, "A",
            0, "NOERROR", False, False, True, True, 0, answers, [f"{t:.6f}" for t in ttls], False)
    query = 12 + len(name) + 2 + 4
    reply = query + sum(12 + (len(a) + 2 if a == cname else 4) for a in answers)
    conn.row(_time(us), uid, client, port, DC_IP, 53, "udp", "dns", _interval(rtt_us), query, reply, "SF",
             _local(client), True, 0, "Dd", 1, query + 28, 1, reply + 28, None)
    packet = server.packet_id()
    server.line(us, packet, "Rcv", client, xid, False, name)
    if not hit:  # forwarded: the server asks a public resolver with its own transaction id
        out_xid, out_packet, forwarder = rng.getrandbits(16), server.packet_id(), rng.choice(FORWARDERS)
        server.line(us + 200, out_packet, "Snd", forwarder, out_xid, False, name)
        server.line(us + rtt_us - 150, out_packet, "Rcv", forwarder, out_xid, True, name)
    server.line(us + rtt_us, packet, "Snd", client, xid, True, name)


def _tls_fingerprints(name: str, bump: bool = False) -> list[str]:
    """SHA-256 fingerprints of a site's certificate chain (leaf, intermediate): stand-ins, stable per name.
    Through a bumping proxy the client gets the proxy's forged leaf, signed by the office's own CA."""
    if bump:
        return [hashlib.sha256(f"proxy-leaf:{name}".encode()).hexdigest(),
                hashlib.sha256(f"proxy-ca:{PROXY_IP}".encode()).hexdigest()]
    return [hashlib.sha256(f"{part}:{name}".encode()).hexdigest() for part in ("leaf", "intermediate")]


def _tcp(us: int, f: list[Any], conn: _ZeekLog, ssl: _ZeekLog, squid: _SquidLog, rng: random.Random) -> None:
    client, port, server, server_port, name, upstream, tls, duration_us, orig, resp, uid, resumed, agent, requests = f
    proxied = upstream is not None
    bump = proxied and proxy_bumps(name)
    if proxied:  # the CONNECT request and its "200 Connection established" ride in the same connection
        orig += 60 + len(name) + (14 + len(agent) if agent else 0)
        resp += 39
    orig_pkts, resp_pkts = 4 + orig // 1200, 3 + resp // 1400
    conn.row(_time(us), uid, client, port, server, server_port, "tcp", "http,ssl" if proxied else "ssl",
             _interval(duration_us), orig, resp, "SF", _local(client), _local(server), 0, "ShADadFf",
             orig_pkts, orig + 52 * orig_pkts, resp_pkts, resp + 52 * resp_pkts, None)
    hello = us + rng.randrange(1_500, 45_000)  # the client hello follows the TCP (and CONNECT) handshake
    if tls == "13":
        ssl.row(_time(hello), uid, client, port, server, server_port, "TLSv13", "TLS_AES_256_GCM_SHA384",
                "x25519", name, resumed, None, None, True, "CsiI", None, None, None)
    else:  # TLS 1.2: the certificate chain is in clear
        ssl.row(_time(hello), uid, client, port, server, server_port, "TLSv12",
                "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384", "secp384r1", name, False, None, None, True,
                "CsxknGIFif", _tls_fingerprints(name, bump), None, True)
    if bump:
        squid.bump(us, hello, client, name, 443, agent, requests)
    elif proxied:
        squid.tunnel(us, duration_us, client, name, 443, resp, agent)


def _dhcp(us: int, f: list[Any], conn: _ZeekLog, dhcp: _ZeekLog) -> None:
    msg_types, client_addr, requested, assigned, mac, host, duration_us, uid, orig_h, resp_h, lease_s = f
    nak = msg_types.endswith("NAK")
    dhcp.row(_time(us), [uid], client_addr, DC_IP, mac, host,
             f"{host}.{DNS_SUFFIX}", None if nak else DNS_SUFFIX, requested, assigned,
             None if lease_s is None else f"{lease_s:.6f}", None, None, msg_types.split(","),
             _interval(duration_us))
    sent = msg_types.count("REQUEST") + msg_types.count("DISCOVER")
    answered = msg_types.count("ACK") + msg_types.count("OFFER") + msg_types.count("NAK")
    unicast = orig_h != "0.0.0.0"
    conn.row(_time(us), uid, orig_h, 68, resp_h, 67, "udp", "dhcp", _interval(duration_us), 300 * sent,
             300 * answered if unicast else 0, "SF" if unicast else "S0", _local(orig_h), _local(resp_h), 0,
             "Dd" if unicast else "D", sent, 328 * sent, answered if unicast else 0,
             328 * answered if unicast else 0, None)

