"""Browser profiles in triage collections: classification, history counts, damage, privacy, theft traces."""

from __future__ import annotations

import hashlib
import shutil
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import shared

from turncoat.evidence.base import IssueLog
from turncoat.triage.browser import (
    BrowserFile,
    classify,
    history_kind,
    prtime,
    read_history,
    stealer_traces,
    summarize_history,
    url_host,
    webkit_time,
)

CHROME_DEFAULT = "C:\\Users\\alice\\AppData\\Local\\Google\\Chrome\\User Data\\Default\\"
FIREFOX_PROFILE = "C:\\Users\\carol\\AppData\\Roaming\\Mozilla\\Firefox\\Profiles\\ab12cd.default-release\\"
MAC_CHROME = "/Users/bob/Library/Application Support/Google/Chrome/"

# path → (browser, artifact, profile, user, in_profile) or None
CLASSIFIED = [
    (CHROME_DEFAULT + "History", ("chrome", "history", "Default", "alice", True)),
    (CHROME_DEFAULT + "History.old", ("chrome", "history-copy", "Default", "alice", True)),
    (CHROME_DEFAULT + "HISTORY.BAK", ("chrome", "history-copy", "Default", "alice", True)),
    (CHROME_DEFAULT + "History.tmp", ("chrome", "history-copy", "Default", "alice", True)),
    (CHROME_DEFAULT + "History_copy", ("chrome", "history-copy", "Default", "alice", True)),
    (CHROME_DEFAULT + "History (1)", ("chrome", "history-copy", "Default", "alice", True)),
    (CHROME_DEFAULT + "History - Copy (2)", ("chrome", "history-copy", "Default", "alice", True)),
    (CHROME_DEFAULT + "Copy of History", ("chrome", "history-copy", "Default", "alice", True)),
    (CHROME_DEFAULT + "History-journal", ("chrome", "other", "Default", "alice", True)),
    (CHROME_DEFAULT + "History Provider Cache", ("chrome", "other", "Default", "alice", True)),
    (CHROME_DEFAULT + "Archived History", ("chrome", "other", "Default", "alice", True)),
    (CHROME_DEFAULT + "Network\\Cookies", ("chrome", "cookies", "Default", "alice", True)),
    (CHROME_DEFAULT + "Login Data", ("chrome", "login-data", "Default", "alice", True)),
    (CHROME_DEFAULT + "Web Data", ("chrome", "web-data", "Default", "alice", True)),
    (CHROME_DEFAULT + "Bookmarks", ("chrome", "bookmarks", "Default", "alice", True)),
    (CHROME_DEFAULT + "Secure Preferences", ("chrome", "preferences", "Default", "alice", True)),
    (CHROME_DEFAULT + "Extensions\\abc\\1.0\\History", ("chrome", "other", "Default", "alice", True)),
    ("C:\\Users\\alice\\AppData\\Local\\Google\\Chrome\\User Data\\History.old",
     ("chrome", "history-copy", None, "alice", False)),
    ("C:\\Users\\alice\\AppData\\Local\\Google\\Chrome\\User Data\\Local State",
     ("chrome", "other", None, "alice", False)),
    (MAC_CHROME + "Default/History", ("chrome", "history", "Default", "bob", True)),
    (MAC_CHROME + "Profile 2/History copy 2", ("chrome", "history-copy", "Profile 2", "bob", True)),
    ("c:/users/Dave/appdata/local/microsoft/edge/user data/Profile 1/History",
     ("edge", "history", "Profile 1", "Dave", True)),
    ("/Users/eve/Library/Application Support/Microsoft Edge/Default/Cookies",
     ("edge", "cookies", "Default", "eve", True)),
    ("C:\\Users\\fred\\AppData\\Local\\BraveSoftware\\Brave-Browser\\User Data\\Default\\History",
     ("brave", "history", "Default", "fred", True)),
    ("/Users/fred/Library/Application Support/BraveSoftware/Brave-Browser/Profile 3/History.old",
     ("brave", "history-copy", "Profile 3", "fred", True)),
    (FIREFOX_PROFILE + "places.sqlite", ("firefox", "history", "ab12cd.default-release", "carol", True)),
    (FIREFOX_PROFILE + "places.sqlite.old", ("firefox", "history-copy", "ab12cd.default-release", "carol", True)),
    (FIREFOX_PROFILE + "places (1).sqlite", ("firefox", "history-copy", "ab12cd.default-release", "carol", True)),
    (FIREFOX_PROFILE + "places.sqlite-wal", ("firefox", "other", "ab12cd.default-release", "carol", True)),
    (FIREFOX_PROFILE + "places.sqlite.corrupt", ("firefox", "other", "ab12cd.default-release", "carol", True)),
    (FIREFOX_PROFILE + "cookies.sqlite", ("firefox", "cookies", "ab12cd.default-release", "carol", True)),
    (FIREFOX_PROFILE + "logins.json", ("firefox", "login-data", "ab12cd.default-release", "carol", True)),
    ("/Users/bob/Library/Application Support/Firefox/Profiles/x9.default/places.sqlite",
     ("firefox", "history", "x9.default", "bob", True)),
    ("/home/ann/.mozilla/firefox/q1w2.default/places.sqlite", ("firefox", "history", "q1w2.default", "ann", True)),
    ("/home/ann/.config/google-chrome/Default/History", ("chrome", "history", "Default", "ann", True)),
    ("HOST7\\Users\\gil\\AppData\\Local\\Google\\Chrome\\User Data\\Guest Profile\\History",
     ("chrome", "history", "Guest Profile", "gil", True)),
    # The 3CX Desktop App is an Electron app with a Chromium History of its own: not a browser.
    ("C:\\Users\\alice\\AppData\\Roaming\\3CXDesktopApp\\History", None),
    ("C:\\Program Files\\Google\\Chrome\\Application\\chrome.exe", None),
    ("C:\\Users\\alice\\Documents\\History.old", None),
]


@pytest.mark.parametrize(("path", "expected"), CLASSIFIED)
def test_classify(path: str, expected: tuple | None) -> None:
    found = classify(path)
    if expected is None:
        assert found is None
        return
    assert found is not None
    assert (found.browser, found.artifact, found.profile, found.user, found.in_profile) == expected
    assert found.logical_path == path


def test_snapshot_history_is_the_browsers_own() -> None:
    found = classify("C:\\Users\\g\\AppData\\Local\\Google\\Chrome\\User Data\\Snapshots\\112.0.5615.50\\"
                     "Default\\History")
    assert found is not None
    assert (found.artifact, found.profile, found.snapshot, found.in_profile) == ("history", "Default",
                                                                                  "112.0.5615.50", True)


@pytest.mark.parametrize(("name", "family", "kind"), [
    ("History", "chromium", "history"),
    ("History-journal", "chromium", "sidecar"),
    ("History.old-journal", "chromium", "sidecar-of-copy"),
    ("History-59.0.3071.86", "chromium", "copy"),
    ("History~", "chromium", "copy"),
    ("HistoryEmbeddings", "chromium", None),
    ("Cookies-journal", "chromium", None),
    ("places.sqlite", "firefox", "history"),
    ("places_copy.sqlite", "firefox", "copy"),
    ("places.sqlite.corrupt", "firefox", "own"),
    ("favicons.sqlite", "firefox", None),
])
def test_history_kind(name: str, family: str, kind: str | None) -> None:
    assert history_kind(name, family) == kind


# --- helpers -------------------------------------------------------------------------------------

def _chrome_file(name: str = "History") -> BrowserFile:
    found = classify(CHROME_DEFAULT + name)
    assert found is not None
    return found


def _firefox_file() -> BrowserFile:
    found = classify(FIREFOX_PROFILE + "places.sqlite")
    assert found is not None
    return found


def _webkit(moment: datetime) -> int:
    return (moment - datetime(1601, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _prtime(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)


def _copy_shared(source: Path, tmp_path: Path) -> Path:
    """A private copy of shared evidence (with any sidecars), so the read-only original is never opened."""
    target = tmp_path / "copy" / source.name
    target.parent.mkdir()
    for suffix in ("", "-wal", "-journal"):
        side = source.with_name(source.name + suffix)
        if side.is_file():
            shutil.copyfile(side, target.with_name(target.name + suffix))
    return target


def _ro(path: Path) -> sqlite3.Connection:
    return sqlite3.connect(f"{path.as_uri()}?mode=ro&immutable=1", uri=True)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _strings(rows: list[dict]) -> list[str]:
    return [value for row in rows for value in row.values() if isinstance(value, str)]


# --- the shared third-party databases (SOURCES.md §7) ---------------------------------------------

def test_plaso_chrome_history(tmp_path: Path) -> None:
    source = shared("artifacts", "plaso", "browser", "chrome", "History")
    before = _sha256(source)
    issues = IssueLog()
    row, domains = read_history(source, issues, tmp_path / "scratch", _chrome_file())
    summary = summarize_history(source, IssueLog(), tmp_path / "scratch")
    assert issues.count == 0
    assert summary is not None and summary.schema == "chromium" and summary.complete
    assert (summary.urls, summary.visits) == (55, 69)
    assert summary.first_visit == datetime(2011, 4, 7, 12, 3, 11, tzinfo=UTC)
    # the same minimum, computed independently from a private copy
    with _ro(_copy_shared(source, tmp_path)) as conn:
        (low, high), = conn.execute("SELECT min(visit_time), max(visit_time) FROM visits").fetchall()
    assert summary.first_visit == webkit_time(low)
    assert row["browser.last_visit"] == webkit_time(high) == row["ts"]
    assert row["browser.visits"] == 69 and row["file.size"] == source.stat().st_size
    assert row["browser.domains"] == len(domains) == 14
    names = {d["url.domain"] for d in domains}
    assert "start.ubuntu.com" in names
    ubuntu = next(d for d in domains if d["url.domain"] == "start.ubuntu.com")
    assert ubuntu["ts"] >= summary.first_visit
    assert sum(d["browser.visits"] for d in domains) <= 69
    assert [d["browser.visits"] for d in domains] == sorted((d["browser.visits"] for d in domains), reverse=True)
    assert not any("/" in text for text in _strings(domains))
    assert _sha256(source) == before
    assert list((tmp_path / "scratch").iterdir()) == []


def test_plaso_chrome_59_history_read_as_copy(tmp_path: Path) -> None:
    source = shared("artifacts", "plaso", "browser", "chrome", "History-59.0.3071.86")
    found = _chrome_file("History-59.0.3071.86")
    assert found.artifact == "history-copy"
    issues = IssueLog()
    row, domains = read_history(source, issues, tmp_path, found)
    summary = summarize_history(source, IssueLog(), tmp_path)
    assert issues.count == 0 and summary is not None
    assert (summary.urls, summary.visits, row["browser.visits"], row["browser.domains"]) == (1, 1, 1, 1)
    assert row["browser.artifact"] == "history-copy"
    assert len(domains) == 1 and domains[0]["browser.visits"] == 1


def test_plaso_firefox_places(tmp_path: Path) -> None:
    source = shared("artifacts", "plaso", "browser", "firefox", "places.sqlite")
    issues = IssueLog()
    row, domains = read_history(source, issues, tmp_path, _firefox_file())
    summary = summarize_history(source, IssueLog(), tmp_path)
    assert issues.count == 0 and summary is not None and summary.schema == "firefox"
    assert summary.urls == 92
    assert [(d["url.domain"], d["browser.visits"]) for d in domains] == [("news.google.com", 1)]
    assert row["browser.last_visit"] == datetime(2011, 7, 1, 11, 16, 21, 371935, tzinfo=UTC)
    assert (row["browser.name"], row["browser.profile"], row["user.name"]) == ("firefox",
                                                                               "ab12cd.default-release", "carol")


# --- damaged and foreign files -------------------------------------------------------------------

def test_truncated_history_is_an_issue_not_a_crash(tmp_path: Path) -> None:
    source = shared("artifacts", "plaso", "browser", "chrome", "History")
    cut = tmp_path / "History"
    cut.write_bytes(source.read_bytes()[:3000])
    issues = IssueLog()
    row, domains = read_history(cut, issues, tmp_path / "scratch", _chrome_file())
    assert domains == []
    assert row["file.size"] == 3000 and row["browser.visits"] is None and row["ts"] is None
    messages = [issue.message for issue in issues.listed]
    assert any("truncated" in m and "3000 bytes" in m for m in messages), messages
    assert any("malformed" in m for m in messages), messages


def test_not_sqlite_is_an_issue(tmp_path: Path) -> None:
    fake = tmp_path / "History"
    fake.write_text("this is a text file, not a database\n")
    issues = IssueLog()
    row, domains = read_history(fake, issues, tmp_path, _chrome_file())
    assert (row["browser.visits"], row["browser.domains"], domains) == (None, None, [])
    assert row["file.size"] == fake.stat().st_size
    assert issues.count == 1 and "not an SQLite database" in issues.listed[0].message


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "History"
    empty.write_bytes(b"")
    issues = IssueLog()
    row, _ = read_history(empty, issues, tmp_path, _chrome_file())
    assert row["file.size"] == 0 and "empty file" in issues.listed[0].message
    issues = IssueLog()
    row, _ = read_history(tmp_path / "gone", issues, tmp_path, _chrome_file())
    assert row["file.size"] is None and "cannot read the file" in issues.listed[0].message


def test_sqlite_that_is_not_a_history(tmp_path: Path) -> None:
    other = tmp_path / "History"
    with sqlite3.connect(other) as conn:
        conn.execute("CREATE TABLE cookies (host_key TEXT, name TEXT)")
    conn.close()
    issues = IssueLog()
    row, domains = read_history(other, issues, tmp_path, _chrome_file())
    assert row["browser.visits"] is None and domains == []
    assert "not a Chromium or Firefox history" in issues.listed[0].message


# --- a current-schema Chromium History built here ------------------------------------------------

SECRETS = ("secret-path", "q=private", "Confidential payroll", "hunter2", "chrome://settings")
T0 = datetime(2023, 3, 29, 9, 0, tzinfo=UTC)
VISITS = [  # (url, minutes after T0)
    ("https://Example.COM/secret-path/a?q=private", 0),
    ("https://example.com:8443/other", 5),
    ("http://user:hunter2@example.com/login", 10),
    ("https://news.example.org/2023/03/story", 20),
    ("https://news.example.org/2023/03/story", 25),
    ("http://10.0.0.5/admin", 30),
    ("chrome://settings", 40),
]


def _current_chromium_history(path: Path) -> None:
    """Tables as Chrome 120+ creates them (meta version 67), filled with the visits above."""
    with sqlite3.connect(path) as conn:
        conn.executescript("""
            CREATE TABLE meta(key LONGVARCHAR NOT NULL UNIQUE PRIMARY KEY, value LONGVARCHAR);
            INSERT INTO meta VALUES ('version', '67');
            CREATE TABLE urls(id INTEGER PRIMARY KEY AUTOINCREMENT, url LONGVARCHAR, title LONGVARCHAR,
                visit_count INTEGER DEFAULT 0 NOT NULL, typed_count INTEGER DEFAULT 0 NOT NULL,
                last_visit_time INTEGER NOT NULL, hidden INTEGER DEFAULT 0 NOT NULL);
            CREATE TABLE visits(id INTEGER PRIMARY KEY AUTOINCREMENT, url INTEGER NOT NULL,
                visit_time INTEGER NOT NULL, from_visit INTEGER, external_referrer_url TEXT,
                transition INTEGER DEFAULT 0 NOT NULL, segment_id INTEGER, visit_duration INTEGER DEFAULT 0
                NOT NULL, incremented_omnibox_typed_score BOOLEAN DEFAULT FALSE NOT NULL, opener_visit INTEGER,
                originator_cache_guid TEXT, originator_visit_id INTEGER, originator_from_visit INTEGER,
                originator_opener_visit INTEGER, is_known_to_sync BOOLEAN DEFAULT FALSE NOT NULL,
                consider_for_ntp_most_visited BOOLEAN DEFAULT FALSE NOT NULL, visited_link_id INTEGER
                DEFAULT 0 NOT NULL, app_id TEXT);
            CREATE TABLE keyword_search_terms (keyword_id INTEGER NOT NULL, url_id INTEGER NOT NULL,
                term LONGVARCHAR NOT NULL, normalized_term LONGVARCHAR NOT NULL);
        """)
        ids: dict[str, int] = {}
        for url, minutes in VISITS:
            if url not in ids:
                ids[url] = conn.execute(
                    "INSERT INTO urls(url, title, visit_count, last_visit_time) VALUES (?, ?, 0, ?)",
                    (url, "Confidential payroll", _webkit(T0))).lastrowid
            conn.execute("INSERT INTO visits(url, visit_time) VALUES (?, ?)",
                         (ids[url], _webkit(T0 + timedelta(minutes=minutes))))
        conn.execute("INSERT INTO urls(url, title, last_visit_time) VALUES ('https://never.example.net/x', 't', 0)")
        conn.execute("INSERT INTO keyword_search_terms VALUES (1, 1, 'private', 'private')")
    conn.close()


def test_current_chromium_history_exact_counts(tmp_path: Path) -> None:
    history = tmp_path / "evidence" / "History.old"
    history.parent.mkdir()
    _current_chromium_history(history)
    found = _chrome_file("History.old")
    issues = IssueLog()
    row, domains = read_history(history, issues, tmp_path / "scratch", found)
    assert issues.count == 0
    assert row == {
        "browser.name": "chrome", "browser.profile": "Default", "user.name": "alice",
        "browser.artifact": "history-copy", "file.path": CHROME_DEFAULT + "History.old",
        "file.size": history.stat().st_size, "browser.last_visit": T0 + timedelta(minutes=40),
        "browser.visits": 7, "browser.domains": 3, "ts": T0 + timedelta(minutes=40),
    }
    assert [(d["url.domain"], d["browser.visits"], d["ts"]) for d in domains] == [
        ("example.com", 3, T0 + timedelta(minutes=10)),
        ("news.example.org", 2, T0 + timedelta(minutes=25)),
        ("10.0.0.5", 1, T0 + timedelta(minutes=30)),
    ]
    summary = summarize_history(history, IssueLog(), tmp_path / "scratch")
    assert summary is not None and (summary.urls, summary.first_visit) == (7, T0)
    for text in _strings([row, *domains]):
        for secret in SECRETS:
            assert secret.casefold() not in text.casefold()
    # only the row's file path (a place on the collected machine) may hold a slash
    assert not any(("/" in t or "?" in t) for t in _strings(domains))
    for key in ("browser.name", "url.domain", "browser.visits", "ts"):
        assert all(key in d for d in domains)


def test_damaged_page_gives_partial_counts_and_an_issue(tmp_path: Path) -> None:
    history = tmp_path / "History"
    with sqlite3.connect(history) as conn:
        conn.execute("PRAGMA page_size = 1024")
        conn.execute("CREATE TABLE urls(id INTEGER PRIMARY KEY, url TEXT, title TEXT)")
        conn.execute("CREATE TABLE visits(id INTEGER PRIMARY KEY, url INTEGER, visit_time INTEGER)")
        conn.execute("INSERT INTO urls VALUES (1, 'https://a.example/', '')")
        conn.executemany("INSERT INTO visits(url, visit_time) VALUES (1, ?)",
                         [(_webkit(T0) + n,) for n in range(3000)])
    conn.close()
    data = bytearray(history.read_bytes())
    data[-3 * 1024:] = b"\xff" * (3 * 1024)   # the last pages of the visits b-tree become garbage
    history.write_bytes(bytes(data))
    issues = IssueLog()
    row, _ = read_history(history, issues, tmp_path / "scratch", _chrome_file())
    read = row["browser.visits"]
    assert isinstance(read, int) and 0 < read < 3000      # what came before the damage
    assert [(i.message.split(":")[0], i.after_record) for i in issues.listed] == [("visits", read)]
    assert f"reading stopped after {read} rows" in issues.listed[0].message


def test_firefox_wal_is_applied_and_evidence_untouched(tmp_path: Path) -> None:
    live = tmp_path / "live" / "places.sqlite"
    live.parent.mkdir()
    conn = sqlite3.connect(live)
    conn.execute("PRAGMA journal_mode = WAL")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    conn.execute("CREATE TABLE moz_places (id INTEGER PRIMARY KEY, url LONGVARCHAR, title LONGVARCHAR)")
    conn.execute("CREATE TABLE moz_historyvisits (id INTEGER PRIMARY KEY, place_id INTEGER, visit_date INTEGER)")
    conn.commit()
    conn.execute("INSERT INTO moz_places VALUES (1, 'https://www.mozilla.org/en-US/firefox/', 'x')")
    conn.executemany("INSERT INTO moz_historyvisits(place_id, visit_date) VALUES (1, ?)",
                     [(_prtime(T0),), (_prtime(T0 + timedelta(hours=1)),)])
    conn.commit()
    evidence = tmp_path / "evidence"
    evidence.mkdir()
    for suffix in ("", "-wal"):   # collected while Firefox ran: the visits are only in the WAL
        shutil.copyfile(live.with_name(live.name + suffix), evidence / ("places.sqlite" + suffix))
    conn.close()
    before = {p.name: _sha256(p) for p in evidence.iterdir()}
    issues = IssueLog()
    row, domains = read_history(evidence / "places.sqlite", issues, tmp_path / "scratch", _firefox_file())
    assert issues.count == 0
    assert (row["browser.visits"], row["browser.last_visit"]) == (2, T0 + timedelta(hours=1))
    assert [(d["url.domain"], d["browser.visits"]) for d in domains] == [("www.mozilla.org", 2)]
    assert {p.name: _sha256(p) for p in evidence.iterdir()} == before


def test_time_and_host_conversions() -> None:
    assert webkit_time(_webkit(T0)) == T0
    assert prtime(_prtime(T0)) == T0
    assert webkit_time(0) is None and prtime(-5) is None and webkit_time(10**30) is None
    assert webkit_time("13161017332037692") is None
    assert url_host("HTTPS://User:pw@Mail.Example.COM.:443/inbox?x=1#y") == "mail.example.com"
    assert url_host("file:///C:/Users/alice/secret.docx") is None
    assert url_host("chrome-extension://abcdef/page.html") is None
    assert url_host("http://[::1]:8080/") == "::1"
    assert url_host(b"https://bytes.example/") == "bytes.example"
    assert url_host(None) is None and url_host("http://[bad") is None


# --- traces of history theft ---------------------------------------------------------------------

def _found(paths: list[str]) -> list[BrowserFile]:
    files = [classify(p) for p in paths]
    assert all(files)
    return [f for f in files if f is not None]


def test_stealer_traces_flags_copies_beside_profiles() -> None:
    files = _found([
        CHROME_DEFAULT + "History",
        CHROME_DEFAULT + "History-journal",
        CHROME_DEFAULT + "History.old",
        "C:\\Users\\alice\\AppData\\Local\\BraveSoftware\\Brave-Browser\\User Data\\Default\\History",
        "C:\\Users\\alice\\AppData\\Local\\BraveSoftware\\Brave-Browser\\User Data\\Default\\History (1)",
        FIREFOX_PROFILE + "places.sqlite",
        FIREFOX_PROFILE + "places.sqlite-wal",
        "C:\\Users\\alice\\AppData\\Local\\Google\\Chrome\\User Data\\Snapshots\\112.0.5615.50\\Default\\History",
    ])
    reasons = stealer_traces(files)
    assert len(reasons) == 3, reasons
    chrome = next(r for r in reasons if r.startswith("chrome profile 'Default' of user alice"))
    assert "'History.old'" in chrome and "'%s.old'" in chrome and "§4.2" in chrome
    assert any(r.startswith("brave profile 'Default'") and "'History (1)'" in r for r in reasons)
    assert reasons[-1].startswith("history copies under 2 browsers (brave, chrome)")


def test_stealer_traces_outside_profile_and_copy_journal() -> None:
    files = _found([
        "C:\\Users\\bo\\AppData\\Local\\Microsoft\\Edge\\User Data\\History",
        "C:\\Users\\bo\\AppData\\Local\\Microsoft\\Edge\\User Data\\Default\\History.bak-journal",
    ])
    reasons = stealer_traces(files)
    assert len(reasons) == 2, reasons   # one browser: no "several browsers" reason
    assert any(r.startswith("edge data folder of user bo") and "outside any profile folder" in r for r in reasons)
    assert any(r.startswith("edge profile 'Default'") and "opened with SQLite" in r for r in reasons)


def test_clean_host_has_no_stealer_traces() -> None:
    files = _found([
        CHROME_DEFAULT + "History",
        CHROME_DEFAULT + "History-journal",
        CHROME_DEFAULT + "History Provider Cache",
        FIREFOX_PROFILE + "places.sqlite",
        FIREFOX_PROFILE + "places.sqlite.corrupt",
        "C:\\Users\\alice\\AppData\\Local\\Google\\Chrome\\User Data\\Snapshots\\112.0.5615.50\\Default\\History",
    ])
    assert stealer_traces(files) == []
