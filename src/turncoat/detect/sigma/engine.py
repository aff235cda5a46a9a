"""Running compiled Sigma rules over the case store: many rules per pass over the data.

Rules are grouped by target (logsource). For each target the rows are read in slices of whole
evidence files (so memory stays bounded however big the case), the fields the group's rules use are
read once per slice into a temporary table; each distinct combination of their values is lower-cased
and evaluated once (logs repeat themselves), and each chunk of rules is one query: a filter that ORs their expressions (DuckDB skips rows already matched) and one
boolean column per rule. Rules are never run one scan each; fields a source lacks are NULL columns,
never a binder error that would drop the rule's hits.
"""

from __future__ import annotations

import re
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from turncoat.detect.sigma.logsources import ALL_FIELDS, TIME_FIELD, Leg, Target, resolve_name
from turncoat.detect.sigma.rules import CompiledRule, RuleSet
from turncoat.store.attribution import attributed_sql
from turncoat.store.schema import UNNAMED_DATA

#: Rows prepared at once per target; a slice is made of whole evidence files up to this size.
SLICE_ROWS = 400_000
#: Rules evaluated by one query: an expression state per rule lives for the query, so smaller chunks
#: keep memory down; the distinct-value batches are small, so more queries cost little.
RULES_PER_QUERY = 16

_COLUMN = re.compile(r'"([rl])\|((?:[^"]|"")*)"')

HIT_SCHEMA = pa.schema([
    ("rule", pa.int32()), ("evidence_id", pa.string()), ("seq", pa.int64()), ("record_id", pa.int64()),
    ("line", pa.int64()), ("host", pa.string()), ("ts", pa.timestamp("us", tz="UTC")),
    ("channel", pa.string()), ("event_id", pa.int32()),  # of event-log rows; the sensor's log for network rows
])


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _lit(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


@dataclass
class Filters:
    """What the analyst narrowed the run to."""

    hosts: list[str] = field(default_factory=list)
    since: datetime | None = None
    until: datetime | None = None
    #: False searches every stored copy of an event (the same event read from two exports), as
    #: tools that read files one by one do; True searches each event once (docs/schema.md).
    deduplicate: bool = True


@dataclass
class SigmaRun:
    """Hits of one run: `hits` rows point into `rules` by index; `values` holds, for rules that
    correlations read, the fields they group or aggregate on, keyed by (evidence_id, seq)."""

    rules: list[CompiledRule]
    hits: pa.Table
    values: dict[int, pa.Table] = field(default_factory=dict)
    targets: dict[str, int] = field(default_factory=dict)  # target → rows searched


class _Tables:
    """Columns present in each table of the store, looked up case-insensitively."""

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.columns: dict[str, dict[str, str]] = {}

    def of(self, table: str) -> dict[str, str]:
        if table not in self.columns:
            try:
                names = [r[0] for r in self.con.execute(f"DESCRIBE {table}").fetchall()]
            except duckdb.CatalogException:
                names = []
            folded = {n.casefold(): n for n in names}
            # Event logs spell some fields with spaces (Defender's "Threat Name"); Sigma rules and
            # every other tool write them without ("ThreatName").
            for fold, name in list(folded.items()):
                folded.setdefault(fold.replace(" ", ""), name)
            self.columns[table] = folded
        return self.columns[table]


def _used_columns(rules: Iterable[CompiledRule], extra: dict[int, list[str]] | None = None) -> dict[str, set[str]]:
    """Sigma field (case-folded) → which forms the rules read ("r" text, "l" lower-cased)."""
    used: dict[str, set[str]] = defaultdict(set)
    for rule in rules:
        for form, name in _COLUMN.findall(rule.expr):
            used[name.replace('""', '"')].add(form)
    for names in (extra or {}).values():
        for name in names:
            used[name.casefold()].add("r")
    return used


class _Leg:
    """SQL of one leg: each Sigma field as an expression over the leg's table."""

    def __init__(self, leg: Leg, target: Target, columns: dict[str, str], deduplicate: bool) -> None:
        self.leg, self.target, self.columns = leg, target, columns
        self.network = leg.table != "win_events"
        self.table = leg.table if self.network or deduplicate else "win_events_all"

    def column(self, name: str) -> str:
        real = self.columns.get(name.casefold())
        return _q(real) if real else "CAST(NULL AS VARCHAR)"

    def field(self, name: str) -> str:
        if name == TIME_FIELD:
            return self.column(self.target.time_column)
        if name == ALL_FIELDS:
            skip = {"evidence_id", "seq", "line", "offset", "dedup_key", "record_id"}
            parts = [f"CAST({_q(real)} AS VARCHAR)" for fold, real in self.columns.items() if fold not in skip]
            return f"concat_ws(' ', {', '.join(parts)})" if parts else "CAST(NULL AS VARCHAR)"
        rename = self.leg.renames.get(name)
        if rename is not None:
            return re.sub(r"\{([^{}]+)\}", lambda m: self.column(m.group(1)), rename)
        if not self.network and name == UNNAMED_DATA.casefold() and name in self.columns:
            # unnamed <Data> items are stored as a JSON array (docs/schema.md); rules read their text
            col = self.column(name)
            return (f"CASE WHEN starts_with({col}, '[') AND json_valid({col}) "
                    f"THEN array_to_string(from_json({col}, '[\"VARCHAR\"]'), ' ') ELSE {col} END")
        return self.column(name)

    def select(self, used: dict[str, set[str]], where_extra: str) -> str:
        host = "'ip:' || \"source.ip\"" if self.network else "host"
        cols = [f"evidence_id, seq, {self.column('record_id')} AS record_id, {self.column('line')} AS line",
                f"CAST({host} AS VARCHAR) AS host",
                f"CAST({self.column(self.target.time_column)} AS TIMESTAMPTZ) AS ts",
                f"CAST({self.column('event.dataset' if self.network else 'Channel')} AS VARCHAR) AS channel",
                f"{'CAST(NULL AS INTEGER)' if self.network else 'EventID'} AS event_id"]
        for name in sorted(used):  # each field once, as read ("t|"); the batch derives the forms rules use
            expr = self.field(name)
            typed = "TIMESTAMPTZ" if name == TIME_FIELD else "VARCHAR"
            cols.append(f"CAST({expr} AS {typed}) AS {_q('t|' + name)}")
        where = f"({self.leg.where}){where_extra}"
        return f"SELECT {', '.join(cols)} FROM {self.table} WHERE {where}"


def _forms(used: dict[str, set[str]]) -> str:
    """The columns rules read, from the batch's read values: text as read, and lower-cased."""
    cols = []
    for name, forms in sorted(used.items()):
        value = _q(f"t|{name}")
        if "r" in forms:
            cols.append(f"{value} AS {_q('r|' + name)}")
        if "l" in forms:
            text = f"CAST({value} AS VARCHAR)" if name == TIME_FIELD else value
            cols.append(f"lower({text}) AS {_q('l|' + name)}")
    return ", ".join(cols)


def _filters_sql(filters: Filters, network: bool, time_column: str) -> str:
    out = ""
    if filters.since:
        out += f" AND {_q(time_column)} >= {_lit(filters.since.isoformat())}::TIMESTAMPTZ"
    if filters.until:
        out += f" AND {_q(time_column)} < {_lit(filters.until.isoformat())}::TIMESTAMPTZ"
    if filters.hosts and not network:  # network rows are filtered once attributed to hosts
        out += f" AND lower(host) IN ({', '.join(_lit(h.lower()) for h in filters.hosts)})"
    return out


class _Counts:
    """Rows per evidence file of each table, by the columns targets filter on, counted once per run:
    sizing a target's slices then reads this small table instead of scanning the events again."""

    KEYS = {"win_events": ("Channel", "EventID"), "win_events_all": ("Channel", "EventID")}

    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.made: set[str] = set()

    def per_evidence(self, leg: _Leg, extra: str) -> list[tuple[str, int]]:
        table = leg.table
        keys = self.KEYS.get(table, ('"observer.type"',))
        name = f"sigma_counts_{table}"
        if table not in self.made:
            group = ", ".join(keys)
            self.con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT evidence_id, {group}, "
                             f"count(*) AS n FROM {table} GROUP BY ALL")
            self.made.add(table)
        if not extra:
            try:
                return self.con.execute(
                    f"SELECT evidence_id, sum(n) FROM {name} WHERE {leg.leg.where} GROUP BY 1").fetchall()
            except duckdb.BinderException:
                pass  # the leg filters on more than the counted columns: count the rows themselves
        return self.con.execute(
            f"SELECT evidence_id, count(*) FROM {table} WHERE ({leg.leg.where}){extra} GROUP BY 1").fetchall()

    def drop(self) -> None:
        for table in self.made:
            self.con.execute(f"DROP TABLE IF EXISTS sigma_counts_{table}")


def _slices(counter: _Counts, legs: list[_Leg], filters: Filters) -> list[list[str]]:
    """Evidence files of the target, packed into slices of at most SLICE_ROWS rows (a bigger file is
    a slice of its own)."""
    counts: dict[str, int] = defaultdict(int)
    for leg in legs:
        extra = _filters_sql(filters, leg.network, leg.target.time_column if leg.network else "ts")
        for evidence_id, n in counter.per_evidence(leg, extra):
            counts[evidence_id] += int(n)
    slices: list[list[str]] = []
    current: list[str] = []
    size = 0
    for evidence_id, n in sorted(counts.items()):
        if current and size + n > SLICE_ROWS:
            slices.append(current)
            current, size = [], 0
        current.append(evidence_id)
        size += n
    if current:
        slices.append(current)
    return slices


def run_rules(con: duckdb.DuckDBPyConnection, ruleset: RuleSet, filters: Filters | None = None,
              value_fields: dict[int, list[str]] | None = None,
              progress: Callable[[int, int], None] | None = None) -> SigmaRun:
    """Every rule of `ruleset` over the store. `value_fields` (rule index → Sigma fields) asks for
    those fields' values beside the hits of those rules (correlations group and count on them)."""
    filters = filters or Filters()
    value_fields = value_fields or {}
    tables = _Tables(con)
    by_target: dict[str, list[int]] = defaultdict(list)
    for index, rule in enumerate(ruleset.rules):
        by_target[rule.target].append(index)
    parts: list[pa.Table] = []
    values: dict[int, list[pa.Table]] = defaultdict(list)
    searched: dict[str, int] = {}
    counter = _Counts(con)
    con.execute("SET parquet_metadata_cache = true")  # every target reads the same Parquet parts
    done = 0
    for target_name, indexes in sorted(by_target.items()):
        target = resolve_name(target_name)
        legs = [_Leg(leg, target, tables.of(leg.table), filters.deduplicate) for leg in target.legs]
        rules = [ruleset.rules[i] for i in indexes]
        used = _used_columns(rules, {i: value_fields[i] for i in indexes if i in value_fields})
        searched[target_name] = 0
        slices = _slices(counter, legs, filters)
        for evidence_ids in slices:
            # slices are runs of sorted evidence ids: a range, not a list of thousands of ids
            within = "" if len(slices) == 1 else \
                f" AND evidence_id BETWEEN {_lit(evidence_ids[0])} AND {_lit(evidence_ids[-1])}"
            selects = [leg.select(used, within + _filters_sql(
                filters, leg.network, target.time_column if leg.network else "ts")) for leg in legs]
            read = [_q(f"t|{name}") for name in sorted(used)]
            con.execute("CREATE OR REPLACE TEMP TABLE sigma_rows AS SELECT *, hash(" + ", ".join(read) +
                        ") AS vk FROM (" + " UNION ALL BY NAME ".join(selects) + ")")
            searched[target_name] += con.execute("SELECT count(*) FROM sigma_rows").fetchall()[0][0]
            # Each distinct combination of the fields the rules read is evaluated once (logs repeat
            # the same command lines, scripts and registry writes), and lower-cased once; hits are
            # joined back to their events.
            con.execute(f"CREATE OR REPLACE TEMP TABLE sigma_batch AS SELECT vk, {_forms(used)} "
                        f"FROM (SELECT DISTINCT ON (vk) * FROM sigma_rows)")
            matched = [_evaluate(con, ruleset, indexes[start:start + RULES_PER_QUERY])
                       for start in range(0, len(indexes), RULES_PER_QUERY)]
            _join_back(con, [m for m in matched if m.num_rows], value_fields, parts, values)
        con.execute("DROP TABLE IF EXISTS sigma_batch")
        con.execute("DROP TABLE IF EXISTS sigma_rows")
        done += len(indexes)
        if progress:
            progress(done, len(ruleset.rules))
    counter.drop()
    hits = pa.concat_tables(parts) if parts else HIT_SCHEMA.empty_table()
    if any(h.startswith("ip:") for h in hits.column("host").to_pylist() if h) and _has_attribution(con):
        hits = _attribute(con, hits)
    if filters.hosts:
        wanted = pa.array([h.lower() for h in filters.hosts])
        hits = hits.filter(pc.is_in(pc.utf8_lower(hits.column("host")), wanted))
    return SigmaRun(ruleset.rules, hits, {i: pa.concat_tables(t) for i, t in values.items()}, searched)


MATCH_SCHEMA = pa.schema([("vk", pa.uint64()), ("rule", pa.int32())])


def _evaluate(con: duckdb.DuckDBPyConnection, ruleset: RuleSet, chunk: list[int]) -> pa.Table:
    """(value key, rule) for every distinct field combination of the batch that a rule of `chunk` matches."""
    exprs = [ruleset.rules[i].expr for i in chunk]
    flags = ", ".join(f"{expr} AS {_q('m' + str(n))}" for n, expr in enumerate(exprs))
    condition = " OR ".join(f"({expr})" for expr in exprs)
    table = _arrow(con, f"SELECT vk, {flags} FROM sigma_batch WHERE {condition}")
    out = []
    for n, index in enumerate(chunk):
        mask = pc.fill_null(table.column(f"m{n}"), False)
        keys = table.column("vk").filter(mask)
        if len(keys):
            out.append(pa.table({"vk": pc.cast(keys, pa.uint64()), "rule": pa.array([index] * len(keys), pa.int32())}))
    return pa.concat_tables(out) if out else MATCH_SCHEMA.empty_table()


def _join_back(con: duckdb.DuckDBPyConnection, matched: list[pa.Table], value_fields: dict[int, list[str]],
               parts: list[pa.Table], values: dict[int, list[pa.Table]]) -> None:
    """Events of the batch behind each matched value key, as hit rows (and correlation values)."""
    if not matched:
        return
    con.register("sigma_matched", pa.concat_tables(matched))
    try:
        wanted = sorted({f.casefold() for i in value_fields for f in value_fields[i]})
        present = {r[0] for r in con.execute("DESCRIBE sigma_rows").fetchall()}
        extra = "".join(f", CAST(r.{_q('t|' + n)} AS VARCHAR) AS {_q(n)}" for n in wanted if f"t|{n}" in present)
        table = _arrow(con, f"SELECT m.rule, r.evidence_id, r.seq, r.record_id, r.line, r.host, r.ts, r.channel, r.event_id{extra} "
                            f"FROM sigma_rows r JOIN sigma_matched m USING (vk)")
    finally:
        con.unregister("sigma_matched")
    parts.append(table.select(HIT_SCHEMA.names).cast(HIT_SCHEMA))
    for index, names in value_fields.items():
        mask = pc.equal(table.column("rule"), index)
        if not pc.any(mask).as_py():
            continue
        rows = table.filter(mask)
        cols = {"evidence_id": rows.column("evidence_id"), "seq": rows.column("seq")}
        for name in names:
            key = name.casefold()
            cols[key] = rows.column(key) if key in rows.column_names else pa.nulls(rows.num_rows, pa.string())
        values[index].append(pa.table(cols))


def _arrow(con: duckdb.DuckDBPyConnection, sql: str) -> pa.Table:
    """Query result as Arrow. `execute` rather than `sql`: the relation API tokenises the SQL text
    in Python first, which costs more than running these long rule queries on a small batch. The
    copy DuckDB warns about is of the matched rows only."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        return con.execute(sql).to_arrow_table()


def _has_attribution(con: duckdb.DuckDBPyConnection) -> bool:
    found = {r[0] for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
    return {"ip_hosts", "shared_sources"} <= found


def _attribute(con: duckdb.DuckDBPyConnection, hits: pa.Table) -> pa.Table:
    """Network hits carry `ip:<address>`; give them the host that had the address then, where known."""
    con.register("sigma_hits_in", hits)
    try:
        rows = (
            "SELECT *, row_number() OVER () AS position, "
            "CASE WHEN starts_with(host, 'ip:') THEN substr(host, 4) END AS ip FROM sigma_hits_in")
        out = con.sql(
            f"SELECT * EXCLUDE (host, ip, host_attributed, position), "
            f"CASE WHEN ip IS NULL THEN host ELSE host_attributed END AS host "
            f"FROM ({attributed_sql(rows)}) ORDER BY position").to_arrow_table()
    finally:
        con.unregister("sigma_hits_in")
    return out.select(HIT_SCHEMA.names).cast(HIT_SCHEMA)
