"""The IOC-free mode end to end: a fictional vendor's trojanized update that no pack knows is found by
its drift, dormancy and beacons — on every host that ran the bad build, on no clean host — and flagged
soon after its first beacon when the evidence is cut off early."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pytest

from turncoat import pipeline
from turncoat.simulate import simulate

GENERIC = "generic:Parrotfish Software Ltd/Parrotfish Desk/4.3.0"


def _ts(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture(scope="module")
def driftapp(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, dict, Path]:
    out = tmp_path_factory.mktemp("driftapp")
    truth = simulate(out, scenario="driftapp")
    case = out / "case"
    pipeline.ingest([out / "evidence"], case)
    pipeline.detect(case, None)
    return truth, pipeline.assess(case, None), out


def _generic(host: dict) -> dict | None:
    return next((c for c in host["campaigns"] if c["campaign"] == GENERIC), None)


def test_every_host_that_ran_the_drifted_build_is_flagged_and_no_clean_one(driftapp) -> None:
    truth, report, _ = driftapp
    hosts = {h["host"]: h for h in report["hosts"]}
    assert truth["generic_campaign"]["id"] == GENERIC
    for expected in truth["hosts"]:
        campaign = _generic(hosts[expected["host"]])
        if expected["verdict"] == "not-affected":
            assert campaign is None, expected["host"]
            continue
        assert campaign is not None and campaign["stage"] == expected["verdict"], (expected["host"], campaign)
        assert campaign["confidence"] in ("low", "medium")
        assert hosts[expected["host"]]["verdict"] == expected["verdict"]


def test_beacons_of_the_implant_are_ranked_with_their_rhythm(driftapp) -> None:
    truth, report, _ = driftapp
    c2 = truth["generic_campaign"]["c2"]["domain"]
    hosts = {h["host"]: h for h in report["hosts"]}
    for expected in truth["hosts"]:
        if expected["verdict"] not in ("c2-contact", "payload"):
            continue
        series = [b for b in hosts[expected["host"]]["beacons"] if b["destination"] == c2]
        assert series and abs(series[0]["period_s"] - 900) < 90, expected["host"]
        rules = {e["rule_id"] for e in hosts[expected["host"]]["evidence"]}
        assert "generic:drift:module-signature" in rules


def _cut(evidence: Path, target: Path, cutoff: datetime) -> None:
    """A copy of the host logs with only the events before `cutoff` (the case as collected then)."""
    for path in evidence.rglob("*.ndjson"):
        kept = [line for line in path.read_bytes().splitlines()
                if line.strip() and _ts(orjson.loads(line)["@timestamp"]) <= cutoff]
        dest = target / path.relative_to(evidence)
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(b"\n".join(kept) + b"\n")


def test_a_beaconing_host_is_flagged_within_six_periods_of_its_first_beacon(driftapp, tmp_path: Path) -> None:
    truth, _, out = driftapp
    host = min((h for h in truth["hosts"] if h["verdict"] == "c2-contact"), key=lambda h: h["first_c2"])
    first = _ts(host["first_c2"])
    deadline = first + max(timedelta(hours=1), 6 * timedelta(seconds=900))
    stages = {}
    for label, cutoff in (("before", first - timedelta(minutes=1)), ("after", deadline)):
        evidence = tmp_path / label
        _cut(out / "evidence", evidence, cutoff)
        case = tmp_path / f"case-{label}"
        pipeline.ingest([evidence], case)
        pipeline.detect(case, None)
        report = pipeline.assess(case, None)
        campaign = _generic(next(h for h in report["hosts"] if h["host"] == host["host"]))
        stages[label] = campaign["stage"] if campaign else None
    assert stages["before"] in (None, "armed-dormant")
    assert stages["after"] == "c2-contact"


def test_the_report_shows_what_the_build_changed(driftapp) -> None:
    from turncoat.report.html import render_html

    _, report, _ = driftapp
    campaign = next(c for c in report["campaigns"] if c["id"] == GENERIC)
    modules = {c["name"]: c for c in campaign["changes"] if c["kind"] == "signature"}
    assert "signed by Parrotfish Software Ltd" in modules["pdmedia.dll"]["before"]
    assert "unsigned" in modules["pdmedia.dll"]["after"]
    assert "pdcore.dll" not in modules  # an ordinary update: new hash, same valid signer
    assert any(c["kind"] == "destination" and c["name"] == "parrot-cdn-sync.example" for c in campaign["changes"])
    page = render_html(report, lang="fr")
    assert "Ce que la nouvelle version a changé" in page and "pdmedia.dll" in page
