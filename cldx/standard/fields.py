"""Field and record-type definitions: the vocabulary the data standard is written in."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .codesets import CodeSet, code_set


class FieldType(StrEnum):
    TEXT = "text"
    REFERENCE = "reference"
    DATE = "date"
    INTEGER = "integer"
    DECIMAL = "decimal"
    YES_NO = "yes/no"
    CODE = "code"


# A provider's own reference: letters, digits and . _ - / so it survives CSV, Excel and URLs.
REFERENCE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,39}$"
# A code the ministry keeps in its registry (provider codes, service codes): short, no spaces.
CODE_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,19}$"
DATE_FORMS = "yyyy-mm-dd (2017-03-09) or New Zealand day-first dd/mm/yyyy (09/03/2017)"


@dataclass(frozen=True)
class Field:
    """One column of a record type, described for the provider staff who fill it in."""

    name: str
    type: FieldType
    description: str
    required: bool = False
    code_set: str | None = None
    # Classification levels accepted (None: any level of the code set).
    levels: tuple[int, ...] | None = None
    min_value: float | None = None
    max_value: float | None = None
    max_length: int | None = None
    pattern: str | None = None
    # Names and exact dates of birth: stored apart from the analytic tables.
    identifying: bool = False
    example: str = ""
    # When a field is required only sometimes, the rule in words.
    required_when: str = ""
    # How to write a value, when the type alone does not say (a pattern's meaning in words).
    hint: str = ""

    @property
    def codes(self) -> CodeSet | None:
        return code_set(self.code_set) if self.code_set else None

    def accepted_codes(self) -> list[str]:
        """The codes a provider may send in this field (empty for free fields)."""
        cs = self.codes
        return [c.code for c in cs.at_levels(self.levels)] if cs is not None else []

    @property
    def requirement(self) -> str:
        if self.required:
            return "required"
        return "conditional" if self.required_when else "optional"

    @property
    def format_hint(self) -> str:
        """How to write a value, in a line: the note on a template header and the docs' format column."""
        if self.hint:
            return self.hint
        match self.type:
            case FieldType.DATE:
                return DATE_FORMS
            case FieldType.YES_NO:
                return "y or n"
            case FieldType.INTEGER | FieldType.DECIMAL:
                bounds = []
                if self.min_value is not None:
                    bounds.append(f"at least {self.min_value:g}")
                if self.max_value is not None:
                    bounds.append(f"at most {self.max_value:g}")
                kind = "whole number" if self.type is FieldType.INTEGER else "number"
                return f"{kind} {' and '.join(bounds)}".strip()
            case FieldType.CODE:
                cs = self.codes
                if cs is None:
                    # A list kept in the registry (service lines), not fixed in the standard.
                    example = f" (for example {self.example})" if self.example else ""
                    return f"a code from the list the ministry keeps in its registry{example}"
                return f"a code from {cs.title}{_levels_phrase(self.levels)}"
            case FieldType.REFERENCE:
                return "your own reference: letters, digits and . _ - /, up to 40 characters"
            case _:
                return f"text, up to {self.max_length} characters" if self.max_length else "text"


def _levels_phrase(levels: tuple[int, ...] | None) -> str:
    """Which levels of a classification a field takes, as words: " at levels 2, 3 or 4"."""
    if not levels:
        return ""
    if len(levels) == 1:
        return f" at level {levels[0]}"
    return f" at levels {', '.join(map(str, levels[:-1]))} or {levels[-1]}"


@dataclass(frozen=True)
class Reference:
    """A field that names a record of another type from the same provider."""

    field: str
    record_type: str


@dataclass(frozen=True)
class RecordType:
    """One kind of record a provider sends: its file, its key and its fields."""

    name: str
    title: str
    description: str
    file_name: str
    key: tuple[str, ...]
    fields: tuple[Field, ...]
    references: tuple[Reference, ...] = ()

    @property
    def sheet_name(self) -> str:
        return self.file_name.removesuffix(".csv")

    @property
    def columns(self) -> list[str]:
        return [f.name for f in self.fields]

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    @property
    def identifying_fields(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.identifying)
