"""The SmoothOperator kill chain, one function per stage; each stage first plays the one before it.

installed → armed (first run: trojanized DLLs loaded, `manifest` written, 7-day sleep starts)
→ c2 (each run after the sleep fetches an icon from GitHub, then beacons to the C2 it decodes)
→ payload (the operator runs commands through the app) or stolen (the ICONIC stealer copies browser
history). A host's verdict names the last stage it reaches; `STAGES` maps verdicts to functions.

Each stage is played once per host (a later stage asking for an earlier one gets the same `Progress`),
so `arrive` can put the trojanized build in place first, `host.py` can then play the host's own later
3CX steps (an uninstall, a clean reinstall), and `play` carries on from there once every change to the
client is known.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from . import catalog, indicators, threecx
from .actors import Logon, Proc
from .clock import after, early_in_second, floor_second, local
from .context import HostCtx
from .pe import Binary
from .scenarios import Compromise
from .threecx import TROJANIZED, AppRun

#: The pack's typical dormancy: the implant sleeps this long after its first run.
DORMANCY = timedelta(days=7)

_ICONIC = Binary("{home}\\AppData\\Local\\Temp\\iconic.dll", hashes=indicators.ICONIC_STEALER)


@dataclass
class Progress:
    """What the attack reached on a host (ground-truth instants, whole seconds)."""

    installed: threecx.Installed | None = None
    first_execution: datetime | None = None
    first_c2: datetime | None = None

    @property
    def activation_eta(self) -> datetime | None:
        return None if self.first_execution is None else self.first_execution + DORMANCY


def _once(stage: Callable[[HostCtx, Compromise], Progress]) -> Callable[[HostCtx, Compromise], Progress]:
    """Play a stage at most once per host; asking again returns its `Progress`."""
    @functools.wraps(stage)
    def played(ctx: HostCtx, c: Compromise) -> Progress:
        if stage.__name__ not in ctx.stages:
            ctx.stages[stage.__name__] = stage(ctx, c)
        return ctx.stages[stage.__name__]
    return played


@_once
def installed(ctx: HostCtx, c: Compromise) -> Progress:
    """18.12.416 lands on disk. Defender may flag its ffmpeg.dll (an alert the user dismissed)."""
    inst = threecx.install(ctx, TROJANIZED, c.installed, c.via)
    if c.defender_alert:
        _defender_detection(ctx, after(ctx.rng_for("attack:defender"), inst.files_at, 2, 20), inst.installer)
    return Progress(installed=inst)


@_once
def armed(ctx: HostCtx, c: Compromise) -> Progress:
    """The installer launches the new build: ffmpeg.dll side-loads, reads d3dcompiler_47.dll, writes
    `manifest` (the start of its sleep). The client then autostarts at every logon."""
    p = installed(ctx, c)
    rng = ctx.rng_for("attack:armed")
    assert p.installed is not None
    at = early_in_second(rng, after(rng, p.installed.done_at, 2, 8))
    first = threecx.launch(ctx, TROJANIZED, at, p.installed.installer)
    ctx.rec.file_create(after(rng, at, 2, 6), first, threecx.MANIFEST_PATH.replace("{home}", ctx.host.home))
    p.first_execution = floor_second(at)
    return p


@_once
def c2(ctx: HostCtx, c: Compromise) -> Progress:
    """After the sleep, every run of the client resolves raw.githubusercontent.com, fetches an icon, and
    beacons every few hours (with jitter) to the C2 decoded from it, as long as the client runs."""
    p = armed(ctx, c)
    rng = ctx.rng_for("attack:c2")
    eta = p.activation_eta
    assert eta is not None
    for run in threecx.runs(ctx):
        if not run.build.trojanized or run.end <= eta:
            continue
        t = max(after(rng, run.start, 40, 150), after(rng, eta, 60, 900))
        if t >= run.end - timedelta(minutes=2):
            continue
        _github_fetch(ctx, run.proc, t, rng)
        if p.first_c2 is None:
            p.first_c2 = floor_second(t)
        if run.start >= indicators.GITHUB_TAKEDOWN:
            continue  # the icon repository is gone: nothing to decode, no C2 to call
        t = after(rng, t, 5, 40)
        while t < run.end:
            _beacon(ctx, run.proc, t, rng.choice(c.c2_domains), rng)
            t = after(rng, t, 2 * 3600, 5 * 3600)
    return p


@_once
def payload(ctx: HostCtx, c: Compromise) -> Progress:
    """The operator runs a reconnaissance shell through the client: cmd.exe as its child."""
    p = c2(ctx, c)
    rng = ctx.rng_for("attack:payload")
    t, run = _operator_moment(ctx, c, p, rng)
    logon = Logon(run.proc.logon_id, run.proc.logon_guid)
    cmd = ctx.procs.user(logon, catalog.CMD.template,
                         'C:\\Windows\\system32\\cmd.exe /c "whoami /all & ipconfig /all & systeminfo"',
                         cwd=run.proc.cwd)
    ctx.rec.process(t, cmd, run.proc, catalog.CMD)
    for binary, args in ((catalog.WHOAMI, "/all"), (catalog.IPCONFIG, "/all"), (catalog.SYSTEMINFO, "")):
        t = after(rng, t, 0.2, 3)
        name = binary.template.rsplit("\\", 1)[-1]
        child = ctx.procs.user(logon, binary.template, f"{name} {args}".strip(), cwd=run.proc.cwd)
        ctx.rec.process(t, child, cmd, binary)
    return p


@_once
def stolen(ctx: HostCtx, c: Compromise) -> Progress:
    """The ICONIC stealer is dropped in Temp, loaded by the client, copies the browsers' history to
    `History.old`, and the result leaves by the C2 channel."""
    p = c2(ctx, c)
    rng = ctx.rng_for("attack:stolen")
    t, run = _operator_moment(ctx, c, p, rng)
    home = ctx.host.home
    dll = f"{home}\\AppData\\Local\\Temp\\{rng.getrandbits(32):08X}.tmp"
    ctx.rec.file_create(t, run.proc, dll)
    ctx.rec.image_load(after(rng, t, 1, 3), run.proc, dll, _ICONIC)
    t = after(rng, t, 5, 15)
    for profile in ("Google\\Chrome", "Microsoft\\Edge"):
        ctx.rec.file_create(t, run.proc, f"{home}\\AppData\\Local\\{profile}\\User Data\\Default\\History.old")
        t = after(rng, t, 0.5, 4)
    _beacon(ctx, run.proc, after(rng, t, 20, 90), rng.choice(c.c2_domains), rng)
    return p


STAGES: dict[str, Callable[[HostCtx, Compromise], Progress]] = {
    "vulnerable-installed": installed,
    "armed-dormant": armed,
    "c2-contact": c2,
    "payload": payload,
    "data-stolen": stolen,
}


def arrive(ctx: HostCtx) -> None:
    """Play the stages that change what is installed and launched: `installed`, and `armed` for any
    verdict past it (nothing for clean hosts). Later stages only need the client's runs."""
    spec = ctx.spec
    if spec.compromise is None:
        return
    (installed if spec.verdict == "vulnerable-installed" else armed)(ctx, spec.compromise)


def play(ctx: HostCtx) -> Progress:
    """Run the host's compromise up to the stage its verdict names (nothing for clean hosts)."""
    spec = ctx.spec
    if spec.compromise is None:
        return Progress()
    return STAGES[spec.verdict](ctx, spec.compromise)


# -- pieces ---------------------------------------------------------------------------------------------

def _github_fetch(ctx: HostCtx, proc: Proc, t: datetime, rng: random.Random) -> None:
    ips = indicators.GITHUB_RAW_IPS
    ctx.rec.dns(t, proc, indicators.GITHUB_RAW, ips[:2])
    ctx.rec.connect(after(rng, t, 0.05, 0.3), proc, ips[0], 443, indicators.GITHUB_RAW)


def _beacon(ctx: HostCtx, proc: Proc, t: datetime, domain: str, rng: random.Random) -> None:
    ip = indicators.C2_RESOLUTIONS[domain]
    ctx.rec.dns(t, proc, domain, (ip,))
    ctx.rec.connect(after(rng, t, 0.05, 0.3), proc, ip, 443, domain)


def _defender_detection(ctx: HostCtx, t: datetime, process: Proc) -> None:
    path = threecx.FFMPEG_PATH.replace("{home}", ctx.host.home)
    ctx.rec.defender(t, 1116, {
        "Product Name": "Microsoft Defender Antivirus", "Product Version": "4.18.2302.7",
        "Detection ID": "{" + f"{ctx.rng_for('attack:detection-id').getrandbits(128):032x}".upper() + "}",
        "Detection Time": f"{t:%Y-%m-%dT%H:%M:%S}.{t.microsecond // 1000:03d}Z",
        "Threat ID": "2147844562", "Threat Name": indicators.DEFENDER_THREAT,
        "Severity ID": "5", "Severity Name": "Severe", "Category ID": "8", "Category Name": "Trojan",
        "FWLink": "https://go.microsoft.com/fwlink/?linkid=37020&name=Trojan:Win32/SamScissors.SB&threatid=2147844562&enterprise=0",
        "Status Code": "1", "Status Description": "", "State": "1", "Source ID": "3", "Source Name": "Real-Time Protection",
        "Process Name": process.image, "Detection User": ctx.host.account, "Path": f"file:_{path}",
        "Origin ID": "1", "Origin Name": "Local machine", "Execution ID": "0", "Execution Name": "Unknown",
        "Type ID": "0", "Type Name": "Concrete", "Pre Execution Status": "0", "Action ID": "9",
        "Action Name": "Not Applicable", "Error Code": "0x00000000",
        "Error Description": "The operation completed successfully. ", "Post Clean Status": "0",
        "Additional Actions ID": "0", "Additional Actions String": "No additional actions required",
        "Remediation User": "", "Security intelligence Version": "AV: 1.385.1261.0, AS: 1.385.1261.0, NIS: 1.385.1261.0",
        "Engine Version": "AM: 1.1.20000.2, NIS: 1.1.20000.2",
    }, level="warning")


def _operator_moment(ctx: HostCtx, c: Compromise, p: Progress, rng: random.Random) -> tuple[datetime, AppRun]:
    """When the operator acts: during the first trojanized run on or after `action_on`, after C2 is up
    and while the icon repository still answered (that run got a C2 address)."""
    assert c.action_on is not None and p.first_c2 is not None
    earliest = max(local(c.action_on, 9.5), p.first_c2 + timedelta(hours=1))
    for run in threecx.runs(ctx):
        if not run.build.trojanized or run.end <= earliest or run.start >= indicators.GITHUB_TAKEDOWN:
            continue
        t = after(rng, max(run.start, earliest), 20 * 60, 90 * 60)
        if t < run.end - timedelta(minutes=5):
            return t, run
    raise ValueError(f"{ctx.host.short}: no running trojanized client on or after {c.action_on} to act through")

