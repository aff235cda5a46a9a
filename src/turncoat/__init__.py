"""turncoat: which machines did a trojanized, signed app reach, and how far did it get."""

__version__ = "0.1.0"
