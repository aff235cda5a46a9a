"""Allowlist of benign periodic destinations: matching semantics, safety against the 3CX case, data hygiene.

The allowlist decides what a beacon detector stays silent about, so these tests mostly check
what it must NOT match: 3CX's look-alike C2 names, the platforms 3CX and others used as dead
drops, substrings and neighbours of genuine entries, bare IP addresses.
"""

from __future__ import annotations

import csv
from pathlib import Path

import duckdb
import pytest

from turncoat.detect.allowlist import (
    BUILTIN,
    SHARED_PLATFORMS,
    Allowlist,
    AllowlistError,
    load_allowlist,
    normalize_host,
)

IOCS = Path(__file__).resolve().parents[1] / "src" / "turncoat" / "intel" / "packs" / "3cx-2023" / "iocs.csv"

ABUSED_PLATFORMS = [
    "raw.githubusercontent.com", "github.com", "gist.github.com", "objects.githubusercontent.com",
    "myapp.azurewebsites.net", "acct.blob.core.windows.net", "d111111abcdef8.cloudfront.net",
    "bucket.s3.amazonaws.com", "ec2-1-2-3-4.compute-1.amazonaws.com", "evil.herokuapp.com",
    "pastebin.com", "cdn.discordapp.com", "discord.com", "storage.googleapis.com",
    "evil.sharepoint.com", "graph.microsoft.com", "api.telegram.org", "dl.dropboxusercontent.com",
    "evil.trycloudflare.com", "evil.ngrok-free.app", "evil.web.app", "evil.pages.dev",
]


@pytest.fixture(scope="module")
def allow() -> Allowlist:
    return load_allowlist()


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------- matching semantics

def test_exact_and_suffix_match(allow: Allowlist) -> None:
    assert allow.reason("time.windows.com") == "Windows time synchronisation (NTP, time.windows.com)"
    assert allow.reason("fe2.update.microsoft.com") is not None
    assert allow.reason("0.europe.pool.ntp.org") is not None
    assert allow.reason("pool.ntp.org") is not None  # the suffix itself matches
    assert allow.reason_fr("www.msftconnecttest.com") == "Sonde de connectivité réseau Windows (NCSI)"


def test_label_boundary_not_substring(allow: Allowlist) -> None:
    for name in ("badpool.ntp.org.evil.com", "evilpool.ntp.org", "notpool.ntp.org",
                 "xupdate.microsoft.com", "time.windows.com.evil.net", "eviltime.windows.com",
                 "msftconnecttest.com", "www.msftconnecttest.com.attacker.io",
                 "ntp.org", "microsoft.com", "windowsupdate.com.evil", "apple.com"):
        assert allow.reason(name) is None, name


def test_case_trailing_dot_and_whitespace(allow: Allowlist) -> None:
    assert allow.reason("TIME.Windows.COM") is not None
    assert allow.reason("time.windows.com.") is not None
    assert allow.reason("  Time.Windows.Com.  ") is not None
    assert allow.reason("time.windows.com..") is None  # only one root dot
    assert allow.reason("time..windows.com") is None


def test_idna_and_garbage(allow: Allowlist, tmp_path: Path) -> None:
    assert normalize_host("Bücher.Example") == "xn--bcher-kva.example"
    assert normalize_host("time\u3002windows\u3002com") == "time.windows.com"
    extra = _write(tmp_path, "idn.yaml", """
entries:
  - id: local-idn
    reason: Local IDN service
    reason_fr: Service IDN local
    match: ["*.bücher.example"]
    source: test
""")
    a = load_allowlist([extra])
    assert a.reason("shop.xn--bcher-kva.example") == "Local IDN service"
    assert a.reason("shop.BÜCHER.example") == "Local IDN service"
    for junk in ("", ".", "http://time.windows.com/", "time.windows.com:123", "a b.com", "*.pool.ntp.org", None):
        assert allow.reason(junk) is None  # type: ignore[arg-type]


def test_ip_addresses_never_match_names(allow: Allowlist, tmp_path: Path) -> None:
    for ip in ("13.107.4.52", "17.253.4.125", "::1", "[2620:1ec:c::10]", "1.2.3.4"):
        assert allow.reason(ip) is None
    extra = _write(tmp_path, "ntp.yaml", """
entries:
  - id: org-ntp
    reason: Organisation NTP servers
    reason_fr: Serveurs NTP de l'organisation
    cidr: [192.0.2.0/28, "2001:db8::/64"]
    source: our network plan
""")
    a = load_allowlist([extra])
    assert a.reason("192.0.2.5") == "Organisation NTP servers"
    assert a.reason("[2001:db8::1]") == "Organisation NTP servers"
    assert a.reason("192.0.2.16") is None
    assert a.reason("2001:db9::1") is None


def test_no_cidr_shipped(allow: Allowlist) -> None:
    assert all(not e.cidr for e in allow.entries + allow.inactive)


def test_process_restriction(allow: Allowlist) -> None:
    # Windows Update is restricted to the services that talk to it.
    assert allow.reason("fe2.update.microsoft.com", "svchost.exe") is not None
    assert allow.reason("fe2.update.microsoft.com", r"C:\Windows\System32\SVCHOST.EXE") is not None
    assert allow.reason("fe2.update.microsoft.com", None) is not None  # unknown process: suppress
    assert allow.reason("fe2.update.microsoft.com", "") is not None  # empty means unknown
    assert allow.reason("fe2.update.microsoft.com", "3CXDesktopApp.exe") is None
    assert allow.reason("time.windows.com", "/usr/bin/3CXDesktopApp") is None
    # Unrestricted entries ignore the process.
    assert allow.reason("ocsp.digicert.com", "3CXDesktopApp.exe") is not None
    # ctldl is unrestricted (CryptoAPI runs in any process) even though *.windowsupdate.com is not.
    assert allow.reason("ctldl.windowsupdate.com", "3CXDesktopApp.exe") is not None
    assert allow.reason("download.windowsupdate.com", "3CXDesktopApp.exe") is None


def test_opt_in_entries_inactive_until_enabled(allow: Allowlist, tmp_path: Path) -> None:
    assert allow.reason("router15.teamviewer.com") is None
    assert any(e.id == "rmm-teamviewer" for e in allow.inactive)
    extra = _write(tmp_path, "enable.yaml", "enable: [rmm-teamviewer]\n")
    a = load_allowlist([extra])
    assert a.reason("router15.teamviewer.com", "TeamViewer_Service.exe") is not None
    assert a.reason("router15.teamviewer.com", "3CXDesktopApp.exe") is None
    with pytest.raises(AllowlistError, match="no entry with id 'rmm-teamveiwer'"):
        load_allowlist([_write(tmp_path, "typo.yaml", "enable: [rmm-teamveiwer]\n")])


# ---------------------------------------------------------------- the 3CX case

def _3cx_hosts() -> list[str]:
    hosts = []
    with IOCS.open(encoding="utf-8", newline="") as fh:
        for row in csv.DictReader(fh):
            if row["type"] == "domain":
                hosts.append(row["value"])
            elif row["type"] == "url":  # GitHub dead drop: raw.githubusercontent.com, github.com
                hosts.append(row["value"].split("://")[-1].split("/")[0])
    return hosts


def test_3cx_c2_domains_never_allowlisted(allow: Allowlist, tmp_path: Path) -> None:
    hosts = _3cx_hosts()
    assert len(hosts) >= 25 and "akamaitechcloudservices.com" in hosts and "raw.githubusercontent.com" in hosts
    everything = load_allowlist([_write(tmp_path, "on.yaml", "enable: [rmm-teamviewer]\n")])
    for a in (allow, everything):
        for host in hosts:
            for variant in (host, host.upper(), host + ".", "www." + host, "cdn." + host):
                assert a.reason(variant) is None, variant
                assert a.reason(variant, "3CXDesktopApp.exe") is None, variant


def test_abused_platforms_never_allowlisted(allow: Allowlist) -> None:
    for host in ABUSED_PLATFORMS + list(SHARED_PLATFORMS):
        assert allow.reason(host) is None, host
        assert allow.reason("x." + host) is None, host


def test_shipped_patterns_avoid_shared_platforms(allow: Allowlist) -> None:
    for entry in allow.entries + allow.inactive:
        for pattern in entry.match:
            body = pattern.removeprefix("*.")
            for platform in SHARED_PLATFORMS:
                assert body != platform and not body.endswith("." + platform), (entry.id, pattern)
                assert not platform.endswith("." + body), (entry.id, pattern)


@pytest.mark.parametrize("pattern", ["*.azurewebsites.net", "*.windows.net", "*.amazonaws.com", "github.com",
                                     "*.githubusercontent.com", "*.s3.amazonaws.com", "pastebin.com",
                                     "*.core.windows.net", "*.googleapis.com"])
def test_user_file_cannot_allowlist_shared_platform(tmp_path: Path, pattern: str) -> None:
    extra = _write(tmp_path, "bad.yaml", f"""
entries:
  - id: too-broad
    reason: r
    reason_fr: r
    match: ["{pattern}"]
    source: s
""")
    with pytest.raises(AllowlistError, match=r"bad\.yaml: entry 'too-broad': .*shared hosting platform"):
        load_allowlist([extra])


# ---------------------------------------------------------------- malformed user files

@pytest.mark.parametrize(("body", "message"), [
    ("entries:\n  - id: x\n    reason: r\n    reason_fr: r\n    match: [a.example.com]\n", "'source' must be"),
    ("entries:\n  - id: x\n    reason: r\n    match: [a.example.com]\n    source: s\n", "'reason_fr' must be"),
    ("entries:\n  - id: x\n    reason: r\n    reason_fr: r\n    match: ['*example.com']\n    source: s\n",
     "only allowed as a leading"),
    ("entries:\n  - id: x\n    reason: r\n    reason_fr: r\n    match: ['a.*.example.com']\n    source: s\n",
     "only allowed as a leading"),
    ("entries:\n  - id: x\n    reason: r\n    reason_fr: r\n    match: ['*.com']\n    source: s\n",
     "whole top-level domain"),
    ("entries:\n  - id: x\n    reason: r\n    reason_fr: r\n    match: [1.2.3.4]\n    source: s\n", "use 'cidr'"),
    ("entries:\n  - id: x\n    reason: r\n    reason_fr: r\n    cidr: [300.1.1.0/24]\n    source: s\n",
     "not an IP network"),
    ("entries:\n  - id: x\n    reason: r\n    reason_fr: r\n    match: [a.example.com]\n    source: s\n    procs: [a]\n",
     "unknown keys"),
    ("entries:\n  - id: x\n    reason: r\n    reason_fr: r\n    match: [a.example.com]\n    source: s\n    processes: []\n",
     "'processes' must be"),
    ("entries:\n  - id: Bad_Id\n    reason: r\n    reason_fr: r\n    match: [a.example.com]\n    source: s\n",
     "'id' must be"),
    ("entries:\n  - id: x\n    reason: r\n    reason_fr: r\n    source: s\n", "at least one"),
    ("entries: {a: 1}\n", "'entries' must be a list"),
    ("- just a list\n", "top level must be a mapping"),
    ("entries: [\n", "not valid YAML"),
])
def test_malformed_user_file(tmp_path: Path, body: str, message: str) -> None:
    path = _write(tmp_path, "mine.yaml", body)
    with pytest.raises(AllowlistError) as err:
        load_allowlist([path])
    assert str(path) in str(err.value)
    assert message in str(err.value)
    if "id: x\n" in body:
        assert "entry 'x'" in str(err.value)


def test_user_cannot_redefine_shipped_id_or_pattern(tmp_path: Path) -> None:
    same_id = _write(tmp_path, "a.yaml", """
entries:
  - id: ms-time
    reason: r
    reason_fr: r
    match: [ntp.example.org]
    source: s
""")
    with pytest.raises(AllowlistError, match="id already defined"):
        load_allowlist([same_id])
    same_pattern = _write(tmp_path, "b.yaml", """
entries:
  - id: my-time
    reason: r
    reason_fr: r
    match: [TIME.windows.com.]
    source: s
""")
    with pytest.raises(AllowlistError, match="pattern 'time.windows.com' already in entry 'ms-time'"):
        load_allowlist([same_pattern])


def test_missing_user_file(tmp_path: Path) -> None:
    with pytest.raises(AllowlistError, match="cannot read"):
        load_allowlist([tmp_path / "absent.yaml"])


def test_user_entries_are_added(tmp_path: Path) -> None:
    extra = _write(tmp_path, "ok.yaml", """
version: 1
entries:
  - id: line-of-business-updater
    reason: Accounting package update check
    reason_fr: Vérification de mise à jour du logiciel comptable
    match: [updates.example-erp.com]
    processes: [ErpUpdater.exe]
    source: vendor install guide v12, section 4.2
""")
    a = load_allowlist([extra])
    assert a.reason("updates.example-erp.com", "erpupdater.exe") == "Accounting package update check"
    assert a.reason("updates.example-erp.com", "powershell.exe") is None
    assert a.reason("time.windows.com") is not None  # shipped entries still there


# ---------------------------------------------------------------- data hygiene

def test_every_shipped_entry_has_source_and_both_reasons() -> None:
    from turncoat.detect.allowlist import read_file

    entries, enable = read_file(BUILTIN)
    assert not enable
    assert len(entries) >= 25
    for entry in entries:
        assert len(entry.source) > 20, entry.id
        assert entry.reason and entry.reason_fr and entry.reason != entry.reason_fr, entry.id
        assert entry.match and not entry.cidr, entry.id


def test_no_duplicate_ids_or_patterns() -> None:
    from turncoat.detect.allowlist import read_file

    entries, _ = read_file(BUILTIN)
    ids = [e.id for e in entries]
    patterns = [p for e in entries for p in e.match]
    assert len(ids) == len(set(ids))
    assert len(patterns) == len(set(patterns))
    # An exact name already covered by a suffix of the same entry is redundant noise.
    for entry in entries:
        suffixes = [p[2:] for p in entry.match if p.startswith("*.")]
        for p in entry.match:
            if not p.startswith("*."):
                assert not any(p == s or p.endswith("." + s) for s in suffixes), (entry.id, p)


# ---------------------------------------------------------------- SQL

def test_sql_table_join_matches_python(allow: Allowlist) -> None:
    con = duckdb.connect()
    allow.sql_table(con, "allow")
    kinds = {k for (k,) in con.execute("SELECT DISTINCT kind FROM allow").fetchall()}
    assert kinds <= {"exact", "suffix"}
    dests = ["time.windows.com", "fe2.update.microsoft.com", "pool.ntp.org", "0.pool.ntp.org",
             "badpool.ntp.org", "msstorageazure.com", "raw.githubusercontent.com", "13.107.4.52",
             "ctldl.windowsupdate.com", "mtalk.google.com", "xmtalk.google.com"]
    procs = [None, "svchost.exe", "3cxdesktopapp.exe"]
    con.execute("CREATE TEMP TABLE s (dest VARCHAR, proc VARCHAR)")
    con.executemany("INSERT INTO s VALUES (?, ?)", [(d, p) for d in dests for p in procs])
    cond = Allowlist.sql_condition("s.dest", "a", "s.proc")
    got = {(d, p) for d, p in con.execute(
        f"SELECT DISTINCT s.dest, s.proc FROM s JOIN allow a ON {cond}").fetchall()}
    want = {(d, p) for d in dests for p in procs if allow.reason(d, p) is not None}
    assert got == want
    assert ("fe2.update.microsoft.com", "3cxdesktopapp.exe") not in got
    assert ("badpool.ntp.org", None) not in got


def test_sql_table_rejects_odd_names(allow: Allowlist) -> None:
    with pytest.raises(ValueError):
        allow.sql_table(duckdb.connect(), "allow; DROP TABLE x")
