"""Simulate one host from its spec: plan, attack, fill in the ordinary days, state the truth.

The order matters and is fixed here: sessions first (everything hangs off them), then every install and
launch of the 3CX client (clean or not; the trojanized build's, then the host's later steps such as an
uninstall or a clean update, which need to know what they replace), then the attack stages that need
the client's runs, then the runs' own events, then the noise.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, time
from typing import Any

from . import attack, catalog, noise, sessions, threecx
from .actors import HostId, ProcFactory
from .clock import UTC, Span, after, early_in_second, iso_s
from .context import HostCtx
from .network import HostNet, office_ip
from .recorder import Recorded, Recorder, Sources
from .scenarios import HostSpec, Telemetry


@dataclass
class HostResult:
    short: str
    seed_key: str
    events: dict[str, list[Recorded]]  # per channel key, in creation order
    truth: dict[str, Any]


def new_host_ctx(spec: HostSpec, scenario: str, seed: int, index: int, span: Span, sources: Sources,
                 net: HostNet | None = None) -> HostCtx:
    """A host's context: identity, recorder, process factory and the system processes every scenario
    starts from (services, the task scheduler, the DNS client), seeded by scenario and host name."""
    seed_key = f"{seed}:{scenario}:{spec.name}"
    host = HostId(spec.name, ip=office_ip(index), user=spec.user, rid=1104 + index)
    rec = Recorder(host, sources, random.Random(f"{seed_key}:recorder"), span, net)
    procs = ProcFactory(host, random.Random(f"{seed_key}:procs"))
    svchost = catalog.SVCHOST.template
    return HostCtx(
        spec=spec, host=host, seed_key=seed_key, span=span, rec=rec, procs=procs,
        services=procs.system(catalog.SERVICES.template, "C:\\Windows\\system32\\services.exe"),
        scheduler=procs.system(svchost, "C:\\Windows\\system32\\svchost.exe -k netsvcs -p -s Schedule"),
        dns_client=procs.system(svchost, "C:\\Windows\\system32\\svchost.exe -k NetworkService -p -s Dnscache"),
    )


def simulate_host(spec: HostSpec, scenario: str, seed: int, index: int, span: Span,
                  net: HostNet | None = None) -> HostResult:
    """`net`: where the office network sees this host, in a scenario whose network is logged."""
    ctx = new_host_ctx(spec, scenario, seed, index, span, _sources(spec.telemetry), net)
    seed_key, rec = ctx.seed_key, ctx.rec
    sessions.plan(ctx)
    _clean_client(ctx)
    attack.arrive(ctx)
    _app_steps(ctx)
    progress = attack.play(ctx)
    threecx.emit_runs(ctx)
    noise.emit(ctx)
    _check(spec, progress, span)
    return HostResult(spec.name, seed_key, rec.events, _truth(spec, progress))


def _sources(t: Telemetry) -> Sources:
    def at(day):
        return None if day is None else datetime.combine(day, time(), UTC)

    return Sources(at(t.sysmon_from), at(t.process_audit_from), t.logons, t.application, t.defender)


def _clean_client(ctx: HostCtx) -> None:
    clean = ctx.spec.clean_app
    if clean is None:
        return
    if clean.installed is None:
        threecx.already_installed(ctx, threecx.CLEAN)
        return
    inst = threecx.install(ctx, threecx.CLEAN, clean.installed, "msi")
    rng = ctx.rng_for("clean-launch")
    threecx.launch(ctx, threecx.CLEAN, early_in_second(rng, after(rng, inst.done_at, 2, 8)), inst.installer)


def _app_steps(ctx: HostCtx) -> None:
    """The host's later changes to its 3CX client, in date order: clean updates, installs, uninstalls."""
    for step in ctx.spec.app_steps:
        if step.action == "uninstall":
            threecx.uninstall(ctx, step.day)
        else:
            assert step.version is not None
            threecx.install_and_launch(ctx, threecx.CLEAN_BUILDS[step.version], step.day, step.action)


def _check(spec: HostSpec, p: attack.Progress, span: Span) -> None:
    """A spec whose dates contradict its verdict is a bug in the scenario table: fail loudly."""
    reached_c2 = p.first_c2 is not None
    if spec.verdict in ("c2-contact", "payload", "data-stolen") and not reached_c2:
        raise ValueError(f"{spec.name}: verdict {spec.verdict} but no C2 contact before collection")
    if spec.verdict == "armed-dormant" and p.activation_eta is not None and p.activation_eta < span.end:
        raise ValueError(f"{spec.name}: armed-dormant but activation is due before collection")


def _truth(spec: HostSpec, p: attack.Progress) -> dict[str, Any]:
    def iso(ts: datetime | None) -> str | None:
        return None if ts is None else iso_s(ts)

    return {
        "host": spec.name,
        "verdict": spec.verdict,
        "first_execution": iso(p.first_execution),
        "activation_eta": iso(p.activation_eta),
        "first_c2": iso(p.first_c2),
        "story": spec.story,
    }
