"""Role rules and what a principal may do."""

from __future__ import annotations

import pytest

from cldx.access.roles import (
    ADMINISTRATOR,
    ANALYST,
    MANAGE_USERS,
    PRIVACY_OFFICER,
    PROVIDER_SUBMITTER,
    PROVIDER_VIEWER,
    READ_IDENTITY,
    REQUEST_RESEARCH_EXTRACT,
    RESEARCH_REQUESTER,
    SUBMIT,
    VIEW_ANALYSIS,
    VIEW_PROVIDER,
    Principal,
    RoleError,
    check_roles,
    role_problems,
)


def test_provider_roles_need_exactly_one_provider():
    assert role_problems({(PROVIDER_SUBMITTER, 1), (PROVIDER_VIEWER, 1)}) == []
    assert role_problems({(PROVIDER_SUBMITTER, None)}) == ["The provider-submitter role needs the provider it is for."]
    assert any("one provider organisation" in p for p in role_problems({(PROVIDER_SUBMITTER, 1), (PROVIDER_SUBMITTER, 2)}))
    assert any("one provider organisation" in p for p in role_problems({(PROVIDER_SUBMITTER, 1), (PROVIDER_VIEWER, 2)}))


def test_ministry_roles_take_no_provider():
    assert role_problems({(ANALYST, 1)}) == ["The analyst role is ministry-wide and takes no provider."]


def test_research_requester_needs_analyst():
    with pytest.raises(RoleError, match="needs the analyst role"):
        check_roles({(RESEARCH_REQUESTER, None)})
    check_roles({(RESEARCH_REQUESTER, None), (ANALYST, None)})


def test_unknown_role_is_refused():
    assert role_problems({("superuser", None)})[0].startswith("Unknown role 'superuser'")


def test_provider_capabilities_hold_only_for_the_bound_provider():
    submitter = Principal(name="pat", roles=frozenset({(PROVIDER_SUBMITTER, 7)}))
    assert submitter.provider_ids == {7} and submitter.has(PROVIDER_SUBMITTER)
    assert submitter.can(SUBMIT, 7) and submitter.can(VIEW_PROVIDER, 7)
    assert not submitter.can(SUBMIT, 8) and not submitter.can(SUBMIT) and not submitter.can(VIEW_ANALYSIS)
    viewer = Principal(name="val", roles=frozenset({(PROVIDER_VIEWER, 7)}))
    assert viewer.can(VIEW_PROVIDER, 7) and not viewer.can(SUBMIT, 7)
    assert not submitter.needs_second_factor and not viewer.needs_second_factor


def test_ministry_roles_need_a_second_factor_and_do_only_their_own_work():
    analyst = Principal(name="ana", roles=frozenset({(ANALYST, None)}))
    assert analyst.needs_second_factor and analyst.can(VIEW_ANALYSIS) and analyst.provider_ids == frozenset()
    assert not analyst.can(REQUEST_RESEARCH_EXTRACT) and not analyst.can(READ_IDENTITY) and not analyst.can(VIEW_PROVIDER, 7)
    researcher = Principal(name="rae", roles=frozenset({(ANALYST, None), (RESEARCH_REQUESTER, None)}))
    assert researcher.can(REQUEST_RESEARCH_EXTRACT)
    assert Principal(name="po", roles=frozenset({(PRIVACY_OFFICER, None)})).can(READ_IDENTITY)
    admin = Principal(name="ad", roles=frozenset({(ADMINISTRATOR, None)}))
    assert admin.can(MANAGE_USERS) and admin.needs_second_factor and not admin.can(VIEW_ANALYSIS)
