"""Zeek reader throughput and memory against DuckDB reading the same file, TSV and JSON, in one run.

Generates a Zeek conn.log of N rows (TSV with a Zeek header, and the same rows as Zeek JSON lines, unset
fields left out as Zeek's JSON writer does), then measures on each, one process per measurement:

  duckdb count   DuckDB `read_csv` / `read_json` of the file, `SELECT count(*)`: rows counted alone
  duckdb values  the same scan with every column's values used (`max(length(…))` of each), so that no
                 column can be skipped
  reader         turncoat's worker function (`ingest.read_items`) on the file: the Zeek reader writing
                 Parquet through the real `NetContext.write` path, as an ingest worker does
  ingest         the whole `turncoat.ingest.ingest` into a new case: hashing, sniffing, the reader in a
                 worker process, counting the store, the manifest

and prints rows/s, CPU seconds, peak RSS and the ratio of each turncoat figure to DuckDB's.

    python benchmarks/ingest_zeek.py                       # 20M rows (about 2.7 GB TSV, 6 GB JSON)
    python benchmarks/ingest_zeek.py --rows 2000000 --workdir /data/tmp

Interpreter start-up and imports are outside the timed part (each process times its own work). Peak
RSS comes from `resource.getrusage` (self, and the largest child for ingest's worker processes); it is
not available on Windows. Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIELDS = ["ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service", "duration",
          "orig_bytes", "resp_bytes", "conn_state", "local_orig", "local_resp", "missed_bytes", "history",
          "orig_pkts", "orig_ip_bytes", "resp_pkts", "resp_ip_bytes", "tunnel_parents"]
TYPES = ["time", "string", "addr", "port", "addr", "port", "enum", "string", "interval", "count", "count",
         "string", "bool", "bool", "count", "string", "count", "count", "count", "count", "set[string]"]
BYTES_PER_ROW = 140 + 360 + 4 * 40  # TSV, JSON, and the Parquet of two turncoat runs on each

# One connection per row, typed as Zeek logs it: about 1 in 97 over IPv6, 1 in 11 without duration or
# byte counts (unset), services and states cycling, a unique uid.
ROWS_SQL = """
SELECT 1672531200.0 + i / 1000.0 AS ts,
       'C' || left(md5(i::VARCHAR), 17) AS uid,
       CASE WHEN i % 97 = 0 THEN '2001:db8::' || lower(printf('%x', i % 65535 + 1))
            ELSE '10.' || (i % 200) || '.' || ((i // 200) % 250) || '.' || (i % 7 + 1) END AS orig_h,
       1024 + i % 60000 AS orig_p,
       CASE WHEN i % 97 = 0 THEN '2001:db8:1::' || (i % 9 + 1)
            ELSE '192.168.' || (i % 50) || '.' || (i % 250 + 1) END AS resp_h,
       [53, 80, 443, 445, 8443][i % 5 + 1] AS resp_p,
       CASE WHEN i % 5 = 0 THEN 'udp' ELSE 'tcp' END AS proto,
       ['dns', 'http', 'ssl', NULL, NULL][i % 5 + 1] AS service,
       CASE WHEN i % 11 = 0 THEN NULL ELSE (i % 100000) / 7.0 END AS duration,
       CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 37) % 100000 END AS orig_bytes,
       CASE WHEN i % 11 = 0 THEN NULL ELSE (i * 91) % 1000000 END AS resp_bytes,
       ['SF', 'S0', 'REJ', 'RSTO', 'OTH', 'SH'][i % 6 + 1] AS conn_state,
       true AS local_orig, i % 3 = 0 AS local_resp, 0 AS missed_bytes,
       ['ShADadFf', 'S', 'Sr', 'ShADadR', 'Dd'][i % 5 + 1] AS history,
       i % 50 + 1 AS orig_pkts, (i % 50 + 1) * 60 AS orig_ip_bytes, i % 40 AS resp_pkts,
       (i % 40) * 80 AS resp_ip_bytes
FROM range({rows}) t(i)
"""

TSV_SQL = """
SELECT printf('%.6f', ts), uid, orig_h, orig_p, resp_h, resp_p, proto, coalesce(service, '-'),
       coalesce(printf('%.6f', duration), '-'), coalesce(orig_bytes::VARCHAR, '-'),
       coalesce(resp_bytes::VARCHAR, '-'), conn_state, CASE WHEN local_orig THEN 'T' ELSE 'F' END,
       CASE WHEN local_resp THEN 'T' ELSE 'F' END, missed_bytes, history, orig_pkts, orig_ip_bytes, resp_pkts,
       resp_ip_bytes, '-'
FROM ({rows_sql})
"""

# Zeek's JSON writer leaves unset fields out: `"key":null` is removed (ts, first, is never unset).
JSON_SQL = """
SELECT regexp_replace(to_json(r), ',"[^"]+":null', '', 'g')
FROM (SELECT ts, uid, orig_h AS "id.orig_h", orig_p AS "id.orig_p", resp_h AS "id.resp_h", resp_p AS "id.resp_p",
             proto, service, duration, orig_bytes, resp_bytes, conn_state, local_orig, local_resp, missed_bytes,
             history, orig_pkts, orig_ip_bytes, resp_pkts, resp_ip_bytes FROM ({rows_sql})) r
"""

PRELUDE = r"""
import json, sys, time
from pathlib import Path
try:
    import resource
except ImportError:  # Windows
    resource = None

def usage():
    if resource is None:
        return {"cpu": None, "rss_self": None, "rss_child": None}
    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    unit = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return {"cpu": me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime,
            "rss_self": me.ru_maxrss * unit, "rss_child": kids.ru_maxrss * unit}

args = json.loads(sys.argv[1])
"""

DUCKDB = PRELUDE + r"""
import duckdb
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
start_cpu = usage()["cpu"]
start = time.perf_counter()
rows = con.execute(args["sql"]).fetchone()[0]
wall = time.perf_counter() - start
result = usage()
if start_cpu is not None:
    result["cpu"] -= start_cpu
print(json.dumps({"rows": rows, "wall": wall, **result}))
"""

READER = PRELUDE + r"""
from turncoat.ingest import read_items
start_cpu = usage()["cpu"]
start = time.perf_counter()
out = read_items([(args["path"], "bench00000000000", args["format"])], "bench", args["parquet"], 50000)
wall = time.perf_counter() - start
result = usage()
if start_cpu is not None:
    result["cpu"] -= start_cpu
item = out["bench00000000000"]
print(json.dumps({"rows": item["rows"], "issues": item["issue_count"], "wall": wall, **result}))
"""

INGEST = PRELUDE + r"""
from turncoat.ingest import ingest
from turncoat.store.case import Case
start_cpu = usage()["cpu"]
start = time.perf_counter()
run = ingest([Path(args["path"])], Case(Path(args["case"])), workers=2)
wall = time.perf_counter() - start
result = usage()
if start_cpu is not None:
    result["cpu"] -= start_cpu
items = run.manifest["items"]
print(json.dumps({"rows": sum(i["records"] for i in items), "issues": sum(i["issue_count"] for i in items),
                  "wall": wall, **result}))
"""


def generate(work: Path, rows: int) -> tuple[Path, Path, float]:
    """conn.log (TSV with a Zeek header) and conn.json (the same rows); returns the seconds it took."""
    import duckdb

    start = time.perf_counter()
    rows_sql = ROWS_SQL.format(rows=rows)
    body, tsv, js = work / "conn.body", work / "conn.log", work / "conn.json"
    con = duckdb.connect()
    con.execute(f"COPY ({TSV_SQL.format(rows_sql=rows_sql)}) TO '{body.as_posix()}' "
                "(FORMAT csv, DELIMITER '\t', HEADER false, QUOTE '')")
    header = ("#separator \\x09\n#set_separator\t,\n#empty_field\t(empty)\n#unset_field\t-\n#path\tconn\n"
              "#open\t2023-01-01-00-00-00\n#fields\t" + "\t".join(FIELDS) + "\n#types\t" + "\t".join(TYPES) + "\n")
    with tsv.open("wb") as out, body.open("rb") as src:
        out.write(header.encode())
        shutil.copyfileobj(src, out, 16 << 20)
        out.write(b"#close\t2023-01-02-00-00-00\n")
    body.unlink()
    con.execute(f"COPY ({JSON_SQL.format(rows_sql=rows_sql)}) TO '{js.as_posix()}' "
                "(FORMAT csv, HEADER false, QUOTE '', ESCAPE '', DELIMITER '\x01')")
    return tsv, js, time.perf_counter() - start


def duckdb_sql(path: Path, fmt: str, values: bool) -> str:
    """DuckDB's scan of the same file: the TSV's one header segment with every field as text."""
    if fmt == "zeek-tsv":
        columns = "{" + ", ".join(f"'{f}': 'VARCHAR'" for f in FIELDS) + "}"
        source = (f"read_csv('{path.as_posix()}', delim='\t', header=false, comment='#', auto_detect=false, "
                  f"quote='', escape='', nullstr='-', columns={columns})")
        used = FIELDS
    else:
        source = f"read_json('{path.as_posix()}', format='newline_delimited')"
        used = [f for f in FIELDS if f != "tunnel_parents"]
    if not values:
        return f"SELECT count(*) FROM {source}"
    return "SELECT count(*), " + ", ".join(f'max(length(CAST("{f}" AS VARCHAR)))' for f in used) + f" FROM {source}"


def run(code: str, **args: object) -> dict:
    proc = subprocess.run([sys.executable, "-c", code, json.dumps(args, default=str)], capture_output=True, text=True,
                          check=False)
    if proc.returncode != 0:
        raise SystemExit(f"measurement failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return json.loads([line for line in proc.stdout.splitlines() if line.startswith("{")][-1])


def mib(value: int | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:,.0f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000_000)
    parser.add_argument("--workdir", type=Path, help="where the files go (default: a new temporary folder)")
    parser.add_argument("--formats", default="zeek-tsv,zeek-json")
    parser.add_argument("--keep", action="store_true", help="keep the generated files (for --reuse)")
    parser.add_argument("--reuse", type=Path, help="a folder kept by --keep: measure its conn.log/conn.json again")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="turncoat-zeek-bench-", dir=args.workdir))
    try:
        if args.reuse:
            tsv, js = args.reuse / "conn.log", args.reuse / "conn.json"
        else:
            free = shutil.disk_usage(work).free
            rows = args.rows
            if rows * BYTES_PER_ROW > free * 0.9:
                rows = int(free * 0.9 / BYTES_PER_ROW)
                print(f"only {free / 2**30:.1f} GiB free in {work}: {rows:,} rows instead of {args.rows:,}")
            tsv, js, seconds = generate(work, rows)
            print(f"generated {rows:,} rows in {seconds:.0f} s")
        print(f"{tsv.name} {tsv.stat().st_size / 2**30:.2f} GiB, {js.name} {js.stat().st_size / 2**30:.2f} GiB")
        print(f"{'format':9} {'measurement':14} {'rows':>11} {'wall s':>7} {'rows/s':>10} {'CPU s':>7} "
              f"{'RSS MiB (self / child)':>23} {'× count':>8} {'× values':>8}")
        for fmt in args.formats.split(","):
            path = tsv if fmt == "zeek-tsv" else js
            figures = {
                "duckdb count": run(DUCKDB, sql=duckdb_sql(path, fmt, values=False)),
                "duckdb values": run(DUCKDB, sql=duckdb_sql(path, fmt, values=True)),
                "reader": run(READER, path=path, format=fmt, parquet=work / f"parquet-{fmt}"),
                "ingest": run(INGEST, path=path, case=work / f"case-{fmt}"),
            }
            shutil.rmtree(work / f"parquet-{fmt}", ignore_errors=True)
            shutil.rmtree(work / f"case-{fmt}", ignore_errors=True)
            base, values = figures["duckdb count"]["wall"], figures["duckdb values"]["wall"]
            for name, got in figures.items():
                cpu = "n/a" if got["cpu"] is None else f"{got['cpu']:.1f}"
                note = "" if not got.get("issues") else f"  ({got['issues']} problems)"
                print(f"{fmt:9} {name:14} {got['rows']:>11,} {got['wall']:>7.2f} {got['rows'] / got['wall']:>10,.0f} "
                      f"{cpu:>7} {mib(got['rss_self']):>11} / {mib(got['rss_child']):>9} "
                      f"{got['wall'] / base:>8.2f} {got['wall'] / values:>8.2f}{note}")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
