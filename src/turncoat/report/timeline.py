"""The per-host timeline pictures of the HTML report, as plain data for the template's inline SVG.

One time axis for the whole case (so machines compare at a glance), lanes for the evidence of each
stage and for each log source's coverage, marks for first run, activation and first C2, and a zoomed
second picture when a machine's activity would be squeezed into a sliver of the axis.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from turncoat.report.i18n import fmt_int, fmt_ts, label, parse_ts, t, zone
from turncoat.report.present import colours as _colours
from turncoat.report.present import display_value
from turncoat.store.schema import STAGES

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
