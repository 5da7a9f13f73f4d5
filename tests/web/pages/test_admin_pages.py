"""The administration pages: the registry (providers, service lines, contracts), users and roles, API
tokens. What each list shows, forms that save (with a confirmation after the redirect and an audit
entry) and forms that do not (each problem next to its field, at 422, nothing stored), who may use
them (administrators only; 403 for everyone else, GET and POST alike), CSRF, and that no client
data reaches them. On SQLite and on PostgreSQL (the app a member of cldx_app, as deployed)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal
from html import unescape

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from cldx.access import audit, tokens, totp
from cldx.access.roles import ADMINISTRATOR, PRIVACY_OFFICER, PROVIDER_SUBMITTER, PROVIDER_VIEWER
from cldx.access.users import grants_of
from cldx.config import Settings
from cldx.ingest.sources import SourceFile
from cldx.ingest.submit import submit
from cldx.store.db import read_transaction, write_transaction
from cldx.store.models import ApiToken, AuditEvent, Contract, Provider, ServiceLine, User
from cldx.store.registry import seed_service_lines
from cldx.web.templating import NAVIGATION, navigation_for

from ..conftest import PASSWORD, second_factor_user
from .conftest import FIXED, PERIOD

GET_ROUTES = ["/admin", "/admin/providers", "/admin/service-lines", "/admin/contracts", "/admin/users", "/admin/tokens"]
POST_ROUTES = ["/admin/providers", "/admin/service-lines", "/admin/contracts", "/admin/users", "/admin/users/roles",
               "/admin/users/disable", "/admin/users/password", "/admin/users/second-factor", "/admin/tokens", "/admin/tokens/revoke"]
NEW_PASSWORD = "lantern orchard pebble"

PROVIDER_FORM = {"provider_code": "P0003", "name": "Ngā Tāngata Trust", "region_code": "13", "ta_code": "060", "sends_identity": "y"}
SERVICE_LINE_FORM = {"service_code": "PARENT", "name": "Parenting support", "description": "Group parenting programmes.",
                     "min_client_age": "16", "max_client_age": "70"}
CONTRACT_FORM = {"contract_ref": "CIS-2017-0042", "provider_code": "P0002", "service_code": "SWIS", "period_start": "2017-07-01",
                 "period_end": "2019-06-30", "funding_nzd": "250000", "data_clause": "y", "collection_start": "2017-07-01", "wave": "2",
                 "reporting_frequency": "monthly", "due_day": "15"}


@pytest.fixture
def web_settings(matrix_settings: Settings) -> Settings:
    return matrix_settings


@pytest.fixture
def registry(web_app) -> dict[str, int]:
    """The six service lines, two providers (P0002 sends only the linkage key) and one contract of P0001; provider ids by code."""
    with write_transaction(web_app.state.engine) as session:
        seed_service_lines(session)
        session.add_all([Provider(code="P0001", name="Te Whare Tiaki Trust", region_code="09"),
                         Provider(code="P0002", name="Kāinga Services", region_code="13", sends_identity=False)])
        session.flush()
        ids = dict(session.execute(select(Provider.code, Provider.id)).all())
        fs = session.scalar(select(ServiceLine.id).where(ServiceLine.code == "FS"))
        session.add(Contract(contract_ref="CIS-2016-0001", provider_id=ids["P0001"], service_line_id=fs, period_start=date(2016, 7, 1),
                             period_end=date(2018, 6, 30), funding_nzd=Decimal("1147500.00"), data_clause=True,
                             collection_start=date(2016, 7, 1), wave=1, reporting_frequency="monthly", due_day=20))
    return ids


@pytest.fixture
def admin(make_user):
    return second_factor_user(make_user, "ada.admin", ADMINISTRATOR)


@pytest.fixture
def admin_client(client_for, admin) -> TestClient:
    return client_for(admin)


@pytest.fixture
def viewer(registry, make_user):
    return make_user("vic.viewer", (PROVIDER_VIEWER, "P0001"))


def entries(web_app, action: str) -> list[AuditEvent]:
    with read_transaction(web_app.state.engine) as session:
        return audit.list_events(session, action=action, limit=None)


def count(web_app, model) -> int:
    with read_transaction(web_app.state.engine) as session:
        return session.scalar(select(func.count()).select_from(model)) or 0


def notice(html: str) -> str:
    match = re.search(r'<div class="status-panel status-accepted" id="admin-notice" role="status">\s*<p class="status-line">(.*?)</p>',
                      html, re.S)
    return unescape(match.group(1)) if match else ""


def saved(client: TestClient, path: str, form: dict) -> str:
    """Post a form that must be saved: follow the 303 and give the page's confirmation."""
    response = client.post(path, data=form, follow_redirects=False)
    assert response.status_code == 303, response.text
    page = client.get(response.headers["location"])
    assert page.status_code == 200
    return page.text


def assert_error_at(html: str, control: str, message: str, *, group: bool = False) -> None:
    """`message` is shown next to the control (`control`-error), which is described by it (and invalid), and the
    summary at the top links to it. A group (fieldset of choices) carries the description instead of its controls."""
    error = re.search(rf'<p class="field-error" id="{control}-error">(.*?)</p>', html, re.S)
    assert error, f"no error next to #{control}"
    assert message in unescape(error.group(1)), unescape(error.group(1))
    if group:
        fieldset = re.search(rf'<fieldset[^>]*aria-describedby="[^"]*\b{control}-error\b[^"]*"[^>]*>(?:(?!</fieldset>).)*id="{control}"',
                             html, re.S)
        assert fieldset, f"the group of #{control} is not described by its error"
    else:
        tag = re.search(rf'<(?:input|select|textarea)\b[^>]*\bid="{control}"[^>]*>', html)
        assert tag, f"no control #{control}"
        assert 'aria-invalid="true"' in tag.group(0)
        assert re.search(rf'aria-describedby="[^"]*\b{control}-error\b', tag.group(0)), tag.group(0)
    summary = re.search(r'<div id="[a-z-]*errors" class="error-summary" role="alert".*?</div>', html, re.S)
    assert summary and f'href="#{control}"' in summary.group(0)


def form_token(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def sign_in(client: TestClient, username: str, password: str):
    page = client.get("/sign-in")
    return client.post("/sign-in", data={"username": username, "password": password, "csrf_token": form_token(page.text), "next": ""},
                       follow_redirects=False)


# --- Who may use them ----------------------------------------------------------------------------


@pytest.fixture
def outsiders(registry, make_user, analyst, officer):
    """A provider submitter, an analyst and a privacy officer: none administers anything."""
    return [make_user("tiaki.submitter", (PROVIDER_SUBMITTER, "P0001")), analyst, officer]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_other_roles_may_not_open_the_admin_pages(client_for, outsiders, path: str) -> None:
    for user in outsiders:
        response = client_for(user).get(path)
        assert response.status_code == 403, (user.username, path)
        assert "Your role does not" in response.text


@pytest.mark.parametrize("path", POST_ROUTES)
def test_other_roles_may_not_post_the_admin_forms(web_app, client_for, outsiders, viewer, path: str) -> None:
    form = {**PROVIDER_FORM, **SERVICE_LINE_FORM, **CONTRACT_FORM, "username": viewer.username, "password": NEW_PASSWORD,
            "role": PRIVACY_OFFICER, "kind": "system", "name": "Intruder's token", "provider": "P0001", "token_id": "1"}
    before = count(web_app, AuditEvent), count(web_app, ApiToken), count(web_app, Provider), count(web_app, Contract)
    for user in outsiders:
        client = client_for(user)
        response = client.post(path, data={**form, "csrf_token": client.csrf_token}, follow_redirects=False)
        assert response.status_code == 403, (user.username, path, response.status_code)
    assert (count(web_app, AuditEvent), count(web_app, ApiToken), count(web_app, Provider), count(web_app, Contract)) == before
    with read_transaction(web_app.state.engine) as session:
        assert grants_of(session, viewer.id) == {(PROVIDER_VIEWER, session.scalar(select(Provider.id).where(Provider.code == "P0001")))}
        assert session.get(User, viewer.id).is_active


def test_anonymous_visitors_are_sent_to_sign_in(app_client: TestClient) -> None:
    for path in GET_ROUTES:
        response = app_client.get(path, follow_redirects=False)
        assert response.status_code == 303 and response.headers["location"].startswith("/sign-in"), path


@pytest.mark.parametrize("path", POST_ROUTES)
def test_forms_without_the_csrf_token_are_refused(web_app, client_for, admin, viewer, registry, path: str) -> None:
    before = count(web_app, AuditEvent)
    form = {**PROVIDER_FORM, **CONTRACT_FORM, "username": viewer.username, "password": NEW_PASSWORD, "kind": "system",
            "name": "A token", "provider": "P0001"}
    assert client_for(admin, csrf=False).post(path, data=form, follow_redirects=False).status_code == 403
    assert count(web_app, AuditEvent) == before
    wrong = client_for(admin, csrf=False)
    assert wrong.post(path, data={**form, "csrf_token": "x" * 43}, follow_redirects=False).status_code == 403


def test_navigation_shows_administration_to_administrators_only(client_for, admin, outsiders) -> None:
    assert ("Administration", "/admin", ("manage-users", "manage-tokens", "manage-registry")) in NAVIGATION
    assert 'href="/admin"' in client_for(admin).get("/").text
    for user in outsiders:
        assert 'href="/admin"' not in client_for(user).get("/").text, user.username
    assert navigation_for(None) == []


def test_the_index_links_every_section(admin_client, registry) -> None:
    html = admin_client.get("/admin").text
    for path in GET_ROUTES[1:]:
        assert f'href="{path}"' in html, path
    assert "2 in the registry" in html and "6 in the registry" in html and "1 in the registry" in html
    assert 'href="/privacy/audit"' in html


def test_admin_pages_have_no_inline_script_or_style(admin_client, registry, admin) -> None:
    pages = [admin_client.get(path).text for path in GET_ROUTES]
    pages += [admin_client.post("/admin/contracts", data={**CONTRACT_FORM, "due_day": "31"}).text,
              admin_client.get("/admin/users?user=ada.admin").text]
    for html in pages:
        assert not re.search(r"<script(?![^>]*\bsrc=)", html)
        assert " style=" not in html and not re.search(r"\son[a-z]+=", html)


def test_no_client_data_reaches_an_administrator(web_app, admin_client, registry) -> None:
    """With a provider's clients stored, no admin page holds a name, a date of birth or a client reference."""
    receipt = submit(web_app.state.engine, provider="P0001", files=[SourceFile(n, d) for n, d in FIXED.files], period=PERIOD,
                     submitter="tiaki.submitter", channel="web")
    assert receipt.counts["new"] > 0
    pages = " ".join(admin_client.get(path).text for path in GET_ROUTES + ["/admin/contracts?provider=P0001"])
    for value in ("Smith", "Jane", "Ngata", "Aroha", "2008-12-19", "19/12/2008", "C001", "E001", receipt.submission_id):
        assert value not in pages, value


# --- Providers -----------------------------------------------------------------------------------


def test_the_provider_list_shows_the_registry(admin_client, registry) -> None:
    html = admin_client.get("/admin/providers").text
    first = re.search(r'<tr data-provider="P0001">.*?</tr>', html, re.S).group(0)
    assert "Te Whare Tiaki Trust" in first and "Wellington Region" in first and "Names and dates of birth" in first
    assert re.search(r'<a href="/admin/contracts\?provider=P0001">1<', first)
    second = re.search(r'<tr data-provider="P0002">.*?</tr>', html, re.S).group(0)
    assert "Kāinga Services" in second and "Canterbury Region" in second and "Linkage key only" in second and ">0<" in second
    assert "2 providers" in html


def test_an_administrator_adds_then_changes_a_provider(web_app, admin_client, registry) -> None:
    html = saved(admin_client, "/admin/providers", PROVIDER_FORM)
    assert notice(html) == "Added provider P0003."
    assert 'data-provider="P0003"' in html
    with read_transaction(web_app.state.engine) as session:
        added = session.scalar(select(Provider).where(Provider.code == "P0003"))
        assert (added.name, added.region_code, added.ta_code, added.sends_identity) == ("Ngā Tāngata Trust", "13", "060", True)
    [entry] = entries(web_app, "registry-change")
    assert (entry.actor, entry.target, entry.provider_id) == ("ada.admin", "provider P0003", added.id)
    assert '"change":"new"' in entry.detail

    form = admin_client.get("/admin/providers?edit=P0003").text
    assert "Change provider P0003" in form and re.search(r'id="provider_code"[^>]*readonly', form)
    assert re.search(r'<option value="060" selected>', form)
    changed = {k: v for k, v in PROVIDER_FORM.items() if k != "sends_identity"} | {"name": "Ngā Tāngata Trust (Ōtautahi)"}
    assert notice(saved(admin_client, "/admin/providers", changed)) == "Saved the changes to provider P0003."
    with read_transaction(web_app.state.engine) as session:
        provider = session.scalar(select(Provider).where(Provider.code == "P0003"))
        assert (provider.name, provider.sends_identity) == ("Ngā Tāngata Trust (Ōtautahi)", False)
    latest = entries(web_app, "registry-change")[0]
    assert '"changed"' in latest.detail and "Ōtautahi" in latest.detail and '"sends_identity":[true,false]' in latest.detail

    # The same values again change nothing, so the trail gains nothing.
    assert "nothing changed" in notice(saved(admin_client, "/admin/providers", changed))
    assert len(entries(web_app, "registry-change")) == 2


@pytest.mark.parametrize("changes, field, message", [
    ({"provider_code": ""}, "provider_code", "Give the provider code."),
    ({"provider_code": "P 0003"}, "provider_code", "letters, digits, - and _ only"),
    ({"provider_code": "P" * 21}, "provider_code", "too long: at most 20 characters"),
    ({"name": ""}, "name", "Give the provider's name."),
    ({"name": "Trust\x07"}, "name", "control characters"),
    ({"region_code": ""}, "region_code", "Choose the region"),
    ({"region_code": "42"}, "region_code", "Choose the region from the list."),
    ({"ta_code": "555"}, "ta_code", "Choose the territorial authority from the list."),
])
def test_a_provider_that_cannot_be_saved_says_which_field(web_app, admin_client, registry, changes, field, message) -> None:
    response = admin_client.post("/admin/providers", data={**PROVIDER_FORM, **changes})
    assert response.status_code == 422
    assert_error_at(response.text, field, message)
    assert count(web_app, Provider) == 2 and entries(web_app, "registry-change") == []
    assert 'value="Ngā Tāngata Trust"' in response.text or field == "name"  # what was typed is kept


def test_an_unknown_provider_cannot_be_edited(admin_client, registry) -> None:
    assert admin_client.get("/admin/providers?edit=P9999").status_code == 404


# --- Service lines -------------------------------------------------------------------------------


def test_an_administrator_adds_a_service_line(web_app, admin_client, registry) -> None:
    html = admin_client.get("/admin/service-lines").text
    assert "6 service lines" in html
    assert re.search(r'<tr data-service-line="FS">.*?Family Start.*?12 to 65.*?>1<', html, re.S)
    html = saved(admin_client, "/admin/service-lines", SERVICE_LINE_FORM)
    assert notice(html) == "Added service line PARENT." and "7 service lines" in html
    assert re.search(r'<tr data-service-line="PARENT">.*?Parenting support.*?16 to 70', html, re.S)
    [entry] = entries(web_app, "registry-change")
    assert entry.target == "service line PARENT" and entry.provider_id is None


@pytest.mark.parametrize("changes, field, message", [
    ({"service_code": ""}, "service_code", "Give the service code."),
    ({"service_code": "PA RENT"}, "service_code", "letters, digits, - and _ only"),
    ({"name": ""}, "name", "Give the service line's name."),
    ({"min_client_age": "-1"}, "min_client_age", "whole number at least 0 and at most 120"),
    ({"max_client_age": "twelve"}, "max_client_age", "whole number"),
    ({"min_client_age": "30", "max_client_age": "20"}, "max_client_age", "below the youngest"),
])
def test_a_service_line_that_cannot_be_saved_says_which_field(web_app, admin_client, registry, changes, field, message) -> None:
    response = admin_client.post("/admin/service-lines", data={**SERVICE_LINE_FORM, **changes})
    assert response.status_code == 422
    assert_error_at(response.text, field, message)
    assert count(web_app, ServiceLine) == 6 and entries(web_app, "registry-change") == []


# --- Contracts -----------------------------------------------------------------------------------


def test_the_contract_list_shows_the_registry_and_filters_by_provider(admin_client, registry) -> None:
    html = admin_client.get("/admin/contracts").text
    row = re.search(r'<tr data-contract="CIS-2016-0001">.*?</tr>', html, re.S).group(0)
    for shown in ("P0001", "FS", "2016-07-01", "2018-06-30", "$1,147,500.00", "Yes", ">20<", ">1<"):
        assert shown in row, shown
    assert 'data-contract="CIS-2016-0001"' in admin_client.get("/admin/contracts?provider=P0001").text
    other = admin_client.get("/admin/contracts?provider=P0002").text
    assert 'data-contract="CIS-2016-0001"' not in other and "Provider P0002 holds no contracts." in other
    assert re.search(r'<option value="P0002" selected>', other)  # the new contract's provider is the one shown
    unknown = admin_client.get("/admin/contracts?provider=P9999")
    assert unknown.status_code == 422 and "There is no provider &#39;P9999&#39;" in unknown.text
    assert 'data-contract=' not in unknown.text


def test_an_administrator_adds_then_changes_a_contract(web_app, admin_client, registry) -> None:
    html = saved(admin_client, "/admin/contracts", CONTRACT_FORM)
    assert notice(html) == "Added contract CIS-2017-0042."
    with read_transaction(web_app.state.engine) as session:
        contract = session.scalar(select(Contract).where(Contract.contract_ref == "CIS-2017-0042"))
        assert (contract.provider_id, contract.period_start, contract.funding_nzd, contract.due_day, contract.wave) == (
            registry["P0002"], date(2017, 7, 1), Decimal("250000.00"), 15, 2)
    [entry] = entries(web_app, "registry-change")
    assert entry.target == "contract CIS-2017-0042" and entry.provider_id == registry["P0002"]
    assert '"provider_id":"P0002"' in entry.detail and '"funding_nzd":"250000.00"' in entry.detail

    form = admin_client.get("/admin/contracts?edit=CIS-2017-0042").text
    assert "Change contract CIS-2017-0042" in form and 'value="250000.00"' in form
    html = saved(admin_client, "/admin/contracts", {**CONTRACT_FORM, "due_day": "28", "data_clause": "", "collection_start": ""})
    assert notice(html) == "Saved the changes to contract CIS-2017-0042."
    with read_transaction(web_app.state.engine) as session:
        contract = session.scalar(select(Contract).where(Contract.contract_ref == "CIS-2017-0042"))
        assert (contract.due_day, contract.data_clause, contract.collection_start) == (28, False, None)
    assert '"due_day":[15,28]' in entries(web_app, "registry-change")[0].detail


def test_a_blank_due_day_is_the_twentieth(web_app, admin_client, registry) -> None:
    saved(admin_client, "/admin/contracts", {**CONTRACT_FORM, "due_day": ""})
    with read_transaction(web_app.state.engine) as session:
        assert session.scalar(select(Contract.due_day).where(Contract.contract_ref == "CIS-2017-0042")) == 20


@pytest.mark.parametrize("changes, field, message", [
    ({"contract_ref": ""}, "contract_ref", "Give the contract reference."),
    ({"contract_ref": "CIS 2017"}, "contract_ref", "letters, digits and . _ - / only"),
    ({"provider_code": ""}, "provider_code", "Choose the provider."),
    ({"provider_code": "P9999"}, "provider_code", "There is no provider 'P9999' in the registry"),
    ({"service_code": "NOPE"}, "service_code", "There is no service line 'NOPE' in the registry"),
    ({"period_start": "2017-02-30"}, "period_start", "real date"),
    ({"period_start": "2019-07-01", "period_end": "2017-06-30"}, "period_end", "ends before it starts"),
    ({"funding_nzd": "-1"}, "funding_nzd", "number at least 0"),
    ({"funding_nzd": "a lot"}, "funding_nzd", "must be a number"),
    ({"funding_nzd": "1e15"}, "funding_nzd", "larger than the registry can hold"),
    ({"collection_start": ""}, "collection_start", "the contract has the data clause"),
    ({"wave": "0"}, "wave", "whole number at least 1 and at most 9"),
    ({"due_day": "0"}, "due_day", "whole number at least 1 and at most 28"),
    ({"due_day": "29"}, "due_day", "whole number at least 1 and at most 28"),
    ({"due_day": "2.5"}, "due_day", "whole number"),
    ({"reporting_frequency": "weekly"}, "reporting_frequency", "Choose the reporting frequency from the list."),
])
def test_a_contract_that_cannot_be_saved_says_which_field(web_app, admin_client, registry, changes, field, message) -> None:
    response = admin_client.post("/admin/contracts", data={**CONTRACT_FORM, **changes})
    assert response.status_code == 422
    assert_error_at(response.text, field, message)
    assert count(web_app, Contract) == 1 and entries(web_app, "registry-change") == []


def test_every_problem_of_a_contract_is_shown_at_once(web_app, admin_client, registry) -> None:
    response = admin_client.post("/admin/contracts", data={**CONTRACT_FORM, "period_end": "2016-01-01", "due_day": "31", "funding_nzd": "-5",
                                                           "service_code": "NOPE"})
    assert response.status_code == 422
    for field in ("period_end", "due_day", "funding_nzd", "service_code"):
        assert f'id="{field}-error"' in response.text, field
    assert 'value="CIS-2017-0042"' in response.text and 'value="-5"' in response.text  # what was typed is kept
    assert count(web_app, Contract) == 1


# --- Users ---------------------------------------------------------------------------------------


def test_the_user_list_shows_accounts_and_never_a_secret(web_app, admin_client, make_user, registry) -> None:
    secret = totp.new_secret()
    make_user("pia.officer2", (PRIVACY_OFFICER, None), totp_secret=secret)
    make_user("vic.viewer", (PROVIDER_VIEWER, "P0001"))
    make_user("gone.user", (PROVIDER_VIEWER, "P0002"), active=False)
    with write_transaction(web_app.state.engine) as session:
        session.scalar(select(User).where(User.username == "vic.viewer")).failed_sign_ins = 10
        stored = {u.username: (u.password_hash, u.totp_secret) for u in session.scalars(select(User))}
    pages = admin_client.get("/admin/users").text + admin_client.get("/admin/users?user=pia.officer2").text
    officer_row = re.search(r'<tr data-user="pia.officer2">.*?</tr>', pages, re.S).group(0)
    assert "privacy-officer" in officer_row and ">set up<" in officer_row and ">active<" in officer_row
    viewer_row = re.search(r'<tr data-user="vic.viewer">.*?</tr>', pages, re.S).group(0)
    assert "provider-viewer (P0001)" in viewer_row and ">locked<" in viewer_row and ">not needed<" in viewer_row
    assert ">disabled<" in re.search(r'<tr data-user="gone.user">.*?</tr>', pages, re.S).group(0)
    assert "4 users" in pages
    for password_hash, sealed in stored.values():
        assert password_hash not in pages
        assert sealed is None or sealed not in pages
    assert secret not in pages and "argon2" not in pages and "otpauth" not in pages


def test_an_administrator_adds_a_user_who_can_then_sign_in(web_app, admin_client, registry, new_client) -> None:
    form = {"username": "Tia.Submitter", "display_name": "Tia Tāwhiri", "email": "tia@example.org.nz", "password": PASSWORD,
            "roles": [PROVIDER_SUBMITTER], "provider": "P0002"}
    html = saved(admin_client, "/admin/users", form)
    assert notice(html) == "Added tia.submitter."
    assert re.search(r'<tr data-user="tia.submitter">.*?provider-submitter \(P0002\)', html, re.S)
    assert 'id="manage-heading">tia.submitter<' in html
    [entry] = entries(web_app, "user-added")
    assert (entry.actor, entry.target) == ("ada.admin", "tia.submitter") and "P0002" in entry.detail
    assert sign_in(new_client(), "tia.submitter", PASSWORD).status_code == 303


def test_a_new_ministry_user_is_told_to_set_up_a_second_factor(web_app, admin_client, registry) -> None:
    form = {"username": "ana.new", "password": PASSWORD, "roles": ["analyst", "research-requester"]}
    html = saved(admin_client, "/admin/users", form)
    assert "they set up their second factor when they first sign in" in notice(html)
    with read_transaction(web_app.state.engine) as session:
        assert session.scalar(select(User.totp_secret).where(User.username == "ana.new")) is None  # nothing made or shown here


@pytest.mark.parametrize("changes, control, message", [
    ({"username": "Has Spaces"}, "add-username", "lower-case letters, digits"),
    ({"username": "system"}, "add-username", "not a reserved name"),
    ({"username": "ada.admin"}, "add-username", "There is already a user ada.admin"),
    ({"email": "not an address"}, "add-email", "Write the email address"),
    ({"password": "short"}, "add-password", "at least 12 characters"),
    ({"password": "password1234"}, "add-password", "common password"),
    ({"password": "new.person and more words"}, "add-password", "Do not use your username"),
    ({"roles": []}, "add-roles", "Choose at least one role"),
    ({"roles": ["research-requester"], "provider": ""}, "add-roles", "needs the analyst role too"),
    ({"roles": [PROVIDER_VIEWER], "provider": ""}, "add-provider", "Choose the provider the provider roles are for."),
    ({"roles": ["analyst"], "provider": "P0001"}, "add-provider", "Leave the provider empty"),
    ({"roles": [PROVIDER_VIEWER], "provider": "P9999"}, "add-provider", "There is no provider 'P9999'"),
])
def test_a_user_that_cannot_be_added_says_which_field(web_app, admin_client, admin, registry, changes, control, message) -> None:
    form = {"username": "new.person", "display_name": "New Person", "email": "", "password": PASSWORD, "roles": [PROVIDER_VIEWER],
            "provider": "P0001"}
    response = admin_client.post("/admin/users", data={**form, **changes})
    assert response.status_code == 422
    assert_error_at(response.text, control, message, group=control == "add-roles")
    passwords = re.findall(r'<input type="password"[^>]*>', response.text)
    assert passwords and all('value=""' in tag for tag in passwords) and PASSWORD not in response.text  # never sent back
    assert count(web_app, User) == 1 and entries(web_app, "user-added") == []


def test_a_role_is_granted_then_withdrawn(web_app, admin_client, viewer, client_for) -> None:
    html = saved(admin_client, "/admin/users/roles", {"username": viewer.username, "role": PROVIDER_SUBMITTER, "provider": "P0001"})
    assert notice(html) == "Granted the role to vic.viewer. Their roles are listed below."
    assert re.search(r'<li data-role="provider-submitter">\s*<span>provider-submitter for P0001</span>', html)
    with read_transaction(web_app.state.engine) as session:
        p1 = session.scalar(select(Provider.id).where(Provider.code == "P0001"))
        assert grants_of(session, viewer.id) == {(PROVIDER_VIEWER, p1), (PROVIDER_SUBMITTER, p1)}
    assert client_for(viewer).get("/submissions/new").status_code == 200  # the role works at once

    html = saved(admin_client, "/admin/users/roles", {"username": viewer.username, "role": PROVIDER_SUBMITTER, "provider": "P0001",
                                                      "action": "withdraw"})
    assert notice(html) == "Withdrew the role from vic.viewer. Their roles are listed below."
    assert 'data-role="provider-submitter"' not in html
    with read_transaction(web_app.state.engine) as session:
        assert grants_of(session, viewer.id) == {(PROVIDER_VIEWER, p1)}
    assert client_for(viewer).get("/submissions/new").status_code == 403
    changes = entries(web_app, "role-change")
    assert [e.target for e in changes] == ["vic.viewer", "vic.viewer"] and all(e.actor == "ada.admin" for e in changes)
    assert '"removed":[["provider-submitter","P0001"]]' in changes[0].detail
    assert '"added":[["provider-submitter","P0001"]]' in changes[1].detail

    # Granting what is already held changes nothing.
    html = saved(admin_client, "/admin/users/roles", {"username": viewer.username, "role": PROVIDER_VIEWER, "provider": "P0001"})
    assert "already held that role" in notice(html) and len(entries(web_app, "role-change")) == 2


@pytest.mark.parametrize("form, control, message", [
    ({"role": ""}, "grant-role", "Choose a role from the list."),
    ({"role": PROVIDER_SUBMITTER, "provider": ""}, "grant-provider", "Choose the provider the provider-submitter role is for."),
    ({"role": PROVIDER_SUBMITTER, "provider": "P0002"}, "grant-role", "must all be for one provider organisation"),
    ({"role": "analyst", "provider": "P0001"}, "grant-provider", "the analyst role is ministry-wide"),
    ({"role": "research-requester"}, "grant-role", "needs the analyst role too"),
    ({"role": PROVIDER_VIEWER, "provider": "P9999"}, "grant-provider", "There is no provider 'P9999'"),
])
def test_a_role_that_cannot_be_granted_says_why(web_app, admin_client, viewer, form, control, message) -> None:
    response = admin_client.post("/admin/users/roles", data={"username": viewer.username, "provider": "", **form})
    assert response.status_code == 422
    assert_error_at(response.text, control, message)
    assert entries(web_app, "role-change") == []


def test_a_role_another_needs_cannot_be_withdrawn_alone(web_app, admin_client, registry, make_user) -> None:
    researcher = second_factor_user(make_user, "rua.researcher", "analyst", "research-requester")
    response = admin_client.post("/admin/users/roles", data={"username": researcher.username, "role": "analyst", "action": "withdraw"})
    assert response.status_code == 422
    summary = re.search(r'<div id="withdraw-errors" class="error-summary" role="alert".*?</div>', response.text, re.S).group(0)
    assert "The research-requester role needs the analyst role too." in summary and 'href="#managed-roles"' in summary
    with read_transaction(web_app.state.engine) as session:
        assert grants_of(session, researcher.id) == {("analyst", None), ("research-requester", None)}
    assert entries(web_app, "role-change") == []


def test_a_disabled_user_cannot_sign_in(web_app, admin_client, viewer, client_for, new_client) -> None:
    signed_in = client_for(viewer)
    assert signed_in.get("/submissions").status_code == 200
    html = saved(admin_client, "/admin/users/disable", {"username": viewer.username})
    assert "vic.viewer is disabled" in notice(html)
    assert 'id="managed-status">disabled' in html and 'id="disable-form"' not in html
    assert signed_in.get("/submissions", follow_redirects=False).status_code == 303  # signed out at once
    response = sign_in(new_client(), viewer.username, viewer.password)
    assert response.status_code == 401
    [entry] = entries(web_app, "user-disabled")
    assert (entry.actor, entry.target) == ("ada.admin", "vic.viewer")


def test_a_password_reset_replaces_the_old_password(web_app, admin_client, viewer, new_client) -> None:
    refused = admin_client.post("/admin/users/password", data={"username": viewer.username, "password": "vic.viewer!!1234"})
    assert refused.status_code == 422
    assert_error_at(refused.text, "reset-password", "Do not use your username")
    assert entries(web_app, "password-reset") == []
    html = saved(admin_client, "/admin/users/password", {"username": viewer.username, "password": NEW_PASSWORD})
    assert "Set a new password for vic.viewer" in notice(html) and NEW_PASSWORD not in html
    assert sign_in(new_client(), viewer.username, viewer.password).status_code == 401
    assert sign_in(new_client(), viewer.username, NEW_PASSWORD).status_code == 303
    [entry] = entries(web_app, "password-reset")
    assert (entry.actor, entry.target) == ("ada.admin", "vic.viewer")


def test_a_second_factor_reset_forgets_the_old_one(web_app, admin_client, registry, make_user) -> None:
    officer = make_user("pia.reset", (PRIVACY_OFFICER, None), totp_secret=totp.new_secret())
    assert ">set up<" in admin_client.get("/admin/users?user=pia.reset").text
    html = saved(admin_client, "/admin/users/second-factor", {"username": officer.username})
    assert "Reset pia.reset's second factor" in notice(html)
    assert re.search(r'<tr data-user="pia.reset">.*?>not set up<', html, re.S)
    with read_transaction(web_app.state.engine) as session:
        assert session.get(User, officer.id).totp_secret is None
    [entry] = entries(web_app, "second-factor-reset")
    assert (entry.actor, entry.target) == ("ada.admin", "pia.reset")


def test_an_administrator_does_not_change_their_own_account(web_app, admin_client, admin, registry) -> None:
    page = admin_client.get("/admin/users?user=ada.admin").text
    assert 'id="own-account"' in page and 'id="grant-form"' not in page
    for path, form in [("/admin/users/roles", {"role": PRIVACY_OFFICER}), ("/admin/users/disable", {}),
                       ("/admin/users/password", {"password": NEW_PASSWORD}), ("/admin/users/second-factor", {})]:
        response = admin_client.post(path, data={"username": admin.username, **form})
        assert response.status_code == 403 and "another administrator does it" in response.text, path
    with read_transaction(web_app.state.engine) as session:
        assert grants_of(session, admin.id) == {(ADMINISTRATOR, None)}
    assert count(web_app, AuditEvent) == 0


def test_an_unknown_user_is_a_404(admin_client, registry) -> None:
    assert admin_client.get("/admin/users?user=nobody").status_code == 404
    for path in POST_ROUTES[4:8]:
        assert admin_client.post(path, data={"username": "nobody", "password": NEW_PASSWORD, "role": "analyst"}).status_code == 404, path


# --- API tokens ----------------------------------------------------------------------------------


def issue(client: TestClient, **form) -> tuple[int, str]:
    """Issue a token through the form: its id and the token as the page shows it."""
    response = client.post("/admin/tokens", data=form)
    assert response.status_code == 201, response.text
    assert response.headers["cache-control"] == "no-store"
    plaintext = re.search(r'<code class="admin-token" id="token-plaintext">([^<]+)</code>', response.text).group(1)
    assert "This is the only time it is shown." in response.text
    token_id = int(re.search(r"Token (\d+), ", response.text).group(1))
    assert f'data-token="{token_id}"' in response.text  # the list already has it
    return token_id, plaintext


def test_a_system_token_is_shown_once_works_and_stops_when_revoked(web_app, admin_client, registry, new_client) -> None:
    token_id, plaintext = issue(admin_client, kind="system", name="Kāinga case system", provider="P0002", expires_days="30")
    assert plaintext.startswith(tokens.TOKEN_PREFIX)
    listing = admin_client.get("/admin/tokens").text
    assert plaintext not in listing and plaintext[tokens.PREFIX_LENGTH:] not in listing  # not on reload, not even in part
    row = re.search(rf'<tr data-token="{token_id}">.*?</tr>', listing, re.S).group(0)
    assert "Kāinga case system" in row and "provider-submitter for P0002" in row and plaintext[:tokens.PREFIX_LENGTH] in row
    assert ">active<" in row and "by ada.admin" in row and ">never<" in row
    with read_transaction(web_app.state.engine) as session:
        stored = session.get(ApiToken, token_id)
        assert stored.token_hash not in listing and stored.expires_at is not None

    api = new_client()
    answer = api.get("/api/v1/summary", headers={"Authorization": f"Bearer {plaintext}"})
    assert answer.status_code == 200 and answer.json()["providers"] == 1  # the provider's own figures
    assert "never" not in re.search(rf'<tr data-token="{token_id}">.*?</tr>', admin_client.get("/admin/tokens").text, re.S).group(0)
    [issued] = entries(web_app, "token-issued")
    assert issued.actor == "ada.admin" and issued.provider_id == registry["P0002"] and plaintext not in issued.target + issued.detail

    html = saved(admin_client, "/admin/tokens/revoke", {"token_id": str(token_id)})
    assert notice(html) == f"Revoked token {token_id}: it no longer works."
    assert ">revoked<" in re.search(rf'<tr data-token="{token_id}">.*?</tr>', html, re.S).group(0)
    assert api.get("/api/v1/summary", headers={"Authorization": f"Bearer {plaintext}"}).status_code == 401
    [revoked] = entries(web_app, "token-revoked")
    assert revoked.actor == "ada.admin" and f'"id":{token_id}' in revoked.detail
    assert "already revoked" in notice(saved(admin_client, "/admin/tokens/revoke", {"token_id": str(token_id)}))
    assert len(entries(web_app, "token-revoked")) == 1


def test_a_personal_token_is_the_administrators_own(web_app, admin_client, admin, registry, new_client) -> None:
    token_id, plaintext = issue(admin_client, kind="personal", name="Ada's registry script")
    row = re.search(rf'<tr data-token="{token_id}">.*?</tr>', admin_client.get("/admin/tokens").text, re.S).group(0)
    assert ">ada.admin<" in row and "the roles of ada.admin: administrator" in row
    assert new_client().get("/admin/providers", headers={"Authorization": f"Bearer {plaintext}"}).status_code == 200
    with read_transaction(web_app.state.engine) as session:
        assert session.get(ApiToken, token_id).user_id == admin.id


@pytest.mark.parametrize("form, control, message", [
    ({"kind": "", "name": "A system"}, "issue-kind", "Choose a system token"),
    ({"kind": "system", "name": ""}, "issue-name", "Name the token in 1 to 100 characters"),
    ({"kind": "system", "name": "x" * 101, "provider": "P0001"}, "issue-name", "Name the token in 1 to 100 characters"),
    ({"kind": "system", "name": "A system"}, "issue-provider", "Choose the provider whose case system"),
    ({"kind": "system", "name": "A system", "provider": "P9999"}, "issue-provider", "There is no provider 'P9999'"),
    ({"kind": "personal", "name": "A script", "provider": "P0001"}, "issue-provider", "Leave the provider empty"),
    ({"kind": "system", "name": "A system", "provider": "P0001", "expires_days": "0"}, "issue-expires", "whole number from 1 to 3650"),
])
def test_a_token_that_cannot_be_issued_says_which_field(web_app, admin_client, registry, form, control, message) -> None:
    response = admin_client.post("/admin/tokens", data=form)
    assert response.status_code == 422
    assert_error_at(response.text, control, message, group=control == "issue-kind")
    assert 'id="token-plaintext"' not in response.text
    assert count(web_app, ApiToken) == 0 and entries(web_app, "token-issued") == []


def test_an_unknown_token_cannot_be_revoked(admin_client, registry) -> None:
    for token_id in ("999", "x", ""):
        assert admin_client.post("/admin/tokens/revoke", data={"token_id": token_id}).status_code == 404, token_id
