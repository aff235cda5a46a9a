"""The HTML report: one offline file a non-specialist can act on and a responder can verify.

Why it is built this way:

* One self-contained file, inline CSS, inline SVG, no JavaScript: it is opened on machines that may
  be compromised or offline, mailed to an insurer, printed for a meeting. Nothing may load from the
  network — a remote font or image would also tell an attacker's server that the report was opened.
  A Content-Security-Policy meta tag enforces that even if a future template change forgot it.
* Every string from report.json is escaped by Jinja's autoescape: evidence is attacker-controlled
  (host aliases, command lines, URLs). Python here builds plain data, never markup; the template is
  the only place markup is written. Control and bidi characters are made visible first (`defang`).
* Privacy (DESIGN.md "Privacy"): without `detail`, URLs in evidence values are cut to their host
  and at most `MAX_ROWS` evidence rows per host are shown.
* Deterministic: no clock, no random ids; the same report gives the same bytes.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from turncoat.report.i18n import (
    LANGS,
    fmt_int,
    fmt_ts,
    headline,
    label,
    pair,
    parse_ts,
    t,
    tn,
    zone,
)
from turncoat.report.redact import defang
from turncoat.store.schema import STAGES, VERDICTS, verdict_rank

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE = "report.html.j2"
MAX_ROWS = 20  # evidence rows per host without --detail
MAX_VALUE = 200  # characters of an evidence value without --detail

# Badge colours (background, text), one per ladder step; text colour chosen for contrast.
VERDICT_COLOURS: dict[str, tuple[str, str]] = {
    "not-affected": ("#2e7d32", "#ffffff"),
    "no-evidence": ("#616161", "#ffffff"),
    "vulnerable-installed": ("#f2c230", "#2b2100"),
    "armed-dormant": ("#e06c00", "#ffffff"),
    "c2-contact": ("#c62828", "#ffffff"),
    "payload": ("#8b1a1a", "#ffffff"),
    "data-stolen": ("#4a0d2e", "#ffffff"),
}
_UNKNOWN_COLOURS = ("#000000", "#ffffff")
_URL = re.compile(r"\b[a-z][a-z0-9+.-]{1,15}://[^\s\"'<>]+", re.IGNORECASE)
_SCHEME = re.compile(r"^[a-z][a-z0-9+.-]{1,15}://", re.IGNORECASE)

# Timeline geometry (SVG user units; the picture scales to the page width).
SVG_WIDTH = 1000
SVG_LEFT = 200  # room for lane labels
SVG_RIGHT = 985
LABEL_ROW = 14  # height of one row of marker labels
STAGE_LANE = 13  # height of one evidence sub-lane (one per stage)
SOURCE_LANE = 18  # height of one coverage lane
AXIS = 26  # room for the time axis under the lanes
CHAR_WIDTH = 6.0  # rough width of one 11px label character, for label collision avoidance
ZOOM_BELOW = 0.25  # add a zoomed picture when a host's activity spans less than this share of the axis
ZOOM_MIN = timedelta(days=3)


# --- small helpers ------------------------------------------------------------------------------


def _rank(verdict: str) -> int:
    """Ladder position; unknown verdicts count as worst so they are never buried."""
    return verdict_rank(verdict) if verdict in VERDICTS else len(VERDICTS)


def _colours(verdict: str) -> dict[str, str]:
    """Badge colours of a verdict or stage."""
    background, text = VERDICT_COLOURS.get(verdict, _UNKNOWN_COLOURS)
    return {"bg": background, "fg": text}


def _badge(verdict: str, lang: str) -> dict[str, str]:
    """Everything the template needs to draw a verdict badge."""
    return {"id": verdict, "label": label("verdict", verdict, lang), **_colours(verdict)}


def shorten_urls(text: str) -> str:
    """Replace URLs in `text` by `host/…` — domains are shown by default, full URLs only with
    --detail, because browsing history is employees' personal data.

    A value that is one URL is cut whole, quotes and all (`url.full` may hold any bytes the
    client sent); URLs inside longer text end at whitespace or a quote.
    """
    stripped = text.strip()
    if _SCHEME.match(stripped) and not any(char.isspace() for char in stripped):
        return _host_only(stripped)
    return _URL.sub(lambda match: _host_only(match.group(0)), text)


def _host_only(url: str) -> str:
    """`host/…` of a URL, or `…` when it has no parsable host."""
    try:
        host = urlsplit(url).hostname
    except ValueError:
        host = None
    return f"{host}/…" if host else "…"


def display_value(value: Any, detail: bool) -> str:
    """An evidence value as shown: full with `detail`, else URLs shortened and length capped."""
    text = "" if value is None else str(value)
    if detail:
        return text
    text = shorten_urls(text)
    return text if len(text) <= MAX_VALUE else text[: MAX_VALUE - 1] + "…"


def pick_evidence(rows: list[dict[str, Any]], limit: int | None) -> list[dict[str, Any]]:
    """At most `limit` rows, in time order, always keeping the first row of every stage.

    When rows must be hidden, the proof of each stage matters more than the tenth DNS beacon.
    """
    if limit is None or len(rows) <= limit:
        return list(rows)
    chosen: list[int] = []
    seen: set[str] = set()
    for index, row in enumerate(rows):
        stage = str(row.get("stage"))
        if stage not in seen:
            seen.add(stage)
            chosen.append(index)
    for index in range(len(rows)):
        if len(chosen) >= limit:
            break
        if index not in chosen:
            chosen.append(index)
    return [rows[index] for index in sorted(chosen[:limit])]


def _where(row: dict[str, Any], lang: str) -> str:
    """`record 1234` or `line 56`: how to find the original event in its file."""
    if row.get("record_id") is not None:
        return t("ev.record", lang).format(n=row["record_id"])
    if row.get("line") is not None:
        return t("ev.line", lang).format(n=row["line"])
    return ""


# --- time axis ----------------------------------------------------------------------------------


class Axis:
    """Maps report times onto the SVG's x range; one axis for every host so pictures compare."""

    def __init__(self, start: datetime, end: datetime) -> None:
        if end <= start:
            end = start + timedelta(days=1)
        pad = (end - start) * 0.01
        self.start, self.end = start - pad, end + pad

    def shows(self, start: datetime | None, end: datetime | None = None) -> bool:
        """Whether an instant or interval falls (partly) inside the axis; a zoomed axis drops the
        rest rather than piling it up at its edges."""
        if start is None:
            return False
        return (end or start) >= self.start and start <= self.end

    def x(self, when: datetime) -> float:
        """x of a time, clamped to the plot so out-of-range marks stay visible at the edge."""
        fraction = (when - self.start) / (self.end - self.start)
        return round(SVG_LEFT + min(max(fraction, 0.0), 1.0) * (SVG_RIGHT - SVG_LEFT), 1)

    def span(self, start: datetime | None, end: datetime | None, minimum: float = 2.0) -> dict[str, float]:
        """x and width of an interval; zero-length intervals keep a visible minimum width."""
        left = self.x(start or self.start)
        right = self.x(end or self.end)
        width = max(right - left, minimum)
        return {"x": round(min(left, SVG_RIGHT - width), 1), "w": round(width, 1)}


def _report_times(report: dict[str, Any]) -> list[datetime]:
    """Every time the timelines must show: case span, exposure windows, host milestones, gaps."""
    case = report.get("case") or {}
    values: list[Any] = [case.get("first_event"), case.get("last_event")]
    for campaign in report.get("campaigns") or []:
        window = campaign.get("exposure_window") or {}
        values += [window.get("start"), window.get("end")]
    for host in report.get("hosts") or []:
        values += [host.get(key) for key in ("first_execution", "first_c2", "activation_eta")]
        values += [row.get("ts") for row in host.get("evidence") or []]
        for source in (host.get("coverage") or {}).get("sources") or []:
            values += [source.get("first"), source.get("last")]
    return [parsed for parsed in map(parse_ts, values) if parsed is not None]


def build_axis(report: dict[str, Any]) -> Axis:
    """The common axis: from the earliest to the latest time anywhere in the report."""
    times = _report_times(report) or [datetime(1970, 1, 1, tzinfo=zone("UTC"))]
    return Axis(min(times), max(times))


def _month_starts(axis: Axis, tz: str) -> list[datetime]:
    """First day of each month inside the axis, in the display zone."""
    local = axis.start.astimezone(zone(tz))
    cursor = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    starts = []
    while cursor <= axis.end:
        if cursor >= axis.start:
            starts.append(cursor)
        year, month = divmod(cursor.month, 12)
        cursor = cursor.replace(year=cursor.year + year, month=month + 1)
    return starts


def _day_starts(axis: Axis, tz: str, step: int) -> list[datetime]:
    """Midnights every `step` days inside the axis, in the display zone."""
    local = axis.start.astimezone(zone(tz))
    cursor = local.replace(hour=0, minute=0, second=0, microsecond=0)
    starts = []
    while cursor <= axis.end:
        if cursor >= axis.start:
            starts.append(cursor)
        cursor += timedelta(days=step)  # wall-clock arithmetic: stays on local midnight across DST
    return starts


def axis_ticks(axis: Axis, lang: str, tz: str) -> list[dict[str, Any]]:
    """Readable ticks: months for long cases (every n-th when crowded), days for short ones."""
    months = _month_starts(axis, tz)
    if len(months) >= 3:
        marks = months[:: -(-len(months) // 8)]  # at most 8 month ticks
        labels = [f"{t(f'month.{m.month}', lang)} {m.year}" for m in marks]
    else:
        days = (axis.end - axis.start).days
        step = 1 if days <= 10 else 7 if days <= 70 else 14
        marks = _day_starts(axis, tz, step)
        labels = [fmt_ts(m.isoformat(), lang, tz, style="day") for m in marks]
    return [{"x": axis.x(mark), "label": text} for mark, text in zip(marks, labels)]


# --- per-host timeline --------------------------------------------------------------------------


def _markers(host: dict[str, Any], axis: Axis, lang: str, tz: str) -> list[dict[str, Any]]:
    """Milestones drawn as vertical lines with a label, stacked so labels never overlap."""
    wanted = [
        ("first_execution", "tl.first_execution", "#e06c00"),
        ("activation_eta", "tl.activation_eta", "#7b1fa2"),
        ("first_c2", "tl.first_c2", "#c62828"),
    ]
    markers = []
    for key, label_key, colour in wanted:
        when = parse_ts(host.get(key))
        if axis.shows(when):
            text = t(label_key, lang)
            markers.append({"x": axis.x(when), "label": text, "colour": colour, "kind": key,
                            "title": f"{text}: {fmt_ts(host.get(key), lang, tz)}"})
    return _stack_labels(sorted(markers, key=lambda marker: marker["x"]))


def _stack_labels(markers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Give each label the first row where it does not collide with the previous one."""
    row_ends: list[float] = []
    for marker in markers:
        width = len(marker["label"]) * CHAR_WIDTH + 8
        anchor_end = marker["x"] + width > SVG_RIGHT
        left = marker["x"] - width if anchor_end else marker["x"]
        marker["anchor"] = "end" if anchor_end else "start"
        marker["tx"] = round(marker["x"] - 3 if anchor_end else marker["x"] + 3, 1)
        row = next((index for index, end in enumerate(row_ends) if left > end), len(row_ends))
        if row == len(row_ends):
            row_ends.append(0.0)
        row_ends[row] = left + width
        marker["row"] = row
        marker["line_top"] = 4 + row * LABEL_ROW + 3
        marker["text_y"] = 4 + row * LABEL_ROW + 10
    return markers


def _stage_lanes(host: dict[str, Any], axis: Axis, top: float, lang: str, tz: str,
                 detail: bool) -> list[dict[str, Any]]:
    """One thin lane per kill-chain stage with a dot per evidence row: progress reads as a staircase."""
    lanes = []
    for index, stage in enumerate(STAGES):
        y = round(top + index * STAGE_LANE + STAGE_LANE / 2, 1)
        dots = []
        for row in host.get("evidence") or []:
            when = parse_ts(row.get("ts"))
            if row.get("stage") == stage and axis.shows(when):
                value = display_value(row.get("value"), detail)
                dots.append({"x": axis.x(when), "title": f"{fmt_ts(row.get('ts'), lang, tz)} — "
                             f"{row.get('title') or row.get('rule_id')}: {row.get('field')} = {value}"})
        lanes.append({"y": y, "label": label("verdict", stage, lang), "dots": dots, **_colours(stage)})
    return lanes


def _source_lanes(coverage: dict[str, Any], axis: Axis, top: float, lang: str,
                  tz: str) -> list[dict[str, Any]]:
    """One lane per log source: its covered span as a bar, its gaps hatched on top.

    Gaps whose channel is not a listed source get a lane of their own, so no gap is hidden.
    """
    channels = [str(source.get("channel")) for source in coverage.get("sources") or []]
    for gap in coverage.get("gaps") or []:
        if str(gap.get("channel")) not in channels:
            channels.append(str(gap.get("channel")))
    lanes = []
    for index, channel in enumerate(channels):
        sources = [s for s in coverage.get("sources") or [] if str(s.get("channel")) == channel]
        gaps = [g for g in coverage.get("gaps") or [] if str(g.get("channel")) == channel]
        short = channel.removeprefix("Microsoft-Windows-")
        lanes.append({
            "y": round(top + index * SOURCE_LANE, 1),
            "label": short if len(short) <= 30 else "…" + short[-29:],
            "title": channel,
            "bars": [_bar(s, axis, lang, tz) for s in sources if _shows(s, "first", "last", axis)],
            "gaps": [_gap_mark(g, axis, lang, tz) for g in gaps if _shows(g, "start", "end", axis)],
        })
    return lanes


def _shows(item: dict[str, Any], start: str, end: str, axis: Axis) -> bool:
    """Whether the interval item[start]..item[end] is (partly) on the axis."""
    return axis.shows(parse_ts(item.get(start)), parse_ts(item.get(end)))


def _bar(source: dict[str, Any], axis: Axis, lang: str, tz: str) -> dict[str, Any]:
    """A coverage bar with a tooltip giving its span and record count."""
    span = axis.span(parse_ts(source.get("first")), parse_ts(source.get("last")))
    title = (f"{source.get('channel')}: {fmt_ts(source.get('first'), lang, tz)} → "
             f"{fmt_ts(source.get('last'), lang, tz)}, {fmt_int(int(source.get('records') or 0), lang)}")
    return {**span, "title": title}


def _gap_mark(gap: dict[str, Any], axis: Axis, lang: str, tz: str) -> dict[str, Any]:
    """A hatched red gap; zero-length gaps (a log clear) stay visible as a thin block."""
    span = axis.span(parse_ts(gap.get("start")), parse_ts(gap.get("end")), minimum=4.0)
    title = (f"{label('gap', str(gap.get('kind')), lang)}: {fmt_ts(gap.get('start'), lang, tz)} → "
             f"{fmt_ts(gap.get('end'), lang, tz)} {gap.get('detail') or ''}").strip()
    return {**span, "title": title}


def build_timeline(host: dict[str, Any], svg_id: str, axis: Axis, report: dict[str, Any], lang: str,
                   tz: str, detail: bool) -> dict[str, Any]:
    """Plain numbers and strings for the template's inline SVG of one host."""
    markers = _markers(host, axis, lang, tz)
    label_rows = max((marker["row"] for marker in markers), default=-1) + 1
    stage_top = 4 + max(label_rows, 1) * LABEL_ROW
    sources_top = stage_top + len(STAGES) * STAGE_LANE + 10
    coverage = host.get("coverage") or {}
    sources = _source_lanes(coverage, axis, sources_top, lang, tz)
    plot_bottom = sources_top + max(len(sources), 1) * SOURCE_LANE
    return {
        "id": svg_id,
        "caption": None,
        "width": SVG_WIDTH,
        "height": plot_bottom + AXIS,
        "left": SVG_LEFT,
        "right": SVG_RIGHT,
        "plot_top": stage_top - 2,
        "plot_bottom": plot_bottom,
        "stage_top": stage_top,
        "stage_bottom": stage_top + len(STAGES) * STAGE_LANE,
        "sources_top": sources_top,
        "markers": markers,
        "stages": _stage_lanes(host, axis, stage_top, lang, tz, detail),
        "sources": sources,
        "exposure": _exposure(report, axis, lang, tz),
        "required": _window(coverage.get("required"), axis)
        if _shows(coverage.get("required") or {}, "start", "end", axis) else None,
        "activation": _activation(host, axis, lang, tz),
        "end_of_logs": _end_of_logs(report, axis, lang, tz),
        "ticks": axis_ticks(axis, lang, tz),
        "alt": t("tl.alt", lang).format(host=host.get("host")),
    }


def _activity(host: dict[str, Any]) -> list[datetime]:
    """Times of the host's own milestones and evidence."""
    values = [host.get(key) for key in ("first_execution", "first_c2", "activation_eta")]
    values += [row.get("ts") for row in host.get("evidence") or []]
    return [parsed for parsed in map(parse_ts, values) if parsed is not None]


def zoom_axis(host: dict[str, Any], axis: Axis) -> Axis | None:
    """A closer axis around the host's activity when the case axis would squeeze it into a sliver.

    A 3CX kill chain plays out over days inside a months-long case; on the case axis its evidence
    collapses into one blot, so the picture is repeated zoomed in.
    """
    times = _activity(host)
    if not times:
        return None
    start, end = min(times), max(times)
    if (end - start) >= (axis.end - axis.start) * ZOOM_BELOW:
        return None
    pad = max((end - start) * 0.1, timedelta(days=1))
    start, end = start - pad, end + pad
    if end - start < ZOOM_MIN:
        middle = start + (end - start) / 2
        start, end = middle - ZOOM_MIN / 2, middle + ZOOM_MIN / 2
    return Axis(start, end)


def build_timelines(host: dict[str, Any], index: int, axis: Axis, report: dict[str, Any], lang: str,
                    tz: str, detail: bool) -> list[dict[str, Any]]:
    """The case-span picture, plus a zoom on the host's activity when it would be unreadable."""
    pictures = [build_timeline(host, f"h{index}", axis, report, lang, tz, detail)]
    zoom = zoom_axis(host, axis)
    if zoom is not None:
        picture = build_timeline(host, f"h{index}z", zoom, report, lang, tz, detail)
        picture["caption"] = t("tl.zoom", lang).format(
            start=fmt_ts(zoom.start.isoformat(), lang, tz, "day"),
            end=fmt_ts(zoom.end.isoformat(), lang, tz, "day"),
        )
        pictures.append(picture)
    return pictures


def _window(window: dict[str, Any] | None, axis: Axis) -> dict[str, float] | None:
    """x/width of a {start, end} window, or None when absent."""
    if not window:
        return None
    start, end = parse_ts(window.get("start")), parse_ts(window.get("end"))
    return axis.span(start, end) if start and end else None


def _exposure(report: dict[str, Any], axis: Axis, lang: str, tz: str) -> list[dict[str, Any]]:
    """Shaded background band per campaign exposure window."""
    bands = []
    for campaign in report.get("campaigns") or []:
        window = campaign.get("exposure_window") or {}
        span = _window(window, axis)
        if span and _shows(window, "start", "end", axis):
            start = fmt_ts(window.get("start"), lang, tz, "day")
            end = fmt_ts(window.get("end"), lang, tz, "day")
            title = f"{t('tl.exposure', lang)} {campaign.get('id')}: {start} → {end}"
            bands.append({**span, "title": title})
    return bands


def _activation(host: dict[str, Any], axis: Axis, lang: str, tz: str) -> dict[str, Any] | None:
    """The band between the earliest and latest possible activation of a dormant implant."""
    window = host.get("activation_window") or {}
    earliest, latest = parse_ts(window.get("earliest")), parse_ts(window.get("latest"))
    if not (earliest and latest and axis.shows(earliest, latest)):
        return None
    text = t("host.activation_window", lang).format(
        earliest=fmt_ts(window.get("earliest"), lang, tz), latest=fmt_ts(window.get("latest"), lang, tz))
    return {**axis.span(earliest, latest), "title": f"{t('tl.activation_window', lang)}: {text}"}


def _end_of_logs(report: dict[str, Any], axis: Axis, lang: str, tz: str) -> dict[str, Any] | None:
    """Where the evidence stops: anything right of it (an activation date) is a forecast."""
    last = (report.get("case") or {}).get("last_event")
    when = parse_ts(last)
    if not axis.shows(when):
        return None
    return {"x": axis.x(when), "title": f"{t('tl.end_of_logs', lang)}: {fmt_ts(last, lang, tz)}",
            "label": t("tl.end_of_logs", lang)}


# --- page sections ------------------------------------------------------------------------------


def _counts(report: dict[str, Any]) -> Counter[str]:
    """Hosts per verdict, from the host list so the badges match the host sections."""
    return Counter(str(host.get("verdict")) for host in report.get("hosts") or [])


def _verdict_counts(report: dict[str, Any], lang: str) -> list[dict[str, Any]]:
    """Every ladder step, worst first, with its count (zero counts are drawn faded)."""
    counts = _counts(report)
    verdicts = list(VERDICTS) + sorted(v for v in counts if v not in VERDICTS)
    return [
        {**_badge(verdict, lang), "n": counts.get(verdict, 0),
         "meaning": label("verdict", f"{verdict}.meaning", lang)}
        for verdict in sorted(verdicts, key=_rank, reverse=True)
    ]


def _steps(host: dict[str, Any], lang: str) -> list[str]:
    """Remediation in the chosen language, English if the report lacks that language."""
    remediation = host.get("remediation") or {}
    return list(remediation.get(lang) or remediation.get("en") or [])


def _todo(hosts: list[dict[str, Any]], lang: str) -> list[dict[str, Any]]:
    """'What to do now': one block per verdict present (worst first), its machines and steps.

    Steps of machines sharing a verdict are merged in order without repeats, so ten identical
    laptops give one list, not ten.
    """
    blocks: dict[str, dict[str, Any]] = {}
    for host in hosts:
        verdict = str(host["verdict"])
        if verdict == "not-affected":
            continue
        block = blocks.setdefault(verdict, {"badge": _badge(verdict, lang), "hosts": [], "steps": []})
        block["hosts"].append({"name": host["name"], "anchor": host["anchor"]})
        block["steps"] += [step for step in host["steps"] if step not in block["steps"]]
    return sorted(blocks.values(), key=lambda block: -_rank(block["badge"]["id"]))


def _evidence_rows(host: dict[str, Any], lang: str, tz: str,
                   detail: bool) -> tuple[list[dict[str, Any]], int]:
    """Evidence rows as displayed, and how many were hidden by the row limit."""
    rows = list(host.get("evidence") or [])
    shown = pick_evidence(rows, None if detail else MAX_ROWS)
    campaigns = {str(row.get("campaign")) for row in rows}
    display = [
        {
            "stage": _badge(str(row.get("stage")), lang),
            "ts": row.get("ts"),
            "time": fmt_ts(row.get("ts"), lang, tz),
            "rule_id": row.get("rule_id"),
            "title": row.get("title"),
            "confidence": label("confidence", str(row.get("confidence")), lang),
            "field": row.get("field"),
            "value": display_value(row.get("value"), detail),
            "path": row.get("evidence_path") or row.get("evidence_id"),
            "where": _where(row, lang),
            "campaign": row.get("campaign") if len(campaigns) > 1 else None,
        }
        for row in shown
    ]
    return display, len(rows) - len(shown)


def _coverage(host: dict[str, Any], lang: str, tz: str) -> dict[str, Any]:
    """Coverage table, gaps and missing telemetry, formatted for reading."""
    coverage = host.get("coverage") or {}
    required = coverage.get("required") or {}
    return {
        "covers": bool(coverage.get("covers_window")),
        "required": (f"{fmt_ts(required.get('start'), lang, tz)} → {fmt_ts(required.get('end'), lang, tz)}"
                     if required else None),
        "sources": [
            {"channel": s.get("channel"), "kind": s.get("kind"),
             "first": fmt_ts(s.get("first"), lang, tz), "last": fmt_ts(s.get("last"), lang, tz),
             "records": fmt_int(int(s.get("records") or 0), lang),
             "days": fmt_int(int(s.get("days") or 0), lang)}
            for s in coverage.get("sources") or []
        ],
        "gaps": [
            {"kind": label("gap", str(g.get("kind")), lang), "channel": g.get("channel"),
             "start": fmt_ts(g.get("start"), lang, tz), "end": fmt_ts(g.get("end"), lang, tz),
             "detail": g.get("detail")}
            for g in coverage.get("gaps") or []
        ],
        "missing": list(coverage.get("missing") or []),
    }


def _milestones(host: dict[str, Any], report: dict[str, Any], lang: str, tz: str) -> list[dict[str, Any]]:
    """First run, expected activation, first C2 — with a note when a date lies after the logs end."""
    last = parse_ts((report.get("case") or {}).get("last_event"))
    items = []
    for key in ("first_execution", "activation_eta", "first_c2"):
        when = parse_ts(host.get(key))
        items.append({
            "label": t(f"col.{key}", lang),
            "iso": host.get(key),
            "text": fmt_ts(host.get(key), lang, tz),
            "after_logs": bool(when and last and when > last),
        })
    return items


def _host_view(host: dict[str, Any], index: int, axis: Axis, report: dict[str, Any], lang: str,
               tz: str, detail: bool) -> dict[str, Any]:
    """Everything one host section shows."""
    verdict = str(host.get("verdict"))
    evidence, hidden = _evidence_rows(host, lang, tz, detail)
    return {
        "anchor": f"host-{index}",
        "name": host.get("host"),
        "aliases": [alias for alias in host.get("aliases") or [] if alias != host.get("host")],
        "verdict": verdict,
        "badge": _badge(verdict, lang),
        "meaning": label("verdict", f"{verdict}.meaning", lang),
        "confidence": label("confidence", str(host.get("confidence")), lang),
        "confidence_meaning": label("confidence", f"{host.get('confidence')}.meaning", lang),
        "reason": host.get("reason"),
        "milestones": _milestones(host, report, lang, tz),
        "campaigns": [
            {"id": c.get("campaign"), "badge": _badge(str(c.get("stage")), lang),
             "confidence": label("confidence", str(c.get("confidence")), lang)}
            for c in host.get("campaigns") or []
        ],
        "timelines": build_timelines(host, index, axis, report, lang, tz, detail),
        "coverage": _coverage(host, lang, tz),
        "evidence": evidence,
        "evidence_total": len(host.get("evidence") or []),
        "hidden": hidden,
        "hidden_text": tn("ev.hidden", hidden, lang) if hidden else "",
        "steps": _steps(host, lang),
    }


def _case(report: dict[str, Any], lang: str, tz: str) -> dict[str, Any]:
    """What was read: counts, span, campaigns, files with their hashes (the chain of custody)."""
    case = report.get("case") or {}

    def number(key: str) -> str:
        return fmt_int(int(case.get(key) or 0), lang)

    skipped = tn("case.skipped", int(case.get("evidence_skipped") or 0), lang)
    return {
        "facts": [
            pair(t("case.evidence_files", lang), f"{number('evidence_files')} ({skipped})", lang),
            pair(t("case.records", lang), number("records"), lang),
            pair(t("case.duplicates", lang), number("duplicates_collapsed"), lang),
            pair(t("case.errors", lang), number("errors"), lang),
        ],
        "errors": int(case.get("errors") or 0),
        "span": t("case.span", lang).format(start=fmt_ts(case.get("first_event"), lang, tz),
                                            end=fmt_ts(case.get("last_event"), lang, tz)),
        "campaigns": [_campaign(campaign, lang, tz) for campaign in report.get("campaigns") or []],
        "files": [
            {"path": f.get("path"), "reader": f.get("reader"),
             "records": fmt_int(int(f.get("records") or 0), lang),
             "errors": int(f.get("errors") or 0), "sha256": f.get("sha256")}
            for f in report.get("evidence_files") or []
        ],
    }


def _campaign(campaign: dict[str, Any], lang: str, tz: str) -> dict[str, Any]:
    """A campaign line: name, exposure window and dormancy from its pack."""
    window = campaign.get("exposure_window") or {}
    dormancy = campaign.get("dormancy_days") or {}
    text = t("case.window", lang).format(start=fmt_ts(window.get("start"), lang, tz, "day"),
                                         end=fmt_ts(window.get("end"), lang, tz, "day"))
    if dormancy:
        text += "; " + t("case.dormancy", lang).format(
            min=dormancy.get("min"), max=dormancy.get("max"), typical=dormancy.get("typical"))
    return {"id": campaign.get("id"), "name": campaign.get("name"), "text": text}


def build_context(report: dict[str, Any], lang: str = "en", detail: bool = False,
                  tz: str = "UTC") -> dict[str, Any]:
    """The template's whole input: plain, escaped-later strings and numbers, no markup."""
    if lang not in LANGS:
        raise ValueError(f"unsupported language {lang!r}; choose one of {', '.join(LANGS)}")
    zone(tz)  # fail early with a clear message on an unknown zone
    safe = defang(report)
    axis = build_axis(safe)
    ordered = sorted(safe.get("hosts") or [],
                     key=lambda h: (-_rank(str(h.get("verdict"))), str(h.get("host"))))
    hosts = [_host_view(host, index, axis, safe, lang, tz, detail)
             for index, host in enumerate(ordered, start=1)]
    counts = _counts(safe)
    worst = max(counts, key=_rank, default="not-affected")
    return {
        "lang": lang,
        "detail": detail,
        "tz_note": t("date.zone", lang).format(zone=tz),
        "headline": headline(dict(counts), lang),
        "worst": _badge(worst, lang),
        "counts": _verdict_counts(safe, lang),
        "todo": _todo(hosts, lang),
        "hosts": hosts,
        "case": _case(safe, lang, tz),
        "stage_legend": [_badge(stage, lang) for stage in STAGES],
        "confidences": [{"label": label("confidence", c, lang),
                         "meaning": label("confidence", f"{c}.meaning", lang)}
                        for c in ("high", "medium", "low")],
        "redacted": bool(safe.get("redacted")),
        "version": safe.get("turncoat_version"),
        "schema": safe.get("schema"),
        "schema_version": safe.get("schema_version"),
    }


# --- rendering ----------------------------------------------------------------------------------


def _environment(lang: str) -> Environment:
    """Jinja environment with autoescape on for every template: evidence is hostile input."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    translate: Callable[[str], str] = partial(t, lang=lang)
    env.globals["t"] = translate
    env.globals["colon"] = lambda key: pair(t(key, lang), "", lang).rstrip()
    return env


def render_html(report: dict[str, Any], lang: str = "en", detail: bool = False, tz: str = "UTC") -> str:
    """The whole report as one self-contained HTML document.

    `lang` is "en" or "fr"; `detail` shows full evidence values and every row; `tz` is an IANA
    zone name used for every displayed time (the page says which). Raises ValueError on an
    unknown language or zone.
    """
    context = build_context(report, lang=lang, detail=detail, tz=tz)
    return _environment(lang).get_template(TEMPLATE).render(**context)


def write_html(report: dict[str, Any], path: Path, lang: str = "en", detail: bool = False,
               tz: str = "UTC") -> Path:
    """Render and write the report to `path` (UTF-8); returns the path written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_html(report, lang=lang, detail=detail, tz=tz), encoding="utf-8", newline="\n")
    return path
