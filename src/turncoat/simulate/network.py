"""What the office network saw, generated from the same calls as the hosts' own events.

Behaviour code resolves names and opens connections through the `Recorder`; in a scenario with an
office network every host also has a `HostNet`, fed by the same `dns()` and `connect()` calls. So a
Sysmon 22 event and the matching Zeek dns.log row and DNS-server line share time, name and answers,
and a Sysmon 3 event and its conn.log row share addresses and ports. Which address a host has at any
instant comes from the DHCP plan (`plan_addresses`), made before any host is simulated: Sysmon 3's
`SourceIp` follows a lease change, and another host may later get the freed address, which is what
makes attribution of network evidence to hosts a question of time.

The office: workstations get DHCP leases from DC01, which is also their DNS server (forwarding to
public resolvers); some go to the web through a Squid proxy (PAC file: the client resolves the name,
then sends CONNECT to the proxy), which inspects TLS (SSL bump) for all but a few services, so its log
names each request inside a connection, with the client's user agent; a Zeek sensor mirrors the
workstations' switch ports, so it sees every packet to or from a workstation, and nothing the servers
exchange with the internet.

Records are spooled per day (one host in memory at a time, as for the endpoint logs) and turned
into log files in time order by `netformats.py`.
"""

from __future__ import annotations

import bisect
import hashlib
import itertools
import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any

from . import catalog, indicators
from .actors import DNS_SUFFIX
from .clock import UTC, DayKind, Span, day_kind, floor_second, iso_s, local
from .scenarios import VERDICTS, HostSpec

DC_NAME = "DC01"
DC_IP = "192.168.10.10"  # domain controller: DNS server and DHCP server
PROXY_NAME = "proxy"
PROXY_IP = "192.168.10.8"
PROXY_PORT = 3128
FORWARDERS = ("9.9.9.9", "149.112.112.112")
#: Domains the proxy splices (tunnels without decrypting), matched as Squid's `.domain` ACLs match: Microsoft's
#: services and Google's updater, which their vendors ask to exempt from TLS inspection, and the office's 3CX
#: PBX, whose phone traffic breaks under it. Every other HTTPS site is bumped (decrypted and logged per request).
PROXY_SPLICED = ("microsoft.com", "office365.com", "live.com", "sfx.ms", "update.googleapis.com", catalog.PBX_TENANT)
#: The DC's DNS debug log is written in the server's wall-clock time.
TIME_ZONE = "Europe/Paris"
#: Windows DHCP Server's default lease; clients renew at half of it (T1).
LEASE = timedelta(days=8)
RENEW = LEASE / 2
#: Where each source's logs go, under `evidence/network/`.
ZEEK_DIR, DNS_DIR, PROXY_DIR = "zeek", "dc01-dns", "proxy"

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_C2_IPS = frozenset(indicators.C2_RESOLUTIONS.values())
_WORKSTATION_OUI = "98:90:96"  # Dell
_USB_NIC_OUI = "00:e0:4c"  # Realtek (USB-C docks)
_FRESH_FIRST, _FRESH_COUNT = 220, 35  # fresh addresses: .220-.254 of each /24 (hosts start at .20)
_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
#: What a browser asks of a site it is sent to (benign stand-ins; "/" for any other site). GitHub's raw host
#: is there so the proxy log shows the innocent side of the dead-drop trap too.
_BROWSER_PATHS: dict[str, tuple[str, ...]] = {
    indicators.GITHUB_RAW: ("/github/gitignore/main/VisualStudio.gitignore", "/PowerShell/PowerShell/master/README.md"),
    "fonts.gstatic.com": ("/s/roboto/v30/KFOmCnqEu92Fr1Mu4mxK.woff2",),
}


def office_ip(index: int) -> str:
    """The first address of the office's n-th host (200 hosts per /24, from .20)."""
    return f"192.168.{10 + index // 200}.{20 + index % 200}"


def proxy_bumps(name: str) -> bool:
    """Whether the proxy decrypts a connection to `name` (every name but the spliced domains)."""
    return not any(name == d or name.endswith("." + d) for d in PROXY_SPLICED)


def micros(ts: datetime) -> int:
    """Microseconds since the epoch."""
    return (ts - _EPOCH) // timedelta(microseconds=1)


def host_off(spec: HostSpec, day: date) -> bool:
    return spec.is_off(day) or day_kind(day) is DayKind.OFF


def browser_agent(image: str) -> str | None:
    """The user agent of a catalog browser, from the version Sysmon reports for it (Chromium's reduced
    form: major version only; Edge appends its full version); None for any other program."""
    name = image.lower().rsplit("\\", 1)[-1]
    chromium = ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
                "Chrome/{}.0.0.0 Safari/537.36")
    if name == "chrome.exe":
        return chromium.format(catalog.CHROME.version.split(".")[0])
    if name == "msedge.exe":
        return chromium.format(catalog.EDGE.version.split(".")[0]) + f" Edg/{catalog.EDGE.version}"
    return None


def _mac(oui: str, name: str, salt: int) -> str:
    digest = hashlib.sha256(f"{name}#nic{salt}".encode()).digest()
    return oui + "".join(f":{b:02x}" for b in digest[:3])


# -- who had which address when ----------------------------------------------------------------------------

@dataclass(frozen=True)
class Lease:
    """One address held by one host: from `start` (None: since before the evidence) to `end` (None: still
    held at collection). `how` it was obtained: "held", "new-mac" (a new adapter: DISCOVER from scratch)
    or "nak" (the old address was refused, then DISCOVER)."""

    ip: str
    mac: str
    start: datetime | None
    end: datetime | None = None
    how: str = "held"

    def truth(self) -> dict[str, Any]:
        return {"ip": self.ip, "mac": self.mac, "from": None if self.start is None else iso_s(self.start),
                "until": None if self.end is None else iso_s(self.end)}


def _move_time(spec: HostSpec, day: date, rng: random.Random) -> datetime:
    """Before work (local 07:30-07:57), or just after midnight UTC when the machine comes back on."""
    if host_off(spec, day - timedelta(days=1)):
        return datetime.combine(day, time(), UTC) + timedelta(milliseconds=rng.randrange(5_000, 40_000))
    return local(day, rng.uniform(7.5, 7.95))


def plan_addresses(specs: tuple[HostSpec, ...], span: Span, seed_key: str) -> dict[str, list[Lease]]:
    """Every host's leases in time order. Raises ValueError when two hosts would hold one address at
    once, or an address is handed out again before the previous holder's lease could have expired."""
    index = {spec.name: i for i, spec in enumerate(specs)}
    fresh: dict[int, int] = {}
    moves: dict[str, list[tuple[datetime, str | None, bool]]] = {}
    for i, spec in enumerate(specs):
        for r in spec.readdress:
            at = _move_time(spec, r.day, random.Random(f"{seed_key}:{spec.name}:readdress:{r.day}"))
            if at not in span:
                raise ValueError(f"{spec.name}: address change at {at} is outside the evidence span")
            ip = None
            if r.takes_from is None:
                block = i // 200
                k = fresh.get(block, 0)
                if k >= _FRESH_COUNT:
                    raise ValueError(f"no fresh address left in 192.168.{10 + block}.0/24")
                fresh[block] = k + 1
                ip = f"192.168.{10 + block}.{_FRESH_FIRST + k}"
            moves.setdefault(spec.name, []).append((at, ip if ip else f"@{r.takes_from}", r.new_mac))
    plans: dict[str, list[Lease]] = {}
    for i, spec in enumerate(specs):
        leases = [Lease(office_ip(i), _mac(_WORKSTATION_OUI, spec.name, 0), None)]
        for n, (at, ip, new_mac) in enumerate(moves.get(spec.name, []), start=1):
            if ip.startswith("@"):
                ip = office_ip(index[ip[1:]])
            mac = _mac(_USB_NIC_OUI, spec.name, n) if new_mac else leases[-1].mac
            leases[-1] = Lease(leases[-1].ip, leases[-1].mac, leases[-1].start, at, leases[-1].how)
            leases.append(Lease(ip, mac, at, None, "new-mac" if new_mac else "nak"))
        plans[spec.name] = leases
    _check_addresses(plans)
    return plans


def _check_addresses(plans: dict[str, list[Lease]]) -> None:
    holders: dict[str, list[tuple[datetime | None, datetime | None, str]]] = {}
    for name, leases in plans.items():
        for lease in leases:
            holders.setdefault(lease.ip, []).append((lease.start, lease.end, name))
    for ip, held in holders.items():
        held.sort(key=lambda h: (h[0] is not None, h[0] or _EPOCH))
        for (_, end, before), (start, _, after) in itertools.pairwise(held):
            if end is None or start is None or start < end + LEASE:
                raise ValueError(f"{ip}: given to {after} at {start} while {before}'s lease (until {end}) "
                                 "could still be valid")


# -- one host's traffic ------------------------------------------------------------------------------------

class HostNet:
    """One host as the network sees it: its address over time, and what it resolved and contacted.

    Records are plain lists (kind first) so they can be spooled as JSON lines; `netformats.py` renders
    them. Every random draw comes from this host's own stream, so the endpoint events do not move.
    """

    def __init__(self, index: int, spec: HostSpec, leases: list[Lease], span: Span, seed_key: str) -> None:
        self.index = index
        self.spec = spec
        self.leases = leases
        self.span = span
        self.first_c2: datetime | None = None
        self.records: list[list[Any]] = []
        self._rng = random.Random(f"{seed_key}:network")
        self._http_rng = random.Random(f"{seed_key}:http")  # its own stream: the other draws do not move
        self._seed_key = seed_key
        self._starts = [lease.start for lease in leases[1:]]
        self._seq = 0

    # -- what the recorder asks --------------------------------------------------------------------------

    def ip_at(self, ts: datetime) -> str:
        """The host's address at `ts`."""
        return self.leases[bisect.bisect_right(self._starts, ts)].ip  # type: ignore[arg-type]

    def source_port(self) -> int:
        return self._rng.randrange(49152, 65535)

    def dns(self, ts: datetime, name: str, ips: tuple[str, ...], cname: str | None) -> None:
        """The host asked its DNS server (the DC) for `name`'s A record and got `ips`."""
        if name in indicators.C2_RESOLUTIONS:
            self._c2(ts)
        r = self._rng
        self._add(ts, "dns", self.ip_at(ts), r.randrange(49152, 65535), r.getrandbits(16), name, cname,
                  list(ips), self._uid())

    def connect(self, ts: datetime, image: str, ip: str, port: int, hostname: str,
                src_port: int) -> tuple[str, int, str]:
        """An outbound TLS connection; returns where the host's packets actually went (address, port,
        name): the proxy for a host configured to use it, else the server."""
        proxied = self.spec.proxy
        if ip in _C2_IPS or hostname in indicators.C2_RESOLUTIONS:
            self._c2(ts)
        r = self._rng
        implant = image.lower().endswith("\\3cxdesktopapp.exe") and (
            hostname in indicators.C2_RESOLUTIONS or hostname == indicators.GITHUB_RAW)
        if implant and proxied and proxy_bumps(hostname):  # the proxy logs the dead-drop URL and implant agent
            self._c2(ts)
        if implant:  # the shellcode's WinHTTP: TLS 1.2, a small request, a small answer (or an icon)
            tls = "12"
            orig = r.randrange(700, 2500)
            resp = r.randrange(9_000, 40_000) if hostname == indicators.GITHUB_RAW else r.randrange(600, 6_000)
            seconds = r.uniform(0.3, 3.0)
        elif image.lower().endswith(("\\chrome.exe", "\\msedge.exe")):
            tls, orig, resp, seconds = "13", r.randrange(800, 6_000), r.randrange(4_000, 900_000), r.uniform(0.5, 120)
        else:
            tls, orig, resp, seconds = "13", r.randrange(600, 4_000), r.randrange(2_000, 60_000), r.uniform(0.2, 30)
        room = (self.span.end - ts).total_seconds() - 2
        duration_us = int(min(seconds, room) * 1_000_000)
        resumed = tls == "13" and r.random() < 0.3
        if implant and hostname == indicators.GITHUB_RAW and ts >= indicators.GITHUB_TAKEDOWN:
            resp = self._http_rng.randrange(500, 900)  # the repository is gone: a short 404 page
        agent, requests = self._http(ts, image, hostname, implant, duration_us, resp) if proxied else (None, None)
        target = (PROXY_IP, PROXY_PORT, f"{PROXY_NAME}.{DNS_SUFFIX}") if proxied else (ip, port, hostname)
        self._add(ts, "tcp", self.ip_at(ts), src_port, target[0], target[1], hostname,
                  ip if proxied else None, tls, duration_us, orig, resp, self._uid(), resumed, agent, requests)
        return target

    def _http(self, ts: datetime, image: str, hostname: str, implant: bool, duration_us: int,
              resp: int) -> tuple[str | None, list[list[Any]]]:
        """What the client sent inside its TLS connection: its user agent (also in its CONNECT) and its
        requests as [microseconds from the connection's start to the answer's end, method, path, status,
        bytes answered]. Only a proxy that inspects TLS can log the requests; they are recorded for proxied
        connections only. The implant fetches an icon that decodes to one of its host's C2 domains, or
        POSTs its beacon; a browser GETs a page; a program whose HTTP is not modelled GETs "/"."""
        r = self._http_rng
        done = max(1, min(duration_us, int(r.uniform(0.15, 2.5) * 1_000_000)))
        sent = max(0, resp - r.randrange(80, 400))  # the answer without the TLS records' overhead
        if implant and hostname == indicators.GITHUB_RAW:
            domains = self.spec.compromise.c2_domains if self.spec.compromise else ()
            icons = [n for d in domains for n in indicators.C2_ICONS.get(d, ())]
            icon = r.choice(icons or [n for ns in indicators.C2_ICONS.values() for n in ns])
            status = 404 if ts >= indicators.GITHUB_TAKEDOWN else 200
            return indicators.IMPLANT_USER_AGENT, [[done, "GET", indicators.ICON_PATH.format(icon), status, sent]]
        if implant:
            return indicators.IMPLANT_USER_AGENT, [[done, "POST", indicators.BEACON_PATH, 200, sent]]
        agent = browser_agent(image)
        path = r.choice(_BROWSER_PATHS.get(hostname, ("/",))) if agent else "/"
        return agent, [[done, "GET", path, 200, sent]]

    # -- DHCP --------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Add the DHCP exchanges: a renewal every half lease while the machine is on, a request at every
        power-on after days off, and the exchanges of each address change."""
        rng = random.Random(f"{self._seed_key}:dhcp")
        span = self.span
        last_day = (span.end - timedelta(minutes=10)).date()
        moves = self.leases[1:]
        current = self.leases[0]
        ack = span.start - timedelta(milliseconds=rng.randrange(int(RENEW.total_seconds() * 1000)))
        m = 0
        while True:
            when, kind = ack + RENEW, "renew"
            boot = self._power_on_after(ack, when, rng)
            if boot is not None:
                when, kind = boot, "boot"
            lease = moves[m] if m < len(moves) else None
            if lease is not None and lease.start is not None and lease.start.date() <= when.date():
                when, kind = lease.start, lease.how
                m += 1
                self._exchange(when, kind, current, lease, rng)
                current = lease
            else:
                if when.date() > last_day or when >= span.end - timedelta(minutes=10):
                    break
                self._exchange(when, kind, current, current, rng)
            ack = when

    def _power_on_after(self, ack: datetime, due: datetime, rng: random.Random) -> datetime | None:
        """When the machine comes back on, if it is off on some day after `ack` up to `due`'s day."""
        day = ack.date() + timedelta(days=1)
        while day <= due.date():
            if host_off(self.spec, day):
                while host_off(self.spec, day):
                    day += timedelta(days=1)
                return datetime.combine(day, time(), UTC) + timedelta(milliseconds=rng.randrange(5_000, 40_000))
            day += timedelta(days=1)
        return None

    def _exchange(self, ts: datetime, kind: str, old: Lease, new: Lease, rng: random.Random) -> None:
        name = self.spec.name.upper()
        lease_s = LEASE.total_seconds()
        if kind == "renew":  # unicast from the bound client, address in ciaddr
            self._add(ts, "dhcp", "REQUEST,ACK", old.ip, None, old.ip, old.mac, name,
                      rng.randrange(300, 2_500), self._uid(), old.ip, DC_IP, lease_s)
            return
        if kind == "boot":  # INIT-REBOOT: broadcast, asking for the address it had
            self._add(ts, "dhcp", "REQUEST,ACK", None, old.ip, old.ip, old.mac, name,
                      rng.randrange(300, 2_500), self._uid(), "0.0.0.0", "255.255.255.255", lease_s)
            return
        if kind == "nak":  # the old address is refused; then DISCOVER from scratch
            self._add(ts - timedelta(milliseconds=rng.randrange(1_500, 4_000)), "dhcp", "REQUEST,NAK", None,
                      old.ip, None, old.mac, name, rng.randrange(300, 2_500), self._uid(), "0.0.0.0",
                      "255.255.255.255", None)
        self._add(ts, "dhcp", "DISCOVER,OFFER,REQUEST,ACK", None, None, new.ip, new.mac, name,
                  rng.randrange(8_000, 900_000), self._uid(), "0.0.0.0", "255.255.255.255", lease_s)

    # -- plumbing ----------------------------------------------------------------------------------------

    def _c2(self, ts: datetime) -> None:
        if self.first_c2 is None or ts < self.first_c2:
            self.first_c2 = floor_second(ts)

    def _add(self, ts: datetime, kind: str, *fields: Any) -> None:
        """A record at `ts` plus a sub-millisecond offset: the sensor's clock has microseconds."""
        self.records.append([micros(ts) + self._rng.randrange(1000), self.index, self._seq, kind, *fields])
        self._seq += 1

    def _uid(self) -> str:
        """A Zeek connection uid: "C" and 17 base-62 digits."""
        n, digits = self._rng.getrandbits(102), []
        for _ in range(17):
            n, d = divmod(n, 62)
            digits.append(_BASE62[d])
        return "C" + "".join(digits)

    def truth(self) -> dict[str, Any]:
        """What the network shows of this host: its verdict from network evidence alone, its first C2
        contact (first query for a C2 domain, connection to a C2 address or domain, or implant request the
        TLS-inspecting proxy decrypted, such as the GitHub dead-drop fetch), its addresses."""
        return {
            "verdict": "c2-contact" if self.first_c2 is not None else "no-evidence",
            "first_c2": None if self.first_c2 is None else iso_s(self.first_c2),
            "via_proxy": self.spec.proxy,
            "addresses": [lease.truth() for lease in self.leases],
        }


# -- the office ----------------------------------------------------------------------------------------

class Office:
    """The network of one scenario: the address plan, the per-day spool, and the log files at the end."""

    def __init__(self, spool: Path, specs: tuple[HostSpec, ...], span: Span, seed_key: str) -> None:
        self.spool = spool
        self.span = span
        self.seed_key = seed_key
        self.plans = plan_addresses(specs, span, seed_key)
        self._days: set[str] = set()

    def host(self, index: int, spec: HostSpec) -> HostNet:
        return HostNet(index, spec, self.plans[spec.name], self.span, f"{self.seed_key}:{spec.name}")

    def add(self, net: HostNet) -> None:
        """Spool a simulated host's records by UTC day, then forget them."""
        net.close()
        by_day: dict[str, list[str]] = {}
        for record in net.records:
            day = datetime.fromtimestamp(record[0] // 1_000_000, UTC).strftime("%Y-%m-%d")
            by_day.setdefault(day, []).append(json.dumps(record, separators=(",", ":")))
        for day, lines in by_day.items():
            with (self.spool / f"{day}.jsonl").open("a", encoding="utf-8", newline="\n") as f:
                f.write("\n".join(lines) + "\n")
        self._days.update(by_day)
        net.records = []

    def records(self) -> Iterator[list[Any]]:
        """Every spooled record in time order (one day in memory at a time)."""
        for day in sorted(self._days):
            with (self.spool / f"{day}.jsonl").open(encoding="utf-8") as f:
                rows = [json.loads(line) for line in f]
            rows.sort(key=lambda r: (r[0], r[1], r[2]))
            yield from rows

    def truth(self) -> dict[str, Any]:
        """The layout a reader of the network evidence needs to know."""
        return {
            "time_zone": TIME_ZONE,
            "sensor": {"kind": "zeek", "folder": f"network/{ZEEK_DIR}",
                       "sees": "every packet to or from a workstation (mirror of their switch ports)"},
            "dns_server": {"host": DC_NAME.lower(), "ip": DC_IP, "log": f"network/{DNS_DIR}/dns.log",
                           "local_time": True, "forwarders": list(FORWARDERS)},
            "dhcp_server": {"host": DC_NAME.lower(), "ip": DC_IP, "lease_seconds": int(LEASE.total_seconds())},
            "proxy": {"ip": PROXY_IP, "port": PROXY_PORT, "log": f"network/{PROXY_DIR}/access.log",
                      "logformat": "combined", "ssl_bump": {"spliced": list(PROXY_SPLICED), "bumped": "all others"}},
        }


def host_truth(host: dict[str, Any], net: HostNet, endpoint: bool) -> dict[str, Any]:
    """A host's ground truth with what the network shows (`network`). Without endpoint logs, the verdict
    and `first_c2` are the network's: `first_execution` and `activation_eta` cannot be seen.

    Raises ValueError when the network would contradict the host's own logs, or a network-only host's
    verdict: a bug in the scenario table.
    """
    seen = net.truth()
    name, first_c2 = host["host"], seen["first_c2"]
    if endpoint:
        if first_c2 is not None and VERDICTS.index(host["verdict"]) < VERDICTS.index("c2-contact"):
            raise ValueError(f"{name}: C2 traffic on the network but verdict {host['verdict']}")
        if first_c2 is not None and host["first_c2"] is not None and first_c2 < host["first_c2"]:
            raise ValueError(f"{name}: network C2 contact {first_c2} before the host's own {host['first_c2']}")
        return {**host, "network": seen}
    if host["verdict"] != seen["verdict"]:
        raise ValueError(f"{name}: verdict {host['verdict']} but the network shows {seen['verdict']}")
    return {"host": name, "verdict": host["verdict"], "first_execution": None, "activation_eta": None,
            "first_c2": first_c2, "story": host["story"], "network": seen}
