"""Findings: what is wrong with an incoming file, row or field, and how to fix it.

Every rule has a stable kebab-case code (what tests, pages and providers' scripts rely on),
a title, a description for the rule catalogue, a severity and tags. A finding is one rule
broken at one place: file, sheet, spreadsheet row (the header is row 1), field and value.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"  # the record (or file) is not stored
    WARNING = "warning"  # stored; worth fixing


@dataclass(frozen=True)
class Rule:
    code: str
    title: str
    description: str
    severity: Severity
    tags: tuple[str, ...]


RULES: dict[str, Rule] = {}


def _rule(code: str, title: str, description: str, severity: Severity = Severity.ERROR, *tags: str) -> Rule:
    assert code not in RULES, f"rule {code} defined twice"
    RULES[code] = Rule(code, title, description, severity, tags or ("#field",))
    return RULES[code]


# File level
_rule("unreadable-file", "File cannot be read", "The file could not be opened or decoded as CSV.", Severity.ERROR, "#file")
_rule("empty-file", "File has no header", "The file is empty: not even a header row.", Severity.ERROR, "#file")
_rule("missing-column", "Required column missing", "A column the standard requires is not in the header row.", Severity.ERROR, "#file")
_rule("unknown-column", "Column not in the standard", "A header the standard does not define; its values are ignored.", Severity.WARNING, "#file")
_rule("duplicate-column", "Column given twice", "Two header cells name the same column; only the first is read.", Severity.WARNING, "#file")
_rule("windows-1252", "Saved as Windows-1252", "The CSV was saved in Excel's plain CSV encoding, not UTF-8; macrons may have been lost.", Severity.WARNING, "#file")
_rule("standard-version", "Workbook for another standard version", "The workbook's README sheet names a different data standard version.", Severity.WARNING, "#file")
_rule("bad-json", "JSON not in the expected shape", "The JSON body is not an object of record lists, or a record is not an object of values.", Severity.ERROR, "#file")
_rule("ragged-row", "Row has more values than columns", "A row has values beyond the last header column (often a stray comma); the row is not read.", Severity.ERROR, "#record")
_rule("duplicate-file", "File sent twice", "Two files with the same name were sent in one submission; only the first is read.", Severity.ERROR, "#file")
_rule("identity-not-allowed", "Names sent by an organisation that sends no identity", "The organisation is set to send no identity, but a file holds names or dates of birth: the whole submission is refused and nothing in it is kept.", Severity.ERROR, "#file")
_rule("unknown-file", "File not recognised", "The file name is not one of the files this import reads.", Severity.WARNING, "#file")
# Field level
_rule("required", "Required value missing", "A required field is blank.")
_rule("date-format", "Not a date", "The value is not written in an accepted date form.")
_rule("impossible-date", "Impossible date", "The value looks like a date but is not a real calendar date (month-first dates are never guessed).")
_rule("yes-no", "Not y or n", "A yes/no field holds something other than y or n.")
_rule("not-a-number", "Not a number", "A numeric field holds something that is not a number.")
_rule("not-a-whole-number", "Not a whole number", "A whole-number field holds a fraction.")
_rule("out-of-range", "Value out of range", "A number is below the field's minimum or above its maximum.")
_rule("too-long", "Value too long", "The value is longer than the field allows.")
_rule("bad-format", "Value has the wrong form", "The value does not have the form the field requires (for example a reference with spaces).")
_rule("unknown-code", "Code not in the code set", "A coded field holds a code that is not in its code set.")
_rule("code-level", "Code at a level not accepted", "The code exists but at a classification level this field does not accept.")
_rule("leading-zeros-restored", "Leading zeros restored", "A code that lost its leading zeros (as Excel does) was restored because only one code fits.", Severity.WARNING)
# Record level
_rule("date-order", "Dates in the wrong order", "An end date is before its start date.", Severity.ERROR, "#record")
_rule("conditional-required", "Value required here", "A field that is required in this situation is blank.", Severity.ERROR, "#record")
_rule("future-date", "Date in the future", "A date lies after the day the submission was received.", Severity.ERROR, "#record")
_rule("identity-declined", "Identity sent for a client who declined", "The client declined identification (identity_consent n) but a name or date of birth was sent; it is not stored.", Severity.WARNING, "#record")
_rule("slk-mismatch", "SLK-581 and birth month disagree", "The date of birth inside slk581 is not a real date or is not in the month birth_year_month gives.", Severity.ERROR, "#record")
_rule("deidentified-form-ignored", "De-identified columns not used", "The organisation sends names, so slk581 and birth_year_month are worked out by cldx and the values sent are ignored.", Severity.WARNING, "#record")
_rule("not-notified", "Notification date missing", "The client has no date for being told their data is shared with the ministry; the record is stored and counted per provider.", Severity.WARNING, "#record")
_rule("implausible-age", "Age unusual for the service", "The client's age at the start of the engagement lies more than a year outside the ages the service line serves.", Severity.WARNING, "#record")
_rule("domain-mismatch", "Domain not of this instrument", "The assessment domain is not one of the instrument's domains.", Severity.ERROR, "#record")
_rule("measure-mismatch", "Measure not of this dimension", "The outcome measure belongs to another dimension.", Severity.ERROR, "#record")
# Across records
_rule("duplicate-key", "Key given twice", "Another row in the same file has the same key; every occurrence after the first is reported.", Severity.ERROR, "#record")
_rule("ref-reused", "Reference belongs to another person", "A client_ref already stored for a person with a different family name and date of birth was sent for someone else.", Severity.ERROR, "#record")
_rule("withdraw-unknown", "Withdrawal of an unknown record", "A row asks to withdraw a record that was never stored (or is already withdrawn); nothing changes.", Severity.WARNING, "#record")
_rule("unknown-reference", "Refers to something unknown", "The row refers to a record that is neither in this upload nor already stored.", Severity.ERROR, "#record")


@dataclass(frozen=True)
class Finding:
    """One broken rule at one place, phrased for the person who will fix it."""

    file: str
    row: int | None
    field: str | None
    value: str | None
    rule: str
    message: str
    fix: str
    sheet: str | None = None

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"finding names unknown rule {self.rule!r}")

    @property
    def severity(self) -> Severity:
        return RULES[self.rule].severity

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def to_dict(self) -> dict:
        """The shape DESIGN.md promises: file, sheet, row, field, value, rule, severity, message, fix."""
        data = asdict(self)
        return {
            "file": data["file"],
            "sheet": data["sheet"],
            "row": data["row"],
            "field": data["field"],
            "value": data["value"],
            "rule": data["rule"],
            "severity": str(self.severity),
            "message": data["message"],
            "fix": data["fix"],
        }


def render_rules_doc() -> str:
    """docs/rules.md: the rule catalogue, generated from RULES (a test fails when it is stale)."""
    lines = [
        "# Validation rules",
        "",
        "<!-- Generated from cldx/ingest/findings.py by `cldx rules docs`; do not edit by hand. -->",
        "",
        "Every finding cldx reports names one of these rules by its stable id. An **error** keeps the",
        "record (or, for file rules, the file) from being stored: the row is kept in quarantine with its",
        "findings. A **warning** is stored with the record and is worth fixing next month.",
        "",
        "Each finding says `file`, `sheet` (Excel), `row` (the spreadsheet row: the header is row 1; for",
        "JSON, the item's position), `field`, `value` (names and dates of birth masked), `rule`,",
        "`severity`, `message` and `fix`.",
        "",
        "| rule | title | severity | applies to | what it means |",
        "| --- | --- | --- | --- | --- |",
    ]
    for rule in RULES.values():
        lines.append(f"| `{rule.code}` | {rule.title} | {rule.severity} | {' '.join(rule.tags)} | {rule.description} |")
    return "\n".join(lines) + "\n"
