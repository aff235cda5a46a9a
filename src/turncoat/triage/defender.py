"""Microsoft Defender's own record of what it caught: DetectionHistory files and the MPLog.

On a host hit by the 3CX chain, Defender may have flagged a stage (the sideloaded DLL, a dropped
payload, a command line) long before anyone looked. Its Event Log entries roll over quickly; the
DetectionHistory files (one per detection, ``ProgramData\\Microsoft\\Windows Defender\\Scans\\
History\\Service\\DetectionHistory\\<nn>\\<GUID>``) and the support log ``MPLog-*.log`` stay much
longer, and both survive in a KAPE/Velociraptor collection.

DetectionHistory layout (libyal dtformats, "Windows Defender scan DetectionHistory file format";
checked against plaso's test files and the DFIR Artifact Museum's): a flat run of values, each
``uint32 size, uint32 type, data, padding to 8 bytes``. Types: 0x15 UTF-16LE string, 0x0A
FILETIME, 0x1E GUID, 0x28 binary blob, 0x00/0x05/0x06 32-bit and 0x08 64-bit integers. The string
"Magic.Version:1.2" separates value sets: set 1 holds the threat id and detection GUID, set 2
starts with the threat name, and each further set is one *resource* (its kind, e.g. ``file``,
``containerfile``, ``webfile``, ``CmdLine``, ``regkeyvalue``, ``behavior``, then its location)
followed by a "threat tracking" blob of named properties. The last set ends with the detection's
user, parent process and times.

One row per affected resource (the thing an analyst would go and look at), event.action
"detected". Where a resource is not a file, its location keeps Defender's own ``kind:_location``
notation (as in Windows Defender event 1116's Path), so ``regkeyvalue:_HKLM\\...`` is never
mistaken for a file path. Defender's internal bookkeeping resources (``internalbehavior``,
``internalCmdLine``, and the pid tokens of ``behavior``/``process``) are not rows; a detection made
only of those still gives one row, with no path.
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from turncoat.evidence.base import IssueLog, ReadIssue, Row
from turncoat.triage.smallfile import read_text, read_whole
from turncoat.triage.text import decode_bom_text
from turncoat.triage.wintime import filetime_to_datetime

_T_STRING, _T_FILETIME, _T_GUID, _T_BLOB = 0x15, 0x0A, 0x1E, 0x28
_T_INT32 = (0x00, 0x05, 0x06)
_T_INT64 = 0x08
_KNOWN_TYPES = {_T_STRING, _T_FILETIME, _T_GUID, _T_BLOB, _T_INT64, *_T_INT32}
_MAGIC = "Magic.Version:1.2"
_MAGIC_UTF16 = _MAGIC.encode("utf-16-le")
_HEADER_BYTES = 0x30 + len(_MAGIC_UTF16)  # threat id, GUID and the first "Magic.Version" string

# Resource kinds (libyal's list plus what the museum's MPLog shows).
_FILE_KINDS = {"file", "containerfile", "webfile", "startup"}
_COMMAND_KINDS = {"cmdline"}
_INTERNAL_KINDS = {"internalbehavior", "internalcmdline", "behavior", "process"}
_ALL_KINDS = (
    "behavior", "clsid", "CmdLine", "containerfile", "contextmenu", "file", "internalbehavior",
    "internalCmdLine", "process", "regkey", "regkeyvalue", "runkey", "service", "shellextapproved",
    "startup", "taskscheduler", "uninstall", "webfile", "amsi", "wmi", "folder",
)

# Threat tracking property types (inside a 0x28 blob): key, then type, then value.
_TT_INT8, _TT_INT32, _TT_INT64, _TT_STRING, _TT_5BYTES = 0x05, 0x03, 0x04, 0x06, 0x07


@dataclass
class _Value:
    offset: int
    kind: int
    data: bytes


def is_detection_history(head: bytes) -> bool:
    """True when the first value sets look like a DetectionHistory file.

    Fixed opening: a 64-bit integer value (8, 8), a GUID value (16, 0x1E) at offset 0x10, then the
    "Magic.Version:1.2" string value at offset 0x28.
    """
    if len(head) < _HEADER_BYTES:
        return False
    first = struct.unpack_from("<II", head, 0)
    guid = struct.unpack_from("<II", head, 0x10)
    magic = struct.unpack_from("<II", head, 0x28)
    return (first == (8, _T_INT64) and guid == (16, _T_GUID) and magic[1] == _T_STRING
            and head[0x30:0x30 + len(_MAGIC_UTF16)] == _MAGIC_UTF16)




def _values(data: bytes, issues: IssueLog) -> list[_Value]:
    """Every top-level value; stops, with an issue, where the run no longer makes sense."""
    values: list[_Value] = []
    offset = 0
    while offset + 8 <= len(data):
        size, kind = struct.unpack_from("<II", data, offset)
        if kind not in _KNOWN_TYPES or offset + 8 + size > len(data):
            issues.add(ReadIssue(
                f"DetectionHistory value of type {kind:#x} and size {size} does not fit: "
                "file truncated or not a DetectionHistory record", offset=offset))
            break
        values.append(_Value(offset, kind, data[offset + 8:offset + 8 + size]))
        offset += 8 + ((size + 7) // 8) * 8
    return values


def _text(value: _Value) -> str:
    return value.data.decode("utf-16-le", errors="replace").split("\x00", 1)[0]


def _tracking(blob: bytes) -> dict[str, object]:
    """The named properties of a threat tracking blob (ThreatTrackingStartTime, ...Sha256, ...).

    Optional 20-byte header (version 1, header size 20, ...), then a uint32 values size, then
    values: uint32 key size in bytes, UTF-16 key, uint32 type, value. Unknown types end the walk.
    """
    out: dict[str, object] = {}
    offset = 0
    if len(blob) >= 20 and struct.unpack_from("<II", blob, 0) == (1, 20):
        offset = 20
    if offset + 4 > len(blob):
        return out
    offset += 4  # values data size
    while offset + 4 <= len(blob):
        key_size = struct.unpack_from("<I", blob, offset)[0]
        key_end = offset + 4 + key_size
        if key_size == 0 or key_size % 2 or key_end + 4 > len(blob):
            break
        key = blob[offset + 4:key_end].decode("utf-16-le", errors="replace").rstrip("\x00")
        kind = struct.unpack_from("<I", blob, key_end)[0]
        offset = key_end + 4
        if kind == _TT_INT8 and offset + 1 <= len(blob):
            out[key] = blob[offset]
            offset += 1
        elif kind == _TT_INT32 and offset + 4 <= len(blob):
            out[key] = struct.unpack_from("<I", blob, offset)[0]
            offset += 4
        elif kind == _TT_INT64 and offset + 8 <= len(blob):
            out[key] = struct.unpack_from("<Q", blob, offset)[0]
            offset += 8
        elif kind == _TT_5BYTES and offset + 5 <= len(blob):
            offset += 5
        elif kind == _TT_STRING and offset + 4 <= len(blob):
            size = struct.unpack_from("<I", blob, offset)[0]
            if offset + 4 + size > len(blob):
                break
            out[key] = blob[offset + 4:offset + 4 + size].decode("utf-16-le", errors="replace").rstrip("\x00")
            offset += 4 + size
        else:
            break
    return out


def resource_columns(kind: str, location: str) -> tuple[str | None, str | None] | None:
    """(file.path, process.command_line) for one detection resource, None for internal ones.

    Shared by DetectionHistory and MPLog so both name the same resource the same way.
    """
    lowered = kind.lower()
    location = location.strip()
    if lowered in _INTERNAL_KINDS:
        return None
    if lowered in _COMMAND_KINDS:
        return None, location
    if lowered in _FILE_KINDS:
        # webfile: "path|url|pid:..,ProcessStart:.." — the path is what sits on the disk
        return (location.split("|", 1)[0] if lowered == "webfile" else location), None
    return f"{kind}:_{location}", None


def read_detection_history(path: Path, issues: IssueLog) -> list[Row]:
    """Rows of ``tri_defender`` for one DetectionHistory file (one per affected resource).

    ts is the resource's own ThreatTrackingStartTime property (plaso reports one of these as the
    "recorded time": the last resource's); a resource without one gets the detection's earliest
    start time, or else the earliest of the record's closing times (Defender's initial detection
    time). All are FILETIMEs, so UTC.
    """
    data = read_whole(path, issues, "DetectionHistory file")
    if data is None:
        return []
    if not is_detection_history(data):
        if len(data) < _HEADER_BYTES and data[:8] == struct.pack("<II", 8, _T_INT64):
            issues.add(ReadIssue(f"DetectionHistory file truncated: {len(data)} bytes, shorter than its opening values"))
        else:
            issues.add(ReadIssue("not a Defender DetectionHistory file: its fixed opening values are missing", offset=0))
        return []
    values = _values(data, issues)
    sets: list[list[_Value]] = [[]]
    for value in values:
        if value.kind == _T_STRING and _text(value) == _MAGIC:
            sets.append([])
        else:
            sets[-1].append(value)
    if len(sets) < 2 or not any(v.kind == _T_STRING for v in sets[1]):
        issues.add(ReadIssue("DetectionHistory record has no threat name"))
        return []
    threat = next(_text(v) for v in sets[1] if v.kind == _T_STRING)

    resources: list[tuple[str, str, datetime | None]] = []
    for value_set in sets[2:]:
        strings = [_text(v) for v in value_set if v.kind == _T_STRING]
        if len(strings) >= 2:
            resources.append((strings[0], strings[1], _start_time(value_set)))
    closing = [
        t for v in sets[-1] if v.kind == _T_FILETIME and len(v.data) == 8
        if (t := filetime_to_datetime(struct.unpack("<Q", v.data)[0])) is not None
    ]
    starts = [start for _, _, start in resources if start is not None]
    detected = min(starts) if starts else (min(closing) if closing else None)
    if detected is None:
        issues.add(ReadIssue("DetectionHistory record carries no detection time"))
    if not resources:
        issues.add(ReadIssue(f"DetectionHistory record for {threat} lists no resource"))

    rows: list[Row] = []
    seen: set[tuple[str | None, str | None]] = set()
    for kind, location, start in resources:
        columns = resource_columns(kind, location)
        if columns is None or columns in seen:
            continue
        seen.add(columns)
        rows.append(_row(start or detected, threat, columns, "detected"))
    if not rows:  # a behaviour detection made only of internal resources is still a detection
        rows.append(_row(detected, threat, (None, None), "detected"))
    return rows


def _start_time(value_set: list[_Value]) -> datetime | None:
    """ThreatTrackingStartTime of one resource: when Defender started tracking it (FILETIME)."""
    for value in value_set:
        if value.kind == _T_BLOB:
            ticks = _tracking(value.data).get("ThreatTrackingStartTime")
            if isinstance(ticks, int) and (when := filetime_to_datetime(ticks)) is not None:
                return when
    return None


def _row(when: datetime | None, threat: str, columns: tuple[str | None, str | None], action: str) -> Row:
    return {
        "ts": when, "threat.name": threat, "file.path": columns[0],
        "process.command_line": columns[1], "event.action": action,
    }


# --- MPLog -------------------------------------------------------------------------------------

_MPLOG_STAMP = r"(?P<ts>\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d{1,7})?)(?P<zone>Z|[+-]\d\d:?\d\d)?"
_MPLOG_LINE = re.compile(
    _MPLOG_STAMP + r"\s+(?P<event>DETECTIONEVENT|DETECTION_CLEANEVENT)\s+(?P<rest>.*)$")
_MPLOG_HEAD = re.compile(r"^\s*" + _MPLOG_STAMP + r"\s", re.MULTILINE)
_SPLIT_RESOURCES = re.compile(r";(?=(?:" + "|".join(_ALL_KINDS) + r"):)", re.IGNORECASE)




def is_mplog(head: bytes) -> bool:
    """True for a Defender support log: its banner or an ISO-time-stamped line near the top.

    A BOM-only file (an MPDetection log with nothing in it) is not recognised: there is nothing
    to recognise, and nothing to read either.
    """
    text, _ = decode_bom_text(head[:64 * 1024])
    if "Service Log" in text and "Defender" in text:
        return True
    return _MPLOG_HEAD.search(text) is not None


def _mplog_time(stamp: str, zone: str | None) -> datetime | None:
    text = stamp
    if "." in text:
        whole, fraction = text.split(".", 1)
        text = f"{whole}.{fraction[:6].ljust(6, '0')}"
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        offset = timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
        return (when - sign * offset).replace(tzinfo=UTC)
    return when.replace(tzinfo=UTC)


def read_mplog(path: Path, issues: IssueLog) -> list[Row]:
    """Rows of ``tri_defender`` from an MPLog (or MPDetection) support log.

    Lines used: ``DETECTIONEVENT <source> <threat> <kind>:<location>;...`` (event.action
    "detected") and ``DETECTION_CLEANEVENT <source> MP_THREAT_ACTION_<X> <hr> <threat> ...``
    (event.action "mplog-<x>", e.g. "mplog-quarantine", "mplog-remove"): one row per resource.
    ``DETECTION_ADD``/``DETECTION_MERGE`` lines restate a DETECTIONEVENT and are not repeated.

    Times: MPLog writes ISO 8601 with a trailing "Z" (UTC), e.g. ``2022-03-10T19:49:22.667Z``,
    while its banner ("Started On 03-10-2022 11:33:52") is local time and is not used. A line
    time without a zone is taken as UTC.
    """
    text = read_text(path, issues, "MPLog file")
    if text is None:
        return []
    rows: list[Row] = []
    for number, line in enumerate(text.splitlines(), start=1):
        match = _MPLOG_LINE.match(line.strip())
        if match is None:
            continue
        parsed = _mplog_detection(match.group("event"), match.group("rest"))
        if parsed is None:
            issues.add(ReadIssue("MPLog detection line not understood", line=number))
            continue
        action, threat, resources = parsed
        when = _mplog_time(match.group("ts"), match.group("zone"))
        seen: set[tuple[str | None, str | None]] = set()
        for kind, location in resources:
            columns = resource_columns(kind, location)
            if columns is None or columns in seen:
                continue
            seen.add(columns)
            rows.append(_row(when, threat, columns, action))
        if not seen:
            rows.append(_row(when, threat, (None, None), action))
    return rows


def _mplog_detection(event: str, rest: str) -> tuple[str, str, list[tuple[str, str]]] | None:
    """(event.action, threat name, [(kind, location)]) of one detection line."""
    parts = rest.split(" ", 4 if event == "DETECTION_CLEANEVENT" else 2)
    if event == "DETECTION_CLEANEVENT":
        if len(parts) < 4 or not parts[1].startswith("MP_THREAT_ACTION_"):
            return None
        action = "mplog-" + parts[1].removeprefix("MP_THREAT_ACTION_").lower()
        threat, resource_text = parts[3], parts[4] if len(parts) > 4 else ""
    else:
        if len(parts) < 2:
            return None
        action = "detected"
        threat, resource_text = parts[1], parts[2] if len(parts) > 2 else ""
    resources = []
    for item in _SPLIT_RESOURCES.split(resource_text.strip().rstrip(";")):
        kind, sep, location = item.partition(":")
        if sep and kind and " " not in kind:
            resources.append((kind, location))
    return action, threat, resources
