"""Who acts on a host: the machine's identity and its processes.

Sysmon ties every event to a process by `ProcessGuid` and `ProcessId`; keeping one `Proc` object per
process lets a DNS query, a DLL load and a child process all point at the same, consistent parent.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

DOMAIN = "CABINET-DUPONT"
DNS_SUFFIX = "cabinet-dupont.local"
SYSTEM = "NT AUTHORITY\\SYSTEM"
SYSTEM_SID = "S-1-5-18"
SYSTEM_LOGON_ID = "0x3e7"
_DOMAIN_SID = "S-1-5-21-1721254763-462695806-1538882281"


@dataclass(frozen=True)
class HostId:
    """A machine as its logs name it."""

    short: str  # canonical key, lower-case: "wks-01"
    ip: str
    user: str  # the person who works on it: "c.dupont"
    rid: int  # the user's relative id in the domain

    @property
    def netbios(self) -> str:
        return self.short.upper()

    @property
    def fqdn(self) -> str:
        return f"{self.netbios}.{DNS_SUFFIX}"

    @property
    def account(self) -> str:
        return f"{DOMAIN}\\{self.user}"

    @property
    def user_sid(self) -> str:
        return f"{_DOMAIN_SID}-{self.rid}"

    @property
    def home(self) -> str:
        return f"C:\\Users\\{self.user}"

    @property
    def guid_tag(self) -> str:
        """First block of this machine's Sysmon process GUIDs (Sysmon derives it from the machine)."""
        return hashlib.sha256(self.short.encode()).hexdigest()[:8]


@dataclass(frozen=True)
class Proc:
    """One running process."""

    image: str
    cmdline: str
    pid: int
    guid: str
    user: str = SYSTEM
    sid: str = SYSTEM_SID
    logon_id: str = SYSTEM_LOGON_ID
    logon_guid: str = ""
    session_id: str = "0"
    integrity: str = "System"
    cwd: str = "C:\\Windows\\system32\\"


@dataclass(frozen=True)
class Logon:
    """An interactive logon: the user's processes inherit its ids."""

    logon_id: str
    logon_guid: str


class ProcFactory:
    """Hands out process ids and GUIDs for one host, deterministically."""

    def __init__(self, host: HostId, rng: random.Random) -> None:
        self._host = host
        self._rng = rng

    def guid(self) -> str:
        r = self._rng
        blocks = f"{r.getrandbits(16):04x}-{r.getrandbits(16):04x}-{r.getrandbits(16):04x}-{r.getrandbits(48):012x}"
        return f"{{{self._host.guid_tag}-{blocks}}}"

    def logon(self) -> Logon:
        return Logon(logon_id=f"0x{self._rng.randrange(0x100000, 0x9FFFFFF):x}", logon_guid=self.guid())

    def system(self, image: str, cmdline: str | None = None) -> Proc:
        """A process running as SYSTEM."""
        return Proc(image, cmdline or f'"{image}"', self._pid(), self.guid(), logon_guid=self._system_logon_guid())

    def user(self, logon: Logon, image: str, cmdline: str | None = None, cwd: str | None = None) -> Proc:
        """A process of the host's user, in the given logon session."""
        h = self._host
        return Proc(
            image, cmdline or f'"{image}"', self._pid(), self.guid(), user=h.account, sid=h.user_sid,
            logon_id=logon.logon_id, logon_guid=logon.logon_guid, session_id="1", integrity="Medium",
            cwd=cwd or f"{h.home}\\",
        )

    def _pid(self) -> int:
        return 4 * self._rng.randrange(100, 16000)

    def _system_logon_guid(self) -> str:
        return f"{{{self._host.guid_tag}-0000-0000-0000-0000e7030000}}"
