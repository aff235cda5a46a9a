"""Sigma over network evidence: proxy, DNS, firewall and Zeek targets with their field names, hits
attributed to the host that had the address, and SigmaHQ's network rules converting and running over
the shared Zeek, DNS and proxy samples."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from conftest import shared
from turncoat import pipeline
from turncoat.detect.sigma.engine import Filters
from turncoat.detect.sigma.rules import load_rules


@pytest.fixture(scope="module")
def office(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The simulated office seen from its network only (Zeek, DNS server log, TLS-inspecting proxy)."""
    out = tmp_path_factory.mktemp("sigma-net")
    truth = pipeline.simulate(out / "sim", "netonly", 1, 7)
    zone = truth.get("network", {}).get("time_zone")
    pipeline.ingest([out / "sim" / "evidence"], out / "case", source_tz={"*": zone} if zone else None)
    return out / "case"


def _run(case: Path, tmp: Path, logsource: str, detection: str) -> list[dict]:
    path = tmp / "rule.yml"
    text = ("title: network test\nid: 6b0b1c2d-0000-4000-8000-000000000001\nstatus: test\nlevel: high\n"
            f"logsource:\n    {logsource}\ndetection:\n{textwrap.indent(textwrap.dedent(detection), '    ')}")
    path.write_text(text, encoding="utf-8")
    ruleset = load_rules([path], cache=False)
    assert not ruleset.unconverted, ruleset.unconverted
    rows, _ = pipeline.sigma_search(case, ruleset, Filters())
    return rows


def test_proxy_rules_see_inspected_urls_and_user_agents(office: Path, tmp_path: Path) -> None:
    rows = _run(office, tmp_path, "category: proxy", """\
        sel:
            cs-host: raw.githubusercontent.com
            c-uri|contains: '/IconStorages/images/'
            c-uri-extension: ico
            c-useragent|contains: '3CXDesktopApp'
        condition: sel""")
    assert rows and {r["host"] for r in rows} == {"wks-08"}  # attributed from the proxy's client address
    assert all(r["record_id"] is None and r["line"] for r in rows)


def test_dns_and_zeek_targets(office: Path, tmp_path: Path) -> None:
    generic = _run(office, tmp_path, "category: dns", """\
        sel:
            query: msstorageazure.com
        condition: sel""")
    zeek = _run(office, tmp_path, "product: zeek\n    service: dns", """\
        sel:
            query: msstorageazure.com
        condition: sel""")
    assert zeek and len(generic) >= len(zeek)  # the generic category also reads the DNS server's log
    assert {r["target"] for r in zeek} == {"zeek/dns"}
    conn = _run(office, tmp_path, "product: zeek\n    service: conn", """\
        sel:
            id.resp_p: 443
            proto: tcp
        condition: sel""")
    assert conn and all(r["target"] == "zeek/conn" for r in conn)


def test_sigmahq_network_rules_convert_and_run_on_shared_samples(tmp_path: Path) -> None:
    rules = [shared("sigma", "rules", "network"), shared("sigma", "rules", "web")]
    ruleset = load_rules(rules, cache=False)
    assert len(ruleset.rules) >= 45
    for item in ruleset.unconverted:  # only the Zeek logs turncoat does not store row by row
        assert "does not store its rows" in item.reason, item
    case = tmp_path / "case"
    pipeline.ingest([shared("zeek"), shared("dns"), shared("proxy")], case)
    rows, searched = pipeline.sigma_search(case, ruleset, Filters())
    assert searched > 10_000  # the rules really read the network tables
    assert all(r["target"] in {"dns", "proxy", "firewall"} or r["target"].startswith("zeek/") for r in rows)
