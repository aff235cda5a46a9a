"""Windows Prefetch (`C:\\Windows\\Prefetch\\*.pf`): which programs ran, how often, and when.

Prefetch is often the only proof that a dropped tool ran (the museum's APT Simulator host has `P.EXE`
and `NBTSCAN.EXE` in Prefetch but not in Amcache), so every readable run time becomes one row of
`tri_execution`. Decoding is left to libscca (`pyscca`): it knows format versions 17, 23, 26, 30
and 31 and decompresses Windows 10+ MAM (Xpress-Huffman) files itself, so no Windows API is needed
and the reader works the same on Linux, macOS and Windows.

Evidence is read into memory and handed to libscca as a file object: a Prefetch file is small, and
this way a path with non-ASCII characters never reaches the C library. Problems become `ReadIssue`s;
nothing here raises on bad evidence.
"""

from __future__ import annotations

import io
from datetime import datetime
from pathlib import Path
from typing import Any

import pyscca

from turncoat.evidence.base import IssueLog, ReadIssue, Row
from turncoat.triage.smallfile import read_whole
from turncoat.triage.wintime import filetime_to_datetime

SCCA_SIGNATURE = b"SCCA"
# "MAM" + compression format 4 (Xpress-Huffman); the high bit of the 4th byte marks a CRC32 field.
MAM_SIGNATURES = (b"MAM\x04", b"MAM\x84")
KNOWN_VERSIONS = frozenset({17, 23, 26, 30, 31})
# Real files are a few hundred KiB at most (DEVENV.EXE with 403 names is 372 KiB decompressed).
MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_RUN_TIMES = 8
# The header keeps 29 UTF-16 characters of the executable name (60 bytes with the terminator).
NAME_FIELD_CHARS = 29



def is_prefetch(head: bytes) -> bool:
    """True if `head` (the first bytes of a file) look like Prefetch: uncompressed or MAM."""
    return head[4:8] == SCCA_SIGNATURE or head[:4] in MAM_SIGNATURES




def read_prefetch(path: Path, issues: IssueLog) -> list[Row]:
    """Rows of `tri_execution` for one Prefetch file: one per recorded run time, newest first.

    A file with a run count but no usable run time still gives one row (ts None), because "this ran"
    matters even when "when" is lost.
    """
    data = read_whole(path, issues, "file", max_bytes=MAX_FILE_BYTES, empty_ok=True)
    if data is None or not _looks_valid(data, issues):
        return []
    scca = _open(data, issues)
    if scca is None:
        return []
    try:
        return _rows(scca, issues)
    finally:
        scca.close()


def _looks_valid(data: bytes, issues: IssueLog) -> bool:
    """Check the first bytes ourselves: libscca's own errors do not say "this is not Prefetch"."""
    if not data:
        issues.add(ReadIssue("empty file (0 bytes): not a Prefetch file"))
        return False
    if len(data) < 8 or not is_prefetch(data[:8]):
        issues.add(ReadIssue(
            "not a Prefetch file: no 'SCCA' signature at offset 4 and no 'MAM' compressed header "
            f"(first bytes {data[:8].hex(' ')})", offset=0))
        return False
    if data[4:8] == SCCA_SIGNATURE:
        version = int.from_bytes(data[0:4], "little")
        if version not in KNOWN_VERSIONS:
            issues.add(ReadIssue(f"unsupported Prefetch format version {version}", offset=0))
            return False
    elif len(data) < 12:
        issues.add(ReadIssue("compressed (MAM) Prefetch file is truncated: no data after the header",
                             offset=len(data)))
        return False
    return True


def _open(data: bytes, issues: IssueLog) -> pyscca.file | None:
    compressed = data[:4] in MAM_SIGNATURES
    scca = pyscca.file()
    try:
        scca.open_file_object(io.BytesIO(data))
    except (OSError, ValueError, MemoryError, TypeError) as exc:
        kind = ("compressed (MAM, Windows 10+) Prefetch file could not be decompressed or parsed"
                if compressed else
                f"Prefetch file (format version {int.from_bytes(data[0:4], 'little')}) is corrupt")
        issues.add(ReadIssue(f"{kind}: {_libscca_reason(str(exc))}", offset=0))
        return None
    return scca


def _libscca_reason(message: str) -> str:
    """The innermost libscca complaint, e.g. 'invalid data size value out of bounds'.

    libscca chains its errors outermost-last ("pyscca_file_open: unable to open file. libscca_x: ...
    libscca_y: ..."); the first `libscca_` clause is the one that says what was wrong.
    """
    for clause in message.split(". "):
        name, sep, reason = clause.partition(": ")
        if sep and name.startswith("libscca_"):
            return reason.rstrip(".")
    return message.strip() or "unknown error"


def _rows(scca: pyscca.file, issues: IssueLog) -> list[Row]:
    version = _field(scca, "format_version", issues)
    name = _field(scca, "executable_filename", issues) or None
    prefetch_hash = _field(scca, "prefetch_hash", issues)
    run_count = _field(scca, "run_count", issues)
    filenames = _filenames(scca, issues)
    common: Row = {
        "process.name": name,
        "process.executable": _executable_path(name, filenames),
        "prefetch.hash": f"{prefetch_hash:08X}" if isinstance(prefetch_hash, int) else None,
        "prefetch.version": version,
        "prefetch.run_count": run_count,
        "prefetch.loaded": "|".join(filenames) or None,
        "prefetch.volume_serial": _first_volume_serial(scca, issues),
        # The file's own creation time is file-system metadata, not in the content; the caller
        # may fill it from the collection when times were preserved.
        "prefetch.file_created": None,
        "event.action": "run",
    }
    times = _run_times(scca, issues)
    if not times and run_count:
        issues.add(ReadIssue(f"run count is {run_count} but no run time is recorded"))
        return [{**common, "ts": None, "prefetch.run_index": None}]
    return [{**common, "ts": ts, "prefetch.run_index": index} for index, ts in times]


def _field(scca: pyscca.file, attribute: str, issues: IssueLog) -> Any:
    """One libscca property, or None (and an issue) when libscca cannot read it."""
    try:
        return getattr(scca, attribute)
    except (OSError, ValueError, MemoryError) as exc:
        issues.add(ReadIssue(f"cannot read {attribute.replace('_', ' ')}: {_libscca_reason(str(exc))}"))
        return None


def _filenames(scca: pyscca.file, issues: IssueLog) -> list[str]:
    count = _field(scca, "number_of_filenames", issues) or 0
    names: list[str] = []
    for index in range(count):
        try:
            names.append(scca.get_filename(index))
        except (OSError, ValueError, MemoryError) as exc:
            issues.add(ReadIssue(f"cannot read file name {index}: {_libscca_reason(str(exc))}",
                                 record_id=index))
    return names


def _executable_path(name: str | None, filenames: list[str]) -> str | None:
    """The loaded file that is the program itself: its basename equals the executable name.

    Names longer than 29 characters are cut in the header (plaso's AM_DELTA_PATCH_1.443.990.0.EX),
    so a full-length name also matches a loaded file whose basename starts with it.
    """
    if not name:
        return None
    wanted = name.upper()
    basenames = [(f.rsplit("\\", 1)[-1].upper(), f) for f in filenames]
    for base, full in basenames:
        if base == wanted:
            return full
    if len(name) >= NAME_FIELD_CHARS:
        starts = [full for base, full in basenames if base.startswith(wanted)]
        if len(starts) == 1:
            return starts[0]
    return None


def _first_volume_serial(scca: pyscca.file, issues: IssueLog) -> str | None:
    try:
        if not scca.number_of_volumes:
            return None
        return f"{scca.get_volume_information(0).serial_number:08X}"
    except (OSError, ValueError, MemoryError) as exc:
        issues.add(ReadIssue(f"cannot read volume information: {_libscca_reason(str(exc))}"))
        return None


def _run_times(scca: pyscca.file, issues: IssueLog) -> list[tuple[int, datetime]]:
    """(index, time) of every set run time; index 0 is the most recent run, as Windows stores it."""
    times: list[tuple[int, datetime]] = []
    for index in range(MAX_RUN_TIMES):
        try:
            value = scca.get_last_run_time_as_integer(index)
        except (OSError, ValueError, IndexError):
            break  # v17 and v23 keep a single run time; libscca reports the rest as out of bounds
        if value == 0:
            continue
        ts = filetime_to_datetime(value)
        if ts is None:
            issues.add(ReadIssue(f"run time {index} is not a valid FILETIME ({value:#x})",
                                 record_id=index))
            continue
        times.append((index, ts))
    return times
