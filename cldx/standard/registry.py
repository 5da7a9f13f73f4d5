"""The ministry's registry files (providers, service lines, contracts) and the brief's six service lines.

The ministry keeps its contract list in its finance system and loads it as these three CSV
files; they are defined with the same vocabulary as the provider record types so one
validator reads both.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from .codesets import code_set
from .fields import CODE_PATTERN, REFERENCE_PATTERN, Field, FieldType, RecordType, Reference

T = FieldType

PROVIDERS_FILE = RecordType(
    name="provider",
    title="Provider",
    description="An organisation the ministry funds to deliver services.",
    file_name="providers.csv",
    key=("provider_code",),
    fields=(
        Field("provider_code", T.TEXT, "The ministry's code for the provider.", required=True, max_length=20, pattern=CODE_PATTERN, example="P0001"),
        Field("name", T.TEXT, "The provider's name.", required=True, max_length=200, example="Te Whare Tiaki Trust"),
        Field("region_code", T.CODE, "The regional council area of the provider's main office.", required=True, code_set="regional_council", example="01"),
        Field("ta_code", T.CODE, "The territorial authority of the provider's main office.", code_set="territorial_authority", example="001"),
        Field(
            "sends_identity",
            T.YES_NO,
            "n when the provider sends no names or dates of birth, only the statistical linkage key. Blank means y.",
            code_set="yes_no",
            example="y",
        ),
    ),
)

SERVICE_LINES_FILE = RecordType(
    name="service_line",
    title="Service line",
    description="A kind of service the ministry funds; validation accepts the stored list.",
    file_name="service_lines.csv",
    key=("service_code",),
    fields=(
        Field("service_code", T.TEXT, "Short code providers use in engagements.service_code.", required=True, max_length=20, pattern=CODE_PATTERN, example="FS"),
        Field("name", T.TEXT, "The service line's name.", required=True, max_length=200, example="Family Start"),
        Field("description", T.TEXT, "Who the service is for.", max_length=1000),
        Field("min_client_age", T.INTEGER, "Youngest plausible client age in years.", min_value=0, max_value=120, example="12"),
        Field("max_client_age", T.INTEGER, "Oldest plausible client age in years.", min_value=0, max_value=120, example="65"),
    ),
)

CONTRACTS_FILE = RecordType(
    name="contract",
    title="Contract",
    description="A provider's contract for one service line: funding, period and the client-level data clause.",
    file_name="contracts.csv",
    key=("contract_ref",),
    fields=(
        Field("contract_ref", T.REFERENCE, "The finance system's contract number.", required=True, max_length=40, pattern=REFERENCE_PATTERN, example="CIS-2016-0001"),
        Field("provider_code", T.TEXT, "The provider holding the contract.", required=True, max_length=20, pattern=CODE_PATTERN, example="P0001"),
        Field("service_code", T.TEXT, "The service line contracted.", required=True, max_length=20, pattern=CODE_PATTERN, example="FS"),
        Field("period_start", T.DATE, "First day of the contract.", required=True, example="2016-07-01"),
        Field("period_end", T.DATE, "Last day of the contract.", required=True, example="2018-06-30"),
        Field("funding_nzd", T.DECIMAL, "Annual funding in New Zealand dollars.", required=True, min_value=0, example="1147500.00"),
        Field("data_clause", T.YES_NO, "y when the contract requires client-level data (the brief's clause).", required=True, code_set="yes_no", example="y"),
        Field("collection_start", T.DATE, "The date client-level data collection starts under this contract.", required_when="required when data_clause is y", example="2016-07-01"),
        Field("wave", T.INTEGER, "The roll-out wave: 1 from 1 July 2016, 2 by 1 July 2017.", required=True, min_value=1, max_value=9, example="1"),
        Field("reporting_frequency", T.CODE, "How often data is due. Blank means monthly.", code_set="reporting_frequency", example="monthly"),
        Field("due_day", T.INTEGER, "Day of the following month by which data is due. Blank means 20.", min_value=1, max_value=28, example="20"),
    ),
    references=(Reference("provider_code", "provider"), Reference("service_code", "service_line")),
)

REGISTRY_FILES: dict[str, RecordType] = {
    rt.file_name: rt for rt in (PROVIDERS_FILE, SERVICE_LINES_FILE, CONTRACTS_FILE)
}

REPORTING_FREQUENCIES: tuple[str, ...] = tuple(c.code for c in code_set("reporting_frequency"))
DEFAULT_DUE_DAY = 20


@dataclass(frozen=True)
class ServiceLine:
    code: str
    name: str
    description: str
    min_client_age: int
    max_client_age: int


# The brief's first six service lines (memo of 20 June 2016), collected from 1 July 2016.
SEED_SERVICE_LINES: tuple[ServiceLine, ...] = (
    ServiceLine("FS", "Family Start", "Intensive home visiting for parents of infants, from pregnancy to school age; babies are dependants.", 12, 65),
    ServiceLine("ES", "Early Start", "Christchurch home visiting for families of infants (one provider).", 12, 65),
    ServiceLine("SWIS", "Social Workers in Schools", "Social workers based in primary and intermediate schools, working with children and their families.", 4, 14),
    ServiceLine("YWSS", "Youth Workers in Secondary Schools", "Youth workers based in secondary schools.", 11, 20),
    ServiceLine("MASS", "Multi Agency Support Services in Secondary Schools", "Health and social support for secondary school students.", 11, 20),
    ServiceLine(
        "STAND",
        "Stand - Intensive Family Wraparound Service and Therapeutic Care and Education Service",
        "Stand Tū Maia: intensive family wraparound and therapeutic care and education for children (one provider).",
        3,
        16,
    ),
)

# From the brief: collection began on 1 July 2016 for the first wave and covers all CIS by 1 July 2017.
WAVE_1_START = date(2016, 7, 1)
WAVE_2_BY = date(2017, 7, 1)
