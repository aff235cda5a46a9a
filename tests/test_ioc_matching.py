"""Indicator matching rules: domains with subdomains, case and trailing dots; hashes in any hash
field; paths by suffix; presence versus execution."""

from __future__ import annotations

from pathlib import Path

import orjson

from turncoat import pipeline
from turncoat.detect.ioc import normalise

SYSMON = "Microsoft-Windows-Sysmon/Operational"


def _sysmon(record_id: int, event_id: int, **data: str) -> bytes:
    return orjson.dumps({
        "@timestamp": f"2023-03-20T10:00:{record_id:02d}.000Z",
        "winlog": {"channel": SYSMON, "computer_name": "PC-7.lan", "event_id": str(event_id),
                   "record_id": record_id, "event_data": data},
    }) + b"\n"


def test_normalise() -> None:
    assert normalise("domain", "MSStorageAzure.com.") == "msstorageazure.com"
    assert normalise("domain", "bücher.example") == "xn--bcher-kva.example"
    assert normalise("filepath", "%LOCALAPPDATA%\\Programs\\3CXDesktopApp\\app\\manifest") == "\\programs\\3cxdesktopapp\\app\\manifest"
    assert normalise("cert_serial", "1B 66 11 DF") == "1b6611df"


def test_domains_hashes_and_presence(tmp_path: Path) -> None:
    lines = [
        _sysmon(1, 22, Image="C:\\x\\3CXDesktopApp.exe", QueryName="WWW.MSStorageAzure.com."),   # subdomain, case, dot
        _sysmon(2, 22, Image="C:\\x\\chrome.exe", QueryName="notmsstorageazure.com"),             # not a subdomain
        _sysmon(3, 22, Image="C:\\x\\chrome.exe", QueryName="msstorageazure.com.evil.example"),   # not a suffix
        _sysmon(4, 11, Image="C:\\x\\msiexec.exe", TargetFilename="C:\\Users\\a\\Downloads\\x.dll",
                Hashes="SHA256=7986BBAEE8940DA11CE089383521AB420C443AB7B15ED42AED91FD31CE833896"),  # on disk
        _sysmon(5, 7, Image="C:\\x\\3CXDesktopApp.exe", ImageLoaded="C:\\x\\ffmpeg.dll",
                Hashes="SHA1=BF939C9C261D27EE7BB92325CC588624FCA75429,MD5=00000000000000000000000000000000"),  # loaded
        _sysmon(6, 7, Image="C:\\x\\Teams.exe", ImageLoaded="C:\\x\\ffmpeg.dll",
                Hashes="SHA256=" + "A" * 64),                                                      # name alone
    ]
    (tmp_path / "sysmon.ndjson").write_bytes(b"".join(lines))
    case = tmp_path / "case"
    pipeline.ingest([tmp_path / "sysmon.ndjson"], case)
    pipeline.detect(case, None)
    report = pipeline.assess(case, None)
    evidence = report["hosts"][0]["evidence"]
    by_record = {}
    for row in evidence:
        by_record.setdefault(row["record_id"], []).append(row)
    assert [r["rule_id"] for r in by_record[1]] == ["ioc:domain:msstorageazure.com"]
    assert 2 not in by_record and 3 not in by_record and 6 not in by_record
    assert by_record[4][0]["stage"] == "vulnerable-installed"  # the loader only present on disk
    assert by_record[5][0]["stage"] == "armed-dormant" and by_record[5][0]["field"] == "dll.hash.sha1"
    assert report["hosts"][0]["verdict"] == "c2-contact"
