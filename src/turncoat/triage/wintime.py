"""Windows FILETIME (100 ns ticks since 1601-01-01 UTC), the clock of Prefetch, hives, Defender and
SRUM: one conversion each way, so every artifact dates the same tick the same way."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

FILETIME_EPOCH = datetime(1601, 1, 1, tzinfo=UTC)


def filetime_to_datetime(ticks: int | None) -> datetime | None:
    """UTC to the microsecond (Python keeps no 100 ns); None for 0, negatives and out of range."""
    if not ticks or ticks <= 0:
        return None
    try:
        return FILETIME_EPOCH + timedelta(microseconds=ticks // 10)
    except OverflowError:
        return None


def datetime_to_filetime(moment: datetime) -> int:
    """An aware datetime as FILETIME, in exact integer arithmetic; naive times are refused, since the
    artifacts this writes (simulated hives, Prefetch) store UTC."""
    if moment.tzinfo is None:
        raise ValueError(f"naive datetime {moment!r}: FILETIME is UTC, give a timezone")
    return (moment.astimezone(UTC) - FILETIME_EPOCH) // timedelta(microseconds=1) * 10
