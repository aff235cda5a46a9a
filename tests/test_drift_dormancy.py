"""Generic mode: build drift and dormancy on small Winlogbeat-style Sysmon cases.

The reference shape is 3CX: a vendor app (here "Acme Phone") whose v2 ships an unsigned `ffmpeg.dll`
with a new hash, spawns a shell, and first contacts a never-seen domain days after it first ran; an
ordinary vendor update ("Beta Chat": new hashes, same signer) and Windows' own catalog-signed files
beside it must stay silent.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from turncoat import pipeline
from turncoat.detect.dormancy import dormancy_findings, dormancy_table
from turncoat.detect.drift import app_builds, drift_analysis, drift_findings
from turncoat.store.case import Case
from turncoat.store.schema import FINDINGS_COLUMNS, triage_columns

SYSMON = "Microsoft-Windows-Sysmon/Operational"
T0 = datetime(2023, 3, 1, 9, 0, tzinfo=UTC)
ACME_DIR = "C:\\Users\\{user}\\AppData\\Local\\Programs\\AcmePhone\\app"
BETA_DIR = "C:\\Program Files\\Beta Chat"
SYS32 = "C:\\Windows\\System32"


def _h(label: str) -> str:
    import hashlib

    return hashlib.sha256(label.encode()).hexdigest().upper()


class Events:
    """Winlogbeat NDJSON lines, one record-id sequence per host."""

    def __init__(self) -> None:
        self.lines: list[bytes] = []
        self.records: dict[str, itertools.count[int]] = {}

    def add(self, host: str, ts: datetime, event_id: int, **data: str) -> None:
        rec = next(self.records.setdefault(host, itertools.count(1)))
        self.lines.append(orjson.dumps({
            "@timestamp": ts.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
            "winlog": {"channel": SYSMON, "computer_name": f"{host}.corp.example", "event_id": str(event_id),
                       "record_id": rec, "event_data": data},
        }) + b"\n")

    def run(self, host: str, ts: datetime, image: str, version: str, product: str, company: str,
            parent: str = "C:\\Windows\\explorer.exe") -> None:
        self.add(host, ts, 1, Image=image, FileVersion=version, Product=product, Company=company,
                 ParentImage=parent, CommandLine=f'"{image}"', Hashes=f"SHA256={_h(image + version)}")

    def load(self, host: str, ts: datetime, image: str, dll: str, label: str, signer: str | None,
             status: str = "Valid") -> None:
        self.add(host, ts, 7, Image=image, ImageLoaded=dll, Hashes=f"SHA256={_h(label)}",
                 Signed="true" if signer else "false", Signature=signer or "-",
                 SignatureStatus=status if signer else "Unavailable")

    def dns(self, host: str, ts: datetime, image: str, name: str, answer: str) -> None:
        self.add(host, ts, 22, Image=image, QueryName=name, QueryStatus="0", QueryResults=f"::ffff:{answer};")

    def connect(self, host: str, ts: datetime, image: str, ip: str, name: str = "") -> None:
        self.add(host, ts, 3, Image=image, DestinationIp=ip, DestinationHostname=name, DestinationPort="443",
                 Protocol="tcp", Initiated="true", SourceIp="10.0.0.5", SourcePort="50000")

    def write(self, folder: Path) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / "sysmon.ndjson"
        path.write_bytes(b"".join(self.lines))
        return path


def acme(host: str) -> str:
    return ACME_DIR.format(user=host) + "\\AcmePhone.exe"


def scenario(c2_delay_days: float) -> Events:
    """Acme Phone v1 (1.0.100) on three hosts, v2 (1.0.200) on two of them; Beta Chat 3.0 → 3.1 everywhere."""
    ev = Events()
    hosts = ("wks-01", "wks-02", "wks-03")
    beta = BETA_DIR + "\\BetaChat.exe"
    for i, host in enumerate(hosts):
        exe, t = acme(host), T0 + timedelta(minutes=i)
        folder = ACME_DIR.format(user=host)
        ev.run(host, t, exe, "1.0.100.0", "Acme Phone", "Acme Ltd")
        ev.load(host, t + timedelta(seconds=1), exe, exe, "acme.exe 1.0.100", "Acme Ltd")
        ev.load(host, t + timedelta(seconds=1), exe, folder + "\\ffmpeg.dll", "ffmpeg v1", "Acme Ltd")
        ev.load(host, t + timedelta(seconds=1), exe, folder + "\\d3dcompiler_47.dll", "d3d v1", "Microsoft Corporation")
        ev.load(host, t + timedelta(seconds=1), exe, SYS32 + "\\winhttp.dll", "winhttp 19041.1", "Microsoft Windows")
        ev.dns(host, t + timedelta(seconds=5), exe, "api.acme.example", "203.0.113.10")
        ev.connect(host, t + timedelta(seconds=6), exe, "203.0.113.10")
        # Beta Chat 3.0: its own folder, signed by its vendor
        ev.run(host, t, beta, "3.0.0", "Beta Chat", "Beta Inc")
        ev.load(host, t + timedelta(seconds=1), beta, beta, "beta.exe 3.0", "Beta Inc")
        ev.load(host, t + timedelta(seconds=1), beta, BETA_DIR + "\\libbeta.dll", "libbeta 3.0", "Beta Inc")
        ev.load(host, t + timedelta(seconds=1), beta, SYS32 + "\\dbghelp.dll", "dbghelp a", "Microsoft Windows")
        ev.dns(host, t + timedelta(seconds=5), beta, "chat.beta.example", "198.51.100.20")
    day10 = T0 + timedelta(days=10)
    for i, host in enumerate(hosts[:2]):
        exe, t = acme(host), day10 + timedelta(hours=i)
        folder = ACME_DIR.format(user=host)
        ev.run(host, t, exe, "1.0.200.0", "Acme Phone", "Acme Ltd")
        ev.load(host, t + timedelta(seconds=1), exe, exe, "acme.exe 1.0.200", "Acme Ltd")
        ev.load(host, t + timedelta(seconds=1), exe, folder + "\\ffmpeg.dll", "ffmpeg v2 trojan", None)
        ev.load(host, t + timedelta(seconds=1), exe, folder + "\\d3dcompiler_47.dll", "d3d v1", "Microsoft Corporation")
        # Windows' own file at another patch level, that Sysmon could not verify (catalog-signed)
        ev.load(host, t + timedelta(seconds=1), exe, SYS32 + "\\winhttp.dll", "winhttp 19041.2", None)
        ev.dns(host, t + timedelta(seconds=5), exe, "api.acme.example", "203.0.113.10")
        contact = t + timedelta(days=c2_delay_days)
        ev.dns(host, contact, exe, "new-c2.example", "192.0.2.66")
        ev.connect(host, contact + timedelta(seconds=1), exe, "192.0.2.66")   # the name's address: one destination
    ev.add("wks-01", day10 + timedelta(minutes=30), 1, Image=SYS32 + "\\cmd.exe", ParentImage=acme("wks-01"),
           CommandLine="cmd.exe /c whoami", FileVersion="10.0.19041.1", Product="Microsoft Windows",
           Company="Microsoft Corporation", Hashes=f"SHA256={_h('cmd')}")
    # Beta Chat 3.1: new hashes, same signer, one new module signed by the vendor, Windows DLL unverified;
    # it reaches a new CDN one day after the update (an ordinary endpoint, no dormancy)
    for i, host in enumerate(hosts):
        beta_t = day10 + timedelta(hours=3 + i)
        ev.run(host, beta_t, beta, "3.1.0", "Beta Chat", "Beta Inc")
        ev.load(host, beta_t + timedelta(seconds=1), beta, beta, "beta.exe 3.1", "Beta Inc")
        ev.load(host, beta_t + timedelta(seconds=1), beta, BETA_DIR + "\\libbeta.dll", "libbeta 3.1", "Beta Inc")
        ev.load(host, beta_t + timedelta(seconds=1), beta, BETA_DIR + "\\libnew.dll", "libnew 3.1", "Beta Inc")
        ev.load(host, beta_t + timedelta(seconds=1), beta, SYS32 + "\\dbghelp.dll", "dbghelp b", None)
        ev.dns(host, beta_t + timedelta(days=1), beta, "cdn2.beta.example", "198.51.100.21")
    return ev


def _case(tmp: Path, c2_delay_days: float) -> Path:
    evidence = scenario(c2_delay_days).write(tmp / "evidence")
    case = tmp / "case"
    pipeline.ingest([evidence], case)
    return case


@pytest.fixture(scope="module")
def case8(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _case(tmp_path_factory.mktemp("drift8"), 8)


def _by_rule(findings: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for f in findings:
        out.setdefault(f["rule_id"], []).append(f)
    return out


def test_builds_and_baseline(case8: Path) -> None:
    con = Case(case8).connect()
    builds = {b.executable: b for b in app_builds(con)}
    acme_app = builds["acmephone.exe"]
    assert (acme_app.signer, acme_app.product) == ("Acme Ltd", "Acme Phone")
    v1, v2 = acme_app.versions
    assert (v1.version, v2.version) == ("1.0.100.0", "1.0.200.0")
    assert sorted(v1.hosts) == ["wks-01", "wks-02", "wks-03"] and sorted(v2.hosts) == ["wks-01", "wks-02"]
    assert v1.note and "no baseline" in v1.note and v2.note is None and v2.earlier == ["1.0.100.0"]
    assert v2.hosts["wks-02"] == T0 + timedelta(days=10, hours=1)
    assert v2.campaign == "generic:Acme Ltd/Acme Phone/1.0.200.0"
    assert "cmd.exe" not in builds  # Windows' own programs are not applications here


def test_drift_findings(case8: Path) -> None:
    con = Case(case8).connect()
    findings = drift_findings(con)
    for f in findings:
        assert set(f) == set(FINDINGS_COLUMNS)
        assert f["campaign"] == "generic:Acme Ltd/Acme Phone/1.0.200.0"  # Beta Chat's update is silent
    rules = _by_rule(findings)
    assert set(rules) == {"generic:drift:module-signature", "generic:drift:new-shell-child",
                          "generic:drift:new-destination"}
    module = rules["generic:drift:module-signature"]
    assert sorted(f["host"] for f in module) == ["wks-01", "wks-02"]
    for f in module:
        assert (f["stage"], f["confidence"], f["view"], f["field"]) == (
            "armed-dormant", "medium", "ecs_image_load", "dll.hash.sha256")
        old, new = _h("ffmpeg v1").lower(), _h("ffmpeg v2 trojan").lower()
        assert old[:12] in f["title"] and new[:12] in f["title"]
        assert "signed by Acme Ltd → unsigned" in f["title"]
        assert f["value"] == (f"{ACME_DIR.format(user=f['host'])}\\ffmpeg.dll: hash {old} → {new}; "
                              "signed by Acme Ltd → unsigned")
        assert f["evidence_id"] and f["record_id"]
    shell = rules["generic:drift:new-shell-child"]
    assert [(f["host"], f["stage"], f["confidence"]) for f in shell] == [("wks-01", "payload", "medium")]
    assert "cmd.exe /c whoami" in shell[0]["value"]
    dest = rules["generic:drift:new-destination"]
    assert sorted((f["host"], f["value"]) for f in dest) == [("wks-01", "new-c2.example"), ("wks-02", "new-c2.example")]
    assert all(f["stage"] == "c2-contact" and "8 days after this build first ran" in f["title"] for f in dest)
    # nothing about winhttp.dll / dbghelp.dll (Windows' files), d3dcompiler (unchanged), libnew (vendor-signed)
    assert not any(w in f["title"] for f in findings for w in ("winhttp", "dbghelp", "d3dcompiler", "libnew"))


def test_drift_changes_explain_silence(case8: Path) -> None:
    con = Case(case8).connect()
    analysis = drift_analysis(con)
    beta = [c for c in analysis.changes if c["executable"] == "betachat.exe"]
    # Beta's new CDN is a change, not a finding: the build did not drift
    assert [(c["kind"], c["finding"]) for c in beta] == [("destination", False)] * 3


def test_dormancy(case8: Path) -> None:
    con = Case(case8).connect()
    table = dormancy_table(con)
    assert not any(r["finding"] for r in table if r["version"] != "1.0.200.0")
    first = [r for r in table if r["executable"] == "acmephone.exe" and r["version"] == "1.0.100.0"]
    assert {r["destination"] for r in first} == {"api.acme.example"}   # v1's logs start with v1
    assert all("logs begin" in r["why_not"] for r in first)
    acme_rows = [r for r in table if r["version"] == "1.0.200.0"]
    assert sorted((r["host"], r["destination"], r["delay_days"]) for r in acme_rows) == [
        ("wks-01", "new-c2.example", 8.0), ("wks-02", "new-c2.example", 8.0)]
    assert all(r["finding"] and r["hosts_contacting"] == 2 for r in acme_rows)
    beta_rows = [r for r in table if r["version"] == "3.1.0"]
    assert len(beta_rows) == 3 and not any(r["finding"] for r in beta_rows)
    assert all("under 5 days" in r["why_not"] for r in beta_rows)
    findings = dormancy_findings(con)
    assert sorted(f["host"] for f in findings) == ["wks-01", "wks-02"]
    for f in findings:
        assert set(f) == set(FINDINGS_COLUMNS)
        assert (f["stage"], f["confidence"], f["rule_id"]) == ("c2-contact", "low", "generic:dormancy:new-destination")
        assert f["title"].startswith("First contact with a new destination 8 days after the update")
        assert f["value"] == "new-c2.example" and f["view"] == "ecs_dns"
    assert dormancy_findings(con, min_days=9) == []


def test_contact_one_day_after_is_not_dormancy(tmp_path: Path) -> None:
    con = Case(_case(tmp_path, 1)).connect()
    assert dormancy_findings(con) == []
    rows = [r for r in dormancy_table(con) if r["destination"] == "new-c2.example"]
    assert not any(r["finding"] for r in dormancy_table(con))
    assert len(rows) == 2 and all(r["delay_days"] == 1.0 and not r["finding"] for r in rows)
    # the module drift stands on its own; the new destination is still reported, one day after
    dest = [f for f in drift_findings(con) if f["rule_id"] == "generic:drift:new-destination"]
    assert len(dest) == 2 and all("1 day after" in f["title"] for f in dest)


def test_no_baseline_no_finding(tmp_path: Path) -> None:
    ev = Events()
    exe = acme("solo")
    ev.run("solo", T0, exe, "1.0.200.0", "Acme Phone", "Acme Ltd")
    ev.load("solo", T0, exe, ACME_DIR.format(user="solo") + "\\ffmpeg.dll", "ffmpeg v2 trojan", None)
    ev.add("solo", T0 + timedelta(minutes=1), 1, Image=SYS32 + "\\cmd.exe", ParentImage=exe, CommandLine="cmd")
    ev.dns("solo", T0 + timedelta(days=8), exe, "new-c2.example", "192.0.2.66")
    case = tmp_path / "case"
    pipeline.ingest([ev.write(tmp_path / "evidence")], case)
    con = Case(case).connect()
    (build,) = app_builds(con)
    assert build.versions[0].note and "no baseline" in build.versions[0].note
    assert drift_findings(con) == []
    # the host's logs begin with this build: the delay since the update is unknown
    assert dormancy_findings(con) == []
    (row,) = dormancy_table(con)
    assert row["delay_days"] == 8.0 and not row["finding"] and "logs begin" in row["why_not"]


def _add_tri_file(case: Path, rows: list[dict[str, Any]]) -> None:
    """A triage collection's file rows, written as the triage reader would (tri_file Parquet part)."""
    columns = triage_columns("tri_file")
    table = pa.table({name: pa.array([r.get(name) for r in rows], type=typ) for name, typ in columns.items()})
    folder = case / "parquet" / "tri_file"
    folder.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, folder / "test-part.parquet")


def test_signature_padding_from_triage(tmp_path: Path) -> None:
    """d3dcompiler_47.dll keeps its Microsoft signature but a collected copy shows padding inside it."""
    ev = Events()
    for host in ("wks-01", "wks-02"):
        exe, folder = acme(host), ACME_DIR.format(user=host)
        ev.run(host, T0, exe, "1.0.100.0", "Acme Phone", "Acme Ltd")
        ev.load(host, T0, exe, folder + "\\d3dcompiler_47.dll", "d3d v1", "Microsoft Corporation")
    exe, folder = acme("wks-01"), ACME_DIR.format(user="wks-01")
    t2 = T0 + timedelta(days=10)
    ev.run("wks-01", t2, exe, "1.0.200.0", "Acme Phone", "Acme Ltd")
    ev.load("wks-01", t2, exe, folder + "\\d3dcompiler_47.dll", "d3d v2 padded", "Microsoft Corporation")
    case = tmp_path / "case"
    pipeline.ingest([ev.write(tmp_path / "evidence")], case)
    con = Case(case).connect()
    assert drift_findings(con) == []  # without the collection: a Microsoft-signed update of the file
    con.close()
    common = {"evidence_id": "tri0000000000000", "host": "wks-01", "ts": t2, "artifact": "file", "file.type": "pe"}
    _add_tri_file(case, [
        {**common, "seq": 1, "file.path": folder + "\\d3dcompiler_47.dll", "file.name": "d3dcompiler_47.dll",
         "file.hash.sha256": _h("d3d v2 padded").lower(), "code_signature.status": "valid",
         "code_signature.subject_name": "Microsoft Corporation", "pe.cert_padding_bytes": 4096,
         "code_signature.problems": "CVE-2013-3900"},
        {**common, "seq": 2, "file.path": "C:\\Windows\\System32\\version.dll", "file.name": "version.dll",
         "file.hash.sha256": _h("version").lower(), "code_signature.status": "catalog-signed?"},
    ])
    con = Case(case).connect()
    findings = drift_findings(con)
    assert [(f["host"], f["rule_id"], f["confidence"], f["stage"]) for f in findings] == [
        ("wks-01", "generic:drift:signature-padding", "medium", "armed-dormant")]
    assert "4096 bytes hidden inside" in findings[0]["title"] and "CVE-2013-3900" in findings[0]["title"]
