"""The 3CX Desktop App's life on a host: builds, installation, and every time it runs.

Clean and trojanized builds go through the same code; only the `Build` differs (version and the hashes
of 3CXDesktopApp.exe, ffmpeg.dll and d3dcompiler_47.dll). That is the point of the campaign: the
file names, paths, signer and behaviour of a poisoned client look like a clean one's.

Which build runs when is a list of `Change`s; `runs()` turns it into concrete process runs (one per
logon session, plus one whenever an installer relaunches the app mid-session; none after an uninstall).
The runs are planned once, after every change is known, because the attack's later stages need the
running process.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from . import catalog, indicators, sessions
from .actors import Logon, Proc
from .clock import after, between, early_in_second
from .context import HostCtx
from .pe import Binary, Hashes, fake_hashes

_VENDOR = "3CX Ltd"
_PRODUCT = "3CX Desktop App"
_ROOT, _APP = catalog.THREECX_ROOT, catalog.THREECX_APP_DIR
FFMPEG_PATH = _APP + "\\ffmpeg.dll"
D3DCOMPILER_PATH = _APP + "\\d3dcompiler_47.dll"
MANIFEST_PATH = _APP + "\\manifest"
#: The Squirrel updater, where Sigma's 3CX update rule looks for it.
UPDATER = Binary(_APP + "\\update.exe", "2.0.1.0", "Update", "Squirrel", "GitHub", "update.exe", _VENDOR)


@dataclass(frozen=True)
class Build:
    version: str
    exe: Binary
    ffmpeg: Binary
    d3dcompiler: Binary
    trojanized: bool

    @property
    def msi(self) -> str:
        return f"3CXDesktopApp-{self.version}.msi"

    @property
    def nupkg(self) -> str:
        return f"3CXDesktopApp-{self.version}-full.nupkg"


def _exe(version: str, hashes: Hashes | None = None) -> Binary:
    return Binary(catalog.THREECX_EXE, version, _PRODUCT, _PRODUCT, _VENDOR, "3CXDesktopApp.exe", _VENDOR, hashes)


def _d3dcompiler(hashes: Hashes | None = None) -> Binary:
    d = catalog.D3DCOMPILER
    return Binary(D3DCOMPILER_PATH, d.version, d.description, d.product, d.company, d.original, d.signer, hashes)


#: Last clean Windows build before the incident: its DLLs carry no indicator hash.
CLEAN = Build("18.11.1213", _exe("18.11.1213"), Binary(FFMPEG_PATH, signer=_VENDOR), _d3dcompiler(), False)
#: Update 7: signed app, unsigned trojanized ffmpeg.dll, d3dcompiler_47.dll still validly signed by Microsoft.
TROJANIZED = Build(
    indicators.TROJANIZED_VERSION,
    _exe(indicators.TROJANIZED_VERSION, indicators.APP_EXE_416),
    Binary(FFMPEG_PATH, hashes=indicators.FFMPEG_TROJANIZED),
    _d3dcompiler(indicators.D3DCOMPILER_TROJANIZED),
    True,
)
assert TROJANIZED.msi == indicators.INSTALLER_MSI and TROJANIZED.nupkg == indicators.UPDATE_NUPKG


def _clean_after_incident(version: str) -> Build:
    """A clean build shipped after the disclosure: its own ffmpeg.dll (stand-in hashes, never an indicator)
    beside Microsoft's genuine d3dcompiler_47.dll."""
    ffmpeg = Binary(FFMPEG_PATH, signer=_VENDOR, hashes=fake_hashes(f"3CX ffmpeg.dll {version}"))
    return Build(version, _exe(version), ffmpeg, _d3dcompiler(), False)


#: First build after the incident (2023-03-31), and the one Mandiant cleared (2023-04-04, new certificate).
CLEAN_422 = _clean_after_incident("18.12.422")
CLEAN_425 = _clean_after_incident("18.12.425")
#: Clean builds by version, as scenarios name them.
CLEAN_BUILDS = {b.version: b for b in (CLEAN, CLEAN_422, CLEAN_425)}


@dataclass(frozen=True)
class Change:
    """From `at` on, `build` is what runs (None: the client was uninstalled). A launch mid-session also
    names the process it started and its `parent` (the installer); logons autostart the build later."""

    at: datetime
    build: Build | None
    parent: Proc | None
    proc: Proc | None = None


@dataclass
class AppRun:
    start: datetime
    end: datetime
    build: Build
    proc: Proc
    parent: Proc


@dataclass(frozen=True)
class Installed:
    done_at: datetime  # the installer has finished
    files_at: datetime  # ffmpeg.dll written to disk
    installer: Proc  # msiexec.exe or update.exe: it launches the new build


def already_installed(ctx: HostCtx, build: Build) -> None:
    """The client was there before the evidence starts: it autostarts at every logon."""
    _change(ctx, Change(ctx.span.start, build, None))


def launch(ctx: HostCtx, build: Build, at: datetime, parent: Proc) -> Proc:
    """The installer starts the freshly installed build at `at` (and logons autostart it from then on);
    returns the process it started."""
    s = next((s for s in ctx.sessions.values() if s.start < at < s.end), None)
    if s is None:
        raise ValueError(f"{ctx.host.short}: 3CX launched at {at}, outside any logon session")
    proc = ctx.procs.user(s.logon, s.app.image, s.app.cmdline, cwd=s.app.cwd)
    _change(ctx, Change(at, build, parent, proc))
    return proc


def _change(ctx: HostCtx, change: Change) -> None:
    if ctx.app_runs is not None:
        raise RuntimeError("3CX runs are already planned; add every install/launch before asking for runs")
    ctx.app_changes.append(change)


def build_at(ctx: HostCtx, ts: datetime) -> Build | None:
    """The build installed at `ts` (None: none, or uninstalled)."""
    before = [c for c in ctx.app_changes if c.at <= ts]
    return max(before, key=lambda c: c.at).build if before else None


def install_and_launch(ctx: HostCtx, build: Build, day: date, via: str) -> Installed:
    """`install`, then the installer starts the new build a few seconds after it finishes."""
    inst = install(ctx, build, day, via)
    rng = ctx.rng_for(f"launch:{build.version}:{day}")
    launch(ctx, build, early_in_second(rng, after(rng, inst.done_at, 2, 8)), inst.installer)
    return inst


def uninstall(ctx: HostCtx, day: date) -> datetime:
    """The user removes the client (Settings > Apps runs the product's uninstall string); Windows
    Installer closes the running client and logs the removal. Returns when the client was closed."""
    s = sessions.ensure(ctx, day)
    rng = ctx.rng_for(f"uninstall:{day}")
    t = between(rng, s.app_at + timedelta(minutes=30), s.end - timedelta(minutes=30))
    build = build_at(ctx, t)
    if build is None:
        raise ValueError(f"{ctx.host.short}: nothing to uninstall on {day}")
    msiexec = ctx.procs.user(s.logon, catalog.MSIEXEC.template,
                             f"MsiExec.exe /X{product_code(build)}", cwd="C:\\Windows\\system32\\")
    ctx.rec.process(t, msiexec, s.explorer, catalog.MSIEXEC)
    closed = after(rng, t, 4, 12)
    _change(ctx, Change(closed, None, None))
    done = after(rng, closed, 10, 40)
    ctx.rec.package(done, 11724, _PRODUCT, build.version, _VENDOR)
    ctx.rec.package(after(rng, done, 0.05, 0.2), 1034, _PRODUCT, build.version, _VENDOR)
    return closed


def product_code(build: Build) -> str:
    """The MSI ProductCode of a build (a stand-in GUID, stable per version)."""
    h = fake_hashes(f"3CX ProductCode {build.version}").md5.upper()
    return f"{{{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}}}"


def install(ctx: HostCtx, build: Build, day: date, via: str = "msi") -> Installed:
    """Put `build` on disk on `day`, in the user's session, the way the office gets software."""
    session = sessions.ensure(ctx, day)
    rng = ctx.rng_for(f"install:{build.version}:{day}")
    if via == "msi":
        return _install_msi(ctx, build, session, rng)
    if via == "update":
        return _install_update(ctx, build, session, rng)
    raise ValueError(f"unknown install method {via!r}")


def _install_msi(ctx: HostCtx, build: Build, s: sessions.Session, rng: random.Random) -> Installed:
    rec, home = ctx.rec, ctx.host.home
    t = between(rng, max(s.browser_at, s.start) + timedelta(minutes=10), s.end - timedelta(minutes=45))
    cname, ips = catalog.resolve(catalog.THREECX_DOWNLOADS)
    rec.dns(t, s.browser, catalog.THREECX_DOWNLOADS, ips, cname)
    rec.connect(after(rng, t, 0.05, 0.3), s.browser, ips[0], 443, catalog.THREECX_DOWNLOADS)
    msi_path = f"{home}\\Downloads\\{build.msi}"
    rec.file_create(after(rng, t, 2, 20), s.browser, msi_path)
    t = after(rng, t, 30, 180)
    msiexec = ctx.procs.user(
        s.logon, catalog.MSIEXEC.template, f'"C:\\Windows\\System32\\msiexec.exe" /i "{msi_path}"', cwd=f"{home}\\Downloads\\"
    )
    rec.process(t, msiexec, s.explorer, catalog.MSIEXEC)
    files_at = _write_files(ctx, build, msiexec, after(rng, t, 8, 20), rng)
    t = after(rng, files_at, 10, 25)
    previous = build_at(ctx, t)
    if previous is not None and previous != build:  # a major upgrade removes the old product first
        rec.package(t, 11724, _PRODUCT, previous.version, _VENDOR)
        rec.package(after(rng, t, 0.05, 0.2), 1034, _PRODUCT, previous.version, _VENDOR)
    done = after(rng, t, 20, 60)
    rec.package(done, 11707, _PRODUCT, build.version, _VENDOR)
    rec.package(after(rng, done, 0.05, 0.2), 1033, _PRODUCT, build.version, _VENDOR)
    return Installed(done, files_at, msiexec)


def _install_update(ctx: HostCtx, build: Build, s: sessions.Session, rng: random.Random) -> Installed:
    """The running client's updater fetches the package from the PBX (3CX's auto-update path)."""
    if build_at(ctx, s.start) is None:
        raise ValueError(f"{ctx.host.short}: an auto-update needs a 3CX client already running on {s.day}")
    rec, home = ctx.rec, ctx.host.home
    t = between(rng, s.app_at + timedelta(minutes=20), s.end - timedelta(minutes=60))
    updater_path = UPDATER.path(home)
    pbx = catalog.PBX_TENANT
    updater = ctx.procs.user(
        s.logon, updater_path, f'"{updater_path}" --update https://{pbx}/electron/update/win32/18.12',
        cwd=_APP.replace("{home}", home) + "\\",
    )
    rec.process(t, updater, s.app, UPDATER)
    cname, ips = catalog.resolve(pbx)
    rec.dns(after(rng, t, 0.5, 2), updater, pbx, ips, cname)
    rec.connect(after(rng, t, 2.1, 2.5), updater, ips[0], 443, pbx)
    rec.file_create(after(rng, t, 10, 40), updater, f"{_ROOT.replace('{home}', home)}\\packages\\{build.nupkg}")
    files_at = _write_files(ctx, build, updater, after(rng, t, 45, 70), rng)
    return Installed(after(rng, files_at, 5, 15), files_at, updater)


def _write_files(ctx: HostCtx, build: Build, writer: Proc, t: datetime, rng: random.Random) -> datetime:
    """The installer writes the client's files (Sysmon 11 carries no hash: names alone prove nothing)."""
    home = ctx.host.home
    ctx.rec.file_create(t, writer, build.exe.path(home))
    files_at = after(rng, t, 0.1, 0.5)
    ctx.rec.file_create(files_at, writer, build.ffmpeg.path(home))
    ctx.rec.file_create(after(rng, files_at, 0.1, 0.5), writer, build.d3dcompiler.path(home))
    return files_at


def runs(ctx: HostCtx) -> list[AppRun]:
    """Every run of the client, in time order (planned on first call, then fixed)."""
    if ctx.app_runs is None:
        ctx.app_runs = _plan_runs(ctx)
    return ctx.app_runs


def _plan_runs(ctx: HostCtx) -> list[AppRun]:
    rng = ctx.rng_for("app-runs")
    changes = sorted(ctx.app_changes, key=lambda c: c.at)
    planned: list[AppRun] = []
    for day in sorted(ctx.sessions):
        s = ctx.sessions[day]
        build = build_at(ctx, s.start)
        current = AppRun(s.app_at, s.end, build, s.app, s.explorer) if build else None
        for change in (c for c in changes if s.start < c.at < s.end):
            if change.at <= s.app_at:
                raise ValueError(f"{ctx.host.short}: 3CX relaunched before its autostart on {day}")
            if current is not None:  # the installer closed the old client
                current.end = after(rng, change.at, -20, -2)
                planned.append(current)
            if change.build is None:  # uninstalled: nothing runs until the next install
                current = None
                continue
            assert change.proc is not None and change.parent is not None
            current = AppRun(change.at, s.end, change.build, change.proc, change.parent)
        if current is not None:
            planned.append(current)
    return planned


def emit_runs(ctx: HostCtx) -> None:
    """What each run leaves in the logs: the process and its Electron GPU child, the two DLL loads
    (within the same second as the start), and the connection to the office's PBX."""
    rng = ctx.rng_for("app-events")
    rec, home, pbx = ctx.rec, ctx.host.home, catalog.PBX_TENANT
    cname, ips = catalog.resolve(pbx)
    for run in runs(ctx):
        p, b = run.proc, run.build
        rec.process(run.start, p, run.parent, b.exe)
        rec.image_load(after(rng, run.start, 0.03, 0.15), p, b.ffmpeg.path(home), b.ffmpeg)
        rec.image_load(after(rng, run.start, 0.2, 0.35), p, b.d3dcompiler.path(home), b.d3dcompiler)
        gpu = ctx.procs.user(
            Logon(p.logon_id, p.logon_guid), p.image,
            f'"{p.image}" --type=gpu-process --user-data-dir="{home}\\AppData\\Roaming\\3CXDesktopApp" '
            f"--mojo-platform-channel-handle={rng.randrange(1600, 2200)} /prefetch:2",
            cwd=p.cwd,
        )
        rec.process(after(rng, run.start, 0.8, 1.5), gpu, p, b.exe)
        t = after(rng, run.start, 3, 8)
        if t < run.end:
            rec.dns(t, p, pbx, ips, cname)
            rec.connect(after(rng, t, 0.05, 0.3), p, ips[0], 443, pbx)
