"""PE, Authenticode and Mach-O signature checks on real third-party samples (SOURCES.md §8, §9)."""

from __future__ import annotations

import shutil
import struct
from datetime import datetime
from pathlib import Path

import pytest
from conftest import shared

from turncoat.evidence.base import IssueLog
from turncoat.store.schema import TRIAGE_TABLES
from turncoat.triage.authenticode import (
    OVERLAY_PROBLEM,
    PADDING_PROBLEM,
    authenticode_digest,
    check_signature,
)
from turncoat.triage.macho import inspect_macho, is_macho, read_code_signature_blob
from turncoat.triage.pe import inspect_mapped, inspect_pe, is_pe, parse_headers

COLUMNS = set(TRIAGE_TABLES["tri_file"])


def _pe(*parts: str) -> tuple[dict, IssueLog]:
    issues = IssueLog()
    row = inspect_pe(shared("artifacts", *parts), issues)
    assert set(row) <= COLUMNS, set(row) - COLUMNS
    return row, issues


def _problems(row: dict) -> list[str]:
    return (row["code_signature.problems"] or "").split(";") if row["code_signature.problems"] else []


def _report(*parts: str):
    data = shared("artifacts", *parts).read_bytes()
    issues = IssueLog()
    headers = parse_headers(data, len(data), issues)
    assert headers is not None
    return check_signature(data, headers.layout, issues), headers, data


# --------------------------------------------------------------------------- CVE-2013-3900


@pytest.mark.parametrize("name", ["wintrustpadded.ex_", "wintrustpadded.dl_"])
def test_padding_inside_certificate_table_is_flagged(name: str) -> None:
    report, _, _ = _report("authenticodelint", "pe", name)
    entry = report.entries[0]
    assert entry.der_length == 1764 and entry.length == 1776
    assert report.cert_padding_bytes == 4
    assert entry.padding_head == b"fail"
    assert PADDING_PROBLEM in report.problems
    row = report.to_row()
    assert row["pe.cert_padding_bytes"] == 4
    assert row["code_signature.digest_match"] is True      # Windows still says "signed"
    assert row["code_signature.status"] == "untrusted"     # self-signed "DO NOT TRUST"
    assert "self-signed" in row["code_signature.problems"]


@pytest.mark.parametrize("name", ["wintrustnonpadded.ex_", "wintrustnonpadded.dl_"])
def test_zero_alignment_is_not_padding(name: str) -> None:
    row, issues = _pe("authenticodelint", "pe", name)
    assert row["pe.cert_padding_bytes"] == 0
    assert row["pe.overlay_bytes"] == 0
    assert PADDING_PROBLEM not in _problems(row)
    assert row["code_signature.subject_name"] == "DO NOT TRUST"
    assert issues.count == 0


def test_overlay_after_certificate_table() -> None:
    row, _ = _pe("uthenticode", "pe", "YourPhone.exe")
    assert row["pe.overlay_bytes"] == 2600
    assert OVERLAY_PROBLEM in _problems(row)
    # The doctored leaf certificate no longer verifies under PCA 2011 (openssl agrees).
    assert row["code_signature.status"] == "invalid"
    assert row["code_signature.subject_name"] == "Microsoft Corporation"


# --------------------------------------------------------------------------- valid signatures


@pytest.mark.parametrize(("parts", "subject", "issuer"), [
    (("pypi-onnxruntime", "pe", "onnxruntime_providers_shared.dll"), "Microsoft Corporation",
     "Microsoft Code Signing PCA 2024"),
    (("pypi-debugpy", "pe", "attach_amd64.dll"), "Microsoft 3rd Party Application Component",
     "Microsoft Code Signing PCA 2024"),
    (("velociraptor", "pe", "winpmem_x64.sys"), "Binalyze LLC", "GlobalSign CodeSigning CA - G3"),
])
def test_valid_signatures(parts: tuple[str, ...], subject: str, issuer: str) -> None:
    row, issues = _pe(*parts)
    assert row["file.type"] == "pe"
    assert row["code_signature.status"] == "valid", row["code_signature.problems"]
    assert row["code_signature.digest_match"] is True
    assert row["code_signature.subject_name"] == subject
    assert row["code_signature.issuer"] == issuer
    assert row["pe.cert_padding_bytes"] == 0 and row["pe.overlay_bytes"] == 0
    assert isinstance(row["code_signature.timestamp"], datetime)
    assert row["code_signature.timestamp"].utcoffset().total_seconds() == 0
    assert not [p for p in _problems(row) if not p.startswith("nested signature")]
    assert issues.count == 0


def test_winpmem_nested_hardware_compatibility_signature() -> None:
    report, _, _ = _report("velociraptor", "pe", "winpmem_x64.sys")
    assert report.primary is not None
    nested = report.primary.nested
    assert len(nested) == 1
    assert nested[0].subject == "Microsoft Windows Hardware Compatibility Publisher"
    assert nested[0].status == "valid" and nested[0].digest_algorithm == "sha256"
    assert any("Microsoft Windows Hardware Compatibility Publisher" in p for p in report.problems)


def test_version_strings() -> None:
    row, _ = _pe("pypi-onnxruntime", "pe", "onnxruntime_providers_shared.dll")
    assert row["pe.company"] == "Microsoft Corporation"
    assert row["pe.original_file_name"] == "onnxruntime_providers_shared.dll"
    assert row["pe.description"] == "ONNX Runtime"
    assert row["pe.file_version"].startswith("1.")


# --------------------------------------------------------------------------- unsigned / imports


def test_plaso_unsigned_imports_and_imphash() -> None:
    row, issues = _pe("plaso", "pe", "test_pe.exe")
    assert row["code_signature.status"] == "unsigned"
    assert row["pe.imphash"] == "8d0739063fc8f9955cc6696b462544ab"
    assert row["pe.imports"].split(";") == ["kernel32.dll", "user32.dll"]  # USER32 is delay-loaded
    assert row["pe.overlay_bytes"] is None
    assert issues.count == 0


def test_pegoat_unsigned_and_catalog_hint(tmp_path: Path) -> None:
    path = shared("artifacts", "uthenticode", "pe", "32", "pegoat.exe")
    assert inspect_pe(path, IssueLog())["code_signature.status"] == "unsigned"
    assert inspect_pe(path, IssueLog(), system_file=True)["code_signature.status"] == "catalog-signed?"


def test_is_pe() -> None:
    head = shared("artifacts", "plaso", "pe", "test_pe.exe").read_bytes()[:4096]
    assert is_pe(head)
    assert not is_pe(b"MZ" + b"\x00" * 10)
    assert not is_pe(b"\x7fELF" + b"\x00" * 100)
    assert not is_macho(head)


# --------------------------------------------------------------------------- self-signed, nested


@pytest.mark.parametrize("bits", ["32", "64"])
def test_pegoat_self_signed(bits: str) -> None:
    row, _ = _pe("uthenticode", "pe", bits, "pegoat-authenticode.exe")
    assert row["code_signature.status"] == "untrusted"
    assert row["code_signature.subject_name"] == "contact@trailofbits.com"
    assert row["code_signature.digest_match"] is True
    assert "self-signed" in _problems(row)


@pytest.mark.parametrize(("bits", "serial"), [("32", "2d96c54ba915f7b04781d80a799534b1"),
                                              ("64", "24669c98d6ed318540f4953cd30250ab")])
def test_pegoat_nested_serials(bits: str, serial: str) -> None:
    report, _, _ = _report("uthenticode", "pe", bits, "pegoat-authenticode-nested.exe")
    assert report.status == "untrusted"
    nested = report.primary.nested
    assert [n.serial for n in nested] == [serial]
    assert nested[0].subject == "A SHA-256 cert" and nested[0].digest_match is True
    assert any(serial in p for p in report.problems)


def test_duplicated_certificate_entries() -> None:
    report, headers, data = _report("uthenticode", "pe", "32", "pegoat-authenticode_duplicated.exe")
    assert len(report.entries) == 2
    assert any("2 WIN_CERTIFICATE entries" in p for p in report.problems)
    # uthenticode's Authenticode hashes of this file
    assert authenticode_digest(data, headers.layout, "md5").hex() == "64c29391b57679b2973ac562cf64685d"
    assert authenticode_digest(data, headers.layout, "sha1").hex() == \
        "6663dd7c24fa84fce7f16e0b02689952c06cfa22"
    assert authenticode_digest(data, headers.layout, "sha256").hex() == \
        "ea013992f99840f76dcac225dd1262edcec3254511b250a6d1e98d99fc48f815"


# --------------------------------------------------------------------------- invalid


def test_tls_certificate_is_not_for_code_signing() -> None:
    row, _ = _pe("uthenticode", "pe", "A_SSLippery_Slope.exe")
    assert row["code_signature.status"] == "invalid"
    assert "not valid for code signing" in _problems(row)
    assert row["code_signature.subject_name"] == "test.billdemirkapi.me"


def test_curveball_spoofed_root() -> None:
    row, _ = _pe("signify", "pe", "7z1900-x64_signed.exe")
    assert row["code_signature.status"] == "invalid"
    assert "CVE-2020-0601" in row["code_signature.problems"]
    assert row["code_signature.subject_name"] == "ollypwn"
    assert row["pe.product"] == "7-Zip"


def test_modified_byte_breaks_digest(tmp_path: Path) -> None:
    data = bytearray(shared("artifacts", "pypi-onnxruntime", "pe",
                            "onnxruntime_providers_shared.dll").read_bytes())
    data[0x500] ^= 0xFF  # inside the first section
    issues = IssueLog()
    row = inspect_mapped(bytes(data), len(data), issues)
    assert row["code_signature.digest_match"] is False
    assert row["code_signature.status"] == "invalid"


def test_appended_data_breaks_digest() -> None:
    """Bytes appended after the certificate table are hashed, as Windows does."""
    data = shared("artifacts", "pypi-debugpy", "pe", "attach_amd64.dll").read_bytes() + b"stuffed"
    row = inspect_mapped(data, len(data), IssueLog())
    assert row["pe.overlay_bytes"] == 7
    assert row["code_signature.digest_match"] is False
    assert row["code_signature.status"] == "invalid"
    assert OVERLAY_PROBLEM in _problems(row)
    assert any("matches only without the data appended" in p for p in _problems(row))


def test_padding_with_zeros_beyond_alignment(tmp_path: Path) -> None:
    """Eight or more zero bytes after the DER are more than alignment: counted."""
    src = shared("artifacts", "authenticodelint", "pe", "wintrustnonpadded.ex_").read_bytes()
    data = bytearray(src)
    headers = parse_headers(bytes(data), len(data), IssueLog())
    offset, size = headers.layout.cert_table_offset, headers.layout.cert_table_size
    data += b"\x00" * 16
    struct.pack_into("<I", data, headers.layout.cert_dir_offset + 4, size + 16)
    struct.pack_into("<I", data, offset, size + 16)
    row = inspect_mapped(bytes(data), len(data), IssueLog())
    assert row["pe.cert_padding_bytes"] == 20
    assert PADDING_PROBLEM in _problems(row)


def test_table_grown_past_its_only_entry() -> None:
    """A certificate table larger than its WIN_CERTIFICATE: the extra bytes are padding too."""
    data = bytearray(shared("artifacts", "authenticodelint", "pe", "wintrustnonpadded.dl_").read_bytes())
    headers = parse_headers(bytes(data), len(data), IssueLog())
    size = headers.layout.cert_table_size
    data += b"3CX payload!" + b"\x00" * 4
    struct.pack_into("<I", data, headers.layout.cert_dir_offset + 4, size + 16)
    issues = IssueLog()
    row = inspect_mapped(bytes(data), len(data), issues)
    assert row["pe.cert_padding_bytes"] == 16
    assert row["pe.overlay_bytes"] == 0
    assert PADDING_PROBLEM in _problems(row)
    assert issues.count == 1


# --------------------------------------------------------------------------- hostile input


def test_truncated_signed_dll_is_malformed(tmp_path: Path) -> None:
    src = shared("artifacts", "pypi-onnxruntime", "pe", "onnxruntime_providers_shared.dll")
    data = src.read_bytes()
    headers = parse_headers(data, len(data), IssueLog())
    cut = headers.layout.cert_table_offset + headers.layout.cert_table_size // 2
    path = tmp_path / "cut.dll"
    path.write_bytes(data[:cut])
    issues = IssueLog()
    row = inspect_pe(path, issues)
    assert row["file.type"] == "pe"
    assert row["code_signature.status"] == "malformed"
    assert issues.count >= 1
    assert any("truncated" in i.message or "past" in i.message for i in issues.listed)
    assert row["pe.company"] == "Microsoft Corporation"  # what could be read is kept


@pytest.mark.parametrize("cut", [0, 1, 63, 64, 200, 300, 1024])
def test_truncated_headers_never_crash(tmp_path: Path, cut: int) -> None:
    data = shared("artifacts", "velociraptor", "pe", "winpmem_x64.sys").read_bytes()[:cut]
    path = tmp_path / "x.sys"
    path.write_bytes(data)
    row = inspect_pe(path, IssueLog())
    assert row["file.type"] in ("pe", "other")


def test_garbage_pkcs7_is_malformed(tmp_path: Path) -> None:
    data = bytearray(shared("artifacts", "uthenticode", "pe", "64", "pegoat-authenticode.exe").read_bytes())
    headers = parse_headers(bytes(data), len(data), IssueLog())
    start = headers.layout.cert_table_offset + 8
    data[start + 40:start + 400] = bytes(range(256)) + bytes(104)
    issues = IssueLog()
    row = inspect_mapped(bytes(data), len(data), issues)
    assert row["code_signature.status"] in ("malformed", "invalid")
    assert issues.count >= 1 or row["code_signature.status"] == "invalid"


def test_copy_on_disk_matches_in_memory(tmp_path: Path) -> None:
    src = shared("artifacts", "uthenticode", "pe", "YourPhone.exe")
    path = tmp_path / "copy.exe"
    shutil.copyfile(src, path)
    assert inspect_pe(path, IssueLog()) == inspect_mapped(src.read_bytes(), src.stat().st_size, IssueLog())


# --------------------------------------------------------------------------- Mach-O


def test_macho_developer_id() -> None:
    path = shared("artifacts", "sparkle", "macos", "extracted", "DevSignedApp.app", "Contents", "MacOS",
                  "SignedApp")
    assert is_macho(path.read_bytes()[:64])
    issues = IssueLog()
    row = inspect_macho(path, issues)
    assert set(row) <= COLUMNS  # code_signature.identifier is a column of tri_file
    assert row["file.type"] == "macho"
    assert row["code_signature.status"] == "signed"
    assert row["code_signature.team_id"] == "ZCK58M894E"
    assert "Developer ID Application: Mayur Pawashe" in row["code_signature.subject_name"]
    assert row["code_signature.identifier"] == "com.zoo.SignedApp"
    assert row["code_signature.digest_match"] is True
    assert issues.count == 0


def test_macho_universal_platform_binary() -> None:
    path = shared("artifacts", "artemis", "macos", "macho", "ls")
    assert is_macho(path.read_bytes()[:64])
    row = inspect_macho(path, IssueLog())
    assert row["code_signature.identifier"] == "com.apple.ls"
    assert row["code_signature.team_id"] is None
    assert row["code_signature.status"] == "signed"
    assert row["code_signature.problems"] is None


def test_macho_modified_page_is_detected(tmp_path: Path) -> None:
    src = shared("artifacts", "sparkle", "macos", "extracted", "DevSignedApp.app", "Contents", "MacOS",
                 "SignedApp")
    data = bytearray(src.read_bytes())
    data[0x4010] ^= 0x01
    path = tmp_path / "SignedApp"
    path.write_bytes(data)
    row = inspect_macho(path, IssueLog())
    assert row["code_signature.digest_match"] is False
    assert "modified after signing" in row["code_signature.problems"]


def test_raw_superblob() -> None:
    issues = IssueLog()
    sig = read_code_signature_blob(shared("artifacts", "artemis", "macos", "macho", "codesign.raw").read_bytes(),
                                   issues)
    assert sig is not None and issues.count == 0
    assert sig.identifier and sig.code_directory
    assert sig.status in ("signed", "adhoc")


def test_java_class_is_not_macho() -> None:
    assert not is_macho(bytes.fromhex("cafebabe00000034") + b"\x00" * 8)
    assert is_macho(bytes.fromhex("cafebabe00000002") + b"\x00" * 8)
    assert is_macho(bytes.fromhex("cffaedfe0c000001"))


@pytest.mark.parametrize("cut", [8, 30, 100, 5000, 20000])
def test_truncated_macho_never_crashes(tmp_path: Path, cut: int) -> None:
    data = shared("artifacts", "artemis", "macos", "macho", "ls").read_bytes()[:cut]
    path = tmp_path / "ls"
    path.write_bytes(data)
    issues = IssueLog()
    row = inspect_macho(path, issues)
    assert row["file.type"] in ("macho", "other")
    if row["file.type"] == "macho":
        assert row["code_signature.status"] in ("malformed", "unsigned")
