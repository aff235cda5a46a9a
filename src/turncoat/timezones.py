"""Time zones named by the user (`--source-tz`), checked once and resolved the same on every OS.

`zoneinfo` needs the `tzdata` package on Windows, which has no system zone database; it is a
dependency for that reason.
"""

from __future__ import annotations

from datetime import timezone, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


class ZoneError(ValueError):
    pass


def zone_for(name: str) -> tzinfo:
    """The zone called `name` (IANA name, or UTC)."""
    if name.upper() in ("UTC", "Z", "GMT"):
        return timezone.utc
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ZoneError(f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)") from exc


def parse_source_zones(specs: list[str], known_sources: set[str]) -> dict[str, str]:
    """`ZONE` or `SOURCE=ZONE` options → {source or "*": zone}, every zone and source checked."""
    zones: dict[str, str] = {}
    for spec in specs:
        source, sep, zone = spec.partition("=")
        if not sep:
            source, zone = "*", spec
        source, zone = source.strip(), zone.strip()
        if source != "*" and source not in known_sources:
            raise ZoneError(f"unknown source {source!r} in --source-tz (one of: {', '.join(sorted(known_sources))})")
        zone_for(zone)
        zones[source] = zone
    return zones
