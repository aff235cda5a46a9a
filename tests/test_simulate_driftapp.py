"""The `driftapp` scenario keeps its promises: a fictional vendor's app trojanized in one signed update
(4.3.0) that no pack knows, found only by the IOC-free generic mode.

As in test_simulate.py, the truth is re-derived from the raw files with plain Python: same bytes for the
same seed; the first run of 4.3.0, the first beat, the dormancy and the payload match the Sysmon events;
`pdmedia.dll` is unsigned in 4.3.0 only; clean hosts never reach the C2; the network logs carry the same
beats; the evidence ingests without problems.
"""

from __future__ import annotations

import functools
import itertools
import json
import statistics
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from turncoat import pipeline
from turncoat.simulate import GENERIC_SCENARIOS, SCENARIOS, simulate

C2 = "parrot-cdn-sync.example"
C2_IP = "203.0.113.66"
UPDATE = "update.parrotfish.example"
SIGNER = "Parrotfish Software Ltd"
CAMPAIGN = "generic:Parrotfish Software Ltd/Parrotfish Desk/4.3.0"
PACKS = Path(__file__).parents[1] / "src" / "turncoat" / "intel" / "packs"
ATTACK_LADDER = ("armed-dormant", "c2-contact", "payload")


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


def _sec(stamp: str) -> str:
    """An `@timestamp` at the ground truth's resolution."""
    return stamp[:19] + "Z"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    folder = tmp_path_factory.mktemp("driftapp")
    return folder, simulate(folder, scenario="driftapp")


@functools.cache
def _sysmon(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """host -> its Sysmon events (time-ordered, as written)."""
    out = {}
    for path in sorted((folder / "evidence").glob("*/sysmon.ndjson")):
        with path.open(encoding="utf-8") as f:
            out[path.parent.name] = [json.loads(line) for line in f if line.strip()]
    return out


def _data(events: list[dict[str, Any]], event_id: str) -> list[tuple[str, dict[str, str]]]:
    return [(e["@timestamp"], e["winlog"]["event_data"]) for e in events if e["winlog"]["event_id"] == event_id]


def _is_app(image: str) -> bool:
    return image.lower().endswith("\\programs\\parrotdesk\\parrotdesk.exe")


def _app_runs(events: list[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    """ProcessGuid -> (start, FileVersion) of every ParrotDesk.exe process."""
    return {d["ProcessGuid"]: (ts, d["FileVersion"]) for ts, d in _data(events, "1") if _is_app(d["Image"])}


def _c2_contacts(events: list[dict[str, Any]]) -> list[tuple[str, str, dict[str, str]]]:
    """(time, event id, data) of every Sysmon 22 query for the C2 and Sysmon 3 connection to it."""
    return [(e["@timestamp"], e["winlog"]["event_id"], e["winlog"]["event_data"]) for e in events
            if (e["winlog"]["event_id"] == "22" and e["winlog"]["event_data"]["QueryName"] == C2)
            or (e["winlog"]["event_id"] == "3" and e["winlog"]["event_data"]["DestinationHostname"] == C2)]


def _hosts(truth: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {h["host"]: h for h in truth["hosts"]}


# -- registration and determinism ----------------------------------------------------------------------

def test_registered_apart_from_the_3cx_scenarios() -> None:
    assert "driftapp" in GENERIC_SCENARIOS and "driftapp" not in SCENARIOS


def test_deterministic(tmp_path: Path, run) -> None:
    folder, truth = run
    again = simulate(tmp_path / "again", scenario="driftapp")
    assert again == truth
    assert _tree(tmp_path / "again") == _tree(folder)


def test_seed_changes_the_evidence(tmp_path: Path, run) -> None:
    folder, truth = run
    other = simulate(tmp_path, scenario="driftapp", seed=8)
    assert _tree(tmp_path) != _tree(folder)
    assert [h["verdict"] for h in other["hosts"]] == [h["verdict"] for h in truth["hosts"]]


def test_through_the_pipeline_entry_point(tmp_path: Path) -> None:
    truth = pipeline.simulate(tmp_path, "driftapp", 2, 3)
    assert len(truth["hosts"]) == 16 and len({h["host"] for h in truth["hosts"]}) == 16
    assert sum(h["verdict"] == "payload" for h in truth["hosts"]) == 2


# -- ground truth --------------------------------------------------------------------------------------

def test_ground_truth_shape(run) -> None:
    folder, truth = run
    assert json.loads((folder / "ground-truth.json").read_text(encoding="utf-8")) == truth
    assert list(truth) == ["scenario", "seed", "collection_end", "generic_campaign", "hosts", "network"]
    assert truth["scenario"] == "driftapp" and truth["collection_end"] == "2023-10-16T17:00:00Z"
    hosts = _hosts(truth)
    assert sorted(hosts) == [h["host"] for h in truth["hosts"]] == sorted(
        p.name for p in (folder / "evidence").iterdir() if p.name != "network")
    assert {n: h["verdict"] for n, h in hosts.items()} == {
        "wks-01": "c2-contact", "wks-02": "not-affected", "wks-03": "not-affected", "wks-04": "not-affected",
        "wks-05": "c2-contact", "wks-06": "c2-contact", "wks-07": "payload", "wks-08": "armed-dormant",
    }
    campaign = truth["generic_campaign"]
    assert campaign["id"] == CAMPAIGN
    assert campaign["c2"] == {"domain": C2, "ip": C2_IP, "port": 443} and campaign["period_seconds"] == 900
    assert campaign["hosts"] == [n for n, h in hosts.items() if h["verdict"] in ATTACK_LADDER]
    for h in truth["hosts"]:
        assert h["story"]
        attacked = h["verdict"] in ATTACK_LADDER
        assert (h["first_execution"] is not None) == attacked == (h["activation_eta"] is not None)
        assert (h["first_c2"] is not None) == (h["verdict"] in ("c2-contact", "payload")) == (h["beacons"] > 0)
        assert (h["payload"] is not None) == (h["verdict"] == "payload")
        assert h["network"]["verdict"] == ("c2-contact" if h["first_c2"] else "no-evidence")
        assert h["network"]["first_c2"] == h["first_c2"]


def test_dormancy_is_seeded_between_7_and_12_days(run) -> None:
    _, truth = run
    delays = []
    for h in truth["hosts"]:
        if h["first_execution"] is None:
            continue
        sleep = _ts(h["activation_eta"]) - _ts(h["first_execution"])
        assert timedelta(days=7) <= sleep <= timedelta(days=12), h["host"]
        if h["first_c2"] is not None:
            delay = _ts(h["first_c2"]) - _ts(h["first_execution"])
            assert timedelta(days=7) <= delay <= timedelta(days=12), h["host"]
            assert _ts(h["first_c2"]) - _ts(h["activation_eta"]) < timedelta(seconds=2)
            delays.append(delay)
        else:  # armed-dormant: due while the laptop was off; it never ran again
            assert h["verdict"] == "armed-dormant"
    assert len(set(delays)) == len(delays)  # seeded per host


# -- the truth against the events ------------------------------------------------------------------------

def test_first_execution_and_first_beat_match_the_events(run) -> None:
    folder, truth = run
    for name, events in _sysmon(folder).items():
        h = _hosts(truth)[name]
        runs = _app_runs(events)
        starts = sorted(ts for ts, v in runs.values() if v == "4.3.0")
        if h["first_execution"] is None:
            assert not starts, name
        else:
            assert _sec(starts[0]) == h["first_execution"], name
            loads = [ts for ts, d in _data(events, "7") if d["ImageLoaded"].endswith("\\pdmedia.dll")
                     and runs[d["ProcessGuid"]][1] == "4.3.0"]
            assert _sec(min(loads)) == h["first_execution"], name
        contacts = _c2_contacts(events)
        if h["first_c2"] is None:
            assert not contacts, name
            assert not any(C2 in json.dumps(e) or C2_IP in json.dumps(e) for e in events), name
            continue
        assert _sec(contacts[0][0]) == h["first_c2"] and contacts[0][1] == "22", name
        assert _sec(contacts[-1][0]) == h["last_c2"], name
        # each query is followed, within its second, by the process's connection: to the C2 itself, or to the
        # proxy (Sysmon 3 names where the packets went) on the host that goes through it
        proxied = h["network"]["via_proxy"]
        target = "proxy.cabinet-dupont.local" if proxied else C2
        connections = [(ts, d) for ts, d in _data(events, "3") if d["DestinationHostname"] == target
                       and d["ProcessGuid"] in {q["ProcessGuid"] for _, eid, q in contacts}]
        queries = [(ts, d) for ts, eid, d in contacts if eid == "22"]
        assert len(queries) == h["beacons"], name
        matched = []
        for ts, q in queries:
            follow = [c for c, d in connections if _sec(c) == _sec(ts) and c >= ts and d["ProcessGuid"] == q["ProcessGuid"]]
            assert follow, (name, ts)
            matched.append(follow[0])
        assert _sec(min(matched)) == h["first_c2"], name
        assert bool([1 for _, eid, _ in contacts if eid == "3"]) != proxied, name
        # only the trojanized build calls out, and only ParrotDesk.exe
        assert {runs[d["ProcessGuid"]][1] for _, _, d in contacts} == {"4.3.0"}, name
        assert all(_is_app(d["Image"]) for _, _, d in contacts)
        assert all(d["DestinationIp"] == C2_IP and d["DestinationPort"] == "443" for _, eid, d in contacts if eid == "3")
        assert all(d["QueryResults"] == f"::ffff:{C2_IP};" for _, eid, d in contacts if eid == "22")
        # the beats stop when clean 4.3.1 replaces the files
        first_431 = min(ts for ts, v in runs.values() if v == "4.3.1")
        assert contacts[-1][0] < first_431, name


def test_clean_hosts_never_touch_the_trojanized_build(run) -> None:
    folder, truth = run
    for name, h in _hosts(truth).items():
        if h["verdict"] != "not-affected":
            continue
        blob = (folder / "evidence" / name / "sysmon.ndjson").read_text(encoding="utf-8")
        assert C2 not in blob and C2_IP not in blob and '"FileVersion":"4.3.0"' not in blob, name
        assert truth["generic_campaign"]["trojanized_module"]["sha256"].upper() not in blob, name


def test_builds_and_updates(run) -> None:
    """Who runs what: 4.2.10 first everywhere; 4.3.0 from 2023-09-19 on five hosts (started by the
    updater); 4.3.1 from 2023-10-09 (2023-10-10 on the laptop back from leave); none on the others."""
    folder, truth = run
    expected = {
        "wks-01": ["4.2.10", "4.3.0", "4.3.1"], "wks-02": ["4.2.10"], "wks-03": ["4.2.10", "4.3.1"],
        "wks-04": ["4.2.10", "4.3.1"], "wks-05": ["4.2.10", "4.3.0", "4.3.1"], "wks-06": ["4.2.10", "4.3.0", "4.3.1"],
        "wks-07": ["4.2.10", "4.3.0", "4.3.1"], "wks-08": ["4.2.10", "4.3.0"],
    }
    for name, events in _sysmon(folder).items():
        h = _hosts(truth)[name]
        starts = sorted((ts, v) for ts, v in _app_runs(events).values())
        order = list(dict.fromkeys(v for _, v in starts))
        assert order == expected[name] == [b["version"] for b in h["builds"]], name
        assert [_sec(min(ts for ts, v in starts if v == b["version"])) for b in h["builds"]] == [
            b["first_run"] for b in h["builds"]]
        firsts = {b["version"]: b["first_run"] for b in h["builds"]}
        if "4.3.0" in firsts:
            assert firsts["4.3.0"].startswith("2023-09-19")
        if "4.3.1" in firsts:
            assert firsts["4.3.1"].startswith("2023-10-10" if name == "wks-04" else "2023-10-09")
        # each new build is started by the vendor's updater, itself a child of the running app
        procs = {d["ProcessGuid"]: d for _, d in _data(events, "1")}
        for version in order[1:]:
            first = min((ts, d) for ts, d in _data(events, "1") if _is_app(d["Image"]) and d["FileVersion"] == version)[1]
            assert first["ParentImage"].endswith("\\ParrotDesk\\ParrotUpdate.exe"), name
            updater = procs[first["ParentProcessGuid"]]
            assert f"--update {version}" in updater["CommandLine"] and _is_app(updater["ParentImage"])


def test_module_signatures_per_build(run) -> None:
    """pdmedia.dll unsigned in 4.3.0 only; pdcore.dll a new hash per build, always validly signed; the
    third-party modules the same file in every build."""
    folder, _ = run
    seen: dict[tuple[str, str], set[tuple[str, str, str, str]]] = {}
    for events in _sysmon(folder).values():
        runs = _app_runs(events)
        for _, d in _data(events, "7"):
            if d["ProcessGuid"] in runs:
                module = d["ImageLoaded"].rsplit("\\", 1)[-1]
                seen.setdefault((module, runs[d["ProcessGuid"]][1]), set()).add(
                    (d["Hashes"], d["Signed"], d["Signature"], d["SignatureStatus"]))
    assert all(len(v) == 1 for v in seen.values()), seen
    one = {k: next(iter(v)) for k, v in seen.items()}
    versions = ("4.2.10", "4.3.0", "4.3.1")
    for module in ("pdcore.dll", "pdmedia.dll", "ffmpeg.dll", "d3dcompiler_47.dll"):
        assert all((module, v) in one for v in versions), module
    assert one[("pdmedia.dll", "4.3.0")][1:] == ("false", "-", "Unavailable")
    for v in ("4.2.10", "4.3.1"):
        assert one[("pdmedia.dll", v)][1:] == ("true", SIGNER, "Valid")
    for v in versions:
        assert one[("pdcore.dll", v)][1:] == ("true", SIGNER, "Valid")
    for module in ("pdcore.dll", "pdmedia.dll"):
        assert len({one[(module, v)][0] for v in versions}) == 3, module  # a new hash in every build
    for module in ("ffmpeg.dll", "d3dcompiler_47.dll"):
        assert len({one[(module, v)] for v in versions}) == 1, module  # the same file throughout
    assert one[("d3dcompiler_47.dll", "4.3.0")][1:] == ("true", "Microsoft Corporation", "Valid")


def test_beacon_rhythm_and_the_benign_update_check(run) -> None:
    """Beats every 15 min +-20 % with some missed (gaps are whole multiples); the update check every 4 h,
    from 4.2.10 on, on every host whose updates are on."""
    folder, truth = run
    for name, events in _sysmon(folder).items():
        by_proc: dict[str, list[datetime]] = {}
        for ts, d in _data(events, "22"):
            if d["QueryName"] == C2:
                by_proc.setdefault(d["ProcessGuid"], []).append(_ts(ts))
        gaps = [(b - a).total_seconds() for beats in by_proc.values() for a, b in itertools.pairwise(beats)]
        if _hosts(truth)[name]["first_c2"] is None:
            assert not gaps
            continue
        assert gaps and all(gap >= 0.8 * 900 - 1 for gap in gaps), name
        single = [g for g in gaps if g <= 1.2 * 900 + 1]
        assert 0.6 <= len(single) / len(gaps) <= 0.95, name  # ~20 % of beats missed
        assert 850 <= statistics.median(single) <= 950, name
        checks: dict[str, list[datetime]] = {}
        runs = _app_runs(events)
        for ts, d in _data(events, "22"):
            if d["QueryName"] == UPDATE:
                checks.setdefault(d["ProcessGuid"], []).append(_ts(ts))
        assert any(runs[g][1] == "4.2.10" for g in checks)
        check_gaps = [(b - a).total_seconds() for c in checks.values() for a, b in itertools.pairwise(c)]
        assert check_gaps and all(abs(g - 4 * 3600) <= 3 for g in check_gaps), name
    wks02 = _sysmon(folder)["wks-02"]
    assert not [d for _, d in _data(wks02, "22") if d["QueryName"] == UPDATE]  # updates switched off


def test_payload_children(run) -> None:
    """cmd.exe /c whoami and powershell.exe as children of a running 4.3.0, on the payload host only."""
    folder, truth = run
    for name, events in _sysmon(folder).items():
        h = _hosts(truth)[name]
        runs = _app_runs(events)
        children = [(ts, d) for ts, d in _data(events, "1") if d["ParentProcessGuid"] in runs
                    and d["Image"].lower().endswith(("\\cmd.exe", "\\powershell.exe"))]
        if h["verdict"] != "payload":
            assert not children, name
            continue
        assert [d["Image"].rsplit("\\", 1)[-1] for _, d in children] == ["cmd.exe", "powershell.exe"]
        assert children[0][1]["CommandLine"].endswith("cmd.exe /c whoami")
        assert _sec(children[0][0]) == h["payload"] and h["payload"] > h["first_c2"]
        assert {runs[d["ParentProcessGuid"]][1] for _, d in children} == {"4.3.0"}
        whoami = [d for _, d in _data(events, "1") if d["ParentProcessGuid"] == children[0][1]["ProcessGuid"]]
        assert [d["Image"].rsplit("\\", 1)[-1] for d in whoami] == ["whoami.exe"]


def test_armed_dormant_laptop_stops_before_activation(run) -> None:
    folder, truth = run
    h = _hosts(truth)["wks-08"]
    last = max(e["@timestamp"] for e in _sysmon(folder)["wks-08"])
    assert last < "2023-09-22" and _sec(last) < h["activation_eta"] < truth["collection_end"]


# -- network, packs, ingest ------------------------------------------------------------------------------

def _zeek(path: Path) -> list[dict[str, str]]:
    lines = path.read_text(encoding="utf-8").splitlines()
    fields = next(line for line in lines if line.startswith("#fields")).split("\t")[1:]
    return [dict(zip(fields, line.split("\t"))) for line in lines if not line.startswith("#")]


def test_network_logs_carry_the_beacon(run) -> None:
    folder, truth = run
    net = folder / "evidence" / "network"
    queries = [r for r in _zeek(net / "zeek" / "dns.log") if r["query"] == C2]
    direct = [r for r in _zeek(net / "zeek" / "conn.log") if r["id.resp_h"] == C2_IP]
    proxied = [line for line in (net / "proxy" / "access.log").read_text(encoding="utf-8").splitlines()
               if f"POST https://{C2}/" in line]
    hosts = _hosts(truth)
    beats = {n: h["beacons"] for n, h in hosts.items()}
    assert len(queries) == sum(beats.values())
    assert len(direct) == sum(b for n, b in beats.items() if not hosts[n]["network"]["via_proxy"])
    assert len(proxied) == sum(b for n, b in beats.items() if hosts[n]["network"]["via_proxy"]) > 0
    assert {r["orig_bytes"] for r in direct} == {"1184"}  # a fixed-size request
    sources = {r["id.orig_h"] for r in queries}
    c2_addresses = {a["ip"] for h in hosts.values() if h["first_c2"] for a in h["network"]["addresses"]}
    assert sources <= c2_addresses


def test_nothing_is_in_any_pack(run) -> None:
    _, truth = run
    packs = "\n".join(p.read_text(encoding="utf-8").lower() for p in PACKS.rglob("*") if p.is_file()
                      and p.suffix in (".csv", ".yaml", ".yml", ".txt", ".json"))
    campaign = truth["generic_campaign"]
    for value in (C2, C2_IP, "parrotfish", campaign["trojanized_module"]["sha256"],
                  campaign["updated_module_same_signer"]["sha256"]):
        assert value.lower() not in packs, value


def test_evidence_ingests_without_problems(run, tmp_path: Path) -> None:
    folder, _ = run
    result = pipeline.ingest([folder / "evidence"], tmp_path / "case")
    assert result.problems == 0, result.messages
    assert result.new_items > 0
