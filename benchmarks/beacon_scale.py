"""Beacon analysis at scale: the whole scoring over N generated connection rows (Parquet), against a
plain `SELECT host, dest, count(*), min(ts), max(ts) … GROUP BY ALL` over the same rows.

    python benchmarks/beacon_scale.py --rows 100000000 --dir /data/bench     # generate once, then time
    python benchmarks/beacon_scale.py --dir /data/bench --run beacons          # one side (what an external timer runs)

The rows look like an office's connection logs over 30 days: 2,000 client addresses, 50,000
destinations with a long-tailed popularity at random times, and injected beacons
(one per hundred hosts, periods 1 min – 6 h, 20 % jitter, 30 % missed beats). Both sides open DuckDB
as the beacon analysis runs in a case (its memory limit while scoring, a spill folder, no insertion
order), so the comparison is the one a user's case would see. The timing itself is done from outside, whole process, min/median/max,
with the two commands alternated: see `--print-command`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from turncoat.detect.beacon import SCORING_MEMORY_LIMIT, beacon_candidates

HOSTS = 2_000
DESTINATIONS = 50_000
DAYS = 30


def connect(folder: Path) -> duckdb.DuckDBPyConnection:
    """A connection configured like a case's (store/case.py and store/views.py)."""
    # both sides get the memory the beacon analysis gives itself (detect/beacon.py): at the case's
    # default limit even the plain GROUP BY of 70M series runs out of memory
    con = duckdb.connect(config={"memory_limit": SCORING_MEMORY_LIMIT, "temp_directory": str(folder / "spill")})
    con.execute("SET preserve_insertion_order = false")
    con.execute("SET enable_progress_bar = false")
    return con


def generate(folder: Path, rows: int) -> Path:
    """`conn.parquet` with `rows` background rows plus the injected beacons (reused if present)."""
    target = folder / f"conn-{rows}.parquet"
    if target.exists():
        return target
    folder.mkdir(parents=True, exist_ok=True)
    con = connect(folder)
    con.execute("SELECT setseed(0.42)")
    start = "TIMESTAMPTZ '2023-03-01 00:00:00+00'"
    # background: connections at random times; destination popularity is long-tailed (x^4 of a uniform)
    background = f"""
        SELECT 'ip:10.' || (h // 250) || '.' || (h % 250) || '.1' AS host,
               'site' || CAST(floor(pow(random(), 4) * {DESTINATIONS}) AS BIGINT) || '.example' AS destination,
               NULL::VARCHAR AS process,
               {start} + to_microseconds(CAST(floor(random() * {DAYS} * 86400 * 1e6) AS BIGINT)) AS ts,
               CAST(200 + random() * 50000 AS BIGINT) AS bytes
        FROM (SELECT CAST(floor(random() * {HOSTS}) AS INTEGER) AS h FROM range({rows}))"""
    beacons = f"""
        SELECT 'ip:10.' || (h // 250) || '.' || (h % 250) || '.1', 'c2-' || h || '.example', NULL,
               {start} + to_microseconds(CAST(floor(t * 1e6) AS BIGINT)), 400
        FROM (SELECT h, period, n, sum(period * (0.8 + random() * 0.4)) OVER (PARTITION BY h ORDER BY n) AS t
              FROM (SELECT h, [60, 300, 900, 3600, 21600][1 + h % 5] AS period, n
                    FROM range(0, {HOSTS}, 100) AS hs(h), range(0, 2000) AS ns(n)))
        WHERE random() > 0.3 AND t < {DAYS} * 86400"""
    con.execute(f"COPY ({background} UNION ALL {beacons}) TO '{target.as_posix()}' (FORMAT parquet)")
    con.close()
    return target


def run(folder: Path, rows: int, side: str) -> None:
    con = connect(folder)
    con.execute(f"CREATE VIEW conn AS SELECT * FROM read_parquet('{(folder / f'conn-{rows}.parquet').as_posix()}')")
    began = time.perf_counter()
    if side == "groupby":
        # the aggregate is computed in full; only its size comes back (7M tuples into Python would
        # time Python, not the query)
        n = con.execute("SELECT count(*) FROM (SELECT host, destination, count(*), min(ts), max(ts) "
                        "FROM conn GROUP BY ALL)").fetchall()[0][0]
        print(f"groupby: {n} series in {time.perf_counter() - began:.1f} s")
    else:
        found = beacon_candidates(con, "conn", limit=1000, histograms=False)
        injected = sum(1 for r in found if r["candidate"] and r["destination"].startswith("c2-"))
        false = sum(1 for r in found if r["candidate"] and not r["destination"].startswith("c2-"))
        print(f"beacons: {len(found)} ranked, {injected} of {HOSTS // 100} injected found, {false} other candidates, "
              f"in {time.perf_counter() - began:.1f} s")
    con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000_000)
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "turncoat-bench-beacons")
    parser.add_argument("--run", choices=("beacons", "groupby"))
    args = parser.parse_args()
    path = generate(args.dir, args.rows)
    if args.run:
        run(args.dir, args.rows, args.run)
        return
    me = f"{sys.executable} {Path(__file__).resolve()} --rows {args.rows} --dir {args.dir}"
    print(f"data: {path} ({path.stat().st_size / 2**30:.2f} GiB)")
    print("time both sides as whole processes, alternated (beacons, groupby, beacons, …), with any external timer:")
    print(f"  {me} --run beacons")
    print(f"  {me} --run groupby")


if __name__ == "__main__":
    main()
