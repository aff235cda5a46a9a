"""SigmaHQ's eight upstream 3CX rules and the pack's own Sigma rules on simulated offices.

Upstream rules must fire on the compromised hosts and on no clean host, except their known false
positives — the execution rule's `FileVersion|contains: '18.12.'` on clean 18.12.422/425 clients, and
the update rule on any update through the 18.12 channel — which the report labels. The pack's own
rules must never fire on a clean host.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import shared
from turncoat import pipeline

UPSTREAM = {
    "bd03a0dc-5d93-49eb-b2e8-2dfd268600f8", "d0b65ad3-e945-435e-a7a9-438e62dd48e9",
    "51eecf75-d069-43c7-9ea2-63f75499edd4", "93bbde78-dc86-4e73-9ffc-ff8a384ca89c",
    "63f3605b-979f-48c2-b7cc-7f90523fed88", "e7581747-1e44-4d4b-85a6-0db0b4a00f2a",
    "3c4b3bbf-36b4-470c-b6cf-f07e8b1c7e26", "76bc1601-9546-4b75-9419-06e0e8d10651",
}
CLEAN = ("not-affected", "no-evidence", "vulnerable-installed")
_RUNS: dict[str, tuple[dict, dict, Path]] = {}


def _hunt(name: str, factory: pytest.TempPathFactory) -> tuple[dict, dict, Path]:
    if name not in _RUNS:
        rules = shared("sigma", "rules-emerging-threats", "2023", "TA", "3CX-Supply-Chain")
        out = factory.mktemp(f"sigma-3cx-{name}")
        truth = pipeline.simulate(out / "sim", name, 1, 7)
        zone = truth.get("network", {}).get("time_zone")
        pipeline.ingest([out / "sim" / "evidence"], out / "case", source_tz={"*": zone} if zone else None)
        pipeline.detect(out / "case", None, [rules])
        _RUNS[name] = (truth, pipeline.assess(out / "case", None), out / "case")
    return _RUNS[name]


@pytest.mark.parametrize("scenario", ["office", "clean", "aftermath"])
def test_upstream_rules_fire_on_compromised_hosts_only(scenario: str,
                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    truth, report, _ = _hunt(scenario, tmp_path_factory)
    expected = {h["host"]: h["verdict"] for h in truth["hosts"]}
    for host in report["hosts"]:
        upstream = [s for s in host["sigma"] if s["rule_id"] in UPSTREAM]
        pack = [s for s in host["sigma"] if s["source"] == "pack:3cx-2023"]
        if expected[host["host"]] in CLEAN:
            assert not pack, (host["host"], pack)
            for hit in upstream:  # only the labelled false positives of the upstream rules
                assert hit["note"] and hit["note_fr"], (host["host"], hit)
                assert hit["false_positive"] or hit["rule_id"] == "e7581747-1e44-4d4b-85a6-0db0b4a00f2a"
        else:
            real = [s for s in upstream if not s["false_positive"]]
            assert real, (host["host"], host["sigma"])
            assert pack, host["host"]


def test_every_upstream_rule_fires_somewhere(tmp_path_factory: pytest.TempPathFactory) -> None:
    fired = set()
    for scenario in ("office", "aftermath"):
        _, report, _ = _hunt(scenario, tmp_path_factory)
        fired |= {s["rule_id"] for h in report["hosts"] for s in h["sigma"] if not s["false_positive"]}
    assert UPSTREAM <= fired, UPSTREAM - fired


def test_false_positive_of_the_version_rule_is_labelled(tmp_path_factory: pytest.TempPathFactory) -> None:
    _, report, case = _hunt("aftermath", tmp_path_factory)
    hosts = {h["host"]: h for h in report["hosts"]}
    labelled = [s for s in hosts["pc-01"]["sigma"] if s["rule_id"] == "93bbde78-dc86-4e73-9ffc-ff8a384ca89c"]
    assert labelled and all(s["false_positive"] and "false positive" in s["note"] for s in labelled)
    assert "Faux positif" in labelled[0]["note_fr"]
    written = pipeline.write_reports(case, report, formats="html", lang="en", tz="UTC", detail=False, redact=False)
    html = next(p for p in written if p.suffix == ".html").read_text(encoding="utf-8")
    assert "Sigma detections" in html and "Known false positive" in html
