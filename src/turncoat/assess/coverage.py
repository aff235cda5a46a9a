"""Per-host telemetry coverage: which sources, over which days, and where they have holes.

A host can only be cleared by telemetry that would have shown the kill chain — process creation or
module loads (Sysmon 1/7, Security 4688) — over the whole exposure window, with no gaps. Gaps are
EventRecordID discontinuities (records lost: the log wrapped, was filtered or cleared), log-cleared
events, and, for sources without record ids, long silences. A quiet weekend with contiguous record
ids is not a gap: nothing was lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import duckdb

from turncoat.intel.pack import iso
from turncoat.store.schema import PROCESS_CHANNELS

SLACK = timedelta(days=1)  # how far the first/last event may sit inside the window's edges
SILENCE_WITHOUT_IDS = timedelta(hours=72)
PROCESS_SILENCE = timedelta(days=3)  # longer with other events of the channel around: auditing was off


@dataclass
class SourceCoverage:
    channel: str
    kind: str  # "process" (can clear a host) or "other"
    first: datetime | None
    last: datetime | None
    records: int
    days: int
    process_records: int
    process_first: datetime | None = None  # the channel may hold other events before auditing began
    process_last: datetime | None = None

    def as_dict(self) -> dict[str, Any]:
        out = {"channel": self.channel, "kind": self.kind, "first": iso(self.first), "last": iso(self.last),
               "records": self.records, "days": self.days}
        if self.kind == "process":
            out["process_first"], out["process_last"] = iso(self.process_first), iso(self.process_last)
        return out


@dataclass
class Gap:
    kind: str  # record-id | time-hole | process-silence | log-cleared | late-start | early-end | outside-window
    channel: str
    start: datetime | None
    end: datetime | None
    detail: str
    detail_fr_override: str = ""  # for gaps whose French wording is given where they are made

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "channel": self.channel, "start": iso(self.start), "end": iso(self.end),
                "detail": self.detail, "detail_fr": self.detail_fr()}

    def detail_fr(self) -> str:
        """The same fact in French, for the owner of a small French firm reading the report."""
        channel, start, end = self.channel, iso(self.start), iso(self.end)
        if self.kind == "record-id":
            if self.detail.startswith("record ids restart"):
                return f"le journal {channel} a été vidé ou remplacé entre {start} et {end} : des événements peuvent manquer"
            return f"des enregistrements manquent dans {channel} entre {start} et {end} ({self.detail})"
        return {
            "process-silence": f"aucun événement de processus dans {channel} du {start} au {end} alors que le "
                               "journal continuait : l'audit des processus ou Sysmon était coupé",
            "time-hole": f"aucun événement dans {channel} du {start} au {end}, sans numéros d'enregistrement "
                         "pour prouver que rien n'a été perdu",
            "log-cleared": f"un journal a été effacé le {end} : ses événements antérieurs peuvent manquer",
            "outside-window": f"les événements de processus de {channel} ne couvrent que {start}..{end}, "
                              "hors de la période d'exposition",
            "late-start": f"les événements de processus de {channel} ne commencent que le {end}, après le début "
                          f"de la période d'exposition ({start})",
            "early-end": f"les événements de processus de {channel} s'arrêtent le {start}, avant la fin de la "
                         f"période d'exposition ({end})",
        }.get(self.kind, self.detail_fr_override or self.detail)


@dataclass
class HostCoverage:
    host: str
    sources: list[SourceCoverage] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)  # record-id, time-hole, log-cleared: any time


def _process_filter() -> str:
    parts = [f"(Channel = '{ch}' AND EventID IN ({', '.join(map(str, ids))}))" for ch, ids in PROCESS_CHANNELS.items()]
    return " OR ".join(parts)


def measure(con: duckdb.DuckDBPyConnection) -> dict[str, HostCoverage]:
    """Sources and gaps of every host in the store (set-based queries, one pass each)."""
    hosts: dict[str, HostCoverage] = {}
    rows = con.execute(
        f"""SELECT host, Channel, min(ts), max(ts), count(*), count(DISTINCT CAST(ts AS DATE)),
                   count(*) FILTER (WHERE {_process_filter()}),
                   min(ts) FILTER (WHERE {_process_filter()}), max(ts) FILTER (WHERE {_process_filter()})
            FROM win_events WHERE host IS NOT NULL GROUP BY ALL ORDER BY host, Channel"""
    ).fetchall()
    for host, channel, first, last, records, days, proc, proc_first, proc_last in rows:
        cov = hosts.setdefault(host, HostCoverage(host))
        kind = "process" if proc else "other"
        cov.sources.append(SourceCoverage(channel or "?", kind, first, last, records, days, proc, proc_first, proc_last))

    # Record ids in time order: a jump means records were lost (the log wrapped or was filtered); a
    # fall means the log was cleared or replaced between two exports. Either way, a hole.
    for host, channel, prev_id, rec_id, prev_ts, ts in con.execute(
        """SELECT host, Channel, prev_id, record_id, prev_ts, ts FROM (
             SELECT host, Channel, record_id, ts,
                    lag(record_id) OVER w AS prev_id, lag(ts) OVER w AS prev_ts
             FROM win_events WHERE record_id IS NOT NULL AND host IS NOT NULL
             WINDOW w AS (PARTITION BY host, Channel ORDER BY ts, record_id))
           WHERE record_id - prev_id > 1 OR record_id <= prev_id ORDER BY host, Channel, ts"""
    ).fetchall():
        if rec_id > prev_id:
            detail = f"records {prev_id + 1}..{rec_id - 1} missing ({rec_id - prev_id - 1})"
        else:
            detail = (f"record ids restart at {rec_id} after {prev_id}: the log was cleared or replaced, "
                      "events in between may be missing")
        hosts[host].gaps.append(Gap("record-id", channel, prev_ts, ts, detail))

    # Process auditing switched off while the channel went on (logons still logged, no 4688): the
    # record ids stay contiguous, so only the silence of the process events shows it — a silence of
    # days with the channel still logging in its middle (not merely the tail of the last session).
    for host, channel, prev_ts, ts in con.execute(
        f"""WITH p AS (
              SELECT host, Channel, ts, lag(ts) OVER (PARTITION BY host, Channel ORDER BY ts) AS prev_ts
              FROM win_events WHERE host IS NOT NULL AND ({_process_filter()}))
            SELECT p.host, p.Channel, p.prev_ts, p.ts FROM p
            WHERE p.ts - p.prev_ts > INTERVAL {int(PROCESS_SILENCE.total_seconds())} SECOND
              AND EXISTS (SELECT 1 FROM win_events w WHERE w.host = p.host AND w.Channel = p.Channel
                          AND w.ts > p.prev_ts + INTERVAL 1 DAY AND w.ts < p.ts - INTERVAL 1 DAY)
            ORDER BY 1, 2, 4"""
    ).fetchall():
        hosts[host].gaps.append(Gap("process-silence", channel, prev_ts, ts,
                                    f"no process events in {channel} from {iso(prev_ts)} to {iso(ts)} while "
                                    "the log went on: process auditing or Sysmon was off"))

    # Sources without record ids: long silences are holes we cannot explain away.
    for host, channel, prev_ts, ts in con.execute(
        f"""SELECT host, Channel, prev_ts, ts FROM (
              SELECT host, Channel, ts, lag(ts) OVER (PARTITION BY host, Channel ORDER BY ts) AS prev_ts
              FROM win_events WHERE record_id IS NULL AND host IS NOT NULL AND ts IS NOT NULL)
            WHERE ts - prev_ts > INTERVAL {int(SILENCE_WITHOUT_IDS.total_seconds())} SECOND
            ORDER BY host, Channel, ts"""
    ).fetchall():
        hosts[host].gaps.append(Gap("time-hole", channel, prev_ts, ts, "no events and no record ids to prove none were lost"))

    # Log cleared (the ecs_log_cleared view): Security 1102 clears its own channel; System 104 may
    # name any log, so it counts against every channel.
    for host, code, ts, cleared in con.execute(
        """SELECT "host.name", "event.code", "@timestamp",
                  CASE WHEN "event.code" = 1102 THEN "event.provider" END
           FROM ecs_log_cleared WHERE "host.name" IS NOT NULL ORDER BY 1, 3"""
    ).fetchall():
        hosts[host].gaps.append(Gap("log-cleared", cleared or "*", None, ts,
                                    f"event {code}: a log was cleared; earlier records of it may be gone"))
    return hosts


@dataclass
class WindowCheck:
    covers: bool
    required: tuple[datetime, datetime]
    gaps: list[Gap]
    missing: list[str]
    best: SourceCoverage | None
    missing_fr: list[str] = field(default_factory=list)


def check_window(cov: HostCoverage | None, start: datetime, end: datetime) -> WindowCheck:
    """Does some process-level source cover [start, end] without a gap inside it?"""
    sources = [s for s in (cov.sources if cov else []) if s.kind == "process" and s.process_first and s.process_last]
    if end <= start:
        end = start
    best: SourceCoverage | None = None
    best_gaps: list[Gap] = []
    for source in sources:
        gaps = []
        first, last = source.process_first, source.process_last
        if last < start or first > end:
            gaps.append(Gap("outside-window", source.channel, first, last,
                            f"process events in {source.channel} cover {iso(first)}..{iso(last)} only, "
                            f"outside the exposure window {iso(start)}..{iso(end)}"))
        elif first > start + SLACK:
            gaps.append(Gap("late-start", source.channel, start, first,
                            f"process events in {source.channel} start {iso(first)}, after the window opens "
                            f"({iso(start)})"))
        if start <= last < end - SLACK:
            gaps.append(Gap("early-end", source.channel, last, end,
                            f"process events in {source.channel} end {iso(last)}, before the window closes "
                            f"({iso(end)})"))
        for gap in (cov.gaps if cov else []):
            if gap.channel not in (source.channel, "*"):
                continue
            g_start = gap.start or gap.end
            if gap.end and gap.end >= start and g_start and g_start <= end:
                gaps.append(gap)
        if best is None or len(gaps) < len(best_gaps):
            best, best_gaps = source, gaps
        if not gaps:
            return WindowCheck(True, (start, end), [], [], source)
    missing_fr = [
        f"des journaux de création de processus ou de chargement de modules (Sysmon 1/7, ou l'audit des "
        f"processus 4688) sans interruption du {iso(start)} au {iso(end)}",
    ]
    missing = [
        f"process-creation or module-load telemetry (Sysmon 1/7 or Security 4688 process auditing) "
        f"without gaps from {iso(start)} to {iso(end)}",
    ]
    if not sources:
        missing_fr.append("cette machine n'a aucun journal de processus : récupérez son journal Sysmon, ou "
                          "activez « Auditer la création de processus » (4688), son journal Application "
                          "(MsiInstaller), Amcache et Prefetch")
        missing.append("this host has no process-level log at all: collect its Sysmon log, or enable "
                       "'Audit Process Creation' (4688), its Application log (MsiInstaller), Amcache and Prefetch")
    return WindowCheck(False, (start, end), best_gaps, missing, best, missing_fr)
