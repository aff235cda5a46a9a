"""A RITA-style beacon score, written from RITA's documentation, to compare turncoat's engine against.

RITA (activecm/rita, GPL-3.0) is the reference open-source beacon hunter. No RITA code is used here:
the scoring is re-implemented from what its maintainers documented, so the formulas are RITA's and the
code is ours. Sources (all read through public pages and issue threads):

- v5 `default_config.hjson` (activecm/rita): four sub-scores with weight 0.25 each (timestamp, data
  size, duration, histogram); `unique_connection_threshold: 4`; `duration_min_hours_seen: 6`;
  `duration_consistency_ideal_hours_seen: 12`; `histogram_mode_sensitivity: 0.05`;
  `histogram_bimodal_outlier_removal: 1`; `histogram_bimodal_min_hours_seen: 11`;
  `score_thresholds: {base: 50, low: 70, medium: 90, high: 100}`. `docs/Configuration.md` says a
  score below `base` is "below the base threshold", so a RITA candidate is score >= 0.50 (the brief
  guessed 0.7: that is where RITA's "medium" band starts; both are reported by the harness).
- rita-legacy `pkg/beacon/README.md` ("Documented on May 24, 2022"): intervals are the differences of
  the sorted connection timestamps; dispersion = median absolute deviation (MAD) around the median;
  skew = Bowley, (Q1 - 2 Q2 + Q3) / (Q3 - Q1); skew score = 1 - |skew|; data-size "smallness" =
  max(1 - mode / 65535, 0); data sizes are the originator's bytes per connection.
- rita-legacy PR #69: Bowley skew is not used when Q2 equals Q1 or Q3 (a huge spike in the intervals:
  very beacon-like, so the skew score is 1). PR #792 refined that edge case; its rule is not in the text
  we could read, so #69's rule is kept.
- rita-legacy PR #742/#745: dispersion is scored relative to the median (the 2022 README's fixed 30 s /
  32 B divisors predate it), capped so it cannot go negative; the full timestamp list is used.
- rita-legacy PR #773: zero-second intervals are dropped from the timestamp score.
- rita-legacy PR #792: the connection-count part of the timestamp score is removed, so
  timestamp score = mean(skew score, dispersion score); data size score = mean(skew, dispersion,
  smallness).
- rita-legacy PR #774 (`bucket_divs`): the connection histogram has 24 equal buckets over the
  dataset's time span ("hours" of a 24-hour dataset).
- rita-legacy PR #742/#794: histogram score = max(CV score, bimodal fit); the CV is that of the 24
  bucket counts (score 1 - CV, floored at 0); the bimodal fit groups the non-zero bars into buckets of
  ceil(0.05 x the largest bar), adds the two largest groups and divides by (non-zero bars - 1), and is
  only used with at least 11 non-zero bars (v5 config; the PR said 10).
- rita-legacy PR #793: duration score = max(coverage, consistency); coverage = the pair's time span
  over the dataset's span; consistency = the longest run of consecutive non-empty buckets (wrapping
  around) over 12, only when more than 6 buckets are non-empty.

Calibration: RITA v5's own integration test (`integration/beacons_test.go`, copied in the shared data)
expects 10.136.0.18 -> www.honestimnotevil.com to score 0.979 (ts 0.921, ds 0.995, dur 1, hist 1) and
-> www.google.com 0.586 (ts 0.48, ds 0.865, dur 1, hist 0) on `test_data/proxy`, whose last 24 hours
RITA keeps. The google pair has only 6 connections in 6 buckets yet duration 1: v5 evidently computes
coverage without the 6-bucket gate, which is what this module does (the gate applies to consistency).
`python benchmarks/rita_baseline.py --check` recomputes both on the shared data.

Differences from RITA, on purpose: RITA scores one day (24 h) of traffic per dataset; here the formulas
run over the whole series, and the 24 buckets span the whole table given (a weeks-long table makes
each bucket longer than an hour). RITA's score modifiers (prevalence, first seen, threat intel) are
left out: they change RITA's threat ranking, not its beacon score.
"""

from __future__ import annotations

import argparse
import itertools
import math
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb

MIN_CONNECTIONS = 4          # unique_connection_threshold
CANDIDATE_SCORE = 0.50       # score_thresholds.base
MEDIUM_SCORE = 0.70          # score_thresholds.low (the "low" band ends here, "medium" starts)
BUCKETS = 24                 # one bucket per hour of RITA's 24-hour dataset
DURATION_MIN_BUCKETS = 6
CONSISTENCY_IDEAL_BUCKETS = 12
MODE_SENSITIVITY = 0.05
BIMODAL_OUTLIERS = 1
BIMODAL_MIN_BUCKETS = 11
SMALLNESS_BYTES = 65535
WEIGHTS = {"ts": 0.25, "ds": 0.25, "dur": 0.25, "hist": 0.25}


def quantile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolation quantile of an already sorted list (the common "type 7" definition)."""
    if not sorted_values:
        return math.nan
    pos = (len(sorted_values) - 1) * q
    low = math.floor(pos)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (pos - low)


def median(values: Sequence[float]) -> float:
    return quantile(sorted(values), 0.5)


def bowley_score(sorted_values: Sequence[float]) -> float:
    """1 - |Bowley skew|: a beacon's intervals (or sizes) sit symmetrically around their median.

    When the median equals a quartile the values are one big spike, which is what a beacon looks like;
    Bowley's ratio would call that maximal skew, so RITA (PR #69) scores it as symmetric."""
    q1, q2, q3 = (quantile(sorted_values, q) for q in (0.25, 0.5, 0.75))
    if q3 == q1 or q2 == q1 or q2 == q3:
        return 1.0
    return 1.0 - abs((q1 - 2 * q2 + q3) / (q3 - q1))


def dispersion_score(sorted_values: Sequence[float]) -> float:
    """1 - MAD / median, floored at 0: small spread relative to the typical value is beacon-like."""
    mid = quantile(sorted_values, 0.5)
    mad = median([abs(v - mid) for v in sorted_values])
    if mid <= 0:
        return 1.0 if mad == 0 else 0.0
    return max(0.0, 1.0 - mad / mid)


def smallness_score(sizes: Sequence[int]) -> float:
    """Beacons send little: the most common size against 64 KiB."""
    mode = Counter(sizes).most_common(1)[0][0]
    return max(0.0, 1.0 - mode / SMALLNESS_BYTES)


def timestamp_score(ts: Sequence[int]) -> float:
    """Mean of the skew and dispersion scores of the non-zero intervals (0 with none)."""
    ordered = sorted(ts)
    intervals = sorted(b - a for a, b in itertools.pairwise(ordered) if b > a)
    if not intervals:
        return 0.0
    return (bowley_score(intervals) + dispersion_score(intervals)) / 2


def datasize_score(sizes: Sequence[int | None]) -> float:
    """Mean of skew, dispersion and smallness of the originator's bytes (0 when no sizes are known)."""
    known = sorted(s for s in sizes if s is not None)
    if not known:
        return 0.0
    return (bowley_score(known) + dispersion_score(known) + smallness_score(known)) / 3


def histogram(ts: Sequence[int], start: float, end: float, buckets: int = BUCKETS) -> list[int]:
    """Connection counts in `buckets` equal slices of the dataset's span."""
    counts = [0] * buckets
    width = (end - start) / buckets
    for t in ts:
        i = buckets - 1 if width <= 0 else int((t - start) / width)
        counts[min(max(i, 0), buckets - 1)] += 1
    return counts


def cv_score(counts: Sequence[int]) -> float:
    """1 - coefficient of variation of the bucket counts: a flat line of connections is beacon-like."""
    mean = sum(counts) / len(counts)
    if mean == 0:
        return 0.0
    sd = math.sqrt(sum((c - mean) ** 2 for c in counts) / len(counts))
    return max(0.0, 1.0 - sd / mean)


def bimodal_score(counts: Sequence[int]) -> float:
    """Share of non-empty buckets in the two most common count levels (tolerant to jitter), for
    beacons that alternate between two rates; only with enough non-empty buckets to mean anything."""
    bars = [c for c in counts if c > 0]
    if len(bars) < BIMODAL_MIN_BUCKETS:
        return 0.0
    width = math.ceil(max(bars) * MODE_SENSITIVITY)
    groups = sorted(Counter(c // width for c in bars).values(), reverse=True)
    top = sum(groups[:2])
    return min(1.0, top / max(1, len(bars) - BIMODAL_OUTLIERS))


def histogram_score(counts: Sequence[int]) -> float:
    return max(cv_score(counts), bimodal_score(counts))


def longest_run(counts: Sequence[int]) -> int:
    """Longest run of consecutive non-empty buckets, wrapping from the last bucket to the first."""
    if all(c > 0 for c in counts):
        return len(counts)
    best = run = 0
    for c in list(counts) * 2:
        run = run + 1 if c > 0 else 0
        best = max(best, run)
    return min(best, len(counts))


def duration_score(ts: Sequence[int], counts: Sequence[int], start: float, end: float) -> float:
    """max(coverage of the dataset's span, consistency of the hourly presence)."""
    span = end - start
    coverage = 1.0 if span <= 0 else min(1.0, (max(ts) - min(ts)) / span)
    seen = sum(1 for c in counts if c > 0)
    consistency = 0.0
    if seen > DURATION_MIN_BUCKETS:
        consistency = min(1.0, longest_run(counts) / CONSISTENCY_IDEAL_BUCKETS)
    return max(coverage, consistency)


def score_pair(ts: Sequence[int], sizes: Sequence[int | None], start: float, end: float) -> dict[str, float]:
    """The four sub-scores and their weighted sum for one (host, destination)."""
    counts = histogram(ts, start, end)
    parts = {"ts": timestamp_score(ts), "ds": datasize_score(sizes),
             "dur": duration_score(ts, counts, start, end), "hist": histogram_score(counts)}
    parts["score"] = sum(WEIGHTS[k] * v for k, v in parts.items())
    return {k: round(v, 4) for k, v in parts.items()}


def rita_scores(con: duckdb.DuckDBPyConnection, contacts: str, *, min_connections: int = MIN_CONNECTIONS,
                span: tuple[float, float] | None = None) -> list[dict[str, Any]]:
    """Every (host, destination) of `contacts` with at least `min_connections` rows, scored, best first.

    `contacts` has `host`, `destination`, `ts` (TIMESTAMPTZ) and `bytes`; the dataset's span is the
    table's first and last timestamp unless `span` (epoch seconds) is given. Timestamps are whole
    seconds, as RITA keeps them."""
    if span is None:
        span = con.execute(f"SELECT epoch(min(ts)), epoch(max(ts)) FROM {contacts}").fetchall()[0]
    start, end = float(span[0]), float(span[1])
    rows = con.execute(f"""
        SELECT host, lower(rtrim(destination, '.')) AS dest, list(CAST(floor(epoch(ts)) AS BIGINT)),
               list(bytes), count(*), min(ts), max(ts)
        FROM {contacts} WHERE host IS NOT NULL AND destination IS NOT NULL AND ts IS NOT NULL
        GROUP BY host, dest HAVING count(*) >= ?""", [int(min_connections)]).fetchall()
    out = []
    for host, dest, ts, sizes, count, first, last in rows:
        parts = score_pair(ts, sizes, start, end)
        out.append({"host": host, "destination": dest, "score": parts["score"], "count": count,
                    "first_seen": first, "last_seen": last, "ts_score": parts["ts"], "ds_score": parts["ds"],
                    "dur_score": parts["dur"], "hist_score": parts["hist"],
                    "candidate": parts["score"] >= CANDIDATE_SCORE})
    out.sort(key=lambda r: (-r["score"], r["host"], r["destination"]))
    return out


def rita_daily_scores(con: duckdb.DuckDBPyConnection, contacts: str, *, window_s: int = 86400,
                      min_connections: int = MIN_CONNECTIONS) -> list[dict[str, Any]]:
    """RITA as deployed: one dataset per day (its rolling 24-hour import), each pair scored within each
    day against that day's span, and kept at its best day. A pair never reaching `min_connections` in
    one day is not scored, as in RITA; `count` is the whole series' connection count."""
    windows = con.execute(f"""
        SELECT floor(epoch(ts) / {int(window_s)}) AS w, epoch(min(ts)), epoch(max(ts))
        FROM {contacts} WHERE ts IS NOT NULL GROUP BY w ORDER BY w""").fetchall()
    best: dict[tuple[str, str], dict[str, Any]] = {}
    for w, start, end in windows:
        con.execute(f"""CREATE OR REPLACE TEMP VIEW _rita_day AS SELECT * FROM {contacts}
                        WHERE floor(epoch(ts) / {int(window_s)}) = {int(w)}""").fetchall()
        for row in rita_scores(con, "_rita_day", min_connections=min_connections, span=(start, end)):
            key = (row["host"], row["destination"])
            if key not in best or row["score"] > best[key]["score"]:
                best[key] = row
    totals = {(h, d): (n, first, last) for h, d, n, first, last in con.execute(f"""
        SELECT host, lower(rtrim(destination, '.')), count(*), min(ts), max(ts) FROM {contacts}
        GROUP BY ALL""").fetchall()}
    out = []
    for key, row in best.items():
        n, first, last = totals[key]
        out.append({**row, "count": n, "first_seen": first, "last_seen": last})
    out.sort(key=lambda r: (-r["score"], r["host"], r["destination"]))
    return out


def _check(proxy: Path) -> None:
    """Score RITA's labelled proxy capture (last 24 h, as RITA keeps) and print the expected values."""
    import tempfile

    from turncoat import pipeline
    from turncoat.store.case import Case

    with tempfile.TemporaryDirectory() as tmp:
        pipeline.ingest([proxy], Path(tmp) / "case")
        con = Case(Path(tmp) / "case").connect(read_only=True)
        con.execute("""
            CREATE TEMP VIEW contacts AS
            WITH names AS (
              SELECT uid, any_value("tls.client.server_name") AS n FROM net_tls GROUP BY uid
              UNION ALL SELECT uid, any_value("url.domain") FROM net_http GROUP BY uid),
            one AS (SELECT uid, any_value(n) AS n FROM names WHERE n IS NOT NULL GROUP BY uid)
            SELECT f."source.ip" AS host, coalesce(one.n, f."destination.ip") AS destination,
                   NULL::VARCHAR AS process, f."@timestamp" AS ts, f."source.bytes" AS bytes
            FROM net_flow f LEFT JOIN one USING (uid)
            WHERE f."@timestamp" >= (SELECT max("@timestamp") - INTERVAL 24 HOUR FROM net_flow)""")
        for row in rita_scores(con, "contacts")[:5]:
            print({k: row[k] for k in ("host", "destination", "count", "score", "ts_score", "ds_score",
                                       "dur_score", "hist_score")})
    print("RITA v5 expects: honestimnotevil 357 conns 0.979 (ts .921 ds .995 dur 1 hist 1); "
          "google 6 conns 0.586 (ts .48 ds .865 dur 1 hist 0)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", type=Path, nargs="?",
                        const=Path(__file__).resolve().parents[2] / "shared/data/zeek/rita/test_data/proxy",
                        help="score RITA's proxy test capture and print RITA's expected scores")
    args = parser.parse_args()
    if args.check:
        _check(args.check)
    else:
        parser.print_help()
