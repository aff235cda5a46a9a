"""The terminal answer: one screen that says which machines are hit and how badly.

Everything printed from the report goes through `rich.text.Text` (never a markup string) and through
`defang`, because evidence is attacker-controlled: a host alias such as `[link=…]` must not become
rich markup, and an escape sequence in a command line must not repaint the analyst's terminal.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table
from rich.text import Text

from turncoat.report.i18n import fmt_int, fmt_ts, headline, label, t, tn
from turncoat.report.present import case_facts, period_text
from turncoat.report.redact import defang
from turncoat.store.schema import VERDICTS, verdict_rank

# Severity colours, shared meaning with the HTML badges: green is fine, grey is unknown,
# yellow to deep red climbs the kill chain.
VERDICT_STYLE: dict[str, str] = {
    "not-affected": "bold green",
    "no-evidence": "bold bright_black",
    "vulnerable-installed": "bold yellow",
    "armed-dormant": "bold dark_orange",
    "c2-contact": "bold red",
    "payload": "bold bright_red",
    "data-stolen": "bold white on red",
}
DETAIL_ROWS = 5
# Below this width the three date columns are dropped so the host and the reason stay readable.
DATES_MIN_WIDTH = 100
STEPS_SHOWN = 3


def _text(value: Any, style: str = "") -> Text:
    """A Text cell that never interprets rich markup; None shows as empty."""
    return Text("" if value is None else str(value), style=style)


def _verdict(verdict: str, lang: str) -> Text:
    """Verdict label coloured by severity."""
    return _text(label("verdict", verdict, lang), VERDICT_STYLE.get(verdict, "bold"))


def _rank(verdict: str) -> int:
    """Ladder position; unknown verdicts sort as worst so they are never hidden at the bottom."""
    return verdict_rank(verdict) if verdict in VERDICTS else len(VERDICTS)


def hosts_worst_first(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Hosts ordered worst verdict first, then by name: the reader acts top-down."""
    hosts = report.get("hosts") or []
    return sorted(hosts, key=lambda host: (-_rank(str(host.get("verdict"))), str(host.get("host"))))


def _counts(report: dict[str, Any]) -> Counter[str]:
    """Hosts per verdict, counted from the host list so headline and table always agree."""
    return Counter(str(host.get("verdict")) for host in report.get("hosts") or [])


def _headline(report: dict[str, Any], lang: str) -> Text:
    """The headline sentence, coloured like the worst verdict present."""
    counts = _counts(report)
    worst = max(counts, key=_rank, default="not-affected")
    return _text(headline(dict(counts), lang), VERDICT_STYLE.get(worst, "bold"))


def _verdict_counts(report: dict[str, Any], lang: str) -> Text:
    """`Data stolen 1 · Attacker code delivered 1 · …`, worst first, only verdicts present."""
    counts = _counts(report)
    line = Text()
    for verdict in sorted(counts, key=_rank, reverse=True):
        if line:
            line.append("  ·  ")
        line.append(label("verdict", verdict, lang), VERDICT_STYLE.get(verdict, "bold"))
        line.append(f" {fmt_int(counts[verdict], lang)}")
    return line


def _hosts_table(report: dict[str, Any], lang: str, width: int) -> Table:
    """One row per host with the columns a responder needs to triage.

    Dates only (UTC, said in the caption) and a light box: at 120 columns the reason still gets
    room; the full times are in the HTML report and in `--detail`. Narrower consoles lose the dates
    rather than the host names.
    """
    hosts = hosts_worst_first(report)
    dates = ("first_execution", "first_c2", "activation_eta") if width >= DATES_MIN_WIDTH else ()
    table = Table(box=box.SIMPLE_HEAD, expand=True, header_style="bold", pad_edge=False,
                  caption=t("date.utc_note", lang) if dates else None, caption_justify="left")
    longest = max((len(str(host.get("host"))) for host in hosts), default=4)
    table.add_column(t("col.host", lang), no_wrap=True, min_width=min(longest, 40))
    table.add_column(t("col.verdict", lang), no_wrap=True)
    table.add_column(t("col.confidence", lang), no_wrap=True)
    for key in dates:
        table.add_column(t(f"col.{key}", lang), width=10)
    table.add_column(t("col.reason", lang), overflow="fold", ratio=1, min_width=16)  # reasons are the answer: wrap, never cut
    for host in hosts:
        table.add_row(
            _text(host.get("host"), "bold"),
            _verdict(str(host.get("verdict")), lang),
            _text(label("confidence", str(host.get("confidence")), lang)),
            *(_text(fmt_ts(host.get(key), lang, style="iso-day")) for key in dates),
            _text((host.get("reason_fr") if lang == "fr" else None) or host.get("reason")),
        )
    return table


def _todo(report: dict[str, Any], lang: str) -> list[Text | Table]:
    """The first steps for the worst machines, so the screen ends with an action, not a table."""
    hosts = [host for host in hosts_worst_first(report) if host.get("verdict") != "not-affected"]
    if not hosts:
        return []
    worst = hosts[0].get("verdict")
    group = [host for host in hosts if host.get("verdict") == worst]
    remediation = group[0].get("remediation") or {}
    steps = (remediation.get(lang) or remediation.get("en") or [])[:STEPS_SHOWN]
    names = ", ".join(str(host.get("host")) for host in group)
    title = Text(t("section.todo", lang), style="bold underline")
    machines = _text(t("todo.machines", lang).format(hosts=names))
    who = Text.assemble(_verdict(str(worst), lang), " — ", machines)
    numbered = Table.grid(padding=(0, 1))
    numbered.add_column(justify="right", no_wrap=True)
    numbered.add_column()
    for number, step in enumerate(steps, start=1):
        numbered.add_row(_text(f"  {number}."), _text(step))
    return [title, who, numbered]


def _evidence_table(host: dict[str, Any], lang: str) -> Table:
    """The first evidence rows of one host: stage, time, what matched, where it was found."""
    table = Table(title=t("ev.for", lang).format(host=host.get("host")), title_justify="left",
                  expand=True, header_style="bold", title_style="bold")
    table.add_column(t("col.stage", lang), no_wrap=True)
    table.add_column(f"{t('col.time', lang)} (UTC)", no_wrap=True)
    table.add_column(t("col.rule", lang), ratio=2)
    table.add_column(t("col.match", lang), ratio=3, overflow="fold")
    table.add_column(t("col.source", lang), ratio=2, overflow="fold")
    rows = host.get("evidence") or []
    for row in rows[:DETAIL_ROWS]:
        table.add_row(
            _verdict(str(row.get("stage")), lang),
            _text(fmt_ts(row.get("ts"), lang, style="short")),
            _text(row.get("title") or row.get("rule_id")),
            _text(f"{row.get('field')} = {row.get('value')}"),
            _text(_source(row, lang)),
        )
    if len(rows) > DETAIL_ROWS:
        table.caption = tn("ev.more", len(rows) - DETAIL_ROWS, lang)
    return table


def _source(row: dict[str, Any], lang: str) -> str:
    """`path (record N)` or `path (line N)`: enough to find the original event again."""
    where = ""
    if row.get("record_id") is not None:
        where = t("ev.record", lang).format(n=row["record_id"])
    elif row.get("line") is not None:
        where = t("ev.line", lang).format(n=row["line"])
    path = str(row.get("evidence_path") or row.get("evidence_id") or "")
    return f"{path} ({where})" if where else path


def _case_line(report: dict[str, Any], lang: str) -> Text:
    """Files, records, duplicates and errors: how much was read and what could not be."""
    case = report.get("case") or {}
    return Text(" · ".join(case_facts(report, lang)), style="dim" if not case.get("errors") else "")


def render_summary(report: dict[str, Any], console: Console, lang: str = "en", detail: bool = False) -> None:
    """Print the one-screen answer to `console`.

    Headline, counts by verdict, one table row per host (worst first), the first steps for the
    worst machines, then — with `detail` — the first evidence rows of each host that has any, and
    finally what was read. Times are UTC (the column headers say so).
    """
    safe = defang(report)
    console.print(Text(t("app.title", lang), style="bold"))
    console.print(_headline(safe, lang))
    console.print(_verdict_counts(safe, lang))
    console.print(_hosts_table(safe, lang, console.width))
    for line in _todo(safe, lang):
        console.print(line)
    if detail:
        for host in hosts_worst_first(safe):
            if host.get("evidence"):
                console.print(_evidence_table(host, lang))
    else:
        console.print(Text(t("ev.detail_hint", lang), style="dim"))
    if (line := _beacon_line(safe, lang)) is not None:
        console.print(line)
    console.print(_case_line(safe, lang))


def _beacon_line(report: dict[str, Any], lang: str) -> Text | None:
    """How many rhythmic series the case holds and the first one that began during the logs."""
    beacons = report.get("beacons") or {}
    total = int(beacons.get("candidates_total") or 0)
    if not total:
        return None
    first = next((b for b in beacons.get("candidates") or [] if not b.get("established")), None)
    text = t("beacons.line", lang).format(count=total, established=int(beacons.get("established_total") or 0))
    if first is not None:
        text += " " + t("beacons.first", lang).format(
            host=first["host"], destination=first["destination"], period=period_text(first.get("period_s")))
    return Text(text)
