"""Registry hives of a triage collection: what is installed, what starts by itself, what the machine
is called, and which files Amcache saw.

A 3CX triage needs a handful of facts from the hives, not a registry browser:

* SOFTWARE and every user's NTUSER.DAT: Uninstall entries. The 3CX Desktop App (Electron, Squirrel
  installer) installs *per user*, so its Uninstall key sits in the user's NTUSER.DAT under
  ``Software\\Microsoft\\Windows\\CurrentVersion\\Uninstall``; the MSI-era client sits in SOFTWARE.
* Run/RunOnce keys, services, IFEO debuggers, scheduled-task names: persistence a payload may add.
* SYSTEM: the computer name, domain and time zone, and SOFTWARE's MachineGuid, so a collection can be
  tied to the host that the event logs and network logs call by its name.
* Amcache.hve: files and programs the compatibility inventory recorded. Presence, not execution: a
  file missing from Amcache may still have run, so nothing here clears a host.

Hives come from live machines, so they are usually *dirty*: the primary file lags behind its
transaction logs (``.LOG1``/``.LOG2``). When the logs were collected we replay them with regipy into
a copy under the caller's scratch folder (never touching the evidence); when they were not, we read
the primary as it is and say that recent changes may be missing.

Problems in the evidence (zero-length or truncated files, broken cells, unreadable logs) are
reported to the caller's IssueLog; ``read_hive`` returns whatever it could read and never raises for
them. The hive kind is decided from the keys inside the hive, never from the file name, because
collections rename files (``ntuser (2).dat``, URL-encoded upload paths, ``*.hve.bak``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from regipy.recovery import apply_transaction_logs
from regipy.registry import NKRecord, RegistryHive

from turncoat.evidence.base import IssueLog, ReadIssue, Row
from turncoat.store.schema import TRIAGE_TABLES
from turncoat.triage.wintime import filetime_to_datetime

REGF_MAGIC = b"regf"
BASE_BLOCK_SIZE = 4096
HBIN_HEADER_SIZE = 32

PACKAGE, AUTORUN, AMCACHE = "tri_package", "tri_autorun", "tri_amcache"

_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_UNINSTALL = r"Microsoft\Windows\CurrentVersion\Uninstall"
_RUN_KEYS = (  # (path under SOFTWARE or HKCU\Software, autorun.kind)
    (r"Microsoft\Windows\CurrentVersion\Run", "run"),
    (r"Microsoft\Windows\CurrentVersion\RunOnce", "runonce"),
    (r"Microsoft\Windows\CurrentVersion\Policies\Explorer\Run", "run"),
)
_IFEO = r"Microsoft\Windows NT\CurrentVersion\Image File Execution Options"
_TASK_TREE = r"Microsoft\Windows NT\CurrentVersion\Schedule\TaskCache\Tree"
_TASKS = r"Microsoft\Windows NT\CurrentVersion\Schedule\TaskCache\Tasks"

# Amcache of Windows 8 / early 10 (Root\File\{volume}\{id}, Root\Programs\{id}) names its values by
# number. Meanings as published by the Amcache research (Yogesh Khatri, "Amcache.hve in Windows 8";
# regipy's and plaso's amcache parsers use the same table) and checked against the plaso test hive:
_OLD_FILE = {"product": "0", "company": "1", "version": "5", "size": "6", "link_date": "f",
             "path": "15", "program_id": "100", "sha1": "101"}
_OLD_PROGRAM = {"name": "0", "version": "1", "publisher": "2"}


@dataclass
class HiveFacts:
    """What one hive says. ``rows`` is keyed by triage table; ``aliases`` are (alias, kind) pairs
    naming the machine ("name", "machine_guid", "fqdn"); ``facts`` are loose strings for the host
    summary (computer_name, machine_guid, timezone, product_name, build, …)."""

    kind: str = "unknown"
    rows: dict[str, list[Row]] = field(
        default_factory=lambda: {PACKAGE: [], AUTORUN: [], AMCACHE: []})
    aliases: list[tuple[str, str]] = field(default_factory=list)
    facts: dict[str, str] = field(default_factory=dict)
    dirty: bool = False
    notes: list[str] = field(default_factory=list)


def is_hive(head: bytes) -> bool:
    """Does a file starting with ``head`` look like a registry hive (primary file or log)?"""
    return head[:4] == REGF_MAGIC


# --- small value helpers -------------------------------------------------------------------------




def _text(value: Any) -> str | None:
    """Registry data as text; None for nothing. Strings are cut at the first NUL, because Windows
    leaves garbage after the terminator in some values (TimeZoneKeyName)."""
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-16-le", errors="replace")
    elif isinstance(value, list):
        value = ";".join(str(v) for v in value)
    elif not isinstance(value, str):
        value = str(value)
    value = value.split("\x00", 1)[0].strip()
    return value or None


def _int(value: Any) -> int | None:
    """An integer from a DWORD/QWORD, or from text such as Amcache's ``Size = "0x7fac0"``."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    text = _text(value)
    if text is None:
        return None
    try:
        return int(text, 16) if text.lower().startswith("0x") else int(text)
    except ValueError:
        return None


def _decode(kind: int, raw: bytes) -> Any:
    """Value data by registry type: text, integer, list of text, or the bytes as they are."""
    if kind in (1, 2, 6):                      # SZ, EXPAND_SZ, LINK
        return raw.decode("utf-16-le", errors="replace")
    if kind == 4 and len(raw) == 4:            # DWORD
        return struct.unpack("<I", raw)[0]
    if kind == 5 and len(raw) == 4:            # DWORD_BIG_ENDIAN
        return struct.unpack(">I", raw)[0]
    if kind == 11 and len(raw) == 8:           # QWORD
        return struct.unpack("<Q", raw)[0]
    if kind == 7:                              # MULTI_SZ
        return [s for s in raw.decode("utf-16-le", errors="replace").split("\x00") if s]
    return raw


def _row(table: str, ts: datetime | None, columns: dict[str, Any]) -> Row:
    """A row with every column of ``table`` (None where unknown) plus ``ts``. An unknown column
    name is a bug in this module, not in the evidence, so it raises."""
    known = TRIAGE_TABLES[table]
    unknown = set(columns) - set(known)
    if unknown:
        raise KeyError(f"{table} has no column(s) {sorted(unknown)}")
    row: Row = {name: columns.get(name) for name in known}
    row["ts"] = ts
    return row


# --- walking the hive ----------------------------------------------------------------------------


class _Hive:
    """Case-insensitive path lookups over regipy's key records, and a value reader of our own.

    regipy finds keys well, but its value reader copies the rest of the file for every value whose
    data is stored inline in the value cell (DWORDs, short strings): reading a 15 MB SYSTEM hive's
    services took 14 s that way and 0.3 s with the direct reader below (same regf layout as the
    writer in turncoat.simulate.hive_writer: vk cell, data inline or in a data cell, or in a
    big-data ``db`` cell of 16,344-byte segments)."""

    def __init__(self, hive: RegistryHive, issues: IssueLog, data: bytes = b"") -> None:
        self.hive = hive
        self.issues = issues
        self.data = data   # the whole file, as regipy also holds it

    def key(self, path: str, start: NKRecord | None = None) -> NKRecord | None:
        node = start if start is not None else self.hive.root
        for part in path.split("\\"):
            if not part:
                continue
            node = node.get_subkey(part, raise_on_missing=False)
            if node is None:
                return None
        return node

    def subkeys(self, node: NKRecord | None) -> Iterator[NKRecord]:
        if node is None or not node.subkey_count:
            return
        yield from node.iter_subkeys()

    def value_pairs(self, node: NKRecord | None) -> list[tuple[str, Any]]:
        """(name, data) of each value of ``node``; "(default)" names the unnamed value. A broken
        value is reported and skipped, the others are kept."""
        if node is None or not node.values_count:
            return []
        pairs: list[tuple[str, Any]] = []
        cell_at = BASE_BLOCK_SIZE + node.header.values_list_offset
        list_at = cell_at + 4
        try:
            (cell_size,) = struct.unpack_from("<i", self.data, cell_at)
        except struct.error:
            self.issues.add(ReadIssue(f"key {node.name!r}: value list outside the file",
                                      offset=cell_at))
            return pairs
        # A corrupt count must not send us through billions of slots: the list cell bounds it.
        count = min(node.values_count, max(0, (abs(cell_size) - 4) // 4))
        if count < node.values_count:
            self.issues.add(ReadIssue(f"key {node.name!r}: claims {node.values_count} values, its "
                                      f"list holds {count}", offset=cell_at))
        for index in range(count):
            try:
                (vk_offset,) = struct.unpack_from("<I", self.data, list_at + 4 * index)
                pairs.append(self._value(BASE_BLOCK_SIZE + vk_offset + 4))
            except (struct.error, ValueError) as exc:
                self.issues.add(ReadIssue(
                    f"key {node.name!r}: value {index} unreadable ({exc})", offset=list_at))
        return pairs

    def _value(self, at: int) -> tuple[str, Any]:
        sig, name_len, size, where, kind, flags = struct.unpack_from("<2sHIIIH", self.data, at)
        if sig != b"vk":
            raise ValueError(f"no vk signature at offset {at}")
        raw_name = self.data[at + 20: at + 20 + name_len]
        name = (raw_name.decode("latin-1") if flags & 1 else raw_name.decode("utf-16-le", "replace")) \
            if name_len else "(default)"
        length = size & 0x7FFFFFFF
        if size & 0x80000000:                       # data inline in the offset field
            raw = struct.pack("<I", where)[:min(length, 4)]
        else:
            cell = BASE_BLOCK_SIZE + where + 4
            if length > 16344 and self.data[cell:cell + 2] == b"db":
                raw = self._big_data(cell, length)
            else:
                raw = self.data[cell:cell + length]
            if len(raw) < length:
                raise ValueError(f"value {name!r}: data runs past the end of the file")
        return name, _decode(kind, raw)

    def _big_data(self, cell: int, length: int) -> bytes:
        count, list_offset = struct.unpack_from("<HI", self.data, cell + 2)
        segments_at = BASE_BLOCK_SIZE + list_offset + 4
        out = bytearray()
        for index in range(count):
            (segment,) = struct.unpack_from("<I", self.data, segments_at + 4 * index)
            start = BASE_BLOCK_SIZE + segment + 4
            out += self.data[start:start + min(16344, length - len(out))]
            if len(out) >= length:
                break
        return bytes(out)

    def values(self, node: NKRecord | None) -> dict[str, Any]:
        """Values by case-folded name."""
        return {name.casefold(): data for name, data in self.value_pairs(node)}

    @staticmethod
    def when(node: NKRecord) -> datetime | None:
        return filetime_to_datetime(node.header.last_modified)

    def guarded(self, what: str, work: Callable[[], None]) -> None:
        """Run one part of the extraction; a broken hive ends that part with an issue, not the
        whole read. Any exception counts: regipy and construct raise many kinds on hostile input."""
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - evidence problems are reported, never raised
            self.issues.add(ReadIssue(f"{what}: stopped reading ({type(exc).__name__}: {exc})"))


# --- base block checks and transaction-log replay ------------------------------------------------


def _base_block_checks(path: Path, facts: HiveFacts, issues: IssueLog) -> tuple[int, int] | None:
    """Check the base block; return (primary, secondary) sequence numbers, or None if the file is
    not a hive at all (then nothing more can be read)."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            base = handle.read(BASE_BLOCK_SIZE)
    except OSError as exc:
        issues.add(ReadIssue(f"cannot read the hive: {exc}"))
        return None
    if size == 0:
        issues.add(ReadIssue("zero-length file: no registry hive to read", offset=0))
        return None
    if not is_hive(base):
        issues.add(ReadIssue(f"not a registry hive: no 'regf' signature (starts {base[:4]!r})",
                             offset=0))
        return None
    if len(base) < 512:
        issues.add(ReadIssue(f"truncated hive: {size} bytes, shorter than the 512-byte header",
                             offset=len(base)))
        return None
    primary, secondary, _ = struct.unpack_from("<IIQ", base, 4)
    bins_size = struct.unpack_from("<I", base, 40)[0]
    stored = struct.unpack_from("<I", base, 508)[0]
    if base_block_checksum(base) != stored:
        facts.notes.append("base block checksum mismatch: header fields may be wrong")
        issues.add(ReadIssue("base block checksum does not match its contents", offset=508))
    if size < BASE_BLOCK_SIZE + HBIN_HEADER_SIZE:
        issues.add(ReadIssue(f"truncated hive: {size} bytes, no hive bin after the base block",
                             offset=size))
        return None
    if size < BASE_BLOCK_SIZE + bins_size:
        issues.add(ReadIssue(
            f"truncated hive: the header declares {bins_size} bytes of hive bins, the file holds "
            f"{size - BASE_BLOCK_SIZE}; keys stored past the end are missing", offset=size))
        facts.notes.append("truncated hive: read what is present")
    return primary, secondary


def base_block_checksum(base: bytes) -> int:
    """XOR-32 of the base block's first 508 bytes, 0 and 0xFFFFFFFF mapped as the format requires."""
    value = 0
    for (word,) in struct.iter_unpack("<I", base[:508]):
        value ^= word
    if value == 0xFFFFFFFF:
        return 0xFFFFFFFE
    return value or 1


def transaction_logs(path: Path) -> dict[str, Path]:
    """The non-empty ``.LOG1``/``.LOG2``/``.LOG`` files beside ``path``, matched in any case
    (collections lower-case or upper-case names at will), keyed "log1"/"log2"/"log"."""
    wanted = {f"{path.name}.{suffix}".casefold(): suffix for suffix in ("log1", "log2", "log")}
    found: dict[str, Path] = {}
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        return found
    for sibling in siblings:
        suffix = wanted.get(sibling.name.casefold())
        try:
            if suffix and sibling.is_file() and sibling.stat().st_size > 0:
                found[suffix] = sibling
        except OSError:
            continue
    return found


def _hvle_entries(data: bytes) -> list[tuple[int, int, int]]:
    """(sequence number, start, end) of each HvLE entry of a Windows 8.1+ log; empty for the old
    DIRT format. Entries follow the log's 512-byte base block."""
    entries: list[tuple[int, int, int]] = []
    offset = 512
    while offset + 16 <= len(data) and data[offset:offset + 4] == b"HvLE":
        size, _flags, seq = struct.unpack_from("<III", data, offset + 4)
        if size < 40 or offset + size > len(data):
            break
        entries.append((seq, offset, offset + size))
        offset += size
    return entries


def _usable_logs(logs: dict[str, Path], secondary_seq: int, scratch: Path,
                 facts: HiveFacts) -> list[Path]:
    """The logs to replay, oldest first, each cut after its run of consecutive sequence numbers.

    Windows reuses log files, so a log often ends with entries left over from an earlier cycle
    (the museum's Windows 10 Amcache.hve.LOG2 holds 38, 39, then a stale 27), and either file may
    hold the older entries. Replaying a leftover would put old pages back over newer ones, so we
    keep only the chain of consecutive entries, give it to regipy (which applies every entry it
    is handed), and drop a log whose chain ends before the hive's own sequence number."""
    chains: list[tuple[int, int, Path]] = []   # (first seq, last seq, file to replay)
    for name in ("log1", "log2", "log"):
        log = logs.get(name)
        if log is None:
            continue
        try:
            data = log.read_bytes()
        except OSError as exc:
            facts.notes.append(f"{log.name}: unreadable ({exc}), not replayed")
            continue
        entries = _hvle_entries(data)
        if not entries:          # DIRT (Windows 8 and older) or not a log: regipy decides
            chains.append((-1, -1, log))
            continue
        run = [entries[0]]
        for entry in entries[1:]:
            if entry[0] != run[-1][0] + 1:
                break
            run.append(entry)
        first, last = run[0][0], run[-1][0]
        if last < secondary_seq:
            facts.notes.append(f"{log.name}: stale transaction log (entries {first}-{last} predate "
                               f"the hive's sequence {secondary_seq}), not replayed")
            continue
        target = scratch / f"{log.name}.chain"
        target.write_bytes(data[:run[-1][2]])
        chains.append((first, last, target))
    chains.sort(key=lambda chain: chain[0])
    ordered: list[Path] = []
    previous_last: int | None = None
    for first, last, log in chains:
        if previous_last is not None and first >= 0 and first != previous_last + 1:
            facts.notes.append(f"{log.name.removesuffix('.chain')}: entries {first}-{last} do not "
                               f"follow entry {previous_last}, not replayed")
            continue
        ordered.append(log)
        previous_last = last if last >= 0 else previous_last
    return ordered


def _replay(path: Path, secondary_seq: int, scratch: Path, facts: HiveFacts,
            issues: IssueLog) -> Path:
    """Replay the transaction logs beside a dirty hive into a copy under ``scratch``; return the
    file to read (the copy, or the evidence itself when there is nothing usable to replay)."""
    logs = transaction_logs(path)
    if not logs:
        facts.notes.append("dirty hive and no transaction logs: read as is, recent changes may be "
                           "missing")
        return path
    work = scratch / f"{path.name}.replay"
    n = 1
    while work.exists():
        n += 1
        work = scratch / f"{path.name}.replay{n}"
    work.mkdir(parents=True)
    usable = _usable_logs(logs, secondary_seq, work, facts)
    if not usable:
        facts.notes.append("dirty hive and no usable transaction log: read as is, recent changes "
                           "may be missing")
        return path
    target = work / path.name
    try:
        # regipy applies `secondary_log_path` first, then `primary_log_path`: older chain first.
        first, last = (usable[0], usable[1]) if len(usable) > 1 else (None, usable[0])
        _, pages = apply_transaction_logs(str(path), str(last),
                                          secondary_log_path=str(first) if first else None,
                                          restored_hive_path=str(target))
    except Exception as exc:  # noqa: BLE001 - a corrupt log is an evidence problem
        issues.add(ReadIssue(f"transaction log replay failed ({type(exc).__name__}: {exc}); "
                             "read the primary file as is"))
        facts.notes.append("dirty hive, transaction logs unreadable: read as is, recent changes "
                           "may be missing")
        return path
    names = "/".join("." + log.name.removesuffix(".chain").rsplit(".", 1)[-1].upper()
                     for log in usable)
    facts.notes.append(f"dirty hive: {pages} log entries replayed from {names}")
    facts.facts["replayed_log_entries"] = str(pages)
    return target


# --- kind detection ------------------------------------------------------------------------------

_NTUSER_MARKERS = {"control panel", "environment", "appevents", "console", "keyboard layout",
                   "printers", "eudc"}
_SOFTWARE_MARKERS = {"classes", "clients", "policies", "wow6432node", "registeredapplications",
                     "odbc"}


def detect_kind(hive: RegistryHive) -> str:
    """Which hive this is, from the keys under its root (file names lie in collections)."""
    walker = _Hive(hive, IssueLog())
    names = {sk.name.casefold() for sk in walker.subkeys(hive.root)}
    if "root" in names:
        inner = {sk.name.casefold() for sk in walker.subkeys(walker.key("Root"))}
        if inner & {"inventoryapplicationfile", "inventoryapplication", "file", "programs"}:
            return "amcache"
    if "select" in names and any(n.startswith("controlset") for n in names):
        return "system"
    if "sam" in names and "policy" not in names and walker.key(r"SAM\Domains") is not None:
        return "sam"
    if "software" in names and names & _NTUSER_MARKERS:
        return "ntuser"
    if "microsoft" in names and (
        names & _SOFTWARE_MARKERS
        or walker.key(r"Microsoft\Windows\CurrentVersion") is not None
        or walker.key(r"Microsoft\Windows NT\CurrentVersion") is not None
        or walker.key(r"Microsoft\Cryptography") is not None
    ):
        return "software"
    if "local settings" in names or "clsid" in names or any(n.startswith(".") for n in names):
        return "usrclass"
    return "unknown"


# --- the entry point -----------------------------------------------------------------------------


def read_hive(path: Path, issues: IssueLog, scratch: Path, user: str | None = None) -> HiveFacts:
    """Read one hive file. ``scratch`` is a folder of ours where replayed copies go; ``user`` names
    the owner of an NTUSER.DAT (else taken from the path Windows stored in the hive's header).

    Amcache SHA-1 values (``FileId`` minus its ``0000`` prefix) cover only the first 31,457,280
    bytes (30 MiB) of a file: for larger files they will not match a full-file SHA-1."""
    facts = HiveFacts()
    sequences = _base_block_checks(path, facts, issues)
    if sequences is None:
        return facts
    primary, secondary = sequences
    source = path
    if primary != secondary:
        facts.dirty = True
        facts.facts["sequence_numbers"] = f"{primary}/{secondary}"
        source = _replay(path, secondary, scratch, facts, issues)
    try:
        data = source.read_bytes()
        hive = RegistryHive(str(source))
    except Exception as exc:  # noqa: BLE001 - regipy raises many kinds on a broken root cell
        issues.add(ReadIssue(f"cannot open the hive's root key ({type(exc).__name__}: {exc})",
                             offset=BASE_BLOCK_SIZE))
        return facts
    walker = _Hive(hive, issues, data)
    try:
        facts.kind = detect_kind(hive)
    except Exception as exc:  # noqa: BLE001
        issues.add(ReadIssue(f"cannot list the root key's subkeys ({type(exc).__name__}: {exc})"))
        return facts
    readers: dict[str, Callable[[_Hive, HiveFacts, str | None], None]] = {
        "system": _read_system, "software": _read_software, "ntuser": _read_ntuser,
        "amcache": _read_amcache,
    }
    reader = readers.get(facts.kind)
    if reader is not None:
        if facts.kind == "ntuser" and user is None:
            user = _user_from_header(hive)
        reader(walker, facts, user)
    return facts


def _user_from_header(hive: RegistryHive) -> str | None:
    r"""The profile folder in the path Windows keeps in the base block (``\??\C:\Users\tony\ntuser.dat``)."""
    name = _text(getattr(hive, "name", None))
    if not name or "\\" not in name:
        return None
    parts = PureWindowsPath(name).parts
    lowered = [p.casefold() for p in parts]
    for marker in ("users", "documents and settings"):
        if marker in lowered:
            at = lowered.index(marker)
            if at + 2 < len(parts):
                return parts[at + 1]
    return None


# --- SYSTEM --------------------------------------------------------------------------------------


def _read_system(h: _Hive, out: HiveFacts, _user: str | None) -> None:
    """Computer name, domain, time zone and services of the current control set."""
    control_set = _current_control_set(h)
    if control_set is None:
        h.issues.add(ReadIssue("SYSTEM hive without a ControlSet key"))
        return
    out.facts["control_set"] = control_set

    def names() -> None:
        computer = _text(h.values(h.key(
            rf"{control_set}\Control\ComputerName\ComputerName")).get("computername"))
        tcpip = h.values(h.key(rf"{control_set}\Services\Tcpip\Parameters"))
        hostname = _text(tcpip.get("hostname")) or _text(tcpip.get("nv hostname"))
        domain = _text(tcpip.get("domain")) or _text(tcpip.get("nv domain"))
        if computer:
            out.facts["computer_name"] = computer
            out.aliases.append((computer, "name"))
        if hostname:
            out.facts["hostname"] = hostname
            if not computer or hostname.casefold() != computer.casefold():
                out.aliases.append((hostname, "name"))
        if domain:
            out.facts["domain"] = domain
            base = hostname or computer
            if base:
                out.aliases.append((f"{base}.{domain}".lower(), "fqdn"))

    def timezone() -> None:
        tz = h.values(h.key(rf"{control_set}\Control\TimeZoneInformation"))
        name = _text(tz.get("timezonekeyname")) or _text(tz.get("standardname"))
        if name:
            out.facts["timezone"] = name

    def services() -> None:
        base = h.key(rf"{control_set}\Services")
        for service in h.subkeys(base):
            h.guarded(f"service {service.name}", lambda s=service: _service_rows(h, control_set, s, out))

    h.guarded("computer name", names)
    h.guarded("time zone", timezone)
    h.guarded("services", services)


def _current_control_set(h: _Hive) -> str | None:
    current = _int(h.values(h.key("Select")).get("current"))
    if current and h.key(f"ControlSet{current:03d}") is not None:
        return f"ControlSet{current:03d}"
    sets = sorted(k.name for k in h.subkeys(h.hive.root) if k.name.casefold().startswith("controlset"))
    return sets[0] if sets else None


def _service_rows(h: _Hive, control_set: str, service: NKRecord, out: HiveFacts) -> None:
    """One row per service with an ImagePath, one more for a svchost ServiceDll (the ImagePath of a
    shared-process service says only ``svchost.exe -k …``; the DLL is what runs)."""
    values = h.values(service)
    key = rf"HKLM\SYSTEM\{control_set}\Services\{service.name}"
    ts = h.when(service)
    image = _text(values.get("imagepath"))
    if image:
        out.rows[AUTORUN].append(_row(AUTORUN, ts, {
            "autorun.kind": "service", "autorun.name": service.name, "autorun.command": image,
            "registry.key": key}))
    parameters = h.key("Parameters", start=service) if service.subkey_count else None
    dll = _text(h.values(parameters).get("servicedll")) or _text(values.get("servicedll"))
    if dll:
        out.rows[AUTORUN].append(_row(AUTORUN, h.when(parameters) if parameters else ts, {
            "autorun.kind": "service-dll", "autorun.name": service.name, "autorun.command": dll,
            "registry.key": key + (r"\Parameters" if parameters else "")}))


# --- SOFTWARE and NTUSER.DAT ---------------------------------------------------------------------


def _read_software(h: _Hive, out: HiveFacts, _user: str | None) -> None:
    """MachineGuid, Windows version, Uninstall entries, Run keys, IFEO debuggers, task names."""

    def identity() -> None:
        guid = _text(h.values(h.key(r"Microsoft\Cryptography")).get("machineguid"))
        if guid:
            out.facts["machine_guid"] = guid
            out.aliases.append((guid.lower(), "machine_guid"))
        version = h.values(h.key(r"Microsoft\Windows NT\CurrentVersion"))
        for fact, names in (("product_name", ("productname",)),
                            ("build", ("currentbuild", "currentbuildnumber")),
                            ("display_version", ("displayversion", "releaseid")),
                            ("edition", ("editionid",))):
            value = next((_text(version[n]) for n in names if _text(version.get(n))), None)
            if value:
                out.facts[fact] = value
        installed = _int(version.get("installdate"))
        if installed:
            out.facts["install_date"] = (_UNIX_EPOCH + timedelta(seconds=installed)).isoformat()

    h.guarded("MachineGuid and version", identity)
    for view in ("", "Wow6432Node\\"):
        prefix = "HKLM\\SOFTWARE\\" + view
        h.guarded(f"{prefix}{_UNINSTALL}",
                  lambda v=view, p=prefix: _uninstall_rows(h, v + _UNINSTALL, p + _UNINSTALL, None, out))
        for path, kind in _RUN_KEYS:
            h.guarded(f"{prefix}{path}",
                      lambda v=view, p=prefix, path=path, kind=kind:
                      _run_rows(h, v + path, p + path, kind, None, out))
        h.guarded(f"{prefix}{_IFEO}", lambda v=view, p=prefix: _ifeo_rows(h, v + _IFEO, p + _IFEO, out))
    h.guarded("scheduled task cache", lambda: _task_rows(h, out))


def _read_ntuser(h: _Hive, out: HiveFacts, user: str | None) -> None:
    """A user's own Uninstall entries (where the 3CX Desktop App registers) and Run keys."""
    if user:
        out.facts["user"] = user
    base = "Software\\"
    shown = "HKCU\\Software\\"
    h.guarded(f"{shown}{_UNINSTALL}",
              lambda: _uninstall_rows(h, base + _UNINSTALL, shown + _UNINSTALL, user, out))
    for path, kind in _RUN_KEYS:
        h.guarded(f"{shown}{path}", lambda path=path, kind=kind:
                  _run_rows(h, base + path, shown + path, kind, user, out))


def _uninstall_rows(h: _Hive, path: str, shown: str, user: str | None, out: HiveFacts) -> None:
    """Every subkey of an Uninstall key, including those without DisplayName (hidden entries are
    still installed software; the key name is kept in registry.key)."""
    for entry in h.subkeys(h.key(path)):
        try:
            values = h.values(entry)
        except Exception as exc:  # noqa: BLE001 - one broken entry must not hide the others
            h.issues.add(ReadIssue(f"{shown}\\{entry.name}: values unreadable ({exc})"))
            values = {}
        out.rows[PACKAGE].append(_row(PACKAGE, h.when(entry), {
            "package.name": _text(values.get("displayname")),
            "package.version": _text(values.get("displayversion")),
            "package.vendor": _text(values.get("publisher")),
            "package.install_location": _text(values.get("installlocation")),
            "package.install_date": _text(values.get("installdate")),
            "user.name": user,
            "registry.key": f"{shown}\\{entry.name}",
            "event.action": "installed",
        }))


def _run_rows(h: _Hive, path: str, shown: str, kind: str, user: str | None, out: HiveFacts) -> None:
    node = h.key(path)
    if node is None:
        return
    ts = h.when(node)
    for name, data in h.value_pairs(node):
        command = _text(data)
        if command is None and name == "(default)":
            continue
        out.rows[AUTORUN].append(_row(AUTORUN, ts, {
            "autorun.kind": kind, "autorun.name": name, "autorun.command": command,
            "user.name": user, "registry.key": shown}))


def _ifeo_rows(h: _Hive, path: str, shown: str, out: HiveFacts) -> None:
    """Image File Execution Options with a Debugger: the named program starts the debugger instead
    (sticky-keys backdoors set it on sethc.exe)."""
    for image in h.subkeys(h.key(path)):
        debugger = _text(h.values(image).get("debugger"))
        if debugger:
            out.rows[AUTORUN].append(_row(AUTORUN, h.when(image), {
                "autorun.kind": "ifeo-debugger", "autorun.name": image.name,
                "autorun.command": debugger, "registry.key": f"{shown}\\{image.name}"}))


def _task_rows(h: _Hive, out: HiveFacts) -> None:
    r"""Scheduled tasks by name from TaskCache\Tree (a key with an ``Id`` value is a task); the
    author from TaskCache\Tasks\{Id}. The command lives in a binary ``Actions`` blob and in the
    task's XML file, which the task-file reader parses; it is not decoded here."""
    tasks = h.key(_TASKS)

    def walk(node: NKRecord, prefix: str) -> None:
        for child in h.subkeys(node):
            name = f"{prefix}\\{child.name}"
            values = h.values(child)
            task_id = _text(values.get("id"))
            if task_id:
                author = None
                if tasks is not None:
                    author = _text(h.values(h.key(task_id, start=tasks)).get("author"))
                out.rows[AUTORUN].append(_row(AUTORUN, h.when(child), {
                    "autorun.kind": "task", "autorun.name": name, "task.author": author,
                    "registry.key": f"HKLM\\SOFTWARE\\{_TASK_TREE}{name}"}))
            if child.subkey_count:
                walk(child, name)

    tree = h.key(_TASK_TREE)
    if tree is not None:
        walk(tree, "")


# --- Amcache.hve ---------------------------------------------------------------------------------


def _read_amcache(h: _Hive, out: HiveFacts, _user: str | None) -> None:
    """Files and programs of both Amcache layouts (Windows 10+ Inventory*, Windows 8 File/Programs)."""
    programs: dict[str, tuple[str | None, str | None]] = {}

    def inventory_programs() -> None:
        for entry in h.subkeys(h.key(r"Root\InventoryApplication")):
            values = h.values(entry)
            name, version = _text(values.get("name")), _text(values.get("version"))
            programs[entry.name.casefold()] = (name, version)
            out.rows[AMCACHE].append(_row(AMCACHE, h.when(entry), {
                "amcache.kind": "program", "package.name": name, "package.version": version,
                "pe.company": _text(values.get("publisher"))}))

    def old_programs() -> None:
        for entry in h.subkeys(h.key(r"Root\Programs")):
            values = h.values(entry)
            name = _text(values.get(_OLD_PROGRAM["name"]))
            version = _text(values.get(_OLD_PROGRAM["version"]))
            programs[entry.name.casefold()] = (name, version)
            out.rows[AMCACHE].append(_row(AMCACHE, h.when(entry), {
                "amcache.kind": "program", "package.name": name, "package.version": version,
                "pe.company": _text(values.get(_OLD_PROGRAM["publisher"]))}))

    def inventory_files() -> None:
        for entry in h.subkeys(h.key(r"Root\InventoryApplicationFile")):
            values = h.values(entry)
            path = _text(values.get("lowercaselongpath"))
            program = programs.get((_text(values.get("programid")) or "").casefold(), (None, None))
            out.rows[AMCACHE].append(_row(AMCACHE, h.when(entry), {
                "file.path": path,
                "file.name": _text(values.get("name")) or _basename(path),
                "file.size": _int(values.get("size")),
                "file.hash.sha1": amcache_sha1(values.get("fileid")),
                "pe.file_version": _text(values.get("version")) or _text(values.get("binfileversion")),
                "pe.product": _text(values.get("productname")),
                "pe.company": _text(values.get("publisher")),
                "pe.link_date": _link_date(values.get("linkdate")),
                "amcache.kind": "file",
                "package.name": program[0], "package.version": program[1]}))

    def old_files() -> None:
        for volume in h.subkeys(h.key(r"Root\File")):
            for entry in h.subkeys(volume):
                values = h.values(entry)
                path = _text(values.get(_OLD_FILE["path"]))
                program = programs.get((_text(values.get(_OLD_FILE["program_id"])) or "").casefold(),
                                       (None, None))
                link = _int(values.get(_OLD_FILE["link_date"]))
                out.rows[AMCACHE].append(_row(AMCACHE, h.when(entry), {
                    "file.path": path, "file.name": _basename(path),
                    "file.size": _int(values.get(_OLD_FILE["size"])),
                    "file.hash.sha1": amcache_sha1(values.get(_OLD_FILE["sha1"])),
                    "pe.file_version": _text(values.get(_OLD_FILE["version"])),
                    "pe.product": _text(values.get(_OLD_FILE["product"])),
                    "pe.company": _text(values.get(_OLD_FILE["company"])),
                    "pe.link_date": _UNIX_EPOCH + timedelta(seconds=link) if link else None,
                    "amcache.kind": "file",
                    "package.name": program[0], "package.version": program[1]}))

    # Programs first, so file rows can name the program they belong to.
    h.guarded(r"Amcache Root\InventoryApplication", inventory_programs)
    h.guarded(r"Amcache Root\Programs", old_programs)
    h.guarded(r"Amcache Root\InventoryApplicationFile", inventory_files)
    h.guarded(r"Amcache Root\File", old_files)
    kinds = [row["amcache.kind"] for row in out.rows[AMCACHE]]
    out.facts["amcache_files"] = str(kinds.count("file"))
    out.facts["amcache_programs"] = str(kinds.count("program"))


def amcache_sha1(file_id: Any) -> str | None:
    """The SHA-1 in an Amcache FileId / value 101: 44 hex digits, the first four "0000".
    It hashes only the first 31,457,280 bytes of the file."""
    text = _text(file_id)
    if not text:
        return None
    text = text.lower()
    if len(text) == 44 and text.startswith("0000"):
        text = text[4:]
    if len(text) == 40 and all(c in "0123456789abcdef" for c in text):
        return text
    return None


def _link_date(value: Any) -> datetime | None:
    """Amcache's LinkDate text ``MM/DD/YYYY HH:MM:SS`` (UTC, the PE header's link time)."""
    text = _text(value)
    if not text:
        return None
    try:
        return datetime.strptime(text, "%m/%d/%Y %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


def _basename(path: str | None) -> str | None:
    if not path:
        return None
    name = PureWindowsPath(path).name if "\\" in path else PurePosixPath(path).name
    return name or None
