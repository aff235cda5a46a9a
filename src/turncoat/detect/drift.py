"""Build drift: what a new version of a signed application changes, compared with its earlier versions
across the whole organisation — the IOC-free way to see a trojanized update (generic mode).

The reference case is 3CX (March 2023): the vendor's signed update shipped an `ffmpeg.dll` with a new
hash and no signature, and a `d3dcompiler_47.dll` whose Microsoft signature stayed valid while carrying
a payload padded inside the signature (CVE-2013-3900); after ~7 days the app contacted domains never
seen before. No single event says "malicious"; the *difference* between builds does. So this module
1. lists every application build seen (`app_builds`): an application is a program name and its PE
   product (``3cxdesktopapp.exe`` / ``3CX Desktop App``), labelled with its signer (the Authenticode
   subject of its executable when an image load or a collected file shows it, else the PE company);
   a build is one version, with the hosts that ran it and when each first did;
2. orders the versions of each application (numerically, then by first sight) and compares each
   version with all the earlier ones, on every host at once (the baseline): modules it loads, shells
   it spawns, destinations it contacts;
3. turns into findings only what a benign vendor update does not do (`drift_findings`):
   (a) a module name the app loaded before, now with a new hash AND a new signer or no valid signature
       any more — or a new file whose certificate table hides padding (CVE-2013-3900): `medium`;
   (b) a module in the app's own folder that is unsigned or signed by someone unknown to the app (and
       was not so before): `low`;
   (c) a shell or script host (cmd, powershell, wscript, mshta, rundll32 …) no earlier version spawned;
   (d) a destination no earlier version contacted, reported only for a build that drifted by (a)-(c):
       a new version of any networked app talks to new endpoints, which alone proves nothing;
   (e) the delay between the build's first run on the host and that contact is in the title;
       `detect/dormancy.py` judges it.

What is deliberately not a finding:
- a new hash with the same valid signer (an ordinary vendor update), and a hash already seen;
- Windows' own files (under ``\\Windows\\``): their hash follows the host's patch level, not the app's
  version, and most carry no embedded signature (they are catalog-signed), so Sysmon's `Signed=false`
  and the triage status `catalog-signed?` there say nothing about the file. Only a fact about the file
  itself counts there: padding inside its signature, or a signature a collection found broken;
- a module whose signature nobody recorded (Sysmon without signature fields, no collection): a hash
  change alone is every update;
- applications that live under ``\\Windows\\`` (the OS, updated by Windows Update per host);
- the first version of an application seen: without an earlier version there is no baseline, and its
  `AppVersion.note` says so.

Everything heavy is set-based SQL over the ECS views (temporary tables `drift_*`): per-row work is one
ASOF join that puts each image load, child process and connection on the build of the executable that
was running at that path on that host, then aggregates. Python only orders versions and applies the
rules to the few (application, version, module) rows whose hash is new.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import duckdb

from turncoat.detect.contacts import LOCAL_ONLY
from turncoat.store.attribution import internal_sql
from turncoat.store.sqltext import lit
from turncoat.store.triage_views import machine_path

SHELLS: tuple[str, ...] = (
    "cmd.exe", "powershell.exe", "pwsh.exe", "wscript.exe", "cscript.exe", "mshta.exe", "rundll32.exe",
    "regsvr32.exe",
)
# A load can be logged a moment before the process-creation event of the run it belongs to.
START_TOLERANCE_S = 2
# Sysmon SignatureStatus values that still name who signed the file (an expired certificate with a
# valid chain is the normal state of an older signed file).
VALID_STATUSES = ("valid", "expired")

RULE_SIGNATURE = "generic:drift:module-signature"
RULE_PADDING = "generic:drift:signature-padding"
RULE_FOREIGN = "generic:drift:module-foreign"
RULE_SHELL = "generic:drift:new-shell-child"
RULE_DESTINATION = "generic:drift:new-destination"


@dataclass
class AppVersion:
    """One build of an application: its version and where and when it first ran."""

    version: str                     # as the PE wrote it (the most common spelling)
    key: str                         # normalised (no trailing ".0", no build label)
    rank: int                        # 0 = earliest version of the application
    first_run: datetime | None       # first run anywhere in the organisation (None: only installed)
    hosts: dict[str, datetime] = field(default_factory=dict)  # host → first run there
    earlier: list[str] = field(default_factory=list)          # versions forming its baseline
    campaign: str = ""
    note: str | None = None          # why the build cannot be compared (no baseline)


@dataclass
class AppBuild:
    """An application (program name + PE product) with the versions seen, earliest first."""

    signer: str
    product: str
    executable: str
    versions: list[AppVersion] = field(default_factory=list)


@dataclass
class DriftAnalysis:
    """Everything the analysis found: builds, every change seen (findings or not), the findings."""

    builds: list[AppBuild]
    changes: list[dict[str, Any]]    # one per (application, version, change), with `finding` True/False
    findings: list[dict[str, Any]]   # rows with the findings table's columns


# --------------------------------------------------------------------------- SQL building blocks

def version_key_sql(expr: str) -> str:
    """A version as compared: first word, commas as dots, trailing `.0` parts dropped
    (`18.12.416.0` from Sysmon and `18.12.416` from an MSI are one build)."""
    return (f"CASE WHEN trim({expr}) IN ('', '-') THEN NULL ELSE nullif(regexp_replace("
            f"replace(split_part(trim({expr}), ' ', 1), ',', '.'), '(\\.0+)+$', ''), '') END")


def _dirname(expr: str) -> str:
    return f"regexp_replace({expr}, '\\\\[^\\\\]*$', '')"


def _under_windows(expr: str) -> str:
    return f"starts_with({expr}, '\\windows\\')"


def campaign_name(signer: str, product: str, version: str) -> str:
    return f"generic:{signer}/{product}/{version}"


def _version_sort_key(version: str, first_seen: datetime) -> tuple[Any, ...]:
    parts = re.findall(r"\d+", version)
    return (tuple(int(p) for p in parts) if parts else (), first_seen)


def prepare(con: duckdb.DuckDBPyConnection) -> None:
    """Create the temporary tables both drift and dormancy read:

    - `drift_proc`: runs of versioned executables outside ``\\Windows\\`` (one row per process event);
    - `drift_app` (app_id, exe_name, product, signer) and `drift_rank` (app_id, vkey, version, rank);
    - `drift_tl`: the timeline the ASOF joins read (host, exe_key, ts_from, app_id, vkey);
    - `drift_first`: first run of each build on each host, with its provenance;
    - `drift_mod`: modules per build and host (Sysmon 7 loads, collected files in the app's folder);
    - `drift_child`: shells spawned per build and host; `drift_dest`: destinations per build and host.
    """
    vk = version_key_sql('"process.pe.file_version"')
    exe = machine_path('"process.executable"')
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE drift_proc_raw AS
        SELECT "host.name" AS host, {exe} AS exe_key, "process.name" AS exe_name,
               nullif(nullif(trim("process.pe.product"), ''), '-') AS product,
               nullif(nullif(trim("process.pe.company"), ''), '-') AS company,
               trim("process.pe.file_version") AS version, {vk} AS vkey, "@timestamp" AS ts,
               evidence_id, record_id, line
        FROM ecs_process
        WHERE "process.executable" IS NOT NULL AND "host.name" IS NOT NULL AND "@timestamp" IS NOT NULL
          AND "process.name" IS NOT NULL AND {vk} IS NOT NULL AND NOT {_under_windows(exe)}""").fetchall()
    # An application is (program name, product); a run whose product is unknown (Prefetch without the
    # file) takes the product its program name most often has.
    con.execute("""
        CREATE OR REPLACE TEMP TABLE drift_proc AS
        WITH prod AS (SELECT exe_name, mode(product) AS p FROM drift_proc_raw WHERE product IS NOT NULL GROUP BY 1)
        SELECT r.*, coalesce(r.product, prod.p, r.exe_name) AS product_r
        FROM drift_proc_raw r LEFT JOIN prod USING (exe_name)""").fetchall()
    con.execute("""
        CREATE OR REPLACE TEMP TABLE drift_app AS
        SELECT row_number() OVER (ORDER BY exe_name, lower(product_r)) AS app_id, exe_name,
               lower(product_r) AS product_key, mode(product_r) AS product, mode(company) AS company,
               CAST(NULL AS VARCHAR) AS signer
        FROM drift_proc GROUP BY exe_name, lower(product_r)""").fetchall()
    con.execute("""
        CREATE OR REPLACE TEMP TABLE drift_tl AS
        SELECT DISTINCT p.host, p.exe_key, p.ts - INTERVAL (?) SECOND AS ts_from, a.app_id, p.vkey
        FROM drift_proc p JOIN drift_app a ON a.exe_name = p.exe_name AND a.product_key = lower(p.product_r)
        """, [START_TOLERANCE_S]).fetchall()
    _add_installs(con)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE drift_first AS
        SELECT a.app_id, p.vkey, p.host, min(p.ts) AS first_run,
               arg_min(p.evidence_id, p.ts) AS evidence_id, arg_min(p.record_id, p.ts) AS record_id,
               arg_min(p.line, p.ts) AS line, arg_min(p.exe_key, p.ts) AS exe_key
        FROM drift_proc p JOIN drift_app a ON a.exe_name = p.exe_name AND a.product_key = lower(p.product_r)
        GROUP BY ALL""").fetchall()
    _rank_versions(con)
    _modules(con)
    _set_signers(con)
    _children(con)
    _destinations(con)


def _add_installs(con: duckdb.DuckDBPyConnection) -> None:
    """MSI installs (event logs only: their time is the install's) start a build on a host too, at a
    path where the application already ran there. Triage inventories are left out: their times are
    registry write times, which could put an old version after a newer one."""
    vk = version_key_sql('"package.version"')
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE drift_install AS
        SELECT a.app_id, i.vkey, i.host, d.exe_key, min(i.ts) AS installed
        FROM (SELECT "host.name" AS host, lower(trim("package.name")) AS name, {vk} AS vkey, "@timestamp" AS ts
              FROM ecs_package
              WHERE "event.action" = 'installed' AND coalesce("event.outcome", 'success') = 'success'
                AND "event.provider" = 'Application' AND "@timestamp" IS NOT NULL) i
        JOIN drift_app a ON a.product_key = i.name
        JOIN (SELECT DISTINCT host, app_id, exe_key FROM drift_tl) d ON d.host = i.host AND d.app_id = a.app_id
        WHERE i.vkey IN (SELECT vkey FROM drift_tl t WHERE t.app_id = a.app_id)
        GROUP BY ALL""").fetchall()
    con.execute("INSERT INTO drift_tl SELECT host, exe_key, installed, app_id, vkey FROM drift_install").fetchall()


def _rank_versions(con: duckdb.DuckDBPyConnection) -> None:
    """Order each application's versions: numerically when they are numbers, then by first sight."""
    rows = con.execute("""
        SELECT a.app_id, p.vkey, mode(p.version) AS version, min(p.ts) AS first_seen
        FROM drift_proc p JOIN drift_app a ON a.exe_name = p.exe_name AND a.product_key = lower(p.product_r)
        GROUP BY ALL""").fetchall()
    by_app: dict[int, list[tuple[str, str, datetime]]] = {}
    for app_id, vkey, version, first_seen in rows:
        by_app.setdefault(app_id, []).append((vkey, version, first_seen))
    ranked = []
    for app_id, versions in by_app.items():
        versions.sort(key=lambda v: _version_sort_key(v[0], v[2]))
        ranked.extend((app_id, vkey, version, rank) for rank, (vkey, version, _) in enumerate(versions))
    con.execute("CREATE OR REPLACE TEMP TABLE drift_rank (app_id BIGINT, vkey VARCHAR, version VARCHAR, rank INTEGER)")
    if ranked:
        con.executemany("INSERT INTO drift_rank VALUES (?, ?, ?, ?)", ranked)


_SIG_STATE = """CASE
      WHEN {signed} = 'true' AND {status} IN ({valid}) THEN 'signed'
      WHEN s.status = 'valid' THEN 'signed'
      WHEN s.status IN ('invalid', 'malformed') THEN 'invalid'
      WHEN {windows} THEN 'unknown'
      WHEN s.status = 'catalog-signed?' THEN 'unknown'
      WHEN {signed} = 'false' THEN 'unsigned'
      WHEN {signed} = 'true' THEN 'invalid'
      WHEN s.status = 'unsigned' THEN 'unsigned'
      WHEN s.status IN ('untrusted', 'self-signed') THEN 'invalid'
      ELSE 'unknown' END"""


def _modules(con: duckdb.DuckDBPyConnection) -> None:
    """`drift_mod`: one row per (build, host, module file and signature state), first sighting kept.

    The signature state is `signed` (with its subject), `unsigned`, `invalid` or `unknown`; a collected
    copy of the same hash fills what Sysmon did not record, and tells padding inside the signature."""
    valid = ", ".join(lit(s) for s in VALID_STATUSES)
    con.execute("""
        CREATE OR REPLACE TEMP TABLE drift_trisig AS
        SELECT h AS hash, max(coalesce(padding, 0)) AS padding,
               arg_max(status, CASE status WHEN 'invalid' THEN 4 WHEN 'malformed' THEN 3 WHEN 'valid' THEN 2
                                            WHEN 'unsigned' THEN 1 ELSE 0 END) AS status,
               arg_max(subject, CASE WHEN status = 'valid' THEN 1 ELSE 0 END) AS subject
        FROM (SELECT unnest([lower("file.hash.sha256"), lower("file.hash.sha1"), lower("file.hash.md5")]) AS h,
                     "pe.cert_padding_bytes" AS padding, "code_signature.status" AS status,
                     "code_signature.subject_name" AS subject
              FROM tri_file WHERE "file.type" = 'pe')
        WHERE h IS NOT NULL GROUP BY h""").fetchall()
    exe = machine_path('"process.executable"')
    dll = machine_path('"dll.path"')
    state = _SIG_STATE.format(signed="l.signed", status="l.status", valid=valid, windows="l.under_windows")
    loads = f"""
        SELECT t.app_id, t.vkey, l.host, l.name, l.path, l.in_folder, l.under_windows, l.hash, l.hash_field,
               {state} AS state,
               CASE WHEN l.signed = 'true' AND l.status IN ({valid}) THEN l.subject
                    WHEN s.status = 'valid' THEN s.subject END AS subject,
               coalesce(s.padding, 0) AS padding, l.ts, 'ecs_image_load' AS view,
               l.evidence_id, l.record_id, l.line
        FROM (SELECT "host.name" AS host, {exe} AS exe_key, "@timestamp" AS ts, "dll.path" AS path,
                     "dll.name" AS name, starts_with({dll}, {_dirname(exe)} || '\\') AS in_folder,
                     {_under_windows(dll)} AS under_windows,
                     coalesce("dll.hash.sha256", "dll.hash.sha1", "dll.hash.md5") AS hash,
                     CASE WHEN "dll.hash.sha256" IS NOT NULL THEN 'dll.hash.sha256'
                          WHEN "dll.hash.sha1" IS NOT NULL THEN 'dll.hash.sha1' ELSE 'dll.hash.md5' END AS hash_field,
                     lower("dll.code_signature.signed") AS signed, lower("dll.code_signature.status") AS status,
                     nullif(nullif(trim("dll.code_signature.subject_name"), ''), '-') AS subject,
                     evidence_id, record_id, line
              FROM ecs_image_load
              WHERE "process.executable" IS NOT NULL AND "dll.name" IS NOT NULL AND "@timestamp" IS NOT NULL
                AND "host.name" IS NOT NULL) l
        ASOF JOIN drift_tl t ON t.host = l.host AND t.exe_key = l.exe_key AND l.ts >= t.ts_from
        LEFT JOIN drift_trisig s ON s.hash = l.hash
        WHERE l.hash IS NOT NULL"""
    # A triage collection: the files beside the executable belong to the build on disk (the version of
    # the executable collected at that path).
    fpath = machine_path('"file.path"')
    tri_state = _SIG_STATE.format(signed="NULL", status="NULL", valid=valid, windows="false")
    files = f"""
        SELECT d.app_id, d.vkey, f.host, lower(f."file.name") AS name, f."file.path" AS path, true AS in_folder,
               false AS under_windows, lower(f."file.hash.sha256") AS hash, 'file.hash.sha256' AS hash_field,
               {tri_state} AS state, CASE WHEN s.status = 'valid' THEN s.subject END AS subject,
               coalesce(f."pe.cert_padding_bytes", 0) AS padding, coalesce(f.ts, f."file.modified") AS ts,
               'tri_file' AS view, f.evidence_id, f.seq AS record_id, CAST(NULL AS BIGINT) AS line
        FROM (SELECT *, {_dirname(fpath)} AS dir FROM tri_file
              WHERE "file.type" = 'pe' AND "file.hash.sha256" IS NOT NULL) f
        JOIN (SELECT DISTINCT t.host, t.app_id, {_dirname('t.exe_key')} AS dir,
                     {version_key_sql('e."pe.file_version"')} AS vkey
              FROM (SELECT DISTINCT host, app_id, exe_key FROM drift_tl) t
              JOIN tri_file e ON e.host = t.host AND {machine_path('e."file.path"')} = t.exe_key) d
          ON d.host = f.host AND d.dir = f.dir
        LEFT JOIN drift_trisig s ON s.hash = lower(f."file.hash.sha256")
        WHERE d.vkey IS NOT NULL"""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE drift_mod AS
        SELECT m.app_id, m.vkey, r.rank, m.host, lower(m.name) AS name, lower(m.hash) AS hash,
               m.state, coalesce(m.subject, '') AS subject, m.view,
               any_value(m.path) AS path, bool_or(m.in_folder) AS in_folder,
               bool_or(m.under_windows) AS under_windows, max(m.padding) AS padding,
               arg_min(m.hash_field, m.ts) AS hash_field, min(m.ts) AS ts,
               arg_min(m.evidence_id, m.ts) AS evidence_id, arg_min(m.record_id, m.ts) AS record_id,
               arg_min(m.line, m.ts) AS line
        FROM ({loads} UNION ALL {files}) m
        JOIN drift_rank r ON r.app_id = m.app_id AND r.vkey = m.vkey
        GROUP BY m.app_id, m.vkey, r.rank, m.host, lower(m.name), lower(m.hash), m.state,
                 coalesce(m.subject, ''), m.view""").fetchall()


def _set_signers(con: duckdb.DuckDBPyConnection) -> None:
    """The application's signer: the Authenticode subject its own executable is signed with (its
    self-load in Sysmon 7, or the collected file), most often seen; else its PE company (Sysmon 1, else
    the collected executable's). Sysmon 1 events carry no signature, so the company is the fallback."""
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE drift_app AS
        WITH sub AS (
          SELECT m.app_id, mode(m.subject) AS subject FROM drift_mod m JOIN drift_app a USING (app_id)
          WHERE m.name = a.exe_name AND m.state = 'signed' GROUP BY m.app_id),
        fc AS (
          SELECT t.app_id, mode(f."pe.company") AS file_company
          FROM (SELECT DISTINCT host, exe_key, app_id FROM drift_tl) t
          JOIN tri_file f ON f.host = t.host AND {machine_path('f."file.path"')} = t.exe_key
          WHERE f."pe.company" IS NOT NULL GROUP BY t.app_id)
        SELECT a.* EXCLUDE (signer), coalesce(sub.subject, a.company, fc.file_company, 'unknown signer') AS signer
        FROM drift_app a LEFT JOIN sub USING (app_id) LEFT JOIN fc USING (app_id)""").fetchall()


def _children(con: duckdb.DuckDBPyConnection) -> None:
    """`drift_child`: shells and script hosts each build spawned, first time per host."""
    shells = ", ".join(lit(s) for s in SHELLS)
    parent = machine_path('"process.parent.executable"')
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE drift_child AS
        SELECT t.app_id, t.vkey, r.rank, c.host, c.child, min(c.ts) AS ts,
               arg_min(c.command_line, c.ts) AS command_line, arg_min(c.evidence_id, c.ts) AS evidence_id,
               arg_min(c.record_id, c.ts) AS record_id, arg_min(c.line, c.ts) AS line
        FROM (SELECT "host.name" AS host, {parent} AS exe_key, "process.name" AS child, "@timestamp" AS ts,
                     "process.command_line" AS command_line, evidence_id, record_id, line
              FROM ecs_process
              WHERE "process.name" IN ({shells}) AND "process.parent.executable" IS NOT NULL
                AND "@timestamp" IS NOT NULL) c
        ASOF JOIN drift_tl t ON t.host = c.host AND t.exe_key = c.exe_key AND c.ts >= t.ts_from
        JOIN drift_rank r ON r.app_id = t.app_id AND r.vkey = t.vkey
        GROUP BY ALL""").fetchall()


def _destinations(con: duckdb.DuckDBPyConnection) -> None:
    """`drift_dest`: remote destinations each build contacted, first time per host. A name is preferred
    to an address: a connection to an address that the same program's DNS answers on that host gave
    is the name's, and is not a second destination. Multicast, `.local`, `.arpa` and internal
    addresses are the local network, not a far end."""
    exe = machine_path('"process.executable"')
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE drift_contact AS
        SELECT t.app_id, t.vkey, c.*
        FROM (SELECT "host.name" AS host, {exe} AS exe_key, lower(rtrim("dns.question.name", '.')) AS destination,
                     'ecs_dns' AS view, 'dns.question.name' AS field, "@timestamp" AS ts, "dns.answers" AS answers,
                     evidence_id, record_id, line
              FROM ecs_dns WHERE "dns.question.name" IS NOT NULL
              UNION ALL
              SELECT "host.name", {exe}, coalesce("destination.domain", lower("destination.ip")),
                     'ecs_network', CASE WHEN "destination.domain" IS NOT NULL THEN 'destination.domain'
                                         ELSE 'destination.ip' END,
                     "@timestamp", NULL, evidence_id, record_id, line
              FROM ecs_network
              WHERE coalesce("destination.domain", "destination.ip") IS NOT NULL
                AND coalesce("network.direction", 'outbound') = 'outbound') c
        ASOF JOIN drift_tl t ON t.host = c.host AND t.exe_key = c.exe_key AND c.ts >= t.ts_from
        WHERE c.host IS NOT NULL AND c.ts IS NOT NULL AND c.destination <> ''
          AND NOT regexp_matches(c.destination, '{LOCAL_ONLY}') AND NOT {internal_sql('c.destination')}
          AND c.destination NOT IN ('localhost', '127.0.0.1', '::1')""").fetchall()
    con.execute("""
        CREATE OR REPLACE TEMP TABLE drift_dest AS
        WITH answered AS (
          SELECT DISTINCT app_id, host, unnest(regexp_extract_all(answers, '(\\d{1,3}(?:\\.\\d{1,3}){3})')) AS ip
          FROM drift_contact WHERE answers IS NOT NULL)
        SELECT c.app_id, c.vkey, r.rank, c.host, c.destination, min(c.ts) AS ts,
               arg_min(c.view, c.ts) AS view, arg_min(c.field, c.ts) AS field,
               arg_min(c.evidence_id, c.ts) AS evidence_id, arg_min(c.record_id, c.ts) AS record_id,
               arg_min(c.line, c.ts) AS line
        FROM drift_contact c JOIN drift_rank r ON r.app_id = c.app_id AND r.vkey = c.vkey
        ANTI JOIN answered a ON a.app_id = c.app_id AND a.host = c.host AND a.ip = c.destination
        GROUP BY c.app_id, c.vkey, r.rank, c.host, c.destination""").fetchall()


# --------------------------------------------------------------------------- builds

def _builds(con: duckdb.DuckDBPyConnection) -> tuple[list[AppBuild], dict[tuple[int, str], AppVersion],
                                                     dict[int, AppBuild]]:
    apps = {app_id: AppBuild(signer, product, exe_name) for app_id, exe_name, product, signer in con.execute(
        "SELECT app_id, exe_name, product, signer FROM drift_app ORDER BY app_id").fetchall()}
    versions: dict[tuple[int, str], AppVersion] = {}
    for app_id, vkey, version, rank in con.execute(
            "SELECT app_id, vkey, version, rank FROM drift_rank ORDER BY app_id, rank").fetchall():
        app = apps[app_id]
        v = AppVersion(version=version, key=vkey, rank=rank, first_run=None,
                       earlier=[x.version for x in app.versions],
                       campaign=campaign_name(app.signer, app.product, version))
        if rank == 0:
            v.note = "earliest version seen of this application: no baseline to compare it with"
        app.versions.append(v)
        versions[(app_id, vkey)] = v
    for app_id, vkey, host, first_run in con.execute(
            "SELECT app_id, vkey, host, first_run FROM drift_first ORDER BY app_id, vkey, first_run, host").fetchall():
        v = versions[(app_id, vkey)]
        v.hosts[host] = first_run
        v.first_run = first_run if v.first_run is None else min(v.first_run, first_run)
    return list(apps.values()), versions, apps


def app_builds(con: duckdb.DuckDBPyConnection) -> list[AppBuild]:
    """Every application seen running outside ``\\Windows\\``, with its versions (earliest first), the
    hosts that ran each and when each first did. A version with rank 0 has no baseline (`note`)."""
    prepare(con)
    return _builds(con)[0]


# --------------------------------------------------------------------------- rules

def _short(h: str | None) -> str:
    return (h or "?")[:12] + "…" if h and len(h) > 12 else (h or "?")


def _state_text(state: str, subject: str) -> str:
    if state == "signed":
        return f"signed by {subject}"
    return {"unsigned": "unsigned", "invalid": "invalid signature"}.get(state, "signature not recorded")


def _join(items: list[str], limit: int = 3) -> str:
    items = sorted(items)
    return ", ".join(items[:limit]) + (f" (+{len(items) - limit})" if len(items) > limit else "")


def _module_changes(con: duckdb.DuckDBPyConnection, apps: dict[int, AppBuild],
                    versions: dict[tuple[int, str], AppVersion]) -> list[dict[str, Any]]:
    """Compare each (build, module file, signature) whose hash is new with the same module name in the
    earlier versions; return the changes rules (a) and (b) retain."""
    rows = con.execute("""
        WITH ver AS (
          SELECT app_id, vkey, rank, name, hash, state, subject, max(padding) AS padding,
                 bool_or(in_folder) AS in_folder, bool_or(under_windows) AS under_windows,
                 count(DISTINCT host) AS hosts
          FROM drift_mod GROUP BY ALL),
        loaded_before AS (  -- does the application have module evidence before this version at all?
          SELECT DISTINCT r.app_id, r.rank FROM drift_rank r JOIN ver e ON e.app_id = r.app_id AND e.rank < r.rank)
        SELECT r.app_id, r.vkey, r.name, r.hash, r.state, r.subject, r.padding, r.in_folder, r.under_windows,
               r.hosts, (b.app_id IS NOT NULL) AS baseline,
               count(e.hash) AS n_before,
               list(DISTINCT e.hash) FILTER (WHERE e.hash IS NOT NULL) AS hashes_before,
               list(DISTINCT e.subject) FILTER (WHERE e.state = 'signed') AS signers_before,
               list(DISTINCT e.state) FILTER (WHERE e.state IS NOT NULL) AS states_before
        FROM ver r
        LEFT JOIN loaded_before b ON b.app_id = r.app_id AND b.rank = r.rank
        LEFT JOIN ver e ON e.app_id = r.app_id AND e.name = r.name AND e.rank < r.rank
        WHERE r.rank > 0
        GROUP BY ALL
        HAVING NOT coalesce(bool_or(e.hash = r.hash), false)""").fetchall()
    # signers the application already used in its own folder before each version (rule b)
    known: dict[tuple[int, int], set[str]] = {}
    signed_rows = con.execute("""SELECT DISTINCT app_id, rank, subject FROM drift_mod
                                 WHERE state = 'signed' AND in_folder""").fetchall()
    by_app: dict[int, list[tuple[int, str]]] = {}
    for app_id, rank, subject in signed_rows:
        by_app.setdefault(app_id, []).append((rank, subject))
    changes = []
    for (app_id, vkey, name, hsh, state, subject, padding, in_folder, under_windows, hosts, baseline,
         n_before, hashes_before, signers_before, states_before) in rows:
        app, v = apps[app_id], versions[(app_id, vkey)]
        if (app_id, v.rank) not in known:
            known[(app_id, v.rank)] = {app.signer} | {s for r, s in by_app.get(app_id, []) if r < v.rank}
        hashes_before = hashes_before or []
        signers_before = signers_before or []
        states_before = states_before or []
        before = (f"hash {_join([_short(h) for h in hashes_before], 2)}, "
                  f"{_join(sorted({'signed by ' + s for s in signers_before} | {s for s in states_before if s != 'signed'}))}"
                  if n_before else "not loaded")
        base = {"app_id": app_id, "vkey": vkey, "name": name, "hash": hsh, "state": state, "subject": subject,
                "hosts": hosts, "hashes_before": hashes_before, "signers_before": signers_before,
                "before": before, "after": f"hash {_short(hsh)}, {_state_text(state, subject)}",
                "value": (f"hash {' | '.join(sorted(hashes_before)) or '(not loaded before)'} → {hsh}; "
                          f"{_join(['signed by ' + x for x in signers_before] + [x for x in states_before if x != 'signed']) or 'no signature before'}"
                          f" → {_state_text(state, subject)}" + (f"; {padding} bytes padded in the signature" if padding else ""))}
        if padding and padding > 0:
            changes.append({**base, "kind": "padding", "rule_id": RULE_PADDING, "confidence": "medium",
                            "proof": (f"{name} carries {padding} bytes hidden inside its signature "
                                      f"(CVE-2013-3900; {_state_text(state, subject)}); before: {before}")})
            continue
        if state == "unknown" or (under_windows and state != "invalid"):
            continue
        if n_before and signers_before and (state in ("unsigned", "invalid") or subject not in signers_before):
            changes.append({**base, "kind": "signature", "rule_id": RULE_SIGNATURE, "confidence": "medium",
                            "proof": (f"{name}: hash {_join([_short(h) for h in hashes_before], 2)} → {_short(hsh)}, "
                                      f"{_join(['signed by ' + s for s in signers_before])} → "
                                      f"{_state_text(state, subject)}")})
            continue
        if not (in_folder and baseline):
            continue
        foreign = state in ("unsigned", "invalid") or subject not in known[(app_id, v.rank)]
        was_so = (state in states_before and state != "signed") or (state == "signed" and subject in signers_before)
        if foreign and not was_so:
            who = _state_text(state, subject)
            changes.append({**base, "kind": "foreign", "rule_id": RULE_FOREIGN, "confidence": "low",
                            "proof": (f"{name} in the application's folder is {who}, not signed by "
                                      f"{app.signer}; before: {before}")})
    return changes


def drift_analysis(con: duckdb.DuckDBPyConnection) -> DriftAnalysis:
    """Builds, every change each new version brings, and the findings they make (see module doc)."""
    prepare(con)
    builds, versions, apps = _builds(con)
    changes = _module_changes(con, apps, versions)
    findings: list[dict[str, Any]] = []
    medium: set[tuple[int, str]] = {(c["app_id"], c["vkey"]) for c in changes if c["confidence"] == "medium"}
    drifted: set[tuple[int, str]] = {(c["app_id"], c["vkey"]) for c in changes}

    # per-host evidence of each module change
    if changes:
        con.execute("CREATE OR REPLACE TEMP TABLE drift_hits (i INTEGER, app_id BIGINT, vkey VARCHAR, name VARCHAR, "
                    "hash VARCHAR, state VARCHAR, subject VARCHAR)")
        con.executemany("INSERT INTO drift_hits VALUES (?, ?, ?, ?, ?, ?, ?)",
                        [(i, c["app_id"], c["vkey"], c["name"], c["hash"], c["state"], c["subject"])
                         for i, c in enumerate(changes)])
        for i, host, ts, view, hash_field, path, evidence_id, record_id, line in con.execute("""
                SELECT h.i, m.host, m.ts, m.view, m.hash_field, m.path, m.evidence_id, m.record_id, m.line
                FROM drift_mod m JOIN drift_hits h USING (app_id, vkey, name, hash, state, subject)
                ORDER BY h.i, m.host, m.ts""").fetchall():
            c = changes[i]
            app, v = apps[c["app_id"]], versions[(c["app_id"], c["vkey"])]
            what = "loaded by" if view == "ecs_image_load" else "beside"
            findings.append(finding_row(v.campaign, host, ts, "armed-dormant", c["confidence"], c["rule_id"],
                                 f"Build drift: {c['proof']} ({what} {app.executable} {v.version}; earlier "
                                 f"versions {_join(v.earlier)})",
                                 view, "file.hash.sha256" if view == "tri_file" else hash_field,
                                 f"{path}: {c['value']}", evidence_id, record_id, line))
    # (c) shells no earlier version spawned
    shell_rows = con.execute("""
        SELECT c.app_id, c.vkey, c.host, c.child, c.ts, c.command_line, c.evidence_id, c.record_id, c.line
        FROM drift_child c
        WHERE c.rank > 0 AND NOT EXISTS (SELECT 1 FROM drift_child e WHERE e.app_id = c.app_id
                                         AND e.child = c.child AND e.rank < c.rank)
        ORDER BY c.app_id, c.vkey, c.host, c.ts""").fetchall()
    for app_id, vkey, host, child, ts, command_line, evidence_id, record_id, line in shell_rows:
        app, v = apps[app_id], versions[(app_id, vkey)]
        drifted.add((app_id, vkey))
        changes.append({"app_id": app_id, "vkey": vkey, "kind": "shell", "name": child, "host": host})
        findings.append(finding_row(v.campaign, host, ts, "payload", "medium" if (app_id, vkey) in medium else "low",
                             RULE_SHELL,
                             f"Build drift: {app.executable} {v.version} started {child}, which no earlier "
                             f"version ({_join(v.earlier)}) started anywhere",
                             "ecs_process", "process.command_line", f"{app.executable} → {child}: {command_line or ''}",
                             evidence_id, record_id, line))
    # (d)(e) destinations no earlier version contacted
    dest_rows = con.execute("""
        SELECT d.app_id, d.vkey, d.host, d.destination, d.ts, d.view, d.field, d.evidence_id, d.record_id,
               d.line, epoch(d.ts - f.first_run) / 86400.0 AS delay_days
        FROM drift_dest d LEFT JOIN drift_first f USING (app_id, vkey, host)
        WHERE d.rank > 0 AND NOT EXISTS (SELECT 1 FROM drift_dest e WHERE e.app_id = d.app_id
                                         AND e.destination = d.destination AND e.rank < d.rank)
        ORDER BY d.app_id, d.vkey, d.host, d.ts""").fetchall()
    for app_id, vkey, host, destination, ts, view, fld, evidence_id, record_id, line, delay in dest_rows:
        app, v = apps[app_id], versions[(app_id, vkey)]
        finding = (app_id, vkey) in drifted
        changes.append({"app_id": app_id, "vkey": vkey, "kind": "destination", "name": destination, "host": host,
                        "delay_days": None if delay is None else round(delay, 2), "finding": finding})
        if not finding:
            continue
        after = "" if delay is None else f", {days_text(delay)} after this build first ran on the host"
        findings.append(finding_row(v.campaign, host, ts, "c2-contact", "medium" if (app_id, vkey) in medium else "low",
                             RULE_DESTINATION,
                             f"Build drift: {app.executable} {v.version} contacted {destination}, which no earlier "
                             f"version ({_join(v.earlier)}) contacted anywhere{after}",
                             view, fld, destination, evidence_id, record_id, line))
    for c in changes:
        c.setdefault("finding", True)
        app, v = apps[c["app_id"]], versions[(c["app_id"], c["vkey"])]
        c.update({"signer": app.signer, "product": app.product, "executable": app.executable,
                  "version": v.version, "campaign": v.campaign})
    return DriftAnalysis(builds, changes, findings)


def drift_findings(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    """Findings (the `findings` table's columns) for what new builds change; written by the caller."""
    return drift_analysis(con).findings


def days_text(delay: float) -> str:
    d = round(delay, 1)
    return f"{int(d)} day{'s' if int(d) != 1 else ''}" if d == int(d) else f"{d} days"


def finding_row(campaign: str, host: str, ts: datetime, stage: str, confidence: str, rule_id: str, title: str,
         view: str, fld: str, value: str, evidence_id: str | None, record_id: int | None,
         line: int | None) -> dict[str, Any]:
    return {"campaign": campaign, "host": host, "ts": ts, "stage": stage, "confidence": confidence,
            "rule_id": rule_id, "title": title, "view": view, "field": fld, "value": value,
            "evidence_id": evidence_id, "record_id": record_id, "line": line}
