"""The Zeek reader (TSV and JSON) on the real samples in shared/data/zeek and on hostile hand-made files.

Expected counts are taken independently of the reader: data lines are counted with a plain line split
(lines that are not blank and do not start with `#`), and the labelled flows come from SOURCES.md
(checked against the files with awk/grep when the test was written).
"""

from __future__ import annotations

import gzip
import re
import shutil
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from conftest import SHARED

from turncoat.evidence.base import IssueLog, ReadIssue
from turncoat.evidence.network import BY_NAME, NetContext, sniff_network, zeek
from turncoat.store.net_writer import NetWriter

ZEEK = SHARED / "zeek"
HEAD = 256 * 1024

# Logs the store keeps (everything else is recognised, counted as read, and not stored).
STORED = {"conn", "open_conn", "dns", "http", "open_http", "ssl", "open_ssl", "quic", "x509", "files", "dhcp",
          "notice", "weird"}
# Files that are not Zeek logs, or Zeek logs too bare to tell from any JSON: refused by sniffing.
REFUSED = {
    "rita/test_data/text_file/conn.log",  # lorem ipsum
    "rita/test_data/truncated/conn_top.log",  # rows without any header: cut off the top of a log
    "zat/data/json/loaded_scripts.log",  # {"name": …} only
    "zat/data/json/packet_filter.log",
    "slips/dataset/test9-mixed-zeek-dir/loaded_scripts.log",
    "slips/dataset/test9-mixed-zeek-dir/packet_filter.log",
    "slips/dataset/test9-mixed-zeek-dir/pe.log",
    "slips/dataset/test9-mixed-zeek-dir/arp.log",  # a Slips log, not Zeek's
    "slips/dataset/test16-malicious-zeek-dir/arp.log",
}
# The known defects of the samples: (file, line, words of the message).
DEFECTS = {
    "rita/test_data/has_unknown_field/http.log": (9, "row has 29 fields"),
    "rita/test_data/truncated/conn.log": (67, "cut short"),
    "rita/test_data/truncated/conn_json.log": (4, "cut short"),
    "slips/dataset/test10-mixed-zeek-dir/notice.log": (21, "row has 23 fields"),  # spaces where tabs belong
}
CORRUPT_GZIP = {"zat/data/http.log.corrupt.gz"}  # the walker reports it; readers never see it


def _samples() -> list[str]:
    if not ZEEK.is_dir():
        return []
    skip = {".md", ".go", ".py", ".config"}
    return sorted(str(p.relative_to(ZEEK)) for p in ZEEK.rglob("*")
                  if p.is_file() and p.name != "LICENSE" and p.suffix not in skip)


def _plain(path: Path, tmp_path: Path) -> Path:
    """The file as a reader gets it: .gz files unpacked first (the walker's job in ingest)."""
    if path.suffix != ".gz":
        return path
    out = tmp_path / path.name[:-3].replace(":", "_")
    with gzip.open(path, "rb") as src, out.open("wb") as dst:
        shutil.copyfileobj(src, dst)
    return out


def _read(path: Path, out: Path, fmt: str | None = None) -> tuple[int, IssueLog, Path]:
    fmt = fmt or sniff_network(path.read_bytes()[:HEAD])
    assert fmt in ("zeek-tsv", "zeek-json"), f"{path} sniffed as {fmt}"
    issues = IssueLog()
    rows = BY_NAME[fmt].read(path, NetContext("ev1", issues, NetWriter(out, "t")))
    return rows, issues, out


def _table(out: Path, table: str, where: str = "true", columns: str = "*") -> list[tuple]:
    files = sorted((out / table).glob("*.parquet"))
    if not files:
        return []
    listing = ", ".join(f"'{p.as_posix()}'" for p in files)
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    return con.execute(f"SELECT {columns} FROM read_parquet([{listing}], union_by_name = true) WHERE {where} "
                       "ORDER BY seq").fetchall()


def _stored_rows(out: Path) -> int:
    return sum(pq.read_metadata(p).num_rows for p in out.rglob("*.parquet"))


def _log_name(path: Path) -> str:
    """The log a sample holds, found without the reader: #path, _path/@stream, else the file name."""
    head = path.read_bytes()[:HEAD]
    match = re.search(rb"^#path\t(\S+)", head, re.MULTILINE) or re.search(rb'"(?:_path|@stream)"\s*:\s*"([^"]+)"', head)
    if match:
        return match.group(1).decode()
    stem = path.name.split(".")[0].lower()
    stem = re.sub(r"^(nashua_|scranton_|original)", "", stem)
    return re.sub(r"_json$", "", stem)


def _data_lines(path: Path) -> int:
    return sum(1 for line in path.read_bytes().split(b"\n") if line.strip() and not line.lstrip().startswith(b"#"))


# ---------------------------------------------------------------------------------------------------
# every real sample


@pytest.mark.parametrize("name", _samples())
def test_every_sample_reads_whole_or_is_refused(name: str, tmp_path: Path) -> None:
    source = ZEEK / name
    if name in CORRUPT_GZIP:
        with pytest.raises((EOFError, gzip.BadGzipFile)):
            _plain(source, tmp_path)
        return
    path = _plain(source, tmp_path)
    fmt = sniff_network(path.read_bytes()[:HEAD])
    if name in REFUSED:
        assert fmt is None, f"{name} must not be taken for a network log (sniffed as {fmt})"
        return
    assert fmt in ("zeek-tsv", "zeek-json"), f"{name} sniffed as {fmt}"
    rows, issues, out = _read(path, tmp_path / "out", fmt)
    assert _stored_rows(out) == rows
    log = _log_name(path)
    if log not in STORED:
        assert rows == 0 and issues.count == 0, f"{name}: {log} is not stored and is no problem"
        return
    skipped = [i for i in issues.listed if "skipped" in i.message]
    assert rows + len(skipped) == _data_lines(path), [i.message for i in issues.listed]
    if name in DEFECTS:
        line, words = DEFECTS[name]
        assert [(i.line, words in i.message) for i in issues.listed] == [(line, True)], issues.listed
        assert issues.listed[0].offset is not None
    else:
        assert issues.count == 0, [(i.message, i.line) for i in issues.listed]


def test_line_numbers_point_at_the_rows(tmp_path: Path) -> None:
    """Every stored row names the file line it came from: its uid is on that line."""
    for name in ("rita/test_data/proxy/conn.log", "rita/test_data/truncated/conn.log",
                 "otrf-apt29/datasets/compound/apt29/day1/zeek/individual_zeek_logs/NASHUA_conn.log",
                 "rita/test_data/has_unknown_field/http.log"):
        path = ZEEK / name
        if not path.exists():
            pytest.skip(f"shared data not found at {path}")
        _, _, out = _read(path, tmp_path / name.replace("/", "_"))
        lines = path.read_bytes().split(b"\n")
        table = "net_http" if "http" in name else "net_flow"
        found = _table(out, table, columns="line, uid")
        assert found
        for line, uid in found:
            assert uid.encode() in lines[line - 1], (name, line, uid)


# ---------------------------------------------------------------------------------------------------
# labelled evidence


def test_rita_proxy_beacon_is_in_http(tmp_path: Path) -> None:
    path = ZEEK / "rita/test_data/proxy/http.log"
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    _, issues, out = _read(path, tmp_path)
    assert issues.count == 0
    rows = _table(out, "net_http", """"url.domain" = 'www.honestimnotevil.com'""",
                  columns='"source.ip", "http.request.method", "url.full", "user_agent.original", '
                          '"observer.type", "event.dataset", "destination.port"')
    assert len(rows) == 397  # SOURCES.md: 397 http.log lines name the domain
    assert set(rows) == {("10.136.0.18", "CONNECT", "www.honestimnotevil.com:443", "Modzilla/-2.0 (Atari 7800)",
                          "zeek", "zeek.http", 3128)}


def test_slips_labelled_remcos_flows_keep_their_labels(tmp_path: Path) -> None:
    path = ZEEK / "slips/dataset/test18-malicious-ctu-sme-11-win/zeek-labeled/conn.log.labeled"
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    _, issues, out = _read(path, tmp_path)
    assert issues.count == 0
    rows = _table(out, "net_flow", """"source.ip" = '192.168.1.107' AND "destination.ip" = '66.63.168.35'
                  AND "destination.port" = 5888""", columns="label, detailedlabel, \"network.transport\"")
    assert len(rows) == 719  # SOURCES.md
    assert {r[0] for r in rows} == {"Malicious"}
    assert all("RemcosRAT" in r[1] for r in rows)
    assert {r[2] for r in rows} == {"tcp"}


def test_otrf_apt29_c2_in_conn_and_ssl_json(tmp_path: Path) -> None:
    base = ZEEK / "otrf-apt29/datasets/compound/apt29/day1/zeek/individual_zeek_logs"
    if not base.exists():
        pytest.skip(f"shared data not found at {base}")
    c2 = """"source.ip" = '10.0.1.6' AND "destination.ip" = '192.168.0.4' AND "destination.port" = 8443"""
    _, _, conn = _read(base / "NASHUA_conn.log", tmp_path / "conn")
    flows = _table(conn, "net_flow", c2, columns='"@stream", "event.dataset", "network.transport", "@timestamp"')
    assert len(flows) == 376  # SOURCES.md: 376 connections
    assert {f[:3] for f in flows} == {("conn", "zeek.conn", "tcp")}
    assert min(f[3] for f in flows).year == 2020
    _, _, ssl = _read(base / "NASHUA_ssl.log", tmp_path / "ssl")
    sessions = _table(ssl, "net_tls", c2, columns='"tls.client.server_name", "tls.client.ja3", "tls.server.x509.subject"')
    assert len(sessions) == 376
    assert {s[0] for s in sessions} == {"192.168.0.4"}
    assert all(s[1] and "rempel.group.net" in s[2] for s in sessions)


def test_both_dhcp_shapes(tmp_path: Path) -> None:
    old = ZEEK / "zat/data/dhcp.log"  # Bro 2.x: 5-tuple, assigned_ip
    new = ZEEK / "slips/dataset/test18-malicious-ctu-sme-11-win/zeek-labeled/dhcp.log.labeled"  # Zeek ≥ 2.6
    if not old.exists() or not new.exists():
        pytest.skip("shared data not found")
    _, _, out = _read(old, tmp_path / "old")
    assert _table(out, "net_dhcp", columns='"client.ip", "client.mac", "source.port", "dhcp.lease_seconds"')[0] == \
        ("192.168.33.10", "00:20:18:eb:ca:21", 68, 4294967000.0)
    _, _, out = _read(new, tmp_path / "new")
    assert _table(out, "net_dhcp", columns='"client.ip", "client.mac", "host.hostname", "event.action", '
                                           '"source.ip", "destination.ip", "dhcp.lease_seconds"') == [
        ("192.168.1.107", "08:00:27:5e:9a:a6", "NWin3", "REQUEST,REQUEST,ACK,ACK", "192.168.1.107", "192.168.1.1",
         600.0)]


def test_json_iso_times_and_x509(tmp_path: Path) -> None:
    path = ZEEK / "zed-sample-data/zeek-json/x509.json.gz"
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    _, issues, out = _read(_plain(path, tmp_path), tmp_path / "out")
    assert issues.count == 0
    first = _table(out, "net_x509", "line = 1", columns='"@timestamp", "x509.serial_number", "x509.san.dns", '
                                                       'fingerprint, "tls.server.hash.sha1"')
    moment, serial, san, fingerprint, sha1 = first[0]
    assert moment.isoformat() == "2018-03-24T17:15:20.624556+00:00"  # "ts":"2018-03-24T17:15:20.624556Z"
    assert (serial, san, sha1) == ("CC57FE54011E", "localhost.localdomain", None)  # a SHA-256 fingerprint
    assert len(fingerprint) == 64


def test_tsv_escapes_match_the_json_writer(tmp_path: Path) -> None:
    """zed-sample-data has the same notices in TSV and JSON: a backslash Zeek doubled in TSV is one again."""
    tsv, js = ZEEK / "zed-sample-data/zeek-default/notice.log.gz", ZEEK / "zed-sample-data/zeek-json/notice.json.gz"
    if not tsv.exists() or not js.exists():
        pytest.skip("shared data not found")
    _, _, a = _read(_plain(tsv, tmp_path), tmp_path / "a")
    _, _, b = _read(_plain(js, tmp_path), tmp_path / "b")
    cols = 'sub, msg, "rule.name", "source.ip", "destination.port", suppress_for'
    rows_a = sorted(_table(a, "net_alert", columns=cols), key=str)
    rows_b = sorted(_table(b, "net_alert", columns=cols), key=str)
    assert len(rows_a) == len(rows_b) == 207
    assert [r[:5] for r in rows_a] == [r[:5] for r in rows_b]
    assert any("\\," in (r[0] or "") and "\\\\" not in r[0] for r in rows_a)


# ---------------------------------------------------------------------------------------------------
# hostile hand-made files

HEADER = ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\t{path}\n"
          "#open\t2024-01-01-00-00-00\n#fields\t{fields}\n#types\t{types}\n")
CONN_FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service", "duration",
               "orig_bytes", "resp_bytes", "conn_state", "tunnel_parents"]
CONN_TYPES = ["time", "string", "addr", "port", "addr", "port", "enum", "string", "interval", "count", "count",
              "string", "set[string]"]


def _header(path: str = "conn", fields: list[str] = CONN_FIELDS, types: list[str] = CONN_TYPES) -> str:
    return HEADER.format(path=path, fields="\t".join(fields), types="\t".join(types))


def _conn(n: int, orig: str = "10.0.0.1", resp: str = "10.0.0.2", extra: str = "") -> str:
    return "\t".join([f"{1700000000 + n}.5", f"C{n:05d}", orig, "1234", resp, "443", "tcp", "ssl", "1.5", "10",
                      "20", "SF", "(empty)"]) + extra


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return path


def test_header_changing_mid_file(tmp_path: Path) -> None:
    http_fields = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "method", "host", "uri",
                   "user_agent", "status_code"]
    text = (_header() + _conn(1) + "\n" + _conn(2) + "\n#close\t2024-01-01-01-00-00\n"
            + _header("http", http_fields, ["x"] * len(http_fields))
            + "1700000100.0\tCh1\t10.0.0.1\t5555\t10.0.0.9\t8080\tGET\tExample.COM:8080\t/a?b=1\tcurl/8\t200\n"
            + "1700000101.0\tCh2\t10.0.0.1\t5556\t10.0.0.9\t80\tPOST\t-\thttp://proxy.test/x\t-\t-\n")
    rows, issues, out = _read(_write(tmp_path, "mixed.log", text), tmp_path / "out")
    assert (rows, issues.count) == (4, 0)
    assert _table(out, "net_flow", columns='line, uid, "event.dataset", "source.bytes", "event.action", '
                                           'tunnel_parents') == [
        (9, "C00001", "zeek.conn", 10, "SF", ""), (10, "C00002", "zeek.conn", 10, "SF", "")]
    assert _table(out, "net_http", columns='line, "url.domain", "url.full", "http.request.method", '
                                           '"http.response.status_code", "destination.port"') == [
        (20, "example.com", "http://Example.COM:8080/a?b=1", "GET", 200, 8080),
        (21, None, "http://proxy.test/x", "POST", None, 80)]


def test_fields_changing_mid_file_and_wrong_counts(tmp_path: Path) -> None:
    fields = CONN_FIELDS + ["community_id"]
    text = (_header() + _conn(1) + "\n" + _conn(2, extra="\tsurplus") + "\n"
            + "#fields\t" + "\t".join(fields) + "\n"
            + _conn(3, extra="\t1:abc=") + "\n" + _conn(4) + "\n" + _conn(5, extra="\t1:def=") + "\n")
    rows, issues, out = _read(_write(tmp_path, "conn.log", text), tmp_path / "out")
    assert rows == 3
    assert [(i.line, i.message) for i in issues.listed] == [
        (10, "row has 14 fields, the #fields header (line 7) has 13; row skipped"),
        (13, "row has 13 fields, the #fields header (line 11) has 14; row skipped")]
    assert issues.listed[0].offset == len(_header()) + len(_conn(1)) + 1
    assert _table(out, "net_flow", columns="line, uid, community_id") == [
        (9, "C00001", None), (12, "C00003", "1:abc="), (14, "C00005", "1:def=")]


def test_ipv6_addresses_are_canonical(tmp_path: Path) -> None:
    text = (_header() + _conn(1, "2001:0DB8:0000:0000:0000:0000:0000:0001", "[fe80::1]") + "\n"
            + _conn(2, "2001:db8::2", "not-an-ip:x") + "\n" + _conn(3, "10.1.2.3", "::ffff:0:0") + "\n")
    _, issues, out = _read(_write(tmp_path, "conn.log", text), tmp_path / "out")
    assert issues.count == 0
    assert _table(out, "net_flow", columns='"source.ip", "destination.ip"') == [
        ("2001:db8::1", "fe80::1"), ("2001:db8::2", "not-an-ip:x"), ("10.1.2.3", "::ffff:0.0.0.0")]  # IPv4-mapped: spelled like every reader


def test_json_ipv6_and_ports(tmp_path: Path) -> None:
    text = ('{"ts":1700000000.25,"uid":"C1","id.orig_h":"2001:DB8::0001","id.orig_p":5353,'
            '"id.resp_h":"ff02::fb","id.resp_p":5353,"proto":"udp","query":"x.local","qtype_name":"A",'
            '"answers":["1.2.3.4","5.6.7.8"],"TTLs":[10.0,20.0],"rejected":false}\n')
    _, issues, out = _read(_write(tmp_path, "dns.json", text), tmp_path / "out")
    assert issues.count == 0
    assert _table(out, "net_dns", columns='"source.ip", "source.port", "dns.answers", "TTLs", rejected, '
                                          'epoch_ms("@timestamp")') == [
        ("2001:db8::1", 5353, "1.2.3.4,5.6.7.8", "10,20", "F", 1700000000250)]


@pytest.mark.parametrize("content", [
    b"1700000000.1\tC1\t10.0.0.1\t1\t10.0.0.2\t2\ttcp\n1700000000.2\tC2\t10.0.0.1\t1\t10.0.0.2\t2\ttcp\n",
    bytes(range(256)) * 64,
    b"#separator \\x09\n\x00\x01\x02garbage\xff\xfe\n" * 20,
    b"#separator \\x09\nLorem ipsum dolor sit amet\n#fields\tts\tuid\n",
    b"#separator\n#fields\tts\n",
    b"#separator \\x09\n#set_separator\t,\n",
    b"Lorem ipsum\t#fields\tts\tuid\n",
    b'{"ts":1.0,"event_type":"dns","src_ip":"1.2.3.4","flow_id":1,"uid":"x"}\n',
    b'{"ts":1.0,"EventID":4624,"Channel":"Security","uid":"x"}\n',
    b'{"timestamp":"2024-01-01","src_ip":"1.2.3.4"}\n',
    b"",
])
def test_not_zeek_is_not_sniffed(content: bytes) -> None:
    assert not zeek.sniff_tsv(content)
    assert not zeek.sniff_json(content)


def test_junk_rows_after_a_real_header(tmp_path: Path) -> None:
    junk = bytes(range(1, 256)).replace(b"\n", b"").replace(b"#", b"")  # holds one tab and a CR
    no_tab = junk.replace(b"\t", b"")
    text = _header().encode() + junk + b"\n" + _conn(2).encode() + b"\n" + no_tab[100:140] + b"\t" * 12 + b"\n"
    rows, issues, out = _read(_write(tmp_path, "conn.log", text), tmp_path / "out")
    assert rows == 2  # the 13-field junk line is a row: its values are junk, kept as text
    assert [(i.line, i.message.split(";")[0]) for i in issues.listed] == [
        (9, "row has 2 fields, the #fields header (line 7) has 13"), (11, "row is not UTF-8")]
    assert _table(out, "net_flow", columns='line, uid, "source.port"')[0] == (10, "C00002", 1234)


def test_crlf_blank_lines_and_stray_cr(tmp_path: Path) -> None:
    body = _header() + _conn(1) + "\n\n" + _conn(2) + "\n" + _conn(3).replace("ssl", "s\rl") + "\n" + _conn(4) + "\n"
    for name, text in (("crlf.log", body.replace("\n", "\r\n")), ("lf.log", body)):
        rows, issues, out = _read(_write(tmp_path, name, text), tmp_path / f"out-{name}")
        assert (rows, issues.count) == (4, 0), issues.listed
        got = _table(out, "net_flow", columns='line, uid, "network.protocol", tunnel_parents')
        assert got == [(9, "C00001", "ssl", ""), (11, "C00002", "ssl", ""), (12, "C00003", "s\rl", ""),
                       (13, "C00004", "ssl", "")], name


def test_escapes_empty_and_unset(tmp_path: Path) -> None:
    row = _conn(1).split("\t")
    row[7] = "a\\x09b\\\\x41\\xc3\\xa9"  # tab, then a literal backslash before x41, then é in UTF-8
    row[12] = "-"
    row[11] = "\\xff"  # not text once decoded: kept as written
    _, issues, out = _read(_write(tmp_path, "conn.log", _header() + "\t".join(row) + "\n"), tmp_path / "out")
    assert issues.count == 0
    assert _table(out, "net_flow", columns='"network.protocol", "event.action", tunnel_parents') == [
        ("a\tb\\x41é", "\\xff", None)]


def test_truncated_tsv_and_json(tmp_path: Path) -> None:
    text = _header() + _conn(1) + "\n" + _conn(2)[:30]
    rows, issues, _ = _read(_write(tmp_path, "conn.log", text), tmp_path / "tsv")
    assert rows == 1 and [(i.line, "cut short" in i.message) for i in issues.listed] == [(10, True)]
    line = '{"ts":1700000000.0,"uid":"C1","id.orig_h":"10.0.0.1","id.resp_h":"10.0.0.2","conn_state":"S0"}'
    rows, issues, _ = _read(_write(tmp_path, "conn.json", line + "\n" + line[:40]), tmp_path / "json")
    assert rows == 1 and [(i.line, i.offset, "cut short" in i.message) for i in issues.listed] == [
        (2, len(line) + 1, True)]


def test_json_bad_lines_mixed_types_and_logs(tmp_path: Path) -> None:
    lines = [
        '{"_path":"conn","ts":1700000000.0,"uid":"C1","id.orig_h":"10.0.0.1","id.resp_p":80,"conn_state":"S0"}',
        "",
        "{not json",
        '{"_path":"dns","ts":"2024-01-01T00:00:01.5Z","uid":"C2","query":"Evil.example","qtype_name":"A"}',
        "[1, 2]",
        '{"_path":"conn","ts":1700000002.0,"uid":"C3","id.orig_h":"10.0.0.3","id.resp_p":"80","conn_state":"SF"}',
        '{"_path":"stats","ts":1700000003.0,"peer":"zeek","mem":1}',
    ]
    rows, issues, out = _read(_write(tmp_path, "mixed.json", "\n".join(lines) + "\n"), tmp_path / "out")
    assert rows == 3
    assert [(i.line, i.message.split(" (")[0].split(";")[0]) for i in issues.listed] == [
        (3, "not JSON"), (5, "JSON list, not an object")]
    assert issues.listed[0].offset == len(lines[0]) + 2
    assert _table(out, "net_flow", columns='line, uid, "destination.port", "event.dataset"') == [
        (1, "C1", 80, "zeek.conn"), (6, "C3", 80, "zeek.conn")]
    assert _table(out, "net_dns", columns='line, "dns.question.name", epoch_ms("@timestamp")') == [
        (4, "Evil.example", 1704067201500)]


def test_json_without_log_name_is_inferred(tmp_path: Path) -> None:
    rows = [('{"ts":1.5,"uid":"C1","id.orig_h":"10.0.0.1","method":"CONNECT","host":"",'
             '"uri":"beacon.test:443","status_code":200}'),
            '{"ts":2.5,"uid":"C2","id.orig_h":"10.0.0.1","method":"GET","host":"a.test","uri":"/x"}']
    _, _, out = _read(_write(tmp_path, "capture-0001.json", "\n".join(rows)), tmp_path / "out")
    assert _table(out, "net_http", columns='"url.domain", "url.full", "event.dataset"') == [
        ("beacon.test", "beacon.test:443", "zeek.http"), ("a.test", "http://a.test/x", "zeek.http")]


def test_blocks_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Small blocks: header lines, rows and bad rows fall across block ends; numbering must hold."""
    monkeypatch.setattr(zeek, "BLOCK_BYTES", 300)
    rows_text = [_conn(n) for n in range(1, 60)]
    rows_text[40] = rows_text[40] + "\textra"
    text = _header() + "\n".join(rows_text[:30]) + "\n" + _header() + "\n".join(rows_text[30:]) + "\n"
    rows, issues, out = _read(_write(tmp_path, "conn.log", text), tmp_path / "out")
    assert rows == 58
    assert [i.line for i in issues.listed] == [8 + 30 + 8 + 11]
    got = _table(out, "net_flow", columns="seq, line")
    expected_lines = [8 + n for n in range(1, 31)] + [8 + 30 + 8 + n for n in range(1, 30) if n != 11]
    assert got == list(enumerate(expected_lines))  # seq follows the file
    jtext = "".join(f'{{"ts":{n}.0,"uid":"C{n}","id.orig_h":"10.0.0.1","conn_state":"SF"}}\n' for n in range(50))
    rows, issues, out = _read(_write(tmp_path, "conn.json", jtext.replace('"C7"', '"C7",,')), tmp_path / "jout")
    assert rows == 49 and [i.line for i in issues.listed] == [8]


def test_oversize_line_is_skipped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zeek, "BLOCK_BYTES", 256)
    monkeypatch.setattr(zeek, "MAX_LINE_BYTES", 1000)
    text = _header() + _conn(1) + "\n" + "x" * 5000 + "\n" + _conn(3) + "\n"
    rows, issues, out = _read(_write(tmp_path, "conn.log", text), tmp_path / "out")
    assert rows == 2
    assert [(i.line, "longer than" in i.message) for i in issues.listed] == [(10, True)]
    assert [r[0] for r in _table(out, "net_flow", columns="line")] == [9, 11]


def test_logs_not_stored_give_no_rows_and_no_problem(tmp_path: Path) -> None:
    text = _header("smb_mapping") + _conn(1) + "\n"
    rows, issues, out = _read(_write(tmp_path, "smb_mapping.log", text), tmp_path / "out")
    assert (rows, issues.count, list(out.glob("*"))) == (0, 0, [])


def test_concurrent_writer_numbers_rows_like_a_serial_one(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A writer that takes writes from several threads gets the same rows, lines and seq as a serial one."""
    if not getattr(NetWriter, "concurrent_writes", False):
        pytest.skip("this NetWriter takes writes from one thread only")
    monkeypatch.setattr(zeek, "BLOCK_BYTES", 2048)
    text = _header() + "".join(_conn(n) + "\n" for n in range(400))
    path = _write(tmp_path, "conn.log", text)
    _, _, parallel = _read(path, tmp_path / "parallel")

    class SerialWriter(NetWriter):
        concurrent_writes = False

    issues = IssueLog()
    zeek.read_tsv(path, NetContext("ev1", issues, SerialWriter(tmp_path / "serial", "t")))
    columns = "seq, line, uid"
    got = sorted(_table(parallel, "net_flow", columns=columns))
    assert got == sorted(_table(tmp_path / "serial", "net_flow", columns=columns))
    assert [g[:2] for g in got] == [(n, 9 + n) for n in range(400)]


def test_a_failing_block_is_reported_and_the_rest_kept(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zeek, "BLOCK_BYTES", 300)
    real = zeek._parse_tsv
    calls = []

    def flaky(run: zeek._Block, *args: object) -> zeek._Result:
        calls.append(run.first_line)
        if len(calls) == 2:
            raise ValueError("simulated defect")
        return real(run, *args)

    monkeypatch.setattr(zeek, "_parse_tsv", flaky)
    text = _header() + "".join(_conn(n) + "\n" for n in range(20))
    rows, issues, _ = _read(_write(tmp_path, "conn.log", text), tmp_path / "out")
    assert 0 < rows < 20
    assert len(issues.listed) == 1 and "simulated defect" in issues.listed[0].message
    assert isinstance(issues.listed[0], ReadIssue) and issues.listed[0].line == calls[1]


TRICKY_ADDRESSES = ["2001:db8::1", "2001:DB8::1", "2001:0db8::1", "1:0:0:1::1", "2001:db8:0:0:1:0:0:1",
                    "::ffff:a00:17", "::ffff:10.0.0.23", "[fe80::1]", "fe80::1%eth0", "2001:db8::1:1:1:1:1",
                    "::1", "::", "1::", "2001:db8:0:1:1:1:1:1", "10.0.0.1", "fe80:0:0:0:0:0:0:1", "not:an:ip"]


def test_vectorised_address_check_agrees_with_canonical_ip() -> None:
    """Only values breaking RFC 5952 go through `ipaddress`; the result must be the same as if all did."""
    import pyarrow as pa

    from turncoat.evidence.network.values import canonical_ip
    from turncoat.evidence.network.zeek import _canon_ips

    assert _canon_ips(pa.array(TRICKY_ADDRESSES)).to_pylist() == [canonical_ip(v) for v in TRICKY_ADDRESSES]
