"""Scheduled tasks: Task Scheduler XML (``C:\\Windows\\System32\\Tasks\\**``) and legacy ``.job``.

A scheduled task is the classic way to make a foothold survive a reboot, and the attack tooling
seen around the 3CX compromise (and the APT Simulator runs in the test data) creates them with
``schtasks``/``at``. Each action of a task becomes one ``tri_autorun`` row: what runs, how often,
who registered it and when.

Task XML follows the Task Scheduler schema (namespace
``http://schemas.microsoft.com/windows/2004/02/mit/task``): RegistrationInfo (Date, Author, URI),
Triggers, Principals, Actions (Exec: Command + Arguments; ComHandler: ClassId + Data). Files are
UTF-16LE with a BOM; UTF-8 is accepted too.

``.job`` files (``C:\\Windows\\Tasks``, written by ``at.exe`` and pre-Vista schedulers) follow
MS-TSCH 2.4 ".JOB File Format" (also libyal dtformats "Job file format"): a 68-byte fixed section
(product version, format version 1, job UUID, offsets, priority, status, flags, last run time as a
SYSTEMTIME), then length-prefixed UTF-16 strings: application name, parameters, working directory,
author, comment; then user data, reserved data and the triggers.

Times: RegistrationInfo/Date usually has no zone; it is the local time of the machine, which this
module does not know, so it is taken as UTC (a zone, when written, is honoured). The ``.job`` last
run time is a SYSTEMTIME, also local to the machine and also taken as UTC (plaso does the same).
"""

from __future__ import annotations

import re
import struct
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta
from pathlib import Path

from turncoat.evidence.base import IssueLog, ReadIssue, Row
from turncoat.triage.smallfile import read_text, read_whole
from turncoat.triage.text import decode_bom_text

TASK_NAMESPACE = "http://schemas.microsoft.com/windows/2004/02/mit/task"

_XML_DECLARATION = re.compile(r"^\s*<\?xml[^>]*\?>", re.IGNORECASE)
_TASK_ROOT = re.compile(r"^\ufeff?\s*(?:<\?xml[^>]*\?>\s*)?(?:<!--.*?-->\s*)*<Task[\s>]", re.DOTALL)
_TASK_DATE = re.compile(
    r"^\s*(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,9}))?\s*(Z|[+-]\d\d:?\d\d)?\s*$")

# --- Task XML ---------------------------------------------------------------------------------




def is_task_xml(head: bytes) -> bool:
    """True when the head is Task Scheduler XML: its root element is ``<Task``.

    Only the declaration and comments may come before it, so an MSBuild file's ``<UsingTask>`` or
    a ``<Task>`` nested in some other XML does not count.
    """
    text, _ = decode_bom_text(head[:8192])
    return _TASK_ROOT.match(text) is not None


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(element: ET.Element | None, name: str) -> ET.Element | None:
    if element is None:
        return None
    return next((c for c in element if _local(c.tag) == name), None)


def _text(element: ET.Element | None, *path: str) -> str | None:
    for name in path:
        element = _child(element, name)
    if element is None or element.text is None:
        return None
    return element.text.strip() or None


def task_date(text: str | None) -> datetime | None:
    """RegistrationInfo/Date as UTC; a zone-less time (the usual case) is taken as UTC."""
    if not text:
        return None
    match = _TASK_DATE.match(text)
    if match is None:
        return None
    year, month, day, hour, minute, second = (int(g) for g in match.groups()[:6])
    fraction = match.group(7) or ""
    try:
        when = datetime(year, month, day, hour, minute, second, int(fraction[:6].ljust(6, "0")),
                        tzinfo=UTC)
    except ValueError:
        return None
    zone = match.group(8)
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        when -= sign * timedelta(hours=int(digits[:2]), minutes=int(digits[2:]))
    return when


def _trigger_text(trigger: ET.Element) -> str:
    """A short description: "TimeTrigger every PT5M", "LogonTrigger", "CalendarTrigger daily"."""
    parts = [_local(trigger.tag)]
    interval = _text(trigger, "Repetition", "Interval")
    if interval:
        parts.append(f"every {interval}")
    for schedule, word in (("ScheduleByDay", "daily"), ("ScheduleByWeek", "weekly"),
                           ("ScheduleByMonth", "monthly"), ("ScheduleByMonthDayOfWeek", "monthly")):
        if _child(trigger, schedule) is not None:
            parts.append(word)
            break
    delay = _text(trigger, "Delay")
    if delay:
        parts.append(f"delay {delay}")
    if (_text(trigger, "Enabled") or "").lower() == "false":
        parts.append("(disabled)")
    return " ".join(parts)


def _action_command(action: ET.Element) -> str | None:
    """What an action runs: Exec command line, or the COM class a ComHandler loads."""
    kind = _local(action.tag)
    if kind == "Exec":
        command = _text(action, "Command")
        arguments = _text(action, "Arguments")
        return " ".join(part for part in (command, arguments) if part) or None
    if kind == "ComHandler":
        class_id = _text(action, "ClassId")
        data = _text(action, "Data")
        return " ".join(part for part in (f"ComHandler {class_id}" if class_id else "ComHandler", data) if part)
    return kind  # SendEmail / ShowMessage: deprecated, nothing is run


def read_task_xml(path: Path, issues: IssueLog, task_path: str) -> list[Row]:
    """Rows of ``tri_autorun`` for one Task Scheduler XML file: one per action.

    task_path is the task's name in the scheduler (``\\GameOver``, ``\\Microsoft\\Windows\\...``),
    which the caller derives from where the file sits under ``Tasks``; when empty, the file's
    RegistrationInfo/URI, then its file name, stands in. A task without actions still gives one
    row (command None), so its presence is recorded.
    """
    text = read_text(path, issues, "task file")
    if text is None:
        return []
    if "<!DOCTYPE" in text or "<!ENTITY" in text:  # never in a real task; refuse entity tricks
        issues.add(ReadIssue("task XML carries a DOCTYPE/ENTITY declaration; not parsed"))
        return []
    try:
        root = ET.fromstring(_XML_DECLARATION.sub("", text, count=1))
    except ET.ParseError as exc:
        issues.add(ReadIssue(f"task XML is malformed: {exc}", line=exc.position[0]))
        return []
    if _local(root.tag) != "Task":
        issues.add(ReadIssue(f"not a Task Scheduler XML file (root element <{_local(root.tag)}>)"))
        return []

    info = _child(root, "RegistrationInfo")
    date_text = _text(info, "Date")
    when = task_date(date_text)
    if date_text and when is None:
        issues.add(ReadIssue(f"task RegistrationInfo/Date not understood: {date_text!r}"))
    name = task_path or _text(info, "URI") or "\\" + path.name
    triggers = _child(root, "Triggers")
    trigger_text = "; ".join(_trigger_text(t) for t in triggers) if triggers is not None else ""
    principal = _child(_child(root, "Principals"), "Principal")
    user = _text(principal, "UserId") or _text(principal, "GroupId")
    actions_element = _child(root, "Actions")
    actions = list(actions_element) if actions_element is not None else []
    base: Row = {
        "ts": when, "autorun.kind": "task", "autorun.name": name, "autorun.command": None,
        "user.name": user, "registry.key": None, "task.author": _text(info, "Author"),
        "task.trigger": trigger_text or None,
    }
    if not actions:
        return [dict(base)]
    return [{**base, "autorun.command": _action_command(action)} for action in actions]


# --- legacy .job ------------------------------------------------------------------------------

_JOB_FIXED = 68
_JOB_PRODUCTS = {0x0400, 0x0500, 0x0501, 0x0600, 0x0601, 0x0602, 0x0603, 0x0A00}
_JOB_PRIORITIES = {0x20, 0x40, 0x80, 0x100}
_JOB_TRIGGER_TYPES = {
    0: "Once", 1: "Daily", 2: "Weekly", 3: "MonthlyDate", 4: "MonthlyDayOfWeek",
    5: "OnIdle", 6: "AtSystemStart", 7: "AtLogon",
}


def is_job(head: bytes) -> bool:
    """True when the fixed section of a ``.job`` file holds plausible values.

    A .job has no magic, so several fields must agree: a known product version, format version 1,
    the application name right after the fixed section (offset 0x46), a trigger offset beyond it,
    and a known priority class. The caller should also require the ``.job`` extension.
    """
    if len(head) < _JOB_FIXED:
        return False
    product, fmt = struct.unpack_from("<HH", head, 0)
    name_offset, trigger_offset = struct.unpack_from("<HH", head, 20)
    priority = struct.unpack_from("<I", head, 32)[0]
    return (product in _JOB_PRODUCTS and fmt == 1 and name_offset == 0x46
            and trigger_offset > name_offset and priority in _JOB_PRIORITIES)


def _systemtime(data: bytes, offset: int) -> datetime | None:
    """A SYSTEMTIME (year, month, weekday, day, hour, minute, second, ms), taken as UTC."""
    year, month, _weekday, day, hour, minute, second, millis = struct.unpack_from("<8H", data, offset)
    if year == 0:
        return None
    try:
        return datetime(year, month, day, hour, minute, second, millis * 1000, tzinfo=UTC)
    except ValueError:
        return None


def _job_string(data: bytes, offset: int) -> tuple[str | None, int]:
    """A length-prefixed UTF-16 string (count of characters, terminator included)."""
    if offset + 2 > len(data):
        raise ValueError(f"string size at offset {offset} is past the end of the file")
    count = struct.unpack_from("<H", data, offset)[0]
    end = offset + 2 + 2 * count
    if end > len(data):
        raise ValueError(f"string at offset {offset} ({count} characters) runs past the end of the file")
    text = data[offset + 2:end].decode("utf-16-le", errors="replace").rstrip("\x00")
    return text or None, end


def _job_triggers(data: bytes, offset: int) -> str | None:
    if offset + 2 > len(data):
        return None
    count = struct.unpack_from("<H", data, offset)[0]
    texts = []
    for index in range(count):
        start = offset + 2 + 48 * index
        if start + 48 > len(data):
            break
        (_size, _reserved, year, month, day, _ey, _em, _ed, hour, minute, _duration, interval,
         flags, kind) = struct.unpack_from("<HHHHHHHHHHIIII", data, start)
        text = f"{_JOB_TRIGGER_TYPES.get(kind, f'type {kind}')} at {hour:02d}:{minute:02d}"
        if year:
            text += f" from {year:04d}-{month:02d}-{day:02d}"
        if interval:
            text += f" every {interval} min"
        if flags & 0x4:
            text += " (disabled)"
        texts.append(text)
    return "; ".join(texts) or None


def read_job(path: Path, issues: IssueLog) -> list[Row]:
    """One ``tri_autorun`` row for a legacy ``.job`` file (kind "task", name the file name).

    autorun.command is the application name and its parameters; task.author the author field
    (plaso reports it as the user name); ts the last run time (None if it never ran). The account
    a job runs as is not in the file, so user.name stays None.
    """
    data = read_whole(path, issues, ".job file")
    if data is None:
        return []
    if not is_job(data):
        issues.add(ReadIssue("not a Task Scheduler .job file: its fixed header fields are implausible", offset=0))
        return []
    trigger_offset = struct.unpack_from("<H", data, 22)[0]
    last_run = _systemtime(data, 52)
    try:
        application, offset = _job_string(data, 0x46)
        parameters, offset = _job_string(data, offset)
        _working_dir, offset = _job_string(data, offset)
        author, offset = _job_string(data, offset)
    except ValueError as exc:
        issues.add(ReadIssue(f".job file truncated: {exc}"))
        return []
    command = " ".join(part for part in (application, parameters) if part) or None
    return [{
        "ts": last_run, "autorun.kind": "task", "autorun.name": path.name, "autorun.command": command,
        "user.name": None, "registry.key": None, "task.author": author,
        "task.trigger": _job_triggers(data, trigger_offset),
    }]
