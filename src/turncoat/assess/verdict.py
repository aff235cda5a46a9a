"""`turncoat assess`: findings + coverage → per-host, per-campaign verdicts on the kill-chain ladder.

A host gets, per campaign, the highest stage with evidence; with none, it is `not-affected` only when
process-level telemetry covers the campaign's exposure window without gaps, else `no-evidence`
with what to collect. Its headline verdict is the worst across campaigns. Timing (activation ETA)
comes from the pack's dormancy, never from constants here.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from typing import Any

import duckdb

from turncoat import __version__
from turncoat.assess.beacon_facts import beacon_report
from turncoat.assess.coverage import (
    Gap,
    HostCoverage,
    WindowCheck,
    check_window,
    measure,
)
from turncoat.assess.generic import build_changes, generic_campaigns
from turncoat.assess.network_coverage import add_network_coverage
from turncoat.assess.triage_facts import (
    browser_exposure,
    exposure_remediation,
    fleet_anomalies,
    pbx_builds,
    triage_hosts,
    triage_rows,
)
from turncoat.detect.killchain import condition_sql
from turncoat.intel.pack import Pack, iso
from turncoat.store.schema import (
    CONFIDENCES,
    FINDINGS_COLUMNS,
    FROM_NETWORK_LOGS,
    NET_TABLES,
    STAGES,
    VERDICTS,
    verdict_rank,
)

MAX_EVIDENCE_PER_HOST = 500
UNKNOWN_HOST = "(unknown host)"
EXIT_CLEARED, EXIT_INCONCLUSIVE, EXIT_COMPROMISE = 0, 3, 4


def _findings(con: duckdb.DuckDBPyConnection) -> dict[str, list[dict[str, Any]]]:
    cols = list(FINDINGS_COLUMNS)
    by_host: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in con.execute(
        f"SELECT {', '.join(cols)} FROM findings "
        "ORDER BY host, ts NULLS LAST, rule_id, evidence_id, record_id, line, view, field, value, campaign"
    ).fetchall():
        item = dict(zip(cols, row))
        item["host"] = item["host"] or UNKNOWN_HOST  # evidence without a host name is never dropped
        by_host[item["host"]].append(item)
    return by_host


def _sigma_by_host(con: duckdb.DuckDBPyConnection) -> dict[str, list[dict[str, Any]]]:
    """Per host, each Sigma rule that fired: hits, first and last time, and a pack's false-positive note."""
    if not con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'sigma_hits'").fetchall()[0][0]:
        return {}
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for host, source, rule_id, title, level, fp, note, note_fr, hits, first, last in con.execute(
        """SELECT coalesce(host, ?), source, rule_id, title, level, false_positive, note, note_fr,
                  count(*), min(ts), max(ts)
        FROM sigma_hits GROUP BY 1, 2, 3, 4, 5, 6, 7, 8
        ORDER BY 1, list_position(['critical', 'high', 'medium', 'low', 'informational'], any_value(level)),
                 3, 2, 6, 7""",
        [UNKNOWN_HOST],
    ).fetchall():
        out[host].append({"rule_id": rule_id, "title": title, "level": level, "source": source, "hits": hits,
                          "first": iso(first), "last": iso(last), "false_positive": bool(fp),
                          "note": note, "note_fr": note_fr})
    return out


def _aliases(con: duckdb.DuckDBPyConnection) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for host, alias in con.execute(
        "SELECT DISTINCT host, alias FROM host_aliases ORDER BY 1, 2"  # event logs' names and triage's
    ).fetchall():
        out[host].append(alias)
    return out


def _addresses(con: duckdb.DuckDBPyConnection) -> dict[str, list[dict[str, Any]]]:
    """Per host, the addresses it had and when (from DHCP leases and its own events)."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for host, ip, first, last, sources in con.execute(
        "SELECT host, ip, first_seen, last_seen, sources FROM ip_hosts ORDER BY host, first_seen, ip"
    ).fetchall():
        out[host].append({"ip": ip, "first_seen": iso(first), "last_seen": iso(last), "sources": sources})
    return out


def _network_records(con: duckdb.DuckDBPyConnection) -> int:
    counts = " + ".join(f"(SELECT count(*) FROM {t} {FROM_NETWORK_LOGS})" for t in NET_TABLES)
    return int(con.execute(f"SELECT {counts}").fetchall()[0][0])


def _best_confidence(rows: list[dict[str, Any]]) -> str:
    return max((r["confidence"] for r in rows), key=CONFIDENCES.index, default="low")


def version_blind_hosts(con: duckdb.DuckDBPyConnection, pack: Pack, start: datetime, end: datetime) -> set[str]:
    """Hosts where the pack's app ran in the window but no log tells which build it was.

    Security 4688 names the program, not its version or hash. Such a host can be cleared only if
    its Application log shows a clean build installed and no silent in-app update (Squirrel's
    `Update.exe --update`) ran in the window; otherwise a trojanized build may have run unseen.
    """
    if "names" not in (pack.meta.get("product") or {}):
        return set()  # a pack of indicators only names no app whose build could be unknown
    names = pack.resolve("product.names")
    packages = pack.resolve("product.package_names") if "package_names" in pack.meta.get("product", {}) else []
    clean = pack.meta.get("versions", {}).get("windows", {}).get("clean") or []
    window = [start, end]
    app = condition_sql({"field": "process.name", "op": "equals", "values": names})
    blind = {h for (h,) in con.execute(
        f"""SELECT DISTINCT "host.name" FROM ecs_process
            WHERE {app} AND "@timestamp" BETWEEN ? AND ?
              AND "process.pe.file_version" IS NULL AND "process.hash.sha256" IS NULL
              AND "process.hash.sha1" IS NULL AND "process.hash.md5" IS NULL""", window).fetchall()}
    if not blind:
        return set()
    in_app_folder = condition_sql({"field": "process.executable", "op": "contains",
                                   "values": [n.lower().removesuffix(".exe") for n in names]})
    updated = {h for (h,) in con.execute(
        f"""SELECT DISTINCT "host.name" FROM ecs_process
            WHERE lower("process.name") = 'update.exe' AND "@timestamp" BETWEEN ? AND ?
              AND contains(lower("process.command_line"), '--update') AND {in_app_folder}""",
        window).fetchall()}
    known_clean = set()
    if packages and clean:
        installed_clean = " AND ".join(condition_sql(c) for c in (
            {"field": "package.name", "op": "equals", "values": packages},
            {"field": "event.action", "op": "equals", "values": ["installed"]},
            {"field": "package.version", "op": "version_in", "values": clean}))
        known_clean = {h for (h,) in con.execute(
            f'SELECT DISTINCT "host.name" FROM ecs_package WHERE {installed_clean}').fetchall()}
    return {h for h in blind if h in updated or h not in known_clean}


def _campaign(pack: Pack, rows: list[dict[str, Any]], cov: HostCoverage | None, case_end: datetime | None,
              paths: dict[str, str], version_blind: bool = False) -> dict[str, Any]:
    start, end = pack.window
    required_end = min(end, case_end) if case_end else end
    window: WindowCheck = check_window(cov, start, required_end)
    if window.covers and version_blind:  # only packs that name their product find such hosts
        names = ", ".join(pack.resolve("product.names"))
        window = WindowCheck(False, window.required, [Gap(
            "version-unknown", window.best.channel if window.best else "*", start, required_end,
            f"{names} ran, but these logs do not show which build (no version or hash, no clean install "
            "recorded, or an in-app update ran)",
            f"{names} a tourné, mais ces journaux ne disent pas quelle version (ni version ni empreinte, aucune "
            "installation saine enregistrée, ou une mise à jour interne a eu lieu)")], [
            f"a record of which {names} build ran: Sysmon (process creation with hashes and file versions), "
            "the Application log's MsiInstaller events, Amcache or Prefetch, or the app folder itself"],
            window.best, [
            f"une trace de la version de {names} qui a tourné : Sysmon (création de processus avec empreintes et "
            "versions), les événements MsiInstaller du journal Application, Amcache ou Prefetch, ou le dossier "
            "de l'application"])
    mine = [r for r in rows if r["campaign"] == pack.id]
    stages_seen = sorted({r["stage"] for r in mine}, key=STAGES.index)
    if stages_seen:
        stage = stages_seen[-1]
        confidence = _best_confidence([r for r in mine if r["stage"] == stage])
    elif window.covers:
        stage = "not-affected"
        confidence = "high" if window.best and window.best.channel.startswith("Microsoft-Windows-Sysmon") else "medium"
    else:
        stage, confidence = "no-evidence", "low"
    ran = [r["ts"] for r in mine if r["stage"] == "armed-dormant" and r["ts"] is not None]
    contact = [r["ts"] for r in mine if r["stage"] == "c2-contact" and r["ts"] is not None]
    first_execution = min(ran) if ran else None
    dormancy = pack.dormancy
    eta = first_execution + timedelta(days=dormancy["typical"]) if first_execution else None
    return {
        "campaign": pack.id,
        "stage": stage,
        "confidence": confidence,
        "first_execution": iso(first_execution),
        "first_c2": iso(min(contact)) if contact else None,
        "last_c2": iso(max(contact)) if contact else None,
        "activation_eta": iso(eta),
        "activation_window": {
            "earliest": iso(first_execution + timedelta(days=dormancy["min"])) if first_execution else None,
            "latest": iso(first_execution + timedelta(days=dormancy["max"])) if first_execution else None,
        },
        "stages": [
            {"stage": s, "first_seen": iso(min((r["ts"] for r in mine if r["stage"] == s and r["ts"]), default=None)),
             "evidence_count": sum(1 for r in mine if r["stage"] == s)}
            for s in stages_seen
        ],
        "evidence": [_evidence(r, paths) for r in mine[:MAX_EVIDENCE_PER_HOST]],
        "evidence_total": len(mine),
        "window": window,
    }


def _evidence(row: dict[str, Any], paths: dict[str, str]) -> dict[str, Any]:
    return {
        "campaign": row["campaign"], "stage": row["stage"], "confidence": row["confidence"],
        "rule_id": row["rule_id"], "title": row["title"], "ts": iso(row["ts"]), "view": row["view"],
        "field": row["field"], "value": row["value"], "evidence_id": row["evidence_id"],
        "evidence_path": paths.get(row["evidence_id"]), "record_id": row["record_id"], "line": row["line"],
    }


def _reason(host_stage: str, campaign: dict[str, Any], window: WindowCheck, pack: Pack,
            network_only: bool = False) -> dict[str, str]:
    """One line a person can read, in English and French: the decisive evidence, or why the host
    cannot be cleared."""
    start, end = (iso(t) for t in window.required)
    if host_stage in STAGES:
        top = [e for e in campaign["evidence"] if e["stage"] == host_stage]
        if not top:
            return {"en": f"{pack.id}: {host_stage}", "fr": f"{pack.id} : {host_stage}"}
        # the earliest of the strongest rows; for indicators the title already names the value
        best = min(top, key=lambda e: (-CONFIDENCES.index(e["confidence"]), e["ts"] or "", e["rule_id"]))
        if best["rule_id"].startswith("ioc:"):
            _, kind, value = best["rule_id"].split(":", 2)
            return {"en": f"{pack.id}: {best['title']} ({best['ts']})",
                    "fr": f"{pack.id} : indicateur connu, {kind} {value} ({best['ts']})"}
        shown = f"{best['field']} = {_short(best['value'])}"
        title_fr = _rule_title(pack, best["rule_id"], "fr") or best["title"]
        return {"en": f"{pack.id}: {best['title']} — {shown} ({best['ts']})",
                "fr": f"{pack.id} : {title_fr} — {shown} ({best['ts']})"}
    if host_stage == "not-affected":
        src = window.best.channel if window.best else "process telemetry"
        return {"en": f"{pack.id}: {src} covers {start}..{end} without gaps and shows no trojanized version",
                "fr": f"{pack.id} : {src} couvre {start}..{end} sans interruption et ne montre aucune version piégée"}
    if window.gaps:
        return {"en": f"{pack.id}: cannot clear — {window.gaps[0].detail}",
                "fr": f"{pack.id} : impossible de conclure — {window.gaps[0].detail_fr()}"}
    if window.best is None and network_only:
        return {"en": f"{pack.id}: cannot clear — seen only in network logs, which show contact with attackers' "
                      "servers but not what was installed or ran; no process telemetry for this host",
                "fr": f"{pack.id} : impossible de conclure — machine vue seulement dans les journaux réseau, qui "
                      "montrent les contacts avec les serveurs des attaquants mais pas ce qui était installé ou a "
                      "tourné ; aucun journal de processus pour cette machine"}
    if window.best is None:
        return {"en": f"{pack.id}: cannot clear — no process-creation or module-load telemetry for this host",
                "fr": f"{pack.id} : impossible de conclure — aucun journal de création de processus ou de "
                      "chargement de modules pour cette machine"}
    return {"en": f"{pack.id}: cannot clear — telemetry does not cover {start}..{end}",
            "fr": f"{pack.id} : impossible de conclure — les journaux ne couvrent pas {start}..{end}"}


def _rule_title(pack: Pack, rule_id: str, lang: str) -> str | None:
    for rule in pack.rules:
        if f"rule:{rule['id']}" == rule_id and isinstance(rule.get("title"), dict):
            return rule["title"].get(lang)
    return None


def _short(value: Any, limit: int = 120) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def assess(con: duckdb.DuckDBPyConnection, packs: list[Pack], manifest: dict[str, Any]) -> dict[str, Any]:
    """The whole report.json document (docs/report.md), deterministic for the same store and packs."""
    coverage = measure(con)
    shared = add_network_coverage(con, coverage)
    addresses = _addresses(con)
    findings = _findings(con)
    sigma = _sigma_by_host(con)
    aliases = _aliases(con)
    first_event, last_event, records, kept = con.execute(
        "SELECT min(ts) FILTER (WHERE ts > TIMESTAMPTZ '1601-01-02'), max(ts), "
        "(SELECT count(*) FROM win_events_all), count(*) FROM win_events"
    ).fetchall()[0]
    paths = {item["evidence_id"]: item["path"] for item in manifest.get("items", [])}
    blind = {p.id: version_blind_hosts(con, p, p.window[0], min(p.window[1], last_event or p.window[1]))
             for p in packs}
    generic = generic_campaigns(con, first_event, last_event)  # IOC-free: only where they have findings
    changes = build_changes(con)
    hosts_out = []
    exposure = browser_exposure(con)
    beacon_summary, beacons_by_host = beacon_report(con)
    for host in sorted(set(coverage) | set(findings) | triage_hosts(con) | set(beacons_by_host)):
        rows = findings.get(host, [])
        campaigns = [_campaign(p, rows, coverage.get(host), last_event, paths, host in blind[p.id]) for p in packs]
        campaigns += [_campaign(g, rows, coverage.get(host), last_event, paths) for g in generic
                      if any(r["campaign"] == g.id for r in rows)]
        worst = max(campaigns, key=lambda c: (verdict_rank(c["stage"]), CONFIDENCES.index(c["confidence"])))
        window = worst.pop("window")
        for c in campaigns:
            c.pop("window", None)
        pack = next(p for p in [*packs, *generic] if p.id == worst["campaign"])
        evidence = [e for c in campaigns for e in c["evidence"]]
        evidence.sort(key=lambda e: (e["ts"] or "", e["rule_id"], e["evidence_id"] or "", e["record_id"] or 0,
                                      e["line"] or 0, e["view"], e["field"], str(e["value"])))
        cov = coverage.get(host)
        remediation = pack.remediation(worst["stage"])
        if worst["stage"] == "data-stolen" and exposure.get(host):
            steps = exposure_remediation(exposure[host])
            remediation = {lang: remediation.get(lang, []) + steps[lang] for lang in ("en", "fr")}
        if worst["stage"] == "no-evidence":
            remediation["en"] = remediation["en"] + [f"Collect: {m}" for m in window.missing[:1]]
            remediation["fr"] = remediation["fr"] + [f"À collecter : {m}" for m in window.missing_fr[:1]]
        network_only = bool(cov and cov.sources) and all(src.kind == "network" for src in cov.sources)
        reason = _reason(worst["stage"], worst, window, pack, network_only)
        shared_gaps = [g for g in (cov.gaps if cov else []) if g.kind == "shared-address"]
        if shared_gaps:
            reason = {"en": f"{reason['en']} — {shared_gaps[0].detail}",
                      "fr": f"{reason['fr']} — {shared_gaps[0].detail_fr()}"}
        hosts_out.append({
            "host": host,
            "aliases": aliases.get(host, []),
            "addresses": addresses.get(host, []),
            "verdict": worst["stage"],
            "confidence": worst["confidence"],
            "first_execution": worst["first_execution"],
            "first_c2": worst["first_c2"],
            "last_c2": worst["last_c2"],
            "activation_eta": worst["activation_eta"],
            "activation_window": worst["activation_window"],
            "reason": reason["en"],
            "reason_fr": reason["fr"],
            "campaigns": campaigns,
            "coverage": {
                "covers_window": window.covers,
                "required": {"start": iso(window.required[0]), "end": iso(window.required[1])},
                "sources": [s.as_dict() for s in (cov.sources if cov else [])],
                "gaps": [g.as_dict() for g in [*(window.gaps or []), *shared_gaps]][:100],
                "missing": window.missing,
                "missing_fr": window.missing_fr,
            },
            "evidence": evidence[:MAX_EVIDENCE_PER_HOST],
            "evidence_total": sum(c["evidence_total"] for c in campaigns),
            "sigma": sigma.get(host, []),
            "browser_profiles": exposure.get(host, []),
            "beacons": beacons_by_host.get(host, []),
            "remediation": remediation,
        })
    by_verdict = {v: sum(1 for h in hosts_out if h["verdict"] == v) for v in VERDICTS}
    worst_verdict = max((h["verdict"] for h in hosts_out), key=verdict_rank, default=None)
    items = manifest.get("items", [])
    return {
        "schema": "turncoat.report",
        "schema_version": 1,
        "turncoat_version": __version__,
        "case": {
            "evidence_files": sum(1 for i in items if i.get("status") == "read"),
            "evidence_unreadable": sum(1 for i in items if i.get("status") not in ("read", "archive")),
            "archives": sum(1 for i in items if i.get("status") == "archive"),
            "evidence_skipped": sum(len(i.get("duplicates", [])) for i in items),
            "records": int(records),
            "duplicates_collapsed": int(records - kept),
            "errors": sum(i.get("issue_count", 0) for i in items) + len(manifest.get("problems", [])),
            "first_event": iso(first_event),
            "last_event": iso(last_event),
            "network_records": _network_records(con),
            "triage_rows": triage_rows(con),
            "addresses_attributed": sum(len(v) for v in addresses.values()),
            "shared_addresses": shared,
        },
        "campaigns": [{**p.summary(), **({"changes": changes[p.id]} if p.id in changes else {})}
                      for p in [*packs, *generic]],
        "summary": {
            "hosts": len(hosts_out),
            "by_verdict": by_verdict,
            "worst_verdict": worst_verdict,
            "exit_code": exit_code(hosts_out),
        },
        "hosts": hosts_out,
        "beacons": beacon_summary,
        "pbx_update_folders": pbx_builds(con, packs),
        "fleet_anomalies": fleet_anomalies(con),
        "evidence_files": [
            {"evidence_id": i.get("evidence_id"), "path": i["path"], "sha256": i.get("sha256"),
             "reader": i.get("reader"), "status": i.get("status"), "records": i.get("records", 0),
             "errors": i.get("issue_count", 0)}
            for i in items
        ],
    }


def exit_code(hosts: list[dict[str, Any]]) -> int:
    """DESIGN.md's codes: 4 compromise evidence, 3 some host cannot be cleared, 0 all cleared."""
    verdicts = {h["verdict"] for h in hosts}
    if verdicts & set(STAGES):
        return EXIT_COMPROMISE
    if "no-evidence" in verdicts or not hosts:
        return EXIT_INCONCLUSIVE
    return EXIT_CLEARED
