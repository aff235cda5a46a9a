"""Find the evidence items under the paths a user gives: files, folders, and archives inside them.

Folders are walked recursively in sorted order (so a case is built the same way every time); no file
is opened while walking. An item recognised as an archive by its content is unpacked on request.
Archives (.zip, .tar, .tar.gz, .gz, .xz) are unpacked member by member into the case's scratch folder,
under generated names, never under the names the archive claims: a member called `../../x` cannot
land outside. Symbolic links and device files inside archives are refused; declared and actual
sizes and the compression ratio are bounded against bombs; nesting depth is bounded too.
"""

from __future__ import annotations

import io
import lzma
import os
import shutil
import tarfile
import time
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from turncoat.evidence.sniff import GZIP, TAR, XZ, ZIP


@dataclass(frozen=True)
class Limits:
    """Bounds that keep a hostile archive from filling the disk or running forever."""

    max_member_bytes: int = 8 * 1024**3
    max_archive_bytes: int = 32 * 1024**3
    max_ratio: int = 200
    ratio_floor_bytes: int = 16 * 1024**2  # small members may compress well; don't judge them
    max_depth: int = 3
    max_members: int = 100_000


@dataclass
class EvidenceItem:
    """One file to read: `display` names it for the user (archive!member), `path` is on disk."""

    display: str
    path: Path
    temporary: bool = False
    depth: int = 0  # archive nesting: 0 for a file the user gave or that sits in a given folder


@dataclass
class SourceProblem:
    """Something under the inputs that could not be offered to a reader at all."""

    display: str
    message: str
    offset: int | None = None


@dataclass
class Discovery:
    items: list[EvidenceItem] = field(default_factory=list)
    problems: list[SourceProblem] = field(default_factory=list)


class ArchiveLimitError(Exception):
    pass


def _copy_bounded(src: BinaryIO, dst: Path, limit: int, compressed: int | None, limits: Limits) -> int:
    """Copy a member's bytes, stopping at the size or ratio bound whatever its header claimed."""
    written = 0
    with dst.open("wb") as out:
        while True:
            chunk = src.read(1024 * 1024)
            if not chunk:
                return written
            written += len(chunk)
            if written > limit:
                raise ArchiveLimitError(f"member larger than {limit} bytes")
            if compressed and written > limits.ratio_floor_bytes and written / max(compressed, 1) > limits.max_ratio:
                raise ArchiveLimitError(f"compression ratio above {limits.max_ratio}:1 (archive bomb?)")
            out.write(chunk)


class _Gunzip(io.RawIOBase):
    """Streaming gunzip that hands out every byte it could decompress before raising on damage.

    `gzip.open(...).read(n)` raises on a cut stream without returning what it had decompressed in
    that call, so a rotated log cut by a full disk would lose its readable part. Concatenated
    members (`cat a.gz b.gz`) are read one after another, as gzip itself does.
    """

    def __init__(self, path: Path) -> None:
        super().__init__()
        self._raw = path.open("rb")
        self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
        self._pending = b""
        self._error: Exception | None = None
        self._done = False

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:  # type: ignore[override]
        size = size if size and size > 0 else 1024 * 1024
        while len(self._pending) < size and not self._done:
            self._fill()
        if not self._pending and self._error is not None:
            error, self._error = self._error, None
            raise error
        out, self._pending = self._pending[:size], self._pending[size:]
        return out

    def _fill(self) -> None:
        chunk = self._raw.read(256 * 1024)
        try:
            if chunk:
                self._pending += self._inflate.decompress(chunk)
                while self._inflate.eof and self._inflate.unused_data.strip(b"\0"):  # the next member
                    rest = self._inflate.unused_data
                    self._inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    self._pending += self._inflate.decompress(rest)
                return
            self._pending += self._inflate.flush()
            if not self._inflate.eof:  # (NUL padding after the last member, as tape tools write, is fine)
                self._error = EOFError(f"gzip stream cut short after {self._raw.tell()} compressed bytes")
        except zlib.error as exc:
            self._error = OSError(f"gzip data damaged near compressed byte {self._raw.tell()}: {exc}")
        self._done = True

    def close(self) -> None:
        self._raw.close()
        super().close()


def _zip_time(info: zipfile.ZipInfo) -> float | None:
    """A zip member's time (zip stores local wall-clock time without a zone; read as this machine's)."""
    try:
        return time.mktime((*info.date_time, 0, 0, -1))
    except (OverflowError, ValueError):
        return None


def _unsafe_name(name: str) -> str | None:
    """Why an archive member's name is hostile, or None."""
    pure = PurePosixPath(name.replace("\\", "/"))
    if pure.is_absolute() or (len(name) > 1 and name[1] == ":"):
        return "absolute path"
    if ".." in pure.parts:
        return "path traversal ('..')"
    return None


class Walker:
    """Expands inputs into evidence items, unpacking archives into `scratch`."""

    def __init__(self, scratch: Path, limits: Limits | None = None) -> None:
        self.scratch = scratch
        self.limits = limits or Limits()
        self.discovery = Discovery()
        self._counter = 0
        self._found: list[EvidenceItem] = []

    def walk(self, inputs: list[Path]) -> Discovery:
        for raw in inputs:
            path = Path(raw)
            if not path.exists():
                self.discovery.problems.append(SourceProblem(str(path), "no such file or folder"))
            elif path.is_dir():
                self._walk_dir(path)
            else:
                self.discovery.items.append(EvidenceItem(str(path), path))
        return self.discovery

    def _walk_dir(self, root: Path) -> None:
        for dirpath, dirnames, filenames in os.walk(root, followlinks=False, onerror=self._walk_error):
            dirnames.sort()
            for name in sorted(filenames):
                path = Path(dirpath) / name
                if path.is_symlink():
                    self.discovery.problems.append(SourceProblem(str(path), "symbolic link not followed"))
                    continue
                if not path.is_file():
                    continue
                self.discovery.items.append(EvidenceItem(str(path), path))

    def _walk_error(self, error: OSError) -> None:
        self.discovery.problems.append(SourceProblem(str(error.filename), f"cannot list folder: {error.strerror}"))

    def _scratch_file(self, suffix: str = "") -> Path:
        self.scratch.mkdir(parents=True, exist_ok=True)
        self._counter += 1
        return self.scratch / f"member-{self._counter:07d}{suffix}"

    def expand(self, item: EvidenceItem, kind: str) -> tuple[list[EvidenceItem], list[SourceProblem]]:
        """Unpack one archive (its kind found by content) into scratch files; returns its members
        and the problems met. Members that are archives themselves are expanded by a later call."""
        found: list[EvidenceItem] = []
        problems_before = len(self.discovery.problems)
        if item.depth >= self.limits.max_depth:
            self.discovery.problems.append(SourceProblem(item.display, "archive nested too deep; not opened"))
        else:
            self._found = found
            try:
                {ZIP: self._zip, TAR: self._tar, GZIP: self._gzip, XZ: self._xz}[kind](item, item.depth + 1)
            except (zipfile.BadZipFile, tarfile.TarError, lzma.LZMAError, OSError, EOFError, ValueError) as exc:
                self.discovery.problems.append(SourceProblem(item.display, f"corrupt {kind} archive: {exc}"))
        if item.temporary:
            item.path.unlink(missing_ok=True)
        return found, self.discovery.problems[problems_before:]

    def _member(self, parent: EvidenceItem, name: str, opener, size: int | None, compressed: int | None,
                depth: int, budget: list[int], mtime: float | None = None) -> None:
        display = f"{parent.display}!{name}"
        why = _unsafe_name(name)
        if why:
            self.discovery.problems.append(SourceProblem(display, f"archive member refused: {why}"))
            return
        limit = min(self.limits.max_member_bytes, budget[0])
        if size is not None and size > limit:
            self.discovery.problems.append(
                SourceProblem(display, f"archive member of {size} bytes exceeds the limit ({limit}); not unpacked"))
            return
        target = self._scratch_file()
        try:
            with opener() as src:
                written = _copy_bounded(src, target, limit, compressed, self.limits)
        except ArchiveLimitError as exc:
            target.unlink(missing_ok=True)
            self.discovery.problems.append(SourceProblem(display, f"archive member refused: {exc}"))
            return
        except (OSError, EOFError, zipfile.BadZipFile, tarfile.TarError, lzma.LZMAError, RuntimeError) as exc:
            kept = target.stat().st_size if target.exists() else 0
            if not kept:
                target.unlink(missing_ok=True)
                self.discovery.problems.append(SourceProblem(display, f"archive member unreadable: {exc}"))
                return
            # a truncated or damaged stream (a .gz cut by a full disk): what came out before the
            # damage is real evidence; it is read, and the damage is reported with its position
            self.discovery.problems.append(SourceProblem(
                display, f"archive member damaged after {kept} unpacked bytes ({exc or type(exc).__name__}); "
                         "the part before the damage is read"))
            written = kept
        budget[0] -= written
        if mtime:  # keep the original time: readers of year-less syslog lines infer the year from it
            os.utime(target, (mtime, mtime))
        self._found.append(EvidenceItem(display, target, temporary=True, depth=depth))

    def _zip(self, item: EvidenceItem, depth: int) -> None:
        budget = [self.limits.max_archive_bytes]
        with zipfile.ZipFile(item.path) as archive:
            members = [m for m in archive.infolist() if not m.is_dir()]
            if len(members) > self.limits.max_members:
                raise ValueError(f"{len(members)} members is more than {self.limits.max_members}")
            for info in sorted(members, key=lambda m: m.filename):
                mode = (info.external_attr >> 16) & 0o170000
                if mode == 0o120000:
                    self.discovery.problems.append(
                        SourceProblem(f"{item.display}!{info.filename}", "archive member refused: symbolic link"))
                    continue
                self._member(item, info.filename, lambda info=info: archive.open(info), info.file_size,
                             info.compress_size, depth, budget, mtime=_zip_time(info))

    def _tar(self, item: EvidenceItem, depth: int) -> None:
        budget = [self.limits.max_archive_bytes]
        with tarfile.open(item.path, mode="r:*") as archive:
            count = 0
            for info in archive:
                count += 1
                if count > self.limits.max_members:
                    raise ValueError(f"more than {self.limits.max_members} members")
                if info.isdir():
                    continue
                if not info.isfile():
                    kind = "link" if (info.issym() or info.islnk()) else "special file"
                    self.discovery.problems.append(
                        SourceProblem(f"{item.display}!{info.name}", f"archive member refused: {kind}"))
                    continue
                self._member(item, info.name, lambda info=info: archive.extractfile(info), info.size, None,
                             depth, budget, mtime=float(info.mtime))

    def _gzip(self, item: EvidenceItem, depth: int) -> None:
        self._compressed(item, depth, "gz", lambda: _Gunzip(item.path), (tarfile.TarError,))

    def _xz(self, item: EvidenceItem, depth: int) -> None:
        """An .xz file (regipy and many collectors ship hives so)."""
        self._compressed(item, depth, "xz", lambda: lzma.open(item.path), (tarfile.TarError, lzma.LZMAError, EOFError))

    def _compressed(self, item: EvidenceItem, depth: int, suffix: str, opener,
                    not_tar: tuple[type[Exception], ...]) -> None:
        """A compressed stream: a tar inside it (`.tar.gz`, `.tar.xz`), else one member named after the
        file without its suffix, unpacked with the same bounds as any archive member."""
        try:
            with tarfile.open(item.path, mode=f"r:{suffix}") as probe:
                probe.next()
            self._tar(item, depth)
            return
        except not_tar:
            pass
        ending = f".{suffix}"
        inner = item.display[:-len(ending)] if item.display.endswith(ending) else f"{item.display}!un{suffix}"
        budget = [self.limits.max_archive_bytes]
        compressed = item.path.stat().st_size
        self._member(EvidenceItem(item.display, item.path), PurePosixPath(inner).name, opener, None, compressed,
                     depth, budget, mtime=item.path.stat().st_mtime)


def cleanup(scratch: Path) -> None:
    shutil.rmtree(scratch, ignore_errors=True)
