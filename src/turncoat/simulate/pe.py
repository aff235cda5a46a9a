"""What Sysmon says about an executable file: version resource, hashes, signature.

Benign files get hashes derived from a label (stable, and by construction never equal to an indicator);
attack files get the published indicator values (see `indicators.py`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Hashes:
    """A file's digests, lower-case hex, as indicator lists write them."""

    sha1: str
    md5: str
    sha256: str
    imphash: str

    def sysmon(self) -> str:
        """Sysmon's `Hashes` field: `SHA1=…,MD5=…,SHA256=…,IMPHASH=…`, upper-case hex."""
        return (
            f"SHA1={self.sha1.upper()},MD5={self.md5.upper()},"
            f"SHA256={self.sha256.upper()},IMPHASH={self.imphash.upper()}"
        )


def fake_hashes(label: str) -> Hashes:
    """Deterministic stand-in digests for a benign file, named by `label` (path and version)."""
    data = f"turncoat-simulated-file:{label}".encode()
    return Hashes(
        sha1=hashlib.sha1(data).hexdigest(),
        md5=hashlib.md5(data).hexdigest(),
        sha256=hashlib.sha256(data).hexdigest(),
        imphash=hashlib.md5(b"imphash:" + data).hexdigest(),
    )


@dataclass(frozen=True)
class Binary:
    """An executable or DLL as Sysmon describes it.

    `template` is its path; `{home}` stands for the user's profile folder, so one definition serves
    every user. `signer` empty means unsigned. `hashes` None means "derive benign stand-ins".
    """

    template: str
    version: str = "-"
    description: str = "-"
    product: str = "-"
    company: str = "-"
    original: str = "-"
    signer: str = ""
    hashes: Hashes | None = None
    _derived: Hashes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        derived = self.hashes or fake_hashes(f"{self.template}|{self.version}|{self.signer}")
        object.__setattr__(self, "_derived", derived)

    @property
    def digests(self) -> Hashes:
        return self._derived

    def path(self, home: str) -> str:
        return self.template.replace("{home}", home)

    @property
    def signed(self) -> str:
        return "true" if self.signer else "false"

    @property
    def signature(self) -> str:
        return self.signer or "-"

    @property
    def signature_status(self) -> str:
        return "Valid" if self.signer else "Unavailable"
