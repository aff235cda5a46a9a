"""Text of small Windows text artifacts (Task XML, Defender's MPLog) whose encoding only the byte-order
mark tells: UTF-16LE is the norm, UTF-16BE and UTF-8 occur, and some files have no mark at all."""

from __future__ import annotations


def decode_bom_text(data: bytes) -> tuple[str, bool]:
    """The text, and whether undecodable bytes had to be replaced (the caller reports that)."""
    if data.startswith(b"\xff\xfe"):
        encoding, body = "utf-16-le", data[2:]
    elif data.startswith(b"\xfe\xff"):
        encoding, body = "utf-16-be", data[2:]
    elif data.startswith(b"\xef\xbb\xbf"):
        encoding, body = "utf-8", data[3:]
    elif len(data) >= 2 and data[0] != 0 and data[1] == 0:  # UTF-16LE without its mark
        encoding, body = "utf-16-le", data
    else:
        encoding, body = "utf-8", data
    if encoding.startswith("utf-16") and len(body) % 2:
        body = body[:-1]  # a head cut mid-character
    try:
        return body.decode(encoding), False
    except UnicodeDecodeError:
        return body.decode(encoding, errors="replace"), True
