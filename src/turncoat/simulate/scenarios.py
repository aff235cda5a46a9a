"""Scenarios as data: which hosts an office has, what each one logged, and what happened to it.

A scenario is a `Scenario`: its hosts (`HostSpec`), a description, and its evidence span (when the logs
start and when they were collected); adding one means adding an entry to `_SCENARIOS`. A host's fate is
its `verdict`, and for the compromised ones a `Compromise` giving the dates of each stage; `attack.py`
has one function per stage and runs the one the verdict names. What else happens to the host's 3CX
client (a clean update, an uninstall, a clean reinstall) is a list of `AppStep`s. A scenario with an
office network also gets what the network saw (`network.py`): which hosts go through the web proxy,
and when a host's DHCP address changes (`Readdress`), are host attributes too.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date, datetime

from .clock import DEFAULT_SPAN, EVIDENCE_START, UTC, Span

VERDICTS = (
    "not-affected", "no-evidence", "vulnerable-installed", "armed-dormant", "c2-contact", "payload", "data-stolen",
)
_START = EVIDENCE_START.date()


@dataclass(frozen=True)
class Telemetry:
    """Which logs the host kept. A date is the first day that log holds (earlier records rolled over)."""

    sysmon_from: date | None = _START
    process_audit_from: date | None = None
    logons: bool = True
    application: bool = True
    defender: bool = True


@dataclass(frozen=True)
class CleanApp:
    """A clean 3CX client (18.11.1213). `installed` None: already there before the evidence starts."""

    installed: date | None = None


@dataclass(frozen=True)
class Compromise:
    """When the trojanized 18.12.416 arrived and what followed (only the stages the verdict reaches are used).

    `via`: "msi" (installer downloaded and run) or "update" (the running client's Squirrel updater
    pulled the package from the PBX).
    """

    installed: date
    via: str = "msi"
    c2_domains: tuple[str, ...] = ()
    action_on: date | None = None  # payload / data-stolen: the day the operator acted
    defender_alert: bool = False


#: Clean Windows builds a step may install: the last one before the incident and the two after it.
CLEAN_VERSIONS = ("18.11.1213", "18.12.422", "18.12.425")
_STEP_ACTIONS = ("update", "msi", "uninstall")


@dataclass(frozen=True)
class AppStep:
    """Something done to the host's 3CX client on `day`, after its first install (and the compromise's):

    "update": the running client's Squirrel updater pulls clean `version` from the PBX and relaunches it;
    "msi": clean `version` installed by MSI (over the installed build, if any: a major upgrade);
    "uninstall": the installed build removed through Windows Installer (the running client is closed).
    """

    day: date
    action: str
    version: str | None = None


@dataclass(frozen=True)
class Readdress:
    """On `day` the host gets another DHCP address: a fresh one from the pool, or `takes_from`'s first
    address (that host must have left it more than a lease earlier).

    `new_mac`: the host came back with another network adapter (say, a replaced USB-C dock), so the
    server saw a new client; otherwise its old address was refused (NAK) and it asked for a new one.
    The exchange happens before work that day, or at power-on when the machine was off the day before.
    """

    day: date
    takes_from: str | None = None
    new_mac: bool = False


@dataclass(frozen=True)
class HostSpec:
    name: str
    user: str
    verdict: str
    story: str
    telemetry: Telemetry = Telemetry()
    clean_app: CleanApp | None = None
    compromise: Compromise | None = None
    browser: str = "chrome"
    app_steps: tuple[AppStep, ...] = ()  # in date order
    powered_off: tuple[tuple[date, date], ...] = ()  # inclusive ranges of days the machine stayed off
    proxy: bool = False  # its web traffic goes through the office proxy (a PAC file that resolves names first)
    readdress: tuple[Readdress, ...] = ()  # DHCP address changes, in date order

    def is_off(self, day: date) -> bool:
        return any(first <= day <= last for first, last in self.powered_off)


@dataclass(frozen=True)
class Scenario:
    hosts: tuple[HostSpec, ...]
    description: str
    span: Span = DEFAULT_SPAN  # evidence from span.start; logs collected at span.end
    network: bool = False  # the office's network logs (Zeek sensor, DNS server, proxy) are collected too
    endpoint: bool = True  # the hosts' own logs are collected (False: network evidence only)


NO_SYSMON_BUT_AUDIT = Telemetry(sysmon_from=None, process_audit_from=_START, defender=False)
LOGONS_ONLY = Telemetry(sysmon_from=None, application=False, defender=False)
NO_LOGS = Telemetry(sysmon_from=None, logons=False, application=False, defender=False)

_OFFICE: tuple[HostSpec, ...] = (
    HostSpec("wks-01", "c.dupont", "not-affected", clean_app=CleanApp(),
             story="Sysmon over the whole span; clean 3CX 18.11.1213 runs every working day"),
    HostSpec("wks-02", "m.bernard", "not-affected", telemetry=NO_SYSMON_BUT_AUDIT,
             clean_app=CleanApp(installed=date(2022, 11, 21)), browser="msedge", proxy=True,
             story="no Sysmon; Security 4688 over the whole span; clean 3CX 18.11.1213 installed by MSI on 2022-11-21; "
                   "web through the proxy"),
    HostSpec("wks-03", "s.petit", "no-evidence", telemetry=Telemetry(sysmon_from=date(2023, 2, 1)),
             clean_app=CleanApp(),
             story="Sysmon log rolled over: it starts on 2023-02-01; clean 3CX only; the window start is unseen"),
    HostSpec("wks-04", "l.moreau", "no-evidence", telemetry=LOGONS_ONLY,
             powered_off=((date(2023, 3, 16), date(2023, 3, 28)),),
             readdress=(Readdress(date(2023, 3, 29), takes_from="wks-07"),),
             story="only Security 4624 logons: no process telemetry at all; off 2023-03-16..28, its lease expired: "
                   "back on 2023-03-29 with the address wks-07 had until 2023-03-20"),
    HostSpec("wks-05", "j.laurent", "vulnerable-installed",
             compromise=Compromise(installed=date(2023, 3, 20), defender_alert=True),
             story="3CXDesktopApp-18.12.416.msi installed on 2023-03-20, never launched; Defender flagged ffmpeg.dll"),
    HostSpec("wks-06", "n.girard", "armed-dormant",
             compromise=Compromise(installed=date(2023, 3, 25)),
             story="18.12.416 installed and first run on Saturday 2023-03-25; dormant: activation due after collection"),
    HostSpec("wks-07", "a.roux", "c2-contact", clean_app=CleanApp(),
             compromise=Compromise(installed=date(2023, 3, 8), c2_domains=("akamaitechcloudservices.com",)),
             readdress=(Readdress(date(2023, 3, 20), new_mac=True),),
             story="18.11.1213 upgraded by MSI to 18.12.416 on 2023-03-08; GitHub then C2 beacons 7 days later; "
                   "new dock on 2023-03-20: new MAC, new DHCP address while beaconing"),
    HostSpec("wks-08", "p.fournier", "payload", clean_app=CleanApp(), browser="msedge", proxy=True,
             compromise=Compromise(installed=date(2023, 3, 2), via="update",
                                   c2_domains=("msstorageazure.com", "officestoragebox.com"),
                                   action_on=date(2023, 3, 14)),
             story="auto-updated to 18.12.416 on 2023-03-02; C2 from 2023-03-09 (through the proxy); "
                   "app spawned cmd.exe on 2023-03-14"),
    HostSpec("wks-09", "e.lambert", "data-stolen",
             compromise=Compromise(installed=date(2023, 3, 6),
                                   c2_domains=("azureonlinestorage.com", "pbxcloudeservices.com"),
                                   action_on=date(2023, 3, 15)),
             story="18.12.416 installed 2023-03-06; C2 from 2023-03-13; ICONIC stealer copied browser history 2023-03-15"),
)

_CLEAN: tuple[HostSpec, ...] = (
    HostSpec("pc-01", "c.dupont", "not-affected", clean_app=CleanApp(),
             story="Sysmon over the whole span; clean 3CX 18.11.1213"),
    HostSpec("pc-02", "m.bernard", "not-affected", telemetry=NO_SYSMON_BUT_AUDIT,
             clean_app=CleanApp(installed=date(2022, 12, 5)),
             story="no Sysmon; Security 4688 over the whole span; clean 3CX installed 2022-12-05"),
    HostSpec("pc-03", "s.petit", "not-affected", browser="msedge",
             story="Sysmon over the whole span; no 3CX client at all"),
)

_BLIND: tuple[HostSpec, ...] = (
    HostSpec("pc-01", "c.dupont", "no-evidence", telemetry=LOGONS_ONLY,
             story="only Security 4624 logons"),
    HostSpec("pc-02", "m.bernard", "no-evidence", telemetry=Telemetry(sysmon_from=date(2023, 3, 1)),
             clean_app=CleanApp(), story="Sysmon starts only on 2023-03-01; clean 3CX"),
    HostSpec("pc-03", "s.petit", "no-evidence",
             telemetry=Telemetry(sysmon_from=None, process_audit_from=date(2023, 2, 15), defender=False),
             clean_app=CleanApp(), story="no Sysmon; Security 4688 only from 2023-02-15 (log rolled over)"),
)

#: Collected three weeks after the disclosure, once 3CX had shipped clean builds (18.12.422 on
#: 2023-03-31, 18.12.425 on 2023-04-04) and the GitHub dead drop was gone (2023-03-29 01:19 UTC).
AFTERMATH_SPAN = Span(EVIDENCE_START, datetime(2023, 4, 20, 17, 0, tzinfo=UTC))

_AFTERMATH: tuple[HostSpec, ...] = (
    HostSpec("pc-01", "c.dupont", "not-affected", clean_app=CleanApp(),
             app_steps=(AppStep(date(2023, 3, 31), "update", "18.12.422"),),
             story="Sysmon over the whole span; clean 18.11.1213, updated from the PBX by the app's updater "
                   "to clean 18.12.422 on 2023-03-31"),
    HostSpec("pc-02", "m.bernard", "not-affected", clean_app=CleanApp(), browser="msedge",
             app_steps=(AppStep(date(2023, 4, 5), "msi", "18.12.425"),),
             story="Sysmon over the whole span; clean 18.11.1213 replaced by clean 18.12.425 (MSI major "
                   "upgrade) on 2023-04-05"),
    HostSpec("pc-03", "s.petit", "c2-contact", clean_app=CleanApp(),
             compromise=Compromise(installed=date(2023, 3, 13), c2_domains=("glcloudservice.com",)),
             app_steps=(AppStep(date(2023, 3, 30), "uninstall"), AppStep(date(2023, 4, 5), "msi", "18.12.425")),
             story="18.11.1213 upgraded by MSI to 18.12.416 on 2023-03-13; GitHub then C2 from 2023-03-20 (GitHub "
                   "only after the takedown); 18.12.416 uninstalled 2023-03-30; clean 18.12.425 by MSI 2023-04-05"),
    HostSpec("pc-04", "l.moreau", "c2-contact", telemetry=Telemetry(defender=False),
             compromise=Compromise(installed=date(2023, 3, 28)),
             powered_off=((date(2023, 3, 29), date(2023, 4, 17)),),
             story="18.12.416 installed and first run 2023-03-28; machine off until 2023-04-18, when the implant, "
                   "past its activation date, queries the dead drop, gone since 2023-03-29: no C2 learnt; "
                   "no Defender log (third-party antivirus)"),
    HostSpec("pc-05", "j.laurent", "no-evidence", telemetry=LOGONS_ONLY,
             story="only Security 4624 logons: no process telemetry at all"),
)

#: The office seen only from the network: no host log was collected. Verdicts are what network evidence can
#: support: C2 contact, or no evidence (it can never clear a host).
_NETONLY: tuple[HostSpec, ...] = (
    HostSpec("wks-01", "c.dupont", "no-evidence", telemetry=NO_LOGS, clean_app=CleanApp(),
             story="clean 3CX 18.11.1213; direct web access"),
    HostSpec("wks-02", "m.bernard", "no-evidence", telemetry=NO_LOGS, clean_app=CleanApp(), browser="msedge",
             proxy=True, story="clean 3CX 18.11.1213; web through the proxy"),
    HostSpec("wks-03", "s.petit", "no-evidence", telemetry=NO_LOGS,
             story="no 3CX client; its browser, like the others, fetches raw.githubusercontent.com at times "
                   "(innocent)"),
    HostSpec("wks-04", "l.moreau", "no-evidence", telemetry=NO_LOGS,
             powered_off=((date(2023, 3, 10), date(2023, 3, 23)),),
             readdress=(Readdress(date(2023, 3, 24), takes_from="wks-07"),),
             story="off 2023-03-10..23, its lease expired: back on 2023-03-24 with the address wks-07 had until "
                   "2023-03-14, whose earlier C2 traffic is not its own"),
    HostSpec("wks-05", "j.laurent", "no-evidence", telemetry=NO_LOGS, clean_app=CleanApp(), proxy=True,
             story="clean 3CX 18.11.1213; web through the proxy"),
    HostSpec("wks-06", "n.girard", "no-evidence", telemetry=NO_LOGS, browser="msedge",
             story="no 3CX client; direct web access"),
    HostSpec("wks-07", "a.roux", "c2-contact", telemetry=NO_LOGS, clean_app=CleanApp(),
             compromise=Compromise(installed=date(2023, 3, 1), c2_domains=("akamaitechcloudservices.com",
                                                                           "glcloudservice.com")),
             readdress=(Readdress(date(2023, 3, 14), new_mac=True),),
             story="18.12.416 by MSI on 2023-03-01; C2 beacons direct from 2023-03-08; new dock on 2023-03-14: "
                   "new MAC and address, beacons go on from the new address"),
    HostSpec("wks-08", "p.fournier", "c2-contact", telemetry=NO_LOGS, clean_app=CleanApp(), browser="msedge",
             proxy=True,
             compromise=Compromise(installed=date(2023, 3, 9), via="update",
                                   c2_domains=("msstorageazure.com", "officestoragebox.com")),
             story="auto-updated to 18.12.416 on 2023-03-09; C2 from 2023-03-16 through the TLS-inspecting proxy "
                   "(icon URL and beacons in its log)"),
    HostSpec("wks-09", "e.lambert", "c2-contact", telemetry=NO_LOGS,
             compromise=Compromise(installed=date(2023, 3, 20), c2_domains=("pbxcloudeservices.com",)),
             story="18.12.416 by MSI on 2023-03-20; C2 direct from 2023-03-27"),
)

_SCENARIOS: dict[str, Scenario] = {
    "office": Scenario(_OFFICE, "French law office, 9 workstations, one per verdict, with its network logs "
                                "(Nov 2022 - 30 Mar 2023)", network=True),
    "clean": Scenario(_CLEAN, "3 workstations with full telemetry and only clean 3CX builds: all not-affected"),
    "blind": Scenario(_BLIND, "3 workstations whose logs cannot clear them (logons only, late Sysmon, late 4688): "
                              "all no-evidence"),
    "aftermath": Scenario(_AFTERMATH, "5 workstations collected on 20 Apr 2023: clean 18.12.422/425 updates, a host "
                                      "cleaned after C2, a late activation after the dead drop's takedown",
                          AFTERMATH_SPAN),
    "netonly": Scenario(_NETONLY, "The law office seen from its network only (Zeek, DNS server, proxy; no host "
                                  "logs): 3 hosts with C2 contact, one changing address mid-way; 6 without evidence",
                        network=True, endpoint=False),
}

DESCRIPTIONS: dict[str, str] = {name: s.description for name, s in _SCENARIOS.items()}


def _known(scenario: str) -> Scenario:
    if scenario not in _SCENARIOS:
        raise ValueError(f"unknown scenario {scenario!r}; known: {', '.join(sorted(_SCENARIOS))}")
    return _SCENARIOS[scenario]


def network(scenario: str) -> bool:
    """Whether the scenario's office network logs are collected."""
    return _known(scenario).network


def endpoint(scenario: str) -> bool:
    """Whether the hosts' own logs are collected."""
    return _known(scenario).endpoint


def span(scenario: str) -> Span:
    """The scenario's evidence span: its logs start at `.start` and were collected at `.end`."""
    return _known(scenario).span


def hosts(scenario: str, scale: int = 1) -> tuple[HostSpec, ...]:
    """The scenario's hosts, `scale` times over with unique names ("wks-01" … "wks-18" for scale 2)."""
    known = _known(scenario)
    if scale < 1:
        raise ValueError(f"scale must be >= 1, not {scale}")
    base = known.hosts
    if scale == 1:
        return base
    total = len(base) * scale
    width = max(2, len(str(total)))
    out = []
    for copy in range(scale):
        names = {spec.name: f"{spec.name.rsplit('-', 1)[0]}-{copy * len(base) + i + 1:0{width}d}"
                 for i, spec in enumerate(base)}
        for spec in base:  # an address taken from another host is taken from that host's copy
            moves = tuple(replace(r, takes_from=names[r.takes_from]) if r.takes_from else r for r in spec.readdress)
            out.append(replace(spec, name=names[spec.name], readdress=moves))
    return tuple(out)


def _check() -> None:
    """Fail at import, not mid-simulation, if a scenario is inconsistent."""
    assert DESCRIPTIONS.keys() == _SCENARIOS.keys()
    for scenario in _SCENARIOS.values():
        specs, first, last = scenario.hosts, scenario.span.start.date(), scenario.span.end.date()
        assert len({s.name for s in specs}) == len(specs)
        for s in specs:
            assert s.verdict in VERDICTS, s
            assert (s.compromise is not None) == (VERDICTS.index(s.verdict) >= 2), s
            days = [step.day for step in s.app_steps]
            assert days == sorted(days) and all(first <= d <= last for d in days), s
            assert all(not s.is_off(d) for d in days), s
            for step in s.app_steps:
                assert step.action in _STEP_ACTIONS, step
                assert (step.version in CLEAN_VERSIONS) if step.action != "uninstall" else step.version is None, step
            if s.compromise is not None:
                assert first <= s.compromise.installed <= last and not s.is_off(s.compromise.installed), s
                assert all(d > s.compromise.installed for d in days), s
            moves = [r.day for r in s.readdress]
            assert moves == sorted(moves) and all(first < d <= last and not s.is_off(d) for d in moves), s
            assert all(r.takes_from in {o.name for o in specs} - {s.name} for r in s.readdress if r.takes_from), s
            assert scenario.network or not (s.proxy or s.readdress), s
        assert scenario.endpoint or all(s.telemetry == NO_LOGS for s in specs), scenario.description


_check()
