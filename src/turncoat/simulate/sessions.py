"""When the user sits at the machine: one logon session per working day.

Sessions are planned before anything else because both the benign noise and the attack hang off them:
the browser that downloads the installer, the 3CX client that autostarts at logon, the hours during
which the implant can beacon. Each session names its long-lived processes up front for that reason.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from . import catalog
from .actors import Logon, Proc
from .clock import DayKind, after, calendar, day_kind, early_in_second, local
from .context import HostCtx

#: Weeks (their Mondays) in which a user may take a week off: winter, well before the attacks.
_VACATION_WEEKS = tuple(date(2023, 1, 9) + timedelta(weeks=i) for i in range(7))


@dataclass(frozen=True)
class Session:
    day: date
    start: datetime  # interactive logon
    end: datetime  # last activity
    unlock: datetime  # back from lunch
    logon: Logon
    userinit: Proc
    explorer: Proc
    explorer_at: datetime
    app: Proc  # the 3CX client started at logon, if one is installed that day
    app_at: datetime
    browser: Proc
    browser_at: datetime


def plan(ctx: HostCtx) -> None:
    """A session on every working day, except one week of holiday for about half the users."""
    rng = ctx.rng_for("sessions")
    away: set[date] = set()
    if rng.random() < 0.5:
        monday = rng.choice(_VACATION_WEEKS)
        away = {monday + timedelta(days=i) for i in range(5)}
    for day in calendar(ctx.span):
        if ctx.day_kind(day) is DayKind.WORK and day not in away:
            ctx.sessions[day] = _new(ctx, day, rng)


def ensure(ctx: HostCtx, day: date) -> Session:
    """The session of `day`, creating one (say, a Saturday at the office) if the user was not in."""
    if day not in ctx.sessions:
        if ctx.day_kind(day) is DayKind.OFF:
            raise ValueError(f"{ctx.host.short}: nobody can work on {day}: the machine is off")
        ctx.sessions[day] = _new(ctx, day, ctx.rng_for(f"session:{day}"))
    return ctx.sessions[day]


def _new(ctx: HostCtx, day: date, rng: random.Random) -> Session:
    # local hours: (logon, back from lunch, logoff); on a weekend, a short morning at the office
    hours = ((8.1, 9.3), (13.4, 14.3), (17.4, 19.3)) if day_kind(day) is DayKind.WORK else ((9.0, 9.8), (11.0, 11.5), (12.8, 14.0))
    start, unlock, end = (local(day, rng.uniform(low, high)) for low, high in hours)
    end = min(end, ctx.span.end - timedelta(minutes=rng.uniform(8, 25)))
    home = ctx.host.home
    procs = ctx.procs
    logon = procs.logon()
    userinit = procs.user(logon, catalog.USERINIT.template, cwd="C:\\Windows\\system32\\")
    explorer = procs.user(logon, catalog.EXPLORER.template, "C:\\Windows\\Explorer.EXE", cwd="C:\\Windows\\system32\\")
    app_exe = catalog.THREECX_EXE.replace("{home}", home)
    app = procs.user(logon, app_exe, f'"{app_exe}"', cwd=catalog.THREECX_APP_DIR.replace("{home}", home) + "\\")
    browser_exe = catalog.BROWSERS[ctx.spec.browser].template
    browser = procs.user(logon, browser_exe, f'"{browser_exe}"')
    return Session(
        day=day, start=start, end=end, unlock=unlock, logon=logon, userinit=userinit, explorer=explorer,
        explorer_at=after(rng, start, 4, 9), app=app, app_at=early_in_second(rng, after(rng, start, 25, 90)),
        browser=browser, browser_at=after(rng, start, 180, 2400),
    )
