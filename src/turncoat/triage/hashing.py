"""SHA-256, SHA-1 and MD5 of evidence files, from one read of each file, many files at a time.

Why one read: indicator lists give any of the three digests (often only one of them), so every
collected file needs all three, and a triage collection can be tens of gigabytes. Reading each file
once and feeding the same bytes to the three digests costs one pass over the disk instead of three.

Why threads: hashlib releases the GIL while it digests a buffer larger than 2 KiB, so plain threads
hash several files at once on several cores, with no process start-up and no data copied between
processes. Each worker reads through one reused buffer, so memory stays flat however large a file is.

Problems are reported, never raised: a file that vanished, is locked (Windows), is not a regular file
or is above the size bound comes back with no digests and a message, and the run goes on.

    python -m turncoat.triage.hashing DIR [DIR ...]    # one line per file: sha256 sha1 md5 size path
"""

from __future__ import annotations

import hashlib
import os
import stat
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

# Large enough that the per-call cost of hashlib and of the read is negligible, small enough to stay
# in the CPU cache's neighbourhood; one buffer per worker thread.
CHUNK = 1024 * 1024
# How many files a pool keeps in flight per worker: enough to keep every worker busy while results
# are handed back in input order, bounded so that a huge input list is not all submitted at once.
AHEAD_PER_WORKER = 8

# O_NONBLOCK keeps a FIFO or device named like evidence from blocking the open; O_BINARY is Windows'.
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
_local = threading.local()

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class Digests:
    """The three digests indicator lists use (lower-case hex) and the number of bytes hashed."""

    sha256: str
    sha1: str
    md5: str
    size: int


class HashError(Exception):
    """A file that cannot be hashed; the message is meant for the analyst."""


def default_workers() -> int:
    """One thread per core (hashing is CPU-bound once the file is cached), at least 2 so that one
    thread's disk wait overlaps another's hashing, at most 8 so that a slow disk is not thrashed."""
    return max(2, min(8, os.cpu_count() or 2))


def _buffer() -> memoryview:
    """This thread's reusable read buffer."""
    view = getattr(_local, "view", None)
    if view is None:
        view = _local.view = memoryview(bytearray(CHUNK))
    return view


def hash_file(path: Path, max_bytes: int | None = None) -> Digests:
    """Hash one file in a single read. Raises HashError (with a readable message) when the file cannot
    be read, is not a regular file, or is larger than `max_bytes` (None: no bound)."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except FileNotFoundError:
        raise HashError("file not found (it may have been removed during the run)") from None
    except PermissionError as exc:
        if os.path.isdir(path):  # Windows refuses to open a folder with "permission denied"
            raise HashError("not a regular file (a folder): not hashed") from None
        raise HashError(f"permission denied or file locked: {exc.strerror or exc}") from None
    except OSError as exc:
        raise HashError(f"cannot open: {exc.strerror or exc}") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise HashError("not a regular file (directory, device, pipe or socket): not hashed")
        if max_bytes is not None and info.st_size > max_bytes:
            raise HashError(f"skipped: {info.st_size:,} bytes is above the size limit of {max_bytes:,} bytes")
        return _digest_fd(fd, max_bytes)
    except OSError as exc:
        raise HashError(f"read failed: {exc.strerror or exc}") from None
    finally:
        os.close(fd)


def _digest_fd(fd: int, max_bytes: int | None) -> Digests:
    """Feed the file's bytes, chunk by chunk through the thread's buffer, to the three digests."""
    sha256, sha1, md5 = hashlib.sha256(), hashlib.sha1(), hashlib.md5()
    view = _buffer()
    size = 0
    with open(fd, "rb", buffering=0, closefd=False) as handle:
        while True:
            count = handle.readinto(view)
            if not count:
                break
            size += count
            if max_bytes is not None and size > max_bytes:
                # The file grew after it was measured (a live log): bound the work all the same.
                raise HashError(f"skipped: grew above the size limit of {max_bytes:,} bytes while being read")
            chunk = view[:count]
            sha256.update(chunk)
            sha1.update(chunk)
            md5.update(chunk)
    return Digests(sha256.hexdigest(), sha1.hexdigest(), md5.hexdigest(), size)


Result = tuple[Path, Digests | None, str | None]


def _hash_one(path: Path, max_bytes: int | None) -> Result:
    try:
        return path, hash_file(Path(path), max_bytes), None
    except HashError as exc:
        return path, None, str(exc)
    except (OSError, ValueError) as exc:  # a path the OS cannot even represent (NUL byte, too long)
        return path, None, f"cannot read: {exc}"


def ordered_map(work: Callable[[T], R], items: Iterable[T], workers: int) -> Iterator[R]:
    """`work` over `items` in `workers` threads, results in input order. `items` is consumed lazily and
    at most `workers * AHEAD_PER_WORKER` items are in flight, so memory does not grow with their
    number; a slow item holds back only the results behind it, not the workers."""
    if workers <= 1:
        yield from map(work, items)
        return
    pending: deque[Future[R]] = deque()
    limit = workers * AHEAD_PER_WORKER
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="triage") as pool:
        try:
            for item in items:
                pending.append(pool.submit(work, item))
                if len(pending) >= limit:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:  # the consumer stopped early: do not work for nobody
            for future in pending:
                future.cancel()


def hash_files(paths: Iterable[Path], workers: int | None = None,
               max_bytes: int | None = None) -> Iterator[Result]:
    """Hash many files in parallel threads; yields (path, digests, None) or (path, None, message), in
    input order, the path as given. Files above `max_bytes` (None: no bound) are skipped with a message."""
    return ordered_map(lambda path: _hash_one(path, max_bytes), paths, workers or default_workers())


def walk_files(root: Path) -> Iterator[Path]:
    """Every file under `root` (or `root` itself), in a stable order, without following links to
    folders; folders that cannot be listed are skipped (the hashing step reports unreadable files)."""
    if not root.is_dir():
        yield root
        return
    for folder, dirs, files in os.walk(root):
        dirs.sort()
        for name in sorted(files):
            yield Path(folder, name)


def main(argv: list[str] | None = None) -> int:
    """Print `sha256 sha1 md5 size path` per file (or `ERROR message path`); exit 1 if any failed."""
    import argparse

    parser = argparse.ArgumentParser(prog="python -m turncoat.triage.hashing",
                                     description="SHA-256, SHA-1 and MD5 of every file, one read each.")
    parser.add_argument("roots", nargs="+", type=Path, help="files or folders (walked recursively)")
    parser.add_argument("--workers", type=int, default=None, help="threads (default: cores, 2 to 8)")
    parser.add_argument("--max-bytes", type=int, default=None, help="skip files above this size")
    args = parser.parse_args(argv)
    out = sys.stdout
    failed = 0
    paths = (path for root in args.roots for path in walk_files(root))
    for path, digests, error in hash_files(paths, workers=args.workers, max_bytes=args.max_bytes):
        if digests is None:
            failed += 1
            out.write(f"ERROR {error} {path}\n")
        else:
            out.write(f"{digests.sha256} {digests.sha1} {digests.md5} {digests.size} {path}\n")
    try:
        out.flush()
    except BrokenPipeError:  # `| head`: the reader has seen enough
        pass
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
