"""Disclosure control: suppression, rounding and k-anonymity as pure functions on tables.

May import nothing else in cldx.
"""

from .release import RULES_VERSION, ReleasedTable, ReleasedValue, Statistic, mean, percentage, protect, rules
from .rounding import cell_identity, rr3

__all__ = [
    "RULES_VERSION",
    "ReleasedTable",
    "ReleasedValue",
    "Statistic",
    "cell_identity",
    "mean",
    "percentage",
    "protect",
    "rr3",
    "rules",
]
