"""Beacon scoring: rhythm found through jitter, missed beats, slow timers and sleeping machines;
random traffic and bad input stay low; the labelled C2 channels of real captures rank first."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb
import pytest
from conftest import shared

from turncoat import pipeline
from turncoat.detect.beacon import CANDIDATE_SCORE, beacon_candidates
from turncoat.detect.contacts import contacts_sql
from turncoat.store.case import Case

START = datetime(2023, 3, 1, tzinfo=UTC)


def _table(rows: list[tuple]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("CREATE TABLE c (host VARCHAR, destination VARCHAR, process VARCHAR, ts TIMESTAMPTZ, bytes BIGINT)")
    if rows:
        con.executemany("INSERT INTO c VALUES (?, ?, ?, ?, ?)", rows)
    return con


def _beacon(rng: random.Random, host: str, dest: str, period: float, jitter: float, omit: float, beats: int,
            size: int = 400, off_hours: bool = False) -> list[tuple]:
    rows, t = [], 0.0
    for _ in range(beats):
        t += period * (1 + rng.uniform(-jitter, jitter))
        when = START + timedelta(seconds=t)
        if rng.random() < omit or (off_hours and not 8 <= when.hour < 18):
            continue
        rows.append((host, dest, "app.exe", when, size + rng.randint(-8, 8)))
    return rows


def _random(rng: random.Random, host: str, dest: str, mean: float, n: int) -> list[tuple]:
    rows, t = [], 0.0
    for _ in range(n):
        t += rng.expovariate(1 / mean)
        rows.append((host, dest, None, START + timedelta(seconds=t), rng.randint(200, 90_000)))
    return rows


def _scores(rows: list[tuple]) -> dict[str, dict]:
    return {r["destination"]: r for r in beacon_candidates(_table(rows), "c", limit=None)}


@pytest.mark.parametrize(("period", "jitter", "omit"), [
    (60, 0.0, 0.0), (60, 0.3, 0.5), (300, 0.3, 0.0), (900, 0.1, 0.5), (3600, 0.3, 0.25), (6 * 3600, 0.3, 0.5)])
def test_beacons_are_candidates_through_jitter_and_missed_beats(period: float, jitter: float, omit: float) -> None:
    rng = random.Random(period)
    beats = max(40, int(30 / (1 - omit)))
    found = _scores(_beacon(rng, "h1", "c2.example", period, jitter, omit, beats))["c2.example"]
    assert found["candidate"], found
    assert abs(found["period_s"] - period) / period < 0.2  # 30 % jitter over ~30 intervals
    assert found["count"] >= 12


def test_slow_beacon_and_a_machine_that_sleeps_at_night() -> None:
    rng = random.Random(3)
    rows = _beacon(rng, "h1", "daily.example", 86_400, 0.1, 0.2, 30)
    rows += _beacon(rng, "h2", "office-hours.example", 300, 0.2, 0.2, 12 * 24 * 14, off_hours=True)
    scores = _scores(rows)
    assert scores["daily.example"]["candidate"]
    office = scores["office-hours.example"]
    assert office["candidate"] and office["gaps"] >= 10  # nights are gaps, not missed beats


def test_random_traffic_is_not_a_candidate_and_count_does_not_raise_the_score() -> None:
    rng = random.Random(7)
    rows = [r for i in range(30) for r in _random(rng, "h9", f"site{i}.example", 600, 150)]
    assert not [r for r in _scores(rows).values() if r["candidate"]]
    short = _scores(_beacon(random.Random(1), "h1", "c2.example", 300, 0.1, 0.0, 30))["c2.example"]["score"]
    long = _scores(_beacon(random.Random(1), "h1", "c2.example", 300, 0.1, 0.0, 3000))["c2.example"]["score"]
    assert long <= short + 0.05


def test_prevalence_is_reported_not_discounted() -> None:
    rng = random.Random(5)
    rows = [r for h in range(8) for r in _beacon(rng, f"h{h}", "fleet-c2.example", 600, 0.2, 0.2, 60)]
    found = [r for r in beacon_candidates(_table(rows), "c", limit=None) if r["destination"] == "fleet-c2.example"]
    assert len(found) == 8 and all(r["candidate"] and r["hosts_sharing"] == 8 for r in found)


def test_bad_series_give_no_crash_and_no_candidate() -> None:
    rows = [("h", "one.example", None, START, 10)]                                        # one event
    rows += [("h", "same.example", None, START, 10)] * 50                                # identical times
    rows += [("h", "jump.example", None, START + timedelta(days=d * 400), 1) for d in range(8)]  # clock jumps
    rows += [("h", "back.example", None, START - timedelta(seconds=s * 60), 1) for s in range(30)]  # out of order
    rows += [("h", f"fan{i}.example", None, START + timedelta(seconds=i), 1) for i in range(5000)]  # fan-out
    rows += [("h", "nulls.example", None, None, None)] * 10 + [(None, "x", None, START, 1)]
    scores = _scores(rows)
    assert "one.example" not in scores and "same.example" not in scores
    assert scores["back.example"]["candidate"]  # out of order is still a minute timer
    assert all(0.0 <= r["score"] <= 1.0 for r in scores.values())
    assert _scores([]) == {}


@pytest.mark.parametrize(("capture", "client", "destination"), [
    (("zeek", "rita", "test_data", "proxy"), "10.136.0.18", "www.honestimnotevil.com"),
    (("zeek", "slips"), "192.168.1.107", "66.63.168.35"),
    (("zeek", "otrf-apt29"), "10.0.1.6", "192.168.0.4"),
])
def test_labelled_real_c2_channels_rank_first(tmp_path: Path, capture: tuple[str, ...], client: str,
                                              destination: str) -> None:
    folder = shared(*capture)
    if capture[1] == "slips":
        folder = next(folder.rglob("test18-malicious-ctu-sme-11-win"))
    pipeline.ingest([folder], tmp_path / "case")
    con = Case(tmp_path / "case").connect()
    try:
        con.execute(f"CREATE TEMP VIEW bc AS {contacts_sql(con)}")
        ranked = [r for r in beacon_candidates(con, "bc") if r["suppressed_by"] is None]
    finally:
        con.close()
    top = [(r["host"], r["destination"]) for r in ranked[:3]]
    assert (f"ip:{client}", destination) in top, ranked[:5]
    assert ranked[0]["score"] >= CANDIDATE_SCORE
