"""Write the evidence: one NDJSON file per host and channel, and the ground truth.

Record ids are given here, after sorting, because only the final order of a channel's events is known
here: they start at a random (seeded) base and are contiguous per host and channel, across quiet days
too, exactly as Windows numbers a log that was never cleared.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from .recorder import Recorded
from .winlog import CHANNELS, dumps


def write_host(evidence: Path, short: str, seed_key: str, events: dict[str, list[Recorded]]) -> dict[str, int]:
    """Write `evidence/<short>/<channel>.ndjson`; return the event count per channel key."""
    folder = evidence / short
    folder.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    for key in sorted(events):
        rows = sorted(events[key], key=lambda r: (r[0], r[1]))
        first = random.Random(f"{seed_key}:{key}:record-base").randrange(1_000, 5_000_000)
        lines = []
        for offset, (_, _, event) in enumerate(rows):
            event["winlog"]["record_id"] = first + offset
            lines.append(dumps(event))
        (folder / CHANNELS[key].filename).write_text("\n".join(lines) + "\n", encoding="utf-8", newline="\n")
        counts[key] = len(rows)
    return counts


def write_ground_truth(path: Path, truth: dict[str, Any]) -> None:
    path.write_text(json.dumps(truth, indent=2, ensure_ascii=False) + "\n", encoding="utf-8", newline="\n")
