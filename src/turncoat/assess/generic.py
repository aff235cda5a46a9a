"""The IOC-free campaigns as the assessor sees them: one pack-like campaign per
`generic:<signer>/<product>/<version>` found in the findings, so the same ladder, dormancy and
remediation machinery serves them. Their window is the case's own span: there is no published
exposure window for a compromise nobody has named yet."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import yaml

from turncoat.intel.pack import Pack, iso

GENERIC_PREFIX = "generic:"
GENERIC_META = Path(__file__).resolve().parents[1] / "intel" / "generic.yaml"


def generic_campaigns(con: duckdb.DuckDBPyConnection, first: datetime | None, last: datetime | None) -> list[Pack]:
    """A pack-like campaign for each generic campaign with findings in the case."""
    names = [c for (c,) in con.execute(
        "SELECT DISTINCT campaign FROM findings WHERE starts_with(campaign, ?) ORDER BY 1", [GENERIC_PREFIX]
    ).fetchall()]
    if not names:
        return []
    base = yaml.safe_load(GENERIC_META.read_text(encoding="utf-8"))
    span = con.execute("SELECT min(ts), max(ts) FROM findings WHERE starts_with(campaign, ?)",
                       [GENERIC_PREFIX]).fetchall()[0]
    start = min(t for t in (first, span[0]) if t is not None)
    end = max(t for t in (last, span[1]) if t is not None)
    out = []
    for name in names:
        app = name[len(GENERIC_PREFIX):]
        meta = {**base, "name": f"{base['name']}: {app}", "exposure_window": {"start": iso(start), "end": iso(end)}}
        out.append(Pack(id=name, root=GENERIC_META.parent, meta=meta))
    return out


def build_changes(con: duckdb.DuckDBPyConnection) -> dict[str, list[dict[str, Any]]]:
    """Per generic campaign, what its build changed against the earlier versions (module before →
    after, new children, new destinations), the changes that are findings first."""
    tables = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    if "generic_changes" not in tables:
        return {}
    out: dict[str, list[dict[str, Any]]] = {}
    for campaign, kind, name, before, after, hosts, finding in con.execute(
            "SELECT campaign, kind, name, before, after, hosts, finding FROM generic_changes "
            "ORDER BY campaign, NOT finding, kind, name").fetchall():
        out.setdefault(campaign, []).append({"kind": kind, "name": name, "before": before, "after": after,
                                             "hosts": hosts, "finding": finding})
    return out
