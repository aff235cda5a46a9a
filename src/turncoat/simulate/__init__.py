"""Evidence simulator: Winlogbeat NDJSON for an office hit (or not) by the March 2023 3CX compromise.

It gives the detection pipeline evidence whose truth is known: every scenario writes, per host, the
logs a collector would have shipped, plus `ground-truth.json` with each host's verdict and key times.
A scenario with an office network also writes `evidence/network/` (Zeek sensor, the DNS server's debug
log, the proxy's access log), consistent with the hosts' own events; a network-only scenario writes
nothing else. The `triage` scenario writes KAPE-style collections instead (simulate/triage.py). Output is deterministic (same arguments, same bytes): all randomness is seeded, nothing
reads the clock.

    from turncoat.simulate import simulate
    truth = simulate(Path("out"), scenario="office", scale=1, seed=7)
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from . import driftapp, netformats, network, scenarios, writer
from .clock import iso_s
from .host import simulate_host

#: Scenario name -> one-line description.
SCENARIOS: dict[str, str] = dict(scenarios.DESCRIPTIONS)
#: Scenarios that write triage collections (simulate/triage.py) instead of event logs.
TRIAGE_SCENARIOS: dict[str, str] = {
    "triage": ("KAPE triage collections of four hosts with no event logs (hives, Amcache, Prefetch, the 3CX app "
               "folder, Chrome profiles) and the office PBX's client update folder")}

#: Scenarios of a campaign no pack knows (simulate/driftapp.py): the same Winlogbeat and network evidence, but
#: their own app, calendar and ground truth (a scenario-level `generic_campaign`, seeded dormancy), so they are
#: kept out of `SCENARIOS`, whose shared tests check the 3CX ground truth.
GENERIC_SCENARIOS: dict[str, str] = {"driftapp": driftapp.DESCRIPTION}

__all__ = ["GENERIC_SCENARIOS", "SCENARIOS", "TRIAGE_SCENARIOS", "simulate"]


def simulate(out: Path, scenario: str = "office", scale: int = 1, seed: int = 7) -> dict[str, Any]:
    """Write `out/evidence/<host>/<channel>.ndjson`, `out/evidence/network/…` where the scenario has a
    network, and `out/ground-truth.json`; return the ground truth.

    `scale` N repeats the scenario's hosts N times under unique names (for benchmarks). Raises
    ValueError for an unknown scenario, and FileExistsError if `out/evidence` already holds files (a
    leftover host from another run would silently join the evidence).
    """
    if scenario in TRIAGE_SCENARIOS:
        from turncoat.simulate.triage import simulate_triage

        return simulate_triage(Path(out))
    if scenario in GENERIC_SCENARIOS:
        return driftapp.simulate_driftapp(Path(out), seed=seed, scale=scale)
    specs = scenarios.hosts(scenario, scale)
    span = scenarios.span(scenario)
    endpoint = scenarios.endpoint(scenario)
    out = Path(out)
    evidence = out / "evidence"
    if evidence.exists() and any(evidence.iterdir()):
        raise FileExistsError(f"{evidence} is not empty; simulate into a fresh folder")
    evidence.mkdir(parents=True, exist_ok=True)
    hosts = []
    with tempfile.TemporaryDirectory(prefix="turncoat-net-") as spool:
        office = (network.Office(Path(spool), specs, span, f"{seed}:{scenario}")
                  if scenarios.network(scenario) else None)
        for index, spec in enumerate(specs):  # one host at a time: memory stays flat whatever the scale
            net = office.host(index, spec) if office is not None else None
            result = simulate_host(spec, scenario, seed, index, span, net)
            if endpoint:
                writer.write_host(evidence, result.short, result.seed_key, result.events)
            host = result.truth
            if office is not None and net is not None:
                office.add(net)
                host = network.host_truth(host, net, endpoint)
            hosts.append(host)
        if office is not None:
            netformats.write_logs(evidence / "network", office.records(), span, f"{seed}:{scenario}")
    truth: dict[str, Any] = {
        "scenario": scenario,
        "seed": seed,
        "collection_end": iso_s(span.end),
        "hosts": sorted(hosts, key=lambda h: h["host"]),
    }
    if office is not None:
        truth["network"] = office.truth()
    writer.write_ground_truth(out / "ground-truth.json", truth)
    return truth
