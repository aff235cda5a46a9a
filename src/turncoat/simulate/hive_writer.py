"""Write small, valid Windows registry hive files (regf) for simulated hosts.

The simulator needs SOFTWARE, NTUSER.DAT and Amcache.hve files that the triage readers open exactly
as they open real ones, so a test of the whole pipeline exercises the real parsing code instead of a
shortcut. No real SOFTWARE hive small enough to ship exists in the shared test data either, so these
files also stand in for one.

The layout follows the published format descriptions of the regf file (Maxim Suhanov's "Windows
registry file format specification" and Joachim Metz's libregf documentation, both read for facts
only): a 4096-byte base block, then hive bins of 4096 bytes (or a multiple, for a large cell) holding
8-byte-aligned cells. Every cell offset stored in a cell counts from the start of the first hive bin.

What is written, and why that much:

* base block with equal primary/secondary sequence numbers (a clean hive: readers need no
  transaction log) and the XOR-32 checksum of its first 508 bytes;
* one ``nk`` cell per key, the root first (some readers, regipy among them, take the first cell of
  the first bin as the root key);
* ``lh`` subkey lists sorted by upper-cased name, as Windows keeps them (lookups may binary-search);
* value lists and ``vk`` cells, data of four bytes or fewer stored inline in the ``vk`` cell;
* one ``sk`` security cell shared by every key (Windows refuses a hive whose keys have none).

Not written: big data (``db``) cells, so a value's data must stay under 16,344 bytes; class names;
volatile keys; transaction logs.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from turncoat.triage.registry import base_block_checksum
from turncoat.triage.wintime import datetime_to_filetime

# Value types (winnt.h REG_*), by the short names the simulator uses.
VALUE_TYPES: dict[str, int] = {
    "sz": 1, "expand_sz": 2, "binary": 3, "dword": 4, "multi_sz": 7, "qword": 11,
}

BASE_BLOCK_SIZE = 4096
HBIN_SIZE = 4096
HBIN_HEADER_SIZE = 32
MAX_DATA = 16344          # largest data a plain data cell may hold; beyond it regf needs a db cell
NO_CELL = 0xFFFFFFFF      # "no list / no cell" marker in nk fields


# nk flags
_KEY_HIVE_ENTRY = 0x0004
_KEY_NO_DELETE = 0x0008
_KEY_COMP_NAME = 0x0020
# vk flags
_VALUE_COMP_NAME = 0x0001


@dataclass
class Value:
    """One registry value. ``type`` is one of VALUE_TYPES; ``data`` must suit it."""

    name: str
    data: str | int | bytes | list[str]
    type: str = "sz"


@dataclass
class Key:
    """One registry key. ``last_written=None`` inherits the parent's time (the root must set it)."""

    name: str
    values: list[Value] = field(default_factory=list)
    subkeys: list[Key] = field(default_factory=list)
    last_written: datetime | None = None

    def subkey(self, name: str) -> Key:
        """The child ``name`` (case-insensitive), created if absent: handy for building paths."""
        for child in self.subkeys:
            if child.name.casefold() == name.casefold():
                return child
        child = Key(name)
        self.subkeys.append(child)
        return child

    def path(self, *names: str) -> Key:
        """The descendant at ``names``, creating the keys on the way."""
        key = self
        for name in names:
            key = key.subkey(name)
        return key




def encode_data(value: Value) -> bytes:
    """The bytes Windows stores for ``value``; rejects data that does not match the type."""
    kind, data = value.type, value.data
    if kind not in VALUE_TYPES:
        raise ValueError(f"value {value.name!r}: unknown type {kind!r}")
    if kind in ("sz", "expand_sz"):
        if not isinstance(data, str):
            raise TypeError(f"value {value.name!r}: {kind} needs str")
        raw = (data + "\0").encode("utf-16-le")
    elif kind == "multi_sz":
        if not isinstance(data, list) or not all(isinstance(s, str) for s in data):
            raise TypeError(f"value {value.name!r}: multi_sz needs list[str]")
        raw = "".join(s + "\0" for s in data).encode("utf-16-le") + b"\0\0"
    elif kind == "binary":
        if not isinstance(data, bytes):
            raise TypeError(f"value {value.name!r}: binary needs bytes")
        raw = data
    else:
        if not isinstance(data, int) or isinstance(data, bool):
            raise TypeError(f"value {value.name!r}: {kind} needs int")
        raw = struct.pack("<I" if kind == "dword" else "<Q", data)
    if len(raw) > MAX_DATA:
        raise ValueError(f"value {value.name!r}: {len(raw)} bytes; big-data cells are not written")
    return raw


def _name_bytes(name: str) -> tuple[bytes, bool]:
    """A key/value name as stored: ASCII when possible (the 'compressed' flag), else UTF-16LE."""
    if name.isascii():
        return name.encode("ascii"), True
    return name.encode("utf-16-le"), False


def lh_hash(name: str) -> int:
    """The lh-list name hash: h = h*37 + ord(c) over the upper-cased name, modulo 2**32."""
    h = 0
    for ch in name.upper():
        h = (h * 37 + ord(ch)) & 0xFFFFFFFF
    return h


def _security_descriptor() -> bytes:
    """A self-relative descriptor: owner Administrators, group SYSTEM, DACL giving SYSTEM and
    Administrators full control and Users read, inherited by subkeys (the usual HKLM shape)."""

    def sid(*subs: int) -> bytes:
        return struct.pack("<BB", 1, len(subs)) + (5).to_bytes(6, "big") + b"".join(
            struct.pack("<I", s) for s in subs)

    admins, system, users = sid(32, 544), sid(18), sid(32, 545)
    aces = b""
    for mask, who in ((0xF003F, system), (0xF003F, admins), (0x20019, users)):
        aces += struct.pack("<BBHI", 0, 0x02, 8 + len(who), mask) + who   # ALLOWED, CONTAINER_INHERIT
    acl = struct.pack("<BBHHH", 2, 0, 8 + len(aces), 3, 0) + aces
    owner_at = 20
    group_at = owner_at + len(admins)
    dacl_at = group_at + len(system)
    header = struct.pack("<BBHIIII", 1, 0, 0x8004, owner_at, group_at, 0, dacl_at)  # SELF_RELATIVE|DACL_PRESENT
    return header + admins + system + acl


class _Cell:
    """A cell whose bytes depend on offsets not known until layout: size first, bytes later."""

    def __init__(self, build: Callable[[], bytes], size: int) -> None:
        self.build = build
        self.payload_size = size
        self.offset = -1

    @property
    def cell_size(self) -> int:
        return (self.payload_size + 4 + 7) // 8 * 8


class _Layout:
    """Collects cells in write order, then places them into hive bins."""

    def __init__(self) -> None:
        self.cells: list[_Cell] = []

    def add(self, build: Callable[[], bytes], size: int) -> _Cell:
        cell = _Cell(build, size)
        self.cells.append(cell)
        return cell

    def place(self) -> list[tuple[int, int]]:
        """Give every cell an offset; return (offset, size) of each hive bin."""
        bins: list[tuple[int, int]] = []
        bin_start, bin_size, used = 0, HBIN_SIZE, HBIN_HEADER_SIZE
        for cell in self.cells:
            if used + cell.cell_size > bin_size:
                bins.append((bin_start, bin_size))
                bin_start += bin_size
                need = HBIN_HEADER_SIZE + cell.cell_size
                bin_size = (need + HBIN_SIZE - 1) // HBIN_SIZE * HBIN_SIZE
                used = HBIN_HEADER_SIZE
            cell.offset = bin_start + used
            used += cell.cell_size
        bins.append((bin_start, bin_size))
        return bins


def _resolve_times(key: Key, inherited: datetime | None, out: dict[int, int]) -> None:
    """FILETIME of every key (by id), inheriting the parent's; the caller's keys stay untouched."""
    when = key.last_written or inherited
    if when is None:
        raise ValueError("the root key needs last_written")
    out[id(key)] = datetime_to_filetime(when)
    for child in key.subkeys:
        _resolve_times(child, when, out)


def _add_key(layout: _Layout, key: Key, parent: _Cell | None, sk: list[_Cell],
             times: dict[int, int]) -> _Cell:
    """Queue the nk cell of ``key`` and everything under it; return its cell."""
    name, compressed = _name_bytes(key.name)
    if len(name) > 0xFFFF or not key.name:
        raise ValueError(f"bad key name {key.name!r}")
    folded = [k.name.upper() for k in key.subkeys]
    if len(set(folded)) != len(folded):
        raise ValueError(f"key {key.name!r} has subkeys whose names differ only in case")
    children = sorted(key.subkeys, key=lambda k: k.name.upper())
    refs: dict[str, _Cell | list[_Cell] | None] = {"values": None, "subkeys": None}

    def build_nk() -> bytes:
        flags = _KEY_COMP_NAME if compressed else 0
        if parent is None:
            flags |= _KEY_HIVE_ENTRY | _KEY_NO_DELETE
        value_list = refs["values"]
        subkey_list = refs["subkeys"]
        body = struct.pack(
            "<2sHQIIIIIIIIIIIIIIIHH",
            b"nk", flags, times[id(key)], 0,
            parent.offset if parent else NO_CELL,
            len(children), 0,
            subkey_list.offset if isinstance(subkey_list, _Cell) else NO_CELL, NO_CELL,
            len(key.values),
            value_list.offset if isinstance(value_list, _Cell) else NO_CELL,
            sk[0].offset, NO_CELL,
            max((len(k.name) * 2 for k in children), default=0),   # counted as UTF-16 bytes
            0,
            max((len(v.name) * 2 for v in key.values), default=0),
            max((len(encode_data(v)) for v in key.values), default=0),
            0, len(name), 0,
        )
        return body + name

    me = layout.add(build_nk, 76 + len(name))

    if key.values:
        vk_cells = [_add_value(layout, v) for v in key.values]
        refs["values"] = layout.add(
            lambda: b"".join(struct.pack("<I", c.offset) for c in vk_cells), 4 * len(vk_cells))

    if children:
        child_cells = [_add_key(layout, child, me, sk, times) for child in children]

        def build_lh() -> bytes:
            out = struct.pack("<2sH", b"lh", len(children))
            for child, cell in zip(children, child_cells):
                out += struct.pack("<II", cell.offset, lh_hash(child.name))
            return out

        refs["subkeys"] = layout.add(build_lh, 4 + 8 * len(children))
    return me


def _add_value(layout: _Layout, value: Value) -> _Cell:
    name, compressed = _name_bytes(value.name)
    raw = encode_data(value)
    data_cell = None
    if len(raw) > 4:
        data_cell = layout.add(lambda: raw, len(raw))

    def build_vk() -> bytes:
        if data_cell is None:   # inline: high bit of the size, bytes in the offset field
            size, where = 0x80000000 | len(raw), int.from_bytes(raw.ljust(4, b"\0"), "little")
        else:
            size, where = len(raw), data_cell.offset
        return struct.pack("<2sHIIIHH", b"vk", len(name), size, where, VALUE_TYPES[value.type],
                           _VALUE_COMP_NAME if compressed else 0, 0) + name

    return layout.add(build_vk, 20 + len(name))


def _count_keys(key: Key) -> int:
    return 1 + sum(_count_keys(k) for k in key.subkeys)


def build_hive(root: Key, file_name: str = "") -> bytes:
    """The bytes of a clean hive holding ``root`` and its subtree."""
    times: dict[int, int] = {}
    _resolve_times(root, None, times)
    layout = _Layout()
    sk: list[_Cell] = []
    root_cell = _add_key(layout, root, None, sk, times)   # first cell of the first bin
    descriptor = _security_descriptor()
    n_keys = _count_keys(root)

    def build_sk() -> bytes:
        me = sk[0].offset   # a single descriptor: its list links point to itself
        return struct.pack("<2sHIIII", b"sk", 0, me, me, n_keys, len(descriptor)) + descriptor

    # Insert the sk right after the root so it sits in the first bin, as in real hives.
    sk_cell = _Cell(build_sk, 20 + len(descriptor))
    layout.cells.insert(1, sk_cell)
    sk.append(sk_cell)
    bins = layout.place()

    data = bytearray(sum(size for _, size in bins))
    stamp = max(times.values())   # the hive was last written when its newest key was
    for index, (start, size) in enumerate(bins):
        struct.pack_into("<4sIIIIQI", data, start, b"hbin", start, size, 0, 0,
                         stamp if index == 0 else 0, 0)
    for cell in layout.cells:
        payload = cell.build()
        if len(payload) != cell.payload_size:
            raise AssertionError("cell size changed between layout and build")
        struct.pack_into("<i", data, cell.offset, -cell.cell_size)
        data[cell.offset + 4: cell.offset + 4 + len(payload)] = payload
    # The unused tail of each bin is one free cell (positive size).
    ends = sorted((c.offset + c.cell_size) for c in layout.cells)
    for start, size in bins:
        used_end = max([e for e in ends if start < e <= start + size], default=start + HBIN_HEADER_SIZE)
        if used_end < start + size:
            struct.pack_into("<i", data, used_end, start + size - used_end)

    base = bytearray(BASE_BLOCK_SIZE)
    struct.pack_into("<4sIIQIIIIIII", base, 0, b"regf", 1, 1, stamp, 1, 5, 0, 1,
                     root_cell.offset, len(data), 1)
    base[48:48 + 64] = file_name[-31:].encode("utf-16-le").ljust(64, b"\0")
    base[508:512] = struct.pack("<I", base_block_checksum(bytes(base)))
    return bytes(base) + bytes(data)




def write_hive(path: Path, root: Key, file_name: str | None = None) -> None:
    """Write ``root`` as a clean hive at ``path``. ``file_name`` is the name kept in the base
    block (Windows keeps the tail of the hive's path there); it defaults to the file's name."""
    path.write_bytes(build_hive(root, path.name if file_name is None else file_name))
