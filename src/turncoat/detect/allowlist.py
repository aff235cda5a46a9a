"""Allowlist of benign periodic destinations, kept as data (intel/benign_periodic.yaml).

Why this exists: a beacon detector on a small organisation's logs flags every updater,
telemetry uploader, push channel, time sync, connectivity probe and certificate revocation
check. Those are explained away here, with a reason the user can read and a vendor document
behind every entry, so the few series left are the ones worth a look.

Why it is this strict: an allowlist is the easiest place to hide an intrusion. The 3CX
implant fetched its C2 list from GitHub and its C2 names imitated Microsoft/Azure/Akamai
(``msstorageazure.com``, ``azureonlinestorage.com``, ``akamaitechcloudservices.com``).
So:

* patterns are exact host names or ``*.suffix``; a suffix matches the suffix itself and names
  ending in ``"." + suffix`` (a label boundary), never a substring: ``*.example.com`` matches
  ``a.example.com`` but not ``badexample.com``;
* wildcards covering platforms where anyone can host content (GitHub, cloud storage, app
  hosting, CDNs, paste and chat services, Graph/SharePoint) are refused in every file, shipped
  or user-supplied (:data:`SHARED_PLATFORMS`);
* IP addresses never match name patterns (an attacker's IP is not ``time.windows.com``); only
  explicit ``cidr:`` entries match addresses, and none ship;
* an entry may name ``processes``: it then suppresses a series only when the series' process
  matches (image base name, case-insensitive) or is unknown. Unknown must pass, or the list
  would do nothing on proxy/DNS/firewall logs; a known, different process (a trojanized app
  talking to an update host) is not explained away;
* ``opt_in`` entries (remote-access/RMM clouds, which attackers also use with their own
  accounts, CISA AA23-025A) stay inactive until a user file lists their id under ``enable:``.

Users add their own YAML files in the same format (``version``, ``entries``, optional
``enable``); a malformed file raises :class:`AllowlistError` naming the file and the entry.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

BUILTIN = Path(__file__).resolve().parents[1] / "intel" / "benign_periodic.yaml"

# Shared hosting / storage / CDN / paste / chat platforms: anyone can put content (or a C2
# relay) there, so no file may allowlist them with a wildcard, nor name them exactly.
SHARED_PLATFORMS: tuple[str, ...] = (
    "github.com", "githubusercontent.com", "raw.githubusercontent.com", "github.io",
    "gitlab.com", "gitlab.io", "bitbucket.org",
    "azurewebsites.net", "blob.core.windows.net", "core.windows.net", "azureedge.net",
    "azurefd.net", "cloudapp.azure.com", "cloudapp.net", "trafficmanager.net",
    "sharepoint.com", "graph.microsoft.com", "onedrive.live.com", "1drv.ms",
    "amazonaws.com", "cloudfront.net", "awsapps.com",
    "storage.googleapis.com", "googleusercontent.com", "appspot.com", "firebaseapp.com",
    "firebaseio.com", "web.app", "docs.google.com", "drive.google.com", "script.google.com",
    "herokuapp.com", "netlify.app", "vercel.app", "pages.dev", "workers.dev",
    "trycloudflare.com", "ngrok.io", "ngrok-free.app", "ngrok.app",
    "akamaihd.net", "akamaized.net", "edgesuite.net", "edgekey.net", "fastly.net",
    "pastebin.com", "paste.ee", "hastebin.com", "ghostbin.com",
    "discord.com", "discordapp.com", "discordapp.net", "cdn.discordapp.com",
    "telegram.org", "t.me", "api.telegram.org",
    "dropbox.com", "dropboxusercontent.com", "mega.nz", "box.com",
)

_IDNA_DOTS = str.maketrans({"\u3002": ".", "\uff0e": ".", "\uff61": "."})
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_ID = re.compile(r"^[a-z0-9][a-z0-9-]*$")
_SQL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_ENTRY_KEYS = {"id", "reason", "reason_fr", "match", "cidr", "processes", "source", "opt_in"}


class AllowlistError(ValueError):
    """A malformed allowlist file; the message names the file and the entry."""


def normalize_host(name: str) -> str | None:
    """Return the comparable form of a host name, or None if it is not one.

    Lower-cased, trailing dot removed, internationalised labels converted to their ASCII
    (punycode) form so ``bücher.example`` and ``xn--bcher-kva.example`` compare equal. Anything
    that is not a syntactically valid DNS name (URLs, spaces, empty labels) gives None, so it
    can never match by accident.
    """
    if not isinstance(name, str):
        return None
    # IDNA treats the ideographic/full-width full stops as dots (RFC 3490 section 3.1).
    text = name.strip().translate(_IDNA_DOTS).lower()
    text = text.removesuffix(".")  # one root dot is fine; "a.com.." is not a name
    if not text or len(text) > 253:
        return None
    labels = text.split(".")
    out: list[str] = []
    for label in labels:
        if not label:
            return None
        if not label.isascii():
            try:
                label = label.encode("idna").decode("ascii")
            except UnicodeError:
                return None
        if not _LABEL.match(label):
            return None
        out.append(label)
    return ".".join(out)


def _as_ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """Parse an IP address (IPv6 may come bracketed), or None."""
    value = text.strip()
    if value.startswith("[") and value.endswith("]"):
        value = value[1:-1]
    try:
        return ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None


def _process_name(process: str) -> str:
    """Image base name, lower-cased: ``C:\\Windows\\System32\\svchost.exe`` -> ``svchost.exe``."""
    return re.split(r"[\\/]", process.strip())[-1].lower()


def _covers_platform(kind: str, pattern: str) -> str | None:
    """The shared platform this pattern would allowlist, if any."""
    for platform in SHARED_PLATFORMS:
        if kind == "exact" and pattern == platform:
            return platform
        if kind == "suffix" and (platform == pattern or platform.endswith("." + pattern)
                                 or pattern.endswith("." + platform)):
            return platform
    return None


@dataclass(frozen=True)
class Rule:
    """One pattern of one entry, already normalised for matching."""

    pattern: str  # host name (exact), suffix without "*." (suffix), or network (cidr)
    kind: str  # "exact" | "suffix" | "cidr"
    entry_id: str


@dataclass(frozen=True)
class Entry:
    """One allowlist entry as read from YAML."""

    id: str
    reason: str
    reason_fr: str
    match: tuple[str, ...]
    source: str
    processes: tuple[str, ...] | None = None
    cidr: tuple[str, ...] = ()
    opt_in: bool = False
    origin: str = ""  # file it came from, for messages


@dataclass
class Allowlist:
    """Active entries plus indexes for exact, suffix and CIDR lookups.

    Lookup is by walking the destination's parent domains (``a.b.c`` -> ``a.b.c``, ``b.c``,
    ``c``) against dictionaries, so cost does not grow with the number of entries and no
    pattern can match across a label boundary.
    """

    entries: list[Entry] = field(default_factory=list)
    inactive: list[Entry] = field(default_factory=list)  # opt-in entries not enabled
    _exact: dict[str, list[Entry]] = field(default_factory=dict, repr=False)
    _suffix: dict[str, list[Entry]] = field(default_factory=dict, repr=False)
    _cidr: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Entry]] = field(
        default_factory=list, repr=False)

    def __post_init__(self) -> None:
        self._index()

    def _index(self) -> None:
        self._exact, self._suffix, self._cidr = {}, {}, []
        for entry in self.entries:
            for rule in _rules(entry):
                if rule.kind == "exact":
                    self._exact.setdefault(rule.pattern, []).append(entry)
                elif rule.kind == "suffix":
                    self._suffix.setdefault(rule.pattern, []).append(entry)
                else:
                    self._cidr.append((ipaddress.ip_network(rule.pattern, strict=False), entry))

    def match(self, destination: str, process: str | None = None) -> Entry | None:
        """The entry explaining ``destination`` (host name or IP) for ``process``, or None."""
        proc = _process_name(process) if process and process.strip() else None
        ip = _as_ip(destination) if isinstance(destination, str) else None
        if ip is not None:
            for network, entry in self._cidr:
                if ip.version == network.version and ip in network and _process_ok(entry, proc):
                    return entry
            return None
        host = normalize_host(destination)
        if host is None:
            return None
        for entry in self._exact.get(host, ()):
            if _process_ok(entry, proc):
                return entry
        labels = host.split(".")
        for i in range(len(labels)):
            for entry in self._suffix.get(".".join(labels[i:]), ()):
                if _process_ok(entry, proc):
                    return entry
        return None

    def reason(self, destination: str, process: str | None = None) -> str | None:
        """English reason why ``destination`` is benign periodic traffic, or None.

        Case-insensitive, trailing dot ignored, IDNA-safe; IP addresses only match ``cidr``
        entries. With ``process`` given, entries restricted to other processes do not apply.
        """
        entry = self.match(destination, process)
        return entry.reason if entry else None

    def reason_fr(self, destination: str, process: str | None = None) -> str | None:
        """French reason, same matching as :meth:`reason`."""
        entry = self.match(destination, process)
        return entry.reason_fr if entry else None

    def rows(self) -> list[tuple[str, str, str, str, list[str] | None, str]]:
        """(pattern, kind, reason, reason_fr, processes, entry_id) for every active rule."""
        out = []
        for entry in self.entries:
            procs = list(entry.processes) if entry.processes else None
            for rule in _rules(entry):
                out.append((rule.pattern, rule.kind, entry.reason, entry.reason_fr, procs, entry.id))
        return out

    def sql_table(self, con: Any, name: str = "benign_periodic") -> str:
        """Create DuckDB temp table ``name`` (pattern, kind, reason, reason_fr, processes, entry_id).

        Why a table: the beacon engine works in SQL over millions of rows; a join beats a
        Python callback. Patterns are normalised like :func:`normalize_host` (lower case,
        no trailing dot, punycode, suffixes without ``*.``); normalise the destination the same
        way (at least ``lower(rtrim(dest, '.'))``) and join with :meth:`sql_condition`.
        ``processes`` is NULL when unrestricted, else a list of lower-case image names.
        ``kind = 'cidr'`` rows (user files only) need an address comparison; joins that only
        test 'exact'/'suffix' simply never match them, which errs on the side of alerting.
        """
        if not _SQL_NAME.match(name):
            raise ValueError(f"not a plain SQL identifier: {name!r}")
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {name} (pattern VARCHAR NOT NULL, kind VARCHAR NOT NULL, "
            "reason VARCHAR NOT NULL, reason_fr VARCHAR NOT NULL, processes VARCHAR[], "
            "entry_id VARCHAR NOT NULL)")
        rows = self.rows()
        if rows:
            con.executemany(f"INSERT INTO {name} VALUES (?, ?, ?, ?, ?, ?)", rows)
        return name

    @staticmethod
    def sql_condition(dest: str, allow: str, process: str | None = None) -> str:
        """SQL join condition between a destination column and the allowlist table alias.

        ``dest`` must already be normalised (lower case, no trailing dot); ``process`` is an
        optional column holding the image base name in lower case (NULL when unknown).
        """
        cond = (f"(({allow}.kind = 'exact' AND {dest} = {allow}.pattern) OR "
                f"({allow}.kind = 'suffix' AND ({dest} = {allow}.pattern OR "
                f"ends_with({dest}, '.' || {allow}.pattern))))")
        if process:
            cond += (f" AND ({allow}.processes IS NULL OR {process} IS NULL OR "
                     f"list_contains({allow}.processes, {process}))")
        return cond


def _process_ok(entry: Entry, process: str | None) -> bool:
    """Unrestricted entries always apply; restricted ones when the process matches or is unknown."""
    return entry.processes is None or process is None or process in entry.processes


def _rules(entry: Entry) -> list[Rule]:
    rules = []
    for pattern in entry.match:
        if pattern.startswith("*."):
            rules.append(Rule(pattern[2:], "suffix", entry.id))
        else:
            rules.append(Rule(pattern, "exact", entry.id))
    for network in entry.cidr:
        rules.append(Rule(network, "cidr", entry.id))
    return rules


def _fail(origin: str, where: str, problem: str) -> AllowlistError:
    return AllowlistError(f"{origin}: {where}: {problem}")


def _text(raw: dict[str, Any], key: str, origin: str, where: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise _fail(origin, where, f"'{key}' must be a non-empty string")
    return " ".join(value.split())


def _pattern(value: Any, origin: str, where: str) -> str:
    """Validate and normalise one match pattern: ``host.name`` or ``*.suffix.name``."""
    if not isinstance(value, str):
        raise _fail(origin, where, f"match pattern {value!r} is not a string")
    wildcard = value.strip().startswith("*.")
    body = value.strip()[2:] if wildcard else value.strip()
    if "*" in body:
        raise _fail(origin, where, f"match pattern {value!r}: '*' is only allowed as a leading '*.' label")
    if _as_ip(body) is not None:
        raise _fail(origin, where, f"match pattern {value!r} is an IP address; use 'cidr'")
    host = normalize_host(body)
    if host is None:
        raise _fail(origin, where, f"match pattern {value!r} is not a valid host name")
    if wildcard and "." not in host:
        raise _fail(origin, where, f"match pattern {value!r} would cover a whole top-level domain")
    platform = _covers_platform("suffix" if wildcard else "exact", host)
    if platform:
        raise _fail(origin, where, f"match pattern {value!r} would allowlist the shared hosting "
                                   f"platform {platform!r}, which attackers use for C2")
    return ("*." + host) if wildcard else host


def _entry(raw: Any, origin: str, index: int) -> Entry:
    where = f"entry #{index + 1}"
    if not isinstance(raw, dict):
        raise _fail(origin, where, "must be a mapping")
    if isinstance(raw.get("id"), str):
        where = f"entry {raw['id']!r}"
    unknown = set(raw) - _ENTRY_KEYS
    if unknown:
        raise _fail(origin, where, f"unknown keys {sorted(unknown)}")
    entry_id = _text(raw, "id", origin, where)
    if not _ID.match(entry_id):
        raise _fail(origin, where, "'id' must be lower-case letters, digits and dashes")
    reason = _text(raw, "reason", origin, where)
    reason_fr = _text(raw, "reason_fr", origin, where)
    source = _text(raw, "source", origin, where)
    match = raw.get("match", [])
    cidr = raw.get("cidr", [])
    if not isinstance(match, list) or not isinstance(cidr, list):
        raise _fail(origin, where, "'match' and 'cidr' must be lists")
    if not match and not cidr:
        raise _fail(origin, where, "needs at least one 'match' pattern or 'cidr' network")
    patterns = tuple(_pattern(p, origin, where) for p in match)
    networks = []
    for value in cidr:
        try:
            networks.append(str(ipaddress.ip_network(str(value), strict=False)))
        except ValueError:
            raise _fail(origin, where, f"cidr {value!r} is not an IP network") from None
    processes = raw.get("processes")
    if processes is not None:
        if (not isinstance(processes, list) or not processes
                or not all(isinstance(p, str) and p.strip() for p in processes)):
            raise _fail(origin, where, "'processes' must be a non-empty list of image names")
        processes = tuple(sorted({_process_name(p) for p in processes}))
    opt_in = raw.get("opt_in", False)
    if not isinstance(opt_in, bool):
        raise _fail(origin, where, "'opt_in' must be true or false")
    return Entry(entry_id, reason, reason_fr, patterns, source, processes, tuple(networks),
                 opt_in, origin)


def read_file(path: Path) -> tuple[list[Entry], list[str]]:
    """Parse one allowlist file: its entries and the opt-in ids it enables."""
    origin = str(path)
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise AllowlistError(f"{origin}: cannot read: {exc}") from None
    except yaml.YAMLError as exc:
        raise AllowlistError(f"{origin}: not valid YAML: {exc}") from None
    if data is None:
        return [], []
    if not isinstance(data, dict):
        raise AllowlistError(f"{origin}: top level must be a mapping with 'entries'")
    unknown = set(data) - {"version", "entries", "enable"}
    if unknown:
        raise AllowlistError(f"{origin}: unknown top-level keys {sorted(unknown)}")
    if data.get("version", 1) != 1:
        raise AllowlistError(f"{origin}: unsupported version {data.get('version')!r}")
    raw_entries = data.get("entries") or []
    enable = data.get("enable") or []
    if not isinstance(raw_entries, list):
        raise AllowlistError(f"{origin}: 'entries' must be a list")
    if not isinstance(enable, list) or not all(isinstance(e, str) for e in enable):
        raise AllowlistError(f"{origin}: 'enable' must be a list of entry ids")
    return [_entry(raw, origin, i) for i, raw in enumerate(raw_entries)], list(enable)


def load_allowlist(extra: list[Path] | None = None) -> Allowlist:
    """Load the shipped allowlist plus users' own files (same format).

    Ids must be unique across all files (a user cannot silently redefine a shipped entry) and
    so must patterns (two reasons for one name would be ambiguous). A user file may list
    shipped ``opt_in`` ids under ``enable:`` to activate them; unknown ids are an error, so a
    typo does not leave the user believing a tool is covered.
    """
    entries, enabled = [], []
    for path in [BUILTIN, *(Path(p) for p in (extra or []))]:
        file_entries, file_enable = read_file(path)
        entries.extend(file_entries)
        enabled.extend((path, e) for e in file_enable)
    seen_ids: dict[str, Entry] = {}
    seen_patterns: dict[str, Entry] = {}
    for entry in entries:
        if entry.id in seen_ids:
            raise AllowlistError(f"{entry.origin}: entry {entry.id!r}: id already defined in "
                                 f"{seen_ids[entry.id].origin}")
        seen_ids[entry.id] = entry
        for pattern in (*entry.match, *entry.cidr):
            if pattern in seen_patterns:
                other = seen_patterns[pattern]
                raise AllowlistError(f"{entry.origin}: entry {entry.id!r}: pattern {pattern!r} "
                                     f"already in entry {other.id!r} ({other.origin})")
            seen_patterns[pattern] = entry
    enable_ids = set()
    for path, entry_id in enabled:
        if entry_id not in seen_ids:
            raise AllowlistError(f"{path}: enable: no entry with id {entry_id!r}")
        enable_ids.add(entry_id)
    active = [e for e in entries if not e.opt_in or e.id in enable_ids]
    inactive = [e for e in entries if e.opt_in and e.id not in enable_ids]
    return Allowlist(entries=active, inactive=inactive)
