"""Signing in through the real forms in Chromium: an analyst's password, then their one-time code,
then the home page; and signing out. The `page` fixture fails on any console error (the sign-in
pages keep to the Content Security Policy too)."""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from playwright.sync_api import Page, expect

from cldx.access import totp
from cldx.access.roles import ANALYST

pytestmark = pytest.mark.browser


def test_an_analyst_signs_in_with_password_and_code_and_lands_on_the_home_page(page: Page, page_problems: list[str],
                                                                                 make_user) -> None:
    secret = totp.new_secret()
    analyst = make_user("ana.browser", (ANALYST, None), totp_secret=secret)

    page.goto("/")  # any page: first the sign-in form
    assert page.url.endswith("/sign-in")
    page.get_by_label("Username").fill(analyst.username)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#sign-in-error")).to_contain_text("do not match")
    page_problems[:] = [p for p in page_problems if "401" not in p]  # the refusal is a 401 on purpose

    page.get_by_label("Password").fill(analyst.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Your one-time code")).to_be_visible()
    page.get_by_label("Code").fill(totp.code_at(secret, totp.step_at(datetime.now(timezone.utc))))
    page.get_by_role("button", name="Sign in").click()

    expect(page.get_by_role("heading", name="What the database holds")).to_be_visible()
    assert page.url.rstrip("/").endswith(page.url.split("/")[2])  # back on the home page
    expect(page.locator("#signed-in-as")).to_have_text("ana.browser")
    expect(page.get_by_role("navigation", name="Main").get_by_role("link")).to_have_text(["Home", "Reports"])
    cookie = next(c for c in page.context.cookies() if c["name"] == "cldx_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Lax"

    page.get_by_role("button", name="Sign out").click()
    expect(page.locator("#sign-in-notice")).to_have_text("You have signed out.")
    page.goto("/")
    assert "/sign-in" in page.url
    assert page_problems == []
