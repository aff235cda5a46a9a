"""One CSV row per host, for spreadsheets, ticketing imports and asset-inventory joins.

Values stay machine-readable (ISO-8601 UTC times, verdict ids, `true`/`false`) because the point of
the CSV is to be joined and filtered, not read; the HTML report is for reading.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

COLUMNS: tuple[str, ...] = (
    "host",
    "verdict",
    "confidence",
    "first_execution",
    "first_c2",
    "last_c2",
    "activation_eta",
    "addresses",
    "covers_window",
    "evidence_count",
    "reason",
    "campaigns",
)
# A spreadsheet treats a cell starting with one of these as a formula. Host names and reasons can
# carry attacker-chosen text, so such cells get a leading apostrophe (OWASP "CSV injection").
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """Text of one cell: empty for null, lower-case booleans, formula starts neutralised."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    text = str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def _campaigns(host: dict[str, Any]) -> str:
    """`campaign=stage` pairs, semicolon-joined, in report order (already sorted by assess)."""
    return ";".join(
        f"{entry.get('campaign', '')}={entry.get('stage', '')}" for entry in host.get("campaigns") or []
    )


def host_row(host: dict[str, Any]) -> dict[str, str]:
    """The CSV row of one host of report.json."""
    coverage = host.get("coverage") or {}
    values: dict[str, Any] = {
        "host": host.get("host"),
        "verdict": host.get("verdict"),
        "confidence": host.get("confidence"),
        "first_execution": host.get("first_execution"),
        "first_c2": host.get("first_c2"),
        "last_c2": host.get("last_c2"),
        "activation_eta": host.get("activation_eta"),
        "addresses": ";".join(str(a.get("ip")) for a in host.get("addresses") or []),
        "covers_window": coverage.get("covers_window"),
        "evidence_count": len(host.get("evidence") or []),
        "reason": host.get("reason"),
        "campaigns": _campaigns(host),
    }
    return {column: _cell(values[column]) for column in COLUMNS}


def write_hosts_csv(report: dict[str, Any], path: Path) -> None:
    """Write `path` (UTF-8, header row, RFC 4180 quoting, CRLF line ends) with one row per host.

    Rows follow the report's host order, so the same report gives the same bytes.
    """
    path = Path(path)
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=COLUMNS, quoting=csv.QUOTE_MINIMAL)
        writer.writeheader()
        for host in report.get("hosts") or []:
            writer.writerow(host_row(host))
