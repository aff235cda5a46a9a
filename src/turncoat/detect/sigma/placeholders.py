"""Values for Sigma's `%placeholder%` names (the `expand` modifier), from a YAML file the user keeps.

SigmaHQ rules use placeholders for organisation-specific lists (admin accounts, domain
controllers…). A rule whose placeholders have no values is not run and says which file to give.
"""

from __future__ import annotations

from pathlib import Path

import yaml


class PlaceholderError(ValueError):
    """The placeholder file is unreadable or not a map of names to value lists."""


def load_placeholders(path: Path) -> dict[str, list[str]]:
    """`name: [values]` (or `name: value`) pairs; names without the % signs."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise PlaceholderError(f"{path}: cannot read placeholders: {str(exc).splitlines()[0]}") from exc
    if not isinstance(data, dict):
        raise PlaceholderError(f"{path}: expected a map of placeholder names to lists of values")
    values: dict[str, list[str]] = {}
    for name, items in data.items():
        items = items if isinstance(items, list) else [items]
        if not all(isinstance(v, (str, int, float)) for v in items):
            raise PlaceholderError(f"{path}: values of {name!r} must be strings or numbers")
        values[str(name).strip("%")] = [str(v) for v in items]
    return values
