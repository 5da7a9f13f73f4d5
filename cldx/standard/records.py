"""Data standard v1.1: the six record types a provider sends, defined once.

Version 1.1 adds the de-identified form: a provider set to send no identity sends `slk581` and
`birth_year_month` instead of names and date of birth (made on its own machine by
`cldx deidentify` or the upload page).

JSON Schemas, CSV and Excel templates and `docs/data-standard.md` are all generated from
these definitions, and validation reads them too, so a field changes in one place only.
"""

from __future__ import annotations

from .fields import CODE_PATTERN, REFERENCE_PATTERN, Field, FieldType, RecordType, Reference

STANDARD_NAME = "cldx client-level data standard"
STANDARD_VERSION = "1.1"
# The columns of each form of a client row: a provider sends one or the other, never both.
IDENTIFIED_FORM = ("family_name", "given_names", "date_of_birth")
DEIDENTIFIED_FORM = ("slk581", "birth_year_month")
SLK581_PATTERN = r"^(?:[A-Z2]{3}|999)(?:[A-Z2]{2}|99)[0-9]{8}[1239]$"
YEAR_MONTH_PATTERN = r"^[0-9]{4}-(?:0[1-9]|1[0-2])$"

T = FieldType

ACTION = Field(
    "action",
    T.CODE,
    "Leave blank to add or update the record. Write `withdraw` to withdraw the record with this key "
    "(for example one sent by mistake); its history is kept.",
    code_set="action",
    example="",
)


def _ref(name: str, what: str, required: bool = True) -> Field:
    return Field(
        name,
        T.REFERENCE,
        what,
        required=required,
        max_length=40,
        pattern=REFERENCE_PATTERN,
        example={"client_ref": "C-000123", "dependant_ref": "D-000045", "engagement_ref": "E-000310"}.get(name, ""),
    )


CLIENT_REF = _ref(
    "client_ref",
    "Your organisation's own reference for the client, the same in every file and every month. "
    "Never use a name, NHI or IRD number.",
)
ENGAGEMENT_REF = _ref(
    "engagement_ref",
    "Your own reference for this engagement (one client's episode of one service), the same in every month.",
)


def _name(name: str, what: str, required_when: str = "required unless identity_consent is n") -> Field:
    return Field(
        name,
        T.TEXT,
        what + " Kept in the identity store, apart from the analytic tables; ministry analysts never see it.",
        max_length=100,
        identifying=True,
        required_when=required_when,
        example={"family_name": "Te Whāiti-O'Brien", "given_names": "Mere Anahera"}.get(name, ""),
    )


def _date(
    name: str, what: str, required: bool = False, identifying: bool = False, required_when: str = "", example: str = "2017-03-09"
) -> Field:
    return Field(name, T.DATE, what, required=required, identifying=identifying, required_when=required_when, example=example)


CLIENT = RecordType(
    name="client",
    title="Client",
    description="A person who receives the service: their demographics and whether they were told their data is shared.",
    file_name="clients.csv",
    key=("client_ref",),
    fields=(
        ACTION,
        CLIENT_REF,
        _name("family_name", "The client's family name (surname), with macrons, hyphens and apostrophes as the client writes it."),
        _name("given_names", "The client's given names, as the client writes them."),
        _date(
            "date_of_birth",
            "The client's date of birth. Only birth year and month reach the analytic tables.",
            identifying=True,
            example="1990-05-17",
            required_when="required unless identity_consent is n",
        ),
        Field(
            "slk581",
            T.TEXT,
            "Only from an organisation set to send no identity: the client's SLK-581 statistical linkage key, made on your "
            "own computer by `cldx deidentify` or the upload page from the name, date of birth and gender (never typed in). "
            "cldx turns it into a keyed pseudonym at once and never stores it. Leave blank if your organisation sends names.",
            max_length=14,
            pattern=SLK581_PATTERN,
            hint="14 characters as cldx deidentify writes them: 5 letters (or 2, 999, 99), date of birth ddmmyyyy, sex digit",
            identifying=True,
            required_when="required from an organisation set to send no identity, unless identity_consent is n",
            example="",
        ),
        Field(
            "birth_year_month",
            T.TEXT,
            "Only from an organisation set to send no identity: the client's year and month of birth, yyyy-mm (for example "
            "1990-05), written with slk581. Leave blank if your organisation sends names: cldx takes it from date_of_birth.",
            max_length=7,
            pattern=YEAR_MONTH_PATTERN,
            hint="yyyy-mm (1990-05)",
            required_when="required from an organisation set to send no identity, unless identity_consent is n",
            example="",
        ),
        Field(
            "gender",
            T.CODE,
            "The client's gender identity as the client states it (Stats NZ SCGI). Use 94 Don't know, 95 Refused or 99 Not stated rather than guessing.",
            required=True,
            code_set="gender",
            levels=(1, 2),
            example="21",
        ),
        Field(
            "primary_ethnicity",
            T.CODE,
            "The ethnicity the client identifies with most (ETHNIC05), at level 2 or finer (for example 21 Māori, 31 Samoan, 11 NZ European).",
            required=True,
            code_set="ethnicity",
            levels=(2, 3, 4),
            example="21",
        ),
        *(
            Field(
                f"iwi_{n}",
                T.CODE,
                f"{'The' if n == 1 else 'A further'} iwi the client affiliates with (four-digit Stats NZ iwi code). "
                "Up to three iwi are carried in iwi_1, iwi_2 and iwi_3; leave the rest blank. Only for clients of Māori descent.",
                code_set="iwi",
                levels=(2,),
                example="0402" if n == 1 else "",
            )
            for n in (1, 2, 3)
        ),
        Field(
            "area",
            T.CODE,
            "Where the client usually lives: the six-digit Stats NZ 2018 statistical area 2 (SA2) code, or the three-digit territorial authority code when the SA2 is not known.",
            required=True,
            code_set="area",
            levels=(1, 2),
            example="100100",
        ),
        _date(
            "notified_of_sharing_on",
            "The date you told the client that the data you collect is shared with the ministry for evaluation. Blank is accepted with a warning.",
        ),
        Field(
            "identity_consent",
            T.YES_NO,
            "n when the client declines to be identified: leave the name and date-of-birth columns blank and the client is linked only by your client_ref. Blank means y.",
            code_set="yes_no",
            example="y",
        ),
    ),
)

DEPENDANT = RecordType(
    name="dependant",
    title="Dependant",
    description="A child or other dependant in the client's care, where the service works with them too.",
    file_name="dependants.csv",
    key=("dependant_ref",),
    fields=(
        ACTION,
        _ref("dependant_ref", "Your own reference for the dependant, the same in every month."),
        CLIENT_REF,
        _name("family_name", "The dependant's family name.", "required unless the client's identity_consent is n"),
        _name("given_names", "The dependant's given names.", "required unless the client's identity_consent is n"),
        _date(
            "date_of_birth",
            "The dependant's date of birth (for an unborn child leave blank until birth).",
            identifying=True,
            example="2016-11-02",
        ),
        Field(
            "birth_year_month",
            T.TEXT,
            "Only from an organisation set to send no identity: the dependant's year and month of birth, yyyy-mm, "
            "instead of the names and date of birth. Leave blank if your organisation sends names.",
            max_length=7,
            pattern=YEAR_MONTH_PATTERN,
            hint="yyyy-mm (1990-05)",
            example="",
        ),
        Field(
            "relationship",
            T.CODE,
            "The dependant's relationship to the client.",
            required=True,
            code_set="relationship",
            example="child",
        ),
    ),
    references=(Reference("client_ref", "client"),),
)

ENGAGEMENT = RecordType(
    name="engagement",
    title="Engagement",
    description="One client's episode of one service: from referral accepted (start) to closure (end).",
    file_name="engagements.csv",
    key=("engagement_ref",),
    fields=(
        ACTION,
        ENGAGEMENT_REF,
        CLIENT_REF,
        Field(
            "service_code",
            T.CODE,
            "The service line of your contract that this engagement is delivered under (for example FS for Family Start).",
            required=True,
            code_set=None,  # service lines are stored in the registry, not fixed in the standard
            max_length=20,
            pattern=CODE_PATTERN,
            example="FS",
        ),
        _date("start_date", "The date the client started the service.", required=True),
        _date("end_date", "The date the engagement ended; blank while it is open. Must not be before start_date.", example="2017-11-30"),
        Field(
            "end_reason",
            T.CODE,
            "Why the engagement ended.",
            code_set="end_reason",
            required_when="required when end_date is given",
            example="completed",
        ),
    ),
    references=(Reference("client_ref", "client"),),
)

ATTENDANCE = RecordType(
    name="attendance",
    title="Attendance",
    description="One planned session of an engagement and whether the client attended.",
    file_name="attendance.csv",
    key=("engagement_ref", "session_date"),
    fields=(
        ACTION,
        ENGAGEMENT_REF,
        _date("session_date", "The date of the planned session.", required=True),
        Field("attended", T.YES_NO, "y when the client attended the session, n when not.", required=True, code_set="yes_no", example="y"),
        Field(
            "duration_minutes",
            T.INTEGER,
            "How long the session lasted, in minutes (blank when not attended).",
            min_value=0,
            max_value=1440,
            example="60",
        ),
    ),
    references=(Reference("engagement_ref", "engagement"),),
)

ASSESSMENT = RecordType(
    name="assessment",
    title="Assessment",
    description="A score on one domain of an assessment instrument, before (pre) or after (post) the service.",
    file_name="assessments.csv",
    key=("engagement_ref", "phase", "instrument", "domain"),
    fields=(
        ACTION,
        ENGAGEMENT_REF,
        Field("phase", T.CODE, "pre for the assessment at the start of the service, post for the one at the end.", required=True, code_set="phase", example="pre"),
        Field("instrument", T.CODE, "The assessment instrument used.", required=True, code_set="instrument", example="FSTAR"),
        Field(
            "domain",
            T.CODE,
            "The instrument's domain this score is for; each instrument has its own domains (see the instruments table).",
            required=True,
            code_set="instrument_domain",
            example="keeping_safe",
        ),
        Field(
            "score",
            T.DECIMAL,
            "The score, within the domain's published range.",
            required=True,
            example="6",
        ),
        _date("assessed_on", "The date of the assessment.", required=True),
    ),
    references=(Reference("engagement_ref", "engagement"),),
)

OUTCOME = RecordType(
    name="outcome",
    title="Outcome",
    description="A results-based-accountability result: did the client's knowledge, attitude, skills, behaviour or circumstances change.",
    file_name="outcomes.csv",
    key=("engagement_ref", "dimension", "measure"),
    fields=(
        ACTION,
        ENGAGEMENT_REF,
        Field("dimension", T.CODE, "Which kind of change the measure is about.", required=True, code_set="outcome_dimension", example="behaviour"),
        Field(
            "measure",
            T.CODE,
            "The measure, one of those listed for the dimension.",
            required=True,
            code_set="outcome_measure",
            example="school_attendance",
        ),
        Field("baseline", T.DECIMAL, "The measure's value at the start (optional for yes/no measures).", example="62"),
        Field("result", T.DECIMAL, "The measure's value at the end (optional for yes/no measures).", example="81"),
        Field("better_off", T.YES_NO, "y when the client is better off on this measure, n when not.", required=True, code_set="yes_no", example="y"),
        _date("measured_on", "The date the result was measured.", required=True),
    ),
    references=(Reference("engagement_ref", "engagement"),),
)

RECORD_TYPES: dict[str, RecordType] = {
    rt.name: rt for rt in (CLIENT, DEPENDANT, ENGAGEMENT, ATTENDANCE, ASSESSMENT, OUTCOME)
}


def record_type_for_file(file_name: str) -> RecordType | None:
    """The record type a file holds, from its name (`clients.csv`, `Clients.xlsx` sheet names too)."""
    stem = file_name.rsplit("/", 1)[-1].rsplit(".", 1)[0].strip().lower()
    for rt in RECORD_TYPES.values():
        if stem in (rt.sheet_name, rt.name):
            return rt
    return None
