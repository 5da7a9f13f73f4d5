"""How values are written in provider files: dates, yes/no, numbers. Pure parsing, no I/O.

Each parser returns the value or raises `ValueProblem` naming what is wrong, so validators in
`ingest` can turn the problem into a finding with the provider's row and field.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation

from .fields import DATE_FORMS


class ValueProblem(ValueError):
    """A value that cannot be read; `rule` is the stable id of the rule it broke."""

    def __init__(self, rule: str, message: str, fix: str):
        super().__init__(message)
        self.rule = rule
        self.message = message
        self.fix = fix


_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_NZ = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


def parse_date(text: str) -> date:
    """ISO yyyy-mm-dd or New Zealand day-first d/m/yyyy; month-first is never guessed."""
    text = text.strip()
    if m := _ISO.match(text):
        y, mo, d = (int(g) for g in m.groups())
    elif m := _NZ.match(text):
        d, mo, y = (int(g) for g in m.groups())
    else:
        raise ValueProblem("date-format", f"{text!r} is not a date in an accepted form.", f"Write the date as {DATE_FORMS}.")
    try:
        return date(y, mo, d)
    except ValueError:
        hint = " It looks month-first; cldx reads dd/mm/yyyy." if _NZ.match(text) and mo > 12 and d <= 12 else ""
        raise ValueProblem(
            "impossible-date",
            f"{text!r} is not a real calendar date.{hint}",
            f"Check the day and month and write the date as {DATE_FORMS}.",
        ) from None


def parse_yes_no(text: str) -> bool:
    folded = text.strip().lower()
    if folded in ("y", "yes", "true", "1"):
        return True
    if folded in ("n", "no", "false", "0"):
        return False
    raise ValueProblem("yes-no", f"{text!r} is not y or n.", "Write y for yes or n for no.")


def parse_integer(text: str) -> int:
    try:
        number = Decimal(text.strip().replace(",", ""))
    except InvalidOperation:
        raise ValueProblem("not-a-number", f"{text!r} is not a whole number.", "Write digits only, for example 45.") from None
    if number != number.to_integral_value():
        raise ValueProblem("not-a-whole-number", f"{text!r} is not a whole number.", "Round to a whole number.")
    return int(number)


def parse_decimal(text: str) -> Decimal:
    try:
        number = Decimal(text.strip().replace(",", "").lstrip("$"))
    except InvalidOperation:
        raise ValueProblem("not-a-number", f"{text!r} is not a number.", "Write the number with digits and an optional decimal point, for example 1250.50.") from None
    if not number.is_finite():
        raise ValueProblem("not-a-number", f"{text!r} is not a number.", "Write a finite number.")
    return number
