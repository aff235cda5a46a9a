"""Benign activity: what a law office's workstation logs on an ordinary day.

It exists so detection is tested against realistic background, including its traps: Teams, another
Electron app, loads its own ffmpeg.dll and d3dcompiler_47.dll; browsers fetch raw.githubusercontent.com
now and then; clean 3CX clients (in `threecx.py`) talk to the PBX every day. Volume is kept near 20-40
events per working day per host. Weekends and holidays keep only scheduled background tasks; the
Christmas break has nothing.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

from . import catalog
from .actors import Proc
from .clock import DayKind, after, between, calendar, day_bounds
from .context import HostCtx
from .pe import Binary
from .sessions import Session


def emit(ctx: HostCtx) -> None:
    """Every day's benign events for the host."""
    rng = ctx.rng_for("noise")
    package_days = _plan_packages(ctx, rng)
    for index, day in enumerate(calendar(ctx.span)):
        if ctx.day_kind(day) is DayKind.OFF:
            continue
        _background(ctx, day, index, rng)
        session = ctx.sessions.get(day)
        if session is not None:
            _workday(ctx, session, rng)
            if day in package_days:
                _package_update(ctx, session, package_days[day], rng)


def _resolve_and_connect(ctx: HostCtx, proc: Proc, t: datetime, name: str, rng: random.Random) -> None:
    cname, ips = catalog.resolve(name)
    ctx.rec.dns(t, proc, name, ips, cname)
    ctx.rec.connect(after(rng, t, 0.02, 0.4), proc, ips[0], 443, name)


def _start(ctx: HostCtx, t: datetime, proc: Proc, parent: Proc, binary: Binary) -> Proc:
    ctx.rec.process(t, proc, parent, binary)
    return proc


# -- machine background (every day the machine is on) ---------------------------------------------------

def _background(ctx: HostCtx, day: date, index: int, rng: random.Random) -> None:
    rec, procs = ctx.rec, ctx.procs
    start, end = day_bounds(day, ctx.span)
    end = min(end, ctx.span.end - timedelta(minutes=5))  # room for follow-up events before collection

    t = between(rng, start, end)
    gu = catalog.GOOGLE_UPDATE
    proc = _start(ctx, t, procs.system(gu.template, f'"{gu.template}" /ua /installsource scheduler'), ctx.scheduler, gu)
    _resolve_and_connect(ctx, proc, after(rng, t, 1, 5), "update.googleapis.com", rng)

    t = between(rng, start, end)
    uso = catalog.USO_WORKER
    _start(ctx, t, procs.system(uso.template, f"{uso.template} -Embedding"), ctx.scheduler, uso)
    _resolve_and_connect(ctx, ctx.dns_client, after(rng, t, 2, 10), "fe3cr.delivery.mp.microsoft.com", rng)

    t = between(rng, start, end)
    rec.defender(t, 2000, {
        "Product Name": "Microsoft Defender Antivirus", "Product Version": "4.18.2302.7",
        "Signature Type": "AntiVirus", "Update Type": "Delta", "User": "NT AUTHORITY\\SYSTEM",
        "Current Signature Version": _signatures(index), "Previous Signature Version": _signatures(index - 1),
        "Current Engine Version": "1.1.20000.2", "Previous Engine Version": "1.1.20000.2",
    })
    if day.weekday() == 2:
        t = between(rng, start, end)
        rec.defender(t, 1001, {
            "Product Name": "Microsoft Defender Antivirus", "Product Version": "4.18.2302.7",
            "Scan ID": "{" + f"{rng.getrandbits(128):032X}" + "}", "Scan Type": "Antimalware",
            "Scan Parameters": "Quick Scan", "User": "NT AUTHORITY\\SYSTEM",
            "Scan Time Hours": "0", "Scan Time Minutes": str(rng.randrange(2, 9)), "Scan Time Seconds": str(rng.randrange(60)),
        })
    rec.application(between(rng, start, end), "Microsoft-Windows-Security-SPP", 16384,
                    [f"{day.year + 100}-{day:%m-%d}T{rng.randrange(24):02d}:{rng.randrange(60):02d}:00Z", "RulesEngine"])


def _signatures(day_index: int) -> str:
    """Defender's security-intelligence version on the n-th day of the span (one delta a day)."""
    return f"1.{377 + day_index // 10}.{100 + day_index * 7}.0"


# -- the user's working day ------------------------------------------------------------------------------

def _workday(ctx: HostCtx, s: Session, rng: random.Random) -> None:
    rec, procs, spec = ctx.rec, ctx.procs, ctx.spec
    home = ctx.host.home
    rec.logon(s.start, 2, "127.0.0.1", s.logon.logon_id, s.logon.logon_guid)
    _start(ctx, s.explorer_at, s.explorer, s.userinit, catalog.EXPLORER)

    od = catalog.ONEDRIVE
    t = after(rng, s.explorer_at, 5, 20)
    onedrive = _start(ctx, t, procs.user(s.logon, od.path(home), f'"{od.path(home)}" /background'), s.explorer, od)
    _resolve_and_connect(ctx, onedrive, after(rng, t, 2, 8), "g.live.com", rng)

    tm = catalog.TEAMS
    t = after(rng, s.explorer_at, 8, 40)
    teams = _start(ctx, t, procs.user(s.logon, tm.path(home),
                                      f'"{tm.path(home)}" --process-start-args "--system-initiated"'), s.explorer, tm)
    rec.image_load(after(rng, t, 0.05, 0.2), teams, catalog.TEAMS_FFMPEG.path(home), catalog.TEAMS_FFMPEG)
    rec.image_load(after(rng, t, 0.3, 0.6), teams, catalog.TEAMS_D3DCOMPILER.path(home), catalog.TEAMS_D3DCOMPILER)
    _resolve_and_connect(ctx, teams, after(rng, t, 3, 10), "teams.microsoft.com", rng)

    t = after(rng, s.start, 120, 900)
    outlook = _start(ctx, t, procs.user(s.logon, catalog.OUTLOOK.template), s.explorer, catalog.OUTLOOK)
    _resolve_and_connect(ctx, outlook, after(rng, t, 2, 6), "outlook.office365.com", rng)

    browser_bin = catalog.BROWSERS[spec.browser]
    _start(ctx, s.browser_at, s.browser, s.explorer, browser_bin)
    sites, weights = list(catalog.BROWSING), list(catalog.BROWSING.values())
    for _ in range(rng.randint(2, 5)):
        _resolve_and_connect(ctx, s.browser, between(rng, s.browser_at, s.end), rng.choices(sites, weights)[0], rng)

    for _ in range(rng.randint(1, 3)):
        doc = rng.choice(catalog.DOCUMENTS)
        app = catalog.WINWORD if doc.endswith(".docx") else catalog.EXCEL
        path = f"{home}\\Documents\\{doc}"
        t = between(rng, s.start + timedelta(minutes=10), s.end)
        office = _start(ctx, t, procs.user(s.logon, app.template, f'"{app.template}" /n "{path}"'), s.explorer, app)
        if rng.random() < 0.4:  # the lock file Office writes beside an open document
            folder, name = path.rsplit("\\", 1)
            rec.file_create(after(rng, t, 2, 30), office, f"{folder}\\~${name[2:]}")

    if rng.random() < 0.35:
        pdf = f"{home}\\Downloads\\{rng.choice(catalog.DOWNLOADS)}"
        t = between(rng, s.browser_at, s.end)
        rec.file_create(t, s.browser, pdf)
        acro = catalog.ACROBAT
        _start(ctx, after(rng, t, 5, 60), procs.user(s.logon, acro.template, f'"{acro.template}" "{pdf}"'), s.explorer, acro)

    unlock = procs.logon()
    rec.logon(s.unlock, 7, "127.0.0.1", unlock.logon_id, unlock.logon_guid)
    if rng.random() < 0.3:
        share = procs.logon()
        rec.logon(between(rng, s.start, s.end), 3, catalog.FILE_SERVER_IP, share.logon_id, share.logon_guid)

    if rng.random() < 0.4:
        up = catalog.ONEDRIVE_UPDATER
        t = between(rng, s.start, s.end)
        updater = _start(ctx, t, procs.user(s.logon, up.path(home), f'"{up.path(home)}" /reporting'), ctx.scheduler, up)
        _resolve_and_connect(ctx, updater, after(rng, t, 1, 4), "oneclient.sfx.ms", rng)


# -- software updates through Windows Installer ----------------------------------------------------------

def _plan_packages(ctx: HostCtx, rng: random.Random) -> dict[date, tuple[str, str, str]]:
    """Two to four benign MSI installs per host, on working days."""
    days = sorted(ctx.sessions)
    chosen = rng.sample(days, k=min(len(days), rng.randint(2, 4)))
    return {day: rng.choice(catalog.MSI_PRODUCTS) for day in chosen}


def _package_update(ctx: HostCtx, s: Session, product: tuple[str, str, str], rng: random.Random) -> None:
    name, version, vendor = product
    t = between(rng, s.start + timedelta(minutes=30), s.end - timedelta(minutes=10))
    msi = catalog.MSIEXEC
    _start(ctx, t, ctx.procs.system(msi.template, "C:\\Windows\\system32\\msiexec.exe /V"), ctx.services, msi)
    done = after(rng, t, 30, 120)
    ctx.rec.package(done, 11707, name, version, vendor)
    ctx.rec.package(after(rng, done, 0.05, 0.2), 1033, name, version, vendor)
