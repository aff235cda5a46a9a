"""The simulated office network keeps its promises: deterministic bytes, files in the exact formats of
Zeek, the Windows DNS Server debug log and Squid (`combined` logformat, TLS-inspecting), and traffic
that matches the hosts' own Sysmon events (same times, names, addresses, ports), including a DHCP
address change and a network-only scenario whose ground truth can be re-derived from the network logs
alone.

Every check parses the files here with plain Python, independently of the simulator and the readers.
"""

from __future__ import annotations

import itertools
import json
import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from turncoat.simulate import SCENARIOS, scenarios, simulate
from turncoat.simulate.network import plan_addresses
from turncoat.simulate.scenarios import HostSpec, Readdress

PARIS = ZoneInfo("Europe/Paris")
C2_DOMAINS = {
    "akamaitechcloudservices.com", "azureonlinestorage.com", "glcloudservice.com", "msstorageazure.com",
    "msstorageboxes.com", "officestoragebox.com", "pbxcloudeservices.com", "visualstudiofactory.com",
}
C2_IPS = {"199.188.206.6", "91.235.116.231", "198.54.125.101", "162.213.255.22", "162.213.255.24", "162.213.255.23"}
#: Zeek 6's default columns of each log (as Zeek 6 writes them).
ZEEK_FIELDS = {
    "conn": "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto service duration orig_bytes resp_bytes conn_state "
            "local_orig local_resp missed_bytes history orig_pkts orig_ip_bytes resp_pkts resp_ip_bytes tunnel_parents",
    "dns": "ts uid id.orig_h id.orig_p id.resp_h id.resp_p proto trans_id rtt query qclass qclass_name qtype qtype_name "
           "rcode rcode_name AA TC RD RA Z answers TTLs rejected",
    "ssl": "ts uid id.orig_h id.orig_p id.resp_h id.resp_p version cipher curve server_name resumed last_alert "
           "next_protocol established ssl_history cert_chain_fps client_cert_chain_fps sni_matches_cert",
    "dhcp": "ts uids client_addr server_addr mac host_name client_fqdn domain requested_addr assigned_addr lease_time "
            "client_message server_message msg_types duration",
}
ZEEK_TIME = re.compile(r"^\d{10}\.\d{6}$")
ZEEK_STAMP = re.compile(r"^\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d$")
IPV4 = re.compile(r"^\d{1,3}(\.\d{1,3}){3}$")
DNS_PACKET = re.compile(
    r"^(?P<date>\d{1,2}/\d{1,2}/\d{4}) (?P<time>\d{1,2}:\d\d:\d\d [AP]M) [0-9A-F]{4} PACKET  [0-9A-F]{16} "
    r"UDP (?P<dir>Rcv|Snd) (?P<ip>\S+) +(?P<xid>[0-9a-f]{4}) (?P<qr>[R ]) Q "
    r"\[(?P<flags>[0-9A-F]{4}) (?P<codes>[A ][T ][D ][R ]) +(?P<rcode>[A-Z]+)\] (?P<qtype>\w+) +(?P<name>\S+)$"
)
#: Squid's built-in `combined` logformat: %>a %[ui %[un [%tl] "%rm %ru HTTP/%rv" %>Hs %<st "%{Referer}>h"
#: "%{User-Agent}>h" %Ss:%Sh
SQUID = re.compile(r'^(?P<client>\S+) - - \[(?P<time>\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] '
                   r'"(?P<method>[A-Z]+) (?P<url>\S+) HTTP/1\.1" (?P<status>\d{3}) (?P<bytes>\d+) '
                   r'"-" "(?P<agent>[^"]*)" (?P<code>[A-Z_]+):(?P<hier>[A-Z_]+)$')
IMPLANT_UA = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) 3CXDesktopApp/18.11.1197 "
              "Chrome/102.0.5005.167 Electron/19.1.9 Safari/537.36")
ICON = re.compile(r"^https://raw\.githubusercontent\.com/IconStorages/images/main/icon(\d{1,2})\.ico$")
TAKEDOWN = datetime(2023, 3, 29, 1, 19, tzinfo=UTC)


# -- parsing, independent of the simulator ---------------------------------------------------------------

def read_zeek(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    """(field names, rows) of a Zeek TSV log, checking its header and footer; fails on any deviation."""
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "", f"{path}: no final newline"
    lines = lines[:-1]
    assert lines[0] == "#separator \\x09", path
    header = dict(line[1:].split("\t", 1) for line in lines[1:8])
    assert list(header) == ["set_separator", "empty_field", "unset_field", "path", "open", "fields", "types"], path
    assert header["set_separator"] == "," and header["empty_field"] == "(empty)" and header["unset_field"] == "-"
    assert header["path"] == path.stem and ZEEK_STAMP.match(header["open"]), path
    fields, types = header["fields"].split("\t"), header["types"].split("\t")
    assert len(fields) == len(types) == len(set(fields)), path
    close = lines[-1].split("\t")
    assert close[0] == "#close" and ZEEK_STAMP.match(close[1]) and len(close) == 2, path
    rows = []
    for number, line in enumerate(lines[8:-1], start=9):
        assert not line.startswith("#"), f"{path}:{number}: header line inside the log"
        values = line.split("\t")
        assert len(values) == len(fields), f"{path}:{number}: {len(values)} values for {len(fields)} fields"
        row = dict(zip(fields, values))
        for name, kind in zip(fields, types):
            value = row[name]
            assert value != "", f"{path}:{number}: empty value for {name} (Zeek writes - or (empty))"
            if value == "-":
                continue
            if kind == "time":
                assert ZEEK_TIME.match(value), (path, number, name, value)
            elif kind in ("count", "port"):
                assert value.isdigit(), (path, number, name, value)
            elif kind == "interval":
                assert re.match(r"^\d+\.\d{6}$", value), (path, number, name, value)
            elif kind == "bool":
                assert value in ("T", "F"), (path, number, name, value)
            elif kind == "addr":
                assert IPV4.match(value), (path, number, name, value)
        rows.append(row)
    return fields, rows


def utc_of_zeek(ts: str) -> datetime:
    return datetime.fromtimestamp(int(ts.split(".")[0]), UTC) + timedelta(microseconds=int(ts.split(".")[1]))


def read_squid(path: Path) -> list[dict[str, Any]]:
    """Lines of a Squid `combined` access.log, with their UTC time (`%tl` is local time with its offset) and
    the host the request names (`host:port` for CONNECT, the URL's host otherwise)."""
    lines = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        m = SQUID.match(line)
        assert m, f"{path}:{number}: {line!r}"
        stamp = datetime.strptime(m["time"], "%d/%b/%Y:%H:%M:%S %z")
        assert stamp.utcoffset() == stamp.astimezone(PARIS).utcoffset(), f"{path}:{number}: not Paris time"
        host = m["url"].rsplit(":", 1)[0] if m["method"] == "CONNECT" else m["url"].split("/")[2]
        lines.append({**m.groupdict(), "line": number, "utc": stamp.astimezone(UTC), "host": host})
    return lines


def spliced(name: str) -> bool:
    """Names the office proxy tunnels without decrypting (the ground truth's `ssl_bump.spliced`)."""
    return any(name == d or name.endswith("." + d) for d in SPLICED)


SPLICED = ("microsoft.com", "office365.com", "live.com", "sfx.ms", "update.googleapis.com", "cabinet-dupont.my3cx.fr")


def decode_wire(name: str) -> str:
    parts = re.findall(r"\((\d+)\)([^()]*)", name)
    assert parts and parts[-1] == ("0", ""), name
    assert all(int(n) == len(label) for n, label in parts), name
    return ".".join(label for _, label in parts[:-1])


def read_dns_server(path: Path) -> list[dict[str, Any]]:
    """Packet lines of a Windows DNS debug log with their UTC second (the log is in Paris time)."""
    raw = path.read_bytes()
    assert b"\r\n" in raw and raw.count(b"\n") == raw.count(b"\r\n"), "DNS debug log lines end in CRLF"
    lines = raw.decode("ascii").split("\r\n")
    assert lines[0].startswith("DNS Server log file creation at ") and lines[1].startswith("Log file wrap at ")
    assert lines[3] == "Message logging key (for packets - other items use a subset of these fields):"
    packets = []
    for number, line in enumerate(lines, start=1):
        if not line or line.startswith("\t") or not line[0].isdigit():
            continue
        m = DNS_PACKET.match(line)
        assert m, f"{path}:{number}: {line!r}"
        wall = datetime.strptime(f"{m['date']} {m['time']}", "%m/%d/%Y %I:%M:%S %p")
        packets.append({**m.groupdict(), "line": number, "name": decode_wire(m["name"]),
                        "utc": wall.replace(tzinfo=PARIS).astimezone(UTC), "wall": wall})
    return packets


def sysmon(folder: Path, host: str, event_id: str) -> list[tuple[datetime, dict[str, str]]]:
    path = folder / "evidence" / host / "sysmon.ndjson"
    if not path.exists():
        return []
    out = []
    with path.open(encoding="utf-8") as f:
        for line in f:
            e = json.loads(line)
            if e["winlog"]["event_id"] == event_id:
                d = e["winlog"]["event_data"]
                out.append((datetime.fromisoformat(d["UtcTime"]).replace(tzinfo=UTC), d))
    return out


def ip_at(host: dict[str, Any], ts: datetime) -> str:
    """The host's address at `ts` from the ground truth's intervals."""
    for a in host["network"]["addresses"]:
        start = datetime.min.replace(tzinfo=UTC) if a["from"] is None else _iso(a["from"])
        end = datetime.max.replace(tzinfo=UTC) if a["until"] is None else _iso(a["until"])
        if start <= ts < end:
            return a["ip"]
    raise AssertionError(f"{host['host']} has no address at {ts}")


def _iso(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


# -- fixtures --------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("net-office")
    return folder, simulate(folder, scenario="office")


@pytest.fixture(scope="module")
def netonly(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("net-only")
    return folder, simulate(folder, scenario="netonly")


def _zeek(folder: Path, name: str) -> list[dict[str, str]]:
    return read_zeek(folder / "evidence" / "network" / "zeek" / f"{name}.log")[1]


def _hosts(truth: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["host"]: h for h in truth["hosts"]}


# -- scenarios and layout --------------------------------------------------------------------------------

def test_network_scenarios_are_listed() -> None:
    assert SCENARIOS.get("netonly")
    assert scenarios.network("office") and scenarios.network("netonly")
    assert not scenarios.endpoint("netonly") and scenarios.endpoint("office")
    assert not any(scenarios.network(s) for s in ("clean", "blind", "aftermath"))


def test_layout(office, netonly) -> None:
    for folder, _ in (office, netonly):
        network = folder / "evidence" / "network"
        assert sorted(p.relative_to(network).as_posix() for p in network.rglob("*") if p.is_file()) == [
            "dc01-dns/dns.log", "proxy/access.log", "zeek/conn.log", "zeek/dhcp.log", "zeek/dns.log", "zeek/ssl.log"]
    folder, truth = office
    assert {p.name for p in (folder / "evidence").iterdir()} == {h["host"] for h in truth["hosts"]} | {"network"}


def test_network_only_scenario_has_no_endpoint_files(netonly) -> None:
    folder, truth = netonly
    files = [p.relative_to(folder / "evidence").as_posix() for p in (folder / "evidence").rglob("*") if p.is_file()]
    assert files and all(f.startswith("network/") for f in files)
    assert not list((folder / "evidence").glob("*/*.ndjson"))
    assert [p.name for p in (folder / "evidence").iterdir()] == ["network"]
    hosts = _hosts(truth)
    assert {h["verdict"] for h in hosts.values()} == {"c2-contact", "no-evidence"}
    c2 = sorted(n for n, h in hosts.items() if h["verdict"] == "c2-contact")
    assert len(c2) >= 2 and len(hosts) - len(c2) >= 4
    for h in hosts.values():
        assert h["first_execution"] is None and h["activation_eta"] is None
        assert (h["first_c2"] is not None) == (h["verdict"] == "c2-contact") == (h["network"]["verdict"] == "c2-contact")
        assert h["first_c2"] == h["network"]["first_c2"]
    moved = [n for n, h in hosts.items() if len(h["network"]["addresses"]) > 1 and h["verdict"] == "c2-contact"]
    assert moved, "one C2 host changes address"
    assert any(h["network"]["via_proxy"] for n, h in hosts.items() if n in c2)


def test_deterministic(tmp_path: Path, netonly) -> None:
    folder, truth = netonly
    assert simulate(tmp_path / "again", scenario="netonly") == truth
    assert _tree(tmp_path / "again") == _tree(folder)
    simulate(tmp_path / "other", scenario="netonly", seed=8)
    assert _tree(tmp_path / "other")["evidence/network/zeek/conn.log"] != _tree(folder)["evidence/network/zeek/conn.log"]


def test_ground_truth_network_section(office, netonly) -> None:
    for folder, truth in (office, netonly):
        assert json.loads((folder / "ground-truth.json").read_text(encoding="utf-8")) == truth
        net = truth["network"]
        assert net["time_zone"] == "Europe/Paris" and net["dns_server"]["local_time"] is True
        assert (folder / "evidence" / net["dns_server"]["log"]).is_file()
        assert (folder / "evidence" / net["proxy"]["log"]).is_file()
        for h in truth["hosts"]:
            n = h["network"]
            assert list(n) == ["verdict", "first_c2", "via_proxy", "addresses"]
            spans = n["addresses"]
            assert spans[0]["from"] is None and spans[-1]["until"] is None
            assert all(a["until"] == b["from"] for a, b in itertools.pairwise(spans))


def test_office_network_does_not_contradict_the_endpoint(office) -> None:
    """Network C2 only on hosts whose own logs reach C2, and never before their endpoint first_c2."""
    _, truth = office
    reached = ("c2-contact", "payload", "data-stolen")
    for h in truth["hosts"]:
        n = h["network"]
        assert (n["verdict"] == "c2-contact") == (h["verdict"] in reached), h["host"]
        if n["first_c2"] is not None:
            assert n["first_c2"] >= h["first_c2"], h["host"]


# -- formats ---------------------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["conn", "dns", "ssl", "dhcp"])
def test_zeek_logs_are_zeek_tsv(office, name: str) -> None:
    folder, truth = office
    fields, rows = read_zeek(folder / "evidence" / "network" / "zeek" / f"{name}.log")
    assert fields == ZEEK_FIELDS[name].split()
    assert rows
    stamps = [r["ts"] for r in rows]
    assert stamps == sorted(stamps)
    start, end = _iso("2022-11-01T00:00:00Z"), _iso(truth["collection_end"])
    assert all(start <= utc_of_zeek(t) < end for t in stamps)
    assert all(r["uid" if name != "dhcp" else "uids"].startswith("C") for r in rows)


def test_zeek_rows_are_linked(office) -> None:
    """Every dns.log and ssl.log row has its conn.log connection (same uid and addresses)."""
    folder, _ = office
    conns = {r["uid"]: r for r in _zeek(folder, "conn")}
    for name in ("dns", "ssl"):
        for r in _zeek(folder, name):
            c = conns[r["uid"]]
            assert [c[k] for k in ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")] == \
                   [r[k] for k in ("id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p")]
            assert ("dns" if name == "dns" else "ssl") in c["service"].split(",")
    for r in _zeek(folder, "dhcp"):
        assert all(uid in conns and conns[uid]["service"] == "dhcp" for uid in r["uids"].split(","))


def test_squid_access_log_format(office) -> None:
    """Spliced HTTPS is one tunnel line; bumped HTTPS is a CONNECT answered by Squid, then the requests
    inside it with their full URL, from the same client to the same host."""
    folder, truth = office
    assert truth["network"]["proxy"]["logformat"] == "combined"
    assert tuple(truth["network"]["proxy"]["ssl_bump"]["spliced"]) == SPLICED
    lines = read_squid(folder / "evidence" / "network" / "proxy" / "access.log")
    assert lines
    open_bumps: set[tuple[str, str]] = set()
    for m in lines:
        assert IPV4.match(m["client"])
        if m["method"] == "CONNECT":
            assert m["url"].endswith(":443") and m["status"] == "200"
            if spliced(m["host"]):
                assert (m["code"], m["hier"]) == ("TCP_TUNNEL", "HIER_DIRECT")
            else:
                assert (m["code"], m["hier"], m["bytes"]) == ("NONE_NONE", "HIER_NONE", "0")
                open_bumps.add((m["client"], m["host"]))
        else:
            assert m["method"] in ("GET", "POST") and m["url"].startswith("https://")
            assert (m["code"], m["hier"]) == ("TCP_MISS", "HIER_DIRECT") and not spliced(m["host"])
            assert (m["client"], m["host"]) in open_bumps, f"request without its bumped CONNECT: line {m['line']}"
    stamps = [m["utc"] for m in lines]
    assert stamps == sorted(stamps), "Squid logs a transaction when it ends: lines are in end-time order"
    assert {m["code"] for m in lines} == {"TCP_TUNNEL", "NONE_NONE", "TCP_MISS"}
    text = (folder / "evidence" / "network" / "proxy" / "access.log").read_text(encoding="utf-8")
    assert "__tutma" not in text, "no standard Squid logformat logs request cookies"


def test_proxy_shows_the_implant_requests(office) -> None:
    """Through the TLS-inspecting proxy, wks-08's implant is seen fetching the IconStorages icons and
    POSTing to its C2, with its 3CXDesktopApp/18.11.1197 user agent; nothing else carries that agent or
    path, and browsers send their own agents (GitHub included)."""
    folder, truth = office
    hosts = _hosts(truth)
    lines = read_squid(folder / "evidence" / "network" / "proxy" / "access.log")
    wks08 = {a["ip"] for a in hosts["wks-08"]["network"]["addresses"]}
    implant = [m for m in lines if m["agent"] == IMPLANT_UA]
    assert implant and {m["client"] for m in implant} == wks08
    assert {m["host"] for m in implant} <= C2_DOMAINS | {"raw.githubusercontent.com"}
    icons = [m for m in lines if "IconStorages" in m["url"]]
    assert icons and all(m["agent"] == IMPLANT_UA and m["method"] == "GET" for m in icons)
    for m in icons:
        number = int(ICON.match(m["url"])[1])
        assert number in (1, 2), m["url"]  # the icons that decode to wks-08's msstorageazure / officestoragebox
        assert m["status"] == ("200" if m["utc"] < TAKEDOWN else "404"), m["line"]
    first_icon = min(m["utc"] for m in icons)
    assert first_icon >= _iso(hosts["wks-08"]["first_c2"]) >= _iso(hosts["wks-08"]["network"]["first_c2"])
    beacons = [m for m in implant if m["method"] == "POST"]
    assert beacons and {m["host"] for m in beacons} == {"msstorageazure.com", "officestoragebox.com"}
    assert all(m["url"] == f"https://{m['host']}/" for m in beacons)
    others = [m for m in lines if m["agent"] != IMPLANT_UA]
    assert not any(m["host"] in C2_DOMAINS for m in others)
    browsed = [m for m in others if m["method"] == "GET"]
    assert browsed and all(m["agent"].startswith("Mozilla/5.0 (Windows NT 10.0; Win64; x64)") and
                           "3CXDesktopApp" not in m["agent"] for m in browsed)
    assert any(m["host"] == "raw.githubusercontent.com" for m in browsed), "the innocent side of the GitHub trap"


def test_dns_server_log_is_in_paris_time(office) -> None:
    folder, _ = office
    packets = read_dns_server(folder / "evidence" / "network" / "dc01-dns" / "dns.log")
    queries = [p for p in packets if p["dir"] == "Rcv" and p["qr"] == " "]
    winter = [p for p in queries if p["utc"] < _iso("2023-03-26T01:00:00Z")]
    summer = [p for p in queries if p["utc"] >= _iso("2023-03-26T01:00:00Z")]
    assert winter and summer
    assert all(p["wall"] - p["utc"].replace(tzinfo=None) == timedelta(hours=1) for p in winter)
    assert all(p["wall"] - p["utc"].replace(tzinfo=None) == timedelta(hours=2) for p in summer)
    # every client query is answered to the same client with the same transaction id
    answers = {(p["ip"], p["xid"], p["name"]) for p in packets if p["dir"] == "Snd" and p["qr"] == "R"}
    assert all((p["ip"], p["xid"], p["name"]) in answers for p in queries)
    assert {p["flags"] for p in queries if p["ip"].startswith("192.168.")} == {"0001"}


# -- consistency with the endpoint events -----------------------------------------------------------------

def test_sysmon_22_matches_dns_server_and_zeek(office) -> None:
    """Each Sysmon 22 is one query from the host's address at that instant: in dns.log at the same
    millisecond with the same answers, and in the DNS server's log at the same second (local time)."""
    folder, truth = office
    server = {(p["name"], p["ip"], p["utc"]) for p in
              read_dns_server(folder / "evidence" / "network" / "dc01-dns" / "dns.log")
              if p["dir"] == "Rcv" and p["qr"] == " "}
    zeek = {}
    for r in _zeek(folder, "dns"):
        zeek.setdefault((r["query"], r["id.orig_h"], r["ts"][:14]), []).append(r)
    checked = 0
    for h in truth["hosts"]:
        for ts, d in sysmon(folder, h["host"], "22"):
            ip = ip_at(h, ts)
            assert (d["QueryName"], ip, ts.replace(microsecond=0)) in server, (h["host"], ts, d["QueryName"])
            epoch_ms = f"{int(ts.timestamp())}.{ts.microsecond // 1000:03d}"
            rows = zeek.get((d["QueryName"], ip, epoch_ms))
            assert rows, (h["host"], ts, d["QueryName"])
            results = [x.removeprefix("::ffff:") for x in d["QueryResults"].split(";") if x]
            results = [x.removeprefix("type:  5 ") for x in results]
            assert any(r["answers"].split(",") == results for r in rows), (d["QueryResults"], rows)
            checked += 1
    assert checked > 1000


def test_sysmon_3_matches_conn_log(office) -> None:
    """Each Sysmon 3 is a conn.log connection with the same four-tuple at the same millisecond (ports
    are reused over months, so the time is part of the key)."""
    folder, truth = office
    conns = {(r["id.orig_h"], r["id.orig_p"], r["id.resp_h"], r["id.resp_p"], r["ts"][:14]) for r in _zeek(folder, "conn")}
    checked = 0
    for h in truth["hosts"]:
        for ts, d in sysmon(folder, h["host"], "3"):
            epoch_ms = f"{int(ts.timestamp())}.{ts.microsecond // 1000:03d}"
            key = (d["SourceIp"], d["SourcePort"], d["DestinationIp"], d["DestinationPort"], epoch_ms)
            assert key in conns, (h["host"], ts, key)
            assert d["SourceIp"] == ip_at(h, ts)
            checked += 1
    assert checked > 1000


def test_proxy_hosts(office) -> None:
    """A proxy user's connections go to the proxy in Sysmon 3 and conn.log; Squid names the real server."""
    folder, truth = office
    net = truth["network"]
    proxy, port = net["proxy"]["ip"], str(net["proxy"]["port"])
    users = {h["host"] for h in truth["hosts"] if h["network"]["via_proxy"]}
    assert "wks-08" in users  # a C2 host whose beacons leave through the proxy
    for h in truth["hosts"]:
        dests = {(d["DestinationIp"], d["DestinationPort"]) for _, d in sysmon(folder, h["host"], "3")}
        if h["host"] in users:
            assert dests in (set(), {(proxy, port)}), h["host"]
        else:
            assert (proxy, port) not in dests, h["host"]
    lines = read_squid(folder / "evidence" / "network" / "proxy" / "access.log")
    clients = {a["ip"] for h in truth["hosts"] if h["host"] in users for a in h["network"]["addresses"]}
    assert lines and {m["client"] for m in lines} <= clients
    c2 = [m for m in lines if m["host"] in C2_DOMAINS]
    assert c2 and all(m["method"] == "POST" or m["code"] == "NONE_NONE" for m in c2), "C2 traffic is bumped"
    # each CONNECT line is one conn.log connection to the proxy: a spliced tunnel is stamped with its end,
    # a bumped CONNECT with the end of the client's TLS handshake (well within a second of the start)
    sni = {r["uid"]: r["server_name"] for r in _zeek(folder, "ssl") if r["id.resp_h"] == proxy}
    expected: dict[tuple[str, str, int], int] = {}
    for r in _zeek(folder, "conn"):
        if r["id.resp_h"] == proxy and r["id.resp_p"] == port:
            start = utc_of_zeek(r["ts"])
            name = sni[r["uid"]]
            ends = [start + timedelta(seconds=float(r["duration"]))] if spliced(name) else \
                [start, start + timedelta(milliseconds=100)]
            for second in {int(t.timestamp()) for t in ends}:
                key = (r["id.orig_h"], name, second)
                expected[key] = expected.get(key, 0) + 1
    connects = [m for m in lines if m["method"] == "CONNECT"]
    assert len(connects) == len(sni)
    for m in connects:
        key = (m["client"], m["host"], int(m["utc"].timestamp()))
        assert expected.get(key), m["line"]
        expected[key] -= 1
    assert {m["host"] for m in c2} <= set(sni.values())


def test_address_change_in_dhcp_and_sysmon(office) -> None:
    """wks-07 gets a new address (new dock, new MAC) while beaconing; Sysmon 3 follows; wks-04 later gets
    the old address after its lease expired."""
    folder, truth = office
    hosts = _hosts(truth)
    old, new = hosts["wks-07"]["network"]["addresses"]
    moved = _iso(new["from"])
    assert old["ip"] != new["ip"] and old["mac"] != new["mac"]
    dhcp = _zeek(folder, "dhcp")
    dora = [r for r in dhcp if r["host_name"] == "WKS-07" and r["msg_types"] == "DISCOVER,OFFER,REQUEST,ACK"]
    assert len(dora) == 1 and dora[0]["assigned_addr"] == new["ip"] and dora[0]["mac"] == new["mac"]
    assert abs(utc_of_zeek(dora[0]["ts"]) - moved) < timedelta(seconds=1)
    renewals = {r["assigned_addr"] for r in dhcp if r["host_name"] == "WKS-07" and r["msg_types"] == "REQUEST,ACK"}
    assert renewals == {old["ip"], new["ip"]}
    source = [(ts, d["SourceIp"]) for ts, d in sysmon(folder, "wks-07", "3")]
    assert {ip for ts, ip in source if ts < moved} == {old["ip"]}
    assert {ip for ts, ip in source if ts >= moved} == {new["ip"]}
    c2 = [ts for ts, d in sysmon(folder, "wks-07", "3") if d["DestinationIp"] in C2_IPS]
    assert min(c2) < moved < max(c2), "the C2 contact spans the change"
    # the old address goes to wks-04 once wks-07's lease could have expired
    heir = hosts["wks-04"]["network"]["addresses"]
    assert heir[-1]["ip"] == old["ip"] and _iso(heir[-1]["from"]) >= moved + timedelta(days=8)
    nak = [r for r in dhcp if r["host_name"] == "WKS-04" and r["msg_types"] == "REQUEST,NAK"]
    assert len(nak) == 1 and nak[0]["requested_addr"] == heir[0]["ip"] and nak[0]["assigned_addr"] == "-"
    taken = [r for r in dhcp if r["assigned_addr"] == old["ip"] and r["host_name"] == "WKS-04"]
    assert taken and taken[0]["msg_types"] == "DISCOVER,OFFER,REQUEST,ACK"
    # nothing from the old address between the two leases; only wks-04's (clean) traffic after
    conns = [r for r in _zeek(folder, "conn") if r["id.orig_h"] == old["ip"]]
    between = [r for r in conns if moved < utc_of_zeek(r["ts"]) < _iso(heir[-1]["from"])]
    assert not between
    after = [r for r in conns if utc_of_zeek(r["ts"]) >= _iso(heir[-1]["from"])]
    assert after and not any(r["id.resp_h"] in C2_IPS for r in after)


def test_network_only_truth_from_the_network_logs(netonly) -> None:
    """Re-derive each host's network verdict and first C2 contact from the Zeek and Squid logs with the
    ground truth's address intervals: the truth a network-only hunt must reach."""
    folder, truth = netonly
    hosts = _hosts(truth)
    seen: dict[str, datetime] = {}

    def owner(ip: str, ts: datetime) -> str:
        names = [n for n, h in hosts.items() if any(a["ip"] == ip for a in h["network"]["addresses"])
                 and _holds(h, ip, ts)]
        assert len(names) == 1, (ip, ts, names)
        return names[0]

    def saw(ip: str, ts: datetime) -> None:
        name = owner(ip, ts)
        seen[name] = min(seen.get(name, ts), ts)

    for r in _zeek(folder, "dns"):
        if r["query"] in C2_DOMAINS:
            saw(r["id.orig_h"], utc_of_zeek(r["ts"]))
    for r in _zeek(folder, "conn"):
        if r["id.resp_h"] in C2_IPS:
            saw(r["id.orig_h"], utc_of_zeek(r["ts"]))
    for r in _zeek(folder, "ssl"):
        if r["server_name"] in C2_DOMAINS:
            saw(r["id.orig_h"], utc_of_zeek(r["ts"]))
    # the proxy decrypts the implant's requests (its agent names it, also on the GitHub dead drop): each is
    # dated by its connection to the proxy, in conn.log, which started at most a second before the line
    sni = {r["uid"]: r["server_name"] for r in _zeek(folder, "ssl")}
    to_proxy = [(r["id.orig_h"], sni[r["uid"]], utc_of_zeek(r["ts"])) for r in _zeek(folder, "conn")
                if r["uid"] in sni and r["id.resp_p"] == "3128"]
    for m in read_squid(folder / "evidence" / "network" / "proxy" / "access.log"):
        if m["host"] in C2_DOMAINS or m["agent"] == IMPLANT_UA:
            starts = [t for ip, name, t in to_proxy if (ip, name) == (m["client"], m["host"])
                      and m["utc"] - timedelta(seconds=5) < t < m["utc"] + timedelta(seconds=1)]
            assert starts, m["line"]
            saw(m["client"], max(starts))
    assert {n for n, h in hosts.items() if h["verdict"] == "c2-contact"} == set(seen)
    for name, first in seen.items():
        assert hosts[name]["first_c2"] == first.strftime("%Y-%m-%dT%H:%M:%SZ"), name
    # the moving C2 host contacts C2 from both of its addresses; the heir of its old address never does
    moving = next(n for n, h in hosts.items() if h["verdict"] == "c2-contact" and len(h["network"]["addresses"]) > 1)
    ips = [a["ip"] for a in hosts[moving]["network"]["addresses"]]
    c2_from = {r["id.orig_h"] for r in _zeek(folder, "conn") if r["id.resp_h"] in C2_IPS}
    assert set(ips) <= c2_from
    heirs = [n for n, h in hosts.items() if n != moving and ips[0] in {a["ip"] for a in h["network"]["addresses"]}]
    assert heirs and all(hosts[n]["verdict"] == "no-evidence" for n in heirs)


def _holds(h: dict[str, Any], ip: str, ts: datetime) -> bool:
    for a in h["network"]["addresses"]:
        start = datetime.min.replace(tzinfo=UTC) if a["from"] is None else _iso(a["from"])
        end = datetime.max.replace(tzinfo=UTC) if a["until"] is None else _iso(a["until"])
        if a["ip"] == ip and start <= ts < end:
            return True
    return False


# -- the address plan ------------------------------------------------------------------------------------

def test_address_plan_scales_with_unique_addresses() -> None:
    specs = scenarios.hosts("office", 3)
    plans = plan_addresses(specs, scenarios.span("office"), "7:office")
    first = [p[0].ip for p in plans.values()]
    assert len(first) == len(set(first)) == 27
    # each copy's wks-04 takes its own copy's wks-07 address
    for copy in range(3):
        heir, mover = specs[copy * 9 + 3].name, specs[copy * 9 + 6].name
        assert plans[heir][-1].ip == plans[mover][0].ip


def test_address_plan_refuses_an_address_still_leased() -> None:
    span = scenarios.span("office")
    specs = (
        HostSpec("wks-01", "a", "no-evidence", story="moves", readdress=(Readdress(date(2023, 3, 20), new_mac=True),)),
        HostSpec("wks-02", "b", "no-evidence", story="takes it two days later",
                 readdress=(Readdress(date(2023, 3, 22), takes_from="wks-01"),)),
    )
    with pytest.raises(ValueError, match="192.168.10.20"):
        plan_addresses(specs, span, "7:test")
