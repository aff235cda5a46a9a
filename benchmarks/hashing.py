"""Triage hashing and YARA: turncoat against the usual command-line tools, same files, one run.

Why: every file of a triage collection is hashed three ways (indicator lists give SHA-256, SHA-1 or
MD5) and scanned with the pack's YARA rules. An analyst's yardstick is `sha256sum`, `sha1sum` and
`md5sum` over the tree, and `yara -r`; turncoat has to be in their league (the goal: peer time /
turncoat time >= 0.9) while also reading each file only once and never stopping on a bad file.

    python benchmarks/hashing.py                      # 2 GB tree under the temp folder, 5 pairs
    python benchmarks/hashing.py --dir /data/bench --size-gb 8 --repeats 3

The tree is generated once (reused while its size matches): many small files (1 KiB to 1 MiB,
log-uniform), some medium ones (1 to 16 MiB) and a few large ones (64 to 256 MiB), pseudo-random
content, plus three benign look-alikes that the pack's rules fire on (an icon with a base64 trailer, a
PE carrying the loader's key string, a Mach-O with XOR-encoded strings) so that both YARA sides have
something to agree on. The tree is read once before timing (page cache warm; the figures are CPU and
memory bandwidth, not disk).

Commands, each the whole process (interpreter start-up included), output to /dev/null:
- hash, turncoat: `python -m turncoat.triage.hashing DIR` (one read per file, three digests, threads);
- hash, coreutils: `sha256sum`, `sha1sum` and `md5sum` run together (three concurrent `find | xargs`
  pipelines over the same files, one shell command); also given one after the other, for reference;
- YARA, turncoat: `python -m turncoat.triage.yara_scan DIR` (the pack's rules, compiled once, threads);
- YARA, command line: `yara -r NS:FILE ... DIR` with the same rule files, if `yara` is installed.

Runs alternate peer / turncoat; ratios (peer time / turncoat time, above 1: turncoat faster) are taken
pair by pair, then min / median / max. The machine is shared and noisy: compare ratios, not seconds.
POSIX only (the peers are shell tools; peak RSS comes from wait4). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import math
import os
import random
import shlex
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
from turncoat.triage.yara_scan import PACK_RULES  # after the path is set

MIB = 1024 * 1024
BLOCK = 8 * MIB


# ---------------------------------------------------------------- the tree

def _sizes(total: int, rng: random.Random) -> list[int]:
    """File sizes summing to about `total`: 45 % large, 25 % medium, 30 % small files."""
    sizes: list[int] = []
    for share, low, high, log in ((0.45, 64 * MIB, 256 * MIB, False), (0.25, MIB, 16 * MIB, True),
                                  (0.30, 1024, MIB, True)):
        budget = int(total * share)
        while budget > 0:
            size = int(math.exp(rng.uniform(math.log(low), math.log(high)))) if log else rng.randint(low, high)
            size = min(size, budget) if budget >= low else budget
            sizes.append(size)
            budget -= size
    rng.shuffle(sizes)
    return sizes


def _lookalikes() -> dict[str, bytes]:
    """Benign files carrying the structural features the pack's rules look for (no real sample)."""
    rng = random.Random(99)
    bmp = struct.pack("<IiiHHIIiiII", 40, 1, 2, 1, 32, 0, 8, 0, 0, 0, 0) + b"\x10\x20\x30\xff" + b"\0" * 4
    icon = struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 1, 1, 0, 0, 1, 32, len(bmp), 22) + bmp
    import base64

    cookie = bytes(b ^ 0x7A for b in b";3cx_auth_token_content=%s;__tutma=")
    return {
        "icon3.ico": icon + b"$" + base64.b64encode(rng.randbytes(90)),
        "ffmpeg.dll": b"MZ" + rng.randbytes(50_000) + b"3jB(2bsG#@c7" + rng.randbytes(50_000),
        "libffmpeg.dylib": bytes.fromhex("CFFAEDFE") + rng.randbytes(30_000) + cookie + rng.randbytes(9_000),
    }


def build_tree(folder: Path, size_gb: float) -> tuple[int, int]:
    """Make the tree once; a marker file records what was made so that a later run reuses it."""
    total = int(size_gb * 1024**3)
    marker = folder / ".complete"
    if marker.exists() and marker.read_text().strip() == str(total):
        files = [p for p in folder.rglob("*") if p.is_file() and p != marker]
        return len(files), sum(p.stat().st_size for p in files)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    rng = random.Random(20230329)
    sizes = _sizes(total, rng)
    print(f"generating {len(sizes):,} files, {total / 1024**3:.2f} GiB, under {folder} (once) …", flush=True)
    made = 0
    for index, size in enumerate(sizes):
        sub = folder / f"d{index // 500:03d}"
        sub.mkdir(exist_ok=True)
        with open(sub / f"f{index:06d}.bin", "wb") as out:
            left = size
            while left:
                part = min(left, BLOCK)
                out.write(rng.randbytes(part))
                left -= part
        made += size
    for name, content in _lookalikes().items():
        (folder / name).write_bytes(content)
        made += len(content)
    marker.write_text(str(total))
    return len(sizes) + len(_lookalikes()), made


def warm(folder: Path) -> float:
    """Read every file once so that every command meets a warm page cache."""
    start = time.perf_counter()
    buffer = bytearray(BLOCK)
    for path in folder.rglob("*"):
        if path.is_file():
            with open(path, "rb", buffering=0) as handle:
                while handle.readinto(buffer):
                    pass
    return time.perf_counter() - start


# ---------------------------------------------------------------- timing

@dataclass
class Series:
    label: str
    walls: list[float] = field(default_factory=list)
    rss_kib: int = 0


def run_once(cmd: list[str], series: Series, stdout_path: Path | None = None) -> None:
    """One whole-process run: wall seconds and the peak RSS of the largest process waited for."""
    with open(stdout_path or os.devnull, "wb") as out:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        _, status, usage = os.wait4(proc.pid, 0)
        series.walls.append(time.perf_counter() - start)
        proc.returncode = os.waitstatus_to_exitcode(status)
    series.rss_kib = max(series.rss_kib, usage.ru_maxrss)
    if proc.returncode not in (0, 1):  # 1: turncoat's hashing had unreadable files; still timed
        raise RuntimeError(f"{shlex.join(cmd)} exited {proc.returncode}")


def spread(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def compare(title: str, peer: tuple[str, list[str]], ours: tuple[str, list[str]], repeats: int,
            extra: tuple[str, list[str]] | None = None) -> None:
    """Alternate peer / turncoat `repeats` times after one warm-up of each; print the table."""
    a, b = Series(peer[0]), Series(ours[0])
    c = Series(extra[0]) if extra else None
    run_once(peer[1], Series("warm-up"))
    run_once(ours[1], Series("warm-up"))
    for _ in range(repeats):
        run_once(peer[1], a)
        run_once(ours[1], b)
        if extra and c is not None:
            run_once(extra[1], c)
    ratios = [x / y for x, y in zip(a.walls, b.walls)]
    print(f"\n{title}")
    print("| command | wall s median (min–max) | peak RSS MiB |")
    print("|---|---|---|")
    for series in (a, b, c) if c else (a, b):
        print(f"| {series.label} | {spread(series.walls)} | {series.rss_kib / 1024:.0f} |")
    print(f"ratio {a.label} / {b.label}, pair by pair: {spread(ratios)}")
    if c:
        seq = [x / y for x, y in zip(c.walls, b.walls)]
        print(f"ratio {c.label} / {b.label}, pair by pair: {spread(seq)}")


def yara_agreement(folder: Path, ours_cmd: list[str], cli_cmd: list[str], scratch: Path) -> None:
    """Both scanners' (rule, file) pairs on the tree: the same rules must find the same files."""
    run_once(ours_cmd, Series("check"), scratch / "ours.txt")
    run_once(cli_cmd, Series("check"), scratch / "cli.txt")
    ours = {(line.split()[0], line.split()[2]) for line in (scratch / "ours.txt").read_text().splitlines()
            if not line.startswith("ERROR")}
    cli = {(line.split()[0].split(":")[-1], line.split()[1]) for line in (scratch / "cli.txt").read_text().splitlines()}
    names = sorted(f"{rule} {Path(path).name}" for rule, path in ours)
    print(f"agreement: turncoat {len(ours)} matches, yara {len(cli)}, same: {ours == cli} ({'; '.join(names)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "turncoat-bench-hashing",
                        help="where the tree is generated (once) and reused")
    parser.add_argument("--size-gb", type=float, default=2.0)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--workers", type=int, default=None, help="turncoat's threads (default: its own)")
    args = parser.parse_args()
    folder = args.dir.resolve() / "tree"
    count, size = build_tree(folder, args.size_gb)
    print(f"tree: {count:,} files, {size / 1024**3:.2f} GiB; {os.cpu_count()} cores; Python {sys.version.split()[0]}")
    print(f"cache warm-up read: {warm(folder):.1f} s")
    import resource

    floor = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"(peak RSS of a command reads no lower than this script's own, {floor:.0f} MiB, on Linux)")
    env_python = [sys.executable]
    workers = ["--workers", str(args.workers)] if args.workers else []
    quoted = shlex.quote(str(folder))
    find = f"find {quoted} -type f ! -name .complete -print0 | xargs -0"

    for tool in ("sha256sum", "sha1sum", "md5sum", "find", "xargs"):
        if shutil.which(tool) is None:
            print(f"{tool} not installed: hashing comparison skipped")
            break
    else:
        together = ["sh", "-c", (f"{find} sha256sum >/dev/null & {find} sha1sum >/dev/null & "
                                 f"{find} md5sum >/dev/null & wait")]
        one_by_one = ["sh", "-c", (f"{find} sha256sum >/dev/null; {find} sha1sum >/dev/null; "
                                   f"{find} md5sum >/dev/null")]
        ours = [*env_python, "-m", "turncoat.triage.hashing", *workers, str(folder)]
        compare("## hashing (SHA-256 + SHA-1 + MD5 of every file)",
                ("coreutils, 3 tools concurrently", together), ("turncoat hashing", ours), args.repeats,
                extra=("coreutils, 3 tools one after the other", one_by_one))

    ours_yara = [*env_python, "-m", "turncoat.triage.yara_scan", *workers, str(folder)]
    cli = shutil.which("yara")
    if cli is None:
        print("\n## YARA\nyara CLI not installed: YARA comparison skipped")
        return 0
    version = subprocess.run([cli, "--version"], capture_output=True, text=True, check=False).stdout.strip()
    rule_args = [f"{p.stem}:{p}" for p in sorted(PACK_RULES.glob("*.yar"))]
    cli_cmd = [cli, "-r", "-w", *rule_args, str(folder)]
    compare(f"## YARA (the pack's {len(rule_args)} rule files; yara {version})",
            ("yara -r", cli_cmd), ("turncoat yara_scan", ours_yara), args.repeats)
    with tempfile.TemporaryDirectory() as scratch:
        yara_agreement(folder, ours_yara, cli_cmd, Path(scratch))
    return 0


if __name__ == "__main__":
    sys.exit(main())
