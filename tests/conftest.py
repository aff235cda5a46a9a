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


@pytest.fixture(scope="session")
def evtx_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The whole shared EVTX corpus hunted once: ingest, detect, assess."""
    case = tmp_path_factory.mktemp("evtx-case")
    pipeline.ingest([shared("evtx")], case)
    pipeline.detect(case, None)
    pipeline.assess(case, None)
    return case


@pytest.fixture(scope="session")
def ndjson_case(tmp_path_factory: pytest.TempPathFactory) -> Path:
    case = tmp_path_factory.mktemp("ndjson-case")
    pipeline.ingest([shared("ndjson")], case)
    pipeline.detect(case, None)
    pipeline.assess(case, None)
    return case
