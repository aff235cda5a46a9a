"""What may and may not clear a host, and evidence that must never be lost. A false `not-affected`
is the worst answer turncoat can give, so each way to get one wrongly has a test here."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from pathlib import Path

import orjson

from turncoat import pipeline
from turncoat.evidence.sniff import JSON_DOCUMENT, sniff_bytes
from turncoat.evidence.winevent import from_any_json
from turncoat.store.writer import _parse_time

SYSMON = "Microsoft-Windows-Sysmon/Operational"
START = datetime(2022, 11, 1, 12, tzinfo=timezone.utc)
END = datetime(2023, 4, 10, tzinfo=timezone.utc)


def _event(host: str, channel: str, event_id: int, record_id: int | None, when: datetime, **data: str) -> dict:
    system = {"Provider": {"#attributes": {"Name": "P"}}, "EventID": event_id, "Computer": host, "Channel": channel,
              "TimeCreated": {"#attributes": {"SystemTime": when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")}}}
    if record_id is not None:
        system["EventRecordID"] = record_id
    return {"Event": {"System": system, "EventData": data}}


def _daily(host: str, channel: str, event_id: int, first_id: int, start: datetime, end: datetime, **data: str):
    day, record_id, out = start, first_id, []
    while day < end:
        out.append(_event(host, channel, event_id, record_id, day, **data))
        day += timedelta(days=1)
        record_id += 1
    return out


def _sysmon_day(host: str, record_id: int, when: datetime) -> dict:
    return _event(host, SYSMON, 1, record_id, when, Image="C:\\Windows\\System32\\svchost.exe",
                  FileVersion="10.0", Hashes="SHA256=" + "0" * 64)


def _write(path: Path, events: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in events))
    return path


def _hunt(case: Path, *evidence: Path) -> dict:
    pipeline.ingest(list(evidence), case)
    pipeline.detect(case, None)
    return pipeline.assess(case, None)


def _covered(host: str, first_id: int = 1) -> list[dict]:
    day, record_id, out = START, first_id, []
    while day < END:
        out.append(_sysmon_day(host, record_id, day))
        day += timedelta(days=1)
        record_id += 1
    return out


def test_a_fully_covered_clean_host_is_cleared(tmp_path: Path) -> None:
    report = _hunt(tmp_path / "case", _write(tmp_path / "a.ndjson", _covered("wks-01")))
    assert report["hosts"][0]["verdict"] == "not-affected" and report["summary"]["exit_code"] == 0


def test_assess_after_adding_evidence_never_reuses_old_findings(tmp_path: Path) -> None:
    case = tmp_path / "case"
    assert _hunt(case, _write(tmp_path / "a.ndjson", _covered("wks-01")))["summary"]["exit_code"] == 0
    c2 = _event("wks-01", SYSMON, 22, 10_000, datetime(2023, 3, 20, tzinfo=timezone.utc),
                Image="C:\\Users\\u\\AppData\\Local\\Programs\\3CXDesktopApp\\app\\3CXDesktopApp.exe",
                QueryName="msstorageazure.com")
    pipeline.ingest([_write(tmp_path / "b.ndjson", [c2])], case)
    report = pipeline.assess(case, None)  # no explicit detect: assess must not use stale findings
    assert report["hosts"][0]["verdict"] == "c2-contact" and report["summary"]["exit_code"] == 4


def test_log_cleared_between_two_exports_is_a_gap(tmp_path: Path) -> None:
    first = [e for e in _covered("wks-01") if e["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"] < "2023-01-01"]
    second = _covered("wks-01")[106:]  # from 2023-02-15, ids restarted at 1 after a clear
    for index, event in enumerate(second, start=1):
        event["Event"]["System"]["EventRecordID"] = index
    report = _hunt(tmp_path / "case", _write(tmp_path / "a.ndjson", first), _write(tmp_path / "b.ndjson", second))
    host = report["hosts"][0]
    assert host["verdict"] == "no-evidence"
    assert any("restart" in g["detail"] for g in host["coverage"]["gaps"])


def test_process_auditing_switched_off_mid_window_is_a_gap(tmp_path: Path) -> None:
    logons = _daily("wks-02", "Security", 4624, 1, START, END, TargetUserName="u", LogonType="2")
    audit_on = [e for e in _daily("wks-02", "Security", 4688, 100_000, START, END, NewProcessName="C:\\x.exe")
                if not ("2023-01-05" <= e["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"] < "2023-02-01")]
    for index, event in enumerate(sorted(logons + audit_on, key=lambda e: e["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"]), 1):
        event["Event"]["System"]["EventRecordID"] = index  # one contiguous Security log
    report = _hunt(tmp_path / "case", _write(tmp_path / "sec.ndjson", logons + audit_on))
    host = report["hosts"][0]
    assert host["verdict"] == "no-evidence"
    assert any(g["kind"] == "process-silence" for g in host["coverage"]["gaps"])


def test_app_seen_only_in_4688_without_a_known_clean_build_cannot_be_cleared(tmp_path: Path) -> None:
    security = _daily("wks-07", "Security", 4688, 1, START, END, NewProcessName="C:\\Windows\\explorer.exe")
    security.append(_event("wks-07", "Security", 4688, 999_999, datetime(2023, 3, 20, tzinfo=timezone.utc),
                           NewProcessName="C:\\Users\\u\\AppData\\Local\\Programs\\3CXDesktopApp\\app\\3CXDesktopApp.exe"))
    security.sort(key=lambda e: e["Event"]["System"]["TimeCreated"]["#attributes"]["SystemTime"])
    for index, event in enumerate(security, 1):
        event["Event"]["System"]["EventRecordID"] = index
    report = _hunt(tmp_path / "blind", _write(tmp_path / "sec.ndjson", security))
    assert report["hosts"][0]["verdict"] == "no-evidence"
    assert "which build" in report["hosts"][0]["reason"]
    # the same host with its clean install recorded in the Application log is cleared
    msi = _event("wks-07", "Application", 1033, 1, datetime(2022, 11, 2, tzinfo=timezone.utc))
    msi["Event"]["System"]["Provider"]["#attributes"]["Name"] = "MsiInstaller"
    msi["Event"]["EventData"] = {"Data": {"#text": ["3CX Desktop App", "18.11.1213", "1033", "0", "3CX Ltd"]}}
    report = _hunt(tmp_path / "known", tmp_path / "sec.ndjson", _write(tmp_path / "app.ndjson", [msi]))
    assert report["hosts"][0]["verdict"] == "not-affected"


def test_evidence_without_a_host_name_is_reported_not_dropped(tmp_path: Path) -> None:
    c2 = {"EventID": 22, "Channel": SYSMON, "TimeCreated": "2023-03-20T10:00:00Z", "Image": "C:\\x\\3CXDesktopApp.exe",
          "QueryName": "msstorageazure.com"}
    report = _hunt(tmp_path / "case", _write(tmp_path / "a.ndjson", _covered("wks-01") + [c2]))
    verdicts = {h["host"]: h["verdict"] for h in report["hosts"]}
    assert verdicts == {"(unknown host)": "c2-contact", "wks-01": "not-affected"}
    assert report["summary"]["exit_code"] == 4


def test_hostile_system_values_do_not_stop_the_run(tmp_path: Path) -> None:
    good = _covered("wks-01")[:3]
    bad = [_event("wks-01", SYSMON, 1, 7, START),
           _event("wks-01", SYSMON, 1, 8, START), _event("wks-01", SYSMON, 1, 9, START)]
    bad[0]["Event"]["System"]["EventRecordID"] = "not a number"
    bad[1]["Event"]["System"]["Channel"] = 12345
    bad[2]["Event"]["System"]["EventID"] = 2**40
    report = _hunt(tmp_path / "case", _write(tmp_path / "a.ndjson", good + bad))
    assert report["case"]["records"] == 6


def test_time_zone_offsets_survive_the_slow_path() -> None:
    assert _parse_time("2023-03-20T10:00:00.5+02:00") == datetime(2023, 3, 20, 8, 0, 0, 500000, tzinfo=timezone.utc)
    assert _parse_time("2023-03-20T10:00:00.1234567Z").microsecond == 123456


def test_elasticsearch_exports() -> None:
    hit = {"_index": "winlogbeat", "_source": {"@timestamp": "2023-03-20T10:00:00Z",
                                               "winlog": {"channel": SYSMON, "event_id": "1", "computer_name": "a"}}}
    assert from_any_json(hit) is not None
    assert sniff_bytes(orjson.dumps({"hits": {"hits": [hit]}})) == JSON_DOCUMENT


def test_report_bytes_do_not_depend_on_the_local_time_zone(tmp_path: Path) -> None:
    import os
    import subprocess
    import sys

    # two events an hour apart across UTC midnight: one day in New York, two in UTC
    events = _covered("wks-01") + [_sysmon_day("wks-01", 50_000, datetime(2023, 4, 20, 23, 30, tzinfo=timezone.utc)),
                                   _sysmon_day("wks-01", 50_001, datetime(2023, 4, 21, 0, 30, tzinfo=timezone.utc))]
    evidence = _write(tmp_path / "a.ndjson", events)
    for zone in ("UTC", "America/New_York"):
        done = subprocess.run([sys.executable, "-m", "turncoat.cli", "hunt", str(evidence), "-o", str(tmp_path / zone.replace("/", "-")),
                               "--format", "json"], env=dict(os.environ, TZ=zone), capture_output=True, text=True, timeout=300)
        assert done.returncode in (0, 3), done.stderr
    assert (tmp_path / "UTC" / "report.json").read_bytes() == (tmp_path / "America-New_York" / "report.json").read_bytes()
