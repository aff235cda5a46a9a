"""The pipeline on real third-party evidence nobody on the team wrote (../shared/data)."""

from __future__ import annotations

import csv
from pathlib import Path

import orjson
from conftest import shared

from turncoat.store.case import Case


def _manifest(case: Path) -> dict:
    return orjson.loads((case / "manifest.json").read_bytes())


def _by_path(manifest: dict) -> dict[str, dict]:
    out = {}
    for item in manifest["items"]:
        out[item["path"]] = item
        for dup in item.get("duplicates", []):
            out[dup["path"]] = item
    return out


def test_evtx_record_counts_match_the_corpus_manifest(evtx_case: Path) -> None:
    root = shared("evtx")
    items = _by_path(_manifest(evtx_case))
    rows = list(csv.DictReader((root / "MANIFEST.csv").open(encoding="utf-8")))
    assert len(rows) == 471
    for row in rows:
        item = items[str(root / row["path"])]
        assert item["reader"] == "evtx", row["path"]
        assert item["records"] == int(row["records_parsed"]), row["path"]
        assert item["issue_count"] == int(row["parse_errors"]), row["path"]


def test_corrupt_evtx_errors_are_listed_with_positions(evtx_case: Path) -> None:
    root = shared("evtx", "odd")
    items = _by_path(_manifest(evtx_case))
    bad_chunk = items[str(root / "omerbenamram-evtx/samples/sample_with_a_bad_chunk_magic.evtx")]
    assert bad_chunk["records"] == 270
    offsets = sorted(i["offset"] for i in bad_chunk["issues"])
    assert offsets == [4096 + 6 * 65536, 4096 + 10 * 65536]  # chunks 6 and 10 are zeroed
    for path in sorted(root.rglob("*.evtx")):
        item = items[str(path)]
        assert item["records"] > 0, path
        for issue in item["issues"]:
            assert issue["message"]
            assert any(k in issue for k in ("offset", "record_id", "after_record")), (path, issue)


def test_store_counts_agree_with_manifest_and_duplicates_collapse(evtx_case: Path) -> None:
    con = Case(evtx_case).connect(read_only=True)
    try:
        stored = dict(con.execute("SELECT evidence_id, count(*) FROM win_events_all GROUP BY 1").fetchall())
        unique = con.execute("SELECT count(*) FROM win_events").fetchall()[0][0]
    finally:
        con.close()
    manifest = _manifest(evtx_case)
    for item in manifest["items"]:
        assert stored.get(item["evidence_id"], 0) == item["records"]
    report = orjson.loads((evtx_case / "report.json").read_bytes())
    assert report["case"]["records"] == sum(stored.values())
    # the SigmaHQ regression data ships each event as .evtx and as .json: one row each
    assert report["case"]["duplicates_collapsed"] > 200
    assert unique == report["case"]["records"] - report["case"]["duplicates_collapsed"]


def test_no_shared_evtx_host_gets_a_3cx_stage(evtx_case: Path) -> None:
    report = orjson.loads((evtx_case / "report.json").read_bytes())
    assert len(report["hosts"]) > 40
    for host in report["hosts"]:
        assert host["verdict"] in ("no-evidence", "not-affected"), host["host"]
        assert host["reason"]
        if host["verdict"] == "no-evidence":
            assert host["coverage"]["missing"]
    assert report["summary"]["exit_code"] == 3


def test_no_shared_ndjson_host_gets_a_3cx_stage(ndjson_case: Path) -> None:
    report = orjson.loads((ndjson_case / "report.json").read_bytes())
    hosts = {h["host"] for h in report["hosts"]}
    assert {"workstation5", "vagrant"} <= hosts
    for host in report["hosts"]:
        assert host["verdict"] in ("no-evidence", "not-affected"), host["host"]
        assert host["reason"]


def test_ndjson_readers_on_real_exports(ndjson_case: Path) -> None:
    root = shared("ndjson")
    items = _by_path(_manifest(ndjson_case))
    elastic = items[str(root / "elastic-integrations/packages/windows/data_stream/sysmon_operational/_dev/test/pipeline/test-image-loaded-failed-signature.json")]
    assert elastic["records"] == 1 and elastic["reader"] == "winevent-json"
    zipped = [p for p in items if p.endswith(".zip!" + Path(p.split("!")[-1]).name) and "!" in p]
    assert zipped, "zip members are read in place"
    mav = items[str(root / "otrf-security-datasets/datasets/atomic/windows/defense_evasion/host/psh_mavinject_dll_notepad_2020-10-2121410529.json")]
    assert mav["records"] == 509 and mav["reader"] == "winevent-jsonl"
    con = Case(ndjson_case).connect(read_only=True)
    try:
        (loads,) = con.execute(
            "SELECT count(*) FROM ecs_image_load WHERE \"dll.hash.sha256\" = "
            "'4808f1101f4e42387d8ddb7a355668bae3bf6f781c42d3bcd82e23446b1deb3e'").fetchall()[0]
        # the unzipped copy and the zip member are the same file: read once
        (mav_rows,) = con.execute(
            "SELECT count(*) FROM win_events WHERE host = 'workstation5' AND Channel = 'Security' AND EventID = 1102"
        ).fetchall()[0]
    finally:
        con.close()
    assert loads == 1
    assert mav_rows >= 1


NETWORK_READERS = {"zeek-tsv", "zeek-json", "squid-native", "squid-common", "windows-firewall"}


def test_all_shared_network_evidence_ingests_with_counts_or_a_clear_refusal(tmp_path: Path) -> None:
    """Every Zeek, DNS and proxy file and both pfirewall.log samples: read with records, read
    as a log that holds none (a header-only file, a log kind not stored), or refused by content with
    a message — and the prose `conn.log` is refused, never half-read."""
    from turncoat import pipeline

    inputs = [shared("zeek"), shared("dns"), shared("proxy"),
              shared("artifacts", "plaso", "firewall", "pfirewall.log"),
              shared("artifacts", "betahydri-parsefirewalllog", "firewall", "pfirewall.log")]
    case = tmp_path / "case"
    pipeline.ingest(inputs, case)
    manifest = _manifest(case)
    items = _by_path(manifest)
    statuses: dict[str, int] = {}
    for item in manifest["items"]:
        statuses[item["status"]] = statuses.get(item["status"], 0) + 1
        assert item["status"] in ("read", "archive", "unknown-format", "empty", "unreadable"), item
        if item["status"] != "read" and item["status"] != "archive":
            assert item["issues"] and item["issues"][0]["message"], item["path"]
    prose = items[str(shared("zeek", "rita", "test_data", "text_file", "conn.log"))]
    assert prose["status"] == "unknown-format" and prose["records"] == 0
    for name in ("access1.log", "access2.log", "access3.log", "access4.log"):
        squid = next(i for p, i in items.items() if p.endswith(name))
        assert squid["reader"] == "squid-native" and squid["records"] == 100
    firewall = [i for p, i in items.items() if p.endswith("pfirewall.log")]
    assert sorted(i["records"] for i in firewall) == [15, 16809]
    rita_http = items[str(shared("zeek", "rita", "test_data", "proxy", "http.log"))]
    assert rita_http["reader"] == "zeek-tsv" and rita_http["records"] > 0
    read = [i for i in manifest["items"] if i["status"] == "read"]
    assert sum(i["records"] for i in read if i["reader"] in NETWORK_READERS) > 50_000
