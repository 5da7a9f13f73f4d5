"""Random rounding to base 3 (RR3), with the direction fixed by a keyed hash.

Rule (the ministry's): a multiple of 3 is unchanged; 1 and 2 always go to 3, never to 0; any
other count with remainder r goes down with probability (3 - r) / 3 and up otherwise, so it goes
to the nearer multiple of 3 two times in three. The "random" draw is HMAC-SHA256(key, identity),
where identity encodes what the cell counts (the question, not the answer). Asking the same
question again gives the same rounded answer, so averaging repeated requests reveals nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import json

BASE = 3


def cell_identity(measure: str, coordinates: dict[str, str | None]) -> bytes:
    """Canonical bytes naming what a cell counts: the measure and its coordinates (None = total)."""
    doc = {"measure": measure, "at": {str(k): (None if v is None else str(v)) for k, v in coordinates.items()}}
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def draw(key: bytes, identity: bytes) -> float:
    """A number in [0, 1) fixed by the key and the identity."""
    digest = hmac.new(key, identity, hashlib.sha256).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def rr3(value: int, identity: bytes, key: bytes) -> int:
    """Round a non-negative count to base 3 (see the module docstring)."""
    if value < 0:
        raise ValueError("counts are never negative")
    remainder = value % BASE
    if remainder == 0:
        return value
    if value < BASE:
        return BASE
    down = value - remainder
    return down if draw(key, identity) < (BASE - remainder) / BASE else down + BASE
