# The validator as it was before the speed-up (commit 0d34cf7, cldx/ingest/validate.py), with
# absolute imports: tests/ingest/test_validate_speed_equivalence.py checks that the current one
# gives exactly what this one gives. Never edit it to match; it is the reference.
"""One validator for every channel: CSV, Excel and JSON all arrive here as text tables.

Checks run in layers, all as Polars expressions over whole columns (no per-row Python):
  field   type, required, code set and level, range, length, form;
  record  end not before start, dates not in the future, age plausible for the service,
          a domain of its instrument, a measure of its dimension, identity when consented;
  across  duplicate keys in the submission, references to records sent now or stored;
  stored  a client_ref already used for a different person.
A record with any error is rejected (kept in quarantine by the caller); warnings do not block.

A month's submission is small, so the cost is in the number of Polars queries, not rows: each
record type's field checks and row-by-row rules run as one query, with a quick form of each field
check (exact text, known code) and the full one only for fields holding a doubtful value; the
findings of rules that no row breaks are never built.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from datetime import date

import polars as pl

from cldx.standard import RECORD_TYPES, Field, FieldType, RecordType, code_set, load_instruments
from cldx.standard.fields import DATE_FORMS
from cldx.standard.records import DEIDENTIFIED_FORM, IDENTIFIED_FORM

from cldx.ingest.findings import RULES
from cldx.ingest.sources import ROW, RawTable

FILE, SHEET = "__file", "__sheet"
ACTION, WITHDRAW = "action", "withdraw"
WARNED = "__warned"
FLAGGED = "__flagged"  # a row with a field finding
FINDING_SCHEMA = {
    "file": pl.String, "sheet": pl.String, "row": pl.Int64, "field": pl.String, "value": pl.String,
    "rule": pl.String, "message": pl.String, "fix": pl.String,
}
# Parents first: a child record may refer to a parent accepted in the same submission.
ORDER = ("client", "dependant", "engagement", "attendance", "assessment", "outcome")


@dataclass
class Stored:
    """What the store already holds for this provider, in the shape validation needs."""

    clients: pl.DataFrame  # client_ref, birth_year_month, identity_consent
    client_identity: pl.DataFrame  # client_ref, family_name, date_of_birth
    engagements: pl.DataFrame  # engagement_ref
    pre_assessments: pl.DataFrame  # engagement_ref, instrument, domain, assessed_on
    service_lines: dict[str, tuple[int | None, int | None]]  # code -> (min age, max age)

    @classmethod
    def empty(cls, service_lines: dict[str, tuple[int | None, int | None]]) -> Stored:
        return cls(
            pl.DataFrame(schema={"client_ref": pl.String, "birth_year_month": pl.String, "identity_consent": pl.Boolean}),
            pl.DataFrame(schema={"client_ref": pl.String, "family_name": pl.String, "date_of_birth": pl.Date}),
            pl.DataFrame(schema={"engagement_ref": pl.String}),
            pl.DataFrame(schema={"engagement_ref": pl.String, "instrument": pl.String, "domain": pl.String, "assessed_on": pl.Date}),
            service_lines,
        )


@dataclass
class Validated:
    """Accepted typed records and rejected raw rows per record type, and every finding."""

    accepted: dict[str, pl.DataFrame] = field(default_factory=dict)
    rejected: dict[str, pl.DataFrame] = field(default_factory=dict)
    findings: pl.DataFrame = field(default_factory=lambda: pl.DataFrame(schema=FINDING_SCHEMA))


ERROR_RULES = [code for code, rule in RULES.items() if rule.severity == "error"]
# A submission is one provider's month: thousands of rows, where the streaming engine's start-up
# costs several times the work itself. The in-memory engine runs such queries far sooner.
ENGINE = "in-memory"


def _v(name: str) -> str:
    return f"{name}__v"


def _p(name: str) -> str:
    return f"{name}__p"


def _d(name: str) -> str:
    return f"{name}__d"


def _shown(spec: Field) -> pl.Expr:
    """The value as a finding shows it: names and dates of birth masked."""
    raw = pl.col(spec.name)
    if not spec.identifying:
        return raw
    return pl.when(raw == "").then(pl.lit("")).otherwise(raw.str.slice(0, 1) + pl.lit("***"))


# --- Field layer ------------------------------------------------------------------------------


def _date_expr(raw: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(parsed date, matched an accepted form) for ISO and New Zealand day-first text."""
    iso = raw.str.extract_groups(r"^(?<y>\d{4})-(?<m>\d{1,2})-(?<d>\d{1,2})$")
    nz = raw.str.extract_groups(r"^(?<d>\d{1,2})/(?<m>\d{1,2})/(?<y>\d{4})$")
    y = pl.coalesce(iso.struct.field("y"), nz.struct.field("y"))
    m = pl.coalesce(iso.struct.field("m"), nz.struct.field("m"))
    d = pl.coalesce(iso.struct.field("d"), nz.struct.field("d"))
    parsed = pl.format("{}-{}-{}", y, m.str.zfill(2), d.str.zfill(2)).str.to_date("%Y-%m-%d", strict=False)
    return parsed, y.is_not_null()


_YES = ("y", "yes", "true", "1")
_NO = ("n", "no", "false", "0")


def _restorations(spec: Field) -> dict[str, str]:
    """Codes Excel may have stripped of leading zeros -> the one code each can only be."""
    codes = spec.accepted_codes()
    stripped: dict[str, list[str]] = {}
    for code in codes:
        if code.startswith("0") and code.isdigit():
            stripped.setdefault(code.lstrip("0"), []).append(code)
    accepted = set(codes)
    return {short: full[0] for short, full in stripped.items() if len(full) == 1 and short not in accepted}


def _field_exprs(spec: Field, rt: RecordType, service_codes: list[str]) -> tuple[pl.Expr, pl.Expr, dict[str, tuple[str, str]]]:
    """(typed value, problem rule or null, rule -> (message template, fix)) for one field.

    Templates use {} for the shown value.
    """
    raw = pl.col(spec.name)
    blank = raw == ""
    hint = spec.format_hint
    messages: dict[str, tuple[str, str]] = {
        "required": (f"{spec.name} is required.", f"Fill in {spec.name}: {hint}."),
    }
    conditions: list[tuple[str, pl.Expr]] = []
    value: pl.Expr
    match spec.type:
        case FieldType.DATE:
            value, matched = _date_expr(raw)
            conditions += [("date-format", ~matched), ("impossible-date", value.is_null())]
            messages["date-format"] = (f"{{}} is not a date in an accepted form ({spec.name}).", f"Write {spec.name} as {DATE_FORMS}.")
            messages["impossible-date"] = (
                f"{{}} is not a real calendar date ({spec.name}); month-first dates are never guessed.",
                f"Check the day and month and write {spec.name} as {DATE_FORMS}.",
            )
        case FieldType.YES_NO:
            lowered = raw.str.to_lowercase()
            value = pl.when(lowered.is_in(_YES)).then(True).when(lowered.is_in(_NO)).then(False).otherwise(None)
            conditions.append(("yes-no", value.is_null()))
            messages["yes-no"] = (f"{{}} is not y or n ({spec.name}).", f"Write y or n in {spec.name}.")
        case FieldType.INTEGER | FieldType.DECIMAL:
            number = raw.str.replace_all(",", "").str.strip_prefix("$").cast(pl.Float64, strict=False)
            finite = number.is_not_null() & number.is_finite()
            conditions.append(("not-a-number", ~finite))
            messages["not-a-number"] = (f"{{}} is not a number ({spec.name}).", f"Write {spec.name} with digits, for example {spec.example or 5}.")
            if spec.type is FieldType.INTEGER:
                conditions.append(("not-a-whole-number", number != number.round(0)))
                messages["not-a-whole-number"] = (f"{{}} is not a whole number ({spec.name}).", f"Round {spec.name} to a whole number.")
            out_of_range = pl.lit(False)
            if spec.min_value is not None:
                out_of_range = out_of_range | (number < spec.min_value)
            if spec.max_value is not None:
                out_of_range = out_of_range | (number > spec.max_value)
            conditions.append(("out-of-range", out_of_range))
            messages["out-of-range"] = (f"{{}} is outside the range {spec.name} allows.", f"Write {hint}.")
            value = number.cast(pl.Int64, strict=False) if spec.type is FieldType.INTEGER else number
        case FieldType.CODE:
            accepted = service_codes if spec.name == "service_code" else spec.accepted_codes()
            restorable = _restorations(spec) if spec.code_set else {}
            restored = raw.replace_strict(restorable, default=None) if restorable else pl.lit(None, pl.String)
            value = pl.when(raw.is_in(accepted)).then(raw).otherwise(restored)
            if spec.code_set and spec.levels:
                every = [c.code for c in code_set(spec.code_set)]
                conditions.append(("code-level", raw.is_in(every) & ~raw.is_in(accepted)))
                messages["code-level"] = (f"{{}} is a code at a level {spec.name} does not take.", f"Send {hint}.")
            conditions.append(("unknown-code", value.is_null()))
            if spec.name == "service_code":
                messages["unknown-code"] = ("{} is not a service line in the registry.", f"Use one of your contract's service codes: {', '.join(service_codes)}.")
            elif spec.name == "action":
                messages["unknown-code"] = ("{} is not an action.", "Leave action blank to add or update the record, or write withdraw.")
            else:
                messages["unknown-code"] = (f"{{}} is not a code in {spec.codes.title if spec.codes else spec.name}.", f"Use {hint}; the template's codes sheet lists every code.")
        case _:
            value = raw
            if spec.max_length:
                conditions.append(("too-long", raw.str.len_chars() > spec.max_length))
                messages["too-long"] = (f"{spec.name} is longer than {spec.max_length} characters.", f"Shorten {spec.name}.")
            if spec.pattern:
                conditions.append(("bad-format", ~raw.str.contains(spec.pattern)))
                messages["bad-format"] = (f"{{}} is not a valid {spec.name}.", f"Write {spec.name} as {hint}.")
    problem = pl.when(blank & pl.lit(spec.required)).then(pl.lit("required"))
    for rule, condition in conditions:
        problem = problem.when(~blank & condition).then(pl.lit(rule))
    problem = problem.otherwise(pl.lit(None, pl.String))
    if spec.name not in rt.key:
        # A withdrawal needs only the key; its other columns may say anything.
        problem = pl.when(pl.col(ACTION) == WITHDRAW).then(pl.lit(None, pl.String)).otherwise(problem)
    typed = pl.when(blank).then(None).otherwise(value)
    return typed, problem, messages


def _quick_exprs(spec: Field, service_codes: list[str]) -> tuple[pl.Expr, pl.Expr]:
    """(typed value, doubtful) for one field: the cheap check most values need.

    Where `doubtful` is false the typed value is the one `_field_exprs` gives and that check
    finds nothing (no problem, no code restored); only doubtful fields get the full check.
    Doubt is cautious: a withdrawal's fields, or "1,000" for a number, are doubted and pass.
    """
    raw = pl.col(spec.name)
    blank = raw == ""
    match spec.type:
        case FieldType.DATE:
            # Exactly yyyy-mm-dd or dd/mm/yyyy, as the date read writes it back: the full check's
            # pattern matches such text and reads the same date from it.
            value = pl.coalesce(raw.str.to_date("%Y-%m-%d", strict=False), raw.str.to_date("%d/%m/%Y", strict=False))
            fine = (raw.str.len_bytes() == 10) & ((value.dt.to_string("%Y-%m-%d") == raw) | (value.dt.to_string("%d/%m/%Y") == raw))
        case FieldType.YES_NO:
            value = raw.str.to_lowercase().replace_strict({**dict.fromkeys(_YES, True), **dict.fromkeys(_NO, False)}, default=None, return_dtype=pl.Boolean)
            fine = value.is_not_null()
        case FieldType.INTEGER | FieldType.DECIMAL:
            number = raw.cast(pl.Float64, strict=False)  # no thousands commas or $: those are doubted
            fine = number.is_not_null() & number.is_finite()
            if spec.min_value is not None:
                fine = fine & (number >= spec.min_value)
            if spec.max_value is not None:
                fine = fine & (number <= spec.max_value)
            if spec.type is FieldType.INTEGER:
                fine = fine & (number == number.round(0))
            value = number.cast(pl.Int64, strict=False) if spec.type is FieldType.INTEGER else number
        case FieldType.CODE:
            accepted = service_codes if spec.name == "service_code" else spec.accepted_codes()
            # An Enum holds the codes hashed once, where is_in hashes its list on every run.
            value = raw.cast(pl.Enum(list(dict.fromkeys(accepted))), strict=False).cast(pl.String)
            fine = value.is_not_null()
        case _:
            value = raw
            fine = pl.lit(True)
            if spec.max_length:
                fine = fine & (raw.str.len_chars() <= spec.max_length)
            if spec.pattern:
                fine = fine & raw.str.contains(spec.pattern)
    doubtful = (blank & pl.lit(spec.required)) | (~blank & ~fine.fill_null(False))
    return pl.when(blank).then(None).otherwise(value), doubtful


@dataclass(frozen=True)
class _FieldCheck:
    """One field's checks as expressions: the quick form, and the full form for doubtful fields."""

    name: str
    quick: pl.Expr  # typed value (`x__v`), right wherever `doubtful` is false
    doubtful: pl.Expr  # (`x__d`) true where the full check is needed
    typed: pl.Expr  # typed value (`x__v`) of the full check
    problem: pl.Expr  # rule broken (`x__p`), or null
    findings: tuple[pl.Expr, ...]  # finding structs (null where there is nothing to say)


@dataclass(frozen=True)
class _FieldPlan:
    """A record type's field checks as expressions: built once, run on every submission."""

    fields: tuple[_FieldCheck, ...]
    flagged: pl.Expr  # true on rows with any field finding


@functools.lru_cache(maxsize=64)
def _field_plan(rt_name: str, service_codes: tuple[str, ...]) -> _FieldPlan:
    """Building expressions costs more than running them on a month's few records, so they are kept."""
    rt = RECORD_TYPES[rt_name]
    fields: list[_FieldCheck] = []
    flags: list[pl.Expr] = []
    for spec in rt.fields:
        typed, problem, messages = _field_exprs(spec, rt, list(service_codes))
        quick, doubtful = _quick_exprs(spec, list(service_codes))
        structs: list[pl.Expr] = []
        rule = pl.col(_p(spec.name))
        message = pl.lit(None, pl.String)
        fix = pl.lit(None, pl.String)
        for name, (template, fix_text) in messages.items():
            if spec.identifying:
                # "3*** is not a real date" helps nobody: name the field instead of its masked value.
                template = template.replace("{}", f"The {spec.name.replace('_', ' ')}")
            message = pl.when(rule == name).then(pl.format(template, _shown(spec)) if "{}" in template else pl.lit(template)).otherwise(message)
            fix = pl.when(rule == name).then(pl.lit(fix_text)).otherwise(fix)
        flags.append(rule.is_not_null())
        structs.append(pl.when(rule.is_not_null()).then(_finding_struct(spec.name, _shown(spec), rule, message, fix)))
        if spec.type is FieldType.CODE and spec.code_set:
            # A code Excel stripped of its leading zeros, restored because only one code fits.
            restored = (pl.col(spec.name) != pl.col(_v(spec.name))) & pl.col(_v(spec.name)).is_not_null()
            flags.append(restored)
            structs.append(pl.when(restored).then(_finding_struct(
                spec.name, pl.col(spec.name), pl.lit("leading-zeros-restored"),
                pl.format("{} was read as {}: Excel had dropped its leading zeros.", pl.col(spec.name), pl.col(_v(spec.name))),
                pl.lit(f"Format the {spec.name} column as Text in Excel so codes keep their leading zeros."),
            )))
        fields.append(_FieldCheck(spec.name, quick.alias(_v(spec.name)), doubtful.alias(_d(spec.name)), typed.alias(_v(spec.name)),
                                  problem.alias(_p(spec.name)), tuple(structs)))
    return _FieldPlan(tuple(fields), pl.any_horizontal(flags))


def _finding_struct(field_name: str, value: pl.Expr, rule: pl.Expr, message: pl.Expr, fix: pl.Expr) -> pl.Expr:
    return pl.struct(
        pl.lit(field_name, pl.String).alias("field"), value.cast(pl.String).alias("value"), rule.cast(pl.String).alias("rule"),
        message.cast(pl.String).alias("message"), fix.cast(pl.String).alias("fix"),
    )


@dataclass(frozen=True)
class _Rule:
    """A check of each row on its own: a finding for every row where `condition` holds.

    Every rule's condition runs in the same query as the field checks, as a column of its own;
    findings are built only for the rules some row breaks, which in most months is none.
    """

    condition: pl.Expr  # null counts as not holding
    field: str
    rule: str
    message: pl.Expr | str
    fix: str
    value: pl.Expr | None = None  # what the finding shows; the field's text when None
    context: tuple[pl.Expr, ...] = ()  # columns over all rows that the message needs (windows)

    def findings(self, checked: pl.DataFrame, column: str) -> list[pl.LazyFrame]:
        rows = checked.lazy().with_columns(*self.context) if self.context else checked
        return _rule_rows(rows, pl.col(column), self.field, self.rule, self.message, self.fix, self.value)


def _rule_column(number: int) -> str:
    return f"__rule{number}"


def _check(frame: pl.DataFrame, rt: RecordType, service_codes: list[str], rules: list[_Rule]) -> pl.DataFrame:
    """The frame with typed values, field problems, FLAGGED and each rule's condition.

    The quick field checks run first, with everything else, in one query; only when some value
    is doubtful does a second query run the full checks of the doubtful fields, and the rules again.
    """
    plan = _field_plan(rt.name, tuple(service_codes))
    conditions = [plan.flagged.alias(FLAGGED), *[r.condition.fill_null(False).alias(_rule_column(i)) for i, r in enumerate(rules)]]
    checked = (
        frame.lazy()
        # The action column decides how the others are read, so it is parsed first.
        .with_columns(pl.col(ACTION).str.to_lowercase().alias(ACTION))
        .with_columns(*[f.quick for f in plan.fields], *[f.doubtful for f in plan.fields])
        # Nothing is wrong with a value that is not doubtful.
        .with_columns(*[pl.lit(None, pl.String).alias(_p(f.name)) for f in plan.fields])
        .with_columns(conditions)
        .collect(engine=ENGINE)
    )
    doubtful = [f for f in plan.fields if checked[_d(f.name)].any()]
    if not doubtful:
        return checked
    return (
        checked.lazy()
        .with_columns(*[f.typed for f in doubtful], *[f.problem for f in doubtful])
        .with_columns(conditions)
        .collect(engine=ENGINE)
    )


def _field_findings(checked: pl.DataFrame, rt: RecordType, service_codes: list[str]) -> list[pl.LazyFrame]:
    if not checked[FLAGGED].any():
        return []
    plan = _field_plan(rt.name, tuple(service_codes))
    # Only doubtful fields can have something to say, and only the few rows with a finding build finding structs.
    structs = [struct for f in plan.fields if checked[_d(f.name)].any() for struct in f.findings]
    return [
        checked.lazy().filter(pl.col(FLAGGED))
        .select(pl.col(FILE).alias("file"), pl.col(SHEET).alias("sheet"), pl.col(ROW).alias("row"), pl.concat_list(structs).alias("__f"))
        .explode("__f").drop_nulls("__f").unnest("__f")
        .select(*FINDING_SCHEMA)
    ]


def _broken(checked: pl.DataFrame, rules: list[_Rule], first: int) -> list[pl.LazyFrame]:
    """Findings of the rules (numbered from `first` in `_check`) that at least one row breaks."""
    found: list[pl.LazyFrame] = []
    for number, rule in enumerate(rules, start=first):
        if checked[_rule_column(number)].any():
            found += rule.findings(checked, _rule_column(number))
    return found


def _findings(rows: pl.DataFrame | pl.LazyFrame, field_name: str | None, value: pl.Expr, rule: pl.Expr, message: pl.Expr, fix: pl.Expr) -> pl.LazyFrame:
    return rows.lazy().select(
        pl.col(FILE).alias("file"),
        pl.col(SHEET).alias("sheet"),
        pl.col(ROW).alias("row"),
        pl.lit(field_name, pl.String).alias("field"),
        value.cast(pl.String).alias("value"),
        rule.cast(pl.String).alias("rule"),
        message.cast(pl.String).alias("message"),
        fix.cast(pl.String).alias("fix"),
    )


def _rule_rows(frame: pl.DataFrame | pl.LazyFrame, condition: pl.Expr, field_name: str, rule: str, message: pl.Expr | str, fix: str, value: pl.Expr | None = None) -> list[pl.LazyFrame]:
    """Findings of one rule for the rows where `condition` holds (null counts as not holding).

    Lazy, so all of a record type's findings are built in one Polars query.
    """
    rows = frame.lazy().filter(condition.fill_null(False))
    message_expr = pl.lit(message) if isinstance(message, str) else message
    return [_findings(rows, field_name, pl.col(field_name) if value is None else value, pl.lit(rule), message_expr, pl.lit(fix))]


# --- Record layer -----------------------------------------------------------------------------


@functools.lru_cache(maxsize=64)
def _record_rules(name: str, today: date, deidentified: bool = False) -> tuple[_Rule, ...]:
    """Checks within each record that need no other table: kept, as building them costs more than running them."""
    v = lambda f: pl.col(_v(f))  # noqa: E731 - reads as "the value of"
    upsert = pl.col(ACTION) != WITHDRAW
    rules: list[_Rule] = []
    for spec in RECORD_TYPES[name].fields:
        if spec.type is FieldType.DATE:
            limit = "born" if spec.name == "date_of_birth" else "dated"
            rules.append(_Rule(upsert & (v(spec.name) > today), spec.name, "future-date",
                               pl.format(f"{{}} is in the future; a record cannot be {limit} after it is sent.", pl.col(spec.name)),
                               f"Check {spec.name}: {DATE_FORMS}."))
    if name == "client":
        consent = v("identity_consent").fill_null(True)
        # A provider sends one form of identity: names and date of birth, or (set to send no
        # identity) the SLK-581 and birth month made on its own machine.
        form, other = (DEIDENTIFIED_FORM, IDENTIFIED_FORM) if deidentified else (IDENTIFIED_FORM, DEIDENTIFIED_FORM)
        for field_name in form:
            rules.append(_Rule(upsert & consent & (pl.col(field_name) == ""), field_name, "conditional-required",
                               f"{field_name} is required for a client who has not declined identification.",
                               (f"Make {field_name} with cldx deidentify or the upload page, or write n in identity_consent if the client declined to be identified."
                                if deidentified else f"Fill in {field_name}, or write n in identity_consent if the client declined to be identified."),
                               value=pl.lit("")))
        rules.append(_Rule(upsert & ~consent & pl.any_horizontal([pl.col(c) != "" for c in form]),
                           "identity_consent", "identity-declined",
                           "The client declined identification, so the identity sent is not stored.",
                           f"Leave {', '.join(form)} blank for clients who declined."))
        if deidentified:
            born = v("slk581").str.slice(5, 8).str.to_date("%d%m%Y", strict=False)
            rules.append(_Rule(upsert & consent & v("slk581").is_not_null() & v("birth_year_month").is_not_null()
                               & (born.is_null() | (born.dt.strftime("%Y-%m") != v("birth_year_month"))),
                               "slk581", "slk-mismatch",
                               pl.format("The date of birth in slk581 does not fall in birth_year_month {}.", pl.col("birth_year_month")),
                               "Make slk581 and birth_year_month again from the same date of birth with cldx deidentify or the upload page.",
                               value=_shown(next(f for f in RECORD_TYPES["client"].fields if f.name == "slk581"))))
        else:
            rules.append(_Rule(upsert & pl.any_horizontal([pl.col(c) != "" for c in other]), "slk581", "deidentified-form-ignored",
                               "Your organisation sends names, so slk581 and birth_year_month are worked out by cldx; the values sent are ignored.",
                               "Leave slk581 and birth_year_month blank.", value=pl.lit("")))
        rules.append(_Rule(upsert & v("notified_of_sharing_on").is_null() & (pl.col("notified_of_sharing_on") == ""),
                           "notified_of_sharing_on", "not-notified",
                           "No date is given for telling the client their data is shared with the ministry.",
                           "Record the date you notified the client, and send it next month.", value=pl.lit("")))
    elif name == "engagement":
        rules.append(_Rule(upsert & (v("end_date") < v("start_date")), "end_date", "date-order",
                           pl.format("end_date {} is before start_date {}.", pl.col("end_date"), pl.col("start_date")),
                           "Correct the end date (or the start date) so the engagement ends on or after it starts."))
        rules.append(_Rule(upsert & v("end_date").is_not_null() & (pl.col("end_reason") == ""), "end_reason", "conditional-required",
                           "end_reason is required when end_date is given.", "Give the reason the engagement ended.", value=pl.lit("")))
    elif name == "outcome":
        dimension_of = {c.code: c.parent for c in code_set("outcome_measure")}
        rules.append(_Rule(upsert & v("measure").is_not_null() & v("dimension").is_not_null()
                           & (v("measure").replace_strict(dimension_of, default=None) != v("dimension")),
                           "measure", "measure-mismatch", pl.format("Measure {} does not belong to dimension {}.", pl.col("measure"), pl.col("dimension")),
                           "Use a measure listed for the dimension, or correct the dimension."))
    return tuple(rules)


def _joined_findings(name: str, frame: pl.DataFrame, stored: Stored, accepted_clients: pl.DataFrame) -> list[pl.LazyFrame]:
    """Checks within each record that look a value up in another table (ages, instruments)."""
    if name == "engagement":
        return _age_findings(frame, stored, accepted_clients)
    if name == "assessment":
        return _assessment_findings(frame, stored)
    return []


def _age_findings(frame: pl.DataFrame, stored: Stored, accepted_clients: pl.DataFrame) -> list[pl.LazyFrame]:
    """Age at start outside the service's plausible range (more than a year out) is a warning."""
    births = pl.concat([
        accepted_clients.select("client_ref", "birth_year_month"),
        stored.clients.select("client_ref", "birth_year_month"),
    ]).filter(pl.col("birth_year_month").is_not_null()).unique("client_ref", keep="first")
    ranges = pl.DataFrame(
        [(code, lo, hi) for code, (lo, hi) in stored.service_lines.items()],
        schema={"service": pl.String, "min_age": pl.Int64, "max_age": pl.Int64}, orient="row",
    )
    joined = (
        frame.lazy().filter(pl.col(ACTION) != WITHDRAW)
        .join(births.lazy(), left_on=_v("client_ref"), right_on="client_ref", how="inner")
        .join(ranges.lazy(), left_on=_v("service_code"), right_on="service", how="inner")
        .with_columns(
            ((pl.col(_v("start_date")).dt.year() * 12 + pl.col(_v("start_date")).dt.month()
              - pl.col("birth_year_month").str.slice(0, 4).cast(pl.Int64) * 12 - pl.col("birth_year_month").str.slice(5, 2).cast(pl.Int64)) // 12
             ).alias("__age")
        )
    )
    implausible = (pl.col("__age") < pl.col("min_age") - 1) | (pl.col("__age") > pl.col("max_age") + 1)
    return _rule_rows(joined, implausible, "client_ref", "implausible-age",
                      pl.format("The client is {} at the start of this {} engagement, outside the ages the service serves ({} to {}).",
                                pl.col("__age"), pl.col(_v("service_code")), pl.col("min_age"), pl.col("max_age")),
                      "Check the client's date of birth and the service code.")


def _assessment_findings(frame: pl.DataFrame, stored: Stored) -> list[pl.LazyFrame]:
    instruments = load_instruments()
    domains = pl.DataFrame(
        [(i.code, d.code, d.min_score, d.max_score) for i in instruments.values() for d in i.domains.values()],
        schema={"__instrument": pl.String, "__domain": pl.String, "__min": pl.Float64, "__max": pl.Float64}, orient="row",
    )
    upsert = frame.lazy().filter((pl.col(ACTION) != WITHDRAW) & pl.col(_v("instrument")).is_not_null() & pl.col(_v("domain")).is_not_null())
    joined = upsert.join(domains.lazy(), left_on=[_v("instrument"), _v("domain")], right_on=["__instrument", "__domain"], how="left")
    found = _rule_rows(joined, pl.col("__min").is_null(), "domain", "domain-mismatch",
                       pl.format("{} is not a domain of instrument {}.", pl.col("domain"), pl.col("instrument")),
                       "Use one of the instrument's own domains (see the instruments table in the data standard).")
    found += _rule_rows(joined, (pl.col(_v("score")) < pl.col("__min")) | (pl.col(_v("score")) > pl.col("__max")), "score", "out-of-range",
                        pl.format("Score {} is outside {} {}'s range {} to {}.", pl.col("score"), pl.col("instrument"), pl.col("domain"), pl.col("__min"), pl.col("__max")),
                        "Check the score against the instrument's scoring guide.")
    # A post assessment cannot come before the pre assessment of the same engagement and domain.
    pre = pl.concat([
        upsert.filter(pl.col(_v("phase")) == "pre").select(
            pl.col(_v("engagement_ref")).alias("engagement_ref"), pl.col(_v("instrument")).alias("instrument"),
            pl.col(_v("domain")).alias("domain"), pl.col(_v("assessed_on")).alias("pre_on")),
        stored.pre_assessments.lazy().rename({"assessed_on": "pre_on"}),
    ]).unique(["engagement_ref", "instrument", "domain"], keep="first")
    post = upsert.filter(pl.col(_v("phase")) == "post").join(
        pre, left_on=[_v("engagement_ref"), _v("instrument"), _v("domain")], right_on=["engagement_ref", "instrument", "domain"], how="inner")
    found += _rule_rows(post, pl.col(_v("assessed_on")) < pl.col("pre_on"), "assessed_on", "date-order",
                        pl.format("The post assessment on {} is before the pre assessment on {}.", pl.col("assessed_on"), pl.col("pre_on").cast(pl.String)),
                        "Check the phase and the assessment dates.")
    return found


# --- Across records and against the store ------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _duplicate_rule(name: str) -> _Rule:
    rt = RECORD_TYPES[name]
    keys = [_v(k) for k in rt.key]
    complete = pl.all_horizontal([pl.col(k).is_not_null() for k in keys])
    what = " + ".join(rt.key)
    return _Rule(complete & ~pl.struct(keys).is_first_distinct(), rt.key[0], "duplicate-key",
                 pl.format(f"This {what} was already given in {{}} row {{}}.", pl.col("__first_file"), pl.col("__first")),
                 "Send each record once: delete this row or correct its key.",
                 # Where each key was first given: windows over every row, so worked out only when a key repeats.
                 context=(pl.col(ROW).first().over(keys).alias("__first"), pl.col(FILE).first().over(keys).alias("__first_file")))


def _reference_rules(rt: RecordType, known: dict[str, pl.Series]) -> list[_Rule]:
    rules = []
    for reference in rt.references:
        parent = RECORD_TYPES[reference.record_type]
        missing = (pl.col(ACTION) != WITHDRAW) & pl.col(_v(reference.field)).is_not_null() & ~pl.col(_v(reference.field)).is_in(known[reference.record_type].implode())
        rules.append(_Rule(missing, reference.field, "unknown-reference",
                           pl.format(f"{reference.field} {{}} is not {_a(parent.title.lower())} accepted in this submission or already stored.", pl.col(reference.field)),
                           f"Send the {parent.title.lower()} in {parent.file_name} (and fix any error it has), or correct {reference.field}."))
    return rules


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _reused_refs(frame: pl.DataFrame, stored: Stored) -> list[pl.LazyFrame]:
    """A client_ref that already belongs to someone else: both family name and birth date differ."""
    if stored.client_identity.height == 0:
        return []
    joined = frame.lazy().filter(pl.col(ACTION) != WITHDRAW).join(stored.client_identity.lazy(), left_on=_v("client_ref"), right_on="client_ref", how="inner")
    different = (
        pl.col("family_name_right").is_not_null() & pl.col(_v("date_of_birth")).is_not_null()
        & (pl.col(_v("family_name")).str.to_lowercase() != pl.col("family_name_right").str.to_lowercase())
        & (pl.col(_v("date_of_birth")) != pl.col("date_of_birth_right"))
    )
    return _rule_rows(joined, different, "client_ref", "ref-reused",
                      pl.format("client_ref {} already belongs to a different person (another name and date of birth).", pl.col("client_ref")),
                      "Give this client a client_ref of their own; never reuse a reference.")


# --- The whole submission ---------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _empty_result(name: str, service_codes: tuple[str, ...]) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The (accepted, rejected) frames of a record type with no rows, with their full schemas."""
    rt = RECORD_TYPES[name]
    empty = pl.DataFrame(schema={ROW: pl.Int64, **{c: pl.String for c in rt.columns}})
    lines = {code: (None, None) for code in service_codes}
    table = RawTable("empty.csv", None, rt, empty)
    result = validate([table], Stored.empty(lines), today=date(2000, 1, 1), skip_empty=False)
    return result.accepted[name], result.rejected[name]


def validate(tables: list[RawTable], stored: Stored, *, today: date, prior: pl.DataFrame | None = None, skip_empty: bool = True,
             deidentified: bool = False) -> Validated:
    """Validate every table of a submission; the caller stores `accepted` and quarantines `rejected`.

    `deidentified`: the provider is set to send no identity, so client rows carry `slk581` and
    `birth_year_month` instead of names and date of birth (the caller refuses names first).

    `prior` holds the findings made while reading the files; those naming a row (a ragged
    row, say) reject that row too, and all of them lead the submission's findings.
    """
    result = Validated()
    prior = prior if prior is not None else pl.DataFrame(schema=FINDING_SCHEMA)
    # Row numbers repeat across a workbook's sheets and a JSON body's lists: a row is known by
    # its file, sheet (null for a CSV) and number, and a finding rejects that row only.
    at = [FILE, SHEET, ROW]
    where = lambda findings: findings.select(pl.col("file").alias(FILE), pl.col("sheet").alias(SHEET), pl.col("row").alias(ROW))  # noqa: E731
    prior_errors = where(prior.filter(pl.col("rule").is_in(ERROR_RULES) & pl.col("row").is_not_null()))
    service_codes = sorted(stored.service_lines)
    by_type: dict[str, pl.DataFrame] = {}
    for table in tables:
        frame = table.frame.with_columns(pl.lit(table.file).alias(FILE), pl.lit(table.sheet, pl.String).alias(SHEET))
        by_type[table.record_type.name] = pl.concat([by_type[table.record_type.name], frame]) if table.record_type.name in by_type else frame

    known: dict[str, pl.Series] = {
        "client": stored.clients["client_ref"],
        "engagement": stored.engagements["engagement_ref"],
    }
    findings: list[pl.DataFrame] = []
    accepted_clients = pl.DataFrame(schema={"client_ref": pl.String, "birth_year_month": pl.String})
    for name in ORDER:
        if name not in by_type:
            continue
        rt = RECORD_TYPES[name]
        if skip_empty and by_type[name].height == 0:
            # A header-only file (a month with nothing of this kind): nothing to check.
            result.accepted[name], result.rejected[name] = _empty_result(name, tuple(service_codes))
            continue
        record_rules = list(_record_rules(name, today, deidentified))
        across_rules = [_duplicate_rule(name), *_reference_rules(rt, known)]
        # One chunk per column: Polars 2.1.0 can panic formatting messages from a filtered
        # string column in several chunks (as the CSV reader returns them).
        frame = _check(by_type[name].rechunk(), rt, service_codes, record_rules + across_rules)
        # In the order findings are listed for a row: fields, the record, then across records.
        found = _field_findings(frame, rt, service_codes)
        found += _broken(frame, record_rules, first=0)
        found += _joined_findings(name, frame, stored, accepted_clients)
        found += _broken(frame, across_rules, first=len(record_rules))
        if name == "client":
            found += _reused_refs(frame, stored)
        these = pl.concat(found).collect(engine=ENGINE) if found else pl.DataFrame(schema=FINDING_SCHEMA)
        if these.height == 0 and prior_errors.height == 0:
            # The usual month: nothing to say about any row, so every row is accepted as it is.
            good = frame.with_columns(pl.lit(False).alias(WARNED))
            rejected = frame.clear()
        else:
            errors = pl.concat([where(these.filter(pl.col("rule").is_in(ERROR_RULES))), prior_errors]).unique()
            warned = where(these.filter(~pl.col("rule").is_in(ERROR_RULES))).unique()
            good = frame.join(errors, on=at, how="anti", nulls_equal=True)
            good = good.join(warned.with_columns(pl.lit(True).alias(WARNED)), on=at, how="left", nulls_equal=True).with_columns(pl.col(WARNED).fill_null(False))
            rejected = frame.join(errors, on=at, how="semi", nulls_equal=True)
        result.rejected[name] = rejected.select(FILE, SHEET, ROW, *rt.columns)
        typed = good.lazy().select(FILE, SHEET, ROW, WARNED, pl.col(ACTION).replace("", "upsert"), *[pl.col(_v(f.name)).alias(f.name) for f in rt.fields if f.name != ACTION])
        if name == "client":
            consent = pl.col("identity_consent").fill_null(True)
            # The birth month comes from the date of birth, or as sent in the de-identified form;
            # the SLK sent is kept only until ingest keys it, and only in that form.
            born = pl.col("birth_year_month") if deidentified else pl.col("date_of_birth").dt.strftime("%Y-%m")
            typed = typed.with_columns(
                consent.alias("identity_consent"),
                # A client who declined identification is stored without it.
                *[pl.when(consent).then(born if c == "birth_year_month" else pl.col(c)).otherwise(None).alias(c)
                  for c in ("family_name", "given_names", "date_of_birth", "birth_year_month", "slk581")],
            )
            if not deidentified:
                typed = typed.with_columns(pl.lit(None, pl.String).alias("slk581"))
        elif name == "dependant" and not deidentified:
            typed = typed.with_columns(pl.col("date_of_birth").dt.strftime("%Y-%m").alias("birth_year_month"))
        typed = typed.collect(engine=ENGINE)
        sent = typed[ACTION] != WITHDRAW  # the records added or updated, not withdrawn
        if name == "client":
            accepted_clients = typed.select("client_ref", "birth_year_month").filter(sent)
        result.accepted[name] = typed
        if name in known:
            known[name] = pl.concat([known[name], typed[rt.key[0]].filter(sent)])
        findings.append(these)
    result.findings = pl.concat([prior, *findings]).sort(["file", "row"], maintain_order=True, nulls_last=False)
    return result
