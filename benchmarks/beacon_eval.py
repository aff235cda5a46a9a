"""Beacon detection: turncoat's engine against a RITA-style baseline, on injected and on real beacons.

Why: an IOC-free beacon finder is only worth shipping if it finds implants that a known tool finds, and
more (slow, jittery, lossy beacons; a whole fleet running the same implant), without burying the analyst
in benign updaters. This script measures exactly that, for `turncoat.detect.beacon.beacon_candidates`
and for `rita_baseline.rita_scores` (RITA v5's documented scoring), on the same contacts table.

Background ("contacts": host, destination, process, ts, bytes; one row per connection):
- the real Zeek captures of shared/data/zeek (RITA proxy, Slips CTU-SME-11, OTRF APT29 day 1), each
  ingested once with turncoat into a temporary case, read as `turncoat detect` reads them
  (detect/contacts.py: TLS server names, HTTP hosts and CONNECT targets, DNS questions, unnamed flows). For the
  grid they are shifted into the office's first day, hosts prefixed with the capture's name;
- a simulated office: hosts x days of browsing bursts during work hours (laptops off outside them,
  desktops always on) and benign periodic services under their usual names (EDR telemetry, mail and
  chat heartbeats, Windows/Chrome/AV updaters, a sync client) so that allowlisting and false
  candidates are exercised.

Injected beacons (the grid): period (1 min .. 24 h) x sleep jitter (each sleep = period x (1 ± u·j), u
uniform) x omission (each beat dropped at random) x size pattern (constant ± 2 %, or random 100 B..20 kB)
x duration ("short": sent until 12 beats are seen; "long": the whole multi-week window), each into
`--reps` random hosts per seed, over `--seeds` seeds. Injected hosts keep beaconing when the simulated
host is off: omission is the only loss, so cells stay controlled.

Both tools score each (host, destination) series on its own (the engine's score does not depend on other
series; the baseline's depends only on the table's time span, which the office traffic fixes), so all
cells of a seed are injected into one table, each beacon under its own C2 name, and each tool runs once
per seed. Consequently false candidates are a property of the background, not of a cell: they are given
once per tool, with what they were.

Printed: per cell, beats seen, recall of each tool (engine: score >= its CANDIDATE_SCORE and not
suppressed; RITA: score >= 0.50, its base threshold, and >= 0.70), the median score; then false
candidates per host-day and their destinations; then each labelled real C2's rank in its own capture
(goal: top 3). Deterministic given --seed. Asserts nothing.

    python benchmarks/beacon_eval.py                 # full grid (216 cells x 3 seeds x 2 hosts)
    python benchmarks/beacon_eval.py --quick         # small grid, small office (used by the tests)
    python benchmarks/beacon_eval.py --seed 7 --out results.json
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import random
import statistics
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from rita_baseline import CANDIDATE_SCORE as RITA_BASE
from rita_baseline import MEDIUM_SCORE as RITA_MEDIUM
from rita_baseline import rita_daily_scores, rita_scores

ZEEK = Path(__file__).resolve().parents[2] / "shared" / "data" / "zeek"
OFFICE_START = datetime(2024, 3, 4, tzinfo=UTC)  # a Monday
DAY = 86400.0

# The real captures and their labelled C2 (SOURCES.md); `weak` ones are labelled but not expected on top.
REAL = {
    "rita-proxy": {"path": "rita/test_data/proxy",
                   "c2": [("10.136.0.18", "www.honestimnotevil.com")],
                   "weak": [("10.136.0.18", "www.google.com")]},
    "slips-ctu-sme-11": {"path": "slips/dataset/test18-malicious-ctu-sme-11-win",
                         "c2": [("192.168.1.107", "66.63.168.35")], "weak": []},
    "otrf-apt29": {"path": "otrf-apt29",
                   "c2": [("10.0.1.6", "192.168.0.4"), ("10.0.1.4", "192.168.0.5")],
                   "weak": [("10.0.1.4", "192.168.0.4")]},
}

# Benign periodic services: (destination, period s, jitter, share of hosts, user-present only, size).
SERVICES = [
    ("edr-telemetry.sentinel-vendor.net", 300, 0.02, 1.0, False, "const"),
    ("outlook.office365.com", 300, 0.10, 0.9, False, "random"),
    ("presence.teams.microsoft.com", 60, 0.20, 0.7, True, "random"),
    ("settings-win.data.microsoft.com", 900, 0.05, 1.0, False, "const"),
    ("ctldl.windowsupdate.com", 3600, 0.30, 1.0, False, "random"),
    ("clients2.google.com", 18000, 0.10, 0.6, False, "const"),
    ("definitions.av-vendor.com", 14400, 0.0, 1.0, False, "const"),
    ("client.dropbox.com", 600, 0.50, 0.2, False, "random"),
]
SITES = ["www.google.com", "www.bing.com", "login.microsoftonline.com", "www.office.com", "github.com",
         "stackoverflow.com", "www.linkedin.com", "www.bbc.co.uk", "en.wikipedia.org", "www.youtube.com",
         "docs.python.org", "www.amazon.com", "news.ycombinator.com", "www.reuters.com", "slack.com",
         "www.salesforce.com", "zoom.us", "www.atlassian.com", "confluence.corp.example", "jira.corp.example",
         "intranet.corp.example", "www.nytimes.com", "www.theguardian.com", "www.reddit.com",
         "cdn.jsdelivr.net", "fonts.googleapis.com", "www.apple.com", "weather.com", "www.ebay.com",
         "www.dropbox.com"]

PERIODS = [60, 300, 900, 3600, 21600, 86400]
JITTERS = [0.0, 0.1, 0.3]
OMISSIONS = [0.0, 0.25, 0.5]
SIZES = ["const", "random"]
DURATIONS = ["short", "long"]
SHORT_BEATS = 12


@dataclass(frozen=True)
class Cell:
    """One combination of the injected beacon's parameters."""

    period: int
    jitter: float
    omission: float
    size: str
    duration: str

    @property
    def name(self) -> str:
        period = f"{self.period // 3600}h" if self.period >= 3600 else f"{self.period // 60}m"
        return f"{period:>3} j{int(self.jitter * 100):02d} o{int(self.omission * 100):02d} {self.size:6} {self.duration}"


@dataclass(frozen=True)
class Config:
    """The size of the experiment (full or --quick)."""

    hosts: int
    days: int
    seeds: int
    reps: int
    cells: tuple[Cell, ...]


def grid(quick: bool) -> Config:
    """The full grid, or a small one that still runs every code path (for the tests)."""
    if quick:
        cells = tuple(Cell(p, j, o, "const", "short") for p, j, o in itertools.product([300, 3600], [0.0, 0.3], [0.0, 0.5]))
        return Config(hosts=8, days=3, seeds=1, reps=2, cells=cells)
    cells = tuple(Cell(*c) for c in itertools.product(PERIODS, JITTERS, OMISSIONS, SIZES, DURATIONS))
    return Config(hosts=30, days=28, seeds=3, reps=2, cells=cells)


# --- the injection generator ----------------------------------------------------------------------------

def beacon_times(rng: random.Random, start: float, end: float, period: float, jitter: float, omission: float,
                 beats: int | None = None) -> list[float]:
    """Times of the beats a sensor sees from an implant that sleeps period x (1 ± u·jitter) between
    attempts and whose attempts are lost with probability `omission`; stops after `beats` seen beats
    (or at `end`). The first attempt is at `start`."""
    seen: list[float] = []
    t = start
    while t < end and (beats is None or len(seen) < beats):
        if rng.random() >= omission:
            seen.append(t)
        t += period * (1.0 + rng.uniform(-jitter, jitter))
    return seen


def beacon_sizes(rng: random.Random, n: int, pattern: str) -> list[int]:
    """Bytes sent per beat: a fixed check-in with a little noise, or anything (tasking, exfiltration)."""
    if pattern == "const":
        base = rng.randint(300, 3000)
        return [round(base * (1.0 + rng.uniform(-0.02, 0.02))) for _ in range(n)]
    return [rng.randint(100, 20000) for _ in range(n)]


def inject(rng: random.Random, cell: Cell, host: str, dest: str, start: float, end: float) -> list[tuple]:
    """Rows of one injected beacon; a short one starts at a random time that leaves room for its beats."""
    if cell.duration == "long":
        first = start + rng.uniform(0, cell.period)
        times = beacon_times(rng, first, end, cell.period, cell.jitter, cell.omission)
    else:
        need = cell.period * (SHORT_BEATS / (1.0 - cell.omission)) * (1.0 + cell.jitter) * 1.3
        first = start + rng.uniform(0, max(0.0, end - start - need))
        times = beacon_times(rng, first, end, cell.period, cell.jitter, cell.omission, beats=SHORT_BEATS)
    sizes = beacon_sizes(rng, len(times), cell.size)
    return [(host, dest, t, b) for t, b in zip(times, sizes)]


# --- the simulated office --------------------------------------------------------------------------------

def _workday_hours(rng: random.Random, day: int) -> tuple[float, float] | None:
    """When the user is at the machine that day (None at weekends)."""
    if (OFFICE_START + timedelta(days=day)).weekday() >= 5:
        return None
    return day * DAY + 8 * 3600 + rng.uniform(-1800, 1800), day * DAY + 18 * 3600 + rng.uniform(-1800, 1800)


def _browsing(rng: random.Random, host: str, t0: float, t1: float, weights: list[float]) -> Iterator[tuple]:
    """Bursts of connections to a few sites: what people do, and what no beacon scorer should flag."""
    for _ in range(max(1, round(rng.gauss(14, 4)))):
        t = rng.uniform(t0, t1)
        site = rng.choices(SITES, weights)[0]
        for _ in range(1 + int(rng.expovariate(1 / 7))):
            t += rng.expovariate(1 / 6)
            yield host, site, t, int(rng.lognormvariate(7, 1.2))


def _service(rng: random.Random, host: str, dest: str, period: float, jitter: float, size: str,
             spans: list[tuple[float, float]]) -> Iterator[tuple]:
    """A benign poller: a fixed period with its own jitter, while the machine (or user) is there."""
    base = rng.randint(400, 4000)
    for t0, t1 in spans:
        t = t0 + rng.uniform(0, period)
        while t < t1:
            b = round(base * (1 + rng.uniform(-0.02, 0.02))) if size == "const" else rng.randint(200, 30000)
            yield host, dest, t, b
            t += period * (1.0 + rng.uniform(-jitter, jitter))


def simulate_office(rng: random.Random, hosts: int, days: int) -> tuple[list[tuple], list[str]]:
    """Rows (host, destination, epoch seconds from OFFICE_START, bytes) and the host names."""
    names = [f"10.20.{i // 200}.{i % 200 + 20}" for i in range(hosts)]
    weights = [1.0 / (rank + 1) for rank in range(len(SITES))]
    rows: list[tuple] = []
    for host in names:
        laptop = rng.random() < 0.6
        present = [s for s in (_workday_hours(rng, d) for d in range(days)) if s is not None]
        powered = present if laptop else [(0.0, days * DAY)]
        for t0, t1 in present:
            rows.extend(_browsing(rng, host, t0, t1, weights))
        for dest, period, jitter, share, user_only, size in SERVICES:
            if rng.random() < share:
                rows.extend(_service(rng, host, dest, period, jitter, size, present if user_only else powered))
    return rows, names


# --- real captures -----------------------------------------------------------------------------------------

def contacts_sql(con: duckdb.DuckDBPyConnection) -> str:
    """The case's contacts exactly as `turncoat detect` builds them (detect/contacts.py: TLS names, HTTP
    hosts, DNS, unnamed flows; local multicast left out), with the client address as the host."""
    from turncoat.detect.contacts import contacts_sql as case_contacts

    return f"SELECT regexp_replace(host, '^ip:', '') AS host, destination, process, ts, bytes FROM ({case_contacts(con)})"


def real_contacts(workdir: Path) -> dict[str, pa.Table]:
    """Each labelled capture ingested by turncoat into its own case, as a contacts table."""
    from turncoat import pipeline
    from turncoat.store.case import Case

    out = {}
    for name, spec in REAL.items():
        case_dir = workdir / name
        pipeline.ingest([ZEEK / spec["path"]], case_dir)
        con = Case(case_dir).connect(read_only=True)
        try:
            out[name] = con.sql(contacts_sql(con)).to_arrow_table()
        finally:
            con.close()
    return out


def labelled(site: str) -> set[tuple[str, str]]:
    spec = REAL[site]
    return {(h, d.lower()) for h, d in spec["c2"] + spec["weak"]}


# --- running the tools -------------------------------------------------------------------------------------

def contacts_table(con: duckdb.DuckDBPyConnection, name: str, rows: list[tuple]) -> None:
    """(host, destination, epoch seconds, bytes) rows into a contacts table of the engine's shape."""
    hosts, dests, ts, sizes = zip(*rows) if rows else ((), (), (), ())
    table = pa.table({"host": pa.array(hosts, pa.string()), "destination": pa.array(dests, pa.string()),
                      "ts_s": pa.array(ts, pa.float64()), "bytes": pa.array(sizes, pa.int64())})
    con.register("_rows", table)
    con.execute(f"""CREATE OR REPLACE TABLE {name} AS
        SELECT host, destination, NULL::VARCHAR AS process, to_timestamp(ts_s) AS ts, bytes FROM _rows""").fetchall()
    con.unregister("_rows")


def run_engine(con: duckdb.DuckDBPyConnection, table: str) -> list[dict[str, Any]]:
    """The engine's scored series, all of them (no display limit), each marked candidate or not."""
    from turncoat.detect import beacon
    from turncoat.detect.allowlist import load_allowlist

    # the shipped allowlist of benign periodic services, as `turncoat detect` uses it
    rows = beacon.beacon_candidates(con, table, limit=None, histograms=False, allowlist=load_allowlist())
    for row in rows:
        row["candidate"] = bool(row.get("candidate", row["score"] >= beacon.CANDIDATE_SCORE
                                        and row.get("suppressed_by") is None))
    return rows


def run_rita(con: duckdb.DuckDBPyConnection, table: str) -> list[dict[str, Any]]:
    return rita_scores(con, table)


def engine_available() -> bool:
    try:
        from turncoat.detect import beacon
    except ImportError:
        return False
    return hasattr(beacon, "beacon_candidates")


TOOLS: dict[str, Callable[[duckdb.DuckDBPyConnection, str], list[dict[str, Any]]]] = {
    "engine": run_engine, "rita": run_rita, "rita-day": rita_daily_scores}


def by_key(rows: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(r["host"], r["destination"].lower().rstrip(".")): r for r in rows}


def rank_of(rows: list[dict[str, Any]], key: tuple[str, str]) -> int | None:
    """1-based position of a series in the tool's own order (None: not scored at all)."""
    for i, r in enumerate(rows, 1):
        if (r["host"], r["destination"].lower().rstrip(".")) == key:
            return i
    return None


# --- the grid ------------------------------------------------------------------------------------------------

def background(rng: random.Random, cfg: Config, real: dict[str, pa.Table]) -> tuple[list[tuple], list[str], set]:
    """Office rows plus every real capture shifted to the office's first morning; hosts for injection;
    the labelled real C2 series (under their prefixed host names)."""
    rows, hosts = simulate_office(rng, cfg.hosts, cfg.days)
    known: set[tuple[str, str]] = set()
    for site, table in real.items():
        data = table.to_pydict()
        first = min(t.timestamp() for t in data["ts"])
        shift = 9 * 3600 - first
        for h, d, t, b in zip(data["host"], data["destination"], data["ts"], data["bytes"]):
            rows.append((f"{site}/{h}", d, t.timestamp() + shift, b))
        hosts.extend(sorted({f"{site}/{h}" for h in data["host"] if h.startswith(("10.", "192.168."))}))
        known |= {(f"{site}/{h}", d) for h, d in labelled(site)}
    return rows, hosts, known


def host_days(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return con.execute(f"SELECT count(DISTINCT (host, CAST(ts AS DATE))) FROM {table}").fetchall()[0][0]


def run_seed(seed: int, cfg: Config, real: dict[str, pa.Table], tools: list[str]) -> dict[str, Any]:
    """One background, every cell injected `reps` times, each tool run once over it."""
    rng = random.Random(seed)
    rows, hosts, known = background(rng, cfg, real)
    con = duckdb.connect()
    contacts_table(con, "bg", rows)
    days = host_days(con, "bg")
    injected: dict[tuple[str, str], tuple[Cell, int]] = {}
    for ci, cell in enumerate(cfg.cells):
        for rep in range(cfg.reps):
            host, dest = rng.choice(hosts), f"c2-{ci:03d}-{seed}-{rep}.cdn-sync.net"
            beats = inject(rng, cell, host, dest, 0.0, cfg.days * DAY)
            rows.extend(beats)
            injected[(host, dest)] = (cell, len(beats))
    contacts_table(con, "contacts", rows)
    out: dict[str, Any] = {"seed": seed, "host_days": days, "injected": injected, "known": known, "tools": {}}
    for tool in tools:
        out["tools"][tool] = by_key(TOOLS[tool](con, "contacts"))
    con.close()
    return out


def summarise_cells(runs: list[dict[str, Any]], cfg: Config, tools: list[str]) -> list[dict[str, Any]]:
    """Per cell: beats seen, and per tool recall (candidate) and median score of the injected series."""
    out = []
    for cell in cfg.cells:
        beats, per_tool = [], {t: {"found": 0, "medium": 0, "scores": []} for t in tools}
        for run in runs:
            for key, (c, n) in run["injected"].items():
                if c != cell:
                    continue
                beats.append(n)
                for tool in tools:
                    row = run["tools"][tool].get(key)
                    score = row["score"] if row else 0.0
                    per_tool[tool]["scores"].append(score)
                    per_tool[tool]["found"] += bool(row and row["candidate"])
                    per_tool[tool]["medium"] += score >= RITA_MEDIUM
        n = len(beats)
        entry = {"cell": cell.name, **asdict(cell), "series": n, "beats": statistics.median(beats) if beats else 0}
        for tool in tools:
            entry[tool] = {"recall": per_tool[tool]["found"] / n if n else math.nan,
                           "recall_0.7": per_tool[tool]["medium"] / n if n else math.nan,
                           "median_score": round(statistics.median(per_tool[tool]["scores"]), 3) if n else None}
        out.append(entry)
    return out


def false_candidates(runs: list[dict[str, Any]], tools: list[str]) -> dict[str, Any]:
    """Candidates that are neither injected nor a labelled real C2, per host-day, and what they were."""
    out = {}
    for tool in tools:
        total, days, what = 0, 0, Counter()
        for run in runs:
            days += run["host_days"]
            for key, row in run["tools"][tool].items():
                if row["candidate"] and key not in run["injected"] and key not in run["known"]:
                    total += 1
                    what[key[1]] += 1
        out[tool] = {"count": total, "host_days": days, "per_host_day": total / days if days else math.nan,
                     "destinations": what.most_common(12)}
    return out


# --- real captures alone -------------------------------------------------------------------------------------

def evaluate_real(real: dict[str, pa.Table], tools: list[str]) -> list[dict[str, Any]]:
    """Each capture on its own: rank of each labelled C2 and each tool's top 3."""
    out = []
    for site, table in real.items():
        con = duckdb.connect()
        con.register("_t", table)
        con.execute("CREATE TABLE contacts AS SELECT * FROM _t").fetchall()
        scored = {tool: TOOLS[tool](con, "contacts") for tool in tools}
        days = host_days(con, "contacts")
        con.close()
        for host, dest in REAL[site]["c2"] + REAL[site]["weak"]:
            entry = {"site": site, "c2": f"{host} -> {dest}", "weak": (host, dest) in REAL[site]["weak"]}
            for tool in tools:
                rank = rank_of(scored[tool], (host, dest.lower()))
                row = by_key(scored[tool]).get((host, dest.lower()))
                entry[tool] = {"rank": rank, "of": len(scored[tool]), "score": row["score"] if row else None,
                               "candidate": bool(row and row["candidate"])}
            out.append(entry)
        for tool in tools:
            false = [r for r in scored[tool] if r["candidate"] and (r["host"], r["destination"].lower()) not in labelled(site)]
            out.append({"site": site, "top3": tool,
                        "rows": [f"{r['host']} -> {r['destination']} {r['score']:.3f}" for r in scored[tool][:3]],
                        "false_candidates": len(false), "host_days": days,
                        "false_list": [f"{r['host']} -> {r['destination']} {r['score']:.3f}" for r in false[:8]]})
    return out


# --- output --------------------------------------------------------------------------------------------------

def _pct(x: float) -> str:
    return "   -" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{100 * x:4.0f}"


def print_cells(cells: list[dict[str, Any]], tools: list[str], engine_threshold: float | None) -> None:
    """One line per cell; the last column compares the engine with the better RITA variant."""
    head = f"{'cell':30} {'n':>3} {'beats':>6}"
    if "engine" in tools:
        head += f" | {'eng%':>4} {'med':>5}"
    head += f" | {'rita%':>5} {'@.7':>4} {'med':>5} | {'day%':>4} {'@.7':>4} {'med':>5} |"
    print(f"\nInjected beacons: recall in % (engine candidate: score >= {engine_threshold}, not suppressed; "
          f"RITA candidate: score >= {RITA_BASE}, '@.7' >= {RITA_MEDIUM}); med = median score; "
          "rita = whole series, day = RITA's 24 h datasets, best day")
    print(head)
    print("-" * len(head))
    for c in cells:
        line = f"{c['cell']:30} {c['series']:3d} {c['beats']:6.0f}"
        if "engine" in tools:
            line += f" | {_pct(c['engine']['recall'])} {c['engine']['median_score']:5.3f}"
        for tool in ("rita", "rita-day"):
            line += f" | {_pct(c[tool]['recall']):>5} {_pct(c[tool]['recall_0.7'])} {c[tool]['median_score']:5.3f}"
        if "engine" in tools:
            rita = max(c["rita"]["recall"], c["rita-day"]["recall"])
            line += " " + ("<" if c["engine"]["recall"] < rita else ">" if c["engine"]["recall"] > rita else "=")
        print(line)
    for tool in tools:
        recalls = [c[tool]["recall"] for c in cells]
        by_period = {p: statistics.mean(c[tool]["recall"] for c in cells if c["period"] == p)
                     for p in sorted({c["period"] for c in cells})}
        by_dur = {d: statistics.mean(c[tool]["recall"] for c in cells if c["duration"] == d)
                  for d in sorted({c["duration"] for c in cells})}
        print(f"{tool:8}: mean recall {100 * statistics.mean(recalls):5.1f} % | by period "
              + ", ".join(f"{p}s {100 * v:.0f}%" for p, v in by_period.items())
              + " | by duration " + ", ".join(f"{d} {100 * v:.0f}%" for d, v in by_dur.items()))


def print_false(false: dict[str, Any]) -> None:
    print("\nFalse candidates on the background (office + real captures; not injected, not a labelled C2)")
    for tool, f in false.items():
        print(f"{tool:8}: {f['count']} over {f['host_days']} host-days = {f['per_host_day']:.4f} per host-day")
        for dest, n in f["destinations"]:
            print(f"        {n:4d} x {dest}")


def print_real(real: list[dict[str, Any]], tools: list[str]) -> None:
    print("\nReal labelled C2, rank in its own capture (goal: top 3)")
    for e in real:
        if "c2" in e:
            cols = "  ".join(f"{t}: rank {e[t]['rank']}/{e[t]['of']} score {e[t]['score']}"
                             f"{' cand' if e[t]['candidate'] else ''}" for t in tools)
            print(f"  {e['site']:17} {e['c2']:38}{' (weak)' if e['weak'] else '       '}  {cols}")
    for e in real:
        if "top3" in e:
            print(f"  {e['site']:17} {e['top3']:8} top3: {'; '.join(e['rows'])}")
            print(f"  {'':17} {'':8} false candidates {e['false_candidates']} over {e['host_days']} host-days"
                  + (f": {'; '.join(e['false_list'])}" if e["false_list"] else ""))


def main(argv: list[str] | None = None) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small grid and office (a smoke run)")
    parser.add_argument("--seed", type=int, default=1, help="first seed; seeds are seed, seed+1, ...")
    parser.add_argument("--seeds", type=int, help="number of seeds (default: 3, quick: 1)")
    parser.add_argument("--out", type=Path, help="write machine-readable results here (JSON)")
    parser.add_argument("--baseline-only", action="store_true", help="do not run the engine")
    args = parser.parse_args(argv)

    cfg = grid(args.quick)
    if args.seeds:
        cfg = Config(cfg.hosts, cfg.days, args.seeds, cfg.reps, cfg.cells)
    tools = ["rita", "rita-day"] if args.baseline_only or not engine_available() else ["engine", "rita", "rita-day"]
    if "engine" not in tools:
        print("turncoat.detect.beacon is not available: baseline only")
    threshold = None
    if "engine" in tools:
        from turncoat.detect import beacon
        threshold = beacon.CANDIDATE_SCORE
    with tempfile.TemporaryDirectory(prefix="beacon-eval-") as tmp:
        real = real_contacts(Path(tmp))
    print(f"office: {cfg.hosts} hosts x {cfg.days} days; {len(cfg.cells)} cells x {cfg.seeds} seeds x "
          f"{cfg.reps} hosts; real captures: {', '.join(f'{k} ({v.num_rows} conns)' for k, v in real.items())}")
    runs = [run_seed(args.seed + i, cfg, real, tools) for i in range(cfg.seeds)]
    cells = summarise_cells(runs, cfg, tools)
    false = false_candidates(runs, tools)
    real_ranks = evaluate_real(real, tools)
    print_cells(cells, tools, threshold)
    print_false(false)
    print_real(real_ranks, tools)
    result = {"config": {"hosts": cfg.hosts, "days": cfg.days, "seeds": cfg.seeds, "reps": cfg.reps,
                         "first_seed": args.seed, "quick": args.quick, "engine_candidate_score": threshold,
                         "rita_candidate_score": RITA_BASE, "tools": tools},
              "cells": cells, "false_candidates": false, "real": real_ranks}
    if args.out:
        args.out.write_text(json.dumps(result, indent=1, default=str))
    return result


if __name__ == "__main__":
    main()
