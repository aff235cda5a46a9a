"""Beaconing: which (host, destination[, process]) series repeat on a rhythm, scored so a person can
see why.

An implant calls home on a timer, with jitter, and misses beats (the laptop sleeps, the operator
changes the timer). Tools that score a day of traffic and discount destinations many hosts share miss
exactly the supply-chain case: every host runs the same implant. Here a series is scored on its whole
length, the rhythm is estimated so that missed beats are multiples of the period instead of noise, and
prevalence is reported as evidence (`hosts_sharing`), never used as a discount.

The work is set-based SQL over a contacts table (`host`, `destination`, `process`, `ts`, `bytes`):
1. series with fewer connections than `min_beats` are dropped (they cannot be beacons);
2. connections closer than `MERGE_S` seconds are one beat (a beacon's burst: DNS, TCP, TLS);
3. inter-beat intervals longer than `GAP_PERIODS` periods (and an hour) are gaps — the machine was
   off — and are neither missed beats nor irregularity;
4. the period is the median of the short intervals (those up to 1.5 × the first quartile: with up to
   half the beats missed, most of them are one period long); every interval is then a whole number k
   of periods, and the score looks at
   - `dispersion`: how far one-period intervals stray from the period (jitter),
   - `single`: the share of intervals that are one period (a random series has few),
   - `omission`: the share of beats missing for the intervals to be whole periods,
   - `size`: how alike the beats' byte counts are (when the source has bytes),
   - `coverage`: for rhythms under five minutes, the share of the span the rhythm holds (a burst of
     regular clicks inside a browsing session is not a timer),
   - `runs`: a rhythm beats several times between gaps (pairs a fixed time apart are not one),
   - `beats`: enough beats between gaps to say anything (saturates at `FULL_BEATS`: the score never
     grows with the raw number of connections or bytes; beats across gaps say nothing of the rhythm).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import duckdb

MIN_BEATS = 6            # fewer beats than this is no rhythm at all
FULL_BEATS = 12          # the beats factor is 1 from here on
MERGE_S = 10.0           # connections this close are one beat
GAP_PERIODS = 20         # an interval this many periods long (and over an hour) is the host being off
CANDIDATE_SCORE = 0.55   # a series scoring this much is shown as a beacon candidate
# A rhythm faster than this must hold for a good share of the series' span: clicks inside a browsing
# session are seconds apart and regular, but only for minutes between long gaps; a timer keeps going.
FAST_PERIOD_S = 300
# Between gaps a timer beats again and again; pairs of events a fixed time apart (one query logged by two
# sources whose clocks differ by an hour, a page and its reload) are not a rhythm. Full credit from this
# many intervals per run between gaps.
RUN_INTERVALS = 3
FAST_COVERAGE = 0.2
HISTOGRAM_BINS = 12
SCORING_MEMORY_LIMIT = "6GiB"
ESTABLISHED_S = 4 * 86_400  # starting within 4 days of the host's first records (a long weekend): there before


@dataclass(frozen=True)
class Weights:
    """How the score's parts add up (they sum to 1); kept as data so the harness can tune them."""

    dispersion: float = 0.35
    single: float = 0.30
    omission: float = 0.20
    size: float = 0.15


WEIGHTS = Weights()


def _clamp(expr: str) -> str:
    return f"least(1.0, greatest(0.0, {expr}))"


def score_series(con: duckdb.DuckDBPyConnection, contacts: str, *, min_beats: int = MIN_BEATS,
                 weights: Weights = WEIGHTS) -> None:
    """Create the temporary table `beacon_scores`: one row per series with its rhythm and score.

    `contacts` names a table or view with `host`, `destination`, `process`, `ts`, `bytes`; names are
    compared as given (lower-case them when building it, as contacts.py does)."""
    # keys are compared as the contacts spell them (contacts.py lower-cases names): normalising here
    # would cost a string function per row, more than the whole grouping
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE bc_series AS
        SELECT row_number() OVER () AS sid, host, destination, process, n AS connections
        FROM (SELECT host, destination, process, count(ts) AS n FROM {contacts}
              GROUP BY ALL HAVING count(ts) >= {int(min_beats)})
        WHERE host IS NOT NULL AND destination IS NOT NULL""").fetchall()
    # one row per beat: connections in the same MERGE_S bucket of a series are one beat
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE bc_beats AS
        SELECT s.sid, min(epoch(c.ts)) AS t, sum(c.bytes) AS b
        FROM {contacts} c
        JOIN bc_series s ON s.host = c.host AND s.destination = c.destination
                        AND s.process IS NOT DISTINCT FROM c.process
        WHERE c.ts IS NOT NULL
        GROUP BY s.sid, floor(epoch(c.ts) / {MERGE_S})""").fetchall()
    # intervals between beats; two buckets of one burst are closer than MERGE_S and are not intervals
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE bc_intervals AS
        SELECT sid, d FROM (
          SELECT sid, t - lag(t) OVER (PARTITION BY sid ORDER BY t) AS d FROM bc_beats)
        WHERE d >= {MERGE_S}""").fetchall()
    con.execute("""
        CREATE OR REPLACE TEMP TABLE bc_period AS
        WITH q AS (SELECT sid, quantile_cont(d, 0.25) AS q25 FROM bc_intervals GROUP BY sid)
        SELECT i.sid, median(i.d) AS p1
        FROM bc_intervals i JOIN q USING (sid)
        WHERE i.d <= 1.5 * q.q25 GROUP BY i.sid""").fetchall()
    # every interval as a whole number of periods; gaps (host off) are set apart. The period is
    # refined once: the median of the intervals each divided by its own number of periods
    for _ in range(2):
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE bc_fitted AS
            SELECT i.sid, i.d, greatest(1, round(i.d / p.p1)) AS k,
                   i.d > greatest(3600, {GAP_PERIODS} * p.p1) AS gap
            FROM bc_intervals i JOIN bc_period p USING (sid)""").fetchall()
        con.execute("""
            CREATE OR REPLACE TEMP TABLE bc_period AS
            SELECT sid, coalesce(median(d / k) FILTER (WHERE NOT gap), median(d / k)) AS p1
            FROM bc_fitted GROUP BY sid""").fetchall()
    w = weights
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE beacon_scores AS
        WITH per AS (
          SELECT sid, median(d / k) FILTER (WHERE NOT gap) AS period,
                 count(*) FILTER (WHERE NOT gap) AS intervals, count(*) FILTER (WHERE gap) AS gaps,
                 sum(k) FILTER (WHERE NOT gap) AS periods,
                 sum(d) FILTER (WHERE NOT gap) / nullif(sum(d), 0) AS coverage
          FROM bc_fitted GROUP BY sid),
        shape AS (
          SELECT f.sid, avg(CASE WHEN f.k = 1 THEN 1.0 ELSE 0.0 END) FILTER (WHERE NOT f.gap) AS single,
                 median(abs(f.d - p.period)) FILTER (WHERE f.k = 1 AND NOT f.gap) / p.period AS dispersion
          FROM bc_fitted f JOIN per p USING (sid) GROUP BY f.sid, p.period),
        size_median AS (SELECT sid, median(b) AS b_med FROM bc_beats GROUP BY sid),
        sizes AS (
          SELECT sid, count(*) AS beats, min(t) AS first_t, max(t) AS last_t, any_value(b_med) AS b_med,
                 median(abs(b - b_med)) AS b_mad
          FROM bc_beats JOIN size_median USING (sid) GROUP BY sid),
        parts AS (
          SELECT s.sid, s.host, s.destination, nullif(s.process, '') AS process, s.connections, z.beats,
                 to_timestamp(z.first_t) AS first_seen, to_timestamp(z.last_t) AS last_seen,
                 p.period, p.intervals, p.gaps, p.coverage, sh.single, sh.dispersion,
                 CASE WHEN p.periods > 0 THEN 1.0 - p.intervals / p.periods END AS omission,
                 CASE WHEN z.b_med > 0 THEN z.b_mad / z.b_med END AS size_dispersion
          FROM bc_series s JOIN sizes z USING (sid) JOIN per p USING (sid) JOIN shape sh USING (sid)
          WHERE p.intervals >= 1)
        SELECT *,
               least(1.0, (intervals + 1) / {FULL_BEATS}.0)
               * {_clamp(f'intervals / (gaps + 1.0) / {RUN_INTERVALS}')}
               * CASE WHEN period < {FAST_PERIOD_S} THEN {_clamp(f'coalesce(coverage, 1.0) / {FAST_COVERAGE}')}
                      ELSE 1.0 END * (
                 {w.dispersion} * {_clamp('1.0 - coalesce(dispersion, 1.0) / 0.3')}
               + {w.single} * {_clamp('(coalesce(single, 0.0) - 0.15) / 0.45')}
               + {w.omission} * {_clamp('1.0 - coalesce(omission, 1.0) / 0.8')}
               + {w.size} * CASE WHEN size_dispersion IS NULL THEN 0.5
                                 ELSE {_clamp('1.0 - size_dispersion')} END
               ) AS score,
               1.0 - coalesce(omission, 1.0) AS regularity
        FROM parts WHERE intervals + 1 >= {int(min_beats)}""").fetchall()


def _histogram(con: duckdb.DuckDBPyConnection, sid: int, period: float) -> list[dict[str, Any]]:
    """Inter-beat intervals in period multiples (0.5-wide bins up to 6 periods, then one bin)."""
    rows = con.execute(
        f"""SELECT least({HISTOGRAM_BINS - 1}, floor(d / ? * 2))::INTEGER AS bin, count(*)
            FROM bc_intervals WHERE sid = ? GROUP BY 1 ORDER BY 1""", [period, sid]).fetchall()
    counts = dict(rows)
    return [{"from_periods": b / 2, "count": counts.get(b, 0)} for b in range(HISTOGRAM_BINS)]


def beacon_candidates(con: duckdb.DuckDBPyConnection, contacts: str, *, min_beats: int = MIN_BEATS,
                      weights: Weights = WEIGHTS, allowlist: Any = None, limit: int | None = 500,
                      histograms: bool = True) -> list[dict[str, Any]]:
    """Scored series, best first, with the figures that explain each score. `allowlist` (an object
    with `reason(destination, process)`) marks benign periodic services as suppressed, with the reason:
    they stay in the list, below every unsuppressed series, so nothing is hidden."""
    limit_before = con.execute("SELECT current_setting('memory_limit')").fetchall()[0][0]
    # grouping every (host, destination, process) of a large case does not spill well: the series
    # table of 100M connections needs a few GiB, still far under the 8 GiB a 2-core machine has
    con.execute(f"SET memory_limit = '{SCORING_MEMORY_LIMIT}'")
    try:
        score_series(con, contacts, min_beats=min_beats, weights=weights)
    finally:
        con.execute(f"SET memory_limit = '{limit_before}'")
    # a series that starts with the host's own records has been there as long as we can see: an app's
    # habit, not something that began (the host's start is its earliest beat in any scored series)
    rows = con.execute(
        "WITH starts AS (SELECT s.host, min(b.t) AS t FROM bc_beats b JOIN bc_series s USING (sid) GROUP BY 1) "
        "SELECT sid, b.host, destination, process, score, period, dispersion, regularity, omission, single, "
        "beats, connections, gaps, size_dispersion, first_seen, last_seen, "
        f"epoch(first_seen) - st.t < {ESTABLISHED_S} AS established "
        "FROM beacon_scores b JOIN starts st ON st.host = b.host "
        f"ORDER BY score DESC, b.host, destination {'' if limit is None else f'LIMIT {int(limit) * 4}'}").fetchall()
    # how many hosts reach each destination shown (any contact, not only rhythmic ones)
    shown = sorted({row[2] for row in rows})
    sharing: dict[str, int] = {}
    if shown:
        con.execute("CREATE OR REPLACE TEMP TABLE bc_shown (destination VARCHAR)")
        con.executemany("INSERT INTO bc_shown VALUES (?)", [[d] for d in shown])
        sharing = dict(con.execute(
            f"""SELECT destination, count(DISTINCT host) FROM {contacts}
                WHERE destination IN (SELECT destination FROM bc_shown) GROUP BY 1""").fetchall())
    out = []
    for (sid, host, destination, process, score, period, dispersion, regularity, omission, single, beats,
         connections, gaps, size_dispersion, first_seen, last_seen, established) in rows:
        reason = allowlist.reason(destination, process) if allowlist is not None else None
        out.append({
            "host": host, "destination": destination, "process": process, "score": round(score, 4),
            "period_s": round(period, 1), "jitter": None if dispersion is None else round(dispersion, 4),
            "regularity": round(regularity, 4), "omission": None if omission is None else round(omission, 4),
            "single_period_share": None if single is None else round(single, 4), "count": beats,
            "connections": connections, "gaps": gaps,
            "size_dispersion": None if size_dispersion is None else round(size_dispersion, 4),
            "first_seen": first_seen, "last_seen": last_seen, "hosts_sharing": sharing.get(destination, 1),
            "suppressed_by": reason, "candidate": score >= CANDIDATE_SCORE and reason is None,
            "established": bool(established),
            "_sid": sid,
        })
    # what began during the logs first: a new rhythm is what an implant waking up looks like
    out.sort(key=lambda r: (r["suppressed_by"] is not None, not r["candidate"], r["established"], -r["score"],
                            r["host"], r["destination"]))
    if limit is not None:
        out = out[:limit]
    for row in out:
        sid = row.pop("_sid")
        if histograms and row["score"] >= CANDIDATE_SCORE:
            row["histogram"] = _histogram(con, sid, row["period_s"])
    return out


BEACON_COLUMNS = {
    "host": "VARCHAR", "destination": "VARCHAR", "process": "VARCHAR", "score": "DOUBLE", "period_s": "DOUBLE",
    "jitter": "DOUBLE", "regularity": "DOUBLE", "omission": "DOUBLE", "count": "BIGINT", "connections": "BIGINT",
    "size_dispersion": "DOUBLE", "first_seen": "TIMESTAMPTZ", "last_seen": "TIMESTAMPTZ", "hosts_sharing": "BIGINT",
    "suppressed_by": "VARCHAR", "candidate": "BOOLEAN", "established": "BOOLEAN", "address": "VARCHAR",
    "histogram": "VARCHAR",  # JSON: inter-beat intervals counted in half-period bins
}


def _attribute(con: duckdb.DuckDBPyConnection, rows: list[dict[str, Any]]) -> None:
    """Put on every series seen by a network sensor (`ip:<address>`) the host that had the address
    when the series began (store/attribution.py); the address stays in `address`."""
    from turncoat.store.attribution import attributed_sql

    pending = [(i, r["host"][3:], r["first_seen"]) for i, r in enumerate(rows) if r["host"].startswith("ip:")]
    for row in rows:
        row["address"] = row["host"][3:] if row["host"].startswith("ip:") else None
    if not pending:
        return
    con.execute("CREATE OR REPLACE TEMP TABLE bc_pending (i INTEGER, ip VARCHAR, ts TIMESTAMPTZ, evidence_id VARCHAR)")
    con.executemany("INSERT INTO bc_pending VALUES (?, ?, ?, NULL)", pending)
    for i, host in con.execute(f"SELECT i, host_attributed FROM ({attributed_sql('SELECT * FROM bc_pending')})").fetchall():
        rows[i]["host"] = host


def run_beacons(con: duckdb.DuckDBPyConnection, allowlist: Any = None, *, limit: int = 500) -> list[dict[str, Any]]:
    """Score every series of the case (detect/contacts.py), attribute them to hosts, and keep the best
    `limit` in the `beacons` table of the case (suppressed ones included, marked)."""
    from turncoat.detect.contacts import contacts_sql

    if allowlist is None:
        allowlist = _default_allowlist()
    con.execute(f"CREATE OR REPLACE TEMP VIEW beacon_contacts AS {contacts_sql(con)}")
    rows = beacon_candidates(con, "beacon_contacts", allowlist=allowlist, limit=limit)
    _attribute(con, rows)
    con.execute("CREATE OR REPLACE TABLE beacons ({})".format(
        ", ".join(f'"{c}" {t}' for c, t in BEACON_COLUMNS.items())))
    if rows:
        con.executemany(f"INSERT INTO beacons VALUES ({', '.join('?' for _ in BEACON_COLUMNS)})",
                        [[json.dumps(r[c]) if c == "histogram" and r.get(c) else r.get(c) for c in BEACON_COLUMNS]
                         for r in rows])
    return rows


def _default_allowlist() -> Any:
    """The shipped list of benign periodic services (detect/allowlist.py)."""
    from turncoat.detect.allowlist import load_allowlist

    return load_allowlist()
