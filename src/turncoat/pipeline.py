"""The pipeline steps as functions over a case folder: what the CLI commands call, and tests too.

Data flows one way: readers → store → detectors → assessor → reports. Each step reads what the
previous one wrote in the case folder, so a case can be re-assessed with new packs without
re-ingesting.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from turncoat.assess.verdict import assess as build_report
from turncoat.detect.run import run_detection
from turncoat.ingest import IngestResult, Progress
from turncoat.ingest import ingest as ingest_items
from turncoat.intel.pack import Pack, find_pack, load_pack, load_packs
from turncoat.store.case import Case, dump_json, write_atomic

if TYPE_CHECKING:  # Sigma modules load only when Sigma runs
    from turncoat.detect.sigma.engine import Filters
    from turncoat.detect.sigma.rules import RuleSet


class CaseError(Exception):
    """The case folder is missing a step's input (exit code 2)."""


def _case(case_dir: Path) -> Case:
    case = Case(Path(case_dir))
    if not case.exists():
        raise CaseError(f"{case_dir} is not a turncoat case (no manifest.json); run `turncoat ingest` first")
    return case


def packs(names: list[str] | None) -> list[Pack]:
    return load_packs(names)


def ingest(evidence: list[Path], case_dir: Path, workers: int = 2, progress: Progress | None = None,
           source_tz: dict[str, str] | None = None, yara_rules: list[Path] | None = None) -> IngestResult:
    paths = [Path(p) for p in evidence]
    return ingest_items(paths, Case(Path(case_dir)), workers=workers, progress=progress, source_tz=source_tz,
                        yara_rules=yara_rules)


def beacons(case_dir: Path, rescore: bool = False) -> list[dict[str, Any]]:
    """The case's ranked beacon series (suppressed ones included, marked), from the `beacons` table
    that `detect` writes; scored now if `detect` has not run or `rescore` asks."""
    from turncoat.detect.beacon import BEACON_COLUMNS, run_beacons

    con = _case(case_dir).connect()
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if rescore or "beacons" not in tables:
            run_beacons(con)
        names = list(BEACON_COLUMNS)
        rows = con.execute(f"SELECT {', '.join(chr(34) + n + chr(34) for n in names)} FROM beacons "
                           "ORDER BY suppressed_by IS NOT NULL, NOT candidate, established, score DESC, host, "
                           "destination").fetchall()
    finally:
        con.close()
    out = [dict(zip(names, row)) for row in rows]
    for row in out:
        row["histogram"] = orjson.loads(row["histogram"]) if row["histogram"] else None
    return out


def print_beacons(rows: list[dict[str, Any]], console: Console, limit: int, show_all: bool) -> None:
    from turncoat.report.present import period_text

    shown = [r for r in rows if show_all or r["candidate"]]
    table = Table(box=None)
    for name, wrap in (("#", False), ("score", False), ("host → destination (process)", True), ("period", False),
                       ("jitter", False), ("beats", False), ("first seen (UTC)", True), ("hosts", False)):
        table.add_column(name, no_wrap=not wrap, overflow="fold")
    for rank, r in enumerate(shown[:limit], 1):
        series = f"{r['host']} → {r['destination']}" + (f" ({r['process']})" if r["process"] else "")
        if r["suppressed_by"]:
            series += f" — benign: {r['suppressed_by']}"
        elif r["established"]:
            series += " — since the logs began"
        table.add_row(str(rank), f"{r['score']:.2f}", escape(series), period_text(r["period_s"]),
                      "" if r["jitter"] is None else f"{r['jitter']:.0%}", str(r["count"]),
                      r["first_seen"].strftime("%Y-%m-%d %H:%M") if r["first_seen"] else "",
                      str(r["hosts_sharing"]))
    console.print(table)
    hidden = len(rows) - len(shown)
    if hidden and not show_all:
        console.print(f"{hidden} more series below the candidate score or explained as benign (--all shows them)")


TIMELINE_COLUMNS = ("ts", "host", "artifact", "action", "subject", "detail", "evidence_id", "seq", "source_path")


def triage_timeline(case_dir: Path, hosts: list[str]) -> list[dict[str, Any]]:
    """Every dated triage fact of the case (or of `hosts`), oldest first."""
    con = _case(case_dir).connect(read_only=True)
    try:
        where = f"WHERE host IN ({', '.join('?' for _ in hosts)})" if hosts else ""
        rows = con.execute(f"SELECT * FROM triage_timeline {where} ORDER BY ts NULLS LAST, host, artifact, seq",
                           [h.lower() for h in hosts]).fetchall()
    finally:
        con.close()
    return [dict(zip(TIMELINE_COLUMNS, row)) for row in rows]


def write_triage_timeline(rows: list[dict[str, Any]], path: Path) -> None:
    """Timesketch JSONL: `message`, `datetime`, `timestamp_desc` and the row's own fields."""
    with Path(path).open("wb") as handle:
        for row in rows:
            if row["ts"] is None:
                continue
            doc = {**row, "datetime": row["ts"].isoformat(), "timestamp_desc": f"{row['artifact']} {row['action']}",
                   "message": f"[{row['host']}] {row['action']} {row['subject'] or ''} {row['detail'] or ''}".strip()}
            doc["ts"] = doc["datetime"]
            handle.write(orjson.dumps(doc) + b"\n")


def print_triage_timeline(rows: list[dict[str, Any]], console: Console, limit: int) -> None:
    table = Table(box=None)
    for name, wrap in (("time (UTC)", False), ("host", False), ("artifact", False), ("action", False),
                       ("subject", True), ("detail", True)):
        table.add_column(name, no_wrap=not wrap, overflow="fold")
    for row in rows[:limit]:
        table.add_row(row["ts"].strftime("%Y-%m-%d %H:%M:%S") if row["ts"] else "—", row["host"], row["artifact"],
                      row["action"] or "", escape(str(row["subject"] or "")), escape(str(row["detail"] or ""))[:120])
    console.print(table)
    if len(rows) > limit:
        console.print(f"… {len(rows) - limit} more rows (--limit, or --jsonl FILE for all)")


def detect(case_dir: Path, pack_names: list[str] | None, sigma_rules: list[Path] | None = None) -> dict[str, int]:
    case = _case(case_dir)
    con = case.connect()
    try:
        return run_detection(con, load_packs(pack_names), sigma_rules)
    finally:
        con.close()


def assess(case_dir: Path, pack_names: list[str] | None) -> dict[str, Any]:
    """Verdicts for every host; writes report.json and the `assessments` table."""
    case = _case(case_dir)
    loaded = load_packs(pack_names)
    con = case.connect()
    try:
        tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        if "findings" not in tables:
            run_detection(con, loaded)
        report = build_report(con, loaded, case.load_manifest())
        con.execute(
            "CREATE OR REPLACE TABLE assessments (host VARCHAR, campaign VARCHAR, stage VARCHAR, confidence VARCHAR, "
            "first_execution VARCHAR, first_c2 VARCHAR, activation_eta VARCHAR)"
        )
        rows = [(h["host"], c["campaign"], c["stage"], c["confidence"], c["first_execution"], c["first_c2"],
                 c["activation_eta"]) for h in report["hosts"] for c in h["campaigns"]]
        if rows:
            con.executemany("INSERT INTO assessments VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
    finally:
        con.close()
    write_atomic(case.report_path, dump_json(report))
    return report


def load_report(case_dir: Path, pack_names: list[str] | None = None) -> dict[str, Any]:
    """report.json as assessed; re-assessed first when evidence was ingested after it was written."""
    case = _case(case_dir)
    if not case.report_path.is_file() or case.report_path.stat().st_mtime_ns < case.manifest_path.stat().st_mtime_ns:
        return assess(case_dir, pack_names)
    return orjson.loads(case.report_path.read_bytes())


def write_reports(case_dir: Path, report: dict[str, Any], formats: str, lang: str, tz: str, detail: bool,
                  redact: bool) -> list[Path]:
    """Render the requested formats into CASE/reports (and CASE/reports/redacted with --redact)."""
    from turncoat.report.csv_hosts import write_hosts_csv
    from turncoat.report.html import write_html
    from turncoat.report.redact import redact as redact_report

    case = _case(case_dir)
    wanted = {f.strip().lower() for f in formats.split(",") if f.strip()}
    unknown = wanted - {"html", "json", "csv"}
    if unknown:
        raise CaseError(f"unknown report format(s): {', '.join(sorted(unknown))} (known: html, json, csv)")
    if lang not in ("en", "fr"):
        raise CaseError(f"unknown language `{lang}` (known: en, fr)")
    targets = [(case.reports, report)]
    if redact:
        targets.append((case.reports / "redacted", redact_report(report)))
    written: list[Path] = []
    for folder, doc in targets:
        folder.mkdir(parents=True, exist_ok=True)
        if "json" in wanted:
            if doc is report:  # CASE/report.json is written by assess; only the redacted copy is new
                written.append(case.report_path)
            else:
                write_atomic(folder / "report.json", dump_json(doc))
                written.append(folder / "report.json")
        if "csv" in wanted:
            path = folder / "hosts.csv"
            write_hosts_csv(doc, path)
            written.append(path)
        if "html" in wanted:
            written.append(write_html(doc, folder / "report.html", lang=lang, detail=detail, tz=tz))
    return written


def render_terminal(report: dict[str, Any], console: Console, lang: str, detail: bool, tz: str) -> None:
    from turncoat.report.terminal import render_summary

    render_summary(report, console, lang=lang, detail=detail)


def query(case_dir: Path, sql: str, console: Console, format: str = "table", limit: int = 100) -> None:
    import csv
    import sys

    import duckdb

    case = _case(case_dir)
    con = case.connect()
    try:
        try:
            result = con.execute(sql)
            columns = [d[0] for d in result.description or []]
            rows = result.fetchall()
        except duckdb.Error as exc:
            raise CaseError(f"query failed: {exc}") from exc
    finally:
        con.close()
    if format == "json":
        sys.stdout.write(orjson.dumps([dict(zip(columns, r)) for r in rows], default=str).decode() + "\n")
    elif format == "csv":
        writer = csv.writer(sys.stdout)
        writer.writerow(columns)
        writer.writerows(rows)
    else:
        table = Table(*columns)
        for row in rows[:limit]:
            table.add_row(*("" if v is None else str(v) for v in row))
        console.print(table)
        if len(rows) > limit:
            console.print(f"({len(rows) - limit} more rows; use --limit or --format csv)")


def simulate(output: Path, scenario: str, scale: int, seed: int) -> dict[str, Any]:
    from turncoat.simulate import GENERIC_SCENARIOS, SCENARIOS, TRIAGE_SCENARIOS
    from turncoat.simulate import simulate as run_simulation

    known = {**SCENARIOS, **TRIAGE_SCENARIOS, **GENERIC_SCENARIOS}
    if scenario not in known:
        raise CaseError(f"unknown scenario `{scenario}` (known: {', '.join(sorted(known))})")
    try:
        return run_simulation(Path(output), scenario=scenario, scale=scale, seed=seed)
    except FileExistsError as exc:
        raise CaseError(str(exc)) from exc


def reset_demo(output: Path) -> None:
    """Remove what an earlier `turncoat demo` wrote in `output`, and nothing else.

    The demo folder holds only `simulated/` (with its ground truth) and `case/` (with its manifest);
    anything else there means the folder is not a demo folder, and it is left alone.
    """
    import shutil

    output = Path(output)
    if not output.exists():
        return
    simulated, case = output / "simulated", output / "case"
    others = [p.name for p in output.iterdir() if p.name not in ("simulated", "case")]
    looks_like_demo = (not simulated.exists() or (simulated / "ground-truth.json").is_file()) and (
        not case.exists() or (case / "manifest.json").is_file())
    if others or not looks_like_demo:
        raise CaseError(f"{output} exists and is not an earlier demo folder; choose another with --output")
    shutil.rmtree(simulated, ignore_errors=True)
    shutil.rmtree(case, ignore_errors=True)


def show_pack(name: str, console: Console) -> None:
    pack = load_pack(find_pack(name))
    summary = pack.summary()
    console.print(f"[bold]{pack.id}[/bold] — {pack.name}")
    console.print(str(pack.meta.get("description", "")).strip())
    console.print(f"exposure window: {summary['exposure_window']['start']} → {summary['exposure_window']['end']}")
    console.print(f"dormancy days: {summary['dormancy_days']}")
    for platform, versions in (pack.meta.get("versions") or {}).items():
        console.print(f"{platform}: affected {', '.join(map(str, versions.get('affected', [])))}; "
                      f"clean {', '.join(map(str, versions.get('clean', [])))}")
    counts: dict[str, int] = {}
    for ioc in pack.iocs:
        counts[ioc["type"]] = counts.get(ioc["type"], 0) + 1
    console.print("indicators: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    table = Table("rule", "stage", "confidence", "title")
    for rule in pack.rules:
        title = rule.get("title") or {}
        table.add_row(rule["id"], rule["stage"], rule["confidence"], title.get("en", "") if isinstance(title, dict) else str(title))
    console.print(table)
    from turncoat.detect.sigma_detector import LEVEL_CONFIDENCE, pack_rules

    sigma = pack_rules(pack)
    if sigma.rules or sigma.unconverted:
        rules = Table("Sigma rule", "stage", "level → confidence", "title")
        for rule in sigma.rules:
            rules.add_row(rule.rule_id, str(rule.custom.get("stage", "")),
                          f"{rule.level} → {LEVEL_CONFIDENCE.get(rule.level, 'low')}", rule.title)
        console.print(rules)
        for item in sigma.unconverted:
            console.print(f"[yellow]![/yellow] {item.path}: {item.reason}", highlight=False)
    console.print("sources:")
    for ref in pack.meta.get("references") or []:
        console.print(f"  - {ref.get('title')}" + (f" <{ref['url']}>" if ref.get("url") else ""), highlight=False)


def evidence_paths(case: Case) -> dict[str, list[str]]:
    """evidence_id → every path it was read from (identical copies are read once, listed as duplicates)."""
    paths: dict[str, list[str]] = {}
    for item in case.load_manifest().get("items", []):
        paths[item["evidence_id"]] = [item["path"]] + [d["path"] for d in item.get("duplicates", [])]
    return paths


def sigma_search(case_dir: Path, ruleset: RuleSet, filters: Filters,
                 progress: Callable[[int, int], None] | None = None) -> tuple[list[dict[str, Any]], int]:
    """Sigma rules over an ingested case: (one record per hit, records searched)."""
    from turncoat.detect.sigma import hunt
    from turncoat.detect.sigma.output import records

    case = _case(case_dir)
    con = case.connect()
    try:
        run, correlation_hits = hunt(con, ruleset, filters, progress)
    finally:
        con.close()
    paths = evidence_paths(case)
    if filters.deduplicate:  # each event once: name the file it was kept from
        paths = {k: v[:1] for k, v in paths.items()}
    rows = list(records(run, correlation_hits, paths, ruleset.correlations))
    rows.sort(key=lambda r: (r["timestamp"] or "", r["host"] or "", r["rule_title"], r["evidence_path"] or "",
                             r["seq"] or 0))
    return rows, sum(run.targets.values())
