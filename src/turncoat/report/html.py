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

from collections import Counter
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

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
from turncoat.report.present import case_facts, display_value, period_text
from turncoat.report.present import colours as _colours
from turncoat.report.present import rank as _rank
from turncoat.report.redact import defang
from turncoat.report.timeline import Axis, build_axis, build_timelines
from turncoat.store.schema import STAGES, VERDICTS

TEMPLATES = Path(__file__).parent / "templates"
TEMPLATE = "report.html.j2"
MAX_ROWS = 20  # evidence rows per host without --detail


# --- small helpers ------------------------------------------------------------------------------


def _badge(verdict: str, lang: str) -> dict[str, str]:
    """Everything the template needs to draw a verdict badge."""
    return {"id": verdict, "label": label("verdict", verdict, lang), **_colours(verdict)}


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
             "detail": (g.get("detail_fr") if lang == "fr" else None) or g.get("detail")}
            for g in coverage.get("gaps") or []
        ],
        "missing": list((coverage.get("missing_fr") if lang == "fr" else None) or coverage.get("missing") or []),
    }


def _milestones(host: dict[str, Any], report: dict[str, Any], lang: str, tz: str) -> list[dict[str, Any]]:
    """First run, expected activation, first C2 — with a note when a date lies after the logs end."""
    last = parse_ts((report.get("case") or {}).get("last_event"))
    items = []
    for key in ("first_execution", "activation_eta", "first_c2", "last_c2"):
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
        "addresses": [
            {"ip": a.get("ip"), "first": fmt_ts(a.get("first_seen"), lang, tz), "last": fmt_ts(a.get("last_seen"), lang, tz)}
            for a in host.get("addresses") or []],
        "verdict": verdict,
        "badge": _badge(verdict, lang),
        "meaning": label("verdict", f"{verdict}.meaning", lang),
        "confidence": label("confidence", str(host.get("confidence")), lang),
        "confidence_meaning": label("confidence", f"{host.get('confidence')}.meaning", lang),
        "reason": (host.get("reason_fr") if lang == "fr" else None) or host.get("reason"),
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
        "sigma": [
            {"title": r.get("title"), "rule_id": r.get("rule_id"), "level": r.get("level"), "hits": r.get("hits"),
             "source": r.get("source"), "first": fmt_ts(r.get("first"), lang, tz),
             "last": fmt_ts(r.get("last"), lang, tz), "false_positive": bool(r.get("false_positive")),
             "note": (r.get("note_fr") if lang == "fr" else None) or r.get("note")}
            for r in host.get("sigma") or []],
        "beacons": [_beacon(b, lang, tz) for b in host.get("beacons") or []],
        "browsers": [
            {"browser": b.get("browser"), "profile": b.get("profile"), "user": b.get("user"),
             "holds": ", ".join(b.get("holds") or []), "domains": b.get("history_domains"),
             "last_visit": fmt_ts(b.get("last_visit"), lang, tz), "copies": b.get("history_copies") or 0}
            for b in host.get("browser_profiles") or []],
    }


def _beacon(b: dict[str, Any], lang: str, tz: str) -> dict[str, Any]:
    """A beacon candidate's row, with its inter-beat histogram as SVG bars (x in half-periods)."""
    bins = b.get("histogram") or []
    top = max((h["count"] for h in bins), default=0) or 1
    bars = [{"x": i * 10, "h": round(28 * h["count"] / top, 1), "count": h["count"],
             "label": f"{h['from_periods']:g}–{h['from_periods'] + 0.5:g}"} for i, h in enumerate(bins)]
    return {"destination": b.get("destination"), "process": b.get("process"), "score": f"{b.get('score', 0):.2f}",
            "period": period_text(b.get("period_s")),
            "jitter": "" if b.get("jitter") is None else f"{b['jitter']:.0%}", "beats": b.get("count"),
            "first": fmt_ts(b.get("first_seen"), lang, tz), "last": fmt_ts(b.get("last_seen"), lang, tz),
            "hosts_sharing": b.get("hosts_sharing"), "bars": bars}


def _case(report: dict[str, Any], lang: str, tz: str) -> dict[str, Any]:
    """What was read: counts, span, campaigns, files with their hashes (the chain of custody)."""
    case = report.get("case") or {}

    return {
        "facts": case_facts(report, lang),
        "errors": int(case.get("errors") or 0),
        "span": t("case.span", lang).format(start=fmt_ts(case.get("first_event"), lang, tz),
                                            end=fmt_ts(case.get("last_event"), lang, tz)),
        "campaigns": [_campaign(campaign, lang, tz) for campaign in report.get("campaigns") or []],
        "pbx": [
            {"host": b.get("host"), "file": b.get("file"), "version": b.get("version"),
             "build": label("build", str(b.get("build")), lang), "trojanized": b.get("build") == "trojanized",
             "reason": b.get("reason"), "sha256": b.get("sha256")}
            for b in report.get("pbx_update_folders") or []],
        "fleet": [
            {"file": a.get("file"), "place": a.get("place"), "version": a.get("version"),
             "variants": [{"sha256": v.get("sha256"), "hosts": ", ".join(v.get("hosts") or [])}
                          for v in a.get("variants") or []]}
            for a in report.get("fleet_anomalies") or []],
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
    return {"id": campaign.get("id"), "name": campaign.get("name"), "text": text,
            "changes": [{**c, "kind": label("change", str(c.get("kind")), lang)}
                        for c in campaign.get("changes") or []]}


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
