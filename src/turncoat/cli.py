"""The `turncoat` command: thin wrappers that parse arguments, call the pipeline and render.

Exit codes (DESIGN.md) let RMM and MSP scripts branch: 0 every host cleared, 1 internal error (a bug),
2 usage error, 3 inconclusive (some host cannot be cleared), 4 compromise evidence.
"""

from __future__ import annotations

import sys
import traceback
import webbrowser
from datetime import UTC
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import orjson
import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from turncoat import __version__, pipeline
from turncoat.evidence.network import BY_NAME as NET_FORMATS
from turncoat.intel.pack import PackError
from turncoat.timezones import ZoneError, parse_source_zones

if TYPE_CHECKING:  # Sigma modules load only when a Sigma command runs
    from datetime import datetime

    from turncoat.detect.sigma.rules import RuleSet

app = typer.Typer(
    name="turncoat",
    help="Find which machines a trojanized, signed app reached, how far it got, and what to do.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
intel_app = typer.Typer(help="Campaign packs: list and show them.", no_args_is_help=True)
app.add_typer(intel_app, name="intel")

err = Console(stderr=True)
out = Console()
ISSUES_URL = "the project's issue tracker"
EXIT_MEANINGS = {0: "every machine cleared", 3: "inconclusive: some machines cannot be cleared",
                 4: "compromise evidence"}
MAX_MESSAGES = 25  # problems printed while ingesting; the manifest keeps them all


class UsageError(Exception):
    """Bad arguments or nothing usable at the given paths (exit code 2)."""


Evidence = Annotated[list[Path], typer.Argument(
    help="Evidence files or folders (EVTX, JSON exports, Zeek, Suricata, DNS, proxy, firewall and DHCP logs, archives, "
    "triage collections: KAPE, Velociraptor, copied volumes and folders).")]
CaseOpt = Annotated[Path, typer.Option("--output", "-o", help="Case folder to create or add to.")]
CaseArg = Annotated[Path, typer.Argument(help="Case folder.")]
PackOpt = Annotated[list[str] | None, typer.Option("--pack", help="Pack id or folder (repeatable); default: all shipped packs.")]
LangOpt = Annotated[str, typer.Option("--lang", help="Report language: en or fr.")]
FormatOpt = Annotated[str, typer.Option("--format", help="Comma-separated: html,json,csv.")]
TzOpt = Annotated[str, typer.Option("--tz", help="Time zone for displayed times (e.g. Europe/Paris); stored times stay UTC.")]
DetailOpt = Annotated[bool, typer.Option("--detail", help="Show full URLs and every evidence row.")]
RedactOpt = Annotated[bool, typer.Option("--redact", help="Also write a shareable copy with hosts and users pseudonymised.")]
WorkersOpt = Annotated[int, typer.Option("--workers", help="Parallel reader processes.", min=1, max=64)]
SourceTzOpt = Annotated[list[str] | None, typer.Option(
    "--source-tz", help="Zone of sources that log local time: ZONE for all, or SOURCE=ZONE "
    "(e.g. windows-dns-debug=Europe/Paris); repeatable. Default UTC.")]


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"), BarColumn(), DownloadColumn(), TimeElapsedColumn(),
        TextColumn("{task.fields[item]}", style="dim"), console=err, transient=True, disable=not err.is_terminal,
    )


YaraOpt = Annotated[list[Path] | None, typer.Option(
    "--yara", help="Also scan triage collections' files with these YARA rule files or folders (repeatable); "
    "packs bring their own.")]


def _ingest(evidence: list[Path], case_dir: Path, workers: int, source_tz: list[str] | None = None,
            yara: list[Path] | None = None) -> None:
    for path in yara or []:
        if not path.exists():
            raise UsageError(f"no YARA rules at {path}")
    try:
        zones = parse_source_zones(source_tz or [], set(NET_FORMATS))
    except ZoneError as exc:
        raise UsageError(str(exc)) from exc
    with _progress() as progress:
        task = progress.add_task("reading evidence", total=None, item="")

        def advance(item: str, done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, item=item[-60:])

        result = pipeline.ingest(evidence, case_dir, workers=workers, progress=advance, source_tz=zones,
                                 yara_rules=yara)
    for message in result.messages[:MAX_MESSAGES]:
        err.print(f"[yellow]![/yellow] {escape(message)}", markup=True, highlight=False, soft_wrap=True)
    if len(result.messages) > MAX_MESSAGES:
        err.print(f"[yellow]![/yellow] … and {len(result.messages) - MAX_MESSAGES} more: every problem, with its "
                  f"file and position, is in {escape(str(case_dir / 'manifest.json'))}")
    items = result.manifest["items"]
    records = sum(i.get("records", 0) for i in items)
    err.print(f"ingested {result.new_items} new item(s), {result.skipped} already in the case, "
              f"{records} records in {case_dir}")
    if not any(i.get("status") == "read" for i in items):
        raise UsageError(f"nothing readable in {', '.join(map(str, evidence))}: no event log, network log or "
                         "triage collection was recognised")


@app.command()
def ingest(evidence: Evidence, output: CaseOpt, workers: WorkersOpt = 2, source_tz: SourceTzOpt = None,
           yara: YaraOpt = None) -> None:
    """Read evidence into a case store (Parquet + DuckDB) and write its manifest."""
    _ingest(evidence, output, workers, source_tz, yara)


SigmaOpt = Annotated[list[Path] | None, typer.Option(
    "--sigma", help="Also run these Sigma rule files or folders (repeatable); packs bring their own.")]


def _sigma_paths(paths: list[Path] | None) -> list[Path] | None:
    for path in paths or []:
        if not path.exists():
            raise UsageError(f"no Sigma rules at {path}")
    return paths


@app.command()
def detect(case: CaseArg, pack: PackOpt = None, sigma: SigmaOpt = None) -> None:
    """Run intel packs (IOCs, behaviour rules, Sigma) and your Sigma rules over the case; writes findings."""
    counts = pipeline.detect(case, pack, _sigma_paths(sigma))
    for pack_id, count in counts.items():
        err.print(f"{pack_id}: {count} finding(s)")


@app.command()
def assess(case: CaseArg, pack: PackOpt = None, lang: LangOpt = "en", tz: TzOpt = "UTC") -> None:
    """Per-host verdicts, confidence, coverage and activation ETA; writes CASE/report.json."""
    report = pipeline.assess(case, pack)
    pipeline.render_terminal(report, out, lang=lang, detail=False, tz=tz)
    raise typer.Exit(report["summary"]["exit_code"])


@app.command()
def report(case: CaseArg, format: FormatOpt = "html,json,csv", lang: LangOpt = "en", tz: TzOpt = "UTC",
           detail: DetailOpt = False, redact: RedactOpt = False, open_: Annotated[bool, typer.Option("--open", help="Open the HTML report.")] = False) -> None:
    """Write reports (HTML, JSON, CSV) from CASE/report.json (re-assessed if evidence was added since)."""
    report_doc = pipeline.load_report(case)
    written = pipeline.write_reports(case, report_doc, formats=format, lang=lang, tz=tz, detail=detail, redact=redact)
    pipeline.render_terminal(report_doc, out, lang=lang, detail=detail, tz=tz)
    _print_written(written, open_)
    raise typer.Exit(report_doc["summary"]["exit_code"])


@app.command()
def hunt(evidence: Evidence, output: CaseOpt, pack: PackOpt = None, format: FormatOpt = "html,json,csv",
         lang: LangOpt = "en", tz: TzOpt = "UTC", detail: DetailOpt = False, redact: RedactOpt = False,
         workers: WorkersOpt = 2, source_tz: SourceTzOpt = None, sigma: SigmaOpt = None, yara: YaraOpt = None,
         open_: Annotated[bool, typer.Option("--open", help="Open the HTML report.")] = False) -> None:
    """Ingest → detect → assess → report, in one command."""
    sigma = _sigma_paths(sigma)
    _ingest(evidence, output, workers, source_tz, yara)
    pipeline.detect(output, pack, sigma)
    report_doc = pipeline.assess(output, pack)
    written = pipeline.write_reports(output, report_doc, formats=format, lang=lang, tz=tz, detail=detail, redact=redact)
    pipeline.render_terminal(report_doc, out, lang=lang, detail=detail, tz=tz)
    _print_written(written, open_)
    raise typer.Exit(report_doc["summary"]["exit_code"])


@app.command()
def query(case: CaseArg, sql: Annotated[str, typer.Argument(help="SQL over the case store (DuckDB).")],
          format: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
          limit: Annotated[int, typer.Option("--limit", help="Rows shown in table format.")] = 100) -> None:
    """Run SQL over the case store (tables: win_events, findings; ECS views: ecs_process, ecs_dns …)."""
    pipeline.query(case, sql, out, format=format, limit=limit)


@app.command()
def beacons(case: CaseArg,
            json_out: Annotated[Path | None, typer.Option("--json", help="Write every ranked series as JSON.")] = None,
            show_all: Annotated[bool, typer.Option("--all", help="Also show series below the candidate score "
                                                   "and those explained as benign.")] = False,
            limit: Annotated[int, typer.Option("--limit", help="Rows shown on screen.")] = 50,
            rescore: Annotated[bool, typer.Option("--rescore", help="Score again instead of reading what "
                                                  "detect stored.")] = False) -> None:
    """Ranked beacon candidates: series of connections, requests or lookups that repeat on a rhythm."""
    rows = pipeline.beacons(case, rescore)
    if json_out:
        json_out.write_bytes(orjson.dumps(rows, option=orjson.OPT_INDENT_2 | orjson.OPT_NAIVE_UTC) + b"\n")
        err.print(f"{len(rows)} series written to {json_out}", highlight=False, soft_wrap=True)
    pipeline.print_beacons(rows, out, limit, show_all)


@app.command()
def timeline(case: CaseArg,
             host: Annotated[list[str] | None, typer.Option("--host", help="Only this host (repeatable).")] = None,
             jsonl: Annotated[Path | None, typer.Option("--jsonl", help="Write a Timesketch-ready JSONL file.")] = None,
             limit: Annotated[int, typer.Option("--limit", help="Rows shown on screen.")] = 200) -> None:
    """The machines' story as their triage collections tell it: runs, installs, tasks, detections, files."""
    rows = pipeline.triage_timeline(case, host or [])
    if jsonl:
        pipeline.write_triage_timeline(rows, jsonl)
        err.print(f"{len(rows)} timeline rows written to {jsonl}", highlight=False, soft_wrap=True)
        return
    pipeline.print_triage_timeline(rows, out, limit)


@app.command()
def simulate(output: Annotated[Path, typer.Argument(help="Folder to write the synthetic evidence to.")],
             scenario: Annotated[str, typer.Option("--scenario", help="office, clean, blind, aftermath, netonly, triage or driftapp.")] = "office",
             scale: Annotated[int, typer.Option("--scale", min=1, help="Multiply the office N times.")] = 1,
             seed: Annotated[int, typer.Option("--seed")] = 7) -> None:
    """Write a synthetic small office's evidence and its ground truth (for demos, tests, benchmarks)."""
    truth = pipeline.simulate(output, scenario, scale, seed)
    written = output / ("triage" if scenario == "triage" else "evidence")
    err.print(f"{len(truth['hosts'])} hosts written to {written}; ground truth in {output / 'ground-truth.json'}")


@app.command()
def demo(output: Annotated[Path, typer.Option("--output", "-o", help="Where to put the demo case.")] = Path("turncoat-demo"),
         lang: LangOpt = "en", scenario: Annotated[str, typer.Option("--scenario")] = "office",
         open_: Annotated[bool, typer.Option("--open", help="Open the HTML report.")] = False) -> None:
    """Simulate a small office hit by the 3CX compromise, hunt it, and print where the report is."""
    pipeline.reset_demo(output)
    truth = pipeline.simulate(output / "simulated", scenario, 1, 7)
    case_dir = output / "case"
    err.print(f"simulated {len(truth['hosts'])} hosts in {output / 'simulated' / 'evidence'}")
    zone = truth.get("network", {}).get("time_zone")  # the office's DNS server logs its local time
    _ingest([output / "simulated" / "evidence"], case_dir, 2, [zone] if zone else None)
    pipeline.detect(case_dir, None)
    report_doc = pipeline.assess(case_dir, None)
    written = pipeline.write_reports(case_dir, report_doc, formats="html,json,csv", lang=lang, tz="UTC",
                                     detail=False, redact=False)
    pipeline.render_terminal(report_doc, out, lang=lang, detail=False, tz="UTC")
    _print_written(written, open_)
    code = report_doc["summary"]["exit_code"]
    # The demo succeeded; say what a real hunt of this evidence would have returned to a script.
    err.print(f"demo finished: `turncoat hunt` on this evidence exits with {code} ({EXIT_MEANINGS[code]})")


RulesOpt = Annotated[list[Path] | None, typer.Option(
    "--rules", help="Sigma rule file or folder (repeatable), e.g. a SigmaHQ checkout's rules/windows.")]


def _load_sigma(rules: list[Path], placeholders: Path | None, cache: bool, min_level: str | None,
                status: list[str] | None) -> RuleSet:
    from turncoat.detect.sigma.placeholders import PlaceholderError, load_placeholders
    from turncoat.detect.sigma.rules import LEVELS, STATUSES, keep, load_rules

    for path in rules:
        if not path.exists():
            raise UsageError(f"no Sigma rules at {path}")
    if min_level and min_level not in LEVELS:
        raise UsageError(f"--min-level must be one of {', '.join(LEVELS)}")
    for value in status or []:
        if value not in STATUSES:
            raise UsageError(f"--status must be one of {', '.join(STATUSES)}")
    try:
        values = load_placeholders(placeholders) if placeholders else {}
    except PlaceholderError as exc:
        raise UsageError(str(exc)) from exc
    with _progress() as progress:
        task = progress.add_task("converting Sigma rules", total=None, item="")

        def advance(done: int, total: int) -> None:
            progress.update(task, completed=done, total=total, item=f"{done}/{total} files")

        ruleset = load_rules(rules, values, cache=cache, progress=advance)
    return keep(ruleset, min_level, status)


def _when(text: str | None, name: str) -> datetime | None:
    from datetime import datetime

    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise UsageError(f"{name}: {text!r} is not an ISO date or time (e.g. 2023-03-22 or 2023-03-22T10:00Z)") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def sigma(
    evidence: Annotated[list[Path] | None, typer.Argument(help="Evidence files or folders to hunt (ingested to a temporary case).")] = None,
    rules: RulesOpt = None,
    case: Annotated[Path | None, typer.Option("--case", help="Hunt an existing case instead of evidence.")] = None,
    keep_case: Annotated[Path | None, typer.Option("--keep-case", help="Ingest into this case folder and keep it.")] = None,
    jsonl: Annotated[Path | None, typer.Option("--jsonl", help="Write one JSON object per hit.")] = None,
    timeline: Annotated[Path | None, typer.Option("--timeline", help="Write a Timesketch-ready JSONL timeline.")] = None,
    min_level: Annotated[str | None, typer.Option("--min-level", help="informational, low, medium, high or critical.")] = None,
    status: Annotated[list[str] | None, typer.Option("--status", help="Only rules with this status (repeatable).")] = None,
    host: Annotated[list[str] | None, typer.Option("--host", help="Only these hosts (repeatable).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only events at or after this UTC time.")] = None,
    until: Annotated[str | None, typer.Option("--until", help="Only events before this UTC time.")] = None,
    all_copies: Annotated[bool, typer.Option("--all-copies", help="Search every stored copy of an event (as file-by-file tools do), not each event once.")] = False,
    placeholders: Annotated[Path | None, typer.Option("--placeholders", help="YAML map of %placeholder% names to value lists for the expand modifier.")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Reconvert every rule (ignore the conversion cache).")] = False,
    list_unconverted: Annotated[bool, typer.Option("--list-unconverted", help="Print rules that cannot run (path, id, reason) and stop.")] = False,
    workers: WorkersOpt = 2, source_tz: SourceTzOpt = None,
) -> None:
    """Hunt with Sigma rules over event logs and network logs (the job of Zircolite, Hayabusa, Chainsaw)."""
    import tempfile

    from turncoat.detect.sigma.engine import Filters
    from turncoat.detect.sigma.output import summary, write_jsonl, write_timeline

    if not rules:
        raise UsageError("give at least one --rules file or folder")
    ruleset = _load_sigma(rules, placeholders, not no_cache, min_level, status)
    if list_unconverted:
        for item in ruleset.unconverted:
            typer.echo(f"{item.path}\t{item.rule_id}\t{item.reason}")  # tab-separated for scripts, not rich
        err.print(f"{len(ruleset.rules) + len(ruleset.correlations)} rule(s) converted, "
                  f"{len(ruleset.unconverted)} not, from {ruleset.files} file(s)")
        return
    if not evidence and case is None:
        raise UsageError("give evidence files or folders, or --case CASE")
    filters = Filters(hosts=list(host or []), since=_when(since, "--since"), until=_when(until, "--until"),
                      deduplicate=not all_copies)
    with tempfile.TemporaryDirectory(prefix="turncoat-sigma-") as scratch:
        case_dir = case
        if evidence:
            case_dir = keep_case or Path(scratch) / "case"
            _ingest(evidence, case_dir, workers, source_tz)
        with _progress() as progress:
            task = progress.add_task("running Sigma rules", total=None, item="")

            def advance(done: int, total: int) -> None:
                progress.update(task, completed=done, total=total, item=f"{done}/{total} rules")

            rows, searched = pipeline.sigma_search(case_dir, ruleset, filters, advance)
    if ruleset.unconverted:
        err.print(f"[yellow]![/yellow] {len(ruleset.unconverted)} rule(s) not run (see --list-unconverted), e.g. "
                  f"{escape(ruleset.unconverted[0].path)}: {escape(ruleset.unconverted[0].reason)}")
    err.print(f"{len(ruleset.rules)} rule(s) and {len(ruleset.correlations)} correlation(s) from {ruleset.files} "
              f"file(s) ({ruleset.cached} conversions from cache)")
    summary(rows, searched, out)
    if jsonl:
        write_jsonl(rows, jsonl)
        out.print(f"hits: {jsonl}", highlight=False, soft_wrap=True)
    if timeline:
        write_timeline(rows, timeline)
        out.print(f"timeline: {timeline}", highlight=False, soft_wrap=True)


@intel_app.command("list")
def intel_list() -> None:
    """List the shipped campaign packs."""
    for pack in pipeline.packs(None):
        start, end = pack.summary()["exposure_window"].values()
        sigma = pack.root / "sigma"
        n_sigma = len(list(sigma.glob("*.yml"))) if sigma.is_dir() else 0
        out.print(f"[bold]{pack.id}[/bold]  {pack.name}  (window {start} → {end}; "
                  f"{len(pack.iocs)} indicators, {len(pack.rules)} behaviour rules, {n_sigma} Sigma rules)")


@intel_app.command("show")
def intel_show(pack: Annotated[str, typer.Argument(help="Pack id or folder.")]) -> None:
    """Show one pack: sources, timing, versions, indicators by type, behaviour rules."""
    pipeline.show_pack(pack, out)


def _print_written(written: list[Path], open_: bool) -> None:
    for path in written:
        out.print(f"report: {path}", highlight=False, soft_wrap=True)
    html = next((p for p in written if p.suffix == ".html"), None)
    if open_ and html:
        webbrowser.open(html.resolve().as_uri())


@app.callback(invoke_without_command=True)
def _version(version: Annotated[bool, typer.Option("--version", help="Print the version.")] = False) -> None:
    if version:
        out.print(f"turncoat {__version__}")
        raise typer.Exit(0)


def _is_usage_error(exc: Exception) -> bool:
    """Argument errors from the CLI framework (typer ships its own click, or uses click)."""
    return any(cls.__name__ in ("UsageError", "BadParameter", "ClickException") for cls in type(exc).__mro__)


def main() -> None:
    """Console entry point: maps errors to DESIGN.md's exit codes."""
    try:
        code = app(standalone_mode=False)  # click returns the code of typer.Exit in this mode
        sys.exit(code if isinstance(code, int) else 0)
    except typer.Exit as exc:
        sys.exit(exc.exit_code)
    except (UsageError, PackError, pipeline.CaseError) as exc:
        err.print(f"[red]error:[/red] {exc}", highlight=False)
        sys.exit(2)
    except typer.Abort:
        err.print("aborted")
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("interrupted")
        sys.exit(130)
    except Exception as exc:  # noqa: BLE001 - last resort: a bug, reported as one
        if _is_usage_error(exc):
            show = getattr(exc, "show", None)
            if callable(show):
                show()
            else:
                err.print(f"[red]error:[/red] {exc}", highlight=False)
            sys.exit(2)
        err.print(f"[red]internal error[/red] (a bug in turncoat {__version__}; please report it to "
                  f"{ISSUES_URL} with the lines below):")
        err.print(traceback.format_exc(), markup=False, highlight=False)
        sys.exit(1)


if __name__ == "__main__":
    main()
