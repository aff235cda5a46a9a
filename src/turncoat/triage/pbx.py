"""The client update folder of a self-hosted 3CX PBX: which desktop-app builds it could hand out.

A self-hosted PBX serves the Electron client's installers and updates from
`/var/lib/3cxpbx/Instance1/Data/Http/electron/{windows,osx}/` (3CX's own update mechanism; the folder
is named in the pack's sources). Hashing what lies there tells an MSP whether any client of that PBX
could have received a trojanized build, and which. Which build is trojanized is the detector's call
(by the pack's hashes and versions); this module only recognises the folder and reads the names.
"""

from __future__ import annotations

import re
from itertools import pairwise

from turncoat.evidence.base import Row

_FOLDER = re.compile(r"[\\/]electron[\\/](windows|osx|mac|macos)[\\/](.+)$", re.IGNORECASE)
_VERSION = re.compile(r"(\d+\.\d+\.\d+(?:\.\d+)?)")


def pbx_row(machine_path: str, sha256: str) -> Row | None:
    """A `tri_pbx` row for a file inside a PBX's electron update folder, else None."""
    match = _FOLDER.search(machine_path)
    if not match:
        return None
    platform = "windows" if match.group(1).lower() == "windows" else "macos"
    name = re.split(r"[\\/]", match.group(2))[-1]
    version = _VERSION.search(name)
    return {"pbx.platform": platform, "file.path": machine_path, "file.name": name,
            "package.version": version.group(1) if version else None, "file.hash.sha256": sha256}


def is_pbx_file(relative_parts: tuple[str, ...]) -> bool:
    """Whether a file sits in an `electron/windows` or `electron/osx` folder (layout detection)."""
    lowered = [p.lower() for p in relative_parts]
    return any(a == "electron" and b in ("windows", "osx", "mac", "macos") for a, b in pairwise(lowered))
