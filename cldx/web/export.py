"""Writing cells back out to CSV and Excel safely."""

from __future__ import annotations

import re
from typing import Any

_NUMBER = re.compile(r"^[+-]?\d+(\.\d+)?$")


def neutralise(value: Any) -> Any:
    """A cell that a spreadsheet would run as a formula (=, +, -, @, tab, CR) is prefixed with '.

    Plain numbers such as -5 are left alone; everything else starting with those characters is
    kept as text, so a provider's download can never execute anything in Excel.
    """
    if value is None:
        return ""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r") and not _NUMBER.match(value):
        return "'" + value
    return value
