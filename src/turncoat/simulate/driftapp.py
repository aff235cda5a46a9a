"""The `driftapp` scenario: a trusted app trojanized in one signed update that no indicator pack knows.

A fictional vendor, Parrotfish Software Ltd, ships "Parrotfish Desk" (`ParrotDesk.exe`, installed per
user under `%LOCALAPPDATA%\\Programs\\ParrotDesk\\`). Every workstation of the office runs 4.2.10 daily:
its own modules `pdcore.dll` and `pdmedia.dll` (signed by the vendor), two third-party modules whose
files never change (Microsoft's `d3dcompiler_47.dll`, and an `ffmpeg.dll` that is unsigned in every
build: a module already unsigned before is no drift), usage-driven calls to `api.parrotfish.example`,
and the app's own update check every 4 h to `update.parrotfish.example` (periodic, benign, and there
long before the incident).

On `RELEASE_430` the vendor's updater ships 4.3.0, a trojanized build: `pdcore.dll` has a new hash and
the same valid signer (an ordinary update), `pdmedia.dll` has a new hash and no signature at all. On
the hosts that took it, the implant sleeps 7-12 days from the build's first run (seeded per host), then
beacons over HTTPS to `parrot-cdn-sync.example` while the app runs (every 15 min, ~20 % jitter, ~20 %
of beats missed, a constant request size); on one host the operator then runs `cmd.exe /c whoami` and
`powershell.exe` through the app. On `RELEASE_431` (20 days later) the vendor ships clean 4.3.1
(`pdmedia.dll` signed again, new hash): the updater replaces the files, and the beacons stop there (the
implant lived in `pdmedia.dll` and does not persist elsewhere). Nothing here is in any pack: only the
IOC-free generic mode (drift, dormancy, beaconing) can find it.

Every name is fictional: `.example` domains (RFC 2606), documentation addresses (RFC 5737), hashes
derived from labels as in `pe.py`. The office's network is logged too (Zeek, DNS server, and the
TLS-inspecting proxy one host goes through), from the same calls as the hosts' Sysmon events; the
beacon's TLS connections there carry a constant request size, and the proxy logs its POSTs. The rest
of each host's day is the ordinary office noise (`noise.py`), with no 3CX client anywhere.

Deterministic like the rest of the simulator: seeded streams, no clock reads.
"""

from __future__ import annotations

import random
import tempfile
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from . import catalog, netformats, network, noise, sessions, writer
from .actors import Logon, Proc
from .clock import UTC, Span, after, between, early_in_second, floor_second, iso_s
from .context import HostCtx
from .host import new_host_ctx
from .pe import Binary
from .recorder import Sources
from .scenarios import HostSpec

SCENARIO = "driftapp"
DESCRIPTION = ("8 workstations running a fictional vendor's signed app, Parrotfish Desk, trojanized in one update "
               "(4.3.0) that no pack knows: unsigned module, 7-12 day dormancy, 15-min beacon, one payload; "
               "clean 4.3.1 twenty days later; with the office's network logs (Sep-Oct 2023)")

#: Six weeks of evidence: two of baseline on 4.2.10, then the trojanized update, then the clean fix.
SPAN = Span(datetime(2023, 9, 4, tzinfo=UTC), datetime(2023, 10, 16, 17, 0, tzinfo=UTC))

SIGNER = "Parrotfish Software Ltd"
PRODUCT = "Parrotfish Desk"
APP_DIR = "{home}\\AppData\\Local\\Programs\\ParrotDesk"
EXE_PATH = APP_DIR + "\\ParrotDesk.exe"
PACKAGES_DIR = "{home}\\AppData\\Local\\ParrotDesk\\packages"

API = "api.parrotfish.example"
UPDATE = "update.parrotfish.example"
DOWNLOAD = "dl.parrotfish.example"
C2_DOMAIN = "parrot-cdn-sync.example"
#: Documentation addresses (RFC 5737): the vendor's services and the implant's server.
ADDRESSES = {API: "198.51.100.23", UPDATE: "198.51.100.24", DOWNLOAD: "198.51.100.31", C2_DOMAIN: "203.0.113.66"}

#: The app's own update check (benign, periodic, there before the incident).
CHECK_EVERY = timedelta(hours=4)
#: The implant's beacon: period, jitter (a fraction of the period, either way), share of missed beats.
BEACON_PERIOD = timedelta(minutes=15)
BEACON_JITTER = 0.2
BEACON_MISSED = 0.2
#: What the implant sends each beat, as the network sensor counts it (TLS client bytes): always the same.
BEACON_REQUEST_BYTES = 1_184
BEACON_RESPONSE_BYTES = 367  # "nothing to do"; a tasking answer is larger
#: What a TLS-inspecting proxy sees of a beat: the implant posts to one path with the app's own user agent.
BEACON_PATH = "/v2/sync/heartbeat"
BEACON_USER_AGENT = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) ParrotDesk/4.3.0"
#: The implant's sleep after the trojanized build's first run on a host.
DORMANCY_DAYS = (7.0, 12.0)


# -- the app's builds ---------------------------------------------------------------------------------------

def _vendor(path: str, version: str, description: str, original: str, signed: bool = True) -> Binary:
    return Binary(path, version, description, PRODUCT, SIGNER, original, SIGNER if signed else "")


@dataclass(frozen=True)
class ParrotBuild:
    version: str
    exe: Binary
    pdcore: Binary
    pdmedia: Binary
    trojanized: bool = False

    @property
    def package(self) -> str:
        return f"ParrotDesk-{self.version}-full.pdpkg"

    def modules(self) -> tuple[Binary, ...]:
        """What the app loads at start, in order: its own modules, then the third-party ones."""
        return (self.pdcore, self.pdmedia, FFMPEG, D3DCOMPILER)


def _build(version: str, trojanized: bool = False) -> ParrotBuild:
    return ParrotBuild(
        version,
        _vendor(EXE_PATH, version, PRODUCT, "ParrotDesk.exe"),
        _vendor(APP_DIR + "\\pdcore.dll", version, "Parrotfish Desk core library", "pdcore.dll"),
        _vendor(APP_DIR + "\\pdmedia.dll", version, "Parrotfish Desk media library", "pdmedia.dll",
                signed=not trojanized),
        trojanized,
    )


#: Third-party modules shipped beside the app, the same files in every build (stable hashes).
FFMPEG = Binary(APP_DIR + "\\ffmpeg.dll", "4.4.1", "FFmpeg library", "FFmpeg", "FFmpeg Project", "ffmpeg.dll")
D3DCOMPILER = Binary(
    APP_DIR + "\\d3dcompiler_47.dll", catalog.D3DCOMPILER.version, catalog.D3DCOMPILER.description,
    catalog.D3DCOMPILER.product, catalog.D3DCOMPILER.company, catalog.D3DCOMPILER.original, catalog.D3DCOMPILER.signer,
)
UPDATER = Binary(APP_DIR + "\\ParrotUpdate.exe", "2.1.0", "Parrotfish Desk Updater", "Parrotfish Desk Updater",
                 SIGNER, "ParrotUpdate.exe", SIGNER)
POWERSHELL = Binary(
    "C:\\Windows\\System32\\WindowsPowerShell\\v1.0\\powershell.exe", "10.0.19041.2604 (WinBuild.160101.0800)",
    "Windows PowerShell", "Microsoft® Windows® Operating System", "Microsoft Corporation", "PowerShell.EXE",
    "Microsoft Windows",
)

BUILD_4210 = _build("4.2.10")
BUILD_430 = _build("4.3.0", trojanized=True)
BUILD_431 = _build("4.3.1")
BUILDS = {b.version: b for b in (BUILD_4210, BUILD_430, BUILD_431)}

#: When the vendor's update server started offering each release (each supersedes the one before).
RELEASE_430 = datetime(2023, 9, 19, 9, 30, tzinfo=UTC)
RELEASE_431 = RELEASE_430 + timedelta(days=20) - timedelta(hours=1, minutes=30)  # D+20, 08:00 UTC
RELEASES: tuple[tuple[datetime, ParrotBuild], ...] = ((RELEASE_430, BUILD_430), (RELEASE_431, BUILD_431))

CAMPAIGN = f"generic:{SIGNER}/{PRODUCT}/{BUILD_430.version}"


def _newer(a: ParrotBuild, b: ParrotBuild) -> bool:
    return tuple(map(int, a.version.split("."))) > tuple(map(int, b.version.split(".")))


# -- the office ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class DriftHost:
    """A workstation of this scenario: the shared `HostSpec` (name, user, verdict, story, days off; no 3CX
    client and no 3CX compromise) plus what the vendor's updater does on it.

    `offered`: the releases the update server offers this install (a staged rollout may skip one);
    `auto_update` False: checks switched off in the app's settings (no update traffic at all);
    `payload`: the operator runs commands through the implant on this host."""

    spec: HostSpec
    offered: frozenset[str] = frozenset({"4.3.0", "4.3.1"})
    auto_update: bool = True
    payload: bool = False


_HOSTS: tuple[DriftHost, ...] = (
    DriftHost(HostSpec(
        "wks-01", "c.dupont", "c2-contact",
        story="ParrotDesk 4.2.10 every working day; its updater installs 4.3.0 on 2023-09-19; after its dormancy "
              "the implant in pdmedia.dll beacons to parrot-cdn-sync.example every ~15 min while the app runs, "
              "until the updater replaces it with clean 4.3.1 on 2023-10-09 (the beacons stop there)")),
    DriftHost(HostSpec(
        "wks-02", "m.bernard", "not-affected", browser="msedge",
        story="automatic updates switched off in ParrotDesk's settings: no update checks, 4.2.10 over the whole "
              "span"), auto_update=False),
    DriftHost(HostSpec(
        "wks-03", "s.petit", "not-affected",
        story="the vendor's staged rollout never offered 4.3.0 to this install; its update check (every 4 h) "
              "takes clean 4.3.1 on 2023-10-09"), offered=frozenset({"4.3.1"})),
    DriftHost(HostSpec(
        "wks-04", "l.moreau", "not-affected", powered_off=((date(2023, 9, 16), date(2023, 10, 9)),),
        story="on leave, laptop off 2023-09-16..10-09: it never saw 4.3.0 and skips from 4.2.10 to clean 4.3.1 "
              "at its first update check on 2023-10-10")),
    DriftHost(HostSpec(
        "wks-05", "j.laurent", "c2-contact",
        story="4.3.0 by the updater on 2023-09-19; beacons after its dormancy; clean 4.3.1 on 2023-10-09 ends "
              "them")),
    DriftHost(HostSpec(
        "wks-06", "n.girard", "c2-contact", browser="msedge", proxy=True,
        story="web through the office's TLS-inspecting proxy; 4.3.0 by the updater on 2023-09-19; beacons after "
              "its dormancy (the proxy logs each POST); clean 4.3.1 on 2023-10-09 ends them")),
    DriftHost(HostSpec(
        "wks-07", "a.roux", "payload",
        story="4.3.0 by the updater on 2023-09-19; beacons after its dormancy; a few days later the operator "
              "runs cmd.exe /c whoami, then powershell.exe, as children of ParrotDesk.exe; clean 4.3.1 on "
              "2023-10-09 ends the beacons"), payload=True),
    DriftHost(HostSpec(
        "wks-08", "p.fournier", "armed-dormant", powered_off=((date(2023, 9, 22), date(2023, 10, 16)),),
        story="4.3.0 by the updater on 2023-09-19, run three days; the laptop is off from 2023-09-22 (sick "
              "leave) and its disk is collected without booting it: the implant's activation falls while it is "
              "off, so it never called out, and 4.3.1 never reached it")),
)


def hosts(scale: int = 1) -> tuple[DriftHost, ...]:
    """The scenario's hosts, `scale` times over with unique names (as `scenarios.hosts` does)."""
    if scale < 1:
        raise ValueError(f"scale must be >= 1, not {scale}")
    if scale == 1:
        return _HOSTS
    total = len(_HOSTS) * scale
    width = max(2, len(str(total)))
    return tuple(replace(h, spec=replace(h.spec, name=f"wks-{copy * len(_HOSTS) + i + 1:0{width}d}"))
                 for copy in range(scale) for i, h in enumerate(_HOSTS))


# -- one host -----------------------------------------------------------------------------------------------

@dataclass
class Run:
    """One run of ParrotDesk.exe: from its start (autostart at logon, or relaunch by the updater) to its end
    (logoff, or closed by the updater)."""

    start: datetime
    end: datetime
    build: ParrotBuild
    proc: Proc
    parent: Proc
    parent_binary: Binary
    checks: list[datetime] = field(default_factory=list)  # its update checks


@dataclass
class Life:
    """What happened to the app on one host (ground-truth instants are full precision here)."""

    runs: list[Run] = field(default_factory=list)
    first_runs: dict[str, datetime] = field(default_factory=dict)  # version -> first start on this host
    activation_eta: datetime | None = None
    beacons: list[tuple[datetime, Run]] = field(default_factory=list)  # beats actually sent
    payload_at: datetime | None = None


def _release_at(ts: datetime) -> ParrotBuild | None:
    """The release the update server offers at `ts` (the latest published; None before any)."""
    live = [build for published, build in RELEASES if published <= ts]
    return live[-1] if live else None


def _plan_runs(ctx: HostCtx, h: DriftHost) -> Life:
    """Every run of the app, session by session; an update check that finds a release offered to this
    install runs the updater, which closes the app, writes the new files and relaunches it."""
    rng = ctx.rng_for("parrot:runs")
    life = Life()
    home = ctx.host.home
    exe = EXE_PATH.replace("{home}", home)
    cwd = APP_DIR.replace("{home}", home) + "\\"
    installed = BUILD_4210
    for day in sorted(ctx.sessions):
        s = ctx.sessions[day]
        proc = ctx.procs.user(s.logon, exe, f'"{exe}" --autostart', cwd=cwd)
        run = Run(s.app_at, s.end, installed, proc, s.explorer, catalog.EXPLORER)
        check = after(rng, run.start, 25, 60) if h.auto_update else None
        while check is not None and check < run.end - timedelta(minutes=3):
            run.checks.append(check)
            offer = _release_at(check)
            if offer is not None and offer.version in h.offered and _newer(offer, installed):
                run = _update(ctx, life, run, check, offer, rng)
                installed = offer
                check = after(rng, run.start, 25, 60)
                continue
            check = after(rng, check + CHECK_EVERY, -2, 2)
        life.runs.append(run)
    for run in life.runs:
        life.first_runs.setdefault(run.build.version, run.start)
    return life


def _update(ctx: HostCtx, life: Life, run: Run, check: datetime, build: ParrotBuild, rng: random.Random) -> Run:
    """The updater takes `build` after the check at `check`: it downloads the package, closes the running
    app, writes the new files, and starts the new build. Returns the new run."""
    rec, home = ctx.rec, ctx.host.home
    logon = Logon(run.proc.logon_id, run.proc.logon_guid)
    cwd = APP_DIR.replace("{home}", home) + "\\"
    t = after(rng, check, 1, 3)
    updater_path = UPDATER.path(home)
    updater = ctx.procs.user(logon, updater_path,
                             f'"{updater_path}" --update {build.version} --channel stable --relaunch', cwd=cwd)
    rec.process(t, updater, run.proc, UPDATER)
    t = after(rng, t, 0.4, 1.5)
    rec.dns(t, updater, DOWNLOAD, (ADDRESSES[DOWNLOAD],))
    rec.connect(after(rng, t, 0.05, 0.3), updater, ADDRESSES[DOWNLOAD], 443, DOWNLOAD)
    rec.file_create(after(rng, t, 8, 30), updater, f"{PACKAGES_DIR.replace('{home}', home)}\\{build.package}")
    closed = after(rng, t, 35, 60)
    run.end = closed
    life.runs.append(run)
    t = after(rng, closed, 1, 3)
    for binary in (build.exe, build.pdcore, build.pdmedia):  # the files that changed; the others stay
        rec.file_create(t, updater, binary.path(home))
        t = after(rng, t, 0.05, 0.4)
    start = early_in_second(rng, after(rng, t, 2, 6))
    proc = ctx.procs.user(logon, run.proc.image, f'"{run.proc.image}" --updated-from {run.build.version}',
                          cwd=cwd)
    return Run(start, _session_end(ctx, start), build, proc, updater, UPDATER)


def _session_end(ctx: HostCtx, ts: datetime) -> datetime:
    s = next(s for s in ctx.sessions.values() if s.start <= ts < s.end)
    return s.end


def _plan_implant(ctx: HostCtx, h: DriftHost, life: Life) -> None:
    """The implant's sleep, then its beats while a trojanized run lasts, and the payload where there is one."""
    first = life.first_runs.get(BUILD_430.version)
    if first is None:
        return
    rng = ctx.rng_for("parrot:implant")
    trojanized = [run for run in life.runs if run.build.trojanized]
    # the sleep is seeded per host; where the host works on, it ends while the app runs (so the first
    # beat is the end of the sleep, not the next morning); a host that stops running the build keeps
    # its first draw
    eta = first + timedelta(days=rng.uniform(*DORMANCY_DAYS))
    for _ in range(1000):
        candidate = first + timedelta(days=rng.uniform(*DORMANCY_DAYS))
        if any(run.start <= candidate < run.end - timedelta(minutes=20) for run in trojanized):
            eta = candidate
            break
    life.activation_eta = eta = floor_second(eta) + timedelta(milliseconds=rng.randrange(1000))
    for run in trojanized:
        if run.end <= eta:
            continue
        t = eta if run.start <= eta else after(rng, run.start, 20, 90)
        sent_one = False
        while t < run.end - timedelta(seconds=5):
            if not sent_one or rng.random() >= BEACON_MISSED:  # a run's first beat always goes out
                life.beacons.append((early_in_second(rng, t), run))
                sent_one = True
            t = after(rng, t, BEACON_PERIOD.total_seconds() * (1 - BEACON_JITTER),
                      BEACON_PERIOD.total_seconds() * (1 + BEACON_JITTER))
    if h.payload and life.beacons:
        wait = timedelta(days=rng.uniform(2, 4))
        first_beat = life.beacons[0][0]
        for beat, run in life.beacons:
            if beat >= first_beat + wait and beat < run.end - timedelta(minutes=20):
                life.payload_at = after(rng, beat, 3, 12)
                break


def _emit(ctx: HostCtx, life: Life) -> None:
    """Each run's events: the process, its module loads (within its first second), its API calls (when the
    user works in it), its update checks; then the beats and the payload."""
    rng = ctx.rng_for("parrot:events")
    rec, home = ctx.rec, ctx.host.home
    for run in life.runs:
        p, b = run.proc, run.build
        rec.process(run.start, p, run.parent, b.exe)
        t = run.start
        for module in b.modules():
            t = after(rng, t, 0.02, 0.09)
            rec.image_load(t, p, module.path(home), module)
        for check in run.checks:
            _call(ctx, p, check, UPDATE, rng)
        hours = (run.end - run.start).total_seconds() / 3600
        for _ in range(max(1, round(hours * rng.uniform(0.4, 1.4)))):
            t = between(rng, run.start + timedelta(seconds=30), run.end - timedelta(seconds=30))
            _call(ctx, p, t, API, rng)
    payload_beat = None
    if life.payload_at is not None:
        payload_beat = max(beat for beat, _ in life.beacons if beat < life.payload_at)
    for beat, run in life.beacons:
        _call(ctx, run.proc, beat, C2_DOMAIN, rng)
        if beat == payload_beat:
            _payload(ctx, run, life.payload_at, rng)


def _call(ctx: HostCtx, proc: Proc, t: datetime, name: str, rng: random.Random) -> None:
    ip = ADDRESSES[name]
    ctx.rec.dns(t, proc, name, (ip,))
    ctx.rec.connect(after(rng, t, 0.01, 0.3), proc, ip, 443, name)


def _payload(ctx: HostCtx, run: Run, t: datetime | None, rng: random.Random) -> None:
    """The operator's first commands through the implant: `whoami` by cmd.exe, then a PowerShell query."""
    assert t is not None
    logon = Logon(run.proc.logon_id, run.proc.logon_guid)
    cwd = run.proc.cwd
    cmd = ctx.procs.user(logon, catalog.CMD.template, "C:\\Windows\\system32\\cmd.exe /c whoami", cwd=cwd)
    ctx.rec.process(t, cmd, run.proc, catalog.CMD)
    whoami = ctx.procs.user(logon, catalog.WHOAMI.template, "whoami", cwd=cwd)
    ctx.rec.process(after(rng, t, 0.05, 0.4), whoami, cmd, catalog.WHOAMI)
    ps_cmdline = ('powershell.exe -NoProfile -NonInteractive -Command "Get-CimInstance Win32_ComputerSystem | '
                  'Select-Object Domain,UserName,Model"')
    ps = ctx.procs.user(logon, POWERSHELL.template, ps_cmdline, cwd=cwd)
    ctx.rec.process(after(rng, t, 40, 240), ps, run.proc, POWERSHELL)


# -- the network sensor's view of the beacon -----------------------------------------------------------------

class _Net(network.HostNet):
    """`HostNet` that knows this campaign's C2 (the 3CX one knows only the pack's) and gives the implant's
    TLS connections the byte counts of a fixed-size beacon."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._beat_rng = random.Random(f"{self._seed_key}:parrot-beacon")

    def dns(self, ts: datetime, name: str, ips: tuple[str, ...], cname: str | None) -> None:
        if name == C2_DOMAIN:
            self._c2(ts)
        super().dns(ts, name, ips, cname)

    def connect(self, ts: datetime, image: str, ip: str, port: int, hostname: str,
                src_port: int) -> tuple[str, int, str]:
        target = super().connect(ts, image, ip, port, hostname, src_port)
        if hostname == C2_DOMAIN:
            self._c2(ts)
            record = self.records[-1]
            # [µs, index, seq, "tcp", client, port, server, server port, name, upstream, tls, duration, orig,
            #  resp, uid, resumed, agent, requests]: the implant's WinHTTP speaks TLS 1.2, never resumes
            assert record[3] == "tcp" and record[8] == hostname, record[:10]
            r = self._beat_rng
            duration = int(r.uniform(0.12, 0.6) * 1_000_000)
            answer = BEACON_RESPONSE_BYTES if r.random() >= 0.02 else r.randrange(1_500, 9_000)
            record[10], record[11], record[12], record[13], record[15] = "12", duration, BEACON_REQUEST_BYTES, answer, False
            if record[9] is not None:  # through the TLS-inspecting proxy: it logs the beacon's request
                done = max(1, duration - r.randrange(1_000, 20_000))
                record[16] = BEACON_USER_AGENT
                record[17] = [[done, "POST", BEACON_PATH, 200, answer - r.randrange(80, 200)]]
        return target


# -- the scenario ---------------------------------------------------------------------------------------

def _truth(h: DriftHost, life: Life) -> dict[str, Any]:
    def iso(ts: datetime | None) -> str | None:
        return None if ts is None else iso_s(ts)

    first_430 = life.first_runs.get(BUILD_430.version)
    beats = [beat for beat, _ in life.beacons]
    return {
        "host": h.spec.name,
        "verdict": h.spec.verdict,
        "first_execution": iso(first_430),
        "activation_eta": iso(life.activation_eta),
        "first_c2": iso(beats[0]) if beats else None,
        "story": h.spec.story,
        "dormancy_days": (None if life.activation_eta is None or first_430 is None
                          else round((life.activation_eta - first_430) / timedelta(days=1), 2)),
        "last_c2": iso(beats[-1]) if beats else None,
        "beacons": len(beats),
        "payload": iso(life.payload_at),
        "builds": [{"version": v, "first_run": iso_s(t)} for v, t in life.first_runs.items()],
    }


def _check(h: DriftHost, life: Life) -> None:
    """A host whose simulated life contradicts its verdict is a bug in the table: fail loudly."""
    name, verdict = h.spec.name, h.spec.verdict
    ran = BUILD_430.version in life.first_runs
    if verdict == "not-affected" and ran:
        raise ValueError(f"{name}: not-affected but 4.3.0 ran")
    if verdict != "not-affected" and not ran:
        raise ValueError(f"{name}: {verdict} but 4.3.0 never ran")
    if (verdict in ("c2-contact", "payload")) != bool(life.beacons):
        raise ValueError(f"{name}: verdict {verdict} but {len(life.beacons)} beacons")
    if (verdict == "payload") != (life.payload_at is not None):
        raise ValueError(f"{name}: verdict {verdict} but payload at {life.payload_at}")


def _simulate_host(h: DriftHost, seed: int, index: int, net: network.HostNet | None) -> tuple[str, Any, dict]:
    spec = h.spec
    ctx = new_host_ctx(spec, SCENARIO, seed, index, SPAN, Sources(SPAN.start, None, True, True, True), net)
    seed_key, rec = ctx.seed_key, ctx.rec
    sessions.plan(ctx)
    life = _plan_runs(ctx, h)
    _plan_implant(ctx, h, life)
    _check(h, life)
    _emit(ctx, life)
    noise.emit(ctx)
    return seed_key, rec.events, _truth(h, life)


def campaign_truth(truth_hosts: list[dict[str, Any]]) -> dict[str, Any]:
    """The scenario-level description of the generic campaign, as the generic mode should name it."""
    return {
        "id": CAMPAIGN,
        "signer": SIGNER,
        "product": PRODUCT,
        "version": BUILD_430.version,
        "executable": EXE_PATH.replace("{home}", "%USERPROFILE%"),
        "published": iso_s(RELEASE_430),
        "superseded_by": {"version": BUILD_431.version, "published": iso_s(RELEASE_431)},
        "trojanized_module": {"name": "pdmedia.dll", "signed": False,
                              "sha256": BUILD_430.pdmedia.digests.sha256},
        "updated_module_same_signer": {"name": "pdcore.dll", "sha256": BUILD_430.pdcore.digests.sha256},
        "c2": {"domain": C2_DOMAIN, "ip": ADDRESSES[C2_DOMAIN], "port": 443},
        "period_seconds": int(BEACON_PERIOD.total_seconds()),
        "jitter": BEACON_JITTER,
        "missed_beats": BEACON_MISSED,
        "request_bytes": BEACON_REQUEST_BYTES,
        "dormancy_days": {"min": DORMANCY_DAYS[0], "max": DORMANCY_DAYS[1]},
        "benign_periodic": {"domain": UPDATE, "period_seconds": int(CHECK_EVERY.total_seconds()),
                            "note": "the app's own update check, there before 4.3.0: not drift"},
        "hosts": [h["host"] for h in truth_hosts if h["first_execution"] is not None],
    }


def simulate_driftapp(out: Path, seed: int = 7, scale: int = 1) -> dict[str, Any]:
    """Write `out/evidence/<host>/…`, `out/evidence/network/…` and `out/ground-truth.json`; return the truth."""
    out = Path(out)
    evidence = out / "evidence"
    if evidence.exists() and any(evidence.iterdir()):
        raise FileExistsError(f"{evidence} is not empty; simulate into a fresh folder")
    evidence.mkdir(parents=True, exist_ok=True)
    table = hosts(scale)
    specs = tuple(h.spec for h in table)
    net_key = f"{seed}:{SCENARIO}"
    truth_hosts = []
    with tempfile.TemporaryDirectory(prefix="turncoat-net-") as spool:
        office = network.Office(Path(spool), specs, SPAN, net_key)
        for index, h in enumerate(table):  # one host at a time: memory stays flat whatever the scale
            net = _Net(index, h.spec, office.plans[h.spec.name], SPAN, f"{net_key}:{h.spec.name}")
            seed_key, events, host = _simulate_host(h, seed, index, net)
            writer.write_host(evidence, h.spec.name, seed_key, events)
            office.add(net)
            truth_hosts.append(network.host_truth(host, net, True))
        netformats.write_logs(evidence / "network", office.records(), SPAN, net_key)
    truth_hosts.sort(key=lambda t: t["host"])
    truth: dict[str, Any] = {
        "scenario": SCENARIO,
        "seed": seed,
        "collection_end": iso_s(SPAN.end),
        "generic_campaign": campaign_truth(truth_hosts),
        "hosts": truth_hosts,
        "network": office.truth(),
    }
    writer.write_ground_truth(out / "ground-truth.json", truth)
    return truth
