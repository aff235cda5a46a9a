"""How verdicts and evidence values are presented, shared by the HTML page and its timelines.

Colours follow the ladder so severity reads at a glance; evidence values are shortened by default
because URLs in evidence are employees' browsing history (DESIGN.md "Privacy").
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from turncoat.report.i18n import fmt_int, pair, t, tn
from turncoat.store.schema import VERDICTS, verdict_rank

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


def rank(verdict: str) -> int:
    """Ladder position; unknown verdicts count as worst so they are never buried."""
    return verdict_rank(verdict) if verdict in VERDICTS else len(VERDICTS)


def colours(verdict: str) -> dict[str, str]:
    """Badge colours of a verdict or stage."""
    background, text = VERDICT_COLOURS.get(verdict, _UNKNOWN_COLOURS)
    return {"bg": background, "fg": text}


def shorten_urls(text: str) -> str:
    """Replace URLs in `text` by `host/…` — domains are shown by default, full URLs only with
    --detail, because browsing history is employees' personal data.

    A value that is one URL is cut whole, quotes and all (`url.full` may hold any bytes the
    client sent); URLs inside longer text end at whitespace or a quote.
    """
    stripped = text.strip()
    if _SCHEME.match(stripped) and not any(char.isspace() for char in stripped):
        return host_only(stripped)
    return _URL.sub(lambda match: host_only(match.group(0)), text)


def host_only(url: str) -> str:
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


def case_facts(report: dict[str, Any], lang: str) -> list[str]:
    """How much was read and what could not be, as "label: value" texts (terminal and HTML alike)."""
    case = report.get("case") or {}

    def number(key: str) -> str:
        return fmt_int(int(case.get(key) or 0), lang)

    skipped = tn("case.skipped", int(case.get("evidence_skipped") or 0), lang)
    facts = [
        pair(t("case.evidence_files", lang), f"{number('evidence_files')} ({skipped})", lang),
        pair(t("case.records", lang), number("records"), lang),
    ]
    if case.get("network_records"):
        facts.append(pair(t("case.network_records", lang), number("network_records"), lang))
    if case.get("triage_rows"):
        facts.append(pair(t("case.triage_rows", lang), number("triage_rows"), lang))
    facts += [
        pair(t("case.duplicates", lang), number("duplicates_collapsed"), lang),
        pair(t("case.errors", lang), number("errors"), lang),
    ]
    return facts


def period_text(seconds: float | None) -> str:
    """A beacon period the way people say it: seconds, minutes or hours."""
    if seconds is None:
        return ""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"
