"""What the triage tables say beyond per-host findings: the hosts they name, what each browser profile
exposes, which builds a PBX could hand out, and where the fleet disagrees with itself.
"""

from __future__ import annotations

from typing import Any

import duckdb

from turncoat.detect.killchain import normalise_version
from turncoat.intel.pack import Pack
from turncoat.store.schema import TRIAGE_TABLES
from turncoat.store.triage_views import machine_path


def triage_hosts(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Every host a triage collection was read for, findings or not: it gets a verdict too."""
    union = " UNION ".join(f"SELECT DISTINCT host FROM {t}" for t in TRIAGE_TABLES)
    return {h for (h,) in con.execute(union).fetchall() if h}


def triage_rows(con: duckdb.DuckDBPyConnection) -> int:
    """Rows the triage readers stored, every table together (files hashed, runs, entries…)."""
    union = " UNION ALL ".join(f"SELECT count(*) AS n FROM {t}" for t in TRIAGE_TABLES)
    return int(con.execute(f"SELECT sum(n) FROM ({union})").fetchall()[0][0] or 0)


def browser_exposure(con: duckdb.DuckDBPyConnection) -> dict[str, list[dict[str, Any]]]:
    """Per host, its browser profiles: which data they hold (history, cookies, saved logins), how many
    domains the history names, and copies of the history — counts only, never URLs."""
    rows = con.execute(
        """SELECT host, "browser.name", "browser.profile", "user.name",
                  list(DISTINCT "browser.artifact" ORDER BY "browser.artifact"),
                  max("browser.domains") FILTER (WHERE "browser.artifact" = 'history'),
                  max("browser.last_visit"), count(*) FILTER (WHERE "browser.artifact" = 'history-copy')
           FROM tri_browser GROUP BY ALL ORDER BY ALL""").fetchall()
    out: dict[str, list[dict[str, Any]]] = {}
    for host, browser, profile, user, artifacts, domains, last_visit, copies in rows:
        out.setdefault(host, []).append({
            "browser": browser, "profile": profile, "user": user, "holds": artifacts,
            "history_domains": domains, "last_visit": last_visit.isoformat() if last_visit else None,
            "history_copies": copies,
        })
    return out


def exposure_remediation(profiles: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Steps per exposed profile for a host whose browser data was taken."""
    en: list[str] = []
    fr: list[str] = []
    for p in profiles:
        who = f"{p['user'] or '?'} — {p['browser']} « {p['profile'] or 'Default'} »"
        secrets = [a for a in p["holds"] if a in ("cookies", "login-data", "web-data")]
        en.append(f"Browser profile {who}: its history ({p['history_domains'] or 0} sites) was exposed; "
                  + ("sign out of its open sessions and change the passwords it saves" if secrets else
                     "review which internal sites and links with tokens it names")
                  + ".")
        fr.append(f"Profil de navigateur {who} : son historique ({p['history_domains'] or 0} sites) a été exposé ; "
                  + ("fermez ses sessions ouvertes et changez les mots de passe qu'il enregistre" if secrets else
                     "vérifiez quels sites internes et liens à jeton il contient")
                  + ".")
    return {"en": en, "fr": fr}


def pbx_builds(con: duckdb.DuckDBPyConnection, packs: list[Pack]) -> list[dict[str, Any]]:
    """Each installer or update in a PBX's update folder, and whether a pack knows it as trojanized
    (by its hash, or by its version when the pack has no hash for it) or clean."""
    rows = con.execute(
        """SELECT host, "pbx.platform", "file.name", "file.path", "package.version", "file.hash.sha256"
           FROM tri_pbx ORDER BY ALL""").fetchall()
    out = []
    for host, platform, name, path, version, sha256 in rows:
        build, reason, campaign = "unknown", "neither its hash nor its version is known to a pack", None
        for pack in packs:
            hits = [i for i in pack.iocs if i["type"] == "sha256" and i["value"].lower() == (sha256 or "")]
            versions = (pack.meta.get("versions") or {}).get(platform) or {}
            norm = normalise_version(version) if version else None
            if hits:
                build, reason, campaign = "trojanized", f"hash listed by the pack: {hits[0]['role']}", pack.id
            elif norm and norm in {normalise_version(v) for v in versions.get("affected") or []}:
                build, reason, campaign = "trojanized", f"version {version} is an affected {platform} build", pack.id
            elif norm and norm in {normalise_version(v) for v in versions.get("clean") or []}:
                build, reason, campaign = "clean", f"version {version} is a clean {platform} build", pack.id
            if build == "trojanized":
                break
        out.append({"host": host, "platform": platform, "file": name, "path": path, "version": version,
                    "sha256": sha256, "build": build, "reason": reason, "campaign": campaign})
    return out


def fleet_anomalies(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """The same program, version and place on several hosts, with different contents: one machine's
    copy is not what the others run (a partial roll-out of a bad build, or a local tamper). A build bad
    everywhere looks the same everywhere: that is the drift mode's job, not this one."""
    # the place with the user's folder name blanked, so C:\\Users\\alice\\… and …\\bob\\… compare
    path = machine_path('"file.path"')
    place = f"regexp_replace({path}, '^\\\\users\\\\[^\\\\]+', '\\\\users\\\\*')"
    rows = con.execute(
        f"""WITH files AS (
              SELECT host, {place} AS place, lower("file.name") AS name, "pe.product" AS product,
                     "pe.file_version" AS version, "file.hash.sha256" AS sha256
              FROM tri_file WHERE "pe.file_version" IS NOT NULL AND "file.hash.sha256" IS NOT NULL),
            groups AS (
              SELECT place, name, product, version FROM files GROUP BY ALL
              HAVING count(DISTINCT host) > 1 AND count(DISTINCT sha256) > 1)
            SELECT g.place, g.name, g.product, g.version, f.sha256, list(DISTINCT f.host ORDER BY f.host)
            FROM groups g JOIN files f USING (place, name, product, version)
            GROUP BY ALL ORDER BY ALL""").fetchall()
    out: dict[tuple, dict[str, Any]] = {}
    for place, name, product, version, sha256, hosts in rows:
        group = out.setdefault((place, name, product, version), {
            "file": name, "place": place, "product": product, "version": version, "variants": []})
        group["variants"].append({"sha256": sha256, "hosts": hosts})
    for group in out.values():
        group["variants"].sort(key=lambda v: (-len(v["hosts"]), v["sha256"]))
        group["odd_hosts"] = sorted({h for v in group["variants"][1:] for h in v["hosts"]})
    return list(out.values())
