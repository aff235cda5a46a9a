"""Everything the behaviour modules share while one host is being simulated.

Each concern draws from its own random stream (`rng_for`), so adding an event to the noise does not
shift the attack's times, and re-planning a piece gives the same answer.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date
from typing import TYPE_CHECKING, Any

from .actors import HostId, Proc, ProcFactory
from .clock import DayKind, Span, day_kind
from .recorder import Recorder
from .scenarios import HostSpec

if TYPE_CHECKING:  # imported for annotations only: these modules import this one
    from .sessions import Session
    from .threecx import AppRun, Change


@dataclass
class HostCtx:
    spec: HostSpec
    host: HostId
    seed_key: str  # "<seed>:<scenario>:<host>": root of every random stream of this host
    span: Span  # the scenario's evidence span: first record .. collection
    rec: Recorder
    procs: ProcFactory
    services: Proc  # services.exe: parent of service processes
    scheduler: Proc  # the Task Scheduler's svchost.exe: parent of scheduled tasks
    dns_client: Proc  # the svchost.exe that resolves names for Windows services
    sessions: dict[date, Session] = field(default_factory=dict)
    app_changes: list[Change] = field(default_factory=list)
    app_runs: list[AppRun] | None = None  # planned once, after every change is known
    stages: dict[str, Any] = field(default_factory=dict)  # attack stages already played, by name

    def day_kind(self, day: date) -> DayKind:
        """The office calendar, plus the days this machine was powered off."""
        return DayKind.OFF if self.spec.is_off(day) else day_kind(day)

    def rng_for(self, purpose: str) -> random.Random:
        """An independent, reproducible random stream for one purpose on this host."""
        return random.Random(f"{self.seed_key}:{purpose}")
