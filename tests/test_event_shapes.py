"""Each export shape normalises to the same store row (docs/schema.md)."""

from __future__ import annotations

from pathlib import Path

import orjson

from turncoat import pipeline
from turncoat.evidence.winevent import canonical_field, from_any_json, host_key
from turncoat.store.case import Case

SYSMON = "Microsoft-Windows-Sysmon/Operational"


def test_velociraptor_parse_evtx_rows() -> None:
    # Velociraptor's parse_evtx(): no "Event" wrapper, {"Value": …} ids, epoch times, unnamed data as a list
    row = from_any_json({
        "System": {"Provider": {"Name": "MsiInstaller"}, "EventID": {"Qualifiers": 0, "Value": 1033},
                   "EventRecordID": 812, "TimeCreated": {"SystemTime": 1679302800.25}, "Channel": "Application",
                   "Computer": "WKS-05.corp.example", "Execution": {"ProcessID": 4711}, "Security": {"UserID": "S-1-5-18"}},
        "EventData": {"Data": ["3CX Desktop App", "18.12.416", "1033", "0", "3CX Ltd"], "Binary": None},
        "Message": "Windows Installer installed the product.",
    })
    assert row is not None
    assert row["EventID"] == 1033 and row["record_id"] == 812 and row["Channel"] == "Application"
    assert row["host"] == "wks-05" and row["Computer"] == "WKS-05.corp.example"
    assert row["ts"].startswith("2023-03-20T09:00:00.25")
    assert orjson.loads(row["Data"])[:2] == ["3CX Desktop App", "18.12.416"]
    assert row["Provider_Name"] == "MsiInstaller" and row["Execution_ProcessID"] == "4711"


def test_ecs_dotted_keys_and_param_data() -> None:
    row = from_any_json({
        "@timestamp": "2023-03-20T09:00:00.000Z",
        "winlog.channel": "Application", "winlog.event_id": "1033", "winlog.record_id": 5,
        "winlog.computer_name": "wks-05", "winlog.provider_name": "MsiInstaller",
        "winlog.event_data.param1": "3CX Desktop App", "winlog.event_data.param2": "18.12.416",
    })
    assert row is not None and row["EventID"] == 1033 and row["record_id"] == 5
    assert orjson.loads(row["Data"]) == ["3CX Desktop App", "18.12.416"]


def test_case_variants_and_reserved_names() -> None:
    assert canonical_field("processid") == "ProcessId"
    assert canonical_field("PROCESSID") == "ProcessId"
    assert canonical_field("Channel") == "Channel_"
    assert canonical_field("some.field") == "some_field"
    row = from_any_json({"Event": {"System": {"EventID": 1, "Channel": SYSMON, "Computer": "a",
                                              "TimeCreated": {"#attributes": {"SystemTime": "2023-01-01T00:00:00Z"}}},
                                   "EventData": {"ProcessId": "10", "ProcessID": "11", "processId": "10"}}})
    assert row["ProcessId"] == "10" and row["ProcessId__ProcessID"] == "11"
    assert "ProcessId__processId" not in row  # same value: nothing to keep apart


def test_host_keys() -> None:
    assert host_key("WKS-01.corp.example.") == "wks-01"
    assert host_key("10.0.0.5") == "10.0.0.5"
    assert host_key("") is None and host_key(None) is None


def test_same_event_from_evtx_style_and_ecs_exports_is_stored_once(tmp_path: Path) -> None:
    native = {"Event": {"System": {"EventID": 1, "EventRecordID": 42, "Channel": SYSMON, "Computer": "PC-9.lan",
                                   "Provider": {"#attributes": {"Name": "Microsoft-Windows-Sysmon"}},
                                   "TimeCreated": {"#attributes": {"SystemTime": "2023-03-01T10:00:00.1234567Z"}}},
                        "EventData": {"Image": "C:\\x.exe"}}}
    ecs = {"@timestamp": "2023-03-01T10:00:00.123Z",
           "winlog": {"channel": SYSMON, "computer_name": "PC-9.lan", "event_id": "1", "record_id": 42,
                      "event_data": {"Image": "C:\\x.exe"}}}
    (tmp_path / "evtx_dump.json").write_bytes(orjson.dumps(native, option=orjson.OPT_INDENT_2))
    (tmp_path / "beats.ndjson").write_bytes(orjson.dumps(ecs) + b"\n")
    case = tmp_path / "case"
    pipeline.ingest([tmp_path / "evtx_dump.json", tmp_path / "beats.ndjson"], case)
    con = Case(case).connect(read_only=True)
    try:
        total = con.execute("SELECT count(*) FROM win_events_all").fetchall()[0][0]
        kept = con.execute("SELECT count(*), min(ts) FROM win_events").fetchall()[0]
    finally:
        con.close()
    assert total == 2 and kept[0] == 1
    assert kept[1].microsecond in (123000, 123456)


def test_evtx_dump_output_with_record_headers(tmp_path: Path) -> None:
    event = {"Event": {"System": {"EventID": 4624, "EventRecordID": 7, "Channel": "Security", "Computer": "DC1",
                                  "TimeCreated": {"#attributes": {"SystemTime": "2023-03-01T10:00:00.000000Z"}}},
                       "EventData": {"TargetUserName": "bob"}}}
    second = {"Event": dict(event["Event"], System=dict(event["Event"]["System"], EventRecordID=8))}
    body = b"Record 7\n" + orjson.dumps(event, option=orjson.OPT_INDENT_2) + b"\nRecord 8\n" + \
        orjson.dumps(second, option=orjson.OPT_INDENT_2) + b"\n"
    (tmp_path / "dump.txt").write_bytes(body)
    case = tmp_path / "case"
    pipeline.ingest([tmp_path / "dump.txt"], case)
    item = orjson.loads((case / "manifest.json").read_bytes())["items"][0]
    assert item["reader"] == "winevent-json" and item["records"] == 2 and item["issue_count"] == 0


def test_epoch_times_truncate_like_evtx() -> None:
    row = from_any_json({"System": {"EventID": {"Value": 1}, "Channel": SYSMON, "Computer": "a",
                                    "TimeCreated": {"SystemTime": 1679302799.9999996}}})
    assert row["ts"].startswith("2023-03-20T08:59:59.999999")


def test_flat_param_items_become_data() -> None:
    row = from_any_json({"EventID": 1033, "Channel": "Application", "Hostname": "wks-05", "SourceName": "MsiInstaller",
                         "TimeCreated": "2023-03-20T10:00:00Z", "param1": "3CX Desktop App", "param2": "18.12.416"})
    assert orjson.loads(row["Data"]) == ["3CX Desktop App", "18.12.416"] and "param1" not in row


def test_velociraptor_evtx_hunter_rows() -> None:
    row = from_any_json({"EventTime": "2023-03-20T10:00:00Z", "Computer": "WKS-03.corp.example",
                         "Channel": "Microsoft-Windows-Sysmon/Operational", "EventID": 22, "EventRecordID": 991,
                         "EventData": {"Image": "C:\\x\\3CXDesktopApp.exe", "QueryName": "msstorageazure.com"},
                         "Message": "Dns query", "OSPath": "C:\\Windows\\System32\\winevt\\Logs\\x.evtx"})
    assert row["host"] == "wks-03" and row["EventID"] == 22 and row["record_id"] == 991
    assert row["QueryName"] == "msstorageazure.com" and row["ts"] == "2023-03-20T10:00:00Z"
