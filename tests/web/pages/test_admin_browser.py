"""The administration pages in Chromium: an administrator adds a contract with the keyboard alone, and
every page (a token just issued included) fits a 360 px wide phone without a console error (the `page`
fixture fails the test on any console error, failed request or request to another host)."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from cldx.access.roles import ADMINISTRATOR, PROVIDER_VIEWER
from cldx.store.db import read_transaction, write_transaction
from cldx.store.models import Contract, Provider, ServiceLine
from cldx.store.registry import seed_service_lines

from ..conftest import second_factor_user

PHONE = {"width": 360, "height": 800}


@pytest.fixture
def registry(web_app) -> None:
    """The six service lines, two providers and a contract of the first."""
    with write_transaction(web_app.state.engine) as session:
        seed_service_lines(session)
        session.add_all([Provider(code="P0001", name="Te Whare Tiaki Trust", region_code="09"),
                         Provider(code="P0002", name="Kāinga Services", region_code="13")])
        session.flush()
        p1 = session.scalar(select(Provider.id).where(Provider.code == "P0001"))
        fs = session.scalar(select(ServiceLine.id).where(ServiceLine.code == "FS"))
        session.add(Contract(contract_ref="CIS-2016-0001", provider_id=p1, service_line_id=fs, period_start=date(2016, 7, 1),
                             period_end=date(2018, 6, 30), funding_nzd=Decimal("1147500.00"), data_clause=True,
                             collection_start=date(2016, 7, 1), wave=1, reporting_frequency="monthly", due_day=20))


@pytest.fixture
def admin(make_user):
    return second_factor_user(make_user, "ada.admin", ADMINISTRATOR)


def tab_to(page, element_id: str, limit: int = 80) -> None:
    """Press Tab until the element has the focus (a date field takes a Tab per part, so the count varies)."""
    for _ in range(limit):
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{element_id}")


def type_into(page, element_id: str, text: str) -> None:
    tab_to(page, element_id)
    page.keyboard.press("Control+a")
    page.keyboard.type(text)


@pytest.mark.browser
def test_an_administrator_adds_a_contract_with_the_keyboard_only(page, sign_in_browser, web_app, registry, admin) -> None:
    sign_in_browser(page, admin)
    page.goto("/admin")
    link = page.get_by_role("link", name="Contracts", exact=True)  # Tab along the page's links to it, as a keyboard user would
    for _ in range(40):
        if link.evaluate("element => element === document.activeElement"):
            break
        page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Contracts", level=1)).to_be_visible()

    type_into(page, "contract_ref", "CIS-2017-0099")
    tab_to(page, "provider_code")
    page.keyboard.type("P0002")  # a closed select picks the option its typed start matches
    tab_to(page, "service_code")
    page.keyboard.type("SWIS")
    # Chromium's date field takes the month, day and year in turn (en-US order), moving on by itself.
    tab_to(page, "period_start")
    page.keyboard.type("07012017")
    tab_to(page, "period_end")
    page.keyboard.type("06302019")
    type_into(page, "funding_nzd", "250000")
    tab_to(page, "data_clause")  # ticked already: the contract has the data clause
    tab_to(page, "collection_start")
    page.keyboard.type("07012017")
    type_into(page, "wave", "2")
    type_into(page, "due_day", "15")
    expect(page.locator("#provider_code")).to_have_value("P0002")
    expect(page.locator("#service_code")).to_have_value("SWIS")
    expect(page.locator("#period_start")).to_have_value("2017-07-01")
    page.keyboard.press("Enter")  # submits the form the field is in

    expect(page.locator("#admin-notice")).to_have_text("Added contract CIS-2017-0099.")
    row = page.locator('tr[data-contract="CIS-2017-0099"]')
    expect(row).to_contain_text("P0002")
    expect(row).to_contain_text("2017-07-01 to 2019-06-30")
    expect(row).to_contain_text("$250,000.00")
    with read_transaction(web_app.state.engine) as session:
        contract = session.scalar(select(Contract).where(Contract.contract_ref == "CIS-2017-0099"))
        assert (contract.due_day, contract.wave, contract.collection_start) == (15, 2, date(2017, 7, 1))


@pytest.mark.browser
def test_a_form_with_a_mistake_is_shown_again_with_the_error_by_its_field(page, page_problems, sign_in_browser, registry, admin) -> None:
    sign_in_browser(page, admin)
    page.goto("/admin/contracts")
    page.get_by_label("Contract reference").fill("CIS-2017-0100")
    page.get_by_label("Provider", exact=True).select_option("P0001")
    page.get_by_label("Service line").select_option("FS")
    page.get_by_label("First day of the contract").fill("2017-07-01")
    page.get_by_label("Last day of the contract").fill("2016-06-30")
    page.get_by_label("Annual funding (NZ dollars)").fill("1000")
    page.get_by_label("Collection starts").fill("2017-07-01")
    page.get_by_label("Due day").fill("31")
    page.get_by_role("button", name="Add the contract").click()
    summary = page.locator("#form-errors")
    expect(summary).to_contain_text("The contract ends before it starts")
    expect(summary).to_contain_text("The due day must be a whole number at least 1 and at most 28.")
    # The field is described by its error, so a screen reader reads it on reaching the field.
    expect(page.locator("#due_day")).to_have_accessible_description(
        re.compile(r"^Day of the following month by which data is due.*Error:\s*The due day must be a whole number at least 1 and at most 28\.$"))
    summary.get_by_role("link", name="The due day must be a whole number at least 1 and at most 28.").click()
    expect(page.locator("#due_day")).to_be_focused()
    # Chromium logs the page's own 422 as a failed load: expected here, and the only problem allowed.
    expected = "console error: Failed to load resource: the server responded with a status of 422 (Unprocessable Entity)"
    assert page_problems == [expected]
    page_problems.clear()


@pytest.mark.browser
def test_the_admin_pages_fit_a_phone(page, sign_in_browser, make_user, registry, admin) -> None:
    make_user("vic.viewer", (PROVIDER_VIEWER, "P0001"))
    sign_in_browser(page, admin)
    page.set_viewport_size(PHONE)

    def fits(what: str) -> None:
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], f"{what} is {width} px wide at {PHONE['width']} px"

    for path in ("/admin", "/admin/providers", "/admin/service-lines", "/admin/contracts", "/admin/users", "/admin/users?user=vic.viewer",
                 "/admin/tokens", "/admin/providers?edit=P0001"):
        page.goto(path)
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        fits(path)

    # A token just issued (the page that shows it once) fits too, the token wrapped rather than widening the page.
    page.goto("/admin/tokens")
    page.get_by_label("System token for a provider's case system").check()
    page.get_by_label("Name", exact=True).fill("Te Whare Tiaki case system")
    page.get_by_label("Provider (for a system token)").select_option("P0001")
    page.get_by_role("button", name="Issue the token").click()
    expect(page.locator("#token-plaintext")).to_contain_text("cldx_")
    fits("the issued token")
    page.goto("/admin/tokens")  # the list again: the token is not shown twice
    expect(page.locator("#token-plaintext")).to_have_count(0)
