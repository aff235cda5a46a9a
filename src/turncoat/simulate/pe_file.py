"""Build small, inert PE files for simulated triage collections: a version resource, and optionally a
certificate table — with data hidden after the signature blob, as the trojanized 3CX build's
d3dcompiler_47.dll had (CVE-2013-3900 padding), or bytes appended after it.

The files have no code (one resource section, entry point 0) and are never meant to run: they carry
exactly the facts a triage reader looks at — version strings, hashes, certificate-table layout. The
"signature" is a DER SEQUENCE of the right shape that no verifier will accept; the structural padding
checks do not depend on it verifying.
"""

from __future__ import annotations

import struct

FILE_ALIGN = 0x200
SECTION_RVA = 0x1000
RT_VERSION = 16


def _utf16z(text: str) -> bytes:
    return (text + "\0").encode("utf-16-le")


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _block(key: str, value: bytes, value_words: int, kind: int, children: bytes = b"") -> bytes:
    """One node of a VS_VERSIONINFO tree: length, value length, type, key, value, children."""
    head = _pad4(struct.pack("<HHH", 0, value_words, kind) + _utf16z(key))
    body = _pad4(head + value) + children
    return struct.pack("<H", len(body)) + body[2:]


def _version_numbers(version: str) -> tuple[int, int]:
    parts = [int(p) for p in (version.split(".") + ["0", "0", "0", "0"])[:4]]
    return (parts[0] << 16) | parts[1], (parts[2] << 16) | parts[3]


def version_resource(strings: dict[str, str], version: str) -> bytes:
    """VS_VERSIONINFO with a fixed file info for `version` and one 040904B0 string table."""
    ms, ls = _version_numbers(version)
    fixed = struct.pack("<13I", 0xFEEF04BD, 0x00010000, ms, ls, ms, ls, 0x3F, 0, 0x40004, 1, 0, 0, 0)
    table = b"".join(_block(key, _utf16z(value), len(value) + 1, 1) for key, value in strings.items())
    string_info = _block("StringFileInfo", b"", 0, 1, _block("040904B0", b"", 0, 1, table))
    var_info = _block("VarFileInfo", b"", 0, 1, _block("Translation", struct.pack("<HH", 0x409, 1200), 4, 0))
    return _block("VS_VERSION_INFO", fixed, len(fixed), 0, string_info + var_info)


def _resource_section(version_info: bytes) -> bytes:
    """Resource tree type RT_VERSION → id 1 → language 0x409 → the data, at SECTION_RVA."""
    def directory(entries: list[tuple[int, int]]) -> bytes:
        return struct.pack("<IIHHHH", 0, 0, 0, 0, 0, len(entries)) + b"".join(
            struct.pack("<II", ident, offset) for ident, offset in entries)

    root = directory([(RT_VERSION, 0x80000000 | 0x18)])
    names = directory([(1, 0x80000000 | 0x30)])
    langs = directory([(0x409, 0x48)])
    data_rva = SECTION_RVA + 0x58
    entry = struct.pack("<IIII", data_rva, len(version_info), 0, 0)
    return root + names + langs + entry + version_info


def build_pe(strings: dict[str, str], version: str, *, dll: bool = False, signature: bytes | None = None,
             hidden_after_signature: bytes = b"", appended: bytes = b"") -> bytes:
    """A PE32+ image with a version resource; with `signature`, a certificate table holding one
    WIN_CERTIFICATE whose payload is the signature blob, then `hidden_after_signature` (the padding
    trick), then zero alignment; `appended` lands after the certificate table (an overlay)."""
    rsrc = _resource_section(version_resource(strings, version))
    raw_size = len(rsrc) + (-len(rsrc) % FILE_ALIGN)
    section_end = FILE_ALIGN + raw_size
    coff = struct.pack("<HHIIIHH", 0x8664, 1, 0x5F000000, 0, 0, 240, 0x2022 if dll else 0x0022)
    dirs = [(0, 0)] * 16
    dirs[2] = (SECTION_RVA, len(rsrc))
    cert = b""
    if signature is not None:
        payload = signature + hidden_after_signature
        payload += b"\0" * (-(len(payload) + 8) % 8)
        cert = struct.pack("<IHH", len(payload) + 8, 0x0200, 0x0002) + payload
        dirs[4] = (section_end, len(cert))  # the security directory holds a file offset, not an RVA
    image_size = SECTION_RVA + ((len(rsrc) + 0xFFF) & ~0xFFF)
    optional = struct.pack("<HBBIIIIIQIIHHHHHHIIIIHHQQQQII", 0x20B, 14, 0, 0, raw_size, 0, 0, 0,
                           0x140000000, 0x1000, FILE_ALIGN, 6, 0, 0, 0, 6, 0, 0, image_size, FILE_ALIGN,
                           0, 2, 0x8160, 0x100000, 0x1000, 0x100000, 0x1000, 0, 16)
    optional += b"".join(struct.pack("<II", rva, size) for rva, size in dirs)
    section = struct.pack("<8sIIIIIIHHI", b".rsrc", len(rsrc), SECTION_RVA, raw_size, FILE_ALIGN, 0, 0, 0, 0,
                          0x40000040)
    dos = b"MZ" + b"\0" * 58 + struct.pack("<I", 0x40)
    headers = dos + b"PE\0\0" + coff + optional + section
    headers += b"\0" * (FILE_ALIGN - len(headers))
    return headers + rsrc + b"\0" * (raw_size - len(rsrc)) + cert + appended


def dummy_signature(label: str) -> bytes:
    """A well-formed PKCS#7 SignedData with no signer: the certificate table has the real shape (so
    the structural checks apply) while no verifier could ever accept it as a signature."""
    from asn1crypto import cms

    signed = cms.SignedData({
        "version": "v1",
        "digest_algorithms": [{"algorithm": "sha256"}],
        "encap_content_info": {"content_type": "data", "content": label.encode()},
        "signer_infos": [],
    })
    return cms.ContentInfo({"content_type": "signed_data", "content": signed}).dump()
