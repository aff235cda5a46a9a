"""Ingest throughput and memory: `turncoat ingest` vs. bare `evtx` + `orjson` iteration, same files, one run.

Builds a corpus from the shared EVTX samples replicated N times (each copy made unique by one byte in
the header's unused padding, so turncoat's SHA-256 de-duplication does not skip it), then for each
scale prints records, wall seconds, records/s, peak RSS (largest process, and the whole process tree)
for both, and the ratio. Interpreter and import start-up is measured apart (`turncoat --version`).

    python benchmarks/ingest_evtx.py                    # scales 1, 4, 16 (16 ≈ 2.1M records)
    python benchmarks/ingest_evtx.py --scales 1 --unit 2

Linux only (reads /proc for the process-tree RSS). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED_EVTX = ROOT.parent / "shared" / "data" / "evtx"
PADDING_OFFSET = 4000  # inside the 4096-byte file header, after the CRC-covered 120 bytes

BARE = r"""
import sys, evtx, orjson
from pathlib import Path
n = 0
for path in sorted(Path(sys.argv[1]).rglob("*.evtx")):
    try:
        it = evtx.PyEvtxParser(str(path)).records_json()
    except Exception:
        continue
    while True:
        try:
            rec = next(it)
        except StopIteration:
            break
        except Exception:
            continue
        orjson.loads(rec["data"])
        n += 1
print(n)
"""


def build_corpus(dest: Path, copies: int, sources: list[Path] | None = None,
                 name: Callable[[int, int, Path], str] = lambda copy, index, src: f"{index:04d}.evtx") -> int:
    """`copies` unique copies of every readable shared EVTX file (or of `sources`), named by `name`
    (copy number, file index, source); returns the bytes written."""
    if sources is None:
        sources = [p for p in sorted(SHARED_EVTX.rglob("*.evtx")) if "odd" not in p.parts]
    total = 0
    for copy in range(copies):
        folder = dest / f"copy{copy:03d}"
        folder.mkdir(parents=True)
        for index, src in enumerate(sources):
            data = bytearray(src.read_bytes())
            if len(data) > PADDING_OFFSET + 4:
                data[PADDING_OFFSET:PADDING_OFFSET + 4] = copy.to_bytes(4, "little")
            (folder / name(copy, index, src)).write_bytes(bytes(data))
            total += len(data)
    return total


def _tree_rss_kib(pid: int) -> tuple[int, int, int]:
    """RSS (KiB) of the root process, of its largest descendant, and of the whole tree, from /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rsplit(")", 1)[1].split()
            children.setdefault(int(fields[1]), []).append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    root = largest_child = total = 0
    stack = [pid]
    while stack:
        current = stack.pop()
        rss = 0
        try:
            with open(f"/proc/{current}/status", encoding="ascii") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        rss = int(line.split()[1])
        except OSError:
            pass
        if current == pid:
            root = rss
        else:
            largest_child = max(largest_child, rss)
        total += rss
        stack.extend(children.get(current, []))
    return root, largest_child, total


def run(cmd: list[str]) -> tuple[float, tuple[int, int, int], str]:
    """Wall seconds, peak RSS in KiB (main process, largest worker, whole tree; sampled every
    0.1 s), and stdout."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    peaks = [0, 0, 0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.is_set():
            for i, value in enumerate(_tree_rss_kib(proc.pid)):
                peaks[i] = max(peaks[i], value)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    if proc.returncode not in (0, 3, 4):
        raise SystemExit(f"{' '.join(cmd)} failed ({proc.returncode}):\n{err[-2000:]}")
    return wall, (peaks[0], peaks[1], peaks[2]), out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", default="1,4,16", help="comma-separated multiples of the unit corpus")
    parser.add_argument("--unit", type=int, default=9, help="copies of the shared EVTX set in the 1x corpus")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", action="store_true", help="keep the corpus and cases")
    args = parser.parse_args()
    if not SHARED_EVTX.is_dir():
        raise SystemExit(f"shared EVTX samples not found at {SHARED_EVTX}")
    turncoat = [sys.executable, "-m", "turncoat.cli"]
    work = Path(tempfile.mkdtemp(prefix="turncoat-bench-"))
    try:
        startup = min(run(turncoat + ["--version"])[0] for _ in range(3))
        print(f"interpreter + import start-up (turncoat --version): {startup:.2f} s (not subtracted below)")
        print(f"{'scale':>5} {'files':>6} {'records':>9} | {'bare s':>7} {'bare rec/s':>10} {'bare RSS MiB':>12} | "
              f"{'ingest s':>8} {'ingest rec/s':>12} {'RSS MiB main / worker / tree':>29} | {'time ratio':>10}")
        for scale in (int(s) for s in args.scales.split(",")):
            corpus = work / f"corpus-{scale}"
            build_corpus(corpus, args.unit * scale)
            files = sum(1 for _ in corpus.rglob("*.evtx"))
            bare_wall, bare_rss, out = run([sys.executable, "-c", BARE, str(corpus)])
            records = int(out.strip())
            case = work / f"case-{scale}"
            wall, (main_rss, worker_rss, tree_rss), _ = run(
                turncoat + ["ingest", str(corpus), "-o", str(case), "--workers", str(args.workers)])
            print(f"{scale:>5} {files:>6} {records:>9} | {bare_wall:>7.2f} {records / bare_wall:>10.0f} "
                  f"{bare_rss[0] / 1024:>12.0f} | {wall:>8.2f} {records / wall:>12.0f} "
                  f"{main_rss / 1024:>9.0f} / {worker_rss / 1024:>6.0f} / {tree_rss / 1024:>6.0f} | "
                  f"{wall / bare_wall:>10.2f}")
            if not args.keep:
                shutil.rmtree(corpus, ignore_errors=True)
                shutil.rmtree(case, ignore_errors=True)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
