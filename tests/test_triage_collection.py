"""Triage collections end to end: a simulated KAPE office with no event logs gets the verdicts its
ground truth says, and the real collections under the shared data ingest as the hosts they are."""

from __future__ import annotations

import json
import re
import shutil
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import shared

from turncoat import pipeline
from turncoat.simulate import simulate
from turncoat.store.case import Case


@pytest.fixture(scope="module")
def triage_case(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict, dict]:
    out = tmp_path_factory.mktemp("triage-sim")
    truth = simulate(out, scenario="triage")
    # SRUM is not simulated (no ESE writer): a real database joins one machine's collection, where
    # it must land under that machine and change no verdict (SRUM only corroborates)
    srum = shared("artifacts", "dfir-artifact-museum", "win10_APTSimulatorVM", "srum", "SRUDB.dat")
    target = out / "triage" / "TRI-03" / "C" / "Windows" / "System32" / "sru" / "SRUDB.dat"
    target.parent.mkdir(parents=True)
    shutil.copyfile(srum, target)
    case = out / "case"
    result = pipeline.ingest([out / "triage"], case)
    assert result.new_items > 0
    pipeline.detect(case, None)
    report = pipeline.assess(case, None)
    return case, truth, report


def _host(report: dict, name: str) -> dict:
    return next(h for h in report["hosts"] if h["host"] == name)


def test_simulated_collections_get_their_verdicts(triage_case) -> None:
    _, truth, report = triage_case
    got = {h["host"]: h["verdict"] for h in report["hosts"]}
    for host in truth["hosts"]:
        assert got[host["host"]] == host["verdict"], host
    # the PBX holds installers, it does not run the app: it is not called vulnerable for them
    assert got["pbx-01"] == "no-evidence"
    # names from the hives: the computer name and the SOFTWARE hive's MachineGuid
    aliases = _host(report, "tri-02")["aliases"]
    assert "TRI-02" in aliases
    assert any(re.fullmatch(r"[0-9a-f]{8}(-[0-9a-f]{4}){3}-[0-9a-f]{12}", a) for a in aliases), aliases


def test_srum_rows_belong_to_the_collection_that_held_them(triage_case) -> None:
    case, _, _ = triage_case
    con = Case(case).connect(read_only=True)
    try:
        hosts = con.execute('SELECT host, count(*) FROM tri_srum_net GROUP BY host').fetchall()
        compressed = con.execute('SELECT count(*) FROM tri_execution WHERE "prefetch.version" = 30').fetchall()
    finally:
        con.close()
    assert hosts == [("tri-03", 96)]  # the museum database's 96 network-usage rows
    assert compressed[0][0] > 0


def test_armed_host_is_dated_from_prefetch(triage_case) -> None:
    _, truth, report = triage_case
    expected = next(h for h in truth["hosts"] if h["verdict"] == "armed-dormant")
    host = _host(report, expected["host"])
    first = datetime.fromisoformat(host["first_execution"].replace("Z", "+00:00"))
    assert first == datetime.fromisoformat(expected["first_execution"])
    eta = datetime.fromisoformat(host["activation_eta"].replace("Z", "+00:00"))
    assert eta - first == timedelta(days=7)
    rules = {e["rule_id"] for e in host["evidence"]}
    assert "rule:affected-build-executed" in rules  # Prefetch run + version of the file on disk
    assert "rule:delay-file-manifest-written" in rules


def test_signature_padding_flags_only_the_trojanized_dll(triage_case) -> None:
    case, truth, report = triage_case
    con = Case(case).connect(read_only=True)
    try:
        padded = dict(con.execute(
            """SELECT host, max("pe.cert_padding_bytes") FROM tri_file
               WHERE lower("file.name") = 'd3dcompiler_47.dll' GROUP BY host""").fetchall())
    finally:
        con.close()
    for host in (h for h in truth["hosts"] if h["home"].startswith("Users\\")):  # the Windows hosts
        trojanized = host["version"] in ("18.12.407", "18.12.416")
        assert (padded[host["host"]] > 0) == trojanized, host
        evidence = {e["rule_id"] for e in _host(report, host["host"])["evidence"]}
        assert ("rule:d3dcompiler-signature-padding" in evidence) == trojanized
        # the pack's YARA rule sees the marker and the payload behind the signature
        assert ("yara:TC_3CX_D3DCompiler_Payload_After_Signature" in evidence) == trojanized


def test_stolen_host_remediation_names_its_browser_profile(triage_case) -> None:
    _, truth, report = triage_case
    stolen = next(h for h in truth["hosts"] if h["verdict"] == "data-stolen")
    host = _host(report, stolen["host"])
    profiles = host["browser_profiles"]
    assert profiles and profiles[0]["history_copies"] == 1
    assert {"cookies", "history", "history-copy", "login-data"} <= set(profiles[0]["holds"])
    assert any(stolen["user"] in step and "passwords" in step for step in host["remediation"]["en"])
    # privacy: the report names domains' counts, never the URLs visited
    assert "intranet.example.org/wiki" not in json.dumps(report)


def test_mac_is_read_from_its_folder_copy(triage_case) -> None:
    case, _, report = triage_case
    manifest = json.loads((case / "manifest.json").read_text(encoding="utf-8"))
    assert {"host": "mac-01", "layout": "macos"}.items() <= next(
        c for c in manifest["collections"] if c["host"] == "mac-01").items()
    host = _host(report, "mac-01")
    rules = {e["rule_id"] for e in host["evidence"]}
    assert "rule:macos-affected-version-installed" in rules
    assert "rule:msi-affected-version-installed" not in rules  # that one is about Windows installers
    assert any(r.startswith("ioc:filepath:") and r.endswith("updateagent") for r in rules)


def test_pbx_folder_and_fleet_consensus(triage_case) -> None:
    _, truth, report = triage_case
    builds = {b["version"]: b["build"] for b in report["pbx_update_folders"]}
    assert builds == {b["version"]: b["build"] for b in truth["pbx"]}
    anomalies = {a["file"]: a for a in report["fleet_anomalies"]}
    d3d = anomalies["d3dcompiler_47.dll"]
    trojanized = sorted(h["host"] for h in truth["hosts"] if h["version"] == "18.12.416" and h["host"] != "mac-01")
    assert [v["hosts"] for v in d3d["variants"]][0] == trojanized
    assert "3cxdesktopapp.exe" not in anomalies  # different versions are not an anomaly


def test_ingesting_a_collection_twice_adds_nothing(triage_case, tmp_path: Path) -> None:
    case, _, _ = triage_case
    before = json.loads((case / "manifest.json").read_text(encoding="utf-8"))
    again = pipeline.ingest([case.parent / "triage"], case)
    assert again.new_items == 0
    after = json.loads((case / "manifest.json").read_text(encoding="utf-8"))
    assert len(after["items"]) == len(before["items"])


# --- real collections --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def museum_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    museum = shared("artifacts", "dfir-artifact-museum")
    case = tmp_path_factory.mktemp("museum")
    pipeline.ingest([museum / "win10_APTSimulatorVM", museum / "server2022_APTSimulatorVM"], case)
    return case


def test_two_apt_simulator_collections_are_two_hosts_with_their_attacks(museum_case: Path) -> None:
    rows = pipeline.triage_timeline(museum_case, [])
    hosts = {r["host"] for r in rows}
    assert hosts == {"win10_aptsimulatorvm", "server2022_aptsimulatorvm"}
    tasks = {(r["host"], r["subject"]) for r in rows if r["action"] == "task"}
    assert ("win10_aptsimulatorvm", "\\GameOver") in tasks
    assert {("server2022_aptsimulatorvm", "\\GameOver"), ("server2022_aptsimulatorvm", "\\falshupdate22")} <= tasks
    runs = [r for r in rows if r["action"] == "run" and r["subject"] == "P.EXE"]
    assert len(runs) == 7 and max(r["ts"] for r in runs).isoformat().startswith("2022-03-10T20:41:24")
    mim = [r for r in rows if r["host"] == "server2022_aptsimulatorvm" and r["artifact"] == "amcache"
           and "c:\\tmp\\mim.exe" in (r["subject"] or "").lower()]
    assert mim
    detections = {r["subject"] for r in rows if r["artifact"] == "defender-history"}
    assert "HackTool:Win32/DumpLsass.E" in detections


def test_timeline_jsonl_is_timesketch_ready(museum_case: Path, tmp_path: Path) -> None:
    rows = pipeline.triage_timeline(museum_case, ["win10_aptsimulatorvm"])
    target = tmp_path / "timeline.jsonl"
    pipeline.write_triage_timeline(rows, target)
    lines = [json.loads(line) for line in target.read_text(encoding="utf-8").splitlines()]
    assert lines and all({"message", "datetime", "timestamp_desc"} <= set(doc) for doc in lines)
    assert all(doc["host"] == "win10_aptsimulatorvm" for doc in lines)


def test_velociraptor_collection_zip(tmp_path: Path) -> None:
    archive = shared("artifacts", "velociraptor", "collection")
    result = pipeline.ingest([archive], tmp_path / "case")
    collections = result.manifest["collections"]
    assert [c["host"] for c in collections] == ["win-e5k9rc5gu23"]
    paths = {i.get("machine_path") for i in result.manifest["items"]}
    assert "C:\\Users\\Administrator\\ntuser.dat" in paths
    assert "C:\\$Extend\\$UsnJrnl:$J" in paths


def test_every_artifact_sample_is_read_or_reported(tmp_path: Path) -> None:
    root = shared("artifacts")
    result = pipeline.ingest([root], tmp_path / "case")
    items = result.manifest["items"]
    by_reader: dict[str, int] = {}
    for item in items:
        by_reader[item.get("reader")] = by_reader.get(item.get("reader"), 0) + 1
    assert by_reader["prefetch"] == 280  # every .pf but the one that is not Prefetch at all
    assert by_reader["srum"] == 3 and by_reader["registry"] >= 10
    unread = [i["path"] for i in items if i.get("status") == "unknown-format"]
    # what is left unread is licences, listings, $MFT and an app bundle's plists — never an artifact
    assert all(p.endswith(("LICENSE", "LICENSE.md", ".txt", ".tsv", ".md", "$MFT", "Info.plist", "PkgInfo",
                           "MainMenu.nib", "CodeResources")) for p in unread), unread
    problems = [i for i in items if i.get("issue_count")]
    assert all(i["issues"][0]["message"] for i in problems)


def test_html_report_shows_profiles_pbx_and_fleet(triage_case) -> None:
    from turncoat.report.html import render_html

    _, _, report = triage_case
    page = render_html(report, lang="fr")
    assert "Profils de navigateur" in page and "Dossier de mises à jour clientes du PBX" in page
    assert "piégée" in page and "Même programme, contenu différent" in page
    assert "intranet.example.org/wiki" not in page
