"""Mach-O code signatures: who signed a macOS binary, with which identifier and team.

The trojanized 3CX macOS app (3CX Desktop App 18.11.1213, 18.12.402/407/416) was signed and notarized
with 3CX's own Developer ID (team 33CF4654HL), so "signed" proves nothing by itself; what triage needs
is the identifier, the team ID and the signer's name to compare with the vendor's known builds.

This reads thin and universal (fat) Mach-O headers, finds LC_CODE_SIGNATURE, and parses the embedded
signature SuperBlob: the CodeDirectory (identifier, team ID, flags) and the CMS blob (signer
certificate). Layouts follow Apple's public xnu headers ``EXTERNAL_HEADERS/mach-o/loader.h``,
``mach-o/fat.h`` and ``osfmk/kern/cs_blobs.h``.

**No trust evaluation**: the CMS signature and the certificate chain are *not* verified and
notarization is not checked; ``status`` says only "signed" (a CMS signer is present), "adhoc" or
"unsigned". ``digest_match`` is the check of the CodeDirectory's page hashes against the slice's
bytes, which catches code modified after signing.
"""

from __future__ import annotations

import hashlib
import mmap
import struct
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from asn1crypto import cms
from asn1crypto import tsp as _tsp  # noqa: F401  (registers TSTInfo for timestamp tokens)

from turncoat.evidence.base import IssueLog, ReadIssue, Row

Buffer = bytes | bytearray | memoryview | mmap.mmap

MH_MAGIC, MH_MAGIC_64 = 0xFEEDFACE, 0xFEEDFACF
FAT_MAGIC, FAT_MAGIC_64 = 0xCAFEBABE, 0xCAFEBABF
LC_CODE_SIGNATURE = 0x1D

CSMAGIC_EMBEDDED_SIGNATURE = 0xFADE0CC0
CSMAGIC_CODEDIRECTORY = 0xFADE0C02
CSMAGIC_BLOBWRAPPER = 0xFADE0B01
CSSLOT_CODEDIRECTORY = 0
CSSLOT_SIGNATURESLOT = 0x10000
CS_ADHOC = 0x0002
CS_LINKER_SIGNED = 0x20000
CD_VERSION_TEAMID = 0x20200
CD_VERSION_SCATTER = 0x20100

# hashType → (hashlib name, stored length)
_CD_HASHES = {1: ("sha1", 20), 2: ("sha256", 32), 3: ("sha256", 20), 4: ("sha384", 48)}

MAX_FAT_ARCHS = 30            # Java class files share 0xcafebabe; their "count" is the version, >= 45
MAX_LOAD_COMMANDS = 4096
MAX_SIGNATURE_BYTES = 64 * 1024 * 1024


def _be32(data: Buffer, offset: int) -> int:
    return struct.unpack_from(">I", data, offset)[0]


def is_macho(head: bytes) -> bool:
    """Thin Mach-O (either endian) or a universal binary with a plausible architecture count."""
    if len(head) < 8:
        return False
    magic_be = struct.unpack_from(">I", head)[0]
    magic_le = struct.unpack_from("<I", head)[0]
    if MH_MAGIC in (magic_be, magic_le) or MH_MAGIC_64 in (magic_be, magic_le):
        return True
    for magic, endian in ((magic_be, ">"), (magic_le, "<")):
        if magic in (FAT_MAGIC, FAT_MAGIC_64):
            count = struct.unpack_from(endian + "I", head, 4)[0]
            return 0 < count <= MAX_FAT_ARCHS
    return False


@dataclass
class CodeSignature:
    """What an embedded code-signature SuperBlob says."""

    identifier: str | None = None
    team_id: str | None = None
    flags: int = 0
    version: int = 0
    platform: int = 0
    hash_type: int = 0
    page_size: int = 0
    code_limit: int = 0
    n_code_slots: int = 0
    hash_offset: int = 0          # within the CodeDirectory
    code_directory: bytes = b""
    cms_der: bytes = b""
    signer_subject: str | None = None
    signer_issuer: str | None = None
    signer_serial: str | None = None
    signer_team: str | None = None  # the OU of a Developer ID certificate
    signing_time: datetime | None = None

    @property
    def adhoc(self) -> bool:
        return bool(self.flags & (CS_ADHOC | CS_LINKER_SIGNED)) or not self.cms_der

    @property
    def status(self) -> str:
        return "adhoc" if self.adhoc else "signed"


def _c_string(blob: bytes, offset: int) -> str | None:
    if not 0 < offset < len(blob):
        return None
    end = blob.find(b"\x00", offset)
    text = blob[offset:end if end >= 0 else len(blob)]
    return text.decode("utf-8", "replace") or None


def _parse_code_directory(cd: bytes, sig: CodeSignature, issues: IssueLog, base: int) -> None:
    if len(cd) < 44:
        issues.add(ReadIssue("CodeDirectory truncated", offset=base))
        return
    (_, length, version, flags, hash_offset, ident_offset, _, n_code_slots, code_limit,
     hash_size, hash_type, platform, page_shift) = struct.unpack_from(">9I4B", cd, 0)
    sig.code_directory = cd[:length]
    sig.version, sig.flags, sig.platform, sig.hash_type = version, flags, platform, hash_type
    sig.page_size = 1 << page_shift if page_shift else 0
    sig.code_limit, sig.n_code_slots, sig.hash_offset = code_limit, n_code_slots, hash_offset
    if hash_type in _CD_HASHES and _CD_HASHES[hash_type][1] != hash_size:
        issues.add(ReadIssue(f"CodeDirectory hash size {hash_size} does not fit hash type {hash_type}",
                             offset=base))
    sig.identifier = _c_string(cd, ident_offset)
    if version >= CD_VERSION_TEAMID and len(cd) >= 52:
        sig.team_id = _c_string(cd, struct.unpack_from(">I", cd, 48)[0])


def _name_part(name: object, key: str) -> str | None:
    value = name.get(key) if isinstance(name, dict) else None
    if isinstance(value, list):
        value = value[0] if value else None
    return str(value) if value else None


def _parse_cms(der: bytes, sig: CodeSignature, issues: IssueLog, base: int) -> None:
    """Signer certificate subject (CN, OU) and signing time; nothing is verified."""
    try:
        signed = cms.ContentInfo.load(der)["content"]
        signer = signed["signer_infos"][0]
        sid = signer["sid"]
        for choice in signed["certificates"] or []:
            cert = choice.chosen
            if sid.name == "issuer_and_serial_number":
                match = (cert.serial_number == sid.chosen["serial_number"].native
                         and cert.issuer == sid.chosen["issuer"])
            else:
                match = cert.key_identifier == sid.chosen.native
            if match:
                subject = cert.subject.native
                sig.signer_subject = _name_part(subject, "common_name") or cert.subject.human_friendly
                sig.signer_team = _name_part(subject, "organizational_unit_name")
                sig.signer_issuer = _name_part(cert.issuer.native, "common_name")
                serial = format(cert.serial_number, "x")
                sig.signer_serial = serial if len(serial) % 2 == 0 else "0" + serial
                break
        sig.signing_time = _signing_time(signer)
    except Exception as exc:  # noqa: BLE001  (hostile ASN.1 may fail anywhere inside asn1crypto)
        issues.add(ReadIssue(f"code-signature CMS blob cannot be parsed: {type(exc).__name__}: {exc}",
                             offset=base))


def _signing_time(signer: cms.SignerInfo) -> datetime | None:
    """A timestamp token's genTime when present, else the signed signingTime attribute."""
    for attr in signer["unsigned_attrs"] or []:
        if attr["type"].native == "signature_time_stamp_token":
            for token in attr["values"]:
                tst = token["content"]["encap_content_info"]["content"].parsed
                return _utc(tst["gen_time"].native)
    for attr in signer["signed_attrs"] or []:
        if attr["type"].native == "signing_time":
            for value in attr["values"]:
                return _utc(value.native)
    return None


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def read_code_signature_blob(data: bytes, issues: IssueLog | None = None,
                             base: int = 0) -> CodeSignature | None:
    """Parse an embedded-signature SuperBlob (``0xfade0cc0``), e.g. a raw ``codesign.raw`` dump.

    ``base`` is the blob's file offset, used only to place issues. None if it is not a SuperBlob.
    """
    issues = issues if issues is not None else IssueLog()
    if len(data) < 12 or _be32(data, 0) != CSMAGIC_EMBEDDED_SIGNATURE:
        issues.add(ReadIssue("code signature is not an embedded-signature SuperBlob", offset=base))
        return None
    length, count = struct.unpack_from(">II", data, 4)
    if length > len(data):
        issues.add(ReadIssue(f"SuperBlob claims {length} bytes, {len(data)} present", offset=base))
    blob = bytes(data[:min(length, len(data))])
    sig = CodeSignature()
    if 12 + 8 * count > len(blob):
        issues.add(ReadIssue(f"SuperBlob index of {count} entries truncated", offset=base))
        count = max(0, (len(blob) - 12) // 8)
    for i in range(count):
        slot, offset = struct.unpack_from(">II", blob, 12 + 8 * i)
        if offset + 8 > len(blob):
            issues.add(ReadIssue(f"SuperBlob slot {slot:#x} points outside the blob", offset=base + offset))
            continue
        magic, sub_length = struct.unpack_from(">II", blob, offset)
        sub = blob[offset:offset + sub_length]
        if slot == CSSLOT_CODEDIRECTORY and magic == CSMAGIC_CODEDIRECTORY:
            _parse_code_directory(sub, sig, issues, base + offset)
        elif slot == CSSLOT_SIGNATURESLOT and magic == CSMAGIC_BLOBWRAPPER:
            sig.cms_der = sub[8:]
            if sig.cms_der:
                _parse_cms(sig.cms_der, sig, issues, base + offset + 8)
    if not sig.code_directory:
        issues.add(ReadIssue("SuperBlob has no CodeDirectory", offset=base))
    return sig


def check_page_hashes(data: Buffer, slice_offset: int, sig: CodeSignature) -> bool | None:
    """Do the slice's pages still hash to the CodeDirectory's code slots? None if not checkable."""
    if sig.hash_type not in _CD_HASHES or not sig.page_size or not sig.code_directory:
        return None
    name, size = _CD_HASHES[sig.hash_type]
    cd = sig.code_directory
    if sig.hash_offset + sig.n_code_slots * size > len(cd):
        return None
    end = slice_offset + sig.code_limit
    if end > len(data):
        return False
    for i in range(sig.n_code_slots):
        start = slice_offset + i * sig.page_size
        page = data[start:min(end, start + sig.page_size)]
        expected = cd[sig.hash_offset + i * size:sig.hash_offset + (i + 1) * size]
        if hashlib.new(name, page).digest()[:size] != expected:
            return False
    return True


# --------------------------------------------------------------------------- slices


@dataclass
class Slice:
    """One architecture of a (possibly universal) Mach-O and its signature."""

    offset: int
    size: int
    cputype: int = 0
    signature: CodeSignature | None = None
    signed: bool = False          # has LC_CODE_SIGNATURE
    digest_match: bool | None = None
    problems: list[str] = field(default_factory=list)


def list_slices(data: Buffer, size: int, issues: IssueLog) -> list[Slice]:
    """(offset, size) of each thin image: the whole file, or each fat_arch entry."""
    magic_be = _be32(data, 0)
    magic_le = struct.unpack_from("<I", data, 0)[0]
    for magic, endian in ((magic_be, ">"), (magic_le, "<")):
        if magic in (FAT_MAGIC, FAT_MAGIC_64):
            count = struct.unpack_from(endian + "I", data, 4)[0]
            if not 0 < count <= MAX_FAT_ARCHS:
                issues.add(ReadIssue(f"universal header with {count} architectures", offset=4))
                return []
            wide = magic == FAT_MAGIC_64
            entry, fmt = (32, endian + "iiQQI") if wide else (20, endian + "iiIII")
            slices = []
            for i in range(count):
                pos = 8 + entry * i
                if pos + entry > size:
                    issues.add(ReadIssue("universal header truncated", offset=pos))
                    break
                cputype, _, offset, length, _ = struct.unpack_from(fmt, data, pos)
                if offset + length > size:
                    issues.add(ReadIssue(f"architecture {i} runs past the end of the file", offset=pos))
                slices.append(Slice(offset, min(length, max(0, size - offset)), cputype))
            return slices
    return [Slice(0, size)]


def read_slice(data: Buffer, sl: Slice, issues: IssueLog) -> None:
    """Mach header, load commands, LC_CODE_SIGNATURE and its SuperBlob for one slice."""
    base, end = sl.offset, sl.offset + sl.size
    if base + 28 > end:
        issues.add(ReadIssue("Mach-O header truncated", offset=base))
        sl.problems.append("truncated")
        return
    magic_be = _be32(data, base)
    if magic_be in (MH_MAGIC, MH_MAGIC_64):
        endian, wide = ">", magic_be == MH_MAGIC_64
    else:
        magic_le = struct.unpack_from("<I", data, base)[0]
        if magic_le not in (MH_MAGIC, MH_MAGIC_64):
            issues.add(ReadIssue(f"not a Mach-O header (magic {magic_be:#010x})", offset=base))
            sl.problems.append("not a Mach-O slice")
            return
        endian, wide = "<", magic_le == MH_MAGIC_64
    cputype, _, _, ncmds, _ = struct.unpack_from(endian + "iiIII", data, base + 4)
    sl.cputype = cputype
    pos = base + (32 if wide else 28)
    for _ in range(min(ncmds, MAX_LOAD_COMMANDS)):
        if pos + 8 > end:
            issues.add(ReadIssue("load commands truncated", offset=pos))
            break
        cmd, cmdsize = struct.unpack_from(endian + "II", data, pos)
        if cmd == LC_CODE_SIGNATURE and pos + 16 <= end:
            dataoff, datasize = struct.unpack_from(endian + "II", data, pos + 8)
            sl.signed = True
            start = base + dataoff
            if datasize > MAX_SIGNATURE_BYTES or start + datasize > end:
                issues.add(ReadIssue("code signature runs past the slice or is absurdly large",
                                     offset=start))
                sl.problems.append("code signature truncated")
                datasize = max(0, min(datasize, end - start, MAX_SIGNATURE_BYTES))
            blob = bytes(data[start:start + datasize])
            sl.signature = read_code_signature_blob(blob, issues, base=start)
            if sl.signature is not None:
                sl.digest_match = check_page_hashes(data, base, sl.signature)
                if sl.digest_match is False:
                    sl.problems.append("page hashes do not match the CodeDirectory (modified after "
                                       "signing)")
            return
        if cmdsize < 8:
            issues.add(ReadIssue(f"load command with size {cmdsize}", offset=pos))
            break
        pos += cmdsize


# --------------------------------------------------------------------------- the row


def _team_like(ou: str | None) -> str | None:
    """A certificate OU is a team ID only when it looks like one (10 upper-case alphanumerics);
    Apple's own certificates say "Apple Software", and platform binaries have no team."""
    return ou if ou and len(ou) == 10 and ou.isalnum() and ou.upper() == ou else None


def _status(sl: Slice) -> str:
    if not sl.signed:
        return "unsigned"
    if sl.signature is None or not sl.signature.code_directory:
        return "malformed"
    return sl.signature.status


def inspect_mapped(data: Buffer, size: int, issues: IssueLog) -> Row:
    """``inspect_macho`` on data already in memory or mapped."""
    slices = list_slices(data, size, issues)
    for sl in slices:
        read_slice(data, sl, issues)
    row: Row = {"file.type": "macho", "code_signature.status": "malformed",
                "code_signature.subject_name": None, "code_signature.issuer": None,
                "code_signature.serial_number": None, "code_signature.timestamp": None,
                "code_signature.team_id": None, "code_signature.identifier": None,
                "code_signature.digest_match": None, "code_signature.problems": None}
    if not slices:
        row["code_signature.problems"] = "no readable architecture"
        return row
    # The first signed slice speaks for the file; disagreement between slices is a problem.
    primary = next((s for s in slices if s.signature is not None), slices[0])
    sig = primary.signature
    problems = [p for s in slices for p in s.problems]
    row["code_signature.status"] = _status(primary)
    if sig is not None:
        row.update({
            "code_signature.subject_name": sig.signer_subject,
            "code_signature.issuer": sig.signer_issuer,
            "code_signature.serial_number": sig.signer_serial,
            "code_signature.timestamp": sig.signing_time,
            "code_signature.team_id": sig.team_id or _team_like(sig.signer_team),
            "code_signature.identifier": sig.identifier,
        })
        matches = [s.digest_match for s in slices if s.signature is not None]
        row["code_signature.digest_match"] = (False if False in matches
                                              else True if matches and all(matches) else None)
    views = {(_status(s), s.signature.identifier if s.signature else None,
              s.signature.team_id if s.signature else None) for s in slices}
    if len(views) > 1:
        problems.append("architectures are signed differently: " +
                        ", ".join(f"{st}/{ident}/{team}" for st, ident, team in sorted(views, key=str)))
    row["code_signature.problems"] = ";".join(dict.fromkeys(problems)) or None
    return row


def inspect_macho(path: Path, issues: IssueLog) -> Row:
    """Read one Mach-O (thin or universal) into ``tri_file`` columns plus
    ``code_signature.identifier`` (the CodeDirectory identifier, e.g. ``com.apple.ls``)."""
    try:
        size = path.stat().st_size
        if size < 28:
            issues.add(ReadIssue(f"file too small for a Mach-O ({size} bytes)"))
            return {"file.type": "other"}
        with path.open("rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mapped:
            return inspect_mapped(mapped, size, issues)
    except OSError as exc:
        issues.add(ReadIssue(f"cannot read file: {exc}"))
        return {"file.type": None}

