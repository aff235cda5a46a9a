"""Views over the triage tables, and the rows they add to the ECS views.

Triage artifacts say different things than event logs: a file on disk or in Amcache shows presence,
an Uninstall key shows an installation, a Prefetch run time shows execution. Each lands in the ECS view
of what it proves, so the pack's indicators and behaviour rules read a KAPE collection exactly as they
read Sysmon — and an artifact never claims more than it can (Amcache never feeds `ecs_process`).
"""

from __future__ import annotations

from pathlib import Path

import duckdb

from turncoat.store.schema import TRIAGE_TABLES, triage_columns
from turncoat.store.sqltext import parquet_view_sql


def create_triage_views(con: duckdb.DuckDBPyConnection, parquet_root: Path) -> None:
    """One view per triage table over its Parquet parts (typed and empty when there are none)."""
    for table in TRIAGE_TABLES:
        con.execute(f"CREATE OR REPLACE VIEW {table} AS {parquet_view_sql(parquet_root, table, triage_columns(table))}")
    con.execute(f"CREATE OR REPLACE VIEW triage_timeline AS {TRIAGE_TIMELINE}")


def machine_path(expr: str) -> str:
    """A Windows path without what names its volume (`C:`, `\\VOLUME{…}`, `\\Device\\HarddiskVolume3`),
    lower case: Prefetch and the file system spell the same file differently."""
    return (f"regexp_replace(lower(replace({expr}, '/', '\\')), "
            r"'^(\\volume\{[^}]*\}|\\device\\harddiskvolume[0-9]+|\\\\\?\\[a-z]:|[a-z]:)', '')")


def _basename(expr: str) -> str:
    return f"nullif(lower(regexp_extract({expr}, '[^\\\\/]*$')), '')"


# The version of the program each Prefetch run started: the executable on disk at the same path, or
# Amcache's entry for that path; by name alone when Prefetch did not record the path. The file found
# is the one in the collection, so a program updated since its run is attributed its newer version.
PREFETCH_WITH_VERSION = f"""(
  SELECT e.*, coalesce(f.version, a.version, fn.version, an.version) AS "pe.file_version",
         coalesce(f.product, fn.product) AS "pe.product", coalesce(f.original, fn.original) AS "pe.original_file_name",
         coalesce(f.sha256, fn.sha256) AS "hash.sha256", coalesce(f.sha1, fn.sha1) AS "hash.sha1",
         coalesce(f.md5, fn.md5) AS "hash.md5"
  FROM tri_execution e
  LEFT JOIN (SELECT host, {machine_path('"file.path"')} AS p, max("pe.file_version") AS version,
                    max("pe.product") AS product, max("pe.original_file_name") AS original,
                    max("file.hash.sha256") AS sha256, max("file.hash.sha1") AS sha1, max("file.hash.md5") AS md5
             FROM tri_file GROUP BY ALL) f
    ON f.host = e.host AND f.p = {machine_path('e."process.executable"')}
  LEFT JOIN (SELECT host, {machine_path('"file.path"')} AS p, max("pe.file_version") AS version
             FROM tri_amcache WHERE "amcache.kind" = 'file' GROUP BY ALL) a
    ON a.host = e.host AND a.p = {machine_path('e."process.executable"')}
  LEFT JOIN (SELECT host, lower("file.name") AS n, max("pe.file_version") AS version,
                    max("pe.product") AS product, max("pe.original_file_name") AS original,
                    max("file.hash.sha256") AS sha256, max("file.hash.sha1") AS sha1, max("file.hash.md5") AS md5
             FROM tri_file GROUP BY ALL HAVING count(DISTINCT "pe.file_version") = 1) fn
    ON e."process.executable" IS NULL AND fn.host = e.host AND fn.n = lower(e."process.name")
  LEFT JOIN (SELECT host, lower("file.name") AS n, max("pe.file_version") AS version
             FROM tri_amcache WHERE "amcache.kind" = 'file' GROUP BY ALL
             HAVING count(DISTINCT "pe.file_version") = 1) an
    ON e."process.executable" IS NULL AND an.host = e.host AND an.n = lower(e."process.name")
) AS prefetch_runs"""

# ECS view → (table or subquery, WHERE, ECS column → SQL over that table's columns)
TRIAGE_SOURCES: dict[str, list[tuple[str, str, dict[str, str]]]] = {
    "ecs_file": [
        ("tri_file", "artifact <> 'pbx-update'", {
            "file.path": '"file.path"', "file.name": _basename('"file.path"'),
            "file.hash.sha256": '"file.hash.sha256"', "file.hash.sha1": '"file.hash.sha1"',
            "file.hash.md5": '"file.hash.md5"', "event.action": "'present'",
            "file.size": '"file.size"', "file.pe.file_version": '"pe.file_version"',
            "file.pe.product": '"pe.product"', "file.pe.original_file_name": '"pe.original_file_name"',
            "file.code_signature.status": '"code_signature.status"',
            "file.code_signature.subject_name": '"code_signature.subject_name"',
            "file.code_signature.problems": 'lower("code_signature.problems")',
        }),
        # Amcache's SHA-1 covers the first 31,457,280 bytes: it equals a full-file SHA-1 only for
        # smaller files, which is where an indicator can match it
        ("tri_amcache", "\"amcache.kind\" = 'file'", {
            "file.path": '"file.path"', "file.name": _basename('"file.path"'),
            "file.hash.sha1": '"file.hash.sha1"', "event.action": "'inventoried'",
            "file.size": '"file.size"', "file.pe.file_version": '"pe.file_version"',
            "file.pe.product": '"pe.product"',
        }),
    ],
    "ecs_package": [
        ("tri_package", "true", {
            "package.name": '"package.name"', "package.version": '"package.version"',
            "package.vendor": '"package.vendor"', "event.action": "'installed'", "event.outcome": "'success'",
            "package.platform": "coalesce(\"package.platform\", 'windows')",
        }),
        ("tri_amcache", "\"amcache.kind\" = 'program'", {
            "package.name": '"package.name"', "package.version": '"package.version"',
            "package.vendor": '"pe.company"', "event.action": "'installed'", "event.outcome": "'success'",
        }),
    ],
    "ecs_process": [
        (PREFETCH_WITH_VERSION, "true", {
            "process.executable": '"process.executable"', "process.name": 'lower("process.name")',
            "process.pe.file_version": '"pe.file_version"', "process.pe.product": '"pe.product"',
            "process.pe.original_file_name": '"pe.original_file_name"',
            "process.hash.sha256": '"hash.sha256"', "process.hash.sha1": '"hash.sha1"',
            "process.hash.md5": '"hash.md5"',
        }),
    ],
    "ecs_alert": [
        ("tri_defender", "true", {
            "threat.name": '"threat.name"', "file.path": '"file.path"', "event.action": '"event.action"',
        }),
    ],
    "ecs_service": [
        ("tri_autorun", "\"autorun.kind\" = 'service'", {
            "service.name": '"autorun.name"', "service.executable": '"autorun.command"',
        }),
    ],
}


# One line per dated triage fact, whatever the artifact: the machine's story as the collection tells
# it (runs, installs, tasks registered, autoruns, detections, files, history copies).
TRIAGE_TIMELINE = """
SELECT ts, host, artifact, 'run' AS action, "process.name" AS subject,
       coalesce("process.executable", '') || ' (run ' || coalesce(CAST("prefetch.run_count" AS VARCHAR), '?')
       || ' times in all)' AS detail, evidence_id, seq, source_path FROM tri_execution
UNION ALL SELECT ts, host, artifact, 'installed', "package.name",
       coalesce("package.version", '') || coalesce(' by ' || "package.vendor", '') || coalesce(' for ' || "user.name", ''),
       evidence_id, seq, source_path FROM tri_package
UNION ALL SELECT ts, host, artifact, 'inventoried', coalesce("file.path", "package.name"),
       coalesce("pe.file_version", "package.version", '') || coalesce(' ' || "file.hash.sha1", ''),
       evidence_id, seq, source_path FROM tri_amcache
UNION ALL SELECT ts, host, artifact, "autorun.kind", "autorun.name",
       coalesce("autorun.command", '') || coalesce(' [' || "task.trigger" || ']', '') || coalesce(' by ' || "task.author", ''),
       evidence_id, seq, source_path FROM tri_autorun
UNION ALL SELECT ts, host, artifact, "event.action", "threat.name", coalesce("file.path", "process.command_line"),
       evidence_id, seq, source_path FROM tri_defender
UNION ALL SELECT ts, host, artifact, 'file', "file.path",
       coalesce("pe.file_version" || ' ', '') || coalesce("code_signature.status", '') || ' ' || "file.hash.sha256",
       evidence_id, seq, source_path FROM tri_file WHERE "file.type" IN ('pe', 'macho')
          OR lower("file.path") LIKE '%\\3cxdesktopapp\\app\\manifest'
UNION ALL SELECT ts, host, artifact, "browser.artifact", "browser.name" || ' ' || coalesce("browser.profile", ''),
       coalesce("user.name", '') || ' — ' || coalesce(CAST("browser.domains" AS VARCHAR), '?') || ' domains',
       evidence_id, seq, source_path FROM tri_browser WHERE "browser.artifact" IN ('history', 'history-copy')
UNION ALL SELECT ts, host, artifact, 'network-usage', "process.executable",
       CAST("network.bytes_sent" AS VARCHAR) || ' B sent, ' || CAST("network.bytes_received" AS VARCHAR) || ' B received',
       evidence_id, seq, source_path FROM tri_srum_net
"""
