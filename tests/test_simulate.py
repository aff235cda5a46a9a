"""The evidence simulator keeps its promises: deterministic bytes, Winlogbeat-shaped events, contiguous
record ids, and a ground truth that matches what the evidence shows.

The detection pipeline is tested elsewhere; here the truth is re-derived from the raw events with plain
Python, so a wrong ground truth cannot hide behind a matching detector.
"""

from __future__ import annotations

import functools
import json
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from turncoat.simulate import SCENARIOS, simulate

FIXTURES = Path(__file__).parent / "fixtures" / "verdicts"
VERDICTS = {"not-affected", "no-evidence", "vulnerable-installed", "armed-dormant", "c2-contact", "payload", "data-stolen"}
ISO_S = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SYSMON_TIME = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}$")
HASHES = re.compile(r"^SHA1=[0-9A-F]{40},MD5=[0-9A-F]{32},SHA256=[0-9A-F]{64},IMPHASH=[0-9A-F]{32}$")
CHANNEL_FILES = {
    "sysmon.ndjson": "Microsoft-Windows-Sysmon/Operational",
    "security.ndjson": "Security",
    "application.ndjson": "Application",
    "defender.ndjson": "Microsoft-Windows-Windows Defender/Operational",
}
REQUIRED = {
    ("Microsoft-Windows-Sysmon/Operational", "1"): {
        "UtcTime", "Image", "CommandLine", "ParentImage", "ParentCommandLine", "ProcessId", "ProcessGuid", "User",
        "Hashes", "FileVersion", "Description", "Product", "Company", "OriginalFileName", "CurrentDirectory",
        "IntegrityLevel",
    },
    ("Microsoft-Windows-Sysmon/Operational", "3"): {
        "UtcTime", "Image", "Protocol", "Initiated", "SourceIp", "SourcePort", "DestinationIp",
        "DestinationHostname", "DestinationPort",
    },
    ("Microsoft-Windows-Sysmon/Operational", "7"): {
        "UtcTime", "Image", "ImageLoaded", "Hashes", "FileVersion", "Product", "Company", "OriginalFileName",
        "Signed", "Signature", "SignatureStatus",
    },
    ("Microsoft-Windows-Sysmon/Operational", "11"): {"UtcTime", "Image", "TargetFilename", "CreationUtcTime"},
    ("Microsoft-Windows-Sysmon/Operational", "22"): {"UtcTime", "Image", "QueryName", "QueryStatus", "QueryResults"},
    ("Security", "4688"): {"NewProcessName", "CommandLine", "ParentProcessName", "SubjectUserName", "NewProcessId", "ProcessId"},
    ("Security", "4624"): {"TargetUserName", "LogonType", "IpAddress"},
    ("Application", "1033"): {"param1", "param2", "param3", "param4", "param5"},
    ("Application", "1034"): {"param1", "param2", "param3", "param4", "param5"},
    ("Application", "11707"): {"param1"},
    ("Application", "11724"): {"param1"},
    ("Microsoft-Windows-Windows Defender/Operational", "1116"): {"Threat Name", "Path", "Action Name", "Severity Name"},
}
FFMPEG_416 = "7986BBAEE8940DA11CE089383521AB420C443AB7B15ED42AED91FD31CE833896"
D3D_416 = "11BE1803E2E307B647A8A7E02D128335C448FF741BF06BF52B332E0BBF423B03"
ICONIC = "8AB3A5EAAF8C296080FADF56B265194681D7DA5DA7C02562953A4CB60E147423"
C2_DOMAINS = {
    "akamaitechcloudservices.com", "azureonlinestorage.com", "glcloudservice.com", "msstorageazure.com",
    "msstorageboxes.com", "officestoragebox.com", "pbxcloudeservices.com", "visualstudiofactory.com",
}
#: When each scenario's logs were collected (every other scenario: the day the compromise became public).
COLLECTION_ENDS = {"aftermath": "2023-04-20T17:00:00Z"}
DEFAULT_COLLECTION_END = "2023-03-30T18:00:00Z"
#: The GitHub dead drop (IconStorages/images) was taken down then: no C2 address can be learnt afterwards.
GITHUB_TAKEDOWN = "2023-03-29T01:19:00Z"
PACK_IOCS = Path(__file__).parents[1] / "src" / "turncoat" / "intel" / "packs" / "3cx-2023" / "iocs.csv"


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def _load(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, dict[str, Any]]]:
    """Each scenario simulated once, shared by the tests that only read."""
    out = {}
    for name in SCENARIOS:
        folder = tmp_path_factory.mktemp(name)
        out[name] = (folder, simulate(folder, scenario=name))
    return out


@functools.cache
def _events(folder: Path) -> dict[str, dict[str, list[dict[str, Any]]]]:
    """host -> file name -> events (parsed once per folder; callers only read)."""
    hosts: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for path in sorted((folder / "evidence").glob("*/*.ndjson")):
        hosts.setdefault(path.parent.name, {})[path.name] = _load(path)
    return hosts


# -- public interface ------------------------------------------------------------------------------------

def test_scenarios_are_described() -> None:
    assert {"office", "clean", "blind", "aftermath"} <= set(SCENARIOS)
    assert all(isinstance(v, str) and v for v in SCENARIOS.values())


def test_unknown_scenario_raises(tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        simulate(tmp_path, scenario="no-such-office")


def test_refuses_to_mix_with_earlier_evidence(tmp_path: Path) -> None:
    simulate(tmp_path, scenario="clean")
    with pytest.raises(FileExistsError):
        simulate(tmp_path, scenario="blind")


def test_deterministic(tmp_path: Path, runs) -> None:
    folder, truth = runs["office"]
    again = simulate(tmp_path / "again", scenario="office")
    assert again == truth
    assert _tree(tmp_path / "again") == _tree(folder)


def test_seed_changes_the_evidence(tmp_path: Path, runs) -> None:
    folder, _ = runs["clean"]
    simulate(tmp_path, scenario="clean", seed=8)
    assert _tree(tmp_path) != _tree(folder)


def test_scale_doubles_the_hosts(tmp_path: Path, runs) -> None:
    _, single = runs["office"]
    truth = simulate(tmp_path, scenario="office", scale=2)
    names = [h["host"] for h in truth["hosts"]]
    assert len(names) == 2 * len(single["hosts"]) == len(set(names))
    assert sorted(p.name for p in (tmp_path / "evidence").iterdir() if p.name != "network") == sorted(names)
    count = lambda t, v: sum(h["verdict"] == v for h in t["hosts"])  # noqa: E731
    assert all(count(truth, v) == 2 * count(single, v) for v in VERDICTS)


# -- event shape -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_events_have_the_winlogbeat_shape(runs, scenario: str) -> None:
    folder, truth = runs[scenario]
    end = _ts(truth["collection_end"])
    for host, files in _events(folder).items():
        assert set(files) <= set(CHANNEL_FILES), files.keys()
        for name, events in files.items():
            assert events, f"{host}/{name} is empty"
            for e in events:
                w = e["winlog"]
                assert ISO_MS.match(e["@timestamp"]), e["@timestamp"]
                assert _ts(e["@timestamp"]) < end
                assert e["host"]["name"] == w["computer_name"]
                assert e["host"]["name"].split(".")[0].lower() == host and "." in e["host"]["name"]
                assert e["event"] == {"code": w["event_id"], "kind": "event", "provider": w["provider_name"]}
                assert e["log"]["level"] in ("information", "warning")
                assert w["channel"] == CHANNEL_FILES[name]
                assert isinstance(w["event_id"], str) and isinstance(w["record_id"], int)
                assert "original" not in e["event"]
                data = w["event_data"]
                assert data and all(isinstance(k, str) and isinstance(v, str) for k, v in data.items())
                missing = REQUIRED.get((w["channel"], w["event_id"]), set()) - data.keys()
                assert not missing, (host, w["event_id"], missing)
                if w["channel"].endswith("Sysmon/Operational"):
                    assert SYSMON_TIME.match(data["UtcTime"])
                    assert data["UtcTime"].replace(" ", "T") + "Z" == e["@timestamp"]
                    if "Hashes" in data:
                        assert HASHES.match(data["Hashes"]), data["Hashes"]


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_record_ids_are_contiguous_and_time_ordered(runs, scenario: str) -> None:
    folder, _ = runs[scenario]
    for host, files in _events(folder).items():
        for name, events in files.items():
            ids = [e["winlog"]["record_id"] for e in events]
            assert ids == list(range(ids[0], ids[0] + len(ids))), f"{host}/{name}"
            stamps = [e["@timestamp"] for e in events]
            assert stamps == sorted(stamps), f"{host}/{name}"


def test_office_volume_is_modest(runs) -> None:
    folder, _ = runs["office"]
    total = sum(len(ev) for files in _events(folder).values() for ev in files.values())
    assert 25_000 <= total <= 60_000, total


# -- ground truth ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_ground_truth_covers_every_host(runs, scenario: str) -> None:
    folder, truth = runs[scenario]
    on_disk = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    assert on_disk == truth
    network = (folder / "evidence" / "network").is_dir()  # the office's network logs (tested on their own)
    assert list(truth) == ["scenario", "seed", "collection_end", "hosts"] + (["network"] if network else [])
    assert truth["scenario"] == scenario and truth["seed"] == 7
    assert truth["collection_end"] == COLLECTION_ENDS.get(scenario, DEFAULT_COLLECTION_END)
    names = [h["host"] for h in truth["hosts"]]
    assert names == sorted(names)
    folders = {p.name for p in (folder / "evidence").iterdir()} - {"network"}
    endpoint = bool(folders)  # a network-only scenario has no host folder at all
    assert set(names) == folders or (network and not endpoint)
    for h in truth["hosts"]:
        assert list(h) == ["host", "verdict", "first_execution", "activation_eta", "first_c2", "story"] + (
            ["network"] if network else [])
        assert h["verdict"] in VERDICTS and h["story"]
        for key in ("first_execution", "activation_eta", "first_c2"):
            assert h[key] is None or ISO_S.match(h[key])
        if h["first_execution"] is None:  # network only: C2 contact is seen, the execution is not
            assert h["activation_eta"] is None and (h["first_c2"] is None or not endpoint)
        else:
            assert _ts(h["activation_eta"]) - _ts(h["first_execution"]) == timedelta(days=7)


def test_every_verdict_occurs(runs) -> None:
    seen = {h["verdict"] for _, truth in runs.values() for h in truth["hosts"]}
    assert seen == VERDICTS
    assert {h["verdict"] for h in runs["clean"][1]["hosts"]} == {"not-affected"}
    assert {h["verdict"] for h in runs["blind"][1]["hosts"]} == {"no-evidence"}


def _is_app(image: str) -> bool:
    return image.lower().endswith("\\3cxdesktopapp.exe")


@pytest.mark.parametrize("scenario", ["office", "aftermath"])
def test_ground_truth_times_match_the_evidence(runs, scenario: str) -> None:
    """first_execution, first_c2 and the dormant/active split, re-derived from the raw events."""
    folder, truth = runs[scenario]
    events = _events(folder)
    for h in truth["hosts"]:
        sysmon = events[h["host"]].get("sysmon.ndjson", [])
        starts = [e for e in sysmon if e["winlog"]["event_id"] == "1" and _is_app(e["winlog"]["event_data"]["Image"])
                  and e["winlog"]["event_data"]["FileVersion"] == "18.12.416"]
        loads = [e for e in sysmon if e["winlog"]["event_id"] == "7" and FFMPEG_416 in e["winlog"]["event_data"]["Hashes"]]
        contacts = [e for e in sysmon if e["winlog"]["event_id"] == "22" and _is_app(e["winlog"]["event_data"]["Image"])
                    and e["winlog"]["event_data"]["QueryName"] in C2_DOMAINS | {"raw.githubusercontent.com"}]
        if h["first_execution"] is None:
            assert not starts and not loads, h["host"]
        else:
            assert starts[0]["@timestamp"][:19] + "Z" == h["first_execution"]
            assert loads[0]["@timestamp"][:19] + "Z" == h["first_execution"]
            assert any(D3D_416 in e["winlog"]["event_data"]["Hashes"] for e in sysmon if e["winlog"]["event_id"] == "7")
        if h["first_c2"] is None:
            assert not contacts, h["host"]
        else:
            assert contacts[0]["@timestamp"][:19] + "Z" == h["first_c2"]
            assert contacts[0]["winlog"]["event_data"]["QueryName"] == "raw.githubusercontent.com"
            assert h["first_c2"] >= h["activation_eta"]
        if h["verdict"] == "armed-dormant":
            assert _ts(h["activation_eta"]) > _ts(truth["collection_end"])


def test_attack_traces_stay_on_their_hosts(runs) -> None:
    """Each stage's marks appear exactly on the hosts whose verdict reaches that stage."""
    order = ["not-affected", "no-evidence", "vulnerable-installed", "armed-dormant", "c2-contact", "payload", "data-stolen"]
    for folder, truth in runs.values():
        events = _events(folder)
        if not events:  # network only: no host logs to carry any mark
            continue
        for h in truth["hosts"]:
            lines = [json.dumps(e) for ev in events[h["host"]].values() for e in ev]
            blob = "\n".join(lines)
            rank = order.index(h["verdict"])
            assert ("3CXDesktopApp-18.12.416" in blob) == (rank >= 2), h["host"]
            assert (FFMPEG_416 in blob) == (rank >= 3), h["host"]
            sysmon = events[h["host"]].get("sysmon.ndjson", [])
            dead_drop = [e for e in sysmon if e["winlog"]["event_id"] == "22" and _is_app(e["winlog"]["event_data"]["Image"])
                         and e["winlog"]["event_data"]["QueryName"] == "raw.githubusercontent.com"]
            assert bool(dead_drop) == (rank >= 4), h["host"]
            # a C2 address is only learnt from the dead drop while it was up
            learnt = rank >= 4 and h["first_c2"] < GITHUB_TAKEDOWN
            assert any(d in blob for d in C2_DOMAINS) == learnt, h["host"]
            children = [e for e in events[h["host"]].get("sysmon.ndjson", []) if e["winlog"]["event_id"] == "1"
                        and _is_app(e["winlog"]["event_data"]["ParentImage"])
                        and e["winlog"]["event_data"]["Image"].lower().endswith("\\cmd.exe")]
            assert bool(children) == (h["verdict"] == "payload"), h["host"]
            assert (ICONIC in blob) == (h["verdict"] == "data-stolen"), h["host"]
            if h["verdict"] == "vulnerable-installed":
                assert "SamScissors" in blob


def test_decoys_are_present(runs) -> None:
    """Benign look-alikes the detectors must not flag: Teams' own ffmpeg.dll, browsers on GitHub."""
    folder, _ = runs["office"]
    sysmon = [e["winlog"]["event_data"] for files in _events(folder).values() for e in files.get("sysmon.ndjson", [])]
    teams_ffmpeg = {d["Hashes"] for d in sysmon if d.get("ImageLoaded", "").endswith("\\Teams\\current\\ffmpeg.dll")}
    assert teams_ffmpeg and not any(FFMPEG_416 in h for h in teams_ffmpeg)
    assert any(d.get("QueryName") == "raw.githubusercontent.com" and not _is_app(d["Image"]) for d in sysmon)
    assert any(d.get("FileVersion") == "18.11.1213" and _is_app(d.get("Image", "")) for d in sysmon)


# -- aftermath: collected on 2023-04-20, after clean builds shipped and the dead drop was taken down ----

def _data(events: list[dict[str, Any]], event_id: str) -> list[tuple[str, dict[str, str]]]:
    return [(e["@timestamp"], e["winlog"]["event_data"]) for e in events if e["winlog"]["event_id"] == event_id]


def _msi(events: list[dict[str, Any]], event_id: str) -> list[tuple[str, str]]:
    """(time, version) of MsiInstaller 1033/1034 events for the 3CX Desktop App."""
    return [(ts, d["param2"]) for ts, d in _data(events, event_id) if d.get("param1") == "3CX Desktop App"]


def _app_versions(sysmon: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """(time, FileVersion) of every 3CXDesktopApp.exe main process start (not its Electron children)."""
    return [(ts, d["FileVersion"]) for ts, d in _data(sysmon, "1") if _is_app(d["Image"]) and "--type=" not in d["CommandLine"]]


def test_aftermath_is_deterministic(tmp_path: Path, runs) -> None:
    folder, truth = runs["aftermath"]
    again = simulate(tmp_path / "again", scenario="aftermath")
    assert again == truth
    assert _tree(tmp_path / "again") == _tree(folder)


def test_aftermath_respects_its_collection_end(runs) -> None:
    folder, truth = runs["aftermath"]
    assert truth["collection_end"] == "2023-04-20T17:00:00Z"
    stamps = [e["@timestamp"] for files in _events(folder).values() for ev in files.values() for e in ev]
    assert min(stamps) >= "2022-11-01T00:00:00.000Z"
    assert max(stamps) < "2023-04-20T17:00:00.000Z"
    assert max(stamps) >= "2023-04-20T00:00:00.000Z"  # the evidence does reach the collection day
    for h in truth["hosts"]:
        for key in ("first_execution", "first_c2"):
            assert h[key] is None or h[key] < truth["collection_end"]


def test_aftermath_verdicts(runs) -> None:
    _, truth = runs["aftermath"]
    assert {h["host"]: h["verdict"] for h in truth["hosts"]} == {
        "pc-01": "not-affected", "pc-02": "not-affected", "pc-03": "c2-contact", "pc-04": "c2-contact",
        "pc-05": "no-evidence",
    }


def test_aftermath_clean_builds_are_present(runs) -> None:
    """18.12.422 arrives through the app's updater, 18.12.425 by MSI, and both run."""
    folder, _ = runs["aftermath"]
    events = _events(folder)
    pc01 = events["pc-01"]["sysmon.ndjson"]
    updates = [(ts, d) for ts, d in _data(pc01, "1") if d["Image"].lower().endswith("\\3cxdesktopapp\\app\\update.exe")]
    assert len(updates) == 1
    ts, d = updates[0]
    assert ts.startswith("2023-03-31")
    assert d["CommandLine"].endswith('" --update https://cabinet-dupont.my3cx.fr/electron/update/win32/18.12')
    assert _is_app(d["ParentImage"])
    assert any(f["TargetFilename"].endswith("\\packages\\3CXDesktopApp-18.12.422-full.nupkg") for _, f in _data(pc01, "11"))
    versions = _app_versions(pc01)
    assert {v for t, v in versions if t < ts} == {"18.11.1213"}
    assert {v for t, v in versions if t > ts} == {"18.12.422"}
    assert "application.ndjson" not in events["pc-01"] or not _msi(events["pc-01"]["application.ndjson"], "1033")

    for host in ("pc-02", "pc-03"):
        installed = _msi(events[host]["application.ndjson"], "1033")
        assert [(t[:10], v) for t, v in installed if v == "18.12.425"] == [("2023-04-05", "18.12.425")], host
        assert {v for t, v in _app_versions(events[host]["sysmon.ndjson"]) if t >= "2023-04-05T23"} == {"18.12.425"}, host
    # pc-02: a major upgrade over 18.11.1213 removes the old product first
    assert [(t[:10], v) for t, v in _msi(events["pc-02"]["application.ndjson"], "1034")] == [("2023-04-05", "18.11.1213")]


def test_aftermath_clean_builds_carry_no_indicator(runs) -> None:
    """18.12.422/425's exe, ffmpeg.dll and d3dcompiler_47.dll hashes are stand-ins, never in the pack."""
    folder, _ = runs["aftermath"]
    with PACK_IOCS.open(encoding="utf-8") as f:
        iocs = {line.split(",")[1].lower() for line in f if line.split(",")[0] in ("sha256", "sha1", "md5")}
    ffmpeg: dict[str, set[str]] = {}
    checked = 0
    for files in _events(folder).values():
        sysmon = files.get("sysmon.ndjson", [])
        clean = {d["ProcessGuid"]: d["FileVersion"] for _, d in _data(sysmon, "1")
                 if _is_app(d["Image"]) and d["FileVersion"] in ("18.12.422", "18.12.425")}
        rows = [d for _, d in _data(sysmon, "1") if d["ProcessGuid"] in clean]
        rows += [d for _, d in _data(sysmon, "7") if d["ProcessGuid"] in clean]
        checked += len(rows)
        for d in rows:
            digests = {part.split("=")[1].lower() for part in d["Hashes"].split(",")}
            assert not digests & iocs, d
            if d.get("ImageLoaded", "").endswith("\\ffmpeg.dll"):
                ffmpeg.setdefault(clean[d["ProcessGuid"]], set()).add(d["Hashes"])
    assert checked and set(ffmpeg) == {"18.12.422", "18.12.425"} and all(len(v) == 1 for v in ffmpeg.values())
    assert ffmpeg["18.12.422"] != ffmpeg["18.12.425"]  # each build ships its own ffmpeg.dll


def test_aftermath_cleaned_host(runs) -> None:
    """pc-03: 18.12.416 from 2023-03-13, uninstalled 2023-03-30, clean 18.12.425 by MSI on 2023-04-05."""
    folder, truth = runs["aftermath"]
    files = _events(folder)["pc-03"]
    h = next(h for h in truth["hosts"] if h["host"] == "pc-03")
    assert h["first_execution"].startswith("2023-03-13") and h["first_c2"] >= h["activation_eta"]
    app = files["application.ndjson"]
    assert [(t[:10], v) for t, v in _msi(app, "1034")] == [("2023-03-13", "18.11.1213"), ("2023-03-30", "18.12.416")]
    removal = [t for t, d in _data(app, "11724") if t.startswith("2023-03-30")]
    assert len(removal) == 1 and removal[0] < _msi(app, "1034")[1][0]
    sysmon = files["sysmon.ndjson"]
    uninstall = [t for t, d in _data(sysmon, "1") if d["CommandLine"].startswith("MsiExec.exe /X{")]
    assert len(uninstall) == 1 and uninstall[0].startswith("2023-03-30") and uninstall[0] < removal[0]
    versions = _app_versions(sysmon)
    assert max(t for t, v in versions if v == "18.12.416") < removal[0]
    assert not [t for t, v in versions if removal[0] < t < "2023-04-05"]  # no client between the two
    assert all(v == "18.12.425" for t, v in versions if t > removal[0])
    contacts = [(t, d["QueryName"]) for t, d in _data(sysmon, "22") if _is_app(d["Image"])
                and d["QueryName"] in C2_DOMAINS | {"raw.githubusercontent.com"}]
    assert contacts[0] == (contacts[0][0], "raw.githubusercontent.com") and contacts[0][0][:19] + "Z" == h["first_c2"]
    assert max(t for t, _ in contacts) < removal[0]
    # after the takedown the implant still fetches the dead drop, but learns no C2 from it
    assert any(t > GITHUB_TAKEDOWN for t, q in contacts if q == "raw.githubusercontent.com")
    assert all(t < GITHUB_TAKEDOWN for t, q in contacts if q in C2_DOMAINS)


def test_aftermath_late_activation_after_takedown(runs) -> None:
    """pc-04: first run 2023-03-28, machine off until 2023-04-18, then the dead drop is queried (too late)."""
    folder, truth = runs["aftermath"]
    files = _events(folder)["pc-04"]
    h = next(h for h in truth["hosts"] if h["host"] == "pc-04")
    assert h["first_execution"].startswith("2023-03-28")
    assert h["activation_eta"] < h["first_c2"] and h["first_c2"].startswith("2023-04-18")
    every = sorted(e["@timestamp"] for ev in files.values() for e in ev)
    assert not [t for t in every if "2023-03-29" <= t < "2023-04-18"]  # powered off
    sysmon = files["sysmon.ndjson"]
    queries = [(t, d["QueryName"]) for t, d in _data(sysmon, "22") if _is_app(d["Image"])]
    fetches = [t for t, q in queries if q == "raw.githubusercontent.com"]
    assert fetches and fetches[0][:19] + "Z" == h["first_c2"]
    assert not any(q in C2_DOMAINS for _, q in queries)
    assert not any(d in json.dumps(e) for e in sysmon for d in C2_DOMAINS)


# -- hand-written fixtures -------------------------------------------------------------------------------

@pytest.mark.parametrize("verdict", sorted(VERDICTS))
def test_verdict_fixture_is_well_formed(verdict: str) -> None:
    folder = FIXTURES / verdict
    expected = json.loads((folder / "expected.json").read_text(encoding="utf-8"))
    assert list(expected) == ["host", "verdict", "first_execution", "activation_eta", "first_c2"]
    assert expected["verdict"] == verdict
    if expected["first_execution"] is not None:
        assert _ts(expected["activation_eta"]) - _ts(expected["first_execution"]) == timedelta(days=7)
    files = sorted(p for p in folder.iterdir() if p.name != "expected.json")
    assert 1 <= len(files) <= 2
    for path in files:
        events = _load(path)
        assert 3 <= len(events) <= 10, path
        stamps = [e["@timestamp"] for e in events]
        assert stamps == sorted(stamps), path
        for e in events:
            name = e["host"]["name"] if "winlog" in e else e["Hostname"]
            assert name.split(".")[0].lower() == expected["host"], path
            data = e["winlog"]["event_data"] if "winlog" in e else e
            if "Hashes" in data:
                assert HASHES.match(data["Hashes"]), (path, data["Hashes"])
            if "winlog" in e and "UtcTime" in data:
                assert data["UtcTime"].replace(" ", "T") + "Z" == e["@timestamp"], path
        if "winlog" in events[0]:
            ids = [e["winlog"]["record_id"] for e in events]
            assert ids == list(range(ids[0], ids[0] + len(ids))), path
            assert all(all(isinstance(v, str) for v in e["winlog"]["event_data"].values()) for e in events)
    if verdict != "no-evidence":  # process telemetry over the exposure window, up to the collection day
        process = [e for p in files for e in _load(p)
                   if e.get("winlog", {}).get("channel") in ("Microsoft-Windows-Sysmon/Operational", "Security")
                   and e["winlog"]["event_id"] != "4624"]
        assert process[0]["@timestamp"] < "2022-11-12" and process[-1]["@timestamp"].startswith("2023-03-30")


def test_fixtures_cover_both_input_shapes() -> None:
    shapes = set()
    for path in FIXTURES.glob("*/*"):
        if path.name != "expected.json":
            shapes.add("winlogbeat" if "winlog" in _load(path)[0] else "otrf")
    assert shapes == {"winlogbeat", "otrf"}

