"""Windows 10 Prefetch files (format version 30) for simulated hosts.

A simulated triage collection needs `C:\\Windows\\Prefetch\\*.pf` that real parsers accept, so the
triage reader is tested on the same bytes an analyst's tools would see. The layout follows Joachim
Metz's "Windows Prefetch File (PF) format" (libscca documentation) and libscca's structure
definitions for the version 30 "variant 2" file information (metrics array at 0x128, run count at
offset 0xC8), the variant Windows 10 and 11 write today. Files are written uncompressed (SCCA) by
default, which every parser reads; `compress=True` wraps them as Windows does, in a MAM container
(see `compress_mam`).

Values the format leaves unexplained (trace-chain sample bytes, metrics flags, MFT references) are
filled with plausible, deterministic numbers: nothing downstream interprets them.
"""

from __future__ import annotations

import heapq
import math
import struct
import zlib
from collections import Counter
from datetime import datetime

from turncoat.triage.wintime import datetime_to_filetime

FORMAT_VERSION = 30
SIGNATURE = b"SCCA"
HEADER_UNKNOWN = 0x11               # offset 8; 0x0F on XP, 0x11 later (libscca documentation)
HEADER_SIZE = 84
FILE_INFORMATION_SIZE = 212         # version 30 variant 2
METRICS_OFFSET = HEADER_SIZE + FILE_INFORMATION_SIZE   # 0x128 marks variant 2
METRICS_ENTRY_SIZE = 32
TRACE_CHAIN_ENTRY_SIZE = 8
VOLUME_ENTRY_SIZE = 96
FILE_REFERENCES_VERSION = 3
NAME_FIELD_CHARS = 29               # the header keeps 29 characters and a terminator
MAX_RUN_TIMES = 8



def scca_hash(device_path: str) -> int:
    """The Vista+ Prefetch hash of an upper-case device path, e.g. `\\DEVICE\\HARDDISKVOLUME3\\TMP\\P.EXE`.

    Computed over the UTF-16LE bytes (hash = hash * 37 + byte, seeded with 314159, modulo 2**32), as
    described in the libscca documentation; it reproduces real names such as `P.EXE-07691575.pf`.
    """
    value = 314159
    for byte in device_path.encode("utf-16-le"):
        value = (value * 37 + byte) & 0xFFFFFFFF
    return value


def volume_guid_path(created: datetime, serial: int) -> str:
    """The `\\VOLUME{<creation FILETIME>-<serial>}` device name Windows 10 stores for a volume."""
    return f"\\VOLUME{{{datetime_to_filetime(created):016x}-{serial:08x}}}"


def prefetch_filename(executable: str, prefetch_hash: int) -> str:
    """`NAME.EXE-1234ABCD.pf`: the name under which Windows stores the file."""
    return f"{_stored_name(executable)}-{prefetch_hash:08X}.pf"




def device_path(path: str, volume_device: str) -> str:
    """`C:\\Windows\\x.dll` on the volume `volume_device` as Prefetch stores it, in device form.

    The path below the volume is upper case; the device name is kept as given, because Windows 10
    writes `\\VOLUME{01d3096ba3a46863-2ca3d1ae}\\WINDOWS\\...` with a lower-case volume name. A path
    that already starts with a backslash is taken as a device path and kept as it is.
    """
    if path.startswith("\\"):
        return path
    if len(path) >= 2 and path[1] == ":":
        path = path[2:]
    return volume_device.rstrip("\\") + "\\" + path.lstrip("\\").upper()


def build_prefetch(executable: str, run_times: list[datetime], run_count: int, loaded: list[str],
                   volume_device: str, volume_serial: int, volume_created: datetime,
                   *, prefetch_hash: int | None = None, compress: bool = False) -> bytes:
    """An uncompressed Windows 10 (version 30) Prefetch file for one program on one volume.

    `executable` is the program's path (`C:\\TMP\\p.exe`) or bare name; `loaded` are the files it
    touched in its first seconds (Windows paths or device paths). The program itself is added to the
    loaded files if missing, as Windows always lists it. The 8 newest `run_times` are kept, newest
    first. `prefetch_hash` defaults to `scca_hash` of the program's device path on `volume_device`;
    pass the hash of its `\\DEVICE\\HARDDISKVOLUMEn` path when `volume_device` is a `\\VOLUME{…}` name,
    as on real Windows 10. `compress=True` returns the MAM-compressed form Windows writes.
    """
    times = sorted(run_times, reverse=True)[:MAX_RUN_TIMES]
    if run_count < len(times) or run_count < 0:
        raise ValueError(f"run count {run_count} is smaller than the {len(times)} run times given")
    exe_device = device_path(executable, volume_device)
    names = _loaded_names(loaded, volume_device, exe_device)
    hash_value = scca_hash(exe_device) if prefetch_hash is None else prefetch_hash

    strings, string_offsets = _filename_strings(names)
    trace_offset = METRICS_OFFSET + METRICS_ENTRY_SIZE * len(names)
    strings_offset = trace_offset + TRACE_CHAIN_ENTRY_SIZE * len(names)
    volumes_offset = _align(strings_offset + len(strings), 8)
    volumes = _volumes_information(volume_device, volume_serial, volume_created, names)
    file_size = volumes_offset + len(volumes)

    out = bytearray(file_size)
    struct.pack_into("<I4sII", out, 0, FORMAT_VERSION, SIGNATURE, HEADER_UNKNOWN, file_size)
    name_field = _stored_name(executable).encode("utf-16-le")
    out[16:16 + len(name_field)] = name_field
    struct.pack_into("<II", out, 76, hash_value, 0)
    struct.pack_into("<9I", out, HEADER_SIZE, METRICS_OFFSET, len(names), trace_offset, len(names),
                     strings_offset, len(strings), volumes_offset, 1, len(volumes))
    for index, moment in enumerate(times):
        struct.pack_into("<Q", out, HEADER_SIZE + 44 + 8 * index, datetime_to_filetime(moment))
    struct.pack_into("<I", out, HEADER_SIZE + 116, run_count)
    for index, name in enumerate(names):
        struct.pack_into("<IIIIIIQ", out, METRICS_OFFSET + METRICS_ENTRY_SIZE * index,
                         index, 1, 0, string_offsets[index], len(name),
                         0x202 if name == exe_device else 0x2, _mft_reference(name))
        # one trace chain entry per file: blocks loaded, then two sample bytes and a flag word
        struct.pack_into("<IBBH", out, trace_offset + TRACE_CHAIN_ENTRY_SIZE * index,
                         1 + zlib.crc32(name.encode()) % 16, 0x02, 0x01, 0xFFFF)
    out[strings_offset:strings_offset + len(strings)] = strings
    out[volumes_offset:] = volumes
    return compress_mam(bytes(out)) if compress else bytes(out)


def _stored_name(executable: str) -> str:
    """The header's executable name: the basename, upper case, cut to 29 characters."""
    return executable.replace("/", "\\").rsplit("\\", 1)[-1].upper()[:NAME_FIELD_CHARS]


def _loaded_names(loaded: list[str], volume_device: str, exe_device: str) -> list[str]:
    names = list(dict.fromkeys(device_path(path, volume_device) for path in loaded))
    if exe_device not in names:
        names.insert(min(1, len(names)), exe_device)   # Windows lists NTDLL.DLL, then the program
    return names


def _filename_strings(names: list[str]) -> tuple[bytes, list[int]]:
    """The names as UTF-16LE strings with terminators, and each one's byte offset."""
    blob = bytearray()
    offsets = []
    for name in names:
        offsets.append(len(blob))
        blob += name.encode("utf-16-le") + b"\0\0"
    return bytes(blob), offsets


def _directories(names: list[str], volume_device: str) -> list[str]:
    """Every folder above a loaded file (below the volume root), in order of first appearance."""
    root = volume_device.rstrip("\\")
    folders: dict[str, None] = {}
    for name in names:
        parts = name.split("\\")
        for end in range(root.count("\\") + 2, len(parts)):
            folders.setdefault("\\".join(parts[:end]))
    return [folder for folder in folders if folder.startswith(root + "\\")]


def _volumes_information(volume_device: str, serial: int, created: datetime,
                         names: list[str]) -> bytes:
    """One volume entry, then its device path, file references and directory strings."""
    device = volume_device.rstrip("\\")
    device_blob = device.encode("utf-16-le") + b"\0\0"
    references = [0] + [_mft_reference(name) for name in names]
    refs_blob = struct.pack(f"<II{len(references)}Q", FILE_REFERENCES_VERSION, len(references),
                            *references)
    folders = _directories(names, device)
    dirs_blob = b"".join(struct.pack("<H", len(folder)) + folder.encode("utf-16-le") + b"\0\0"
                         for folder in folders)

    device_offset = VOLUME_ENTRY_SIZE
    refs_offset = _align(device_offset + len(device_blob), 8)
    dirs_offset = refs_offset + len(refs_blob)
    size = _align(dirs_offset + len(dirs_blob), 8)

    out = bytearray(size)
    struct.pack_into("<IIQIIIIII", out, 0, device_offset, len(device), datetime_to_filetime(created),
                     serial & 0xFFFFFFFF, refs_offset, len(refs_blob), dirs_offset, len(folders), 0)
    struct.pack_into("<I", out, 64, len(folders))
    out[device_offset:device_offset + len(device_blob)] = device_blob
    out[refs_offset:refs_offset + len(refs_blob)] = refs_blob
    out[dirs_offset:dirs_offset + len(dirs_blob)] = dirs_blob
    return bytes(out)


def _mft_reference(name: str) -> int:
    """A stable stand-in NTFS file reference: MFT entry from the name's CRC, sequence number 1."""
    entry = 0x1000 + zlib.crc32(name.encode("utf-16-le")) % 400_000
    return (1 << 48) | entry


def _align(value: int, boundary: int) -> int:
    return (value + boundary - 1) // boundary * boundary


# --- MAM container: Xpress-Huffman without matches ---
#
# Windows 10 stores Prefetch as "MAM\x04" + uncompressed size + an LZXPRESS-Huffman stream in 64 KiB
# chunks (MS-XCA 2.1/2.2). Each chunk is a 256-byte table of 4-bit code lengths for 512 symbols
# (0-255 literals, 256-511 matches) and a bit stream read as 16-bit little-endian words, most
# significant bit first. Encoding literals only (no LZ77 matches) is valid and simple; a Huffman
# code on Prefetch's UTF-16 text still shrinks it by about half, which libscca requires: it assumes
# every compressed chunk is smaller than its 64 KiB of output.

MAM_SIGNATURE = b"MAM\x04"
MAM_CHUNK = 65536
MAX_CODE_LENGTH = 15


def compress_mam(data: bytes) -> bytes:
    """`data` (an SCCA file) in the MAM container, as Windows 10 and 11 write Prefetch files."""
    out = bytearray(MAM_SIGNATURE + struct.pack("<I", len(data)))
    for start in range(0, len(data), MAM_CHUNK):
        out += _huffman_chunk(data[start:start + MAM_CHUNK])
    return bytes(out)


def _huffman_chunk(chunk: bytes) -> bytes:
    lengths = _code_lengths(Counter(chunk))
    table = bytearray(256)
    for symbol, length in lengths.items():
        table[symbol // 2] |= length << (4 * (symbol % 2))
    codes = _canonical_codes(lengths)
    words = bytearray()
    pending = pending_bits = total_bits = 0
    for byte in chunk:
        code, length = codes[byte]
        pending = (pending << length) | code
        pending_bits += length
        total_bits += length
        while pending_bits >= 16:
            pending_bits -= 16
            words += struct.pack("<H", (pending >> pending_bits) & 0xFFFF)
        pending &= (1 << pending_bits) - 1
    if pending_bits:
        words += struct.pack("<H", (pending << (16 - pending_bits)) & 0xFFFF)
    # The decoder starts with 32 bits loaded and loads 16 more whenever it runs short, so the next
    # chunk begins after exactly 2 + ceil((bits - 16) / 16) words; pad (or cut the padding) to that.
    size = 2 * (2 + math.ceil(max(0, total_bits - 16) / 16))
    return bytes(table) + bytes(words[:size]).ljust(size, b"\0")


def _code_lengths(frequencies: Counter) -> dict[int, int]:
    """Huffman code lengths of the byte values present, none longer than 15 bits."""
    if len(frequencies) == 1:                     # a code needs two symbols
        (only,) = frequencies
        frequencies = Counter({only: 1, (only + 1) % 256: 1})
    while True:
        lengths = _huffman_lengths(frequencies)
        if max(lengths.values()) <= MAX_CODE_LENGTH:
            return lengths
        frequencies = Counter({s: f // 2 + 1 for s, f in frequencies.items()})   # flatten, retry


def _huffman_lengths(frequencies: Counter) -> dict[int, int]:
    heap = [(count, symbol, (symbol,)) for symbol, count in sorted(frequencies.items())]
    heapq.heapify(heap)
    lengths = dict.fromkeys(frequencies, 0)
    tie = 256
    while len(heap) > 1:
        count_a, _, group_a = heapq.heappop(heap)
        count_b, _, group_b = heapq.heappop(heap)
        for symbol in group_a + group_b:
            lengths[symbol] += 1
        tie += 1
        heapq.heappush(heap, (count_a + count_b, tie, group_a + group_b))
    return lengths


def _canonical_codes(lengths: dict[int, int]) -> dict[int, tuple[int, int]]:
    """Canonical Huffman codes: shorter codes first, ties in symbol order (as the decoder builds)."""
    codes: dict[int, tuple[int, int]] = {}
    code = previous = 0
    for length, symbol in sorted((length, symbol) for symbol, length in lengths.items()):
        code <<= length - previous
        previous = length
        codes[symbol] = (code, length)
        code += 1
    return codes
