"""Sigma on EVTX: `turncoat sigma` vs. Zircolite, same SigmaHQ rules, same files, one run.

Why (issue 5): Zircolite is the usual yardstick for "Sigma rules over EVTX without a SIEM" (pySigma's
SQLite backend over an in-memory SQLite table). Before turncoat's Sigma numbers mean anything they have
to be put next to it: how many of the rules each side converts, whether both find the same
(rule, event) pairs, and what that costs in time and memory on the shared samples and on a set of at
least a million events.

Zircolite is never a dependency of turncoat: give a checkout of it with `--zircolite DIR`; the script
makes (once) a virtual environment for it under the cache folder (outside the repository) from its
`requirements.txt`, or uses `--zircolite-python` (an existing environment's interpreter). Rules are
converted with Zircolite's own command line (`-r RULES -p PIPELINES -sr`). "merged" (default) is what
Zircolite's documentation recommends for EVTX: the rules converted twice, Sysmon (`sysmon`,
`windows-logsources`) and Windows audit (`windows-audit`, `windows-logsources`: process_creation as
Security 4688), both rulesets loaded together.

    python benchmarks/vs_zircolite.py --zircolite /path/to/Zircolite
    python benchmarks/vs_zircolite.py --zircolite /path/to/Zircolite --events 0 --repeats 5   # shared set only
    python benchmarks/vs_zircolite.py --convert-hits detected_events.json hits.jsonl          # normalise only

Sets: "shared" is every EVTX file under `--evtx` (the deliberately corrupt `odd/` ones included), copied
with their relative paths so that neither tool sees the JSON files beside them; "big" is the readable
ones copied N times until `--events` records are reached, each copy made unique by one byte in the
header's unused padding (as in ingest_evtx.py) and named `cNNN-IIII-<name>.evtx`, since Zircolite
reports only a file's base name. The copies hold the same events: Zircolite reports every copy's hits,
turncoat's store keeps one row per event (host, channel, record id, time), so on the big set agreement
is also given with the copies collapsed (`cNNN-` dropped from the file name).

warm: rules already converted (Zircolite reads the cached JSON rulesets; turncoat runs with a cache
folder it has already filled, as `XDG_CACHE_HOME` and `TURNCOAT_CACHE_DIR`). cold: Zircolite converts
the YAML first (timed: conversions + detection); turncoat gets empty cache folders. Each figure is the
whole process (interpreter start-up included); peak RSS is the largest single process (wait4) and the
whole process tree (sampled from /proc every 0.1 s). Runs alternate Zircolite / turncoat and ratios are
taken pair by pair: the machine is noisy, compare ratios. Agreement is on (rule id, file base name,
EventRecordID). Linux only. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ingest_evtx import _tree_rss_kib, build_corpus  # noqa: E402 - the sibling benchmark's helpers

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "data"
SHARED_EVTX = SHARED / "evtx"
SHARED_RULES = SHARED / "sigma" / "rules" / "windows"
PIPELINES = {
    "merged": [("sysmon", ["sysmon", "windows-logsources"]), ("audit", ["windows-audit", "windows-logsources"])],
    "sysmon": [("sysmon", ["sysmon", "windows-logsources"])],
    "audit": [("audit", ["windows-audit", "windows-logsources"])],
    "none": [("none", [])],
}
COPY_PREFIX = re.compile(r"^c\d{3,}-")

Key = tuple[str, str, int]


# ---------------------------------------------------------------- measuring

@dataclass
class Run:
    wall: float = 0.0
    rss_kib: int = 0  # largest single process (wait4), max over the steps
    tree_kib: int = 0  # whole process tree, sampled
    stdout: str = ""


def measure(cmd: list[str], cwd: Path, env: dict[str, str] | None = None, ok=(0,)) -> Run:
    """Run `cmd` once: wall seconds, peak RSS (largest process, whole tree) and its stdout."""
    cwd.mkdir(parents=True, exist_ok=True)
    out_path, err_path = cwd / "stdout.txt", cwd / "stderr.txt"
    with open(out_path, "wb") as out, open(err_path, "wb") as err:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=out, stderr=err, stdin=subprocess.DEVNULL)
        tree = [0]
        stop = threading.Event()

        def sample() -> None:
            while not stop.is_set():
                tree[0] = max(tree[0], _tree_rss_kib(proc.pid)[2])
                time.sleep(0.1)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        stop.set()
        sampler.join()
    stdout = out_path.read_text(errors="replace")
    if proc.returncode not in ok:
        tail = err_path.read_text(errors="replace")[-2000:] or stdout[-2000:]
        raise RuntimeError(f"{' '.join(map(str, cmd))} failed ({proc.returncode}):\n{tail}")
    return Run(wall, usage.ru_maxrss, max(tree[0], usage.ru_maxrss), stdout)


def add(a: Run, b: Run) -> Run:
    """Steps run one after the other: times add up, peaks do not."""
    return Run(a.wall + b.wall, max(a.rss_kib, b.rss_kib), max(a.tree_kib, b.tree_kib), a.stdout + b.stdout)


# ---------------------------------------------------------------- Zircolite

def zircolite_python(args: argparse.Namespace, cache: Path) -> str:
    """The interpreter of Zircolite's own environment: given, or made once under the cache folder."""
    if args.zircolite_python:
        return args.zircolite_python
    requirements = args.zircolite / "requirements.txt"
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    venv = cache / f"zircolite-venv-{digest}"
    python = venv / "bin" / "python"
    if not (venv / ".complete").exists():
        print(f"making Zircolite's environment in {venv} (once) …", flush=True)
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", "-r", str(requirements)], check=True)
        (venv / ".complete").touch()
    return str(python)


def zircolite_versions(zpy: str, zdir: Path) -> str:
    code = ("import importlib.metadata as m\n"
            "for p in ('pySigma','pySigma-backend-sqlite','pySigma-pipeline-sysmon','pySigma-pipeline-windows','evtx'):\n"
            "    try: print(p, m.version(p))\n"
            "    except Exception: print(p, '?')")
    out = subprocess.run([zpy, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    match = re.search(r'version\s*=\s*"([^"]+)"', (zdir / "zircolite.py").read_text(errors="replace"))
    return f"Zircolite {match.group(1) if match else '?'}; " + ", ".join(x for x in out if x)


def convert_cmd(zpy: str, zdir: Path, rules: Path, pipelines: list[str], log: Path, debug: bool) -> list[str]:
    """Zircolite converting the YAML rules and saving the ruleset (`-sr`) into its working folder. Given
    no events it stops after saving, with exit status 2."""
    cmd = [zpy, str(zdir / "zircolite.py"), "-r", str(rules), "-sr",
           "-c", str(zdir / "config" / "config.yaml"), "-l", str(log), "-o", str(log.with_suffix(".json"))]
    if pipelines:
        cmd[4:4] = ["-p", *pipelines]
    if debug:
        cmd.append("--debug")
    return cmd


def saved_ruleset(folder: Path) -> Path:
    found = sorted(folder.glob("ruleset-*.json"))
    if len(found) != 1:
        raise RuntimeError(f"Zircolite saved {len(found)} rulesets in {folder}; see {folder / 'stdout.txt'}")
    return found[0]


def conversion_failures(log: Path) -> dict[str, str]:
    """Rule path → reason, from Zircolite's debug log ("Cannot convert rule '<repr>' : <reason>")."""
    failures = {}
    for line in log.read_text(encoding="utf-8", errors="replace").splitlines():
        if "Cannot convert rule" not in line:
            continue
        path = re.search(r"path=PosixPath\('([^']+)'\)", line)
        reason = line.rsplit("' : ", 1)[-1].replace("[/]", "").strip()
        if path:
            failures[str(Path(path.group(1)).resolve())] = reason[:200]
    return failures


def rules_fingerprint(rules: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(rules.rglob("*")):
        if path.suffix in (".yml", ".yaml"):
            digest.update(str(path.relative_to(rules)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


@dataclass
class Converted:
    rulesets: list[Path]
    ids: dict[str, set[str]]  # variant → rule ids converted
    failures: dict[str, dict[str, str]]  # variant → path → reason
    seconds: dict[str, float]
    queries: int  # distinct SQL statements Zircolite will run


def cached_rulesets(zpy: str, zdir: Path, rules: Path, mode: str, cache: Path, versions: str) -> Converted:
    """Zircolite's rulesets for `rules`, converted once per (rules, pipelines, Zircolite, versions)."""
    key = hashlib.sha256("\n".join([rules_fingerprint(rules), mode, str(zdir.resolve()), versions,
                                    (zdir / "zircolite" / "rules.py").read_text(errors="replace")]).encode())
    folder = cache / "rulesets" / key.hexdigest()[:16]
    rulesets, ids, failures, seconds = [], {}, {}, {}
    statements = set()
    for variant, pipelines in PIPELINES[mode]:
        target = folder / f"{variant}.json"
        log = folder / f"{variant}.log"
        if not target.exists():
            print(f"converting the rules with Zircolite ({variant}: {' + '.join(pipelines) or 'no pipeline'}) …",
                  flush=True)
            folder.mkdir(parents=True, exist_ok=True)
            work = Path(tempfile.mkdtemp(prefix=f"convert-{variant}-", dir=cache))
            run = measure(convert_cmd(zpy, zdir, rules, pipelines, log, debug=True), work, ok=(0, 2))
            shutil.move(str(saved_ruleset(work)), target)
            (folder / f"{variant}.seconds").write_text(f"{run.wall:.2f}")
            shutil.rmtree(work, ignore_errors=True)
        loaded = orjson.loads(target.read_bytes())
        rulesets.append(target)
        ids[variant] = {str(rule.get("id", "")).lower() for rule in loaded}
        statements.update(tuple(rule.get("rule") or ()) for rule in loaded)
        failures[variant] = conversion_failures(log) if log.exists() else {}
        seconds[variant] = float((folder / f"{variant}.seconds").read_text())
    return Converted(rulesets, ids, failures, seconds, len(statements))


def zircolite_detect(zpy: str, zdir: Path, evidence: Path, rulesets: list[Path], out: Path) -> list[str]:
    return [zpy, str(zdir / "zircolite.py"), "-q", "-e", str(evidence), "-r", *map(str, rulesets),
            "-c", str(zdir / "config" / "config.yaml"), "-o", str(out), "-l", str(out.with_suffix(".log"))]


def zircolite_rows(path: Path, names: dict[str, list[str]] | None = None) -> list[dict]:
    """Zircolite's detected_events JSON as one row per (rule, event): rule id and title, level, file base
    name (and relative path when `names` resolves it), EventRecordID."""
    rows = []
    for rule in orjson.loads(path.read_bytes()):
        for match in rule.get("matches", []):
            name = str(match.get("OriginalLogfile", ""))
            paths = (names or {}).get(name, [])
            record = match.get("EventRecordID")
            rows.append({
                "rule_id": str(rule.get("id", "")).lower(), "rule_title": rule.get("title"),
                "level": rule.get("rule_level"), "evidence": name,
                "evidence_path": paths[0] if len(paths) == 1 else None,
                "record_id": int(record) if record is not None else None,
                "computer": match.get("Computer"), "timestamp": match.get("SystemTime"),
            })
    return rows


# ---------------------------------------------------------------- turncoat

TURNCOAT = [sys.executable, "-m", "turncoat.cli"]


def turncoat_env(cache: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["XDG_CACHE_HOME"] = str(cache / "xdg")
    env["TURNCOAT_CACHE_DIR"] = str(cache / "turncoat")
    return env


def turncoat_rows(path: Path) -> list[dict]:
    rows = []
    with open(path, "rb") as fh:
        for line in fh:
            if line.strip():
                row = orjson.loads(line)
                row["rule_id"] = str(row.get("rule_id", "")).lower()
                row["evidence"] = Path(str(row.get("evidence_path", ""))).name
                rows.append(row)
    return rows


def turncoat_unconverted(rules: Path, cache: Path) -> dict[str, tuple[str, str]]:
    """Rule id → (path, reason) for the rules turncoat does not convert (`--list-unconverted`)."""
    out = subprocess.run(TURNCOAT + ["sigma", "--rules", str(rules), "--list-unconverted"],
                         check=False, capture_output=True, text=True, env=turncoat_env(cache))
    if out.returncode != 0:
        raise RuntimeError(f"turncoat sigma --list-unconverted failed ({out.returncode}): {out.stderr[-500:]}")
    result = {}
    for line in out.stdout.splitlines():
        parts = line.split("\t")
        if len(parts) < 3:  # tabs expanded to spaces on the way: the id is the one UUID-shaped word
            match = re.match(r"^(.*?)\s+([0-9a-fA-F]{8}(?:-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12})\s+(.*)$", line)
            if not match:
                continue
            parts = list(match.groups())
        result[parts[1].strip().lower()] = (parts[0].strip(), parts[2].strip())
    return result


# ---------------------------------------------------------------- corpora

def count_records(paths: list[Path]) -> dict[Path, int]:
    """Records per file as the `evtx` parser yields them, reading past bad records."""
    import evtx

    counts = {}
    for path in paths:
        n = 0
        try:
            it = evtx.PyEvtxParser(str(path)).records()
        except (OSError, RuntimeError):
            counts[path] = 0
            continue
        while True:
            try:
                next(it)
            except StopIteration:
                break
            except RuntimeError:  # a bad record or chunk: the parser goes on with the next
                continue
            n += 1
        counts[path] = n
    return counts


def copy_shared(source: Path, dest: Path) -> list[Path]:
    files = sorted(source.rglob("*.evtx"))
    for path in files:
        target = dest / path.relative_to(source)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, target)
    return files


def build_big(sources: list[Path], dest: Path, copies: int) -> None:
    """Zircolite reports only a file's base name: each copy's files carry the copy number."""
    build_corpus(dest, copies, sources, lambda copy, index, src: f"c{copy:03d}-{index:04d}-{src.name}")


# ---------------------------------------------------------------- comparing

def keys(rows: list[dict], collapse: bool = False) -> set[Key]:
    result = set()
    for row in rows:
        if row.get("record_id") is None or not str(row["evidence"]).lower().endswith(".evtx"):
            continue
        name = COPY_PREFIX.sub("", row["evidence"]) if collapse else row["evidence"]
        result.add((row["rule_id"], name, int(row["record_id"])))
    return result


def fmt_runs(runs: list[Run], records: int) -> str:
    walls = sorted(r.wall for r in runs)
    med = statistics.median(walls)
    rss = max(r.rss_kib for r in runs) / 1024
    tree = max(r.tree_kib for r in runs) / 1024
    return (f"{len(runs):>2} {walls[0]:>8.2f} {med:>8.2f} {walls[-1]:>8.2f} {records / med:>10,.0f} "
            f"{rss:>8.0f} {tree:>8.0f}")


def ratio_line(label: str, ours: list[Run], theirs: list[Run]) -> str:
    pairs = [t.wall / z.wall for t, z in zip(ours, theirs)]
    rss = [t.rss_kib / z.rss_kib for t, z in zip(ours, theirs) if z.rss_kib]
    if not pairs:
        return f"  {label}: -"
    return (f"  {label}: time turncoat / Zircolite median {statistics.median(pairs):.2f} "
            f"(min {min(pairs):.2f}, max {max(pairs):.2f}); peak RSS (largest process) "
            f"{statistics.median(rss):.2f}")


def report_agreement(label: str, zrows: list[dict], trows: list[dict], titles: dict[str, str],
                     not_converted: set[str], out: Path, show: int, collapse: bool = False) -> None:
    z, t = keys(zrows, collapse), keys(trows, collapse)
    both = z & t
    print(f"\nagreement, {label} (rule id, file, EventRecordID){' — copies collapsed' if collapse else ''}:")
    print(f"  Zircolite {len(z):,} hits over {len({k[0] for k in z}):,} rules; turncoat {len(t):,} over "
          f"{len({k[0] for k in t}):,}; both {len(both):,}")
    if z:
        print(f"  share of Zircolite's hits also found by turncoat: {100 * len(both) / len(z):.1f} %")
    if t:
        print(f"  share of turncoat's hits also found by Zircolite: {100 * len(both) / len(t):.1f} %")
    for name, diff in (("only Zircolite", z - t), ("only turncoat", t - z)):
        per_rule = Counter(k[0] for k in diff)
        unconverted = sum(n for rule, n in per_rule.items() if rule in not_converted)
        extra = f" ({unconverted:,} on rules turncoat does not convert)" if name == "only Zircolite" else ""
        print(f"  {name}: {len(diff):,} hits over {len(per_rule):,} rules{extra}")
        example = {}
        for k in sorted(diff):
            example.setdefault(k[0], k)
        for rule, n in per_rule.most_common(show):
            _, file_name, record = example[rule]
            print(f"    {n:>6,}  {rule}  {titles.get(rule, '?')[:60]}  e.g. {file_name} #{record}")
        slug = re.sub(r"\W+", "_", f"{label}_{name}{'_collapsed' if collapse else ''}").strip("_")
        path = out / f"{slug}.tsv"
        with open(path, "w", encoding="utf-8") as fh:
            fh.write("rule_id\trule_title\tfile\trecord_id\n")
            for rule, file_name, record in sorted(diff):
                fh.write(f"{rule}\t{titles.get(rule, '')}\t{file_name}\t{record}\n")
        print(f"    full list: {path}")


def load_rule_ids(rules: Path) -> dict[str, tuple[str, str]]:
    """Rule id → (path, title) for every YAML rule under `rules`."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    result = {}
    for path in sorted(list(rules.rglob("*.yml")) + list(rules.rglob("*.yaml"))):
        try:
            docs = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=loader))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            print(f"not a readable rule, left out: {path}")
            continue
        for doc in docs:
            if isinstance(doc, dict) and "detection" in doc:
                rid = str(doc.get("id") or path.resolve()).lower()
                result[rid] = (str(path.resolve()), str(doc.get("title", "")))
    return result


# ---------------------------------------------------------------- main

@dataclass
class Side:
    warm: list[Run] = field(default_factory=list)
    cold: list[Run] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)


def run_set(label: str, evidence: Path, repeats: int, warmup: int, args, zpy: str, converted: Converted,
            cache: Path, out: Path, state: dict) -> tuple[Side, Side, str]:
    """Warm (and cold) runs of both tools on `evidence`, alternating; hits of the last warm run."""
    zdir, work = args.zircolite, out / label
    zside, tside = Side(), Side()
    zhits, thits = work / "zircolite.json", work / "turncoat.jsonl"
    warm_cache = cache / "turncoat-warm"
    z_cmd = zircolite_detect(zpy, zdir, evidence, converted.rulesets, zhits)
    # --all-copies: search every stored copy of an event, as Zircolite reads each file on its own (by
    # default turncoat stores an event exported twice once, which on replicated copies is far less work)
    t_cmd = TURNCOAT + ["sigma", "--rules", str(args.rules), str(evidence), "--jsonl", str(thits), "--all-copies"]

    def turncoat(folder: str, env: dict[str, str]) -> Run | None:
        if not state["turncoat"]:
            return None
        try:
            return measure(t_cmd, work / folder, env=env)
        except RuntimeError as exc:
            print(f"turncoat side failed, Zircolite only from here: {exc}", flush=True)
            state["turncoat"] = False
            return None

    processed = "?"
    if state["turncoat"]:  # fills turncoat's conversion cache, so that its first warm run is warm
        try:
            turncoat_unconverted(args.rules, warm_cache)
        except RuntimeError as exc:
            print(f"turncoat side failed, Zircolite only from here: {exc}", flush=True)
            state["turncoat"] = False
    for _ in range(warmup):
        measure(z_cmd, work / "z-warmup")
        turncoat("t-warmup", turncoat_env(warm_cache))
    for i in range(repeats):
        run = measure(z_cmd, work / f"z-warm-{i}")
        zside.warm.append(run)
        match = re.search(r"Events\s+([\d,]+)", run.stdout)
        processed = match.group(1) if match else "?"
        if (t := turncoat(f"t-warm-{i}", turncoat_env(warm_cache))) is not None:
            tside.warm.append(t)
        if args.skip_cold:
            continue
        cold, fresh = Run(), []
        for variant, pipelines in PIPELINES[args.pipelines]:
            step = work / f"z-cold-{i}-{variant}"
            shutil.rmtree(step, ignore_errors=True)
            cold = add(cold, measure(convert_cmd(zpy, zdir, args.rules, pipelines, step / "convert.log", False),
                                     step, ok=(0, 2)))
            fresh.append(saved_ruleset(step))
        zside.cold.append(add(cold, measure(zircolite_detect(zpy, zdir, evidence, fresh, work / "z-cold.json"),
                                            work / f"z-cold-{i}")))
        empty = Path(tempfile.mkdtemp(prefix="turncoat-cold-", dir=cache))
        if (t := turncoat(f"t-cold-{i}", turncoat_env(empty))) is not None:
            tside.cold.append(t)
        shutil.rmtree(empty, ignore_errors=True)
    zside.rows = zircolite_rows(zhits)
    if state["turncoat"] and thits.exists():
        tside.rows = turncoat_rows(thits)
    return zside, tside, processed


def print_set(label: str, files: int, records: int, processed: str, zside: Side, tside: Side) -> None:
    print(f"\n{label}: {files:,} EVTX files, {records:,} records (evtx parser, past bad records); "
          f"Zircolite says it processed {processed}")
    print(f"{'tool':<10} {'run':<5} {'n':>2} {'min s':>8} {'median s':>8} {'max s':>8} {'rec/s med':>10} "
          f"{'RSS MiB':>8} {'tree MiB':>8} {'hits':>9}")
    for name, side, hits in (("zircolite", zside, len(keys(zside.rows))), ("turncoat", tside, len(keys(tside.rows)))):
        for mode in ("warm", "cold"):
            runs = getattr(side, mode)
            if runs:
                print(f"{name:<10} {mode:<5} {fmt_runs(runs, records)} {hits:>9,}")
    print(ratio_line("warm", tside.warm, zside.warm))
    if zside.cold:
        print(ratio_line("cold", tside.cold, zside.cold))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--zircolite", type=Path, help="a checkout of Zircolite (github.com/wagga40/Zircolite)")
    parser.add_argument("--zircolite-python", help="interpreter of an existing environment with Zircolite's requirements")
    parser.add_argument("--rules", type=Path, default=SHARED_RULES, help="Sigma rules folder (default: SigmaHQ windows)")
    parser.add_argument("--evtx", type=Path, default=SHARED_EVTX, help="EVTX folder (recursive)")
    parser.add_argument("--events", type=int, default=1_000_000, help="records in the big set (0: skip it)")
    parser.add_argument("--pipelines", choices=sorted(PIPELINES), default="merged",
                        help="Zircolite's pySigma pipelines (merged: sysmon and audit rulesets together)")
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per tool and mode, shared set")
    parser.add_argument("--big-repeats", type=int, default=1, help="timed runs per tool and mode, big set")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs before the shared set's timed ones")
    parser.add_argument("--skip-cold", action="store_true", help="warm runs only")
    parser.add_argument("--cache", type=Path, default=Path(tempfile.gettempdir()) / "turncoat-vs-zircolite",
                        help="Zircolite's environment, converted rulesets, turncoat's warm cache")
    parser.add_argument("--out", type=Path, help="results folder (default: a new one under --cache)")
    parser.add_argument("--show", type=int, default=15, help="rules listed per difference direction")
    parser.add_argument("--skip-turncoat", action="store_true", help="Zircolite's side only")
    parser.add_argument("--keep", action="store_true", help="keep the copied EVTX sets")
    parser.add_argument("--convert-hits", nargs=2, metavar=("ZIRCOLITE_JSON", "OUT_JSONL"),
                        help="only normalise a Zircolite output into JSON lines (paths resolved under --evtx)")
    args = parser.parse_args()

    if args.convert_hits:
        names: dict[str, list[str]] = defaultdict(list)
        for path in sorted(args.evtx.rglob("*.evtx")):
            names[path.name].append(str(path.relative_to(args.evtx)))
        rows, seen = [], set()
        for row in zircolite_rows(Path(args.convert_hits[0]), names):
            key = (row["rule_id"], row["evidence"], row["record_id"])
            if key not in seen:  # a rule matched by both of its converted variants
                seen.add(key)
                rows.append(row)
        with open(args.convert_hits[1], "wb") as fh:
            fh.writelines(orjson.dumps(row) + b"\n" for row in rows)
        print(f"{len(rows):,} distinct (rule, file, record) rows → {args.convert_hits[1]}")
        return
    if not args.zircolite or not (args.zircolite / "zircolite.py").is_file():
        raise SystemExit("--zircolite DIR (a checkout of Zircolite) is required")
    args.rules, args.evtx = args.rules.resolve(), args.evtx.resolve()
    cache = args.cache.resolve()
    cache.mkdir(parents=True, exist_ok=True)
    out = (args.out or cache / time.strftime("run-%Y%m%d-%H%M%S")).resolve()
    out.mkdir(parents=True, exist_ok=True)

    zpy = zircolite_python(args, cache)
    versions = zircolite_versions(zpy, args.zircolite)
    print(versions)
    universe = load_rule_ids(args.rules)
    titles = {rid: title for rid, (_, title) in universe.items()}
    converted = cached_rulesets(zpy, args.zircolite, args.rules, args.pipelines, cache, versions)
    z_ids = set().union(*converted.ids.values()) & set(universe)
    z_reason = {}
    for failures in converted.failures.values():
        z_reason.update(failures)

    state = {"turncoat": not args.skip_turncoat}
    t_missing: dict[str, tuple[str, str]] = {}
    if state["turncoat"]:
        try:
            t_missing = turncoat_unconverted(args.rules, cache / "turncoat-warm")
        except RuntimeError as exc:
            print(f"turncoat side unavailable, Zircolite only: {exc}")
            state["turncoat"] = False

    print(f"\nconversion coverage: {len(universe):,} rules in {args.rules}")
    variants = ", ".join(f"{v} {len(converted.ids[v] & set(universe)):,} ({converted.seconds[v]:.1f} s)"
                         for v, _ in PIPELINES[args.pipelines])
    print(f"  Zircolite ({args.pipelines}: {variants}): {len(z_ids):,} converted, {len(universe) - len(z_ids):,} not; "
          f"{converted.queries:,} distinct SQL statements run per evidence set")
    reasons = Counter(re.sub(r" in /\S.*$", "", z_reason.get(universe[r][0], "?"))[:90]
                      for r in set(universe) - z_ids)
    for reason, n in reasons.most_common(5):
        print(f"    {n:>5}  {reason}")
    t_ids = set(universe) - set(t_missing)
    if state["turncoat"]:
        print(f"  turncoat: {len(t_ids):,} converted, {len(universe) - len(t_ids):,} not")
        for reason, n in Counter(v[1][:90] for v in t_missing.values()).most_common(5):
            print(f"    {n:>5}  {reason}")
        for name, only, why in (("Zircolite only", z_ids - t_ids, lambda r: t_missing.get(r, ("", "?"))[1]),
                                ("turncoat only", t_ids - z_ids, lambda r: z_reason.get(universe[r][0], "?"))):
            print(f"  converted by {name}: {len(only):,}")
            for rid in sorted(only)[:args.show]:
                print(f"    {rid}  {titles[rid][:50]}  — other side: {why(rid)[:80]}")

    work = Path(tempfile.mkdtemp(prefix="vs-zircolite-", dir=cache))
    try:
        shared = work / "shared"
        sources = copy_shared(args.evtx, shared)
        counts = count_records(sources)
        records = sum(counts.values())
        zside, tside, processed = run_set("shared", shared, args.repeats, args.warmup, args, zpy, converted,
                                          cache, out, state)
        print_set("shared set", len(sources), records, processed, zside, tside)
        if state["turncoat"]:
            report_agreement("shared", zside.rows, tside.rows, titles, set(universe) - t_ids, out, args.show)

        if args.events > 0:
            readable = [p for p in sources if "odd" not in p.relative_to(args.evtx).parts]
            per_copy = sum(counts[p] for p in readable)
            copies = max(1, math.ceil(args.events / per_copy))
            big = work / "big"
            build_big(readable, big, copies)
            big_records = per_copy * copies
            print(f"\nbig set: {copies} copies of {len(readable)} readable files = {big_records:,} records", flush=True)
            zbig, tbig, processed = run_set("big", big, args.big_repeats, 0, args, zpy, converted, cache, out, state)
            print_set("big set", copies * len(readable), big_records, processed, zbig, tbig)
            if state["turncoat"]:
                report_agreement("big", zbig.rows, tbig.rows, titles, set(universe) - t_ids, out, args.show)
                report_agreement("big", zbig.rows, tbig.rows, titles, set(universe) - t_ids, out, args.show,
                                 collapse=True)
        print(f"\nhit files and difference lists: {out}")
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
