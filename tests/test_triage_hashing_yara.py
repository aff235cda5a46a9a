"""Hashing of evidence files and the 3cx-2023 YARA pack.

Every "malicious" file here is built from benign bytes: random data, a minimal PE or ICO header, and
the structural feature a rule looks for (a marker, a key string, an appended base64 trailer). None of
them is, or contains, real malware. Ordinary files (the shared signed DLLs, plain icons, random data,
the rule files and reports that quote the same strings) must not fire.
"""

from __future__ import annotations

import base64
import hashlib
import os
import random
import shutil
import struct
import subprocess
import tracemalloc
from pathlib import Path

import pytest
import yara
from conftest import SHARED, shared

from turncoat.evidence.base import IssueLog
from turncoat.store.schema import TRIAGE_TABLES
from turncoat.triage import hashing
from turncoat.triage.hashing import Digests, hash_file, hash_files
from turncoat.triage.yara_scan import (
    PACK_RULES,
    compile_rules,
    rule_meta,
    scan_file,
    scan_files,
)

STAGES = {"vulnerable-installed", "armed-dormant", "c2-contact", "payload", "data-stolen"}
RC4_KEY = b"3jB(2bsG#@c7"
MARKER = bytes.fromhex("FEEDFACE")


def rand(n: int, seed: int) -> bytes:
    return random.Random(seed).randbytes(n)


def write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


# ------------------------------------------------------------------------------------------ hashing

def test_known_digests_of_abc_and_empty(tmp_path: Path) -> None:
    abc = hash_file(write(tmp_path / "abc", b"abc"))
    assert abc == Digests(
        sha256="ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
        sha1="a9993e364706816aba3e25717850c26c9cd0d89d",
        md5="900150983cd24fb0d6963f7d28e17f72",
        size=3,
    )
    empty = hash_file(write(tmp_path / "empty", b""))
    assert empty.sha256 == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    assert empty.sha1 == "da39a3ee5e6b4b0d3255bfef95601890afd80709"
    assert empty.md5 == "d41d8cd98f00b204e9800998ecf8427e"
    assert empty.size == 0


@pytest.mark.parametrize("size", [hashing.CHUNK - 1, hashing.CHUNK, hashing.CHUNK + 1, 3 * hashing.CHUNK + 7])
def test_chunk_boundaries(tmp_path: Path, size: int) -> None:
    data = rand(size, size)
    got = hash_file(write(tmp_path / "f", data))
    assert (got.sha256, got.sha1, got.md5, got.size) == (
        hashlib.sha256(data).hexdigest(), hashlib.sha1(data).hexdigest(), hashlib.md5(data).hexdigest(), size)


def test_50_mb_file_matches_one_shot_digests_with_flat_memory(tmp_path: Path) -> None:
    data = os.urandom(50 * 1024 * 1024)
    path = write(tmp_path / "big.bin", data)
    expected = (hashlib.sha256(data).hexdigest(), hashlib.sha1(data).hexdigest(), hashlib.md5(data).hexdigest())
    del data
    hash_file(write(tmp_path / "warm", b"x"))  # this thread's buffer exists before measuring
    tracemalloc.start()
    try:
        got = hash_file(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert (got.sha256, got.sha1, got.md5, got.size) == (*expected, 50 * 1024 * 1024)
    assert peak < 4 * 1024 * 1024, f"hashing a 50 MB file allocated {peak:,} bytes at peak"


def test_problems_come_back_as_messages_in_input_order(tmp_path: Path) -> None:
    good = [write(tmp_path / f"f{i}", rand(100 * i + 1, i)) for i in range(40)]
    missing = tmp_path / "gone.bin"
    folder = tmp_path / "folder"
    folder.mkdir()
    big = write(tmp_path / "big", b"x" * 5000)
    paths = [good[0], missing, *good[1:20], folder, big, *good[20:]]
    results = list(hash_files(paths, workers=4, max_bytes=4096))
    assert [r[0] for r in results] == paths  # the paths as given, in order
    by_path = {p: (d, e) for p, d, e in results}
    for path in good:
        digests, error = by_path[path]
        assert error is None and digests.sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert by_path[missing][0] is None and "not found" in by_path[missing][1]
    assert by_path[folder][0] is None and by_path[folder][1]
    assert by_path[big][0] is None and "size limit" in by_path[big][1]
    # without a bound the same file is hashed
    assert next(iter(hash_files([big])))[1].size == 5000


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() == 0, reason="needs POSIX permissions, not root")
def test_unreadable_file_is_reported(tmp_path: Path) -> None:
    path = write(tmp_path / "locked", b"secret")
    path.chmod(0)
    try:
        [(_, digests, error)] = list(hash_files([path]))
    finally:
        path.chmod(0o600)
    assert digests is None and "permission" in error


def test_hashing_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write(tmp_path / "a", b"abc")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "b", b"")
    assert hashing.main([str(tmp_path)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("ba7816bf8f01cfea") and lines[0].endswith(f"3 {tmp_path / 'a'}")
    assert lines[1].split()[3] == "0" and len(lines) == 2


# ------------------------------------------------------------------------------------------ benign look-alikes

def pe_with_certificate_table(body: bytes, table: bytes, pe32plus: bool = True) -> bytes:
    """A minimal PE (no sections) whose security directory points at `table`, placed after `body`."""
    e_lfanew = 0x40
    dos = b"MZ" + b"\0" * (0x3C - 2) + struct.pack("<I", e_lfanew)
    coff = struct.pack("<HHIIIHH", 0x8664 if pe32plus else 0x14C, 0, 0, 0, 0, 240 if pe32plus else 224, 0x2022)
    if pe32plus:
        optional = struct.pack("<HBBIIIIIQIIHHHHHHIIIIHHQQQQII", 0x20B, 14, 0, 0, 0, 0, 0x1000, 0x1000,
                               0x180000000, 0x1000, 0x200, 6, 0, 0, 0, 6, 0, 0, 0x2000, 0x200, 0, 3, 0x160,
                               0x100000, 0x1000, 0x100000, 0x1000, 0, 16)
    else:
        optional = struct.pack("<HBBIIIIIIIIIHHHHHHIIIIHHIIIIII", 0x10B, 14, 0, 0, 0, 0, 0x1000, 0x1000, 0,
                               0x10000000, 0x1000, 0x200, 6, 0, 0, 0, 6, 0, 0, 0x2000, 0x200, 0, 3, 0x140,
                               0x100000, 0x1000, 0x100000, 0x1000, 0, 16)
    headers_len = len(dos) + 4 + len(coff) + len(optional) + 16 * 8
    table_offset = (headers_len + len(body) + 7) & ~7
    dirs = [(0, 0)] * 16
    dirs[4] = (table_offset, len(table))
    head = dos + b"PE\0\0" + coff + optional + b"".join(struct.pack("<II", *d) for d in dirs)
    data = head + body
    return data + b"\0" * (table_offset - len(data)) + table


def win_certificate(der_body: bytes, after: bytes = b"") -> bytes:
    """WIN_CERTIFICATE (revision 2.0, PKCS#7) holding a fake DER SEQUENCE and anything appended after it."""
    der = b"\x30\x82" + struct.pack(">H", len(der_body)) + der_body
    content = der + after
    content += b"\0" * (-len(content) % 8)
    return struct.pack("<IHH", 8 + len(content), 0x0200, 0x0002) + content


def fake_trojanized_d3dcompiler(payload_len: int = 0x43B08, marker_in_der: bool = False) -> bytes:
    der_body = rand(3000, 1)
    if marker_in_der:  # a marker among the signature's own bytes, with a long padding after them
        der_body = der_body[:1000] + MARKER + der_body[1000:]
        return pe_with_certificate_table(rand(20_000, 3), win_certificate(der_body, rand(payload_len, 2)))
    return pe_with_certificate_table(rand(20_000, 3), win_certificate(der_body, MARKER + rand(payload_len, 2)))


def pad_signed_pe(data: bytes, appended: bytes) -> bytes:
    """A signed PE with `appended` added inside its (last) certificate entry, lengths fixed up: the
    padding technique the public reports describe, applied to a benign file."""
    e_lfanew = struct.unpack_from("<I", data, 0x3C)[0]
    magic = struct.unpack_from("<H", data, e_lfanew + 24)[0]
    dd = e_lfanew + 24 + (112 if magic == 0x20B else 96) + 4 * 8
    offset, size = struct.unpack_from("<II", data, dd)
    assert offset + size == len(data), "the certificate table is expected at the end of the file"
    appended += b"\0" * (-len(appended) % 8)
    out = bytearray(data + appended)
    struct.pack_into("<II", out, dd, offset, size + len(appended))
    entry = offset
    while True:  # walk to the last WIN_CERTIFICATE entry and lengthen it
        length = struct.unpack_from("<I", out, entry)[0]
        following = entry + ((length + 7) & ~7)
        if following >= offset + size:
            break
        entry = following
    struct.pack_into("<I", out, entry, length + len(appended) + (-length % 8))
    return bytes(out)


def ico(image_extra: bytes = b"") -> bytes:
    """A valid 1x1 32-bit icon: ICONDIR, one ICONDIRENTRY, BITMAPINFOHEADER, one pixel, AND mask."""
    bmp = struct.pack("<IiiHHIIiiII", 40, 1, 2, 1, 32, 0, 8, 0, 0, 0, 0) + b"\x10\x20\x30\xff" + b"\0" * 4
    bmp += image_extra
    return struct.pack("<HHH", 0, 1, 1) + struct.pack("<BBBBHHII", 1, 1, 0, 0, 1, 32, len(bmp), 22) + bmp


def dead_drop_trailer(n_bytes: int = 80, seed: int = 7) -> bytes:
    return b"$" + base64.b64encode(rand(n_bytes, seed))


def pe(*parts: bytes) -> bytes:
    return b"MZ" + rand(4000, 11) + b"".join(p + rand(300, i) for i, p in enumerate(parts))


def xor(data: bytes, key: int) -> bytes:
    return bytes(b ^ key for b in data)


MACHO64 = bytes.fromhex("CFFAEDFE") + rand(2000, 21)
ICONIC = [b"SELECT url, title FROM urls ORDER BY id DESC LIMIT 500",
          b"SELECT url, title FROM moz_places ORDER BY id DESC LIMIT 500",
          b'{"HostName": "%s", "DomainName": "%s", "OsVersion": "%d.%d.%d"}',
          b"\\3CXDesktopApp\\config.json"]
BROWSERS = [b"AppData\\Local\\Google\\Chrome\\User Data", b"AppData\\Roaming\\Mozilla\\Firefox\\Profiles",
            b"AppData\\Local\\BraveSoftware\\Brave-Browser\\User Data"]
COOKIE = b";3cx_auth_token_content=%s;__tutma="
MAC_UA = (b"Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
          b"Chrome/108.0.5359.128 Safari/537.36")
PLIST = b"/System/Library/CoreServices/SystemVersion.plist"
WIN_UA = (b'1200 2400 "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) '
          b'3CXDesktopApp/18.11.1197 Chrome/102.0.5005.167 Electron/19.1.9 Safari/537.36"')


def wide(text: bytes) -> bytes:
    return text.decode().encode("utf-16-le")


# name → (content, rules expected to fire: the empty set means none may fire)
CASES: dict[str, tuple[bytes, set[str]]] = {
    "d3dcompiler_payload": (fake_trojanized_d3dcompiler(), {"TC_3CX_D3DCompiler_Payload_After_Signature"}),
    "d3dcompiler_pe32": (pe_with_certificate_table(b"\0" * 512, win_certificate(rand(2000, 4), MARKER + rand(0x20000, 5)),
                                                   pe32plus=False), {"TC_3CX_D3DCompiler_Payload_After_Signature"}),
    "marker_inside_signature": (fake_trojanized_d3dcompiler(marker_in_der=True), set()),
    "marker_short_tail": (fake_trojanized_d3dcompiler(payload_len=1024), set()),
    "marker_after_table": (pe_with_certificate_table(b"", win_certificate(rand(2000, 6))) + MARKER + rand(0x50000, 7),
                           set()),
    "marker_no_pe": (rand(5000, 8) + MARKER + rand(0x50000, 9), set()),
    "rc4_key_pe": (pe(RC4_KEY), {"TC_3CX_Loader_RC4_Key"}),
    "rc4_key_pe_wide": (pe(wide(RC4_KEY)), {"TC_3CX_Loader_RC4_Key"}),
    "rc4_key_text": (b"The loader's RC4 key is " + RC4_KEY + b" per public reports.\n", set()),
    "ico_dead_drop": (ico() + dead_drop_trailer(), {"TC_3CX_ICO_Dead_Drop_Base64_Trailer"}),
    "ico_dead_drop_newline": (ico() + dead_drop_trailer(31) + b"\r\n", {"TC_3CX_ICO_Dead_Drop_Base64_Trailer"}),
    "ico_plain": (ico(), set()),
    "ico_short_trailer": (ico() + b"$" + base64.b64encode(rand(20, 3)), set()),
    "ico_trailer_inside_image": (ico(image_extra=dead_drop_trailer()), set()),
    "ico_trailer_then_binary": (ico() + dead_drop_trailer() + b"\x00\x01\xff", set()),
    "not_ico_with_trailer": (b"\x89PNG\r\n\x1a\n" + rand(500, 12) + dead_drop_trailer(), set()),
    "iconic_pe": (pe(*ICONIC, *BROWSERS), {"TC_3CX_ICONIC_Stealer_Strings"}),
    "iconic_pe_wide_partial": (pe(wide(ICONIC[0]), wide(ICONIC[2]), wide(BROWSERS[0])), {"TC_3CX_ICONIC_Stealer_Strings"}),
    "browser_paths_only": (pe(*BROWSERS, ICONIC[3]), set()),
    "iconic_text_report": (b"\n".join(ICONIC + BROWSERS), set()),
    "macos_dylib_cookie": (MACHO64 + xor(COOKIE, 0x7A) + rand(500, 22), {"TC_3CX_MacOS_Dylib_XOR_Strings"}),
    "macos_dylib_ua_plist": (bytes.fromhex("CAFEBABE") + rand(900, 23) + xor(MAC_UA, 0x7A) + xor(PLIST, 0x7A),
                             {"TC_3CX_MacOS_Dylib_XOR_Strings"}),
    "macos_plain_strings": (MACHO64 + COOKIE + MAC_UA + PLIST, set()),
    "macos_other_key": (MACHO64 + xor(COOKIE, 0x7B) + xor(MAC_UA, 0x7B), set()),
    "macos_plist_alone": (MACHO64 + xor(PLIST, 0x7A), set()),
    "xor_strings_not_macho": (rand(100, 24) + xor(COOKIE, 0x7A) + xor(MAC_UA, 0x7A), set()),
    "suddenicon_dll": (pe(b"__tutma", b"__tutmc", wide(b"ChainingModeGCM")), {"TC_3CX_SUDDENICON_Downloader_Strings"}),
    "suddenicon_blob": (rand(0x65D, 31) + b"MZ" + rand(3000, 32) + WIN_UA + b"__tutma=%s" + b"__tutmc",
                        {"TC_3CX_SUDDENICON_Downloader_Strings"}),
    "cookies_only": (pe(b"__tutma", b"__tutmc"), set()),
    "random": (rand(1 << 20, 41), set()),
}


@pytest.fixture(scope="module")
def pack_rules():
    rules, problems = compile_rules([PACK_RULES])
    assert rules is not None and problems == []
    return rules


def fired(rules, path: Path) -> set[str]:
    issues = IssueLog()
    rows = scan_file(rules, path, 64 * 1024 * 1024, issues)
    assert issues.count == 0, issues.listed
    return {row["rule.name"] for row in rows}


@pytest.mark.parametrize("name", sorted(CASES))
def test_pack_rules_fire_only_on_their_feature(tmp_path: Path, pack_rules, name: str) -> None:
    content, expected = CASES[name]
    assert fired(pack_rules, write(tmp_path / name, content)) == expected


def test_padding_a_real_signed_dll_fires_and_the_original_does_not(tmp_path: Path, pack_rules) -> None:
    original = shared("artifacts", "pypi-onnxruntime", "pe", "onnxruntime_providers_shared.dll").read_bytes()
    assert fired(pack_rules, write(tmp_path / "onnx.dll", original)) == set()
    padded = pad_signed_pe(original, MARKER + rand(0x43B08, 51))
    assert fired(pack_rules, write(tmp_path / "d3dcompiler_47.dll", padded)) == {
        "TC_3CX_D3DCompiler_Payload_After_Signature"}
    # the same bytes placed after the certificate table (not inside it) do not fire
    assert fired(pack_rules, write(tmp_path / "tail.dll", original + MARKER + rand(0x43B08, 51))) == set()


def test_no_rule_fires_on_shared_artifacts_or_on_texts_quoting_the_strings(pack_rules) -> None:
    targets = [p for p in sorted(shared("artifacts").rglob("*")) if p.is_file()]
    targets += sorted(PACK_RULES.iterdir())
    facts = SHARED.parent / "intel" / "3cx-2023-facts.md"
    if facts.exists():
        targets.append(facts)
    hits = [(path, rows) for path, rows, _ in scan_files(pack_rules, targets, workers=2) if rows]
    assert hits == []
    assert len(targets) > 500


def test_every_pack_rule_has_its_meta(pack_rules) -> None:
    meta = rule_meta(pack_rules)
    assert len(meta) >= 5
    for name, fields in meta.items():
        assert name.startswith("TC_3CX_")
        assert fields.get("description") and fields.get("reference") and fields.get("date")
        assert fields.get("stage") in STAGES, name


def test_rows_have_the_tri_yara_columns(tmp_path: Path, pack_rules) -> None:
    path = write(tmp_path / "k.dll", pe(RC4_KEY, RC4_KEY))
    [row] = scan_file(pack_rules, path, 1 << 20)
    assert set(row) == set(TRIAGE_TABLES["tri_yara"]) | {"ts"}
    assert row["rule.source"] == "3cx_loader_rc4_key.yar" == row["rule.namespace"]
    assert row["file.path"] == str(path) and row["rule.stage"] == "vulnerable-installed"
    offsets = [int(part.split("@")[1]) for part in row["yara.strings"].split(";")]
    assert all(part.startswith("$key@") for part in row["yara.strings"].split(";"))
    assert [path.read_bytes()[o:o + len(RC4_KEY)] for o in offsets] == [RC4_KEY, RC4_KEY]
    # a condition-only rule lists no strings
    [ico_row] = scan_file(pack_rules, write(tmp_path / "i.ico", ico() + dead_drop_trailer()), 1 << 20)
    assert ico_row["yara.strings"] is None


def test_listed_strings_are_capped(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    rules_dir.mkdir()
    (rules_dir / "many.yar").write_text('rule many { strings: $a = "needle" condition: $a }')
    rules, problems = compile_rules([rules_dir])
    assert problems == []
    [row] = scan_file(rules, write(tmp_path / "f", b"needle." * 100), 1 << 20)
    parts = row["yara.strings"].split(";")
    assert len(parts) == 21 and parts[-1] == "+80 more" and parts[0] == "$a@0" and parts[1] == "$a@7"


def test_broken_rule_file_is_reported_and_the_others_still_scan(tmp_path: Path) -> None:
    rules_dir = tmp_path / "rules"
    (rules_dir / "sub").mkdir(parents=True)
    (rules_dir / "good.yar").write_text('rule good_one { strings: $a = "benign-marker-1" condition: $a }')
    (rules_dir / "sub" / "broken.yara").write_text("rule broken { condition: undefined_thing and }")
    (rules_dir / "other.yar").write_text('rule good_two { condition: filesize == 5 }')
    (rules_dir / "notes.txt").write_text("not a rule file")
    issues = IssueLog()
    rules, problems = compile_rules([rules_dir], issues)
    assert rules is not None
    assert len(problems) == 1 and "broken.yara" in problems[0] and 'undefined identifier "undefined_thing"' in problems[0]
    assert issues.count == 1
    rows = scan_file(rules, write(tmp_path / "t", b"xx benign-marker-1 xx"), 1 << 20)
    assert {(r["rule.name"], r["rule.namespace"]) for r in rows} == {("good_one", "good.yar")}
    assert [r["rule.name"] for r in scan_file(rules, write(tmp_path / "five", b"12345"), 1 << 20)] == ["good_two"]


def test_same_file_name_in_two_folders_keeps_both(tmp_path: Path) -> None:
    for folder, text in (("a", "one"), ("b", "two")):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "r.yar").write_text(f'rule same_name {{ strings: $x = "{text}" condition: $x }}')
    rules, problems = compile_rules([tmp_path / "a", tmp_path / "b"])
    assert problems == []
    rows = scan_file(rules, write(tmp_path / "t", b"one two"), 100)
    assert sorted(r["rule.namespace"] for r in rows) == ["1/r.yar", "r.yar"]
    assert {r["rule.source"] for r in rows} == {"r.yar"}


def test_no_rules_and_missing_folder_are_problems(tmp_path: Path) -> None:
    rules, problems = compile_rules([tmp_path / "nowhere"])
    assert rules is None and any("not found" in p for p in problems) and any("no YARA rule" in p for p in problems)
    (tmp_path / "only").mkdir()
    (tmp_path / "only" / "bad.yar").write_text("rule {")
    rules, problems = compile_rules([tmp_path / "only"])
    assert rules is None and "bad.yar" in problems[0]


def test_scan_problems_are_issues_not_exceptions(tmp_path: Path, pack_rules) -> None:
    issues = IssueLog()
    assert scan_file(pack_rules, tmp_path / "vanished.dll", 1 << 20, issues) == []
    big = write(tmp_path / "big.dll", pe(RC4_KEY) + rand(5000, 1))
    assert scan_file(pack_rules, big, 1000, issues) == []
    assert scan_file(pack_rules, tmp_path, 1 << 20, issues) == []
    messages = [i.message for i in issues.listed]
    assert "not found" in messages[0] and "above the limit" in messages[1] and "not a regular file" in messages[2]


def test_threaded_scan_equals_sequential_and_keeps_order(tmp_path: Path, pack_rules) -> None:
    paths = [write(tmp_path / name, content) for name, (content, _) in sorted(CASES.items())] * 3
    threaded = [(p, {r["rule.name"] for r in rows}) for p, rows, _ in scan_files(pack_rules, paths, workers=4)]
    assert [p for p, _ in threaded] == paths
    assert [names for _, names in threaded] == [CASES[p.name][1] for p in paths]


@pytest.mark.skipif(shutil.which("yara") is None, reason="yara command line not installed")
def test_yara_command_line_agrees(tmp_path: Path) -> None:
    """The pack's rules also compile and behave the same in the stand-alone yara (4.2 on Debian)."""
    for name, (content, _) in CASES.items():
        write(tmp_path / name, content)
    rule_args = [f"{p.stem}:{p}" for p in sorted(PACK_RULES.glob("*.yar"))]
    out = subprocess.run(["yara", "-r", *rule_args, str(tmp_path)], capture_output=True, text=True, check=True)
    got = {(line.split()[0].split(":")[-1], Path(line.split()[1]).name) for line in out.stdout.splitlines()}
    assert got == {(rule, name) for name, (_, rules) in CASES.items() for rule in rules}


def test_rules_compile_alone_with_yara_python(pack_rules) -> None:
    """Each file stands alone (its own imports), so a caller may load any subset."""
    for path in sorted(PACK_RULES.glob("*.yar")):
        yara.compile(filepath=str(path))
