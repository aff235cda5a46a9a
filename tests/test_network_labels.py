"""The labelled traffic of the shared network data, found and attributed as its sources state.

Each label (../shared/data/SOURCES.md) becomes an indicator of a pack written for this test; the
whole pipeline (sniffing, readers, store, indicator SQL, attribution, verdicts) must then put the
contact on the labelled client, with the right first and last time, and never on the proxy.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from conftest import shared

from turncoat import pipeline
from turncoat.store.case import Case
from turncoat.store.schema import FROM_NETWORK_LOGS

PACK_YAML = """id: labels-test
name: "Labelled traffic of the shared data"
exposure_window: {start: "2018-01-01T00:00:00Z", end: "2024-01-01T00:00:00Z"}
dormancy_days: {min: 1, typical: 1, max: 1}
"""
IOCS = """type,value,role,stage,stage_on_disk,confidence,platform,source,note
domain,honestimnotevil.com,RITA proxy beacon,c2-contact,,high,any,RITA TestProxyBeacons,
ip,66.63.168.35,RemcosRAT C2,c2-contact,,high,any,slips labels.config,
cidr,192.168.0.0/24,APT29 emulation C2 range,c2-contact,,high,any,OTRF apt29 day 1,
"""


@pytest.fixture(scope="module")
def label_pack(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("pack")
    (root / "pack.yaml").write_text(PACK_YAML, encoding="utf-8")
    (root / "iocs.csv").write_text(IOCS, encoding="utf-8")
    return root


def _hunt(tmp: Path, evidence: list[Path], pack: Path) -> dict:
    case = tmp / "case"
    pipeline.ingest(evidence, case)
    pipeline.detect(case, [str(pack)])
    return pipeline.assess(case, [str(pack)])


def _host(report: dict, name: str) -> dict:
    hosts = {h["host"]: h for h in report["hosts"]}
    assert name in hosts, sorted(hosts)
    return hosts[name]


def test_rita_proxy_beacon_is_on_the_client_not_the_proxy(tmp_path: Path, label_pack: Path) -> None:
    report = _hunt(tmp_path, [shared("zeek", "rita", "test_data", "proxy")], label_pack)
    client = _host(report, "ip:10.136.0.18")
    assert client["verdict"] == "c2-contact"
    fields = {(e["view"], e["field"]) for e in client["evidence"]}
    assert ("net_http", "url.domain") in fields  # the CONNECT host seen by Zeek's http.log
    assert all("honestimnotevil" in str(e["value"]) for e in client["evidence"])
    proxy = {h["host"]: h for h in report["hosts"]}.get("ip:10.136.0.16")
    assert proxy is None or proxy["verdict"] == "no-evidence"
    flagged = {h["host"] for h in report["hosts"] if h["verdict"] == "c2-contact"}
    assert flagged == {"ip:10.136.0.18"}
    assert client["first_c2"] < client["last_c2"]


def test_remcos_flows_attributed_to_the_infected_host(tmp_path: Path, label_pack: Path) -> None:
    folder = shared("zeek", "slips", "dataset", "test18-malicious-ctu-sme-11-win")
    report = _hunt(tmp_path, [folder], label_pack)
    flagged = {h["host"]: h for h in report["hosts"] if h["verdict"] == "c2-contact"}
    # the capture's dhcp.log names the client: NWin3 renewed 192.168.1.107 (its own address, so a
    # renewal: the address was NWin3's before the lease too, and every flow is attributed)
    assert set(flagged) == {"nwin3"}
    assert [a["ip"] for a in flagged["nwin3"]["addresses"]] == ["192.168.1.107"]
    con = duckdb.connect(str(Case(tmp_path / "case").database), read_only=True)
    try:
        rows = con.execute(
            "SELECT count(*) FROM findings WHERE host = 'nwin3' AND view = 'net_flow' "
            "AND value = '66.63.168.35'").fetchall()[0][0]
        labelled = con.execute(
            """SELECT count(*) FROM net_flow WHERE "source.ip" = '192.168.1.107'
               AND "destination.ip" = '66.63.168.35' AND "destination.port" = 5888""").fetchall()[0][0]
    finally:
        con.close()
    assert labelled == 719  # SOURCES.md: 719 conn flows of the RemcosRAT C2 channel
    assert rows == labelled


def test_apt29_c2_on_nashua(tmp_path: Path, label_pack: Path) -> None:
    folder = shared("zeek", "otrf-apt29", "datasets", "compound", "apt29", "day1", "zeek", "individual_zeek_logs")
    report = _hunt(tmp_path, [folder], label_pack)
    # no DHCP here: the organisation's DNS answers name 10.0.1.6 (a registration of NASHUA)
    host = _host(report, "nashua")
    assert [(a["ip"], a["sources"]) for a in host["addresses"]] == [("10.0.1.6", "dns")]
    assert host["verdict"] == "c2-contact"
    contacts = {(e["view"], e["value"]) for e in host["evidence"]}
    assert ("net_flow", "192.168.0.4") in contacts
    assert all(e["rule_id"] == "ioc:cidr:192.168.0.0/24" for e in host["evidence"])
    assert host["first_c2"] <= host["last_c2"]
    assert _host(report, "ip:10.0.1.4")["verdict"] == "c2-contact"  # SCRANTON → 192.168.0.5


def test_dns_server_analytical_events_are_dns_questions_of_their_clients(tmp_path: Path) -> None:
    """Windows DNS Server analytical events (an event log, read into win_events) are questions of
    the clients they name: `Source` of 256, `Destination` of 257 — not of the DNS server itself."""
    root = tmp_path / "pack"
    root.mkdir()
    (root / "pack.yaml").write_text(PACK_YAML.replace("labels-test", "dns-analytical"), encoding="utf-8")
    (root / "iocs.csv").write_text(
        IOCS.splitlines()[0] + "\ndomain,google.es,test name,c2-contact,,high,any,test,\n", encoding="utf-8")
    report = _hunt(tmp_path, [shared("dns")], root)
    con = duckdb.connect(str(Case(tmp_path / "case").database), read_only=True)
    try:
        questions = con.execute(
            """SELECT "event.dataset", "source.ip", "dns.question.name", evidence_id IS NOT NULL FROM net_dns
               ORDER BY 2""").fetchall()
        counted = con.execute(f"SELECT count(*) FROM net_dns {FROM_NETWORK_LOGS}").fetchall()[0][0]
    finally:
        con.close()
    assert questions and all(q[0] == "windows_dns.analytical" and q[2] == "google.es" and q[3] for q in questions)
    flagged = {h["host"] for h in report["hosts"] if h["verdict"] == "c2-contact"}
    assert flagged == {f"ip:{q[1]}" for q in questions}
    assert counted == 0 and report["case"]["network_records"] == 0  # counted once, as events


def _zeek(path: str, fields: list[str], rows: list[list[str]]) -> str:
    head = ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n"
            f"#path\t{path}\n#open\t2023-03-20-10-00-00\n#fields\t" + "\t".join(fields) + "\n"
            "#types\t" + "\t".join("string" for _ in fields) + "\n")
    return head + "".join("\t".join(r) + "\n" for r in rows)


def test_dns_registrations_name_addresses_no_lease_covers(tmp_path: Path, label_pack: Path) -> None:
    """A records and PTR answers of internal names attribute addresses nobody leased; a stale
    record never overrides a DHCP lease of the same address."""
    logs = tmp_path / "zeek"
    logs.mkdir()
    t0 = 1679306400
    (logs / "dhcp.log").write_text(_zeek("dhcp", ["ts", "client_addr", "mac", "host_name", "assigned_addr",
                                                  "lease_time", "msg_types"],
                                         [[f"{t0}.0", "-", "aa:bb:cc:00:00:01", "PC-A", "10.0.0.50", "86400.0",
                                           "REQUEST,ACK"]]), encoding="utf-8")
    dns_fields = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "query", "qtype_name",
                  "rcode_name", "answers"]
    (logs / "dns.log").write_text(_zeek("dns", dns_fields, [
        [f"{t0 + 10}.0", "D1", "10.0.0.9", "5353", "10.0.0.1", "53", "udp", "pc-b.corp.example", "A", "NOERROR",
         "10.0.0.50"],                                                                  # stale: PC-A has it
        [f"{t0 + 11}.0", "D2", "10.0.0.9", "5354", "10.0.0.1", "53", "udp", "printer.corp.example", "A",
         "NOERROR", "10.0.0.60"],
        [f"{t0 + 12}.0", "D3", "10.0.0.9", "5355", "10.0.0.1", "53", "udp", "70.0.0.10.in-addr.arpa", "PTR",
         "NOERROR", "nas.corp.example"],
        [f"{t0 + 13}.0", "D4", "10.0.0.9", "5356", "10.0.0.1", "53", "udp", "www.example.org", "A", "NOERROR",
         "93.184.216.34"],
    ]), encoding="utf-8")
    conn_fields = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto"]
    (logs / "conn.log").write_text(_zeek("conn", conn_fields, [
        [f"{t0 + 100 + i}.0", f"C{i}", ip, "40000", "66.63.168.35", "5888", "tcp"]
        for i, ip in enumerate(("10.0.0.50", "10.0.0.60", "10.0.0.70", "10.0.0.80"))]), encoding="utf-8")
    report = _hunt(tmp_path, [logs], label_pack)
    flagged = {h["host"]: h for h in report["hosts"] if h["verdict"] == "c2-contact"}
    assert set(flagged) == {"pc-a", "printer", "nas", "ip:10.0.0.80"}
    assert [a["sources"] for a in flagged["pc-a"]["addresses"]] == ["dhcp"]
    assert [a["sources"] for a in flagged["printer"]["addresses"]] == ["dns"]
    assert "pc-b" not in {h["host"] for h in report["hosts"]}


def test_service_names_of_a_domain_are_not_hosts(tmp_path: Path, label_pack: Path) -> None:
    """The AD domain apex, `_msdcs` and `gc` names resolve to the domain controllers: they name no
    machine, so a DC's query stays on the DC's own registration."""
    logs = tmp_path / "zeek"
    logs.mkdir()
    t0 = 1679306400
    dns_fields = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "query", "qtype_name",
                  "rcode_name", "answers"]
    rows = [("dc1.corp.example", "10.0.0.2"), ("corp.example", "10.0.0.2,10.0.0.3"),
            ("gc._msdcs.corp.example", "10.0.0.2"), ("domaindnszones.corp.example", "10.0.0.2,10.0.0.3"),
            ("gc.corp.example", "10.0.0.3")]
    records = [[f"{t0 + i}.0", f"D{i}", "10.0.0.9", "5353", "10.0.0.2", "53", "udp", q, "A", "NOERROR", a]
               for i, (q, a) in enumerate(rows)]
    records.append([f"{t0 + 120}.0", "DX", "10.0.0.2", "5400", "10.0.0.3", "53", "udp", "www.honestimnotevil.com",
                    "A", "NOERROR", "192.0.2.10"])
    (logs / "dns.log").write_text(_zeek("dns", dns_fields, records), encoding="utf-8")
    report = _hunt(tmp_path, [logs], label_pack)
    flagged = {h["host"] for h in report["hosts"] if h["verdict"] == "c2-contact"}
    assert flagged == {"dc1"}
    assert not {"corp", "gc", "domaindnszones"} & {h["host"] for h in report["hosts"]}


def test_endpoint_ipv6_spelling_meets_the_network_spelling(tmp_path: Path, label_pack: Path) -> None:
    """Sysmon writes `fd00:0:0:0:0:0:0:23`, Zeek `fd00::23`: the same address, the same host."""
    import orjson

    logs = tmp_path / "evidence"
    logs.mkdir()
    event = {"@timestamp": "2023-03-20T09:00:00.000Z",
             "winlog": {"channel": "Microsoft-Windows-Sysmon/Operational", "computer_name": "PC-ANNA.corp.example",
                        "event_id": "3", "record_id": 7, "provider_name": "Microsoft-Windows-Sysmon",
                        "event_data": {"Image": "C:\\Windows\\svchost.exe", "Initiated": "true",
                                       "SourceIp": "fd00:0:0:0:0:0:0:23", "SourcePort": "50000",
                                       "DestinationIp": "fd00:0:0:0:0:0:0:1", "DestinationPort": "53",
                                       "Protocol": "udp"}}}
    (logs / "sysmon.ndjson").write_bytes(orjson.dumps(event) + b"\n")
    dns_fields = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "query", "qtype_name",
                  "rcode_name", "answers"]
    (logs / "dns.log").write_text(_zeek("dns", dns_fields, [
        ["1679306500.0", "D1", "fd00::23", "5353", "fd00::1", "53", "udp", "www.honestimnotevil.com", "A",
         "NOERROR", "192.0.2.10"]]), encoding="utf-8")
    report = _hunt(tmp_path, [logs], label_pack)
    flagged = {h["host"] for h in report["hosts"] if h["verdict"] == "c2-contact"}
    assert flagged == {"pc-anna"}


def test_an_address_changing_hands_within_the_hour_counts_for_each_host(tmp_path: Path, label_pack: Path) -> None:
    """Coverage is counted per hour for speed; the hour in which an address moves is counted row by
    row, so the second holder is reported too instead of vanishing into the first."""
    logs = tmp_path / "zeek"
    logs.mkdir()
    t0 = 1679302800  # 2023-03-20 09:00 UTC
    dhcp = ["ts", "client_addr", "mac", "host_name", "assigned_addr", "lease_time", "msg_types"]
    (logs / "dhcp.log").write_text(_zeek("dhcp", dhcp, [
        [f"{t0}.0", "-", "aa:bb:cc:00:00:01", "pc-a", "10.0.0.50", "600.0", "DISCOVER,OFFER,REQUEST,ACK"],
        [f"{t0 + 1800}.0", "-", "aa:bb:cc:00:00:02", "pc-b", "10.0.0.50", "600.0", "DISCOVER,OFFER,REQUEST,ACK"],
    ]), encoding="utf-8")
    dns_fields = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "query", "qtype_name",
                  "rcode_name", "answers"]
    (logs / "dns.log").write_text(_zeek("dns", dns_fields, [
        [f"{t0 + 600}.0", "D1", "10.0.0.50", "5353", "10.0.0.1", "53", "udp", "www.example.org", "A", "NOERROR",
         "192.0.2.1"],
        [f"{t0 + 2400}.0", "D2", "10.0.0.50", "5354", "10.0.0.1", "53", "udp", "www.example.org", "A", "NOERROR",
         "192.0.2.1"],
    ]), encoding="utf-8")
    report = _hunt(tmp_path, [logs], label_pack)
    hosts = {h["host"]: h for h in report["hosts"]}
    assert set(hosts) == {"pc-a", "pc-b"}
    for name in ("pc-a", "pc-b"):
        sources = hosts[name]["coverage"]["sources"]
        assert [(s["channel"], s["records"]) for s in sources] == [("network:zeek.dns", 1)]
        assert hosts[name]["verdict"] == "no-evidence"


def test_dead_drop_url_matches_with_a_port_and_never_by_host_alone(tmp_path: Path) -> None:
    """The 3CX pack's GitHub dead drop: found in a proxy's full URL, with or without an explicit port;
    `raw.githubusercontent.com` alone (DNS, SNI, another repository) is never a hit."""
    proxy = tmp_path / "access.log"
    t0 = 1679306400
    lines = [
        f"{t0}.100    120 10.0.0.21 TCP_MISS/200 4512 GET "
        "https://raw.githubusercontent.com/IconStorages/images/main/icon3.ico - HIER_DIRECT/185.199.108.133 image/x-icon",
        f"{t0 + 5}.100    120 10.0.0.22 TCP_MISS/200 4512 GET "
        "http://raw.githubusercontent.com:443/IconStorages/images/main/icon7.ico - HIER_DIRECT/185.199.108.133 "
        "image/x-icon",
        f"{t0 + 9}.100    120 10.0.0.23 TCP_MISS/200 900 GET "
        "https://raw.githubusercontent.com/someone/dotfiles/main/README.md - HIER_DIRECT/185.199.108.133 text/plain",
        f"{t0 + 12}.100   3000 10.0.0.24 TCP_TUNNEL/200 5120 CONNECT raw.githubusercontent.com:443 - "
        "HIER_DIRECT/185.199.108.133 -",
    ]
    proxy.write_text("\n".join(lines) + "\n", encoding="utf-8")
    case = tmp_path / "case"
    pipeline.ingest([proxy], case)
    pipeline.detect(case, ["3cx-2023"])
    report = pipeline.assess(case, ["3cx-2023"])
    flagged = {h["host"] for h in report["hosts"] if h["verdict"] == "c2-contact"}
    assert flagged == {"ip:10.0.0.21", "ip:10.0.0.22"}
