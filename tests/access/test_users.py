"""The user service on both backends: adding, roles, disabling, resets, and signing in."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from cldx.access import passwords, totp
from cldx.access.errors import AlreadyEnrolled, PasswordRejected, UnknownProvider, UsernameTaken
from cldx.access.roles import ANALYST, PROVIDER_SUBMITTER, PROVIDER_VIEWER, RESEARCH_REQUESTER, RoleError
from cldx.access.users import (
    MAX_FAILED_SIGN_INS,
    add_user,
    authenticate_password,
    disable,
    enrol_totp,
    get_user,
    list_users,
    principal_for_user,
    reset_password,
    reset_second_factor,
    set_role,
    verify_second_factor,
)
from cldx.store import read_transaction, write_transaction
from cldx.store.models import AuditEvent, Provider, User, WebSession

PASSWORD = "tuatara kettle orbit"
NOW = datetime(2026, 11, 25, 9, 30, 10, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch):
    """argon2id with the smallest cost, so sign-in tests take milliseconds (the algorithm is the same)."""
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    passwords._decoy_hash.cache_clear()
    yield
    passwords._decoy_hash.cache_clear()


@pytest.fixture
def providers(engine) -> dict[str, int]:
    with write_transaction(engine) as session:
        rows = [Provider(code="P1", name="Provider One", region_code="01"), Provider(code="P2", name="Provider Two", region_code="02")]
        session.add_all(rows)
        session.flush()
        return {p.code: p.id for p in rows}


def actions(session) -> list[str]:
    return list(session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)))


def test_add_user_stores_roles_with_their_provider_and_lists_them(engine, providers):
    with write_transaction(engine) as session:
        user = add_user(session, "Pat.Provider", PASSWORD, "Pat", roles=[(PROVIDER_SUBMITTER, "P1"), (PROVIDER_VIEWER, "P1")])
        add_user(session, "ana", PASSWORD, "Ana", roles=[(ANALYST, None), (RESEARCH_REQUESTER, None)])
    assert user.username == "pat.provider" and user.password_hash.startswith("$argon2id$") and PASSWORD not in user.password_hash
    with read_transaction(engine) as session:
        listed = {u.username: u for u in list_users(session)}
        principal = principal_for_user(session, get_user(session, "pat.provider"))
        assert actions(session) == ["user-added", "user-added"]
    assert listed["pat.provider"].roles == [[PROVIDER_SUBMITTER, "P1"], [PROVIDER_VIEWER, "P1"]]
    assert listed["ana"].roles == [[ANALYST, None], [RESEARCH_REQUESTER, None]]
    assert listed["ana"].second_factor_required and not listed["ana"].second_factor_enrolled
    assert not listed["pat.provider"].second_factor_required and listed["pat.provider"].is_active
    assert principal.provider_ids == {providers["P1"]} and principal.has(PROVIDER_VIEWER)


@pytest.mark.parametrize(("roles", "error", "message"), [
    ([(PROVIDER_SUBMITTER, None)], RoleError, "needs the provider"),
    ([(PROVIDER_SUBMITTER, "P1"), (PROVIDER_VIEWER, "P2")], RoleError, "one provider organisation"),
    ([(PROVIDER_SUBMITTER, "P1"), (PROVIDER_SUBMITTER, "P2")], RoleError, "one provider organisation"),
    ([(RESEARCH_REQUESTER, None)], RoleError, "needs the analyst role"),
    ([(ANALYST, "P1")], RoleError, "takes no provider"),
    ([(PROVIDER_VIEWER, "NOPE")], UnknownProvider, "NOPE"),
])
def test_add_user_refuses_roles_that_break_the_rules(engine, providers, roles, error, message):
    with pytest.raises(error, match=message), write_transaction(engine) as session:
        add_user(session, "pat", PASSWORD, roles=roles)
    with read_transaction(engine) as session:
        assert session.scalar(select(func.count()).select_from(User)) == 0


def test_add_user_refuses_a_weak_password_or_a_taken_name(engine, providers):
    with pytest.raises(PasswordRejected) as refused, write_transaction(engine) as session:
        add_user(session, "pat", "password1", roles=[(PROVIDER_VIEWER, "P1")])
    assert len(refused.value.problems) == 2  # too short, and common
    with write_transaction(engine) as session:
        add_user(session, "pat", PASSWORD, roles=[(PROVIDER_VIEWER, "P1")])
    with pytest.raises(UsernameTaken), write_transaction(engine) as session:
        add_user(session, "PAT", PASSWORD)


def test_set_role_grants_and_withdraws_keeping_the_rules(engine, providers):
    with write_transaction(engine) as session:
        add_user(session, "ana", PASSWORD, roles=[(ANALYST, None)])
        assert set_role(session, "ana", RESEARCH_REQUESTER)
        assert not set_role(session, "ana", RESEARCH_REQUESTER)  # already held: nothing to do
    with pytest.raises(RoleError, match="needs the analyst role"), write_transaction(engine) as session:
        set_role(session, "ana", ANALYST, remove=True)
    with write_transaction(engine) as session:
        add_user(session, "pat", PASSWORD, roles=[(PROVIDER_VIEWER, "P1")])
        set_role(session, "pat", PROVIDER_SUBMITTER, "P1")
    with pytest.raises(RoleError, match="one provider organisation"), write_transaction(engine) as session:
        set_role(session, "pat", PROVIDER_SUBMITTER, "P2")
    with write_transaction(engine) as session:
        set_role(session, "pat", PROVIDER_VIEWER, remove=True)  # no code needed: one provider per user
        set_role(session, "ana", RESEARCH_REQUESTER, remove=True)
    with read_transaction(engine) as session:
        roles = {u.username: u.roles for u in list_users(session)}
        trail = actions(session)
    assert roles == {"ana": [[ANALYST, None]], "pat": [[PROVIDER_SUBMITTER, "P1"]]}
    assert trail.count("role-change") == 4


def test_sign_in_with_a_password_completes_for_a_provider_user(engine, providers):
    with write_transaction(engine) as session:
        add_user(session, "pat", PASSWORD, roles=[(PROVIDER_SUBMITTER, "P1")])
    with write_transaction(engine) as session:
        user = authenticate_password(session, " PAT ", PASSWORD, NOW)
    assert user is not None and user.last_sign_in_at == NOW and user.failed_sign_ins == 0
    with read_transaction(engine) as session:
        assert actions(session)[-1] == "sign-in"


def test_unknown_users_cost_an_argon2_verification_and_are_not_told_apart(engine, providers, monkeypatch):
    with write_transaction(engine) as session:
        add_user(session, "pat", PASSWORD, roles=[(PROVIDER_SUBMITTER, "P1")])
    spent = []
    real = passwords.verify_password
    monkeypatch.setattr("cldx.access.users.verify_password", lambda h, p: spent.append("user") or real(h, p))
    monkeypatch.setattr("cldx.access.users.spend_verification_time", lambda p: spent.append("decoy"))
    with write_transaction(engine) as session:
        assert authenticate_password(session, "nobody", PASSWORD, NOW) is None
        assert authenticate_password(session, "pat", "wrong but long enough", NOW) is None
    assert spent == ["decoy", "user"]
    with read_transaction(engine) as session:
        assert session.scalars(select(AuditEvent.detail).where(AuditEvent.action == "sign-in-failed")).all() == [
            '{"reason":"unknown-user"}', '{"reason":"wrong-password"}']


def test_ten_failures_lock_the_account_until_an_administrator_resets_it(engine, providers):
    with write_transaction(engine) as session:
        add_user(session, "pat", PASSWORD, roles=[(PROVIDER_SUBMITTER, "P1")])
    with write_transaction(engine) as session:
        for _ in range(MAX_FAILED_SIGN_INS):
            assert authenticate_password(session, "pat", "wrong but long enough", NOW) is None
    with write_transaction(engine) as session:
        assert authenticate_password(session, "pat", PASSWORD, NOW) is None  # locked: even the right password
        assert list_users(session)[0].locked
        reset_password(session, "pat", "a whole new kettle", actor="admin")
    with write_transaction(engine) as session:
        assert authenticate_password(session, "pat", PASSWORD, NOW) is None
        assert authenticate_password(session, "pat", "a whole new kettle", NOW) is not None
    with pytest.raises(PasswordRejected), write_transaction(engine) as session:
        reset_password(session, "pat", "pat12345678910")


def test_disabled_users_cannot_sign_in_and_are_signed_out(engine, providers):
    with write_transaction(engine) as session:
        user = add_user(session, "pat", PASSWORD, roles=[(PROVIDER_SUBMITTER, "P1")])
        session.add(WebSession(session_hash="a" * 64, user_id=user.id, csrf_token="c", expires_at=NOW + timedelta(hours=1)))
    with write_transaction(engine) as session:
        disable(session, "pat", actor="admin")
    with write_transaction(engine) as session:
        assert authenticate_password(session, "pat", PASSWORD, NOW) is None
        assert session.scalar(select(func.count()).select_from(WebSession)) == 0
        assert not list_users(session)[0].is_active


def test_second_factor_sign_in_for_an_analyst(engine, vault, providers):
    with write_transaction(engine) as session:
        add_user(session, "ana", PASSWORD, roles=[(ANALYST, None)])
        uri = enrol_totp(session, "ana", vault.keys)
        with pytest.raises(AlreadyEnrolled):
            enrol_totp(session, "ana", vault.keys)  # a password alone cannot replace the second factor
    secret = uri.split("secret=")[1].split("&")[0]
    code = totp.code_at(secret, totp.step_at(NOW))
    with write_transaction(engine) as session:
        user = authenticate_password(session, "ana", PASSWORD, NOW)
        assert user is not None and user.last_sign_in_at is None  # not signed in until the code
        assert principal_for_user(session, user).needs_second_factor
        assert verify_second_factor(session, user, code, vault.keys, NOW)
        assert user.last_sign_in_at == NOW
        assert not verify_second_factor(session, user, code, vault.keys, NOW)  # replayed
        assert user.failed_sign_ins == 1
    with read_transaction(engine) as session:
        assert actions(session)[-2:] == ["sign-in", "sign-in-failed"]


def test_reset_second_factor_clears_it_so_the_user_enrols_again(engine, vault, providers):
    with write_transaction(engine) as session:
        add_user(session, "ana", PASSWORD, roles=[(ANALYST, None)])
        enrol_totp(session, "ana", vault.keys)
        reset_second_factor(session, "ana", actor="admin")
        user = get_user(session, "ana")
        assert user.totp_secret is None and user.totp_last_step is None
        assert enrol_totp(session, "ana", vault.keys).startswith("otpauth://totp/")
        assert actions(session)[-1] == "second-factor-reset"


def test_a_hash_made_with_old_parameters_is_replaced_at_sign_in(engine, providers):
    with write_transaction(engine) as session:
        user = add_user(session, "pat", PASSWORD, roles=[(PROVIDER_SUBMITTER, "P1")])
        old = PasswordHasher(time_cost=2, memory_cost=2048, parallelism=1).hash(PASSWORD)
        user.password_hash = old
    with write_transaction(engine) as session:
        user = authenticate_password(session, "pat", PASSWORD, NOW)
        assert user.password_hash != old and not passwords.needs_rehash(user.password_hash)
