"""Make a report safe to share (`redact`) and safe to display (`defang`).

`redact` exists because a report is often sent outside the organisation — to an insurer, an MSP, a
national CERT — and machine and user names are personal data (`wks-jdupont`) or reveal the internal
layout. Pseudonyms are stable (the same name gives the same pseudonym in every place and in every
run with the same salt) so that the redacted report still tells a coherent story: the host in the
table is the host in the evidence path is the host in the reason.

The default salt is public, so a pseudonym of a guessable name (`wks-03`) can be recomputed by
anyone who guesses it. Pass a secret `salt` when that matters; keep it to map pseudonyms back.

`defang` exists because evidence is attacker-controlled: an evidence value may carry terminal escape
sequences or Unicode bidi overrides that would repaint a terminal or make a path read backwards.
"""

from __future__ import annotations

import copy
import hashlib
import re
import unicodedata
from collections.abc import Callable, Iterable
from typing import Any

DEFAULT_SALT = "turncoat-redact-v1"

# Keys whose values are enumerations, hashes or ids from turncoat itself, never names. Rewriting
# them could turn a verdict into a pseudonym if a machine happened to be called `payload`.
_NEVER_NAMES = frozenset(
    {
        "schema", "schema_version", "turncoat_version", "verdict", "worst_verdict", "stage",
        "confidence", "kind", "view", "field", "reader", "sha256", "evidence_id", "campaign",
        "rule_id", "id", "channel",
    }
)
# Profile folders that are not people.
_NOT_USERS = frozenset(
    {"public", "default", "default user", "all users", "defaultapppool", "administrator"}
)
# Accounts that are not people either (values of user fields).
_NOT_PEOPLE = frozenset(
    {"", "-", "n/a", "system", "local service", "network service", "anonymous logon",
     "nt authority\\system"}
)
# `C:\Users\<name>\…`, `\Users\<name>` and `/Users/<name>/` (a macOS or forward-slash export).
_PROFILE = re.compile(r"(?i)[\\/]users[\\/]([^\\/:*?\"<>|\r\n]+)")
# Evidence fields that hold an account name: user.name, SubjectUserName, TargetUserName, User.
_USER_FIELD = re.compile(r"(?i)(?:^|\.)user(?:\.name)?$|username$")


def _pseudonym(prefix: str, name: str, salt: str) -> str:
    """`<prefix>-<8 hex>`; names are case-folded first because Windows names are case-insensitive."""
    digest = hashlib.sha256((salt + name.casefold()).encode("utf-8")).hexdigest()
    return f"{prefix}-{digest[:8]}"


def _host_names(report: dict[str, Any]) -> set[str]:
    """Every host key and alias the report knows."""
    names: set[str] = set()
    for host in report.get("hosts") or []:
        key = str(host.get("host") or "")
        if not key.startswith("ip:"):  # an address, pseudonymised as such (`ip:addr-…`)
            names.add(key)
        names.update(str(alias) for alias in host.get("aliases") or [])
    return {name for name in names if name.strip()}


def _addresses(report: dict[str, Any]) -> set[str]:
    """The organisation's own addresses: those hosts had, and those standing for unnamed hosts."""
    found: set[str] = set()
    for host in report.get("hosts") or []:
        key = str(host.get("host") or "")
        if key.startswith("ip:"):
            found.add(key[3:])
        found.update(str(a.get("ip")) for a in host.get("addresses") or [] if a.get("ip"))
    return {a for a in found if a.strip()}


def _strings(node: Any, key: str | None = None) -> Iterable[tuple[str | None, str]]:
    """Every (key, string) pair in a JSON-like tree, with the dict key that holds it."""
    if isinstance(node, dict):
        for child_key, child in node.items():
            yield from _strings(child, str(child_key))
    elif isinstance(node, list):
        for child in node:
            yield from _strings(child, key)
    elif isinstance(node, str):
        yield key, node


def _account(value: str) -> str:
    """The bare account of `DOMAIN\\user` or `user@domain`."""
    return value.rsplit("\\", 1)[-1].split("@", 1)[0].strip()


def _user_names(report: dict[str, Any], hosts: set[str]) -> tuple[set[str], set[str]]:
    """User names from profile paths and user fields; machine accounts (`WKS-03$`) are hosts."""
    users: set[str] = set()
    machines: set[str] = set()
    for host in report.get("hosts") or []:
        for row in host.get("evidence") or []:
            if _USER_FIELD.search(str(row.get("field") or "")) and isinstance(row.get("value"), str):
                account = _account(row["value"])
                (machines if account.endswith("$") else users).add(account.rstrip("$"))
    for _key, text in _strings(report):
        users.update(match.group(1).strip() for match in _PROFILE.finditer(text))
    folded_hosts = {name.casefold() for name in hosts | machines}
    users = {
        user for user in users
        if user.casefold() not in _NOT_USERS | _NOT_PEOPLE and user.casefold() not in folded_hosts
    }
    return users, {name for name in machines if name}


def _mapping(report: dict[str, Any], salt: str) -> dict[str, str]:
    """Case-folded original name → pseudonym, hosts taking precedence over users."""
    hosts = _host_names(report)
    users, machines = _user_names(report, hosts)
    mapping = {user.casefold(): _pseudonym("user", user, salt) for user in users}
    mapping.update({host.casefold(): _pseudonym("host", host, salt) for host in hosts | machines})
    mapping.update({ip.casefold(): _pseudonym("addr", ip, salt) for ip in _addresses(report)})
    return mapping


def _replacer(mapping: dict[str, str]) -> Callable[[str], str]:
    """One-pass replacement of every name, longest first, never inside a longer word.

    One pass matters: a pseudonym inserted for one name must never be rewritten by another.
    `wks-03` must not match inside `wks-030`, hence the look-arounds on word characters and `-`.
    """
    if not mapping:
        return lambda text: text
    alternatives = "|".join(re.escape(name) for name in sorted(mapping, key=lambda n: (-len(n), n)))
    pattern = re.compile(rf"(?<![\w-])(?:{alternatives})(?![\w-])", re.IGNORECASE)
    return lambda text: pattern.sub(lambda match: mapping.get(match.group(0).casefold(), "redacted"), text)


def _rewrite(node: Any, replace: Callable[[str], str], key: str | None = None) -> Any:
    """Apply `replace` to every string value except those under `_NEVER_NAMES` keys."""
    if isinstance(node, dict):
        return {name: _rewrite(child, replace, str(name)) for name, child in node.items()}
    if isinstance(node, list):
        return [_rewrite(child, replace, key) for child in node]
    if isinstance(node, str) and key not in _NEVER_NAMES:
        return replace(node)
    return node


def redact(report: dict[str, Any], salt: str = DEFAULT_SALT) -> dict[str, Any]:
    """A deep copy of `report` with host names, aliases and user names replaced by pseudonyms.

    Hosts become `host-<8 hex>`, the organisation's own addresses `addr-<8 hex>` and users `user-<8 hex>` (first 8 hex of sha256(salt + name),
    name case-folded), everywhere: host keys, aliases, evidence values and paths, reasons,
    remediation, evidence file paths. The copy gains `"redacted": true` so renderers can say so.
    """
    replace = _replacer(_mapping(report, salt))
    redacted = _rewrite(copy.deepcopy(report), replace)
    redacted["redacted"] = True
    return redacted


def defang_text(text: str) -> str:
    """Replace control and invisible format characters by visible escapes (`\\x1b`, `\\u202e`).

    Tabs and newlines stay: they are harmless and common in command lines.
    """
    def visible(char: str) -> str:
        if char in "\t\n" or unicodedata.category(char) not in ("Cc", "Cf"):
            return char
        code = ord(char)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"

    return "".join(visible(char) for char in text)


def defang(node: Any) -> Any:
    """A copy of a JSON-like tree with every string passed through `defang_text`."""
    if isinstance(node, dict):
        return {name: defang(child) for name, child in node.items()}
    if isinstance(node, list):
        return [defang(child) for child in node]
    if isinstance(node, str):
        return defang_text(node)
    return node
