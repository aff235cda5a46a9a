"""The Winlogbeat envelope: how one Windows event looks once Winlogbeat has shipped it as JSON.

The shape follows a real Winlogbeat/Elastic Agent event (the elastic-integrations `sysmon_operational`
pipeline test sample) minus `event.original`, plus `host.name`. Record ids are left at 0 here and set by
`writer.py`, which alone sees a channel's events in their final order.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .clock import iso_ms


@dataclass(frozen=True)
class Channel:
    """An event log: its Windows name, its default provider, and the evidence file it is written to."""

    key: str
    name: str
    provider: str
    provider_guid: str | None

    @property
    def filename(self) -> str:
        return f"{self.key}.ndjson"


SYSMON = Channel(
    "sysmon", "Microsoft-Windows-Sysmon/Operational", "Microsoft-Windows-Sysmon",
    "{5770385f-c22a-43e0-bf4c-06f5698ffbd9}",
)
SECURITY = Channel(
    "security", "Security", "Microsoft-Windows-Security-Auditing", "{54849625-5478-4994-a5ba-3e3b0328c30d}"
)
APPLICATION = Channel("application", "Application", "MsiInstaller", None)
DEFENDER = Channel(
    "defender", "Microsoft-Windows-Windows Defender/Operational", "Microsoft-Windows-Windows Defender",
    "{11cd958a-c507-4ef3-b3f2-5fd9dfbd2c78}",
)
CHANNELS = {c.key: c for c in (SYSMON, SECURITY, APPLICATION, DEFENDER)}


@dataclass(frozen=True)
class Origin:
    """System attributes of an event that are not in its EventData."""

    version: int = 0
    pid: int | None = None
    tid: int | None = None
    user_sid: str | None = None
    keywords: tuple[str, ...] = ()
    level: str = "information"
    provider: str | None = None  # when not the channel's default (Application has many)
    provider_guid: str | None = None


def envelope(channel: Channel, fqdn: str, ts: datetime, event_id: int, data: dict[str, str], origin: Origin) -> dict[str, Any]:
    """One Winlogbeat event; `data` becomes `winlog.event_data` (Windows field names, string values)."""
    provider = origin.provider or channel.provider
    guid = origin.provider_guid if origin.provider else channel.provider_guid
    stamp = iso_ms(ts)
    winlog: dict[str, Any] = {
        "channel": channel.name,
        "computer_name": fqdn,
        "event_id": str(event_id),
        "provider_name": provider,
    }
    if guid:
        winlog["provider_guid"] = guid
    winlog["version"] = origin.version
    winlog["level"] = origin.level
    winlog["opcode"] = "Info"
    if origin.pid is not None:
        winlog["process"] = {"pid": origin.pid, "thread": {"id": origin.tid or 0}}
    winlog["time_created"] = stamp
    if origin.user_sid:
        winlog["user"] = {"identifier": origin.user_sid}
    if origin.keywords:
        winlog["keywords"] = list(origin.keywords)
    winlog["event_data"] = data
    winlog["record_id"] = 0
    return {
        "@timestamp": stamp,
        "host": {"name": fqdn},
        "log": {"level": origin.level},
        "event": {"code": str(event_id), "kind": "event", "provider": provider},
        "winlog": winlog,
    }


def dumps(event: dict[str, Any]) -> str:
    """One NDJSON line (no newline). Non-ASCII kept as UTF-8, like Winlogbeat's own output."""
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"))
