"""A case folder: where its parts live, its manifest, and its DuckDB connection with fresh views."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson

from turncoat.store.schema import SCHEMA_VERSION
from turncoat.store.views import create_views

MANIFEST_SCHEMA = "turncoat.manifest"
# DuckDB spills to disk past this, so a case of any size is assessed in bounded memory.
MEMORY_LIMIT = "512MB"


def safe_text(text: str) -> str:
    """A path or message as valid UTF-8 text: undecodable bytes in file names become escapes."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def dump_json(data: Any) -> bytes:
    """Deterministic JSON: sorted keys, two-space indent, trailing newline."""
    return orjson.dumps(data, option=orjson.OPT_SORT_KEYS | orjson.OPT_INDENT_2) + b"\n"


@dataclass
class Case:
    root: Path

    @property
    def parquet(self) -> Path:
        return self.root / "parquet"

    @property
    def database(self) -> Path:
        return self.root / "case.duckdb"

    @property
    def manifest_path(self) -> Path:
        return self.root / "manifest.json"

    @property
    def report_path(self) -> Path:
        return self.root / "report.json"

    @property
    def reports(self) -> Path:
        return self.root / "reports"

    @property
    def scratch(self) -> Path:
        return self.root / "tmp"

    def exists(self) -> bool:
        return self.manifest_path.is_file()

    def create(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        self.parquet.mkdir(exist_ok=True)

    def load_manifest(self) -> dict[str, Any]:
        if not self.manifest_path.is_file():
            return {"schema": MANIFEST_SCHEMA, "schema_version": SCHEMA_VERSION, "items": [], "problems": []}
        return orjson.loads(self.manifest_path.read_bytes())

    def save_manifest(self, manifest: dict[str, Any]) -> None:
        write_atomic(self.manifest_path, dump_json(manifest))

    def connect(self, read_only: bool = False, rebuild: bool = False) -> duckdb.DuckDBPyConnection:
        """Open case.duckdb with views over the Parquet as it is now; `rebuild` after an ingest."""
        con = duckdb.connect(str(self.database), read_only=read_only,
                             config={"memory_limit": MEMORY_LIMIT, "temp_directory": str(self.root / "tmp-duckdb")})
        if not read_only:
            create_views(con, self.parquet, materialise=rebuild)
        else:
            con.execute("SET enable_progress_bar = false")
            con.execute("SET TimeZone = 'UTC'")
        return con


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file so a crash never leaves half a manifest or report."""
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
