"""PE files from a triage collection: version strings, imports, imphash and the Authenticode verdict.

The 3CX case turns on PE metadata: ``3CXDesktopApp.exe`` and ``ffmpeg.dll`` carry the vendor's
version strings, and ``d3dcompiler_47.dll`` is Microsoft-signed yet carries a payload in its
certificate table. This is a small, bounded header reader over an mmap (no third-party PE parser,
memory stays flat on 200 MB installers): it reads only headers, the import directory, the version
resource and, through ``turncoat.triage.authenticode``, the certificate table.

Nothing is executed or loaded as code. Malformed structures become ReadIssues and the row keeps
whatever could be read.
"""

from __future__ import annotations

import hashlib
import mmap
import struct
from dataclasses import dataclass, field
from pathlib import Path

from turncoat.evidence.base import IssueLog, ReadIssue, Row
from turncoat.triage.authenticode import Buffer, PeLayout, check_signature

try:  # pefile's ordinal tables: needed only for imphash of ordinal imports from ws2_32/oleaut32
    from ordlookup import ordLookup as _pefile_ord_lookup
except ImportError:  # pragma: no cover - depends on the environment
    _pefile_ord_lookup = None

# Data directory indexes (PE/COFF specification, "Optional Header Data Directories").
DIR_IMPORT = 1
DIR_RESOURCE = 2
DIR_SECURITY = 4
DIR_DELAY_IMPORT = 13
RT_VERSION = 16

MAX_SECTIONS = 96            # the loader's own limit
MAX_IMPORT_DLLS = 4096
MAX_IMPORT_FUNCS = 65536
MAX_IMPORT_SYMBOLS = 200_000   # whole file: hostile descriptors may all share one huge table
MAX_NAME = 512
MAX_VERSION_RESOURCE = 1024 * 1024

# VS_VERSIONINFO string keys → tri_file columns.
VERSION_KEYS = {
    "FileVersion": "pe.file_version",
    "ProductVersion": "pe.product_version",
    "ProductName": "pe.product",
    "CompanyName": "pe.company",
    "OriginalFilename": "pe.original_file_name",
    "FileDescription": "pe.description",
}
# Import-by-ordinal from these DLLs is named through a lookup table in the standard imphash.
_ORDINAL_NAMED_DLLS = {"ws2_32.dll", "wsock32.dll", "oleaut32.dll"}

OVERLAP_PROBLEM = "section data overlaps the certificate table"


def is_pe(head: bytes) -> bool:
    """Does this file start like a PE? ``MZ`` plus ``PE\\0\\0`` at e_lfanew.

    When e_lfanew points beyond ``head`` (a short sniff buffer) the MZ header alone decides, so a
    caller sniffing 512 bytes does not miss PEs with a long DOS stub.
    """
    if len(head) < 64 or head[:2] != b"MZ":
        return False
    lfanew = struct.unpack_from("<I", head, 0x3C)[0]
    if lfanew + 4 > len(head):
        return lfanew < 0x10000000
    return head[lfanew:lfanew + 4] == b"PE\x00\x00"


@dataclass
class Section:
    """One section header, reduced to what RVA→offset mapping needs."""

    name: str
    virtual_address: int
    virtual_size: int
    raw_offset: int
    raw_size: int


@dataclass
class PeHeaders:
    """The parts of the headers this module uses."""

    is64: bool
    machine: int
    image_base: int
    size_of_headers: int
    layout: PeLayout
    directories: list[tuple[int, int]] = field(default_factory=list)
    sections: list[Section] = field(default_factory=list)

    def directory(self, index: int) -> tuple[int, int]:
        return self.directories[index] if index < len(self.directories) else (0, 0)


def parse_headers(data: Buffer, size: int, issues: IssueLog) -> PeHeaders | None:
    """DOS, COFF and optional headers, data directories and section table; None if not a PE."""
    if size < 64 or data[:2] != b"MZ":
        return None
    lfanew = struct.unpack_from("<I", data, 0x3C)[0]
    if lfanew + 24 > size or data[lfanew:lfanew + 4] != b"PE\x00\x00":
        issues.add(ReadIssue("MZ file without a PE header at e_lfanew", offset=0x3C))
        return None
    machine, n_sections, _, _, _, opt_size, _ = struct.unpack_from("<HHIIIHH", data, lfanew + 4)
    opt = lfanew + 24
    if opt + 2 > size:
        issues.add(ReadIssue("optional header truncated", offset=opt))
        return None
    magic = struct.unpack_from("<H", data, opt)[0]
    if magic not in (0x10B, 0x20B):
        issues.add(ReadIssue(f"unknown optional header magic {magic:#x}", offset=opt))
        return None
    is64 = magic == 0x20B
    dir_base = opt + (112 if is64 else 96)
    if dir_base > size:
        issues.add(ReadIssue("optional header truncated", offset=opt))
        return None
    n_dirs = struct.unpack_from("<I", data, dir_base - 4)[0]
    n_dirs = min(n_dirs, 16, max(0, (size - dir_base) // 8))
    size_of_headers = struct.unpack_from("<I", data, opt + 60)[0]
    directories = [struct.unpack_from("<II", data, dir_base + 8 * i) for i in range(n_dirs)]
    cert_rva, cert_size = directories[DIR_SECURITY] if len(directories) > DIR_SECURITY else (0, 0)
    layout = PeLayout(file_size=size, checksum_offset=opt + 64,
                      cert_dir_offset=dir_base + 8 * DIR_SECURITY,
                      cert_table_offset=cert_rva, cert_table_size=cert_size)
    image_base = struct.unpack_from("<Q" if is64 else "<I", data, opt + 24 if is64 else opt + 28)[0]
    headers = PeHeaders(is64, machine, image_base, size_of_headers, layout, directories)
    sec_base = opt + opt_size
    if n_sections > MAX_SECTIONS:
        issues.add(ReadIssue(f"{n_sections} sections; reading the first {MAX_SECTIONS}", offset=lfanew + 6))
        n_sections = MAX_SECTIONS
    for i in range(n_sections):
        pos = sec_base + 40 * i
        if pos + 40 > size:
            issues.add(ReadIssue("section table truncated", offset=pos))
            break
        raw_name, vsize, va, raw_size, raw_off = struct.unpack_from("<8sIIII", data, pos)
        name = raw_name.rstrip(b"\x00").decode("latin-1")
        headers.sections.append(Section(name, va, vsize, raw_off, raw_size))
    return headers


def rva_to_offset(headers: PeHeaders, rva: int) -> int | None:
    """File offset of an RVA, or None when it is not backed by file data."""
    for s in headers.sections:
        span = max(s.virtual_size, s.raw_size)
        if s.virtual_address <= rva < s.virtual_address + span:
            delta = rva - s.virtual_address
            # The loader rounds PointerToRawData down to 512 bytes.
            raw = s.raw_offset & ~0x1FF
            if delta >= s.raw_size:
                return None
            off = raw + delta
            return off if off < headers.layout.file_size else None
    if rva < headers.size_of_headers and rva < headers.layout.file_size:
        return rva
    return None


def _c_string(data: Buffer, offset: int | None, size: int) -> str | None:
    if offset is None or offset >= size:
        return None
    chunk = bytes(data[offset:min(size, offset + MAX_NAME)])
    end = chunk.find(b"\x00")
    if end <= 0:
        return None
    return chunk[:end].decode("latin-1")


# --------------------------------------------------------------------------- imports


@dataclass
class Imports:
    """DLL names in directory order and the symbol list the imphash is made of."""

    dlls: list[str] = field(default_factory=list)
    symbols: list[str] = field(default_factory=list)
    imphash_unreliable: bool = False     # an unnamed ordinal or a cut list: the imphash would be wrong


def read_imports(data: Buffer, headers: PeHeaders, issues: IssueLog) -> Imports:
    """Walk IMAGE_IMPORT_DESCRIPTORs and their lookup tables (bounded)."""
    out = Imports()
    size = headers.layout.file_size
    rva, _ = headers.directory(DIR_IMPORT)
    if not rva:
        return out
    pos = rva_to_offset(headers, rva)
    if pos is None:
        issues.add(ReadIssue(f"import directory RVA {rva:#x} is not in the file"))
        return out
    thunk_size, ordinal_flag = (8, 1 << 63) if headers.is64 else (4, 1 << 31)
    thunk_fmt = "<Q" if headers.is64 else "<I"
    for _ in range(MAX_IMPORT_DLLS):
        if pos + 20 > size:
            issues.add(ReadIssue("import directory truncated", offset=pos))
            break
        original_thunk, _, _, name_rva, first_thunk = struct.unpack_from("<IIIII", data, pos)
        pos += 20
        if not (original_thunk or name_rva or first_thunk):
            break
        dll = _c_string(data, rva_to_offset(headers, name_rva), size)
        if not dll:
            issues.add(ReadIssue(f"import descriptor with unreadable DLL name (RVA {name_rva:#x})",
                                 offset=pos - 20))
            continue
        out.dlls.append(dll)
        _read_thunks(data, headers, dll, original_thunk or first_thunk, thunk_size, thunk_fmt,
                     ordinal_flag, out, issues)
    return out


def _read_thunks(data: Buffer, headers: PeHeaders, dll: str, table_rva: int, thunk_size: int,
                 thunk_fmt: str, ordinal_flag: int, out: Imports, issues: IssueLog) -> None:
    size = headers.layout.file_size
    pos = rva_to_offset(headers, table_rva)
    if pos is None:
        return
    lib = dll.lower()
    stem, dot, ext = lib.rpartition(".")
    lib_key = stem if dot and ext in ("ocx", "sys", "dll") else lib
    for _ in range(MAX_IMPORT_FUNCS):
        if len(out.symbols) >= MAX_IMPORT_SYMBOLS:
            issues.add(ReadIssue(f"more than {MAX_IMPORT_SYMBOLS} imported symbols; rest skipped"))
            out.imphash_unreliable = True  # the imphash would be of a partial list: suppress it
            return
        if pos + thunk_size > size:
            issues.add(ReadIssue(f"import lookup table of {dll} truncated", offset=pos))
            return
        value = struct.unpack_from(thunk_fmt, data, pos)[0]
        pos += thunk_size
        if value == 0:
            return
        if value & ordinal_flag:
            ordinal = value & 0xFFFF
            name = None
            if lib in _ORDINAL_NAMED_DLLS:
                if _pefile_ord_lookup is None:
                    if not out.imphash_unreliable:
                        issues.add(ReadIssue(f"imphash not computed: ordinal import from {dll} "
                                             "needs pefile's ordinal tables"))
                    out.imphash_unreliable = True
                else:
                    name = _pefile_ord_lookup(lib, ordinal, make_name=True)
            out.symbols.append(f"{lib_key}.{(name or f'ord{ordinal}').lower()}")
        else:
            name = _c_string(data, rva_to_offset(headers, (value & 0x7FFFFFFF) + 2), size)
            if name:
                out.symbols.append(f"{lib_key}.{name.lower()}")


def read_delay_import_dlls(data: Buffer, headers: PeHeaders, issues: IssueLog) -> list[str]:
    """DLL names of the delay-load directory (ImgDelayDescr, 32 bytes each).

    Listed in ``pe.imports`` (plaso does the same) but, as in pefile, not part of the imphash.
    """
    rva, _ = headers.directory(DIR_DELAY_IMPORT)
    if not rva:
        return []
    pos = rva_to_offset(headers, rva)
    if pos is None:
        issues.add(ReadIssue(f"delay-import directory RVA {rva:#x} is not in the file"))
        return []
    size = headers.layout.file_size
    names: list[str] = []
    for _ in range(MAX_IMPORT_DLLS):
        if pos + 32 > size:
            issues.add(ReadIssue("delay-import directory truncated", offset=pos))
            break
        attributes, name_ref = struct.unpack_from("<II", data, pos)
        if not any(struct.unpack_from("<8I", data, pos)):
            break
        pos += 32
        # Attribute bit 0 clear: the old (VC 6) layout stores virtual addresses, not RVAs.
        name_rva = name_ref if attributes & 1 else name_ref - headers.image_base
        name = _c_string(data, rva_to_offset(headers, name_rva), size) if name_rva > 0 else None
        if name:
            names.append(name)
    return names


def imphash(imports: Imports) -> str | None:
    """The standard imphash (Mandiant 2014, as in pefile): md5 of "lib.func" joined by commas.

    None when there are no imports, or when an ordinal import from ws2_32/wsock32/oleaut32 cannot be
    named because pefile's ordinal tables are not installed (a wrong hash is worse than none).
    """
    if not imports.symbols or imports.imphash_unreliable:
        return None
    return hashlib.md5(",".join(imports.symbols).encode(), usedforsecurity=False).hexdigest()


# --------------------------------------------------------------------------- version resource


def _resource_entries(data: Buffer, base: int, offset: int, end: int) -> list[tuple[int | None, int, bool]]:
    """(id or None for named, offset relative to the resource section, is-directory) per entry."""
    pos = base + offset
    if pos + 16 > end:
        return []
    named, ids = struct.unpack_from("<HH", data, pos + 12)
    entries = []
    for i in range(min(named + ids, 4096)):
        epos = pos + 16 + 8 * i
        if epos + 8 > end:
            break
        name, target = struct.unpack_from("<II", data, epos)
        entries.append((None if name & 0x80000000 else name, target & 0x7FFFFFFF,
                        bool(target & 0x80000000)))
    return entries


def read_version_resource(data: Buffer, headers: PeHeaders, issues: IssueLog) -> bytes | None:
    """The raw VS_VERSIONINFO bytes: resource type 16, first name, first language."""
    rva, _ = headers.directory(DIR_RESOURCE)
    if not rva:
        return None
    base = rva_to_offset(headers, rva)
    size = headers.layout.file_size
    if base is None:
        issues.add(ReadIssue(f"resource directory RVA {rva:#x} is not in the file"))
        return None
    target, is_dir = 0, True
    for level in range(3):
        entries = _resource_entries(data, base, target, size)
        if level == 0:
            entries = [e for e in entries if e[0] == RT_VERSION]
        if not entries:
            return None
        _, target, is_dir = entries[0]
        if not is_dir:
            break
    if is_dir:
        return None
    pos = base + target
    if pos + 16 > size:
        issues.add(ReadIssue("version resource data entry truncated", offset=pos))
        return None
    data_rva, data_size = struct.unpack_from("<II", data, pos)
    start = rva_to_offset(headers, data_rva)
    if start is None:
        issues.add(ReadIssue(f"version resource RVA {data_rva:#x} is not in the file", offset=pos))
        return None
    return bytes(data[start:min(size, start + min(data_size, MAX_VERSION_RESOURCE))])


def _align4(n: int) -> int:
    return (n + 3) & ~3


def _version_blocks(buf: bytes, start: int, end: int, depth: int = 0):
    """Yield (key, value start, block end, children start) for the version blocks in [start, end).

    Each block: wLength, wValueLength, wType, a NUL-terminated UTF-16 key, padding to 4 bytes, the
    value, padding, children. String values are taken up to the block end (wValueLength is often
    wrong in the wild).
    """
    pos = start
    while pos + 6 <= end and depth < 4:
        length, value_length, value_type = struct.unpack_from("<HHH", buf, pos)
        if length < 6:
            return
        block_end = min(end, pos + length)
        key_end = pos + 6
        while key_end + 1 < block_end and buf[key_end:key_end + 2] != b"\x00\x00":
            key_end += 2
        key = buf[pos + 6:key_end].decode("utf-16-le", "replace")
        value_start = _align4(key_end + 2)
        value_bytes = value_length * 2 if value_type == 1 else value_length
        children = _align4(value_start + value_bytes)
        yield key, value_start, block_end, children
        pos = _align4(pos + length)


def parse_version_strings(buf: bytes) -> dict[str, str]:
    """The StringFileInfo strings of a VS_VERSIONINFO; earlier string tables win."""
    out: dict[str, str] = {}
    for key, _, end, children in _version_blocks(buf, 0, len(buf)):
        if key != "VS_VERSION_INFO":
            return out
        for child, _, child_end, tables in _version_blocks(buf, children, end, 1):
            if child != "StringFileInfo":
                continue
            # StringFileInfo has no value: its children follow the key directly.
            for _, table_value, table_end, _ in _version_blocks(buf, tables, child_end, 2):
                for name, value_start, string_end, _ in _version_blocks(buf, table_value, table_end, 3):
                    raw = buf[value_start:string_end]
                    text = raw[: len(raw) // 2 * 2].decode("utf-16-le", "replace").split("\x00", 1)[0]
                    if name not in out and text.strip():
                        out[name] = text.strip()
        break
    return out


# --------------------------------------------------------------------------- the row


def _overlaps_cert_table(headers: PeHeaders) -> bool:
    layout = headers.layout
    if not layout.cert_table_size:
        return False
    start, end = layout.cert_table_offset, layout.cert_table_offset + layout.cert_table_size
    return any(s.raw_size and s.raw_offset < end and start < s.raw_offset + s.raw_size
               for s in headers.sections)


def inspect_mapped(data: Buffer, size: int, issues: IssueLog, *, system_file: bool = False) -> Row:
    """``inspect_pe`` on data already in memory or mapped (tests, carved files)."""
    headers = parse_headers(data, size, issues)
    if headers is None:
        return {"file.type": "pe" if is_pe(bytes(data[:4096])) else "other"}
    row: Row = {"file.type": "pe"}
    for column in VERSION_KEYS.values():
        row[column] = None
    try:
        resource = read_version_resource(data, headers, issues)
        if resource:
            strings = parse_version_strings(resource)
            for key, column in VERSION_KEYS.items():
                row[column] = strings.get(key)
    except (struct.error, ValueError, IndexError) as exc:
        issues.add(ReadIssue(f"version resource unreadable: {exc}"))
    try:
        imports = read_imports(data, headers, issues)
    except (struct.error, ValueError, IndexError) as exc:
        issues.add(ReadIssue(f"import directory unreadable: {exc}"))
        imports = Imports()
    try:
        delayed = read_delay_import_dlls(data, headers, issues)
    except (struct.error, ValueError, IndexError) as exc:
        issues.add(ReadIssue(f"delay-import directory unreadable: {exc}"))
        delayed = []
    row["pe.imports"] = ";".join(dict.fromkeys(d.lower() for d in imports.dlls + delayed)) or None
    row["pe.imphash"] = imphash(imports)
    report = check_signature(data, headers.layout, issues, system_file=system_file)
    if _overlaps_cert_table(headers):
        report.problems.append(OVERLAP_PROBLEM)
    row.update(report.to_row())
    return row


def inspect_pe(path: Path, issues: IssueLog, *, system_file: bool = False) -> Row:
    """Read one PE file into ``tri_file`` columns (file.type, pe.*, code_signature.*).

    ``system_file``: see ``authenticode.check_signature`` (unsigned Windows system files are
    reported as "catalog-signed?"). The file is memory-mapped, never read whole.
    """
    try:
        with path.open("rb") as fh:
            size = path.stat().st_size
            if size < 64:
                issues.add(ReadIssue(f"file too small for a PE ({size} bytes)"))
                return {"file.type": "other"}
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
                return inspect_mapped(mapped, size, issues, system_file=system_file)
    except OSError as exc:
        issues.add(ReadIssue(f"cannot read file: {exc}"))
        return {"file.type": None}
