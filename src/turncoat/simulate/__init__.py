"""Evidence simulator: Winlogbeat NDJSON for an office hit (or not) by the March 2023 3CX compromise.

It gives the detection pipeline evidence whose truth is known: every scenario writes, per host, the
logs a collector would have shipped, plus `ground-truth.json` with each host's verdict and key times.
Output is deterministic (same arguments, same bytes): all randomness is seeded, nothing reads the clock.

    from turncoat.simulate import simulate
    truth = simulate(Path("out"), scenario="office", scale=1, seed=7)
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from . import scenarios, writer
from .clock import iso_s
from .host import simulate_host

#: Scenario name -> one-line description.
SCENARIOS: dict[str, str] = dict(scenarios.DESCRIPTIONS)

__all__ = ["SCENARIOS", "simulate"]


def simulate(out: Path, scenario: str = "office", scale: int = 1, seed: int = 7) -> dict[str, Any]:
    """Write `out/evidence/<host>/<channel>.ndjson` and `out/ground-truth.json`; return the ground truth.

    `scale` N repeats the scenario's hosts N times under unique names (for benchmarks). Raises
    ValueError for an unknown scenario, and FileExistsError if `out/evidence` already holds files (a
    leftover host from another run would silently join the evidence).
    """
    specs = scenarios.hosts(scenario, scale)
    span = scenarios.span(scenario)
    out = Path(out)
    evidence = out / "evidence"
    if evidence.exists() and any(evidence.iterdir()):
        raise FileExistsError(f"{evidence} is not empty; simulate into a fresh folder")
    evidence.mkdir(parents=True, exist_ok=True)
    hosts = []
    for index, spec in enumerate(specs):  # one host at a time: memory stays flat whatever the scale
        result = simulate_host(spec, scenario, seed, index, span)
        writer.write_host(evidence, result.short, result.seed_key, result.events)
        hosts.append(result.truth)
    truth = {
        "scenario": scenario,
        "seed": seed,
        "collection_end": iso_s(span.end),
        "hosts": sorted(hosts, key=lambda h: h["host"]),
    }
    writer.write_ground_truth(out / "ground-truth.json", truth)
    return truth
