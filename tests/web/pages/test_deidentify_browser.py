"""De-identification in the browser, in real headless Chromium, against the Python reference.

`static/slk581.js` and `static/deidentify.js` must give exactly what `cldx/identity/slk.py` and
`cldx/identity/deidentify.py` give: the SLK of every shared vector, the same string rules for
every code point, Python's csv reading and writing on random text, and byte-identical files for
generated and hand-made CSV. Then the upload page: for a provider that sends no identity the
request the browser sends holds exactly what `cldx deidentify` writes and no name or date of
birth (the server's answer is stubbed: what the backend makes of the files is not this page's
business), an Excel workbook is refused, an identified provider's files go up untouched, and
the page explains itself without JavaScript.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import random
import re
import sys
import unicodedata
from datetime import date
from email.parser import BytesParser
from email.policy import HTTP
from importlib import resources
from pathlib import Path

import pytest
from playwright.sync_api import Page, Request, Route, expect
from sqlalchemy import Engine
from typer.testing import CliRunner

from cldx.access.roles import PROVIDER_SUBMITTER
from cldx.cli.main import app as cli
from cldx.generator.generate import generate
from cldx.identity.deidentify import UnreadableCsv, REMOVED, decode, deidentify_csv, header_key
from cldx.identity.slk import fold, slk581
from cldx.store.db import write_transaction
from cldx.store.models import Provider

pytestmark = pytest.mark.browser

VECTORS = json.loads(resources.files("cldx.identity").joinpath("slk581_vectors.json").read_text(encoding="utf-8"))["vectors"]
UPLOAD_API = re.compile(r"/api/v1/submissions$")
DEIDENTIFIED_CODE = "P0002"
DEIDENTIFIED_NOTE = "Names and dates of birth were removed on this computer; only the SLK-581 and birth month are sent."


def python_quotes_a_lone_cr() -> bool:
    """CPython quotes a field holding a lone \\r only since 3.11.9 / 3.12.3 (gh-67044); the JS
    always does, so files with one can only agree on a Python that has the fix."""
    out = io.StringIO()
    csv.writer(out, lineterminator="\n").writerow(["a\rb"])
    return out.getvalue().startswith('"')


NEEDS_CR_FIX = pytest.mark.skipif(not python_quotes_a_lone_cr(), reason=f"Python {sys.version.split()[0]} leaves a lone \\r unquoted (fixed in 3.11.9)")


# --- Files ----------------------------------------------------------------------------------

HAND_MADE = (
    "\ufeffclient_ref,Family Name,given_names,DATE_OF_BIRTH, Gender ,identity_consent,notes\r\n"
    'C001,Pōkai,Mere,17/05/1990,21,y,"says ""kia ora"", then leaves"\r\n'
    'C002,Te Whāiti-O\'Brien,Ātaahua,1985-01-02,21,Y,"two\r\nlines"\r\n'
    'C003,"Smith, Jr",Jane,2000-12-19,2,n,declined: no key\r\n'
    "C004,Ngata,Aroha,31/02/2017,2,y,impossible date\r\n"
    "\r\n"
    ",,,  ,,,\r\n"
    "C005,Nguyễn,Anh,1995-3-1,,y,\r\n"
    "C006,O,Li,  2001-07-04 ,11,y,spaces round the date\r\n"
    "C007,Müller,Zoë,2010-02-28,99\r\n"
    "C008,van der Berg,Jean-Luc,1968-08-08,1,y,extra,cells,here\r\n"
    "C009,Hēnare,Wiremu,٢٠٠٠-١٢-١٩,1,y,Arabic-Indic digits\r\n"
    "C010,Brown,Sam,,1,y,blank date\r\n"
    'C011,"Lee","Kim",2004-02-29,3,y,"quoted ""end"""'
).encode("utf-8")

WINDOWS_1252 = (
    "client_ref,family_name,given_names,date_of_birth,gender\r\nC001,Müller,Zoë,28/02/2010,2\r\nC002,O’Brien,Seán,1/1/1980,1\r\n".encode("cp1252")
    + b"C\x81003,Xy,Ann,2000-01-01,2\r\n"  # 0x81 is undefined in Windows-1252: U+FFFD either way
)

# (id, bytes) of small files at the edges of the format.
EDGE_FILES = [
    ("empty", b""),
    ("only-a-bom", b"\xef\xbb\xbf"),
    ("header-only", b"family_name,given_names,date_of_birth,gender\n"),
    ("no-identity-columns", b'engagement_ref,client_ref,note\nE1,C1,"a, b"\nE2,C2,"say ""hi"""\n'),
    ("one-kept-column-short-row", b"x,family_name\n,Smith\nvalue,Jones\n"),
    ("nothing-kept", b"family_name,given_names\nSmith,Jane\n"),
    ("unterminated-quote", b'client_ref,date_of_birth,family_name\nC1,"2000-01-01'),
    ("text-after-closing-quote", b'client_ref,date_of_birth,family_name\n"C"1,2000-01-01,"Sm"ith\n'),
    ("old-mac-line-ends", b"client_ref,date_of_birth,family_name\rC1,2000-01-01,Smith\rC2,1/2/1999,Ng\r"),
    ("duplicate-columns", b"gender,Gender,date_of_birth,family_name,family_name\n1,2,2000-01-01,Ab,Cd\n"),
    ("year-zero-and-leap-days", b"date_of_birth\n0000-01-01\n1900-02-29\n2000-02-29\n9999-12-31\n1/13/2000\n"),
    ("unicode-spaces", "\u00a0date of\u2003birth\u3000,gender\n\u20282000-01-01\x85,\x1c1\n".encode()),
    ("bom-is-not-space", "\ufeff\ufeffdate_of_birth,gender\n2000-01-01,\ufeff1\n".encode()),
    ("sex-digit-from-first-character", b"date_of_birth,gender,family_name\n2000-01-01, 2x ,A\n2000-01-01,7,B\n2000-01-01,-1,C\n"),
]
CR_FILES = [("lone-cr-in-quoted-field", b'client_ref,date_of_birth,note\nC1,2000-01-01,"a\rb"\n')]


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    """Each generated record type as one file: every provider's rows under one header."""
    out = tmp_path_factory.mktemp("generated")
    generate(clients=300, seed=581, fault_rate=0, out=out)
    files: dict[str, bytes] = {}
    for name in ("clients.csv", "dependants.csv", "engagements.csv"):
        header, rows = b"", []
        for path in sorted(out.glob(f"P*/{name}")):
            lines = path.read_bytes().splitlines(keepends=True)
            header = lines[0]
            rows += lines[1:]
        files[name] = header + b"".join(rows)
    assert files["clients.csv"].count(b"\n") > 300
    return files


# --- Helpers --------------------------------------------------------------------------------

DEIDENTIFY_IN_PAGE = """base64 => {
    const binary = atob(base64);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i++) bytes[i] = binary.charCodeAt(i);
    let result;
    try {
        result = window.cldxDeidentify.deidentifyBytes(bytes);
    } catch (error) {
        return { error: error.message };
    }
    let out = "";
    for (let i = 0; i < result.bytes.length; i += 0x8000) out += String.fromCharCode(...result.bytes.subarray(i, i + 0x8000));
    return { bytes: btoa(out), rows: result.rows, problems: result.problems };
}"""


def open_upload_page(page: Page) -> None:
    page.goto("/submissions/new")
    page.wait_for_function("window.cldxSlk581 && window.cldxDeidentify")


def deidentify_in_page(page: Page, data: bytes) -> dict:
    result = page.evaluate(DEIDENTIFY_IN_PAGE, base64.b64encode(data).decode("ascii"))
    if "bytes" in result:
        result["bytes"] = base64.b64decode(result["bytes"])
    return result


def assert_same_as_python(page: Page, data: bytes) -> None:
    expected = deidentify_csv(data)
    got = deidentify_in_page(page, data)
    assert "error" not in got, got.get("error")
    assert got["bytes"].decode("utf-8") == expected.text  # the readable diff when they differ
    assert got["bytes"] == expected.text.encode("utf-8")
    assert (got["rows"], got["problems"]) == (expected.rows, expected.problems)


def uploaded_files(request: Request) -> dict[str, bytes]:
    """The files of a multipart/form-data request, by file name."""
    body = request.post_data_buffer
    assert body, "the upload request has no body"
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + body)
    return {part.get_filename(): part.get_payload(decode=True) for part in message.iter_parts() if part.get_filename()}


def cli_deidentify(folder: Path, files: list[tuple[str, bytes]]) -> dict[str, bytes]:
    """What `cldx deidentify FILE... --out DIR` writes for the files, by name."""
    (folder / "in").mkdir()
    for name, data in files:
        (folder / "in" / name).write_bytes(data)
    out = folder / "out"
    result = CliRunner().invoke(cli, ["deidentify", *(str(folder / "in" / name) for name, _ in files), "--out", str(out)])
    assert result.exit_code in (0, 1), result.output  # 1: some rows could not be keyed
    return {name: (out / name).read_bytes() for name, _ in files}


def identifying_values(files: list[tuple[str, bytes]]) -> set[str]:
    """The names and dates of birth in files, less any a kept column holds too (a date of birth
    can equal a start date): what must appear nowhere in the upload."""
    secret: set[str] = set()
    kept: set[str] = set()
    for _, data in files:
        rows = list(csv.reader(io.StringIO(decode(data), newline="")))
        removed = {i for i, key in enumerate(header_key(h) for h in rows[0]) if key in REMOVED}
        for row in rows[1:]:
            for i, cell in enumerate(row):
                (secret if i in removed else kept).add(cell.strip())
    return {value for value in secret - kept if len(value) >= 3}


@pytest.fixture
def providers(web_engine: Engine, provider) -> tuple[str, str]:
    """P0001 sends identity (the conftest's provider); P0002 sends none."""
    with write_transaction(web_engine) as session:
        session.add(Provider(code=DEIDENTIFIED_CODE, name="Kaitiaki Whānau Services", region_code="09", sends_identity=False))
    return provider.code, DEIDENTIFIED_CODE


@pytest.fixture(autouse=True)
def signed_in(page: Page, provider_user, sign_in_browser) -> None:
    """The seeded provider's submitter (P0001, which sends identity) unless a test signs in as P0002's."""
    sign_in_browser(page, provider_user)


@pytest.fixture
def deidentified_user(providers: tuple[str, str], make_user):
    """A submitter of the provider that sends no identity."""
    return make_user("kaitiaki.submitter", (PROVIDER_SUBMITTER, providers[1]))


def hold_uploads(page: Page) -> list[Request]:
    """Keep every upload request from the server: record it and answer as a refusing server would."""
    held: list[Request] = []

    def hold(route: Route) -> None:
        if route.request.method != "POST":
            route.continue_()
            return
        held.append(route.request)
        route.fulfill(status=200, content_type="application/json", body=json.dumps({"ok": False, "error": "Held by the test.", "errors": []}))

    page.route(UPLOAD_API, hold)
    return held


def choose(page: Page, provider_code: str, files: list[tuple[str, bytes]]) -> None:
    page.get_by_label("Provider").select_option(provider_code)
    page.get_by_label("Month the records are for").fill("2017-08")
    page.get_by_label("Files", exact=True).set_input_files([{"name": n, "mimeType": "text/csv", "buffer": b} for n, b in files])


def send(page: Page, held: list[Request]) -> Request:
    page.get_by_role("button", name="Send files").click()
    expect(page.locator("#form-errors")).to_contain_text("Held by the test.")
    assert len(held) == 1
    return held[0]


# --- SLK-581 and the string rules -------------------------------------------------------------


def test_slk581_in_chromium_matches_every_shared_vector(page: Page, page_problems: list[str]) -> None:
    open_upload_page(page)
    got = page.evaluate(
        """vectors => vectors.map(v => {
            const [year, month, day] = v.date_of_birth.split("-").map(Number);
            return window.cldxSlk581.slk581(v.family_name, v.given_names, { year, month, day }, v.gender);
        })""",
        VECTORS,
    )
    assert len(got) == len(VECTORS) >= 10
    for vector, slk in zip(VECTORS, got, strict=True):
        python = slk581(vector["family_name"], vector["given_names"], date.fromisoformat(vector["date_of_birth"]), vector["gender"])
        assert slk == vector["slk"] == python, vector["note"]
    assert page_problems == []


def test_string_rules_agree_with_python_on_every_code_point(page: Page, page_problems: list[str]) -> None:
    """Folding (NFKD, marks dropped, A-Z kept), Python's whitespace and its decimal digits, for
    every character Python's Unicode database knows (Chromium's may be newer)."""
    open_upload_page(page)
    js = page.evaluate(
        """() => {
            const folds = [], spaces = [], digits = [];
            for (let cp = 0; cp <= 0x10ffff; cp++) {
                if (cp >= 0xd800 && cp <= 0xdfff) continue;
                const ch = String.fromCodePoint(cp);
                const folded = window.cldxSlk581.fold(ch);
                if (folded) folds.push([cp, folded]);
                if (window.cldxSlk581.strip("x" + ch) === "x") spaces.push(cp);
                const born = window.cldxDeidentify.parseBirthDate("2000-01-0" + ch);
                if (born) digits.push([cp, born.day]);
            }
            return { folds, spaces, digits };
        }"""
    )
    known = {cp for cp in range(sys.maxunicode + 1) if not 0xD800 <= cp <= 0xDFFF and unicodedata.category(chr(cp)) != "Cn"}
    js_folds = {cp: folded for cp, folded in js["folds"] if cp in known}
    python_folds = {cp: fold(chr(cp)) for cp in known if fold(chr(cp))}
    assert js_folds == python_folds
    assert len(python_folds) > 1000  # A-Z, a-z, accented, fullwidth, mathematical letters...
    assert set(js["spaces"]) == {cp for cp in known if chr(cp).isspace()}
    js_digits = {cp: day for cp, day in js["digits"] if cp in known}
    python_digits = {cp: unicodedata.decimal(chr(cp)) for cp in known if re.fullmatch(r"\d", chr(cp))}
    assert js_digits == {cp: value for cp, value in python_digits.items() if value > 0}
    assert page_problems == []


# --- CSV reading and writing, and whole files --------------------------------------------------


def random_texts(count: int, seed: int) -> list[str]:
    pieces = ["a", "bc", "ā", "𝒜", " ", ",", ",", '"', '"', "\r", "\n", "\n", "\r\n", "\r\n", "\x00"]
    rng = random.Random(seed)
    return ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))) for _ in range(count)]


def test_csv_reading_and_writing_agree_with_python_on_random_text(page: Page, page_problems: list[str]) -> None:
    open_upload_page(page)
    texts = random_texts(3000, seed=4180)
    got = page.evaluate(
        """texts => texts.map(t => {
            const rows = window.cldxDeidentify.readCsv(t);
            return [rows, window.cldxDeidentify.writeCsv(rows)];
        })""",
        texts,
    )
    cr_fix = python_quotes_a_lone_cr()
    compared_writes = 0
    for text, (rows, written) in zip(texts, got, strict=True):
        python_rows = list(csv.reader(io.StringIO(text, newline="")))
        assert rows == python_rows, repr(text)
        if not cr_fix and any("\r" in field and not re.search(r'[,"\n]', field) for row in rows for field in row):
            continue  # this Python writes a lone \r unquoted (see python_quotes_a_lone_cr)
        out = io.StringIO()
        csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL).writerows(python_rows)
        assert written == out.getvalue(), repr(text)
        compared_writes += 1
    assert compared_writes > 2000
    assert page_problems == []


def test_random_client_files_agree_with_python(page: Page, page_problems: list[str]) -> None:
    """Whole files: random bodies under a header with every column de-identification reads."""
    open_upload_page(page)
    header = "client_ref,family_name,given_names,date_of_birth,gender,identity_consent\n"
    rng = random.Random(581)
    cells = ["Smith", "Pōkai", "Ng", "", " ", "2000-01-01", "31/12/1999", "29/02/2001", "1", "21", "n", "N ", "y", '"q,"', '"a""b"']
    bodies = random_texts(300, seed=7) + [
        "\n".join(",".join(rng.choice(cells) for _ in range(rng.randint(0, 8))) for _ in range(rng.randint(1, 6))) for _ in range(300)
    ]
    for body in bodies:
        assert_same_as_python(page, (header + body).encode("utf-8"))
    assert page_problems == []


@pytest.mark.parametrize("name", ["clients.csv", "dependants.csv", "engagements.csv"])
def test_generated_files_agree_with_python(page: Page, page_problems: list[str], generated: dict[str, bytes], name: str) -> None:
    open_upload_page(page)
    assert_same_as_python(page, generated[name])
    assert page_problems == []


@pytest.mark.parametrize(
    "data",
    [HAND_MADE, HAND_MADE.replace(b"\r\n", b"\n").removeprefix(b"\xef\xbb\xbf"), WINDOWS_1252]
    + [data for _, data in EDGE_FILES]
    + [data for _, data in CR_FILES],
    ids=["hand-made", "hand-made-lf-no-bom", "windows-1252"] + [name for name, _ in EDGE_FILES] + [name for name, _ in CR_FILES],
)
def test_hand_made_files_agree_with_python(page: Page, page_problems: list[str], data: bytes) -> None:
    open_upload_page(page)
    assert_same_as_python(page, data)
    assert page_problems == []


def test_a_field_too_long_for_python_is_refused_too(page: Page, page_problems: list[str]) -> None:
    data = b"client_ref,date_of_birth\n" + b"C" * 131073 + b",2000-01-01\n"
    with pytest.raises(UnreadableCsv, match="field larger than field limit"):
        deidentify_csv(data)
    open_upload_page(page)
    assert "field larger than field limit" in deidentify_in_page(page, data)["error"]
    assert page_problems == []


# --- The upload page --------------------------------------------------------------------------


def test_upload_for_a_provider_without_identity_sends_what_the_cli_writes(
    page: Page, page_problems: list[str], providers: tuple[str, str], generated: dict[str, bytes], tmp_path: Path,
    deidentified_user, sign_in_browser,
) -> None:
    _, deidentified = providers
    sign_in_browser(page, deidentified_user)
    files = [
        ("clients.csv", generated["clients.csv"]),
        ("hand-made.csv", HAND_MADE),
        ("excel-plain.csv", WINDOWS_1252),
        ("engagements.csv", generated["engagements.csv"]),
    ]
    held = hold_uploads(page)
    open_upload_page(page)
    # The user's one provider is chosen already, so the page says at once what it will do.
    expect(page.locator("#deidentify-hint")).to_be_visible()
    choose(page, deidentified, files)

    status = page.get_by_role("status").filter(has_text=DEIDENTIFIED_NOTE)
    expect(status).to_be_visible()
    expect(page.locator("#deidentify-hint")).to_be_visible()
    hand_made = deidentify_csv(HAND_MADE)
    expect(status).to_contain_text(f"hand-made.csv: {hand_made.rows} rows; removed Family Name, given_names, DATE_OF_BIRTH; added slk581 and birth_year_month.")
    assert hand_made.problems[0].startswith("row 5: ")
    expect(status).to_contain_text("row 5: date_of_birth is blank or not a date")
    expect(status).to_contain_text("engagements.csv")
    # The form's own file list now holds the de-identified files, under the same names.
    in_input = page.locator("#files").evaluate("input => Array.from(input.files, f => [f.name, f.type, f.size])")
    assert in_input == [[name, "text/csv", len(deidentify_csv(data).text.encode())] for name, data in files]

    request = send(page, held)
    sent = uploaded_files(request)
    assert list(sent) == [name for name, _ in files]
    written = cli_deidentify(tmp_path, files)
    for name, _ in files:
        assert sent[name] == written[name], name
    body = request.post_data_buffer
    secrets = identifying_values(files)
    assert len(secrets) > 500
    leaked = [value for value in secrets if value.encode("utf-8") in body]
    assert leaked == [], "names or dates of birth were sent"
    assert b"Pokai" not in body and "Pōkai".encode() not in body and b"M\xfcller" not in body
    assert page_problems == []


def test_an_excel_workbook_is_refused_for_a_provider_without_identity(
    page: Page, page_problems: list[str], providers: tuple[str, str], fixed_upload, deidentified_user, sign_in_browser
) -> None:
    _, deidentified = providers
    sign_in_browser(page, deidentified_user)
    held = hold_uploads(page)
    open_upload_page(page)
    clients = dict(fixed_upload.files)["clients.csv"]
    choose(page, deidentified, [("clients.csv", clients), ("Whole month.xlsx", b"PK\x03\x04 not really a workbook")])

    errors = page.locator("#form-errors")
    expect(errors).to_be_visible()
    expect(errors).to_contain_text("Whole month.xlsx is an Excel workbook")
    expect(errors).to_contain_text("Save each sheet as CSV UTF-8")
    assert page.locator("#files").evaluate("input => Array.from(input.files, f => f.name)") == ["clients.csv"]
    expect(page.get_by_role("status").filter(has_text=DEIDENTIFIED_NOTE)).to_be_visible()

    sent = uploaded_files(send(page, held))
    assert sent == {"clients.csv": deidentify_csv(clients).text.encode("utf-8")}
    assert page_problems == []


def test_an_identified_provider_sends_the_files_as_chosen(
    page: Page, page_problems: list[str], providers: tuple[str, str], faulty_upload
) -> None:
    """Choosing the de-identified provider and then the identified one puts the chosen files back.

    A user sends for one provider only, so the page lists one; upload.js still handles a list of
    several, and the test adds the second option itself to exercise the switch.
    """
    identified, deidentified = providers
    held = hold_uploads(page)
    open_upload_page(page)
    page.locator("#provider").evaluate(
        "(select, code) => { const option = new Option(code, code); option.dataset.deidentify = ''; select.add(option); }", deidentified)
    choose(page, deidentified, list(faulty_upload.files))
    expect(page.get_by_role("status").filter(has_text=DEIDENTIFIED_NOTE)).to_be_visible()

    page.get_by_label("Provider").select_option(identified)
    expect(page.locator("#deidentify-status")).to_be_hidden()
    expect(page.locator("#deidentify-hint")).to_be_hidden()
    assert page.locator("#files").get_attribute("accept") == ".csv,.xlsx"
    sent = uploaded_files(send(page, held))
    assert sent == dict(faulty_upload.files)
    assert page_problems == []


def test_without_javascript_the_page_says_what_a_provider_without_identity_needs(
    browser, live_server: str, providers, deidentified_user, sign_in_browser
) -> None:
    context = browser.new_context(base_url=live_server, java_script_enabled=False)
    sign_in_browser(context, deidentified_user)
    try:
        page = context.new_page()
        page.goto("/submissions/new")
        note = page.locator("#deidentify-noscript")
        expect(note).to_be_visible()
        expect(note).to_contain_text(f"{DEIDENTIFIED_CODE} sends no names or dates of birth.")
        expect(note).to_contain_text("cldx deidentify FILE... --out DIR")
        expect(page.locator("#deidentify-hint")).to_be_hidden()
        assert page.locator(f'#provider option[value="{DEIDENTIFIED_CODE}"]').get_attribute("data-deidentify") == ""
        assert page.locator('#provider option[value="P0001"]').count() == 0  # another provider's: not offered
    finally:
        context.close()
