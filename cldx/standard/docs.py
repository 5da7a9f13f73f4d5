"""`docs/data-standard.md`: the data standard written out for people, rendered from the definitions.

Provider staff read it to fill in files, ministry staff to load the registry, developers to
build exports. Nothing in it is typed by hand, so it cannot drift from what validation checks;
a test compares the file in the repository with a fresh render. The output has no dates or
other run-to-run differences.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .codesets import CodeSet, code_set, code_sets, load_instruments
from .fields import DATE_FORMS, RecordType
from .jsonschema import schema_file_name
from .records import RECORD_TYPES, STANDARD_NAME, STANDARD_VERSION
from .registry import DEFAULT_DUE_DAY, REGISTRY_FILES, REPORTING_FREQUENCIES, SEED_SERVICE_LINES, ServiceLine
from .templates import CODES_SHEET, README_SHEET, VERSION_LABEL, ServiceLineLike, service_line_pairs, workbook_file_name

DOCS_PATH = "docs/data-standard.md"
REGENERATE = "`make standard-docs` or `cldx standard docs`"

# The large classifications are only described, since they ship as CSVs and in the workbook's
# codes sheet; every other code set is listed in full.
LARGE_CODE_SETS = ("ethnicity", "iwi", "regional_council", "territorial_authority", "sa2", "area")
# Listed in full too, but in tables of their own (instruments with ranges, measures by dimension).
LISTED_ELSEWHERE = ("instrument", "instrument_domain", "outcome_measure")


def render_docs(service_lines: Sequence[ServiceLineLike] = SEED_SERVICE_LINES) -> str:
    """The whole of docs/data-standard.md."""
    parts = [
        _intro(),
        _files_and_keys(),
        _action(),
        _values(),
        _identity(),
        *(_record_type(rt) for rt in RECORD_TYPES.values()),
        _code_sets(),
        _instruments(),
        _outcome_measures(),
        _service_lines(service_lines),
        _registry(),
        _generated_files(),
    ]
    return "\n\n".join(p.strip("\n") for p in parts) + "\n"


# --- Markdown helpers --------------------------------------------------------------------


def _cell(value: object) -> str:
    # Pipes would end the cell and line breaks the row.
    return str(value).replace("|", "\\|").replace("\n", " ")


def _table(headers: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _code(text: str) -> str:
    return f"`{text}`" if text else ""


def _field_table(rt: RecordType) -> str:
    rows = [
        (
            _code(f.name) + (" (key)" if f.name in rt.key else ""),
            str(f.type),
            f.requirement + (f": {f.required_when}" if f.required_when else ""),
            f.format_hint,
            f.description,
        )
        for f in rt.fields
    ]
    return _table(("field", "type", "requirement", "format", "description"), rows)


def _a(word: str) -> str:
    return ("an " if word[0] in "aeiou" else "a ") + word


def _used_by(name: str) -> list[str]:
    record_and_registry_files = [*RECORD_TYPES.values(), *REGISTRY_FILES.values()]
    return [f"{rt.name}.{f.name}" for rt in record_and_registry_files for f in rt.fields if f.code_set == name]


# --- Sections ----------------------------------------------------------------------------


def _intro() -> str:
    rows = [
        (f"[{rt.title}](#{rt.name})", _code(rt.file_name), _code(rt.sheet_name), " + ".join(map(_code, rt.key)), rt.description)
        for rt in RECORD_TYPES.values()
    ]
    return f"""
# {STANDARD_NAME}, version {STANDARD_VERSION}

<!-- Generated from cldx/standard by `cldx standard docs`; do not edit by hand. -->

This is version **{STANDARD_VERSION}** of the data standard: what each funded provider sends the
ministry about its clients and their services, how to write it, and the codes to use. It is
generated from the definitions in `cldx/standard/`, which validation reads too, so what is written
here is what cldx checks. To change it, change the definitions and run {REGENERATE}.

A provider sends six kinds of record:

{_table(("record", "file", "sheet", "key", "what it holds"), rows)}
"""


def _files_and_keys() -> str:
    return f"""
## Files, sheets and keys

- **Files.** Send each kind of record as a CSV file with the name above (`clients.csv`,
  `engagements.csv` and so on), or fill in the Excel template `{workbook_file_name()}`, which has
  one sheet per kind of record named as in the table. cldx tells the record type from the file
  or sheet name, or else from the column headings.
- **Columns.** Row 1 holds the column names exactly as listed below. Leave a cell blank when
  there is no value.
- **CSV.** UTF-8 (Excel: *CSV UTF-8*), comma separated, with a header row. The blank CSV templates
  carry a byte-order mark so that Excel opens them as UTF-8 and keeps macrons (Māori, Whāngai).
- **Keys.** Every record belongs to the provider that sends it and is keyed within that provider
  by the key columns. Sending a record again with the same key updates it (the history is kept),
  so sending the same file twice changes nothing and a provider can send its whole list every
  month. Within one file a key appears once; a repeated key is reported on every occurrence after
  the first.
- **References.** `client_ref`, `dependant_ref` and `engagement_ref` are the provider's own
  references: letters, digits and `. _ - /`, up to 40 characters, the same in every file and
  every month. Never use a name, NHI or IRD number. Dependants and engagements name their client by
  `client_ref`; attendance, assessments and outcomes name their engagement by `engagement_ref`.
"""


def _action() -> str:
    action = code_set("action")
    return f"""
## The `action` column and withdrawals

Every record type starts with an `action` column.

{_table(("action", "meaning"), [("(blank)", "Add or update the record (the usual case)."), *((_code(c.code), c.label) for c in action)])}

A withdrawal names the record by its key; the other columns of a withdrawal row may be left blank.
The record's history is kept.
"""


def _values() -> str:
    ethnicity, iwi, area = code_set("ethnicity"), code_set("iwi"), code_set("area")
    return f"""
## Writing values

- **Dates**: {DATE_FORMS}. A date that does not exist (30/02/2017) is rejected, and cldx never
  guesses a month-first date: 03/13/2017 is reported as an impossible date. In the Excel template
  date columns are formatted as text, so Excel keeps what you type.
- **Yes/no**: `y` or `n`.
- **Numbers**: digits with an optional decimal point; whole numbers where the field says so.
- **Codes**: the code, not its label (`21`, not `Māori`). Codes with leading zeros keep them:
  territorial authority `001`, iwi `0402`. In the Excel template code columns are text and
  have a drop-down.
- **Classification levels.** Coded fields from official classifications accept only some levels:
  - `primary_ethnicity`: {ethnicity.title}, level 2 (two digits, such as `21` Māori) or finer
    (levels 3 and 4). Reports roll finer codes up to level 2 or level 1.
  - `iwi_1`, `iwi_2`, `iwi_3`: {iwi.title}, level 2 (four-digit iwi codes), including the
    residual codes `4444` to `9999`.
  - `gender`: {code_set('gender').title}, level 1 or 2.
  - `area`: {area.title}. Send the six-digit SA2 of the client's usual residence, or the
    three-digit territorial authority when the SA2 is not known; reports roll SA2s up to
    territorial authorities and regions.
- **Up to three iwi.** A client of Māori descent may affiliate with several iwi. Send up to three
  in `iwi_1`, `iwi_2` and `iwi_3`, the first in `iwi_1`, and leave the rest blank. Leave all three
  blank for a client who is not of Māori descent; use the residual codes (`4444` Don't know and
  so on) when a Māori client's iwi is not known.
"""


def _identity() -> str:
    identifying = sorted({f"{rt.name}.{f.name}" for rt in RECORD_TYPES.values() for f in rt.identifying_fields})
    return f"""
## Identifying fields

These fields identify a person and are kept apart from the analytic tables:
{", ".join(map(_code, identifying))}. Ministry analysts never see them; only the birth year and
month reach the analytic tables. When a client declines to be identified, write `n` in
`identity_consent` and leave the client's names and date of birth blank: the client is then
known only by the provider's `client_ref`.

### Two forms of identity (version 1.1)

A provider sends client identity in one of two forms, set for it in the ministry's registry
(`providers.csv`, `sends_identity`):

- **Identified** (the default): `family_name`, `given_names` and `date_of_birth`; leave `slk581`
  and `birth_year_month` blank. cldx keeps the names and date of birth encrypted in its identity
  store and works out the linkage key and the birth month itself.
- **De-identified** (`sends_identity` n): no name or date of birth ever leaves the provider.
  `cldx deidentify FILE... --out DIR`, or the upload page in the browser, turns the names, date
  of birth and gender into `slk581` (the AIHW SLK-581 statistical linkage key) and
  `birth_year_month`, and removes the name and date-of-birth columns. A submission from such a
  provider that still holds a name or date of birth is refused whole (`identity-not-allowed`)
  and nothing in it is kept. Dependants carry `birth_year_month` only.

Either way cldx keys the SLK-581 with a secret at once (HMAC-SHA256) and never stores it, so
the same person links across providers and service lines whichever form each provider sends.
"""


def _record_type(rt: RecordType) -> str:
    references = "".join(f"\n- `{r.field}` names {_a(r.record_type)} record sent by the same provider." for r in rt.references)
    return f"""
<a id="{rt.name}"></a>

## {rt.title} records: `{rt.file_name}`

{rt.description}

- Key: {" + ".join(map(_code, rt.key))}.
- Excel sheet: `{rt.sheet_name}`. JSON Schema: `schemas/{schema_file_name(rt)}`.{references}

{_field_table(rt)}
"""


def _code_sets() -> str:
    sets = code_sets()
    summary = [
        (_code(cs.name), cs.title, cs.source, cs.version, len(cs), ", ".join(map(_code, _used_by(cs.name))) or "reports (roll-ups)")
        for cs in sets.values()
    ]
    listed = "\n\n".join(
        _code_set_in_full(cs) for cs in sets.values() if cs.name not in LARGE_CODE_SETS and cs.name not in LISTED_ELSEWHERE
    )
    described = "\n".join(f"- `{sets[name].name}`: {sets[name].title}, {len(sets[name]):,} codes. {sets[name].note}".rstrip() for name in LARGE_CODE_SETS)
    return f"""
## Code sets

Each code set names its source and version, so a released table can say what it was coded
against. The official classifications are kept as published (the 2018 geography names have no
macrons, as in the source); their provenance is in `cldx/standard/codesets/SOURCES.md`.

{_table(("code set", "title", "source", "version", "codes", "used by"), summary)}

### Large code sets

These are too long to list here. They ship as CSV files in the package
(`cldx/standard/codesets/`), in the `{CODES_SHEET}` sheet of the Excel template (only the codes
each field accepts) and as `codesets/<code set>.csv` in the folder `cldx standard export DIR`
writes.

{described}

### Small code sets

{listed}
"""


def _code_set_in_full(cs: CodeSet) -> str:
    with_descriptions = any(c.description for c in cs)
    headers = ("code", "label", "description") if with_descriptions else ("code", "label")
    rows = [(_code(c.code), c.label, c.description)[: len(headers)] for c in cs]
    return f"#### {cs.title} (`{cs.name}`)\n\n{_table(headers, rows)}"


def _instruments() -> str:
    rows = [
        (_code(i.code), i.label, _code(d.code), d.label, f"{d.min_score:g} to {d.max_score:g}", d.better)
        for i in load_instruments().values()
        for d in i.domains.values()
    ]
    sources = "\n".join(f"- `{i.code}` {i.label}: {i.source}" for i in load_instruments().values())
    return f"""
### Assessment instruments and domains (`instrument`, `instrument_domain`)

An assessment row names an instrument and one of that instrument's domains, and gives a score
within the domain's range. "Better" says which direction is an improvement from pre to post.

{_table(("instrument", "instrument name", "domain", "domain name", "score range", "better"), rows)}

Sources:

{sources}
"""


def _outcome_measures() -> str:
    measures = code_set("outcome_measure")
    blocks = []
    for dimension in code_set("outcome_dimension"):
        rows = [(_code(m.code), m.label, m.description) for m in measures if m.parent == dimension.code]
        blocks.append(f"#### {dimension.label} (`{dimension.code}`)\n\n{_table(('measure', 'label', 'description'), rows)}")
    joined = "\n\n".join(blocks)
    return f"""
### Outcome measures by dimension (`outcome_measure`)

An outcome row names a dimension (the brief's change in knowledge, attitude, skills, behaviour
or circumstances) and one of that dimension's measures.

{joined}
"""


def _service_lines(service_lines: Sequence[ServiceLineLike]) -> str:
    described = [s for s in service_lines if isinstance(s, ServiceLine)]
    if len(described) == len(service_lines):
        table = _table(
            ("service_code", "name", "description", "client ages"),
            ((_code(s.code), s.name, s.description, f"{s.min_client_age} to {s.max_client_age}") for s in described),
        )
    else:
        table = _table(("service_code", "name"), ((_code(c), n) for c, n in service_line_pairs(service_lines)))
    return f"""
## Service lines

`engagements.service_code` takes a code from the service lines stored in cldx's registry, not a
fixed list: the ministry adds service lines as more of the CIS joins (see
[registry files](#registry-files)). cldx starts with the brief's six:

{table}
"""


def _registry() -> str:
    sections = []
    for rt in REGISTRY_FILES.values():
        sections.append(
            f"### `{rt.file_name}`: {rt.title.lower()}s\n\n{rt.description} Key: {' + '.join(map(_code, rt.key))}.\n\n{_field_table(rt)}"
        )
    joined = "\n\n".join(sections)
    return f"""
<a id="registry-files"></a>

## Registry files (for ministry staff)

The ministry keeps its providers, service lines and contracts in its finance system and loads
them into cldx as three CSV files with `cldx registry import DIR`. Importing the same files
twice changes nothing. Contracts are reported {", ".join(REPORTING_FREQUENCIES)}; data is due by
day {DEFAULT_DUE_DAY} of the following month unless the contract says otherwise.

{joined}
"""


def _generated_files() -> str:
    workbook = (
        f"the Excel template: `{README_SHEET}` (with the \"{VERSION_LABEL}\" cell), one sheet per record type, "
        f"`{CODES_SHEET}` (every code with its label)"
    )
    rows = [
        ("`data-standard.md`", "this document"),
        ("`schemas/<record>.schema.json`", "a JSON Schema (draft 2020-12) per record type, for systems that send records through the API"),
        ("`templates/<file>.csv`", "blank CSV templates (header row only, UTF-8 with a byte-order mark)"),
        (f"`templates/{workbook_file_name()}`", workbook),
        ("`templates/registry/<file>.csv`", "blank registry files, for ministry staff"),
        ("`codesets/<code set>.csv`", "every code set: code, label, level, parent_code, description"),
        ("`codesets/instrument_scores.csv`", "each instrument's domains with score range and better direction"),
        ("`codesets/service_lines.csv`", "the service lines the templates were made with, as a registry file"),
        ("`codesets/SOURCES.md`", "where the official code sets came from"),
    ]
    return f"""
## Files generated from the standard

`cldx standard export DIR` writes everything a provider or a developer needs:

{_table(("path", "what it is"), rows)}

This document is regenerated with {REGENERATE}; a test fails when it is out of date.
"""
