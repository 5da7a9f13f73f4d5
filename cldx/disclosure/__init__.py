"""Disclosure control: suppression, rounding and released outputs as pure functions on tables.

Everything that leaves a provider's scope is made here (`protect`, `exact_table`,
`aggregate_table`, `statistics_table`) and can be checked with `is_released`; person-level
research extracts are made k-anonymous here too (`k_anonymise`).
May import nothing else in cldx.
"""

from .kanonymity import Hierarchy, KAnonResult, band_levels, equivalence_class_sizes, is_k_anonymous, k_anonymise, mapping_levels
from .provenance import is_released
from .release import RULES_VERSION, ReleasedTable, ReleasedValue, aggregate_table, exact_table, protect, rules
from .rounding import cell_identity, rr3
from .statistics import (
    Statistic,
    StatisticsTable,
    exact_statistic,
    mean,
    percentage,
    percentage_of,
    statistic,
    statistics_rules,
    statistics_table,
)

__all__ = [
    "Hierarchy",
    "KAnonResult",
    "band_levels",
    "equivalence_class_sizes",
    "is_k_anonymous",
    "k_anonymise",
    "mapping_levels",
    "RULES_VERSION",
    "ReleasedTable",
    "ReleasedValue",
    "Statistic",
    "StatisticsTable",
    "aggregate_table",
    "cell_identity",
    "exact_statistic",
    "exact_table",
    "is_released",
    "mean",
    "percentage",
    "percentage_of",
    "protect",
    "rr3",
    "rules",
    "statistic",
    "statistics_rules",
    "statistics_table",
]
