"""De-identification at the source: a provider's CSV file without names or exact date of birth.

Runs on the provider's own machine (`cldx deidentify`) and, with the same rules, in the
browser (`static/slk581.js`); both produce byte-identical output, which a Chromium test checks.

For each file, every column is kept except `family_name`, `given_names` and `date_of_birth`;
a file that had a `date_of_birth` column gains `slk581` and `birth_year_month` (`YYYY-MM`) as
its last two columns (a dependants file, known by its `dependant_ref` column, gains only
`birth_year_month`: dependants are not linked), replacing any blank ones the template had.
Files without a `date_of_birth` column (engagements, attendance...) are copied cell for cell. Output is UTF-8 without BOM, LF line endings, fields quoted only when they hold
a comma, a quote or a line break (Python's csv.QUOTE_MINIMAL), quotes doubled.

Nothing identifying is ever written: a row whose date of birth cannot be read, or whose client
declined identification (`identity_consent` = n), gets blank `slk581` and `birth_year_month`,
and the problem is reported by row number, never by value.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import date

from .slk import slk581

REMOVED = ("family_name", "given_names", "date_of_birth")
ADDED = ("slk581", "birth_year_month")
_ISO = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})$")
_NZ = re.compile(r"^(\d{1,2})/(\d{1,2})/(\d{4})$")


@dataclass
class Deidentified:
    """One file's de-identified text and the rows that could not be keyed."""

    text: str
    rows: int
    problems: list[str] = field(default_factory=list)


def header_key(name: str) -> str:
    """Headers match as the validator matches them: case- and space-insensitively."""
    return re.sub(r"\s+", "_", name.strip().lower())


def parse_birth_date(text: str) -> date | None:
    """ISO yyyy-mm-dd or New Zealand d/m/yyyy; None when neither or not a real date."""
    text = text.strip()
    match = _ISO.match(text)
    if match:
        y, m, d = (int(g) for g in match.groups())
    else:
        match = _NZ.match(text)
        if not match:
            return None
        d, m, y = (int(g) for g in match.groups())
    try:
        return date(y, m, d)
    except ValueError:
        return None


def decode(data: bytes) -> str:
    """UTF-8 (with or without BOM); Windows-1252 as Excel's plain "CSV" saves it otherwise."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252", errors="replace")


class UnreadableCsv(ValueError):
    """The file is not CSV that can be read (a field longer than the csv module allows)."""


def _csv_field(value: str) -> str:
    if any(c in value for c in ',"\r\n'):
        return '"' + value.replace('"', '""') + '"'
    return value


class _Writer:
    """csv.QUOTE_MINIMAL with LF line ends, written here rather than by `csv.writer`: CPython
    before 3.11.9 leaves a field holding a lone \r unquoted (gh-67044), and the output must not
    depend on the Python patch level (the browser's must equal it byte for byte)."""

    def __init__(self, out: io.StringIO) -> None:
        self.out = out

    def writerow(self, row: list[str]) -> None:
        # A row of one empty field is written "" so it reads back as a row, not a blank line.
        line = '""' if row == [""] else ",".join(_csv_field(v) for v in row)
        self.out.write(line + "\n")


def deidentify_csv(data: bytes) -> Deidentified:
    """The de-identified form of one CSV file of the standard."""
    try:
        rows = list(csv.reader(io.StringIO(decode(data), newline="")))
    except csv.Error as exc:
        raise UnreadableCsv(f"not readable as CSV: {exc}") from None
    out = io.StringIO()
    writer = _Writer(out)
    if not rows:
        return Deidentified("", 0)
    header = rows[0]
    keys = [header_key(h) for h in header]
    keyed = "date_of_birth" in keys
    added_columns = (["birth_year_month"] if "dependant_ref" in keys else list(ADDED)) if keyed else []
    # The template's own (blank) slk581 and birth_year_month columns are replaced, not repeated.
    kept = [i for i, k in enumerate(keys) if k not in REMOVED and not (keyed and k in ADDED)]
    writer.writerow([header[i] for i in kept] + added_columns)
    column = {k: i for i, k in reversed(list(enumerate(keys)))}
    result = Deidentified("", 0)

    def cell(row: list[str], name: str) -> str:
        i = column.get(name)
        return row[i] if i is not None and i < len(row) else ""

    for number, row in enumerate(rows[1:], start=2):
        if not any(c.strip() for c in row):
            continue  # blank lines (Excel leaves them) carry nothing
        result.rows += 1
        added: list[str] = []
        if keyed:
            declined = cell(row, "identity_consent").strip().lower() == "n"
            born = parse_birth_date(cell(row, "date_of_birth"))
            if declined or born is None:
                if not declined:
                    result.problems.append(f"row {number}: date_of_birth is blank or not a date (yyyy-mm-dd or dd/mm/yyyy); slk581 left blank")
                added = ["" for _ in added_columns]
            else:
                month = f"{born.year:04d}-{born.month:02d}"
                if len(added_columns) == 1:
                    added = [month]
                else:
                    added = [slk581(cell(row, "family_name"), cell(row, "given_names"), born, cell(row, "gender")), month]
        writer.writerow([row[i] if i < len(row) else "" for i in kept] + added)
    result.text = out.getvalue()
    return result
