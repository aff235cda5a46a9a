"""Proxy, firewall and DHCP-server readers: real samples read completely and correctly, each format is
recognised only as itself, and bad input is reported by line without stopping the read."""

from __future__ import annotations

import codecs
import os
import random
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import duckdb
import orjson
import pytest
from conftest import FIXTURES, shared

from turncoat.evidence.base import IssueLog
from turncoat.evidence.network import BY_NAME, NET_FORMATS, NetContext, dhcp_server, firewall, proxy
from turncoat.evidence.network.text import head_lines
from turncoat.evidence.network.values import canonical_ip, is_ip, port, to_int
from turncoat.store.net_writer import NetWriter

NET = FIXTURES / "network"
SQUID = ("proxy", "elastic-beats", "x-pack", "filebeat", "module", "squid", "log", "test")
MINE = {f.name for module in (proxy, firewall, dhcp_server) for f in module.FORMATS}
HEAD = 256 * 1024


class Read:
    """One reader run: the rows it wrote (in order), its problems and its count."""

    def __init__(self, fmt: str, path: Path, tmp_path: Path, tz: str | None = None, year: int | None = None) -> None:
        out = tmp_path / f"pq-{uuid.uuid4().hex[:8]}"
        ctx = NetContext("ev1", IssueLog(), NetWriter(out, "t"), year=year)
        if tz:
            ctx.tz = ZoneInfo(tz)
        self.count = BY_NAME[fmt].read(path, ctx)
        self.issues = ctx.issues
        self.rows: list[dict[str, Any]] = []
        for table in sorted(p.name for p in out.iterdir()) if out.exists() else []:
            self.table = table
            rel = duckdb.sql(f"SELECT * FROM read_parquet('{(out / table).as_posix()}/*.parquet', "
                             "union_by_name=true) ORDER BY seq")
            self.rows += [dict(zip(rel.columns, values)) for values in rel.fetchall()]

    def at(self, line: int) -> dict[str, Any]:
        found = [r for r in self.rows if r["line"] == line]
        assert len(found) == 1, (line, found)
        return found[0]

    def messages(self) -> list[tuple[int | None, str]]:
        return [(i.line, i.message) for i in self.issues.listed]


def utc(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=UTC)


def sniffed(path: Path | bytes) -> set[str]:
    """Every network format (not only ours) that claims the file."""
    head = path if isinstance(path, bytes) else path.read_bytes()[:HEAD]
    return {f.name for f in NET_FORMATS if f.sniff(head)}


def data_lines(path: Path, comment: str | None = None) -> list[str]:
    text = path.read_text(encoding="utf-8", errors="replace").splitlines()
    return [line for line in text if line.strip() and not (comment and line.startswith(comment))]


# --------------------------------------------------------------------------------------------------
# Squid: the four real samples


@pytest.mark.parametrize("name", ["access1.log", "access2.log", "access3.log", "access4.log"])
def test_squid_real_samples_read_every_line(name: str, tmp_path: Path) -> None:
    path = shared(*SQUID, name)
    assert sniffed(path) == {"squid-native"}
    got = Read("squid-native", path, tmp_path)
    lines = data_lines(path)
    assert got.count == len(got.rows) == len(lines) == 100
    assert got.issues.count == 0
    assert got.table == "net_http"
    assert [r["line"] for r in got.rows] == list(range(1, 101))
    for row, line in zip(got.rows, lines):
        fields = line.split()
        assert row["source.ip"] == fields[2]
        assert row["http.request.method"] == fields[5]
        assert row["url.full"] == fields[6]
        assert row["event.action"] == fields[3].split("/")[0]
        assert row["http.response.status_code"] == int(fields[3].split("/")[1])
        assert row["url.domain"], line  # every sample line names a host (absolute URL or CONNECT)
        assert row["@timestamp"].timestamp() == pytest.approx(float(fields[0]), abs=1e-6)


def test_squid_real_connect_denied_and_hierarchy(tmp_path: Path) -> None:
    access1 = Read("squid-native", shared(*SQUID, "access1.log"), tmp_path)
    first = access1.at(1)  # 1157689312.049 ... CONNECT login.yahoo.com:443 badeyek DIRECT/209.73.177.115 -
    assert first["@timestamp"] == utc(2006, 9, 8, 4, 21, 52, 49000)
    assert first["http.request.method"] == "CONNECT"
    assert first["url.domain"] == "login.yahoo.com"
    assert first["destination.port"] == 443
    assert first["destination.ip"] == "209.73.177.115"
    assert first["user.name"] == "badeyek"
    assert first["event.action"] == "TCP_MISS" and first["http.response.status_code"] == 200
    assert first["http.response.mime_type"] is None

    lines = data_lines(shared(*SQUID, "access1.log"))
    denied_line = next(i for i, line in enumerate(lines, 1) if "TCP_DENIED/407" in line and " CONNECT " in line)
    denied = access1.at(denied_line)
    assert denied["event.action"] == "TCP_DENIED" and denied["http.response.status_code"] == 407
    assert denied["url.domain"] == "us.mcafee.com" and denied["destination.port"] == 443
    assert denied["destination.ip"] is None  # NONE/-: the request never left the proxy
    assert denied["user.name"] is None
    assert sum(r["event.action"] == "TCP_DENIED" for r in access1.rows) == sum("TCP_DENIED/" in x for x in lines)

    access2 = Read("squid-native", shared(*SQUID, "access2.log"), tmp_path)
    parent = access2.at(1)  # ... FIRST_PARENT_MISS/proxy2.syd.connect.com.au image/jpeg
    assert parent["squid.hierarchy_code"] == "FIRST_PARENT_MISS"
    assert parent["squid.peer"] == "proxy2.syd.connect.com.au"
    assert parent["destination.ip"] is None  # a peer named by host name is not an address
    assert parent["url.domain"] == "www.fas.harvard.edu" and parent["destination.port"] == 80


def test_squid_real_failed_requests_and_ipv6_client(tmp_path: Path) -> None:
    path = shared(*SQUID, "access3.log")
    got = Read("squid-native", path, tmp_path)
    lines = data_lines(path)
    assert sum(r["http.response.status_code"] == 0 for r in got.rows) == sum("/000 " in x for x in lines) > 0
    assert sum(r["http.response.status_code"] == 503 for r in got.rows) == sum("/503 " in x for x in lines) > 0

    path = shared(*SQUID, "access4.log")
    got = Read("squid-native", path, tmp_path)
    first = got.at(1)  # 1431966856.793  48016 ::1 TCP_MISS/200 16674 CONNECT 0.docs.google.com:443 - DIRECT/173...
    assert first["source.ip"] == "::1"
    assert first["@timestamp"] == utc(2015, 5, 18, 16, 34, 16, 793000)
    assert (first["url.domain"], first["destination.port"]) == ("0.docs.google.com", 443)
    assert first["destination.ip"] == "173.194.206.189"
    assert first["squid.elapsed_ms"] == "48016" and first["http.response.bytes"] == "16674"
    assert first["event.start"] == "2015-05-18T16:33:28.777000Z"  # the tunnel opened 48.016 s earlier
    assert {r["source.ip"] for r in got.rows} == {x.split()[2] for x in data_lines(path)}


# --------------------------------------------------------------------------------------------------
# Squid: the layouts the real samples do not show


def test_squid_common_and_combined(tmp_path: Path) -> None:
    got = Read("squid-common", NET / "proxy" / "squid-combined.log", tmp_path)
    assert got.count == 6 and got.issues.count == 0
    tunnel = got.at(1)
    assert tunnel["@timestamp"] == utc(2023, 3, 27, 8, 0, 0)  # +0200 in the line
    assert (tunnel["url.domain"], tunnel["destination.port"]) == ("raw.githubusercontent.com", 443)
    assert tunnel["event.action"] == "TCP_TUNNEL" and tunnel["squid.hierarchy_code"] == "HIER_DIRECT"
    assert "3CXDesktopApp/18.12.416" in tunnel["user_agent.original"]
    assert tunnel["http.request.referrer"] is None
    assert got.at(2)["user.name"] == "anna"
    denied = got.at(3)
    assert denied["source.ip"] == "2001:db8:0:1::31"  # upper case in the log, canonical in the store
    assert (denied["event.action"], denied["http.response.status_code"]) == ("TCP_DENIED", 403)
    assert denied["url.domain"] == "akamaicontainer.com"
    common = got.at(4)  # the common format: no referer, no agent
    assert common["user_agent.original"] is None
    assert (common["url.domain"], common["destination.port"]) == ("intranet.corp.local", 8080)
    assert common["url.full"] == "http://intranet.corp.local:8080/status?check=1"
    assert common["@timestamp"] == utc(2023, 3, 27, 8, 2, 0)
    assert got.at(5)["user_agent.original"] == 'Mozilla/5.0 "quoted" agent'
    assert got.at(5)["http.request.referrer"] == "http://portal.example.com/"
    garbage = got.at(6)
    assert garbage["url.domain"] is None and garbage["http.request.method"] is None
    assert garbage["url.full"] == "error:invalid-request"


def test_squid_native_variants(tmp_path: Path) -> None:
    got = Read("squid-native", NET / "proxy" / "squid-native-variants.log", tmp_path)
    assert got.count == 7 and got.issues.count == 0
    assert got.at(1)["@timestamp"] == utc(2023, 3, 27, 8, 0, 0, 123000)
    assert got.at(2)["url.domain"] == "msstorageazure.com" and got.at(2)["event.action"] == "TCP_DENIED"
    ipv6 = got.at(3)
    assert ipv6["@timestamp"] == utc(2023, 3, 27, 8, 0, 2, 500000)
    assert (ipv6["source.ip"], ipv6["url.domain"], ipv6["destination.port"]) == ("2001:db8::1", "2001:db8::99", 443)
    assert ipv6["destination.ip"] == "2001:db8::99"
    spaced = got.at(4)
    assert spaced["url.full"] == "http://host.example/with space.txt"
    assert (spaced["user.name"], spaced["destination.ip"]) == (None, "198.51.100.4")
    assert spaced["http.response.mime_type"] == "text/plain"
    assert got.at(5)["squid.extra"].startswith("[Host: host.example")
    aborted = got.at(6)
    assert (aborted["event.action"], aborted["http.response.status_code"], aborted["url.domain"]) == \
        ("NONE_NONE", 0, None)
    parent = got.at(7)
    assert (parent["url.domain"], parent["destination.port"], parent["destination.ip"]) == \
        ("2001:db8::5", 8443, "10.0.0.2")


def test_request_target() -> None:
    """The host and port a client asked the proxy for, as the store keeps them (lower case, canonical IP)."""
    assert proxy.request_target("CONNECT", "Login.Example.COM:443") == ("login.example.com", 443)
    assert proxy.request_target("CONNECT", "[2001:DB8::99]:8443") == ("2001:db8::99", 8443)
    assert proxy.request_target("CONNECT", "example.com") == ("example.com", None)
    assert proxy.request_target("GET", "http://WWW.Example.com./a?b") == ("www.example.com", 80)
    assert proxy.request_target("GET", "https://example.com/") == ("example.com", 443)
    assert proxy.request_target("GET", "ftp://[2001:DB8::1]:2121/f") == ("2001:db8::1", 2121)
    assert proxy.request_target("GET", "http://example.com:99999/") == ("example.com", None)
    assert proxy.request_target("GET", "/index.html") == (None, None)
    assert proxy.request_target("GET", "http://[broken/") == (None, None)


def test_web_server_log_is_not_a_proxy_log() -> None:
    """The documented decision: an Apache access log (relative URLs, no Squid codes) is refused, so
    its visitors' requests can never be read as internal hosts contacting outside servers."""
    apache = shared("evtx", "EVTX-ATTACK-SAMPLES", "Command and Control",
                    "web_attack_and_isp_webshell_localhost_access_log.txt")
    head = apache.read_bytes()[:HEAD]
    assert not {f.name for f in NET_FORMATS if f.name in MINE and f.sniff(head)}
    # the same lines with Squid's trailing codes are a Squid log
    lines = head_lines(head, 5)
    squid_like = "".join(f"{line} TCP_MISS:HIER_DIRECT\n" for line in lines).encode()
    assert proxy.sniff_squid_common(squid_like)


# --------------------------------------------------------------------------------------------------
# Windows Firewall


def test_pfirewall_plaso_sample_with_zone(tmp_path: Path) -> None:
    path = shared("artifacts", "plaso", "firewall", "pfirewall.log")
    assert sniffed(path) == {"windows-firewall"}
    got = Read("windows-firewall", path, tmp_path, tz="Europe/Berlin")
    assert got.count == len(data_lines(path, "#")) == 15  # plaso's own test expects 15 events
    assert got.issues.count == 0
    first = got.at(5)  # 2005-04-11 08:05:57 DROP UDP 123.45.78.90 123.156.78.255 137 137 78 - ... RECEIVE
    assert first["@timestamp"] == utc(2005, 4, 11, 6, 5, 57)  # CEST, UTC+2
    assert (first["event.action"], first["network.transport"]) == ("drop", "udp")
    assert (first["source.ip"], first["source.port"], first["destination.ip"], first["destination.port"]) == \
        ("123.45.78.90", 137, "123.156.78.255", 137)
    assert first["source.bytes"] == 78 and first["network.direction"] == "inbound" and first["path"] == "RECEIVE"
    tcp = got.at(13)  # ... DROP TCP ... 80 1774 576 AP 123456789 987654321 12345 - - - RECEIVE
    assert (tcp["tcpflags"], tcp["tcpsyn"], tcp["tcpack"], tcp["tcpwin"]) == ("AP", "123456789", "987654321", "12345")
    icmp = got.at(14)
    assert (icmp["network.transport"], icmp["icmptype"], icmp["icmpcode"]) == ("icmp", "8", "0")
    assert got.at(7)["event.action"] == "open" and got.at(7)["network.direction"] is None
    lost = got.at(19)
    assert lost["event.action"] == "info-events-lost" and lost["info"] == "59" and lost["source.ip"] is None
    utc_read = Read("windows-firewall", path, tmp_path)
    assert utc_read.at(5)["@timestamp"] == utc(2005, 4, 11, 8, 5, 57)  # no zone given: read as UTC


def test_pfirewall_windows10_sample(tmp_path: Path) -> None:
    path = shared("artifacts", "betahydri-parsefirewalllog", "firewall", "pfirewall.log")
    assert sniffed(path) == {"windows-firewall"}
    got = Read("windows-firewall", path, tmp_path, tz="Europe/Berlin")
    lines = data_lines(path, "#")
    assert got.count == len(got.rows) == len(lines)
    assert got.issues.count == 0
    fields = [line.split() for line in lines]
    expected = {(a.lower(), b): sum(1 for f in fields if (f[2].lower(), f[-1]) == (a.lower(), b))
                for a, b in {(f[2], f[-1]) for f in fields}}
    actual: dict[tuple[str, str], int] = {}
    for row in got.rows:
        key = (row["event.action"], row.get("path") or "-")
        actual[key] = actual.get(key, 0) + 1
    assert actual == expected
    assert actual[("drop", "RECEIVE")] > 10_000
    assert sum(r["network.direction"] == "outbound" for r in got.rows) == sum(f[-1] == "SEND" for f in fields)
    assert got.at(6)["@timestamp"] == utc(2021, 6, 22, 10, 19, 41)
    v6 = got.at(8)  # fe80::f58b:f19a:db72:872b ff02::fb 5353 5353 93
    assert (v6["source.ip"], v6["destination.ip"], v6["source.bytes"]) == ("fe80::f58b:f19a:db72:872b", "ff02::fb", 93)
    igmp = [r for r, f in zip(got.rows, fields) if f[3] == "2"]
    assert igmp and all(r["network.transport"] == "igmp" for r in igmp)
    lost = [r for r in got.rows if r["event.action"] == "info-events-lost"]
    assert [r["info"] for r in lost] == ["7", "1"]


def test_pfirewall_saved_as_utf16(tmp_path: Path) -> None:
    original = shared("artifacts", "plaso", "firewall", "pfirewall.log")
    path = tmp_path / "pfirewall.log"
    path.write_bytes(codecs.BOM_UTF16_LE + original.read_text(encoding="ascii").replace("\n", "\r\n")
                     .encode("utf-16-le"))
    assert sniffed(path) == {"windows-firewall"}
    got = Read("windows-firewall", path, tmp_path, tz="Europe/Berlin")
    plain = Read("windows-firewall", original, tmp_path, tz="Europe/Berlin")
    strip = ("seq",)
    assert [{k: v for k, v in r.items() if k not in strip} for r in got.rows] == \
        [{k: v for k, v in r.items() if k not in strip} for r in plain.rows]


def test_pfirewall_newer_fields_and_damage(tmp_path: Path) -> None:
    path = tmp_path / "pfirewall.log"
    path.write_text(
        "#Version: 1.5\n#Software: Microsoft Windows Firewall\n#Time Format: Local\n"
        "#Fields: date time action protocol src-ip dst-ip src-port dst-port size tcpflags tcpsyn tcpack tcpwin "
        "icmptype icmpcode info path pid\n"
        "2023-03-27 10:00:00 ALLOW TCP 10.0.0.23 203.0.113.7 51000 443 0 - - - - - - - SEND 4242\n"
        "2023-03-27 10:00:01 ALLOW TCP 10.0.0.23 203.0.113.7 51001 443 0 - - - - - - - SEND\n"
        "2023-13-27 10:00:02 ALLOW TCP 10.0.0.23 203.0.113.7 51002 443 0 - - - - - - - SEND 4242\n"
        "2023-03-27 10:00:03 DROP TCP 203.0.113.7 10.0.0.23 443 51003 40 - - - - - - - RECEIVE 0\n"
        "2023-03-27 10:00:04 ALLOW UDP 10.0.0.23 1", encoding="ascii")
    got = Read("windows-firewall", path, tmp_path, tz="UTC")
    assert got.count == 2
    assert got.at(5)["pid"] == "4242" and got.at(5)["network.direction"] == "outbound"
    assert got.at(8)["network.direction"] == "inbound" and got.at(8)["source.ip"] == "203.0.113.7"
    problems = got.messages()
    assert [line for line, _ in problems] == [6, 7, 9]
    assert "17 fields, #Fields lists 18" in problems[0][1]
    assert "unreadable date/time" in problems[1][1]


def test_pfirewall_without_header(tmp_path: Path) -> None:
    path = tmp_path / "carved.log"
    path.write_text("2023-03-27 10:00:00 DROP UDP 10.0.0.9 10.0.0.255 137 137 78 - - - - - - - RECEIVE\n")
    assert not firewall.sniff_windows_firewall(path.read_bytes())  # no header: not claimed by sniffing
    got = Read("windows-firewall", path, tmp_path)  # but read if chosen by name
    assert got.count == 1 and "assumed the Windows Firewall 1.5 field list" in got.messages()[0][1]


# --------------------------------------------------------------------------------------------------
# pfSense / OPNsense filterlog


def test_filterlog_rfc3164(tmp_path: Path) -> None:
    path = tmp_path / "filter.log"
    path.write_bytes((NET / "firewall" / "filterlog-rfc3164.log").read_bytes())
    stamp = utc(2023, 4, 1, 12, 0, 0).timestamp()
    os.utime(path, (stamp, stamp))
    assert sniffed(path) == {"pf-filterlog"}
    got = Read("pf-filterlog", path, tmp_path, tz="Europe/Berlin")
    assert got.count == 8
    tcp = got.at(1)
    assert tcp["@timestamp"] == utc(2023, 3, 27, 8, 0, 0)  # local CEST, year from the file's time
    assert (tcp["event.action"], tcp["network.direction"], tcp["network.transport"]) == ("drop", "ingress", "tcp")
    assert (tcp["source.ip"], tcp["source.port"], tcp["destination.ip"], tcp["destination.port"]) == \
        ("10.0.0.23", 51000, "203.0.113.7", 443)
    assert (tcp["source.bytes"], tcp["pf.tcp_flags"], tcp["pf.tracker"], tcp["pf.interface"]) == \
        (60, "S", "1000000103", "em0")
    assert (tcp["observer.hostname"], tcp["process.pid"]) == ("fw", "61255")
    udp = got.at(2)
    assert (udp["event.action"], udp["network.direction"], udp["destination.port"]) == ("allow", "egress", 53)
    echo = got.at(3)
    assert (echo["network.transport"], echo["pf.icmp_type"], echo["pf.icmp_id"], echo["pf.icmp_sequence"]) == \
        ("icmp", "request", "31002", "1")
    assert echo["source.port"] is None
    unreach = got.at(4)
    assert (unreach["pf.icmp_destination_ip"], unreach["pf.icmp_protocol_id"], unreach["pf.icmp_port"]) == \
        ("192.0.2.10", "17", "33434")
    v6 = got.at(5)
    assert (v6["source.ip"], v6["destination.ip"], v6["destination.port"]) == \
        ("2001:db8:0:1::23", "2001:db8:ffff::7", 443)
    assert (v6["pf.hop_limit"], v6["pf.protocol_id"], v6["pf.flow_label"]) == ("64", "6", "0x00000")
    assert got.at(6)["pf.flow_label"] == "0x9ab12" and got.at(6)["network.transport"] == "udp"
    assert got.at(7)["network.transport"] == "ipv6-icmp"
    assert got.at(10)["event.action"] == "reject" and got.at(10)["observer.hostname"] is None
    problems = got.messages()
    assert (1, "RFC 3164 time stamps carry no year; 2023 was inferred from the file's modification time") \
        in problems
    assert any(line == 9 and "cut short" in message for line, message in problems)
    assert any(line == 8 and "1 syslog lines from other programs" in message for line, message in problems)


PF_TCP = "5,,,1000000103,em0,match,block,in,4,0x0,,64,0,0,DF,6,tcp,60,10.0.0.23,203.0.113.7,51000,443,0,S,1,,64,,"


def filterlog_file(tmp_path: Path, stamps: list[str], modified: datetime) -> Path:
    """A filterlog with one TCP entry per stamp, last modified at `modified`."""
    path = tmp_path / "filter.log"
    path.write_text("".join(f"{stamp} fw filterlog[1]: {PF_TCP}\n" for stamp in stamps))
    os.utime(path, (modified.timestamp(), modified.timestamp()))
    return path


def test_filterlog_year_turn(tmp_path: Path) -> None:
    path = filterlog_file(tmp_path, ["Dec 31 23:59:59", "Jan  1 00:00:01"], utc(2024, 1, 2))
    got = Read("pf-filterlog", path, tmp_path, tz="UTC")
    assert [r["@timestamp"] for r in got.rows] == [utc(2023, 12, 31, 23, 59, 59), utc(2024, 1, 1, 0, 0, 1)]
    given = Read("pf-filterlog", path, tmp_path, tz="UTC", year=2019)  # the first line's year, as for DNS logs
    assert [r["@timestamp"] for r in given.rows] == [utc(2019, 12, 31, 23, 59, 59), utc(2020, 1, 1, 0, 0, 1)]
    assert given.messages() == []  # nothing inferred, nothing to say


def test_filterlog_leap_day_gets_the_last_leap_year(tmp_path: Path) -> None:
    """The shared year rule looks back past common years for 29 February (filterlog used to try only the
    modification year and the one before, and skip the line)."""
    path = filterlog_file(tmp_path, ["Feb 29 12:00:00"], utc(2026, 3, 1))
    got = Read("pf-filterlog", path, tmp_path, tz="UTC")
    assert [r["@timestamp"] for r in got.rows] == [utc(2024, 2, 29, 12, 0, 0)]


def test_filterlog_rfc5424(tmp_path: Path) -> None:
    path = NET / "firewall" / "filterlog-rfc5424.log"
    assert sniffed(path) == {"pf-filterlog"}
    got = Read("pf-filterlog", path, tmp_path, tz="Asia/Tokyo")  # the zone is in the line: tz must not apply
    assert got.count == 6 and got.issues.count == 0
    assert got.at(1)["@timestamp"] == utc(2023, 3, 27, 8, 0, 0, 123456)
    assert got.at(2)["@timestamp"] == utc(2023, 3, 27, 8, 0, 1)
    carp = got.at(3)
    assert (carp["network.transport"], carp["pf.carp_type"], carp["pf.carp_vhid"], carp["pf.carp_advskew"]) == \
        ("carp", "advertise", "1", "0")
    assert (got.at(4)["pf.icmp_type"], got.at(4)["pf.icmp_mtu"]) == ("needfrag", "1400")
    assert (got.at(5)["pf.icmp_otime"], got.at(5)["pf.icmp_ttime"]) == ("100", "300")
    opn = got.at(6)
    assert (opn["observer.hostname"], opn["pf.tracker"], opn["event.action"]) == \
        ("opnsense.corp.local", "02f4bab031b57d1e30553ce08e0ec131", "allow")


def test_filterlog_message_layouts_follow_the_documentation() -> None:
    v4 = firewall.parse_filterlog("5,,,1000000103,em0,match,block,in,4,0x0,,64,0,0,DF,17,udp,73,10.0.0.23,"
                                  "198.51.100.53,55333,53,53")
    assert (v4["pf.ttl"], v4["pf.flags"], v4["pf.protocol_id"], v4["pf.length"], v4["pf.data_length"]) == \
        ("64", "DF", "17", "73", "53")
    v6 = firewall.parse_filterlog("5,,,1000000103,em0,match,pass,out,6,0x00,0x00000,64,udp,17,56,2001:db8::1,"
                                  "2001:db8::2,40000,53,48")
    assert (v6["pf.class"], v6["pf.hop_limit"], v6["pf.protocol_text"], v6["pf.protocol_id"]) == \
        ("0x00", "64", "udp", "17")
    for bad in ("", "5,,,1,em0,match,block,in", "5,,,1,em0,match,block,sideways,4,0x0,,64,0,0,DF,6,tcp,60,a,b",
                "5,,,1,em0,match,block,in,5,x", "5,,,1,em0,match,block,in,4,0x0,,64,0,0,DF,6,tcp,60,host,10.0.0.1"):
        with pytest.raises(firewall.FilterlogError):
            firewall.parse_filterlog(bad)


# --------------------------------------------------------------------------------------------------
# Generic CSV


def test_generic_csv_aliases_and_local_time(tmp_path: Path) -> None:
    path = NET / "firewall" / "generic-firewall.csv"
    assert sniffed(path) == {"generic-csv"}
    got = Read("generic-csv", path, tmp_path, tz="Europe/Berlin")
    assert got.count == 4 and got.issues.count == 0
    allow = got.at(2)
    assert allow["@timestamp"] == utc(2023, 3, 27, 8, 0, 0)
    assert (allow["source.ip"], allow["source.port"], allow["destination.ip"], allow["destination.port"]) == \
        ("10.0.0.23", 51000, "203.0.113.7", 443)
    assert (allow["network.transport"], allow["network.protocol"], allow["event.action"]) == ("tcp", "ssl", "allow")
    assert (allow["source.bytes"], allow["destination.bytes"], allow["Rule"]) == (1520, 64211, "Outbound web")
    assert (got.at(3)["event.action"], got.at(3)["Action"]) == ("drop", "deny")
    assert got.at(4)["Rule"] == "DNS, internal"
    assert (got.at(5)["source.ip"], got.at(5)["event.action"]) == ("2001:db8:0:1::23", "reject")


def test_generic_csv_epoch_times_and_numbers(tmp_path: Path) -> None:
    path = NET / "firewall" / "flows-epoch.csv"
    assert sniffed(path) == {"generic-csv"}
    got = Read("generic-csv", path, tmp_path, tz="America/New_York")  # epoch and Z are UTC whatever the zone
    assert got.count == 4 and got.issues.count == 0
    assert [r["@timestamp"] for r in got.rows] == [utc(2023, 3, 27, 8, 0, 0), utc(2023, 3, 27, 8, 0, 1, 250000),
                                                   utc(2023, 3, 27, 8, 0, 2, 500000), utc(2023, 3, 27, 8, 0, 3)]
    assert [r["network.transport"] for r in got.rows] == ["tcp", "tcp", "udp", "icmp"]
    assert [r["event.action"] for r in got.rows] == ["allow", "drop", "allow", "reject"]
    assert [r["event.duration"] for r in got.rows] == [12.5, 0.0, 0.02, None]
    assert got.at(5)["destination.port"] is None


def test_generic_csv_whose_columns_change(tmp_path: Path) -> None:
    got = Read("generic-csv", NET / "firewall" / "changing-columns.csv", tmp_path, tz="UTC")
    assert [r["line"] for r in got.rows] == [2, 7, 9]
    split = got.at(7)  # date and time in two columns, under the second header
    assert split["@timestamp"] == utc(2023, 3, 27, 10, 0, 3)
    assert (split["source.ip"], split["network.transport"], split["event.action"]) == ("10.0.0.31", "udp", "allow")
    problems = got.messages()
    assert [line for line, _ in problems] == [3, 4, 5, 6, 8]
    assert "4 columns, the header 5" in problems[0][1] and "6 columns, the header 5" in problems[1][1]
    assert "unreadable time 'not a time'" in problems[2][1]
    assert "new header with 7 columns" in problems[3][1]


def test_generic_csv_quoted_lines_and_bad_records(tmp_path: Path) -> None:
    path = tmp_path / "export.csv"
    path.write_text('timestamp,src,dst,note\n'
                    '2023-03-27T10:00:00Z,10.0.0.1,10.0.0.2,"two\nlines"\n'
                    '2023-03-27T10:00:01Z,10.0.0.1,10.0.0.3,"' + "x" * 200_000 + '"\n'
                    '2023-03-27T10:00:02Z,10.0.0.1,10.0.0.4,ok\n', encoding="utf-8")
    got = Read("generic-csv", path, tmp_path)
    assert [(r["line"], r["destination.ip"]) for r in got.rows] == [(2, "10.0.0.2"), (5, "10.0.0.4")]
    assert got.at(2)["note"] == "two\nlines"
    assert [(line, "CSV error" in message) for line, message in got.messages()] == [(4, True)]


def test_generic_csv_refuses_other_tables() -> None:
    assert not firewall.sniff_generic_csv(b"name,address,city\nAnna,Main St 1,Bern\n")
    assert not firewall.sniff_generic_csv(b"time,source,destination\nyesterday,office,home\nmonday,home,shop\n")
    assert not firewall.sniff_generic_csv(b"src,dst\n10.0.0.1,10.0.0.2\n")  # no time column
    assert firewall.sniff_generic_csv(b"@timestamp,source.ip,destination.ip\n")  # header only


# --------------------------------------------------------------------------------------------------
# Windows DHCP Server audit log


def test_dhcp_audit_ipv4(tmp_path: Path) -> None:
    path = NET / "dhcp" / "DhcpSrvLog-Mon.log"
    assert sniffed(path) == {"windows-dhcp-audit"}
    got = Read("windows-dhcp-audit", path, tmp_path, tz="Europe/Berlin")
    assert got.table == "net_dhcp"
    lines = data_lines(path)
    header = next(i for i, x in enumerate(lines) if x.startswith("ID,Date,Time"))
    assert got.count == len(lines) - header - 1 == 12
    assert got.issues.count == 0
    assign = got.at(39)
    assert assign["@timestamp"] == utc(2023, 3, 27, 7, 58, 12)  # the day after the switch to CEST
    assert (assign["event.code"], assign["event.action"], assign["Description"]) == ("10", "assign", "Assign")
    assert (assign["client.ip"], assign["client.mac"], assign["host.hostname"]) == \
        ("10.0.0.23", "aa:bb:cc:dd:ee:ff", "pc-anna.corp.local")
    assert (assign["TransactionID"], assign["VendorClass(ASCII)"]) == ("2385626957", "MSFT 5.0")
    started = got.at(35)
    assert started["@timestamp"] == utc(2023, 3, 26, 22, 0, 1) and started["event.action"] == "log-started"
    assert [(r["event.code"], r["event.action"]) for r in got.rows if r["client.ip"] == "10.0.0.23"] == \
        [("10", "assign"), ("30", "dns-update-request"), ("32", "dns-update-success"), ("12", "release")]
    assert got.at(36)["event.action"] == "rogue-detection"
    assert got.at(46)["event.action"] == "log-stopped"  # a row with 7 of the 19 fields


def test_dhcp_audit_ipv6(tmp_path: Path) -> None:
    path = NET / "dhcp" / "DhcpV6SrvLog-Mon.log"
    assert sniffed(path) == {"windows-dhcp-audit"}
    got = Read("windows-dhcp-audit", path, tmp_path, tz="Europe/Berlin")
    assert got.count == 5 and got.issues.count == 0
    solicit = got.at(38)
    assert (solicit["event.code"], solicit["event.action"]) == ("11000", "solicit")
    assert (solicit["client.ip"], solicit["host.hostname"], solicit["client.mac"]) == \
        ("2001:db8:0:1::23", "pc-anna.corp.local", None)
    assert solicit["Duid Bytes(Hex)"] == "000100012B3C4D5EAABBCCDDEEFF" and solicit["dhcp.ip_version"] == "6"
    assert got.at(40)["event.action"] == "release"


def test_dhcp_audit_without_preamble_or_in_another_language(tmp_path: Path) -> None:
    bare = tmp_path / "bare.log"
    bare.write_text("10,05/01/19,17:07:20,Assign,10.5.1.12,,F8CAB82B00D4,,3556780984,0,,,,,,,,,0\n"
                    "11,05/01/19,17:08:14,Renew,10.5.1.12,,F8CAB82B00D4,,3556780984,0,,,,,,,,,0\n"
                    "11000,05/01/19,17:09:00,DHCPV6 Solicit,2001:db8::7,host7,,18,0004A3,,,,,\n")
    assert sniffed(bare) == {"windows-dhcp-audit"}
    got = Read("windows-dhcp-audit", bare, tmp_path)
    assert [(r["event.action"], r["client.ip"]) for r in got.rows] == \
        [("assign", "10.5.1.12"), ("renew", "10.5.1.12"), ("solicit", "2001:db8::7")]
    assert got.at(3)["host.hostname"] == "host7" and got.at(3)["Duid Length"] == "18"

    german = tmp_path / "DhcpSrvLog-Mo.log"
    german.write_text("\t\tMicrosoft DHCP-Dienstaktivitätsprotokoll\n\nEreignis-ID  Bedeutung\n00\tDas Protokoll "
                      "wurde gestartet.\n\nID,Datum,Uhrzeit,Beschreibung,IP-Adresse,Hostname,MAC-Adresse,"
                      "Benutzername, Transaktions-ID, QErgebnis,Probezeit, Korrelations-ID,Dhcid,"
                      "Herstellerklasse(Hex),Herstellerklasse(ASCII),Benutzerklasse(Hex),"
                      "Benutzerklasse(ASCII),Relay-Agent-Informationen,DNS-Registrierungsfehler.\n"
                      "10,03/27/23,09:58:12,Zuweisen,10.0.0.23,pc-anna,AABBCCDDEEFF,,1,0,,,,,,,,,0\n",
                      encoding="utf-8")
    assert sniffed(german) == {"windows-dhcp-audit"}
    got = Read("windows-dhcp-audit", german, tmp_path)
    assert got.count == 1 and got.issues.count == 0
    assert (got.rows[0]["event.action"], got.rows[0]["Description"]) == ("assign", "Zuweisen")


def test_dhcp_audit_bad_rows(tmp_path: Path) -> None:
    path = tmp_path / "DhcpSrvLog-Tue.log"
    path.write_text("ID,Date,Time,Description,IP Address,Host Name,MAC Address\n"
                    "10,13/45/23,10:00:00,Assign,10.0.0.1,a,AABBCCDDEEFF\n"
                    "garbage line\n"
                    "10,03/28/23,10:00:00,Assign,10.0.0.2,b,AABBCC\n")
    got = Read("windows-dhcp-audit", path, tmp_path)
    assert got.count == 1 and got.rows[0]["client.mac"] == "AABBCC"  # not a MAC: kept as written
    assert [line for line, _ in got.messages()] == [2, 3]
    assert "MM/DD/YY" in got.messages()[0][1]


# --------------------------------------------------------------------------------------------------
# Values every reader parses alike (values.py)


def test_addresses_and_numbers_read_alike() -> None:
    assert [canonical_ip(v) for v in (None, "", "  ", "-", 5, ["10.0.0.1"])] == [None] * 6
    assert canonical_ip(" 10.0.0.1 ") == "10.0.0.1"
    assert canonical_ip("[2001:DB8:0:0::1]") == "2001:db8::1"
    assert canonical_ip("::FFFF:10.0.0.1") == "::ffff:10.0.0.1"  # the same spelling on every Python version
    assert canonical_ip("fw.corp.local") == "fw.corp.local"  # not an address: kept as written
    assert [is_ip(v) for v in ("10.0.0.1", "[2001:db8::1]", "fe80::1%eth0", " ::1 ")] == [True] * 4
    assert [is_ip(v) for v in (None, "", "-", "cafe.babe", "www.example.com", "10.0.0.256", "[::1")] == [False] * 7
    assert [port(v) for v in ("443", " 0 ", "65536", "-1", "-", None, "8e1")] == [443, 0, None, None, None, None, None]
    assert to_int("9" * 19) is None and to_int("9" * 18) == int("9" * 18)


def test_ipv4_mapped_addresses_match_across_readers(tmp_path: Path) -> None:
    """A dual-stack firewall's `::ffff:a.b.c.d` is spelled as the DNS readers spell it."""
    path = tmp_path / "flows.csv"
    path.write_text("timestamp,src,dst\n2023-03-27T10:00:00Z,::ffff:10.0.0.23,[2001:DB8::7]\n")
    got = Read("generic-csv", path, tmp_path)
    assert (got.rows[0]["source.ip"], got.rows[0]["destination.ip"]) == ("::ffff:10.0.0.23", "2001:db8::7")


AMBIGUOUS = {  # two lines in the hour Berlin lives twice (29 October 2023, 02:00-03:00 CEST then CET)
    "windows-firewall": "#Software: Microsoft Windows Firewall\n#Fields: date time action protocol src-ip dst-ip\n"
                        "2023-10-29 02:30:00 DROP UDP 10.0.0.9 10.0.0.255\n"
                        "2023-10-29 02:45:00 DROP UDP 10.0.0.9 10.0.0.255\n",
    "windows-dhcp-audit": "ID,Date,Time,Description,IP Address,Host Name,MAC Address\n"
                          "10,10/29/23,02:30:00,Assign,10.0.0.1,a,AABBCCDDEEFF\n"
                          "11,10/29/23,02:45:00,Renew,10.0.0.1,a,AABBCCDDEEFF\n",
    "generic-csv": "time,src,dst\n2023-10-29 02:30:00,10.0.0.9,10.0.0.255\n2023-10-29 02:45:00,10.0.0.9,10.0.0.255\n",
    "pf-filterlog": "".join(f"2023-10-29T02:{m}:00 fw filterlog[1]: {PF_TCP}\n" for m in ("30", "45")),
}


@pytest.mark.parametrize("fmt", sorted(AMBIGUOUS))
def test_local_time_in_a_dst_change_is_reported_once_per_file(fmt: str, tmp_path: Path) -> None:
    """Read with the offset before the change (CEST), and said once, on the first such line — as the
    DNS readers do (the firewall and DHCP readers used to say nothing)."""
    path = tmp_path / "ambiguous.log"
    path.write_text(AMBIGUOUS[fmt])
    got = Read(fmt, path, tmp_path, tz="Europe/Berlin")
    assert [r["@timestamp"] for r in got.rows] == [utc(2023, 10, 29, 0, 30), utc(2023, 10, 29, 0, 45)]
    first = min(r["line"] for r in got.rows)
    assert [(line, "is ambiguous (clocks went back)" in message) for line, message in got.messages()] == \
        [(first, True)]


# --------------------------------------------------------------------------------------------------
# Recognition is exclusive; hostile input


FIXTURE_FORMATS = {
    "proxy/squid-combined.log": "squid-common",
    "proxy/squid-native-variants.log": "squid-native",
    "firewall/filterlog-rfc3164.log": "pf-filterlog",
    "firewall/filterlog-rfc5424.log": "pf-filterlog",
    "firewall/generic-firewall.csv": "generic-csv",
    "firewall/flows-epoch.csv": "generic-csv",
    "firewall/changing-columns.csv": "generic-csv",
    "dhcp/DhcpSrvLog-Mon.log": "windows-dhcp-audit",
    "dhcp/DhcpV6SrvLog-Mon.log": "windows-dhcp-audit",
}


@pytest.mark.parametrize("name", sorted(FIXTURE_FORMATS))
def test_each_fixture_is_recognised_only_as_its_format(name: str) -> None:
    assert sniffed(NET / name) == {FIXTURE_FORMATS[name]}


def test_prose_junk_and_other_logs_are_refused(tmp_path: Path) -> None:
    prose = shared("zeek", "rita", "test_data", "text_file", "conn.log")  # lorem ipsum named conn.log
    junk = random.Random(7).randbytes(64 * 1024)
    zeek = b"#separator \\x09\n#set_separator\t,\n#fields\tts\tuid\n#types\ttime\tstring\n1.0\tC1\n"
    evtx_json = orjson.dumps({"@timestamp": "2023-03-27T10:00:00Z", "winlog": {"event_id": 1}}) + b"\n"
    for head in (prose.read_bytes()[:HEAD], junk, zeek, evtx_json, b"", b"\n\n\n"):
        assert not {f.name for f in NET_FORMATS if f.name in MINE and f.sniff(head)}


def test_nothing_else_in_the_shared_corpus_or_other_fixtures_is_claimed() -> None:
    """Zeek, Suricata, DNS-server logs, intel CSVs, JSON exports, web-server logs, triage artefacts: of
    all the real third-party files, only the Squid and pfirewall samples are ours."""
    root = shared()
    candidates = [p for p in root.rglob("*") if p.is_file() and p.suffix.lower() not in (".evtx", ".yml", ".yaml")]
    candidates += [p for p in NET.rglob("*") if p.is_file() and p.parent.name not in ("proxy", "firewall", "dhcp")]
    claimed: dict[str, set[str]] = {}
    for path in candidates:
        with path.open("rb") as handle:
            head = handle.read(HEAD)
        names = {f.name for f in NET_FORMATS if f.name in MINE and f.sniff(head)}
        if names:
            claimed[path.relative_to(root).as_posix() if path.is_relative_to(root) else path.name] = names
    assert len(candidates) > 1000
    assert claimed == {
        **{"/".join((*SQUID, f"access{i}.log")): {"squid-native"} for i in range(1, 5)},
        "artifacts/plaso/firewall/pfirewall.log": {"windows-firewall"},
        "artifacts/betahydri-parsefirewalllog/firewall/pfirewall.log": {"windows-firewall"},
    }


@pytest.mark.parametrize("fmt", sorted(MINE))
def test_every_reader_survives_every_other_input(fmt: str, tmp_path: Path) -> None:
    """Chosen wrongly (by name, or a sniff mistake), a reader reports and goes on; it never raises."""
    junk = tmp_path / "junk.bin"
    junk.write_bytes(random.Random(3).randbytes(50_000) + b"\n\x00\xff" * 100)
    got = Read(fmt, junk, tmp_path)
    assert got.count == 0 and got.issues.count > 0
    for name, own in FIXTURE_FORMATS.items():
        got = Read(fmt, NET / name, tmp_path)
        if own != fmt:
            assert got.count == 0 or got.issues.count > 0, name  # nothing read silently from a stranger


def test_huge_truncated_and_cp1252_lines(tmp_path: Path) -> None:
    good = "1679904000.123    456 10.0.0.23 TCP_MISS/200 1234 GET http://a.example/ - HIER_DIRECT/203.0.113.7 -\n"
    path = tmp_path / "access.log"
    with path.open("wb") as out:
        out.write(good.encode())
        out.write(b"1679904001.000 " + b"A" * (17 * 1024 * 1024) + b"\n")  # beyond the line limit
        out.write(good.encode())
        out.write(b"1679904002.000      0 10.0.0.23 TCP_MISS/200 12")  # cut mid-line at the end
    got = Read("squid-native", path, tmp_path)
    assert [r["line"] for r in got.rows] == [1, 3]
    assert [line for line, _ in got.messages()] == [2, 4]
    assert "longer than" in got.messages()[0][1] and "not a Squid native" in got.messages()[1][1]

    latin = tmp_path / "combined.log"
    latin.write_bytes('10.0.0.23 - m\xfcller [27/Mar/2023:10:00:00 +0200] "GET http://a.example/ HTTP/1.1" 200 1 '
                      '"-" "-" TCP_MISS:HIER_DIRECT\n'.encode("cp1252"))
    got = Read("squid-common", latin, tmp_path)
    assert got.rows[0]["user.name"] == "müller"
    assert got.messages() == [(1, "line is not UTF-8; read as Windows-1252")]


def test_ingest_end_to_end(tmp_path: Path) -> None:
    """Through the real ingest: sniffed, read with the zone given per source, counted in the manifest."""
    from turncoat.ingest import ingest
    from turncoat.store.case import Case

    evidence = tmp_path / "evidence"
    evidence.mkdir()
    for name in ("proxy/squid-combined.log", "dhcp/DhcpSrvLog-Mon.log", "firewall/generic-firewall.csv"):
        (evidence / Path(name).name).write_bytes((NET / name).read_bytes())
    (evidence / "pfirewall.log").write_bytes(shared("artifacts", "plaso", "firewall", "pfirewall.log").read_bytes())
    case = tmp_path / "case"
    ingest([evidence], Case(case), source_tz={"windows-firewall": "Europe/Berlin", "*": "UTC"})
    items = {Path(i["path"]).name: i for i in orjson.loads((case / "manifest.json").read_bytes())["items"]}
    assert {n: (i["reader"], i["records"]) for n, i in items.items()} == {
        "squid-combined.log": ("squid-common", 6),
        "DhcpSrvLog-Mon.log": ("windows-dhcp-audit", 12),
        "generic-firewall.csv": ("generic-csv", 4),
        "pfirewall.log": ("windows-firewall", 15),
    }
    assert items["pfirewall.log"]["time_zone"] == "Europe/Berlin"
    first = duckdb.sql(f"SELECT min(\"@timestamp\") FROM read_parquet('{(case / 'parquet' / 'net_flow').as_posix()}"
                       "/*.parquet', union_by_name=true) WHERE \"observer.type\" = 'windows-firewall'").fetchall()
    assert first == [(utc(2005, 4, 11, 6, 5, 57),)]
