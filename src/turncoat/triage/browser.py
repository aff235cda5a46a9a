"""Browser profiles in a triage collection: which file is what, history counts per domain, and theft traces.

Why this exists: the 3CX third stage (ICONIC) stole browser history. It queried the newest 500 rows of
Chrome's and Brave's `urls` table and of Firefox's `moz_places`; SentinelOne also names Edge; its
`%s.old` format string suggests it copied each database before reading it
(the project's intel notes, 3cx-2023-facts.md §4.2). An analyst therefore needs to know, per host,
which browsers and profiles held history (what could have been taken), how much and until when,
and whether a copy of a history database sits where no browser puts one.

Privacy rule of the project: employees' browsing is not evidence to hand around. Nothing here returns
a URL, a page title or a search term; only counts, host names (domains) and times leave this module.
Paths may be Windows (`C:\\Users\\alice\\AppData\\Local\\Google\\Chrome\\User Data\\Default\\History`),
macOS (`/Users/alice/Library/Application Support/Google/Chrome/Default/History`) or Linux
(`/home/alice/.config/google-chrome/Default/History`); both slash styles, any case.
"""

from __future__ import annotations

import re
import shutil
import sqlite3
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from turncoat.evidence.base import IssueLog, ReadIssue, Row
from turncoat.triage.wintime import FILETIME_EPOCH

# --- where browsers keep their data --------------------------------------------------------------

# (browser, folder names that make up its user-data root), lower case. Chromium browsers put the
# profiles (`Default`, `Profile 1`) directly under the root; Firefox under `Profiles` (Windows, macOS)
# or directly under `~/.mozilla/firefox` (Linux).
_ROOTS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("chrome", ("google", "chrome", "user data")),
    ("chrome", ("google", "chrome beta", "user data")),
    ("chrome", ("google", "chrome sxs", "user data")),
    ("chrome", ("application support", "google", "chrome")),
    ("chrome", ("application support", "google", "chrome beta")),
    ("chrome", ("application support", "google", "chrome canary")),
    ("chrome", (".config", "google-chrome")),
    ("chrome", (".config", "google-chrome-beta")),
    ("chrome", (".config", "google-chrome-unstable")),
    ("edge", ("microsoft", "edge", "user data")),
    ("edge", ("microsoft", "edge beta", "user data")),
    ("edge", ("microsoft", "edge dev", "user data")),
    ("edge", ("microsoft", "edge sxs", "user data")),
    ("edge", ("application support", "microsoft edge")),
    ("edge", ("application support", "microsoft edge beta")),
    ("edge", ("application support", "microsoft edge dev")),
    ("edge", ("application support", "microsoft edge canary")),
    ("edge", (".config", "microsoft-edge")),
    ("edge", (".config", "microsoft-edge-beta")),
    ("edge", (".config", "microsoft-edge-dev")),
    ("brave", ("bravesoftware", "brave-browser", "user data")),
    ("brave", ("bravesoftware", "brave-browser-beta", "user data")),
    ("brave", ("bravesoftware", "brave-browser-nightly", "user data")),
    ("brave", ("application support", "bravesoftware", "brave-browser")),
    ("brave", ("application support", "bravesoftware", "brave-browser-beta")),
    ("brave", ("application support", "bravesoftware", "brave-browser-nightly")),
    ("brave", (".config", "bravesoftware", "brave-browser")),
    ("firefox", ("mozilla", "firefox")),                  # Windows: AppData\Roaming\Mozilla\Firefox
    ("firefox", ("application support", "firefox")),      # macOS
    ("firefox", (".mozilla", "firefox")),                 # Linux
)
_CHROMIUM_PROFILE = re.compile(r"^(default|profile \d+|guest profile|system profile)$")
_FIREFOX_NOT_PROFILES = {"crash reports", "pending pings", "profile groups", "profiles", "installs.ini",
                         "profiles.ini"}
_USER_PARENTS = {"users", "home", "documents and settings"}

# --- what a file in a profile is -----------------------------------------------------------------

_HISTORY_NAME = {"chromium": "history", "firefox": "places.sqlite"}
_SIDECARS = ("-journal", "-wal", "-shm")
# Files browsers themselves keep beside the history that start with its name; never copies.
_BROWSER_OWN = re.compile(r"^(history (provider cache|index .*)|places\.sqlite\.corrupt)$")
# A copy: the history's name with what people, tools and file managers append when duplicating.
#   History.old  History.bak  History.tmp  History.1  History.2023-03-29   (".<word>" suffix)
#   History_copy History-backup History-59.0.3071.86 History_1             ("_" or "-" + token,
#                                                      except -journal/-wal/-shm, SQLite's own files)
#   History (1)  History(2)                                                (browser download style)
#   History - Copy  History - Copy (2)                                      (Windows Explorer)
#   History copy  History copy 2                                           (macOS Finder)
#   History~                                                               (editor backup)
#   Copy of History  Copy (2) of History                                    (older Windows)
# For places.sqlite the same suffixes may also sit before the extension: places (1).sqlite.
_COPY_SUFFIX = re.compile(
    r"^(?:\.[a-z0-9][a-z0-9._-]{0,31}"
    r"|[_-][a-z0-9][a-z0-9._-]{0,31}"
    r"|\s?\(\d{1,4}\)"
    r"|\s-\scopy(?:\s\(\d{1,4}\))?"
    r"|\scopy(?:\s\d{1,4})?"
    r"|~)$"
)
_COPY_PREFIX = re.compile(r"^copy (?:\(\d{1,4}\) )?of ")


@dataclass(frozen=True)
class BrowserFile:
    """One file of a browser's user data, as its path on the collected machine places it.

    `in_profile` is False for files under the browser's data folder but outside any profile folder
    (e.g. `User Data\\History.old`): no browser keeps history there. `snapshot` names the version
    folder of Chrome's own downgrade snapshots (`User Data\\Snapshots\\<version>\\Default\\History`),
    which Chrome copies on a major update and which are therefore no sign of theft.
    """

    logical_path: str
    browser: str                 # chrome, edge, brave, firefox
    artifact: str                # history, history-copy, cookies, login-data, web-data, bookmarks,
                                 # preferences, other
    profile: str | None
    user: str | None
    in_profile: bool
    snapshot: str | None = None

    @property
    def name(self) -> str:
        return _segments(self.logical_path)[-1]

    @property
    def family(self) -> str:
        """chromium or firefox: decides the history file's name and schema."""
        return "firefox" if self.browser == "firefox" else "chromium"


def _segments(path: str) -> list[str]:
    return [part for part in re.split(r"[\\/]+", path) if part]


def _find_root(lower: list[str]) -> tuple[str, int] | None:
    """The browser and the index of the first segment after its user-data root (first match wins)."""
    best: tuple[int, str, int] | None = None
    for browser, root in _ROOTS:
        size = len(root)
        for start in range(len(lower) - size + 1):
            if tuple(lower[start:start + size]) == root:
                if best is None or start < best[0] or (start == best[0] and start + size > best[2]):
                    best = (start, browser, start + size)
                break
    return (best[1], best[2]) if best else None


def _user(segments: list[str], before: int) -> str | None:
    """The account folder: the segment after `Users` (Windows, macOS), `home` or `Documents and Settings`."""
    for index in range(before - 1):
        if segments[index].casefold() in _USER_PARENTS:
            return segments[index + 1]
    return None


def history_kind(name: str, family: str) -> str | None:
    """How a file name relates to the browser's history database.

    history: the database itself; copy: a duplicate by the rules of `_COPY_SUFFIX`/`_COPY_PREFIX`;
    sidecar: SQLite's -journal/-wal/-shm beside the database; sidecar-of-copy: the same beside a copy
    (someone opened the copy with SQLite); own: a file the browser itself names after its history;
    None: unrelated.
    """
    lower = name.casefold()
    base = _HISTORY_NAME[family]
    for sidecar in _SIDECARS:
        if lower.endswith(sidecar) and lower != sidecar:
            inner = history_kind(name[: -len(sidecar)], family)
            if inner == "history":
                return "sidecar"
            if inner == "copy":
                return "sidecar-of-copy"
            return None if inner is None else "own"
    if lower == base:
        return "history"
    if _BROWSER_OWN.match(lower):
        return "own"
    prefix = _COPY_PREFIX.match(lower)
    if prefix and lower[prefix.end():] == base:
        return "copy"
    if lower.startswith(base) and _COPY_SUFFIX.match(lower[len(base):]):
        return "copy"
    stem, dot, ext = base.partition(".")
    if dot and lower.startswith(stem) and lower.endswith("." + ext):
        middle = lower[len(stem): -len(ext) - 1]
        if middle and _COPY_SUFFIX.match(middle):
            return "copy"
    return None


def _artifact(rel_in_profile: list[str], family: str) -> str:
    """The artifact a file in a profile (or in the data root) is, from its name and place."""
    name = rel_in_profile[-1]
    lower = name.casefold()
    direct = len(rel_in_profile) == 1
    kind = history_kind(name, family)
    if direct and kind == "history":
        return "history"
    if direct and kind == "copy":
        return "history-copy"
    network = len(rel_in_profile) == 2 and rel_in_profile[0].casefold() == "network"
    if family == "chromium":
        if lower == "cookies" and (direct or network):
            return "cookies"
        if direct and lower in ("login data", "login data for account"):
            return "login-data"
        if direct and lower == "web data":
            return "web-data"
        if direct and lower in ("bookmarks", "bookmarks.bak"):
            return "bookmarks"
        if direct and lower in ("preferences", "secure preferences"):
            return "preferences"
        return "other"
    if direct and lower == "cookies.sqlite":
        return "cookies"
    if direct and lower in ("logins.json", "key4.db", "key3.db", "signons.sqlite"):
        return "login-data"
    if direct and lower == "formhistory.sqlite":
        return "web-data"
    if len(rel_in_profile) == 2 and rel_in_profile[0].casefold() == "bookmarkbackups":
        return "bookmarks"
    if direct and lower in ("prefs.js", "user.js"):
        return "preferences"
    return "other"


def classify(logical_path: str) -> BrowserFile | None:
    """What a file is, from its path on the collected machine; None outside a known browser's data.

    Files outside the four browsers' data folders are not classified even when named `History`:
    every Electron app (Slack, Teams, the 3CX Desktop App itself) keeps a Chromium `History` of its
    own, so a name alone there says nothing about theft.
    """
    segments = _segments(logical_path)
    lower = [part.casefold() for part in segments]
    found = _find_root(lower)
    if found is None:
        return None
    browser, start = found
    rel, rel_lower = segments[start:], lower[start:]
    if not rel:
        return None
    user = _user(segments, start)
    family = "firefox" if browser == "firefox" else "chromium"
    profile: str | None = None
    snapshot: str | None = None
    inside: list[str] = rel
    if family == "chromium":
        if len(rel) >= 2 and _CHROMIUM_PROFILE.match(rel_lower[0]):
            profile, inside = rel[0], rel[1:]
        elif len(rel) >= 4 and rel_lower[0] == "snapshots" and _CHROMIUM_PROFILE.match(rel_lower[2]):
            snapshot, profile, inside = rel[1], rel[2], rel[3:]
    elif len(rel) >= 3 and rel_lower[0] == "profiles":
        profile, inside = rel[1], rel[2:]
    elif len(rel) >= 2 and lower[start - 2] == ".mozilla" and rel_lower[0] not in _FIREFOX_NOT_PROFILES:
        profile, inside = rel[0], rel[1:]
    if profile is not None:
        artifact = _artifact(inside, family)
    elif len(rel) == 1:   # directly in the data root (`User Data\\Local State`, a stray `History`)
        artifact = _artifact(rel, family)
    else:                 # in a folder of the data root that is no profile: only history names matter
        artifact = _loose_artifact(rel[-1], family)
    return BrowserFile(logical_path, browser, artifact, profile, user, profile is not None, snapshot)


def _loose_artifact(name: str, family: str) -> str:
    """A file in a non-profile folder of the data root: only history names matter there."""
    kind = history_kind(name, family)
    return {"history": "history", "copy": "history-copy"}.get(kind or "", "other")


# --- reading a history database ------------------------------------------------------------------

_SQLITE_MAGIC = b"SQLite format 3\x00"
_UNIX_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_WEB_SCHEMES = {"http", "https", "ftp", "ws", "wss"}
_HOST_OK = re.compile(r"^[^\s/\\?#@%\x00-\x1f]{1,253}$")


@dataclass
class HistorySummary:
    """What a history database holds, with no URL or title in it.

    `complete` is False when reading stopped at damage; the counts are then what was read before it.
    Visits are rows of the visit table (Chromium `visits`, Firefox `moz_historyvisits`); a visit whose
    URL has no web host (file:, chrome:, place:, about:) is counted but belongs to no domain.
    """

    schema: str                          # chromium or firefox
    urls: int = 0
    visits: int = 0
    first_visit: datetime | None = None
    last_visit: datetime | None = None
    domain_visits: dict[str, int] = field(default_factory=dict)
    domain_last: dict[str, datetime | None] = field(default_factory=dict)
    complete: bool = True


def webkit_time(value: object) -> datetime | None:
    """Chromium time (microseconds since 1601-01-01 UTC); None for 0, negatives and nonsense."""
    return _from_epoch(FILETIME_EPOCH, value)


def prtime(value: object) -> datetime | None:
    """Firefox PRTime (microseconds since 1970-01-01 UTC); None for 0, negatives and nonsense."""
    return _from_epoch(_UNIX_EPOCH, value)


def _from_epoch(epoch: datetime, value: object) -> datetime | None:
    if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
        return None
    try:
        return epoch + timedelta(microseconds=value)
    except OverflowError:
        return None


def url_host(url: object) -> str | None:
    """The lower-case host of a web URL, without port, user or trailing dot; None for anything else.

    Only web schemes count: `chrome://settings` or `file:///C:/x` have no domain anyone visited.
    """
    if isinstance(url, bytes):
        url = url.decode("utf-8", "replace")
    if not isinstance(url, str):
        return None
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname
    except ValueError:
        return None
    if parts.scheme.lower() not in _WEB_SCHEMES or not host:
        return None
    host = host.rstrip(".").lower()
    return host if _HOST_OK.match(host) else None


def _rows(conn: sqlite3.Connection, sql: str, what: str, issues: IssueLog) -> Iterator[tuple]:
    """Rows of a query until the end or the first damage; damage becomes one issue, not an exception."""
    done = 0
    try:
        for row in conn.execute(sql):   # row by row, so the count stops exactly at the damage
            yield row
            done += 1
    except sqlite3.DatabaseError as exc:
        issues.add(ReadIssue(f"{what}: reading stopped after {done} rows: {exc}", after_record=done or None))
        raise _Damaged from exc


class _Damaged(Exception):
    """Reading a table stopped at damage; the issue is already logged."""


def _columns(conn: sqlite3.Connection, table: str) -> set[str]:
    return {row[1].casefold() for row in conn.execute(f"PRAGMA table_info('{table}')")}


# (visit table, its URL-reference column, its time column, URL table, converter)
_LAYOUTS = {
    "chromium": ("visits", "url", "visit_time", "urls", webkit_time),
    "firefox": ("moz_historyvisits", "place_id", "visit_date", "moz_places", prtime),
}


def _schema_of(tables: set[str]) -> str | None:
    """Chromium or Firefox history by the tables present, never by the file's name."""
    if {"urls", "visits"} <= tables:
        return "chromium"
    if {"moz_places", "moz_historyvisits"} <= tables:
        return "firefox"
    return None


def _tally(conn: sqlite3.Connection, schema: str, issues: IssueLog) -> HistorySummary:
    visit_table, ref, when, url_table, convert = _LAYOUTS[schema]
    summary = HistorySummary(schema)
    needed = {(url_table, "id"), (url_table, "url"), (visit_table, ref), (visit_table, when)}
    missing = sorted(f"{t}.{c}" for t, c in needed if c not in _columns(conn, t))
    if missing:
        issues.add(ReadIssue(f"{schema} history without the expected columns {', '.join(missing)}"))
        summary.complete = False
        return summary
    hosts: dict[int, str | None] = {}
    bad_times = 0
    try:
        for url_id, url in _rows(conn, f"SELECT id, url FROM {url_table}", url_table, issues):
            summary.urls += 1
            hosts[url_id] = url_host(url)
        for url_id, raw in _rows(conn, f"SELECT {ref}, {when} FROM {visit_table}", visit_table, issues):
            summary.visits += 1
            stamp = convert(raw)
            if stamp is None:
                bad_times += raw not in (None, 0)
            else:
                summary.first_visit = min(filter(None, (summary.first_visit, stamp)))
                summary.last_visit = max(filter(None, (summary.last_visit, stamp)))
            host = hosts.get(url_id)
            if host is None:
                continue
            summary.domain_visits[host] = summary.domain_visits.get(host, 0) + 1
            previous = summary.domain_last.get(host)
            summary.domain_last[host] = max(filter(None, (previous, stamp)), default=None)
    except _Damaged:
        summary.complete = False
    if bad_times:
        issues.add(ReadIssue(f"{bad_times} visit times out of range; those visits have no time"))
    return summary


def _header_problem(path: Path, size: int) -> tuple[str, bool] | None:
    """Why a file is not an intact SQLite database, from its first 100 bytes, and whether that is
    fatal (nothing to open) or only a warning (truncated: SQLite is still asked); None if it may be."""
    if size == 0:
        return "empty file, not an SQLite database", True
    with path.open("rb") as handle:
        head = handle.read(100)
    if not head.startswith(_SQLITE_MAGIC):
        return "not an SQLite database (no 'SQLite format 3' header)", True
    if len(head) < 100:
        return f"truncated SQLite database: {size} bytes, shorter than its 100-byte header", True
    page_size = int.from_bytes(head[16:18], "big")
    page_size = 65536 if page_size == 1 else page_size
    pages = int.from_bytes(head[28:32], "big")
    # The header's page count is trusted only when written by a version that maintains it.
    if head[24:28] == head[92:96] and pages and size < pages * page_size:
        return (f"truncated SQLite database: header says {pages} pages of {page_size} bytes "
                f"({pages * page_size} bytes), the file has {size}"), False
    if page_size >= 512 and size % page_size:
        return (f"truncated SQLite database: {size} bytes is not a whole number of its "
                f"{page_size}-byte pages"), False
    return None


def _open_copy(path: Path, work: Path, issues: IssueLog) -> sqlite3.Connection:
    """Open a private copy read-only. The evidence itself is never opened by SQLite.

    With a -wal beside the database the copy is opened without `immutable`, because SQLite then
    ignores the WAL, and Firefox keeps its newest visits there until a checkpoint. A -journal is
    never applied: the database is read as it was on disk, which the issue says.
    """
    target = work / "history.db"
    shutil.copyfile(path, target)
    wal = path.with_name(path.name + "-wal")
    journal = path.with_name(path.name + "-journal")
    if journal.is_file() and journal.stat().st_size:
        issues.add(ReadIssue(f"{journal.name} ({journal.stat().st_size} bytes) beside the database is "
                             "not applied; the database is read as it was on disk"))
    if wal.is_file() and wal.stat().st_size:
        shutil.copyfile(wal, work / "history.db-wal")
        try:
            conn = sqlite3.connect(f"{target.as_uri()}?mode=ro", uri=True)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            return conn
        except sqlite3.DatabaseError as exc:
            issues.add(ReadIssue(f"{wal.name} could not be applied ({exc}); read without it"))
            (work / "history.db-wal").unlink(missing_ok=True)
    return sqlite3.connect(f"{target.as_uri()}?mode=ro&immutable=1", uri=True)


def summarize_history(path: Path, issues: IssueLog, scratch: Path) -> HistorySummary | None:
    """Counts, domains and times of a Chromium or Firefox history; None when it cannot be read.

    The schema is taken from the tables present, so a renamed copy (`History.old`) reads the same.
    Every problem becomes an issue in `issues`; nothing is raised for bad evidence.
    """
    try:
        size = path.stat().st_size
        problem = _header_problem(path, size)
    except OSError as exc:
        issues.add(ReadIssue(f"cannot read the file: {exc}"))
        return None
    if problem is not None:
        message, fatal = problem
        issues.add(ReadIssue(message if fatal else message + "; reading what is there", offset=0))
        if fatal:
            return None
    work: Path | None = None
    conn: sqlite3.Connection | None = None
    try:
        scratch.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix="browser-", dir=scratch))
        conn = _open_copy(path, work, issues)
        tables = {row[0].casefold() for row in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        schema = _schema_of(tables)
        if schema is None:
            issues.add(ReadIssue(f"SQLite database but not a Chromium or Firefox history "
                                 f"({len(tables)} tables, none of urls+visits or moz_places+moz_historyvisits)"))
            return None
        summary = _tally(conn, schema, issues)
        if problem:
            summary.complete = False
        return summary
    except (sqlite3.DatabaseError, OSError) as exc:
        issues.add(ReadIssue(f"cannot read the SQLite database: {exc}"))
        return None
    finally:
        if conn is not None:
            conn.close()
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)


def file_row(browser_file: BrowserFile, logical_path: str | None = None, size: int | None = None) -> Row:
    """The `tri_browser` row of a browser file with its file facts only (no history read)."""
    return {
        "browser.name": browser_file.browser,
        "browser.profile": browser_file.profile,
        "user.name": browser_file.user,
        "browser.artifact": browser_file.artifact,
        "file.path": logical_path or browser_file.logical_path,
        "file.size": size,
        "browser.last_visit": None,
        "browser.visits": None,
        "browser.domains": None,
        "ts": None,
    }


def read_history(path: Path, issues: IssueLog, scratch: Path, browser_file: BrowserFile) -> tuple[Row, list[Row]]:
    """One `tri_browser` row and one `tri_browser_domain` row per visited domain (most visits first).

    `path` is the collected file, `scratch` a folder this may write private copies to (removed after).
    A file that cannot be read still gives its row with the file facts and None for the counts.
    """
    try:
        size: int | None = path.stat().st_size
    except OSError:
        size = None
    row = file_row(browser_file, browser_file.logical_path, size)
    summary = summarize_history(path, issues, scratch)
    if summary is None:
        return row, []
    row.update({"browser.last_visit": summary.last_visit, "browser.visits": summary.visits,
                "browser.domains": len(summary.domain_visits), "ts": summary.last_visit})
    ranked = sorted(summary.domain_visits.items(), key=lambda item: (-item[1], item[0]))
    domains = [{"browser.name": browser_file.browser, "browser.profile": browser_file.profile,
                "user.name": browser_file.user, "url.domain": host, "browser.visits": count,
                "ts": summary.domain_last.get(host)} for host, count in ranked]
    return row, domains


# --- traces of history theft ---------------------------------------------------------------------

_WHY_ICONIC = ("the 3CX stealer ICONIC read the newest 500 history rows of Chrome, Brave and Firefox "
               "(Edge per SentinelOne), and its '%s.old' format string suggests it copied each "
               "database first (3cx-2023-facts.md §4.2)")


def _where(found: BrowserFile) -> str:
    user = f" of user {found.user}" if found.user else ""
    if found.profile:
        return f"{found.browser} profile '{found.profile}'{user}"
    return f"{found.browser} data folder{user}"


def stealer_traces(files: list[BrowserFile]) -> list[str]:
    """Reasons, from the browser files found on one host, to suspect its history was stolen.

    Flagged:
    - a history copy (`history_kind` == copy) directly in a profile, beside the real database;
      `<history>.old` is named as matching the stealer's `%s.old` pattern;
    - SQLite's journal or WAL of such a copy: someone opened the copy with SQLite;
    - a history or a copy in the browser's data folder outside any profile, where no browser keeps one;
    - copies under two or more browsers: the stealer walks every browser it knows in one run.
    Not flagged: Chrome's own downgrade snapshots (`User Data\\Snapshots\\<version>\\<profile>`), the
    -journal/-wal of the live database, Firefox's `places.sqlite.corrupt`, and anything outside the
    browsers' data folders (see `classify`). A name is a reason to look, not proof: read the copy with
    `read_history` to confirm its format and see its last visit.
    """
    reasons: list[str] = []
    copied: set[str] = set()
    for found in sorted(files, key=lambda f: f.logical_path.casefold()):
        if found.snapshot is not None:
            continue
        kind = history_kind(found.name, found.family)
        base = "History" if found.family == "chromium" else "places.sqlite"
        if found.in_profile and found.artifact == "history-copy":
            copied.add(found.browser)
            exact_old = found.name.casefold() == base.casefold() + ".old"
            match = "matches the stealer's '%s.old' name" if exact_old else "is a copy by its name"
            reasons.append(f"{_where(found)}: '{found.name}' beside its {base} {match}; {_WHY_ICONIC}")
        elif found.in_profile and kind == "sidecar-of-copy":
            copied.add(found.browser)
            reasons.append(f"{_where(found)}: '{found.name}' shows a copy of {base} was opened with "
                           f"SQLite; {_WHY_ICONIC}")
        elif not found.in_profile and found.artifact in ("history", "history-copy"):
            copied.add(found.browser)
            reasons.append(f"{_where(found)}: '{found.name}' is a history database name outside any "
                           f"profile folder, where {found.browser} keeps none; {_WHY_ICONIC}")
    if len(copied) >= 2:
        reasons.append(f"history copies under {len(copied)} browsers ({', '.join(sorted(copied))}): "
                       "one program walking every browser, as the 3CX stealer did")
    return reasons
