"""SLK-581, the statistical linkage key of AIHW METeOR 349510, and the keyed person pseudonym.

SLK-581 = family name letters 2, 3, 5 + given name letters 2, 3 + date of birth DDMMYYYY + sex
digit. Letters are folded to plain A-Z first (Unicode NFKD, marks dropped: "Pōkai" -> "POKAI"),
and everything that is not a letter (hyphens, apostrophes, spaces) is removed. A letter the
name is too short to have is `2`; a missing family name is `999`, a missing given name `99`.
The sex digit comes from the SCGI gender code: 1x -> 1, 2x -> 2, 3x -> 3, anything else -> 9.

The raw SLK is never stored: `person_key()` turns it into an HMAC-SHA256 under a linkage
secret kept apart from the data, so the same person links across providers while nobody
without the secret can reverse or recompute it.
"""

from __future__ import annotations

import hashlib
import hmac
import unicodedata
from datetime import date


def fold(name: str | None) -> str:
    """Upper-case plain letters only: macrons and other marks dropped, non-letters removed."""
    if not name:
        return ""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return "".join(ch for ch in plain.upper() if "A" <= ch <= "Z")


def _letters(folded: str, positions: tuple[int, ...], missing: str) -> str:
    if not folded:
        return missing
    return "".join(folded[p - 1] if p <= len(folded) else "2" for p in positions)


def sex_digit(gender: str | None) -> str:
    code = (gender or "").strip()
    return code[0] if code[:1] in ("1", "2", "3") else "9"


def slk581(family_name: str | None, given_names: str | None, date_of_birth: date, gender: str | None) -> str:
    return (
        _letters(fold(family_name), (2, 3, 5), "999")
        + _letters(fold(given_names), (2, 3), "99")
        + f"{date_of_birth.day:02d}{date_of_birth.month:02d}{date_of_birth.year:04d}"
        + sex_digit(gender)
    )


def person_key(slk: str, secret: bytes) -> str:
    """The person pseudonym: HMAC-SHA256 of the SLK under the linkage secret, as hex."""
    if len(secret) < 32:
        raise ValueError("the linkage secret must be at least 32 bytes")
    return hmac.new(secret, slk.encode("ascii"), hashlib.sha256).hexdigest()
