"""Shared fixtures: where the team's real third-party data lives, and cases built from it once."""

from __future__ import annotations

from pathlib import Path

import pytest

from turncoat import pipeline

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def shared(*parts: str) -> Path:
    path = SHARED.joinpath(*parts)
    if not path.exists():
        pytest.skip(f"shared data not found at {path}")
    return path


def _hunted(factory: pytest.TempPathFactory, name: str, evidence: Path) -> Path:
    case = factory.mktemp(name)
    pipeline.ingest([evidence], case)
    pipeline.detect(case, None)
    pipeline.assess(case, None)
    return case


@pytest.fixture(scope="session")
def evtx_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole shared EVTX corpus hunted once: ingest, detect, assess."""
    return _hunted(tmp_path_factory, "evtx-case", shared("evtx"))


@pytest.fixture(scope="session")
def ndjson_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shared JSON exports (OTRF, Elastic) hunted once."""
    return _hunted(tmp_path_factory, "ndjson-case", shared("ndjson"))
