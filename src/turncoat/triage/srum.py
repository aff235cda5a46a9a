"""SRUM (System Resource Usage Monitor, SRUDB.dat): bytes each program sent and received, per hour.

SRUM is the one artifact that says a program talked to the network even when no network log was
kept: the trojanized 3CX desktop app and its payloads show up as an application with bytes sent.
It carries no destinations, only per-interface byte counts, so it answers "did it talk?", not "to
whom?".

The database is an ESE (JET Blue) file. It is opened with pyesedb (libesedb, LGPL-3.0) on a *copy*
in the caller's scratch folder, because the ESE engine and its helpers can write next to a database
they open, and evidence is read-only. pyesedb does not replay the transaction logs, so a database
that was not shut down cleanly ("dirty", the norm on a live-collected machine) may lack its most
recent records: we read what is there and say so.

Layout facts used here (libyal libesedb "ESE database file format"; SRUM table GUIDs and columns
as documented by the SRUM research of Mark Baggett / srum-dump and the DFIR community):

* ESE header: signature 0x89ABCDEF at offset 4, database state (uint32) at offset 0x34:
  1 just created, 2 dirty shutdown, 3 clean shutdown, 4 being converted, 5 force detach; page
  size (uint32) at offset 0xEC. The file is a whole number of pages.
* ``SruDbIdMapTable`` (IdType, IdIndex, IdBlob) maps the integer AppId/UserId of every data table
  to text: IdType 0 application, 1 service, 2 package/app container (all UTF-16LE text), 3 a user
  SID in binary form.
* Network usage table ``{973F5D5C-1D90-4944-BE8E-24B94231A174}``: TimeStamp (an OLE automation
  date, UTC), AppId, UserId, InterfaceLuid, BytesSent, BytesRecvd. Server SKUs do not have it.
* Application resource usage table ``{5C8CF1C7-7257-4F13-B223-970EF5939312}`` (counted only).
"""

from __future__ import annotations

import shutil
import struct
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from turncoat.evidence.base import IssueLog, ReadIssue, Row
from turncoat.triage.wintime import filetime_to_datetime

NETWORK_TABLE = "{973F5D5C-1D90-4944-BE8E-24B94231A174}"
APP_RESOURCE_TABLE = "{5C8CF1C7-7257-4F13-B223-970EF5939312}"
ID_MAP_TABLE = "SruDbIdMapTable"

ESE_SIGNATURE = b"\xef\xcd\xab\x89"  # 0x89ABCDEF, little-endian, at offset 4
_STATE_OFFSET = 0x34
_PAGE_SIZE_OFFSET = 0xEC
_PAGE_SIZES = {2048, 4096, 8192, 16384, 32768}
_STATES = {1: "just-created", 2: "dirty", 3: "clean", 4: "being-converted", 5: "force-detach"}

# ESE files that travel with a database: transaction logs (SRU.log, SRU00001.log, SRUtmp.log),
# reserve logs (SRUres00001.jrs), the checkpoint (SRU.chk) and the flush map (SRUDB.jfm).
_COMPANION_SUFFIXES = {".log", ".jrs", ".chk", ".jfm"}

_OLE_EPOCH = datetime(1899, 12, 30, tzinfo=UTC)

# JET column types (esent.h): the ones SRUM uses for its times and ids.
_JET_DATETIME = 8
_JET_LONGLONG = 15

# IANA ifType numbers (IANAifType-MIB) that Windows puts in the top 16 bits of a NET_LUID.
_IF_TYPES = {
    1: "other", 6: "ethernet", 23: "ppp", 24: "loopback", 37: "atm", 71: "wifi", 131: "tunnel",
    144: "ieee1394", 243: "mobile-broadband", 244: "mobile-broadband",
}


def is_ese(head: bytes) -> bool:
    """True for an ESE database or its header copy: the 0x89ABCDEF signature at offset 4."""
    return len(head) >= 8 and head[4:8] == ESE_SIGNATURE


def ese_state(head: bytes) -> str | None:
    """The shutdown state written in the ESE header ("clean", "dirty", ...), None if unreadable."""
    if not is_ese(head) or len(head) < _STATE_OFFSET + 4:
        return None
    value = struct.unpack_from("<I", head, _STATE_OFFSET)[0]
    return _STATES.get(value, f"unknown-{value}")


def read_srum(path: Path, issues: IssueLog, scratch: Path) -> tuple[list[Row], dict[str, object]]:
    """Rows of ``tri_srum_net`` (one per network usage record) and facts about the database.

    The summary holds: state (clean/dirty/...), tables (not counting ESE's MSys* catalog tables),
    app_resource_rows, network_rows,
    network_table (False on server SKUs, which have none: not an error), first/last (ISO UTC times
    over every SRUM data table), id_map (all SruDbIdMapTable entries) and id_map_names (entries
    that name an application, service or package, i.e. not user SIDs).
    """
    summary: dict[str, object] = {
        "state": None, "tables": 0, "app_resource_rows": 0, "network_rows": 0,
        "network_table": False, "first": None, "last": None, "id_map": 0, "id_map_names": 0,
    }
    try:
        with path.open("rb") as handle:
            head = handle.read(4096)
    except OSError as exc:
        issues.add(ReadIssue(f"cannot read SRUM database: {exc}"))
        return [], summary
    if not head:
        issues.add(ReadIssue("SRUM database is empty (zero bytes)"))
        return [], summary
    if not is_ese(head):
        issues.add(ReadIssue("not an ESE database: signature 0x89ABCDEF missing at offset 4", offset=4))
        return [], summary
    state = ese_state(head)
    summary["state"] = state
    _check_size(path, head, issues)
    if state == "dirty":
        issues.add(ReadIssue(
            "SRUM database was not shut down cleanly (dirty); recent records may be missing "
            "because its transaction logs were not replayed", offset=_STATE_OFFSET))

    scratch.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="srum-", dir=scratch))
    try:
        copy = _copy_with_companions(path, workdir, issues)
        if copy is None:
            return [], summary
        return _read_copy(copy, issues, summary)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _check_size(path: Path, head: bytes, issues: IssueLog) -> None:
    """An ESE file is a whole number of pages; anything else was cut short in the copy.

    pyesedb skips pages it cannot read without a word, so this is the only warning a truncated
    collection would otherwise give (tables come back with fewer rows).
    """
    if len(head) < _PAGE_SIZE_OFFSET + 4:
        return
    page_size = struct.unpack_from("<I", head, _PAGE_SIZE_OFFSET)[0]
    try:
        size = path.stat().st_size
    except OSError:
        return
    if page_size in _PAGE_SIZES and size % page_size:
        issues.add(ReadIssue(
            f"SRUM database is {size} bytes, not a whole number of {page_size}-byte pages: "
            "the file is truncated and its tables may be incomplete"))


def _copy_with_companions(path: Path, workdir: Path, issues: IssueLog) -> Path | None:
    """Copy the database and the ESE log/checkpoint files beside it (same 3-letter base name)."""
    try:
        target = workdir / path.name
        shutil.copyfile(path, target)
    except OSError as exc:
        issues.add(ReadIssue(f"cannot copy SRUM database to the scratch folder: {exc}"))
        return None
    base = path.stem[:3].lower()  # ESE names its logs after a 3-character base: SRU for SRUDB.dat
    try:
        siblings = list(path.parent.iterdir())
    except OSError:
        siblings = []
    for sibling in siblings:
        if (sibling.suffix.lower() in _COMPANION_SUFFIXES and sibling.name.lower().startswith(base)
                and sibling.is_file()):
            try:
                shutil.copyfile(sibling, workdir / sibling.name)
            except OSError as exc:  # a missing log only costs recent records; the database still opens
                issues.add(ReadIssue(f"cannot copy ESE companion file {sibling.name}: {exc}"))
    return target


def _read_copy(copy: Path, issues: IssueLog, summary: dict[str, object]) -> tuple[list[Row], dict[str, object]]:
    import pyesedb  # deferred: only triage of SRUM needs the native library

    database = pyesedb.file()
    try:
        database.open(str(copy))
    except OSError as exc:
        issues.add(ReadIssue(f"pyesedb cannot open the SRUM database (corrupt or truncated?): {exc}"))
        return [], summary
    try:
        tables = {}
        for index in range(database.number_of_tables):
            try:
                table = database.get_table(index)
                tables[table.name] = table
            except OSError as exc:
                issues.add(ReadIssue(f"cannot read table #{index} of the SRUM catalog: {exc}"))
        # user tables only: the four MSys* tables are ESE's own catalog
        summary["tables"] = sum(1 for name in tables if not name.startswith("MSys"))
        names, sids = _id_map(tables.get(ID_MAP_TABLE), issues, summary)
        first, last = _time_range(tables, issues)
        summary["first"] = first.isoformat() if first else None
        summary["last"] = last.isoformat() if last else None
        if APP_RESOURCE_TABLE in tables:
            summary["app_resource_rows"] = _record_count(tables[APP_RESOURCE_TABLE])
        network = tables.get(NETWORK_TABLE)
        summary["network_table"] = network is not None
        rows = _network_rows(network, names, sids, issues) if network is not None else []
        summary["network_rows"] = len(rows)
        return rows, summary
    finally:
        database.close()


def _record_count(table: Any) -> int:
    try:
        return int(table.number_of_records)
    except OSError:
        return 0


def _columns(table: Any) -> dict[str, tuple[int, int]]:
    """Column name -> (index, JET column type)."""
    out = {}
    for index in range(table.number_of_columns):
        column = table.get_column(index)
        out[column.name] = (index, column.type)
    return out


def _value(record: Any, index: int) -> bytes | None:
    """Raw bytes of one value, following long values (stored outside the record) when needed."""
    if record.is_long_value(index):
        long_value = record.get_value_data_as_long_value(index)
        return long_value.get_data() if long_value is not None else None
    return record.get_value_data(index)


def _int(data: bytes | None) -> int | None:
    if not data or len(data) not in (1, 2, 4, 8):
        return None
    return int.from_bytes(data, "little", signed=False)


def _id_map(table: Any, issues: IssueLog, summary: dict[str, object]) -> tuple[dict[int, str], dict[int, str]]:
    """AppId/UserId -> name, and UserId -> SID text, from SruDbIdMapTable."""
    names: dict[int, str] = {}
    sids: dict[int, str] = {}
    if table is None:
        issues.add(ReadIssue("SRUM database has no SruDbIdMapTable: applications and users stay numeric"))
        return names, sids
    columns = _columns(table)
    try:
        type_col, index_col, blob_col = (columns[n][0] for n in ("IdType", "IdIndex", "IdBlob"))
    except KeyError as exc:
        issues.add(ReadIssue(f"SruDbIdMapTable lacks column {exc}"))
        return names, sids
    count = 0
    for number in range(_record_count(table)):
        try:
            record = table.get_record(number)
            id_type = _int(record.get_value_data(type_col))
            id_index = _int(record.get_value_data(index_col))
            blob = _value(record, blob_col)
        except OSError as exc:
            issues.add(ReadIssue(f"unreadable SruDbIdMapTable record: {exc}", record_id=number))
            continue
        count += 1
        if id_index is None or not blob:
            continue
        if id_type == 3:
            sids[id_index] = sid_text(blob) or _utf16(blob)
        else:
            names[id_index] = _utf16(blob)
    summary["id_map"] = count
    summary["id_map_names"] = len(names)
    return names, sids


def sid_text(blob: bytes) -> str | None:
    """A binary SID as "S-1-5-21-...", None if the bytes are not a well-formed SID.

    Layout (MS-DTYP 2.4.2.2): revision (1 byte), sub-authority count (1), identifier authority
    (6 bytes, big-endian), then that many 32-bit little-endian sub-authorities.
    """
    if len(blob) < 8 or blob[0] != 1:
        return None
    count = blob[1]
    if len(blob) != 8 + 4 * count:
        return None
    authority = int.from_bytes(blob[2:8], "big")
    subs = struct.unpack_from(f"<{count}I", blob, 8)
    return "S-1-" + "-".join(str(part) for part in (authority, *subs))


def _utf16(blob: bytes) -> str:
    return blob.decode("utf-16-le", errors="replace").rstrip("\x00")


def _timestamp(data: bytes | None, column_type: int) -> datetime | None:
    """A SRUM TimeStamp: an OLE automation date (JET DateTime) or, in some columns, a FILETIME."""
    if not data or len(data) != 8:
        return None
    try:
        if column_type == _JET_DATETIME:
            days = struct.unpack("<d", data)[0]
            if not 1.0 < days < 2958465.0:  # after 1899-12-31, before 9999-12-31
                return None
            return _OLE_EPOCH + timedelta(days=days)
        return filetime_to_datetime(struct.unpack("<Q", data)[0])
    except (OverflowError, ValueError):
        return None


def _time_range(tables: dict[str, Any], issues: IssueLog) -> tuple[datetime | None, datetime | None]:
    """Earliest and latest TimeStamp over every SRUM data table (the GUID-named ones)."""
    first = last = None
    for name, table in tables.items():
        if not name.startswith("{"):
            continue
        column = _columns(table).get("TimeStamp")
        if column is None:
            continue
        index, column_type = column
        for number in range(_record_count(table)):
            try:
                when = _timestamp(table.get_record(number).get_value_data(index), column_type)
            except OSError:
                continue  # counted once, where the rows are read
            if when is None:
                continue
            first = when if first is None or when < first else first
            last = when if last is None or when > last else last
    return first, last


def interface_text(luid: int | None) -> str | None:
    """A NET_LUID as "ethernet (0x6008001000000)": the interface type sits in its top 16 bits.

    LUID 0 (no interface; SRUM writes it for a few totals) gives None.
    """
    if not luid:
        return None
    if_type = (luid >> 48) & 0xFFFF
    return f"{_IF_TYPES.get(if_type, f'iftype-{if_type}')} ({luid:#x})"


def _network_rows(table: Any, names: dict[int, str], sids: dict[int, str], issues: IssueLog) -> list[Row]:
    columns = _columns(table)
    missing = [c for c in ("TimeStamp", "AppId", "UserId", "BytesSent", "BytesRecvd") if c not in columns]
    if missing:
        issues.add(ReadIssue(f"SRUM network usage table lacks column(s) {', '.join(missing)}"))
        return []
    ts_index, ts_type = columns["TimeStamp"]
    luid_index = columns.get("InterfaceLuid", (None, None))[0]
    rows: list[Row] = []
    unresolved = 0
    for number in range(_record_count(table)):
        try:
            record = table.get_record(number)
            when = _timestamp(record.get_value_data(ts_index), ts_type)
            app = _int(record.get_value_data(columns["AppId"][0]))
            user = _int(record.get_value_data(columns["UserId"][0]))
            sent = _int(record.get_value_data(columns["BytesSent"][0]))
            received = _int(record.get_value_data(columns["BytesRecvd"][0]))
            luid = _int(record.get_value_data(luid_index)) if luid_index is not None else None
        except OSError as exc:
            issues.add(ReadIssue(f"unreadable SRUM network usage record: {exc}", record_id=number))
            continue
        if (app is not None and app not in names) or (user is not None and user not in sids):
            unresolved += 1
        rows.append({
            "ts": when,
            "process.executable": names.get(app, f"AppId {app}") if app is not None else None,
            "user.id": sids.get(user, f"UserId {user}") if user is not None else None,
            "network.bytes_sent": sent,
            "network.bytes_received": received,
            "network.interface": interface_text(luid),
        })
    # SRUM writes a few records for ids whose map entry has no text (totals); many more than
    # that means the id map lost pages
    if unresolved > max(10, len(rows) // 10):
        issues.add(ReadIssue(
            f"{unresolved} of {len(rows)} network usage records name an AppId/UserId that "
            "SruDbIdMapTable does not resolve (damaged or truncated database?)"))
    return rows
