"""Whole hunts: simulated offices against their ground truth, hand-written per-verdict fixtures, the
CLI's exit codes, determinism and incremental ingest."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from datetime import datetime
from pathlib import Path

import duckdb
import orjson
import pytest
from conftest import FIXTURES

from turncoat import pipeline
from turncoat.store.schema import VERDICTS


def _hunt(evidence: list[Path], case: Path, zone: str | None = None) -> dict:
    pipeline.ingest(evidence, case, source_tz={"*": zone} if zone else None)
    pipeline.detect(case, None)
    return pipeline.assess(case, None)


def _close(a: str | None, b: str | None, seconds: float = 3600) -> bool:
    if a is None or b is None:
        return a is None and b is None
    ta = datetime.fromisoformat(a.replace("Z", "+00:00"))
    tb = datetime.fromisoformat(b.replace("Z", "+00:00"))
    return abs((ta - tb).total_seconds()) <= seconds


_RUNS: dict[str, tuple[dict, dict, Path]] = {}


def _scenario(name: str, factory: pytest.TempPathFactory) -> tuple[dict, dict, Path]:
    """Simulate and hunt a scenario once per test session."""
    if name not in _RUNS:
        out = factory.mktemp(f"sim-{name}")
        truth = pipeline.simulate(out / "sim", name, 1, 7)
        zone = truth.get("network", {}).get("time_zone")  # the office's DNS server logs Paris time
        _RUNS[name] = (truth, _hunt([out / "sim" / "evidence"], out / "case", zone), out / "case")
    return _RUNS[name]


@pytest.fixture(params=["office", "clean", "blind", "aftermath", "netonly"])
def scenario(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, Path]:
    return _scenario(request.param, tmp_path_factory)


@pytest.fixture
def office(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, Path]:
    return _scenario("office", tmp_path_factory)


def test_every_simulated_host_matches_its_ground_truth(scenario: tuple[dict, dict, Path]) -> None:
    truth, report, _ = scenario
    got = {h["host"]: h for h in report["hosts"]}
    assert set(got) == {h["host"] for h in truth["hosts"]}
    for expected in truth["hosts"]:
        host = got[expected["host"]]
        assert host["verdict"] == expected["verdict"], (expected["host"], host["reason"])
        assert _close(host["activation_eta"], expected["activation_eta"]), expected["host"]
        assert _close(host["first_execution"], expected["first_execution"]), expected["host"]
        assert _close(host["first_c2"], expected["first_c2"]), expected["host"]
        assert host["reason"] and host["remediation"]["en"] and host["remediation"]["fr"]
        if host["verdict"] not in ("not-affected", "no-evidence"):
            assert host["evidence"], expected["host"]
            for row in host["evidence"]:
                assert row["evidence_path"] and (row["record_id"] is not None or row["line"] is not None)


def test_scenarios_exit_codes(scenario: tuple[dict, dict, Path]) -> None:
    truth, report, _ = scenario
    expected = {"office": 4, "clean": 0, "blind": 3, "aftermath": 4, "netonly": 4}[truth["scenario"]]
    assert report["summary"]["exit_code"] == expected


def test_office_report_evidence_is_specific(office: tuple[dict, dict, Path]) -> None:
    truth, report, _ = office
    hosts = {h["host"]: h for h in report["hosts"]}
    rules = {e["rule_id"] for e in hosts["wks-06"]["evidence"]}
    assert "ioc:sha256:7986bbaee8940da11ce089383521ab420c443ab7b15ed42aed91fd31ce833896" in rules  # trojanized ffmpeg.dll loaded
    assert "rule:delay-file-manifest-written" in rules
    c2 = {e["rule_id"]: e for e in hosts["wks-07"]["evidence"]}
    assert "ioc:domain:akamaitechcloudservices.com" in c2 and c2["ioc:domain:akamaitechcloudservices.com"]["confidence"] == "high"
    assert hosts["wks-07"]["confidence"] == "high"
    # clean 3CX clients load ffmpeg.dll and d3dcompiler_47.dll every day: never evidence by name
    for name in ("wks-01", "wks-02"):
        assert hosts[name]["evidence"] == []
        assert hosts[name]["coverage"]["covers_window"]
    assert not hosts["wks-03"]["coverage"]["covers_window"]
    assert any(g["kind"] == "late-start" for g in hosts["wks-03"]["coverage"]["gaps"])


def test_report_json_is_deterministic(tmp_path: Path) -> None:
    evidence = FIXTURES / "verdicts"
    a = _hunt([evidence], tmp_path / "a")
    b = _hunt([evidence], tmp_path / "b")
    assert (tmp_path / "a" / "report.json").read_bytes() == (tmp_path / "b" / "report.json").read_bytes()
    assert a == b


@pytest.mark.parametrize("verdict", VERDICTS)
def test_hand_written_fixture_per_verdict(verdict: str, tmp_path: Path) -> None:
    folder = FIXTURES / "verdicts" / verdict
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    report = _hunt([folder], tmp_path / "case")
    hosts = {h["host"]: h for h in report["hosts"]}
    host = hosts[expected["host"]]
    assert host["verdict"] == expected["verdict"], host["reason"]
    for key in ("first_execution", "activation_eta", "first_c2"):
        assert _close(host[key], expected.get(key)), key


def test_incremental_ingest_adds_without_duplicating(tmp_path: Path) -> None:
    case = tmp_path / "case"
    first = _hunt([FIXTURES / "verdicts" / "c2-contact"], case)
    second = _hunt([FIXTURES / "verdicts" / "c2-contact", FIXTURES / "verdicts" / "payload"], case)
    assert first["case"]["records"] < second["case"]["records"]
    again = _hunt([FIXTURES / "verdicts"], case)
    manifest = orjson.loads((case / "manifest.json").read_bytes())
    shas = [i["sha256"] for i in manifest["items"]]
    assert len(shas) == len(set(shas))
    assert again["case"]["records"] == sum(i["records"] for i in manifest["items"])


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="160")
    return subprocess.run([sys.executable, "-m", "turncoat.cli", *args], cwd=cwd, capture_output=True, text=True,
                          env=env, timeout=300)


def test_cli_exit_codes_and_outputs(tmp_path: Path) -> None:
    fixtures = FIXTURES / "verdicts"
    clean = _cli("hunt", str(fixtures / "not-affected"), "-o", str(tmp_path / "clean"), cwd=tmp_path)
    assert clean.returncode == 0, clean.stderr
    blind = _cli("hunt", str(fixtures / "no-evidence"), "-o", str(tmp_path / "blind"), cwd=tmp_path)
    assert blind.returncode == 3, blind.stderr
    hit = _cli("hunt", str(fixtures), "-o", str(tmp_path / "all"), "--lang", "fr", cwd=tmp_path)
    assert hit.returncode == 4, hit.stderr
    for name in ("report.html", "hosts.csv"):
        assert (tmp_path / "all" / "reports" / name).is_file()
    assert "report:" in hit.stdout
    # steps one by one on the same case give the same answer
    assert _cli("detect", str(tmp_path / "all"), cwd=tmp_path).returncode == 0
    assert _cli("assess", str(tmp_path / "all"), cwd=tmp_path).returncode == 4
    redacted = _cli("report", str(tmp_path / "all"), "--redact", "--format", "json,csv", cwd=tmp_path)
    assert redacted.returncode == 4
    text = (tmp_path / "all" / "reports" / "redacted" / "report.json").read_text(encoding="utf-8")
    assert "stolen-pc" not in text and '"verdict": "data-stolen"' in text
    query = _cli("query", str(tmp_path / "all"), "SELECT count(*) AS n FROM findings", "--format", "json", cwd=tmp_path)
    assert query.returncode == 0 and json.loads(query.stdout)[0]["n"] > 0


def test_cli_usage_errors(tmp_path: Path) -> None:
    missing = _cli("hunt", str(tmp_path / "nothing-here"), "-o", str(tmp_path / "c"), cwd=tmp_path)
    assert missing.returncode == 2 and "nothing-here" in missing.stderr
    (tmp_path / "empty").mkdir()
    empty = _cli("ingest", str(tmp_path / "empty"), "-o", str(tmp_path / "c2"), cwd=tmp_path)
    assert empty.returncode == 2
    not_a_case = _cli("assess", str(tmp_path / "empty"), cwd=tmp_path)
    assert not_a_case.returncode == 2 and "not a turncoat case" in not_a_case.stderr
    bad_option = _cli("hunt", "--no-such-option", cwd=tmp_path)
    assert bad_option.returncode == 2
    bad_pack = _cli("detect", str(tmp_path / "empty"), "--pack", "nope", cwd=tmp_path)
    assert bad_pack.returncode == 2


def test_intel_commands(tmp_path: Path) -> None:
    listed = _cli("intel", "list", cwd=tmp_path)
    assert listed.returncode == 0 and "3cx-2023" in listed.stdout
    shown = _cli("intel", "show", "3cx-2023", cwd=tmp_path)
    assert shown.returncode == 0 and "18.12.416" in shown.stdout and "2022-11-12" in shown.stdout


def test_demo_runs_and_points_at_the_report(tmp_path: Path) -> None:
    result = _cli("demo", "-o", str(tmp_path / "demo"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "exits with 4" in result.stderr
    html = tmp_path / "demo" / "case" / "reports" / "report.html"
    assert html.is_file() and str(html) in result.stdout.replace("\n", "")
    again = _cli("demo", "-o", str(tmp_path / "demo"), "--lang", "fr", cwd=tmp_path)  # a second run replaces the first
    assert again.returncode == 0, again.stderr
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.docx").write_text("not a demo")
    refused = _cli("demo", "-o", str(tmp_path / "mine"), cwd=tmp_path)
    assert refused.returncode == 2 and (tmp_path / "mine" / "thesis.docx").exists()
    shutil.rmtree(tmp_path / "demo")


def test_internal_error_exits_1_and_says_it_is_a_bug(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from turncoat import cli

    def broken(*args, **kwargs):
        raise RuntimeError("simulated bug")

    monkeypatch.setattr(pipeline, "detect", broken)
    monkeypatch.setattr(sys, "argv", ["turncoat", "detect", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    assert "internal error" in capsys.readouterr().err


def test_office_exercises_every_kind_of_evidence(office: tuple[dict, dict, Path]) -> None:
    from turncoat.store.case import Case

    _, _, case = office
    con = Case(case).connect(read_only=True)
    try:
        rules = {r[0] for r in con.execute("SELECT DISTINCT rule_id FROM findings").fetchall()}
    finally:
        con.close()
    for prefix in ("ioc:domain:", "ioc:sha256:", "ioc:filename:", "ioc:threat_name:"):
        assert any(r.startswith(prefix) for r in rules), prefix
    for rule in ("msi-affected-version-installed", "affected-build-executed", "delay-file-manifest-written",
                 "dead-drop-resolver-queried-by-app", "dead-drop-connection-by-app", "shell-child-of-app",
                 "browser-history-copied-by-app"):
        assert f"rule:{rule}" in rules, rule


def test_french_report_explains_in_french(office: tuple[dict, dict, Path], tmp_path: Path) -> None:
    from turncoat.report.html import render_html

    _, report, _ = office
    hosts = {h["host"]: h for h in report["hosts"]}
    assert hosts["wks-03"]["reason_fr"].startswith("3cx-2023 : impossible de conclure")
    assert "commencent" in hosts["wks-03"]["reason_fr"]
    assert any(line.startswith("À collecter : des journaux") for line in hosts["wks-04"]["remediation"]["fr"])
    assert all("cannot clear" not in line for line in hosts["wks-04"]["remediation"]["fr"])
    page = render_html(report, lang="fr")
    assert "impossible de conclure" in page and "cannot clear" not in page


def test_network_only_hosts_followed_across_their_address_change(tmp_path_factory: pytest.TempPathFactory) -> None:
    """netonly: the host whose address changes mid-way is found from both addresses, each row on the
    host that had the address at the time, and the host that later inherits the old address is not
    blamed for the traffic before it got it."""
    truth, report, case = _scenario("netonly", tmp_path_factory)
    got = {h["host"]: h for h in report["hosts"]}
    assert not [h for h in got if h.startswith("ip:")]  # every internal address is attributed
    movers = [h for h in truth["hosts"] if len({a["ip"] for a in h["network"]["addresses"]}) > 1]
    assert movers
    for expected in movers:
        host = got[expected["host"]]
        assert {a["ip"] for a in host["addresses"]} >= {a["ip"] for a in expected["network"]["addresses"]}
        if expected["verdict"] == "c2-contact":
            assert host["first_c2"] < host["last_c2"]
            con = duckdb.connect(str(case / "case.duckdb"), read_only=True)
            try:
                contacted_from = {ip for (ip,) in con.execute(
                    """SELECT DISTINCT n."source.ip" FROM findings f
                       JOIN (SELECT evidence_id, line, "source.ip" FROM net_flow UNION ALL
                             SELECT evidence_id, line, "source.ip" FROM net_dns UNION ALL
                             SELECT evidence_id, line, "source.ip" FROM net_tls) n USING (evidence_id, line)
                       WHERE f.host = ?""", [expected["host"]]).fetchall()}
            finally:
                con.close()
            # C2 contact from the old and the new address, both on this host
            assert {a["ip"] for a in expected["network"]["addresses"]} <= contacted_from
    for expected in truth["hosts"]:
        host = got[expected["host"]]
        assert all(s["kind"] == "network" for s in host["coverage"]["sources"])
        assert host["verdict"] in ("c2-contact", "no-evidence")


def test_office_evidence_merges_endpoint_and_network_rows(office: tuple[dict, dict, Path]) -> None:
    """A host seen by both its own logs and the office's network has both kinds of rows, in one
    time-ordered evidence list (what the HTML timeline draws), and its first C2 is the earliest of both."""
    _, report, _ = office
    merged = [h for h in report["hosts"]
              if {e["view"][:4] for e in h["evidence"]} >= {"ecs_", "net_"}]
    assert merged
    for host in merged:
        times = [e["ts"] for e in host["evidence"] if e["ts"]]
        assert times == sorted(times)
        # the host's first C2 is its headline campaign's (3cx-2023 here); a generic campaign has its own
        contact = [e["ts"] for e in host["evidence"] if e["stage"] == "c2-contact" and e["ts"]
                   and e["campaign"] == "3cx-2023"]
        assert host["first_c2"] == min(contact)
