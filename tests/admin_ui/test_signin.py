"""Sign-in with an API key: the merchant and role are shown, and what the role cannot do is hidden."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.admin_ui.admin_ui_support import LiveServer, Merchant, sign_in

pytestmark = pytest.mark.browser


def test_a_bad_key_is_refused_and_a_good_one_signs_in(page: Any, merchant: Merchant) -> None:
    page.goto("/admin/")
    page.get_by_test_id("api-key-input").fill("bb_not_a_real_key")
    page.get_by_test_id("sign-in-button").click()
    expect(page.get_by_test_id("signin-error")).to_contain_text("not accepted")
    expect(page.get_by_test_id("merchant-name")).to_be_hidden()

    sign_in(page, merchant.keys["admin"])
    expect(page.get_by_test_id("merchant-name")).to_have_text(merchant.name)
    expect(page.get_by_test_id("role-badge")).to_have_text("admin")
    expect(page.get_by_role("link", name="Rules")).to_be_visible()

    # The key lives in the tab's session storage: a reload keeps the session.
    page.reload()
    expect(page.get_by_test_id("merchant-name")).to_have_text(merchant.name)

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_test_id("api-key-input")).to_be_visible()
    assert page.evaluate("sessionStorage.length") == 0


def test_roles_see_only_what_they_may_do(page: Any, live_server: LiveServer, merchant: Merchant) -> None:
    live_server.graphql(
        merchant.keys["admin"],
        'mutation($s: String!) { publishRuleset(source: $s, message: "v1") { errors { code } } }',
        {"s": live_server.graphql(merchant.keys["admin"], "{ ruleset { source } }")["ruleset"]["source"]},
    )
    sign_in(page, merchant.keys["viewer"])
    expect(page.get_by_test_id("role-badge")).to_have_text("viewer")
    page.get_by_role("link", name="Rules").click()
    expect(page.get_by_test_id("ruleset-editor")).to_be_visible()
    expect(page.get_by_test_id("simulate-button")).to_be_visible()
    # Publishing and rollback are for admins only: not offered to a viewer.
    expect(page.get_by_test_id("publish-button")).to_have_count(0)
    page.get_by_test_id("tab-history").click()
    expect(page.get_by_test_id("version-row-1")).to_be_visible()
    expect(page.locator('[data-testid^="activate-version-"]')).to_have_count(0)

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, merchant.keys["admin"])
    page.get_by_role("link", name="Rules").click()
    expect(page.get_by_test_id("publish-button")).to_be_visible()
