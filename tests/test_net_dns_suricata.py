"""DNS server logs (Windows debug log, BIND, dnsmasq/Pi-hole, Unbound) and Suricata EVE: each read
from files in the layout the product writes, with exact rows, strict sniffing and hostile input."""

from __future__ import annotations

import os
import random
import shutil
from datetime import UTC, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pyarrow.parquet as pq
import pytest
from conftest import SHARED

from turncoat.evidence.base import IssueLog
from turncoat.evidence.network import NetContext, dns_servers, sniff_network, suricata
from turncoat.evidence.network.dns_servers import (
    read_bind_query,
    read_dnsmasq,
    read_unbound,
    read_windows_dns_debug,
    windows_datetime,
)
from turncoat.evidence.network.suricata import EveReader, read_suricata_eve
from turncoat.store.net_writer import NetWriter

FIX = Path(__file__).resolve().parent / "fixtures" / "network"
DNS = FIX / "dns"
EVE = FIX / "suricata"
PARIS = ZoneInfo("Europe/Paris")
MINE = {f.name: f for f in [*dns_servers.FORMATS, *suricata.FORMATS]}
OWN_FIXTURES = {
    "dns/windows/dns.log": "windows-dns-debug",
    "dns/windows/dns-details.log": "windows-dns-debug",
    "dns/windows/dns-de.log": "windows-dns-debug",
    "dns/bind/query.log": "bind-query",
    "dns/bind/query-9.9.log": "bind-query",
    "dns/bind/query-iso8601-utc.log": "bind-query",
    "dns/bind/named-syslog.log": "bind-query",
    "dns/dnsmasq/pihole.log": "dnsmasq",
    "dns/dnsmasq/syslog-extra.log": "dnsmasq",
    "dns/unbound/unbound.log": "unbound",
    "dns/unbound/unbound-ascii.log": "unbound",
    "suricata/eve.json": "suricata-eve",
    "suricata/eve-v1.json": "suricata-eve",
}


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


class Run:
    """One reader call with its rows (per table, in file order) and its problems."""

    def __init__(self, reader, path: Path, tmp_path: Path, tz=UTC, **kwargs) -> None:
        out = tmp_path / f"out-{path.name}-{len(list(tmp_path.iterdir()))}"
        self.ctx = NetContext("ev1", IssueLog(), NetWriter(out, "t"), tz)
        self.written = reader(path, self.ctx, **kwargs)
        self.tables: dict[str, list[dict]] = {}
        if out.exists():
            for table in out.iterdir():
                rows = [row for part in sorted(table.glob("*.parquet")) for row in pq.read_table(part).to_pylist()]
                self.tables[table.name] = sorted(rows, key=lambda r: r["line"])

    def rows(self, table: str = "net_dns") -> list[dict]:
        return self.tables.get(table, [])

    def pick(self, *columns: str, table: str = "net_dns") -> list[tuple]:
        return [tuple(row.get(c) for c in columns) for row in self.rows(table)]

    @property
    def problems(self) -> list[tuple[str, int | None]]:
        return [(i.message, i.line) for i in self.ctx.issues.listed]


def copy_with_mtime(source: Path, tmp_path: Path, when: datetime) -> Path:
    target = tmp_path / source.name
    shutil.copyfile(source, target)
    os.utime(target, (when.timestamp(), when.timestamp()))
    return target


# --- Windows DNS Server debug log --------------------------------------------------------------------

WIN_COLUMNS = ("line", "@timestamp", "source.ip", "dns.question.name", "dns.question.type", "dns.response_code",
               "network.transport", "windows_dns.packets")
WIN_ROWS = [
    (32, utc("2023-03-26 00:59:51"), "10.0.0.31", "23.0.0.10.in-addr.arpa", "PTR", "NOERROR", "udp", "response"),
    (33, utc("2023-03-26 00:59:58"), "10.0.0.23", "www.google.com", "A", "NOERROR", "udp", "query+response"),
    # 03:00 local is the first minute of summer time: one hour later in local time, two seconds in UTC
    (37, utc("2023-03-26 01:00:02"), "10.0.0.42", "msstorageboxes.com", "A", "NXDOMAIN", "udp", "query+response"),
    (41, utc("2023-03-26 01:00:05"), "fe80::9c1a:2bff:fe3d:4e5f", "akamaicontainer.com", "AAAA", "NOERROR", "udp",
     "query+response"),
    (43, utc("2023-03-26 01:00:07"), "10.0.0.23", "msstorageboxes.com", "TXT", "NXDOMAIN", "tcp", "query+response"),
    (47, utc("2023-03-26 01:00:11"), "10.0.0.5", "corp.example.local", "SOA", "NOERROR", "udp", "query+response"),
    (49, utc("2023-03-26 01:00:14"), "10.0.0.55", "update.3cx.com", "A", None, "udp", "query"),
]


def test_windows_debug_log_questions_paired_with_responses(tmp_path: Path) -> None:
    run = Run(read_windows_dns_debug, DNS / "windows" / "dns.log", tmp_path, PARIS)
    assert run.problems == []
    assert run.pick(*WIN_COLUMNS) == WIN_ROWS
    assert run.written == 7
    first = run.rows()[1]
    assert first["observer.type"] == "windows-dns" and first["event.dataset"] == "windows_dns.debug"
    assert first["dns.id"] == "5a1b" and first["windows_dns.flags"] == "0001"
    assert first["windows_dns.response_flags"] == "8081"
    assert all(row["destination.ip"] is None and row["dns.answers"] is None for row in run.rows())


def test_windows_debug_log_details_give_port_and_answers(tmp_path: Path) -> None:
    run = Run(read_windows_dns_debug, DNS / "windows" / "dns-details.log", tmp_path, ZoneInfo("Europe/London"))
    assert run.problems == []
    assert run.pick("line", "@timestamp", "source.ip", "source.port", "dns.question.name", "dns.question.type",
                    "dns.response_code", "dns.answers") == [
        (31, utc("2023-03-27 13:05:09"), "10.0.0.23", 61044, "raw.githubusercontent.com", "A", "NOERROR",
         "github.map.fastly.net,185.199.108.133"),
        (116, utc("2023-03-27 13:05:12"), "::1", 57613, "fs01.corp.example.local", "AAAA", "NOERROR", "fd00::10"),
    ]


def test_windows_debug_log_german_dates(tmp_path: Path) -> None:
    run = Run(read_windows_dns_debug, DNS / "windows" / "dns-de.log", tmp_path, ZoneInfo("Europe/Berlin"))
    assert run.problems == []
    assert run.pick("@timestamp", "dns.question.name", "dns.response_code") == [
        (utc("2023-03-27 12:05:09"), "ocsp.digicert.com", "NOERROR"),
        (utc("2023-03-27 12:05:10"), "pbxsources.com", None),
    ]


@pytest.mark.parametrize(("date", "clock", "ampm", "order", "expected"), [
    ("3/26/2023", "1:59:58", "AM", "mdy", datetime(2023, 3, 26, 1, 59, 58)),
    ("3/26/2023", "12:05:00", "AM", "mdy", datetime(2023, 3, 26, 0, 5)),
    ("3/26/2023", "12:05:00", "PM", "mdy", datetime(2023, 3, 26, 12, 5)),
    ("26/03/2023", "14:05:09", None, "dmy", datetime(2023, 3, 26, 14, 5, 9)),
    ("26.03.2023", "14:05:09", None, "mdy", datetime(2023, 3, 26, 14, 5, 9)),  # dots are always day first
    ("2023-03-26", "14:05:09", None, "dmy", datetime(2023, 3, 26, 14, 5, 9)),
    ("2023/03/26", "14:05:09", None, "mdy", datetime(2023, 3, 26, 14, 5, 9)),
])
def test_windows_date_forms(date: str, clock: str, ampm: str | None, order: str, expected: datetime) -> None:
    assert windows_datetime(date, clock, ampm, order) == expected


@pytest.mark.parametrize(("date", "clock", "ampm"), [("26/13/2023", "10:00:00", None), ("3/26/23", "10:00:00", None),
                                                      ("3/26/2023", "13:00:00", "PM")])
def test_windows_impossible_dates_refused(date: str, clock: str, ampm: str | None) -> None:
    with pytest.raises(ValueError):
        windows_datetime(date, clock, ampm, "dmy")


def test_windows_undecidable_date_order_is_reported(tmp_path: Path) -> None:
    text = (DNS / "windows" / "dns-de.log").read_text().replace("27.03.2023", "05/03/2023")
    path = tmp_path / "dns.log"
    path.write_text(text)
    run = Run(read_windows_dns_debug, path, tmp_path)
    told = "no date in the first lines tells day from month; dates read as day/month (24-hour clock)"
    assert run.problems == [(told, None)]
    assert run.pick("@timestamp")[0] == (utc("2023-03-05 14:05:09"),)


def test_windows_unknown_clock_marker_is_reported_by_line(tmp_path: Path) -> None:
    lines = (DNS / "windows" / "dns.log").read_text().splitlines()
    lines[32] = lines[32].replace(" AM ", " a.m. ")  # line 33, a locale this reader does not know
    path = tmp_path / "dns.log"
    path.write_text("\n".join(lines) + "\n")
    run = Run(read_windows_dns_debug, path, tmp_path, PARIS)
    assert [line for _, line in run.problems] == [33]
    assert "not understood" in run.problems[0][0]
    # its response (line 37) is still a row, marked as seen without the question
    assert run.pick("line", "dns.question.name", "windows_dns.packets")[1] == (36, "www.google.com", "response")


def test_windows_debug_log_saved_as_utf16(tmp_path: Path) -> None:
    text = (DNS / "windows" / "dns.log").read_bytes().decode("ascii")
    path = tmp_path / "dns.log"
    path.write_bytes(text.encode("utf-16"))  # with BOM, as Notepad or PowerShell save it
    assert sniff_network(path.read_bytes()[:262144]) == "windows-dns-debug"
    run = Run(read_windows_dns_debug, path, tmp_path, PARIS)
    assert run.problems == []
    assert run.pick(*WIN_COLUMNS) == WIN_ROWS


def test_windows_truncated_and_junk_lines(tmp_path: Path) -> None:
    lines = (DNS / "windows" / "dns.log").read_bytes().splitlines()
    lines[33:33] = [b"Lorem ipsum dolor sit amet", b"\x8f\x00\xff\xfe garbage \x01\x02"]  # lines 34, 35
    cut = b"\r\n".join(lines)
    cut = cut[:cut.rindex(b"UDP Rcv 10.0.0.55") + 11]  # the writer stopped mid-line
    path = tmp_path / "dns.log"
    path.write_bytes(cut)
    run = Run(read_windows_dns_debug, path, tmp_path, PARIS)
    assert [line for _, line in run.problems] == [34, 35, 35, 51]
    assert "Lorem" in run.problems[0][0] and "NUL" in run.problems[2][0]
    assert "packet line not understood" in run.problems[3][0]
    assert [row[3] for row in run.pick(*WIN_COLUMNS)] == [r[3] for r in WIN_ROWS[:-1]]


# --- BIND --------------------------------------------------------------------------------------------

BIND_COLUMNS = ("line", "@timestamp", "source.ip", "source.port", "destination.ip", "network.transport",
                "dns.question.name", "dns.question.type", "bind.flags", "bind.view", "bind.ecs")


def test_bind_query_log(tmp_path: Path) -> None:
    run = Run(read_bind_query, DNS / "bind" / "query.log", tmp_path, PARIS)
    assert run.problems == []
    assert run.pick(*BIND_COLUMNS) == [
        (1, datetime(2023, 3, 26, 0, 59, 59, 120000, UTC), "10.0.0.23", 53211, "10.0.0.1", "udp", "www.example.com",
         "A", "+E(0)K", None, None),
        (2, datetime(2023, 3, 26, 1, 0, 0, 870000, UTC), "2001:db8:0:1::23", 40001, "2001:db8:0:1::53", "udp",
         "akamaicontainer.com", "AAAA", "+E(0)K", None, None),
        (3, datetime(2023, 3, 26, 1, 0, 1, 2000, UTC), "10.0.0.24", 5353, "10.0.0.1", "udp", "office.example", "MX",
         "-E(0)DC", "internal", None),
        (4, datetime(2023, 3, 26, 1, 0, 2, 500000, UTC), "10.0.0.42", 49152, "10.0.0.1", "tcp", "msstorageboxes.com",
         "TXT", "+E(0)TK", None, None),
        (6, datetime(2023, 3, 26, 1, 0, 4, 210000, UTC), "10.0.0.43", 60000, "10.0.0.1", "udp", ".", "NS", "-E(0)D",
         None, None),
        (7, datetime(2023, 3, 26, 1, 0, 5, 999000, UTC), "10.0.0.44", 53000, "10.0.0.1", "udp", "ecs.example.net", "A",
         "+E(0)", None, "198.51.100.0/24/0"),
    ]


def test_bind_older_and_utc_shapes(tmp_path: Path) -> None:
    old = Run(read_bind_query, DNS / "bind" / "query-9.9.log", tmp_path, ZoneInfo("America/New_York"))
    assert old.pick("@timestamp", "source.ip", "dns.question.name", "dns.question.type", "bind.flags") == [
        (datetime(2023, 3, 27, 14, 0, 0, 123000, UTC), "10.0.0.25", "old.example.com", "A", "+"),
        (datetime(2023, 3, 27, 14, 0, 0, 456000, UTC), "10.0.0.25", "old.example.com", "AAAA", "+E"),
    ]
    iso = Run(read_bind_query, DNS / "bind" / "query-iso8601-utc.log", tmp_path, PARIS)  # the Z wins over the zone
    assert iso.pick("@timestamp", "dns.question.type") == [(datetime(2023, 3, 27, 8, 0, 0, 123000, UTC), "A"),
                                                          (datetime(2023, 3, 27, 8, 0, 1, 500000, UTC), "AAAA")]
    assert old.problems == [] and iso.problems == []


@pytest.mark.parametrize("modified", ["2024-01-01T00:10:00", "2024-06-30T12:00:00"])
def test_bind_syslog_year_from_modification_time(tmp_path: Path, modified: str) -> None:
    path = copy_with_mtime(DNS / "bind" / "named-syslog.log", tmp_path, utc(modified))
    run = Run(read_bind_query, path, tmp_path)
    assert run.problems == []
    assert run.pick("@timestamp", "dns.question.name") == [(utc("2023-12-31 23:59:58"), "pbxsources.com"),
                                                          (utc("2024-01-01 00:00:03"), "journalide.org")]


def test_bind_syslog_explicit_year_rolls_over(tmp_path: Path) -> None:
    run = Run(read_bind_query, DNS / "bind" / "named-syslog.log", tmp_path, year=2019)
    assert run.pick("@timestamp") == [(utc("2019-12-31 23:59:58"),), (utc("2020-01-01 00:00:03"),)]


# --- dnsmasq / Pi-hole -------------------------------------------------------------------------------

DNSMASQ_ROWS = [
    (5, utc("2023-03-26 00:59:58"), "10.0.0.23", "www.3cx.com", "A", "NOERROR",
     "www.3cx.com.cdn.cloudflare.net,104.18.21.226,104.18.20.226", "reply", "9.9.9.9"),
    (10, utc("2023-03-26 01:00:01"), "10.0.0.42", "msstorageboxes.com", "A", "NOERROR", "0.0.0.0", "gravity blocked",
     None),
    (12, utc("2023-03-26 01:00:02"), "fd00::23", "akamaicontainer.com", "AAAA", "NXDOMAIN", None, "reply", "9.9.9.9"),
    (15, utc("2023-03-26 01:00:03"), "10.0.0.23", "5.0.0.10.in-addr.arpa", "PTR", "NOERROR", "fs01.lan", "/etc/hosts",
     None),
    (17, utc("2023-03-26 01:00:04"), "10.0.0.24", "www.3cx.com", "A", "NOERROR",
     "www.3cx.com.cdn.cloudflare.net,104.18.21.226,104.18.20.226", "cached", None),
    (23, utc("2023-03-26 01:00:06"), "10.0.0.23", "www.3cx.com", "TYPE65", "NOERROR", None, "reply", "9.9.9.9"),
    (26, utc("2023-03-26 01:00:07"), "10.0.0.55", "update.3cx.com", "A", None, None, None, None),
]
DNSMASQ_COLUMNS = ("line", "@timestamp", "source.ip", "dns.question.name", "dns.question.type", "dns.response_code",
                   "dns.answers", "dnsmasq.answer_source", "dnsmasq.upstream")


def test_pihole_log_with_known_year(tmp_path: Path) -> None:
    run = Run(read_dnsmasq, DNS / "dnsmasq" / "pihole.log", tmp_path, PARIS, year=2023)
    assert run.problems == []
    assert run.pick(*DNSMASQ_COLUMNS) == DNSMASQ_ROWS
    assert {row["observer.type"] for row in run.rows()} == {"dnsmasq"}


def test_pihole_log_year_from_modification_time(tmp_path: Path) -> None:
    path = copy_with_mtime(DNS / "dnsmasq" / "pihole.log", tmp_path, datetime(2023, 3, 26, 3, 10, tzinfo=PARIS))
    run = Run(read_dnsmasq, path, tmp_path, PARIS)
    assert run.pick(*DNSMASQ_COLUMNS) == DNSMASQ_ROWS


def test_dnsmasq_extra_pairs_by_serial_across_new_year(tmp_path: Path) -> None:
    path = copy_with_mtime(DNS / "dnsmasq" / "syslog-extra.log", tmp_path, utc("2024-01-02 08:00:00"))
    run = Run(read_dnsmasq, path, tmp_path)
    assert run.problems == []
    assert run.pick("line", "@timestamp", "source.ip", "source.port", "dnsmasq.serial", "dnsmasq.answer_source",
                    "dnsmasq.upstream", "dns.answers") == [
        (1, utc("2023-12-31 23:59:59"), "10.0.0.23", 53211, "118", "reply", "1.1.1.1", "198.51.100.7"),
        (3, utc("2024-01-01 00:00:00"), "10.0.0.24", 40001, "119", "cached", None, "198.51.100.7"),
    ]


def test_dnsmasq_line_in_windows_1252(tmp_path: Path) -> None:
    lines = (DNS / "dnsmasq" / "pihole.log").read_bytes().splitlines(keepends=True)
    lines.insert(25, "Mar 26 03:00:06 dnsmasq[812]: query[A] café.example from 10.0.0.77\n".encode("cp1252"))
    path = tmp_path / "pihole.log"
    path.write_bytes(b"".join(lines))
    run = Run(read_dnsmasq, path, tmp_path, PARIS, year=2023)
    assert run.problems == [("line is not UTF-8; read as Windows-1252", 26)]
    assert ("café.example", "10.0.0.77") in run.pick("dns.question.name", "source.ip")


def test_dnsmasq_huge_line_skipped_and_named(tmp_path: Path) -> None:
    good = (DNS / "dnsmasq" / "pihole.log").read_bytes()
    huge = b"Mar 26 03:00:06 dnsmasq[812]: query[A] " + b"a" * (17 * 1024 * 1024) + b" from 10.0.0.1\n"
    path = tmp_path / "pihole.log"
    path.write_bytes(good[:good.index(b"Mar 26 03:00:07")] + huge + good[good.index(b"Mar 26 03:00:07"):])
    run = Run(read_dnsmasq, path, tmp_path, PARIS, year=2023)
    assert len(run.problems) == 1 and run.problems[0][1] == 26 and "longer than" in run.problems[0][0]
    assert run.pick(*DNSMASQ_COLUMNS)[-1][3] == "update.3cx.com"
    assert len(run.rows()) == len(DNSMASQ_ROWS)


# --- Unbound -----------------------------------------------------------------------------------------

def test_unbound_epoch_log(tmp_path: Path) -> None:
    run = Run(read_unbound, DNS / "unbound" / "unbound.log", tmp_path, PARIS)  # epoch stamps ignore the zone
    assert run.problems == []
    assert run.pick("line", "@timestamp", "source.ip", "dns.question.name", "dns.question.type", "dns.response_code",
                    "unbound.cached") == [
        (4, utc("2023-03-26 01:59:59"), "10.0.0.23", "www.3cx.com", "A", "NOERROR", "0"),
        (6, utc("2023-03-26 02:00:02"), "10.0.0.42", "msstorageboxes.com", "A", "NXDOMAIN", "0"),
        (8, utc("2023-03-26 02:00:03"), "2001:db8::23", "akamaicontainer.com", "AAAA", None, None),
        (9, utc("2023-03-26 02:00:04"), "10.0.0.24", "www.3cx.com", "A", "NOERROR", "1"),
        (11, utc("2023-03-26 02:00:05"), "192.0.2.77", None, None, "FORMERR", None),
    ]


def test_unbound_ascii_time_and_tags(tmp_path: Path) -> None:
    run = Run(read_unbound, DNS / "unbound" / "unbound-ascii.log", tmp_path, PARIS, year=2023)
    assert run.problems == []
    assert run.pick("line", "@timestamp", "dns.question.name", "dns.response_code") == [
        (1, utc("2023-03-26 00:59:59"), "www.3cx.com", "NOERROR"),
        (3, utc("2023-03-26 01:00:02"), "msstorageboxes.com", "NXDOMAIN"),
    ]


# --- Suricata ----------------------------------------------------------------------------------------

ENDS = ("source.ip", "source.port", "destination.ip", "destination.port", "network.transport")


def test_suricata_eve_every_table(tmp_path: Path) -> None:
    ctx = NetContext("ev1", IssueLog(), NetWriter(tmp_path / "out", "t"))
    reader = EveReader(EVE / "eve.json", ctx)
    written = reader.read()
    assert written == 11
    assert dict(reader.skipped) == {"stats": 1, "anomaly": 1}
    assert [(i.line, i.message.split(":")[0]) for i in ctx.issues.listed] == [(17, "truncated JSON record")]

    run = Run(read_suricata_eve, EVE / "eve.json", tmp_path)
    assert run.pick("line", "@timestamp", *ENDS, "dns.question.name", "dns.question.type", "dns.response_code",
                    "dns.answers", "suricata.dns_records") == [
        (2, datetime(2023, 3, 29, 8, 0, 1, 104516, UTC), "10.0.0.23", 53211, "10.0.0.1", 53, "udp", "www.3cx.com", "A",
         "NOERROR", "www.3cx.com.cdn.cloudflare.net,104.18.21.226,104.18.20.226", "query+answer"),
        (4, datetime(2023, 3, 29, 8, 0, 2, 500100, UTC), "fd00::23", 60001, "fd00::1", 53, "udp", "akamaicontainer.com",
         "AAAA", "NOERROR", "2001:db8:3c::45", "query+answer"),
        (6, datetime(2023, 3, 29, 8, 0, 3, 200, UTC), "10.0.0.42", 50123, "10.0.0.1", 53, "udp", "msstorageboxes.com",
         "A", "NXDOMAIN", None, "query+answer"),
        # the answer alone: written server -> client by Suricata, stored client -> server
        (9, datetime(2023, 3, 29, 8, 0, 4, 10000, UTC), "10.0.0.24", 49999, "10.0.0.1", 53, "udp", "journalide.org",
         "A", "NOERROR", "203.0.113.99", "answer"),
    ]
    dns_row = run.rows()[0]
    assert dns_row["flow_id"] == "1523450987655211" and dns_row["in_iface"] == "eth0"
    assert dns_row["community_id"] == "1:TetqNjmKsz+4SaDS8X356LkNmd4="

    assert run.pick("line", *ENDS, "rule.name", "rule.id", "event.severity", "event.action", table="net_alert") == [
        (12, "10.0.0.23", 49710, "198.51.100.20", 80, "tcp",
         "Volex - Suspected 3CX Payload Downloaded Attempt (Windows)", "2023033001", 3, "allowed"),
        # raised on a server -> client packet: the flow's own tuple puts the client first
        (14, "10.0.0.23", 49712, "203.0.113.45", 443, "tcp", "LOCAL 3CX C2 certificate akamaicontainer.com",
         "9000001", 1, "allowed"),
    ]
    assert run.rows("net_alert")[1]["alert.metadata.malware_family"] == '["3CX"]'

    assert run.pick("line", *ENDS, "url.domain", "url.full", "http.request.method", "http.response.status_code",
                    "http.cookie", table="net_http") == [
        (11, "10.0.0.23", 49710, "198.51.100.20", 80, "tcp", "akamaitechcloudservices.com",
         "http://akamaitechcloudservices.com/v2/storage", "GET", 200, "__tutma=3141592654"),
    ]
    assert "3CXDesktopApp" in run.rows("net_http")[0]["user_agent.original"]

    assert run.pick("line", *ENDS, "tls.client.server_name", "tls.client.ja3", "tls.client.ja4",
                    "tls.server.x509.subject", "tls.server.x509.issuer", "tls.server.x509.serial_number",
                    table="net_tls") == [
        (10, "10.0.0.23", 49712, "203.0.113.45", 443, "tcp", "akamaicontainer.com", "cd08e31494f9531f560d64c695473da9",
         "t13d1516h2_8daaf6152771_e5627efa2ab1", "CN=akamaicontainer.com", "C=US, O=Let's Encrypt, CN=R3",
         "04:1A:7C:9E:22:5B:01:3D:8F:6A:55:0C:12:93:AB:CD:EF:01"),
    ]

    assert run.pick("line", "@timestamp", *ENDS, "network.protocol", "source.bytes", "destination.bytes",
                    "event.duration", "event.action", table="net_flow") == [
        (15, datetime(2023, 3, 29, 8, 0, 5, 201004, UTC), "10.0.0.23", 49712, "203.0.113.45", 443, "tcp", "tls", 2113,
         9876, 30.246116, "closed"),
        (16, datetime(2023, 3, 29, 8, 0, 2, 500100, UTC), "fd00::23", 60001, "fd00::1", 53, "udp", "dns", 97, 125,
         0.039907, "established"),
    ]

    # the file record is written server -> client; stored with the client first
    assert run.pick("line", *ENDS, "file.name", "file.hash.md5", "file.hash.sha1", "file.hash.sha256",
                    table="net_files") == [
        (13, "10.0.0.23", 49710, "198.51.100.20", 80, "tcp", "/v2/storage", "74bc2d0b6680faa1a5a76b27e5479cbc",
         "bf939c9c261d27ee7bb92325cc588624fca75429",
         "7986bbaee8940da11ce089383521ab420c443ab7b15ed42aed91fd31ce833896"),
    ]
    assert run.rows("net_files")[0]["fileinfo.size"] == "134752"


def test_suricata_dns_v1_answer_records_join_their_query(tmp_path: Path) -> None:
    run = Run(read_suricata_eve, EVE / "eve-v1.json", tmp_path)
    assert run.problems == []
    assert run.pick("line", "source.ip", "destination.ip", "dns.question.name", "dns.question.type",
                    "dns.response_code", "dns.answers") == [
        (1, "192.168.1.23", "192.168.1.1", "raw.githubusercontent.com", "A", "NOERROR",
         "github.map.fastly.net,185.199.108.133"),
    ]


def test_suricata_bad_lines_named(tmp_path: Path) -> None:
    lines = (EVE / "eve-v1.json").read_bytes().splitlines(keepends=True)
    lines[1:1] = [b"[1, 2, 3]\n", b'{"timestamp": "2019-06-12T14:22:31+0200", "note": "no type"}\n',
                  b'{"timestamp": "yesterday", "event_type": "http", "http": {"hostname": "x.example"}}\n',
                  b"\x00\x01\x02\xff\n"]
    path = tmp_path / "eve.json"
    path.write_bytes(b"".join(lines))
    run = Run(read_suricata_eve, path, tmp_path)
    assert [line for _, line in run.problems] == [2, 3, 4, 5, 5]
    assert "timestamp 'yesterday' not understood" in run.problems[2][0]
    assert run.pick("url.domain", "@timestamp", table="net_http") == [("x.example", None)]
    assert run.pick("dns.answers") == [("github.map.fastly.net,185.199.108.133",)]


def test_suricata_timestamps_without_offset_use_the_zone(tmp_path: Path) -> None:
    path = tmp_path / "eve.json"
    path.write_text('{"timestamp":"2009-11-24T21:27:09.534255","event_type":"alert","src_ip":"192.168.2.7",'
                    '"src_port":1041,"dest_ip":"192.0.2.50","dest_port":80,"proto":"TCP","alert":{"action":"allowed",'
                    '"gid":1,"signature_id":2001999,"rev":9,"signature":"ET MALWARE BTGrab.com Spyware Downloading Ads",'
                    '"category":"A Network Trojan was detected","severity":1}}\n')
    run = Run(read_suricata_eve, path, tmp_path, ZoneInfo("America/Los_Angeles"))
    assert run.pick("@timestamp", "rule.id", table="net_alert") == [(datetime(2009, 11, 25, 5, 27, 9, 534255, UTC),
                                                                     "2001999")]


def test_suricata_flow_times_without_offset_use_the_zone_too(tmp_path: Path) -> None:
    """A flow's start and end are read like the record's own time (they were taken for UTC), and an
    address field holding `-` or a number is no address."""
    path = tmp_path / "eve.json"
    path.write_text('{"timestamp":"2009-11-24T21:28:00.000000","event_type":"flow","src_ip":"192.168.2.7",'
                    '"src_port":1041,"dest_ip":"-","dest_port":80,"proto":"TCP","flow":{"start":'
                    '"2009-11-24T21:27:09.534255","end":"2009-11-24T21:27:19.534255","state":"closed"}}\n'
                    '{"timestamp":"2009-11-24T21:28:01.000000","event_type":"flow","src_ip":7,"dest_ip":"192.0.2.50",'
                    '"proto":"TCP","flow":{"age":0}}\n')
    run = Run(read_suricata_eve, path, tmp_path, ZoneInfo("America/Los_Angeles"))
    assert run.pick("@timestamp", "event.duration", "source.ip", "destination.ip", table="net_flow") == [
        (datetime(2009, 11, 25, 5, 27, 9, 534255, UTC), 10.0, "192.168.2.7", None),
        (datetime(2009, 11, 25, 5, 28, 1, tzinfo=UTC), 0.0, None, "192.0.2.50"),
    ]
    assert [message for message, _ in run.problems] == [
        "timestamps carry no UTC offset; read in America/Los_Angeles (reported once per file)"]
    assert len(run.problems) == 1 and "no UTC offset" in run.problems[0][0]


# --- sniffing ----------------------------------------------------------------------------------------

def _head(path: Path) -> bytes:
    with path.open("rb") as handle:
        return handle.read(256 * 1024)


@pytest.mark.parametrize(("relative", "name"), sorted(OWN_FIXTURES.items()))
def test_each_fixture_is_its_own_format_only(relative: str, name: str) -> None:
    head = _head(FIX / relative)
    assert [fmt for fmt, f in MINE.items() if f.sniff(head)] == [name]
    assert sniff_network(head) == name


def _foreign_files() -> list[Path]:
    """Other formats' files: the team's other network fixtures and real third-party logs."""
    mine = {(FIX / rel).resolve() for rel in OWN_FIXTURES}
    files = [p for p in FIX.rglob("*") if p.is_file() and p.resolve() not in mine and p.suffix != ".md"]
    samples = [("proxy", "*.log", 4), ("ndjson", "*.json", 5), ("dns", "*.json", 1), ("evtx", "*.evtx", 3),
               ("sigma", "*.yml", 3), ("intel", "*", 30)]
    zeek = SHARED / "zeek"
    if zeek.is_dir():
        samples += [(f"zeek/{d.name}", "*.log*", 12) for d in sorted(zeek.iterdir()) if d.is_dir()]
        samples += [("zeek/rita/test_data/text_file", "*", 2), ("zeek/rita/test_data/truncated", "*", 5)]
    for folder, pattern, limit in samples:
        root = SHARED / folder
        if root.is_dir():
            files += sorted(p for p in root.rglob(pattern) if p.is_file())[:limit]
    return files


def test_no_foreign_file_is_taken(tmp_path: Path) -> None:
    prose = tmp_path / "conn.log"
    prose.write_text("Lorem ipsum dolor sit amet, the DNS server log file creation at noon was a query: for\n"
                     "www.example.com IN A from 10.0.0.1 is 1.2.3.4; event_type and timestamp are words.\n" * 20)
    junk = tmp_path / "dns.log"
    junk.write_bytes(random.Random(7).randbytes(64 * 1024))
    json_not_eve = tmp_path / "eve.json"
    json_not_eve.write_text('{"ts": 1679911200.1, "uid": "C1", "event_type": 5}\n')
    foreign = [prose, junk, json_not_eve, *_foreign_files()]
    assert len(foreign) >= 4
    taken = {str(p): [n for n, f in MINE.items() if f.sniff(_head(p))] for p in foreign}
    assert {p: names for p, names in taken.items() if names} == {}


def test_binary_junk_read_anyway_is_reported_not_fatal(tmp_path: Path) -> None:
    junk = tmp_path / "junk.log"
    junk.write_bytes(random.Random(3).randbytes(200_000))
    for reader in (read_windows_dns_debug, read_bind_query, read_dnsmasq, read_unbound, read_suricata_eve):
        run = Run(reader, junk, tmp_path)
        assert run.written == 0 and run.ctx.issues.count > 0
        assert all(line is not None for message, line in run.problems if "day from month" not in message)


# --- end to end --------------------------------------------------------------------------------------

def test_ingest_reads_every_fixture_with_its_reader(tmp_path: Path) -> None:
    from turncoat.ingest import ingest
    from turncoat.store.case import Case

    case = Case(tmp_path / "case")
    ingest([DNS, EVE], case, workers=1, source_tz={"*": "Europe/Paris"})
    manifest = orjson.loads(case.manifest_path.read_bytes())
    readers = {Path(item["path"]).name: item.get("reader") for item in manifest["items"]
               if not item["path"].endswith(".md")}
    assert readers == {Path(rel).name: name for rel, name in OWN_FIXTURES.items()}
    windows = next(i for i in manifest["items"] if i["path"].endswith("dns.log"))
    assert windows["time_zone"] == "Europe/Paris" and windows["status"] == "read"
    rows = [r for part in (case.parquet / "net_dns").glob("*.parquet") for r in pq.read_table(part).to_pylist()]
    from_windows = [r for r in rows if r["evidence_id"] == windows["evidence_id"]]
    assert sorted((r["line"], r["@timestamp"]) for r in from_windows) == [(r[0], r[1]) for r in WIN_ROWS]


def test_ambiguous_local_time_reported_once(tmp_path: Path) -> None:
    """The night clocks go back, 02:30 happens twice: read with the offset before the change, said once."""
    line = (DNS / "bind" / "query.log").read_text().splitlines()[0]
    path = tmp_path / "query.log"
    path.write_text("\n".join(line.replace("26-Mar-2023 01:59:59.120", f"29-Oct-2023 02:{m}:00.000")
                              for m in ("30", "45")) + "\n")
    run = Run(read_bind_query, path, tmp_path, PARIS)
    assert run.pick("@timestamp") == [(utc("2023-10-29 00:30:00"),), (utc("2023-10-29 00:45:00"),)]
    assert len(run.problems) == 1 and "is ambiguous (clocks went back)" in run.problems[0][0]
    assert run.problems[0][1] == 1


def test_ambiguous_local_time_reported_once_across_stamp_styles(tmp_path: Path) -> None:
    """A file whose stamps change style (`log-time-iso` turned off for `log-time-ascii`) still has one
    clock: the DST report is made once per file, not once per style."""
    path = tmp_path / "unbound.log"
    path.write_text("2023-10-29T02:30:00 unbound[2310:1] info: 10.0.0.23 a.example. A IN\n"
                    "Oct 29 02:45:00 unbound[2310:1] info: 10.0.0.23 b.example. A IN\n")
    run = Run(read_unbound, path, tmp_path, PARIS, year=2023)
    assert run.pick("@timestamp", "dns.question.name") == [(utc("2023-10-29 00:30:00"), "a.example"),
                                                          (utc("2023-10-29 00:45:00"), "b.example")]
    assert [(line, "is ambiguous" in message) for message, line in run.problems] == [(1, True)]


def test_late_answer_outside_the_pairing_window(tmp_path: Path) -> None:
    """A reply later than the pairing window is not glued to an old question: both are kept, apart."""
    path = tmp_path / "unbound.log"
    path.write_text("[1679795999] unbound[2310:1] info: 10.0.0.23 www.3cx.com. A IN\n"
                    "[1679796099] unbound[2310:1] info: 10.0.0.23 www.3cx.com. A IN SERVFAIL 100.000000 0 29\n")
    run = Run(read_unbound, path, tmp_path)
    assert run.pick("line", "dns.question.name", "dns.response_code") == [(1, "www.3cx.com", None),
                                                                         (2, "www.3cx.com", "SERVFAIL")]
