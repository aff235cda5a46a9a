"""Dormancy: an update that waits days before its first contact with a destination nobody in the
organisation had ever talked to.

3CX's trojanized build slept about 7 days after it first ran, then fetched its C2 list. A legitimate
update talks to its new endpoints at once (or not at all); a destination that appears days later,
that no one reached before, on every host that runs the build, is the shape of an implant's timer.

For each host and application build (detect/drift.py: `drift_first`, `drift_install`, `drift_dest`):
- the reference time is the build's first run on the host (ecs_process), or its MSI install when that
  was earlier or the run was not logged;
- the contacts are the program's own Sysmon 3 / Security 5156 connections and Sysmon 22 questions,
  each put on the build that was running at that path then (an ASOF join), first contact per
  destination;
- a destination is *new* for the build when no source of the case (endpoint or network sensor) saw it
  before the build first ran anywhere in the organisation, and the first program the endpoints name
  contacting it is this one. "Before the build arrived" rather than "before this contact": every host
  runs the same implant, so the first host's beacon must not make the domain look familiar for the
  others (prevalence is evidence, never a discount — as in detect/beacon.py);
- the delay is first contact − reference time.

A delay within [min_days, max_days] is a finding (c2-contact, low confidence), unless
- the host's process logs begin (within an hour) with the build's first run: the build may have
  been there long before the logs, and the "delay" would be counted from the start of logging — the
  first version of an application seen is the usual case;
- some host running the same build contacted that destination sooner than `min_days` after its own
  first run: a destination the build reaches promptly somewhere is one of its ordinary endpoints that a
  host happened to reach late (the app was idle, the laptop off);
- the program is a web browser, or the build contacts more than `max_new_destinations` new
  destinations: a general-purpose client (browser, mail, chat) whose new destinations are its users'
  doing.
`dormancy_table` keeps every new-destination row, findings or not, for the report.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import duckdb

from turncoat.detect.contacts import contacts_sql
from turncoat.detect.drift import campaign_name, days_text, finding_row, prepare

RULE_DORMANCY = "generic:dormancy:new-destination"
MAX_NEW_DESTINATIONS = 20
# Web browsers: their new destinations are their users' doing, whatever the delay since their update.
BROWSERS: tuple[str, ...] = (
    "chrome.exe", "msedge.exe", "firefox.exe", "iexplore.exe", "brave.exe", "opera.exe", "vivaldi.exe",
    "waterfox.exe", "librewolf.exe", "chromium.exe", "yandex.exe", "browser.exe",
)
# The build's first run must come this long after the host's first logged process for it to be the
# update's arrival rather than the start of the logs.
COVERAGE_MARGIN_S = 3600


def _table_rows(con: duckdb.DuckDBPyConnection) -> list[dict[str, Any]]:
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE dormancy_seen AS
        SELECT lower(rtrim(destination, '.')) AS destination, min(ts) AS first_seen,
               arg_min(lower(process), ts) FILTER (WHERE process IS NOT NULL) AS first_program
        FROM ({contacts_sql(con)})
        WHERE destination IS NOT NULL AND ts IS NOT NULL
        GROUP BY 1""").fetchall()
    rows = con.execute("""
        WITH ref AS (
          SELECT coalesce(f.app_id, i.app_id) AS app_id, coalesce(f.vkey, i.vkey) AS vkey,
                 coalesce(f.host, i.host) AS host, f.first_run, i.installed,
                 least(f.first_run, i.installed) AS reference,
                 CASE WHEN f.first_run IS NULL OR i.installed < f.first_run THEN 'install' ELSE 'run' END AS ref_kind
          FROM drift_first f
          FULL JOIN (SELECT app_id, vkey, host, min(installed) AS installed FROM drift_install GROUP BY ALL) i
            ON i.app_id = f.app_id AND i.vkey = f.vkey AND i.host = f.host),
        arrived AS (SELECT app_id, vkey, min(reference) AS arrived FROM ref GROUP BY ALL),
        new AS (
          SELECT d.*, r.first_run, r.installed, r.reference, r.ref_kind, s.first_seen,
                 epoch(d.ts - r.reference) / 86400.0 AS delay_days
          FROM drift_dest d
          JOIN ref r USING (app_id, vkey, host)
          JOIN arrived b USING (app_id, vkey)
          JOIN drift_app a USING (app_id)
          JOIN dormancy_seen s USING (destination)
          WHERE s.first_seen >= b.arrived AND (s.first_program IS NULL OR s.first_program = a.exe_name)),
        per_build AS (SELECT app_id, vkey, count(DISTINCT destination) AS new_destinations FROM new GROUP BY ALL),
        logs AS (SELECT "host.name" AS host, min("@timestamp") AS logs_from FROM ecs_process GROUP BY 1),
        per_dest AS (SELECT app_id, vkey, destination, count(DISTINCT host) AS hosts_contacting,
                            min(delay_days) AS min_delay_days FROM new GROUP BY ALL)
        SELECT n.host, a.signer, a.product, a.exe_name, k.version, n.first_run, n.installed, n.ref_kind,
               n.ts AS first_new_contact, n.delay_days, n.destination, n.first_seen, p.hosts_contacting,
               p.min_delay_days, b.new_destinations, g.logs_from,
               n.reference - g.logs_from >= INTERVAL (?) SECOND AS observed_arrival,
               n.view, n.field, n.evidence_id, n.record_id, n.line
        FROM new n JOIN per_dest p USING (app_id, vkey, destination) JOIN per_build b USING (app_id, vkey)
        LEFT JOIN logs g USING (host)
        JOIN drift_app a USING (app_id) JOIN drift_rank k USING (app_id, vkey)
        ORDER BY n.host, a.exe_name, k.rank, n.ts, n.destination""", [COVERAGE_MARGIN_S]).fetchall()
    keys = ("host", "signer", "product", "executable", "version", "first_run", "installed", "reference",
            "first_new_contact", "delay_days", "destination", "org_first_seen", "hosts_contacting",
            "min_delay_days", "new_destinations_of_build", "logs_from", "observed_arrival", "view", "field", "evidence_id", "record_id", "line")
    out = []
    for row in rows:
        d = dict(zip(keys, row))
        d["delay_days"] = round(d["delay_days"], 2)
        d["min_delay_days"] = round(d["min_delay_days"], 2)
        d["campaign"] = campaign_name(d["signer"], d["product"], d["version"])
        out.append(d)
    return out


def dormancy_table(con: duckdb.DuckDBPyConnection, min_days: float = 5, max_days: float = 30, *,
                   max_new_destinations: int = MAX_NEW_DESTINATIONS,
                   prepared: bool = False) -> list[dict[str, Any]]:
    """Every (host, application build, destination new to the organisation) with the build's first run
    (and MSI install) on the host, the first contact, the delay in days, and `finding`: whether the
    row is a dormancy finding under these bounds (with `why_not` when it is not). `prepared`: the
    drift tables of this connection are current (drift_analysis just ran)."""
    if not prepared:
        prepare(con)
    rows = _table_rows(con)
    for d in rows:
        why_not = None
        if not d["observed_arrival"]:
            why_not = ("the host's process logs begin with this build: it may have arrived before them, "
                       "so the delay since the update is unknown")
        elif d["delay_days"] < min_days:
            why_not = f"contacted {days_text(d['delay_days'])} after the update (under {min_days} days)"
        elif d["delay_days"] > max_days:
            why_not = f"contacted {days_text(d['delay_days'])} after the update (over {max_days} days)"
        elif d["min_delay_days"] < min_days:
            why_not = (f"another host running this build contacted it {days_text(d['min_delay_days'])} after "
                       "its first run: an ordinary endpoint of the build")
        elif d["executable"] in BROWSERS:
            why_not = "a web browser: its new destinations are its users' doing"
        elif d["new_destinations_of_build"] > max_new_destinations:
            why_not = (f"the build contacts {d['new_destinations_of_build']} new destinations: a "
                       "general-purpose client")
        d["finding"] = why_not is None
        d["why_not"] = why_not
    return rows


def dormancy_findings(con: duckdb.DuckDBPyConnection, min_days: float = 5, max_days: float = 30, *,
                      max_new_destinations: int = MAX_NEW_DESTINATIONS,
                      prepared: bool = False) -> list[dict[str, Any]]:
    """Findings (the `findings` table's columns): a build's first contact with a destination new to
    the organisation, `min_days`..`max_days` after it first ran on the host. Written by the caller."""
    out = []
    for d in dormancy_table(con, min_days, max_days, max_new_destinations=max_new_destinations,
                            prepared=prepared):
        if not d["finding"]:
            continue
        started = d["installed"] if d["reference"] == "install" else d["first_run"]
        title = (f"First contact with a new destination {days_text(d['delay_days'])} after the update: "
                 f"{d['executable']} {d['version']} → {d['destination']} ({'installed' if d['reference'] == 'install' else 'first ran'} "
                 f"on the host {_fmt(started)}; never seen in the organisation before this build arrived; "
                 f"{d['hosts_contacting']} host(s) running the build contacted it, the soonest "
                 f"{days_text(d['min_delay_days'])} after their update)")
        out.append(finding_row(d["campaign"], d["host"], d["first_new_contact"], "c2-contact", "low", RULE_DORMANCY,
                        title, d["view"], d["field"], d["destination"], d["evidence_id"], d["record_id"],
                        d["line"]))
    return out


def _fmt(ts: datetime | None) -> str:
    return "?" if ts is None else ts.strftime("%Y-%m-%d %H:%M UTC")
