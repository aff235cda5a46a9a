"""`turncoat sigma` through the real command line: outputs, filters, listing and usage errors."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson

from conftest import shared

PACK_SIGMA = Path(__file__).resolve().parents[1] / "src" / "turncoat" / "intel" / "packs" / "3cx-2023" / "sigma"


def _cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="160", TURNCOAT_CACHE_DIR=str(cwd / "cache"))
    return subprocess.run([sys.executable, "-m", "turncoat.cli", "sigma", *args], cwd=cwd, capture_output=True,
                          text=True, env=env, timeout=600)


def test_hunt_writes_jsonl_and_timeline(tmp_path: Path) -> None:
    evidence = shared("evtx", "EVTX-ATTACK-SAMPLES", "Credential Access")
    rules = shared("sigma", "rules", "windows", "file", "file_event")
    done = _cli("--rules", str(rules), str(evidence), "--jsonl", "hits.jsonl", "--timeline", "tl.jsonl",
                "--min-level", "high", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert "Detections by level" in done.stdout and "Hosts" in done.stdout
    hits = [orjson.loads(line) for line in (tmp_path / "hits.jsonl").read_bytes().splitlines()]
    assert hits and all(h["level"] in ("high", "critical") for h in hits)
    for key in ("rule_id", "rule_title", "level", "host", "timestamp", "evidence_id", "evidence_path", "record_id"):
        assert all(key in h for h in hits), key
    assert all(Path(h["evidence_path"]).suffix == ".evtx" and h["record_id"] for h in hits)
    assert all(h["channel"] == "Microsoft-Windows-Sysmon/Operational" and h["event_id"] == 11 for h in hits)
    timeline = [orjson.loads(line) for line in (tmp_path / "tl.jsonl").read_bytes().splitlines()]
    assert len(timeline) == len(hits)
    assert all(t["message"] and t["datetime"] and t["timestamp_desc"] == "Event recorded" for t in timeline)
    # second run: every conversion comes from the cache
    again = _cli("--rules", str(rules), str(evidence), cwd=tmp_path)
    assert again.returncode == 0 and "conversions from cache" in again.stderr
    cached = int(re.search(r"(\d+) conversions from cache", again.stderr).group(1))
    assert cached == len(list(rules.glob("*.yml")))


def test_list_unconverted_and_usage_errors(tmp_path: Path) -> None:
    rules = shared("sigma", "rules", "windows")
    listing = _cli("--rules", str(rules), "--list-unconverted", cwd=tmp_path)
    assert listing.returncode == 0, listing.stderr
    lines = [line.split("\t") for line in listing.stdout.splitlines() if line.strip()]
    assert lines and all(len(parts) == 3 and parts[2].startswith("logsource") for parts in lines)
    assert _cli(str(tmp_path), cwd=tmp_path).returncode == 2                          # no --rules
    assert _cli("--rules", str(tmp_path / "nope"), str(tmp_path), cwd=tmp_path).returncode == 2
    assert _cli("--rules", str(PACK_SIGMA), str(tmp_path), "--min-level", "severe", cwd=tmp_path).returncode == 2
    assert _cli("--rules", str(PACK_SIGMA), str(tmp_path), "--since", "yesterday", cwd=tmp_path).returncode == 2
    assert _cli("--rules", str(PACK_SIGMA), cwd=tmp_path).returncode == 2             # no evidence
