"""API tokens on both backends: shown once, stored as a hash, scoped, revocable, expiring."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select, text

from cldx.access import passwords
from cldx.access.errors import TokenRefused
from cldx.access.roles import ANALYST, PROVIDER_SUBMITTER, SUBMIT, VIA_PERSONAL_TOKEN, VIA_SYSTEM_TOKEN, VIEW_PROVIDER
from cldx.access.tokens import PERSONAL, SYSTEM, authenticate, issue, list_tokens, revoke
from cldx.access.users import add_user, disable, set_role
from cldx.store import read_transaction, write_transaction
from cldx.store.models import AuditEvent, Provider

NOW = datetime(2026, 11, 25, 9, 30, 10, tzinfo=timezone.utc)


@pytest.fixture(autouse=True)
def quick_hashing(monkeypatch):
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture
def providers(engine) -> dict[str, int]:
    with write_transaction(engine) as session:
        rows = [Provider(code="P1", name="Provider One", region_code="01"), Provider(code="P2", name="Provider Two", region_code="02")]
        session.add_all(rows)
        session.flush()
        return {p.code: p.id for p in rows}


@pytest.fixture
def ana(engine) -> int:
    with write_transaction(engine) as session:
        return add_user(session, "ana", "tuatara kettle orbit", roles=[(ANALYST, None)]).id


def test_system_token_acts_for_its_one_provider(engine, providers):
    with write_transaction(engine) as session:
        token, plaintext = issue(session, SYSTEM, "P1 case system", "admin", provider_id=providers["P1"], now=NOW)
    assert plaintext.startswith("cldx_") and len(plaintext) > 40 and token.prefix == plaintext[:12]
    with write_transaction(engine) as session:
        principal = authenticate(session, plaintext, NOW)
    assert principal.via == VIA_SYSTEM_TOKEN and principal.name == "P1 case system" and principal.token_id == token.id
    assert principal.roles == {(PROVIDER_SUBMITTER, providers["P1"])} and principal.provider_ids == {providers["P1"]}
    assert principal.can(SUBMIT, providers["P1"]) and principal.can(VIEW_PROVIDER, providers["P1"])
    assert not principal.can(SUBMIT, providers["P2"]) and not principal.can(VIEW_PROVIDER, providers["P2"])


def test_only_the_hash_is_stored(engine, providers):
    with write_transaction(engine) as session:
        token, plaintext = issue(session, SYSTEM, "P1 case system", "admin", provider_id=providers["P1"], now=NOW)
    with read_transaction(engine) as session:
        rows = session.execute(text("SELECT * FROM api_token")).all()
        trail = session.scalars(select(AuditEvent.target).where(AuditEvent.action == "token-issued")).all()
    stored = " ".join(str(value) for row in rows for value in row)
    assert plaintext not in stored and plaintext[12:] not in stored
    assert rows[0].token_hash == hashlib.sha256(plaintext.encode()).hexdigest()
    assert trail == [f"P1 case system ({plaintext[:12]}...)"]


def test_personal_token_carries_the_users_roles_at_the_time_of_use(engine, providers, ana):
    with write_transaction(engine) as session:
        _, plaintext = issue(session, PERSONAL, "ana's scripts", "admin", user_id=ana, now=NOW)
    with write_transaction(engine) as session:
        principal = authenticate(session, plaintext, NOW)
        assert principal.via == VIA_PERSONAL_TOKEN and principal.name == "ana" and principal.roles == {(ANALYST, None)}
        set_role(session, "ana", "research-requester")
        assert authenticate(session, plaintext, NOW).has("research-requester")
        disable(session, "ana")
        assert authenticate(session, plaintext, NOW) is None


def test_revoked_expired_and_unknown_tokens_are_refused(engine, providers):
    with write_transaction(engine) as session:
        revoked, revoked_text = issue(session, SYSTEM, "old", "admin", provider_id=providers["P1"], now=NOW)
        _, expiring_text = issue(session, SYSTEM, "short-lived", "admin", provider_id=providers["P1"],
                                 expires_at=NOW + timedelta(days=1), now=NOW)
        revoke(session, revoked.id, actor="admin", now=NOW)
    with write_transaction(engine) as session:
        assert authenticate(session, revoked_text, NOW) is None
        assert authenticate(session, expiring_text, NOW + timedelta(hours=23)) is not None
        assert authenticate(session, expiring_text, NOW + timedelta(days=1)) is None
        assert authenticate(session, "cldx_" + "x" * 43, NOW) is None
        assert authenticate(session, "not even a token", NOW) is None
        assert [t.revoked_at for t in list_tokens(session)] == [NOW, None]
        assert [t.name for t in list_tokens(session, include_revoked=False)] == ["short-lived"]


def test_last_used_is_noted_to_the_minute(engine, providers):
    with write_transaction(engine) as session:
        token, plaintext = issue(session, SYSTEM, "P1 case system", "admin", provider_id=providers["P1"], now=NOW)
        assert token.last_used_at is None
    for seconds, expected in ((0, NOW), (30, NOW), (61, NOW + timedelta(seconds=61))):
        with write_transaction(engine) as session:
            authenticate(session, plaintext, NOW + timedelta(seconds=seconds))
        with read_transaction(engine) as session:
            assert list_tokens(session)[0].last_used_at == expected


@pytest.mark.parametrize(("kind", "owner", "message"), [
    (SYSTEM, {}, "one provider"),
    (SYSTEM, {"provider": "P1", "user": True}, "one provider"),
    (PERSONAL, {}, "one user"),
    (PERSONAL, {"provider": "P1", "user": True}, "one user"),
    ("admin", {"user": True}, "Unknown token kind"),
])
def test_a_token_for_the_wrong_owner_is_refused(engine, providers, ana, kind, owner, message):
    with pytest.raises(TokenRefused, match=message), write_transaction(engine) as session:
        issue(session, kind, "t", "admin", user_id=ana if owner.get("user") else None,
              provider_id=providers[owner["provider"]] if "provider" in owner else None, now=NOW)


def test_a_token_cannot_be_issued_already_expired_or_to_a_disabled_user(engine, providers, ana):
    with pytest.raises(TokenRefused, match="future"), write_transaction(engine) as session:
        issue(session, SYSTEM, "t", "admin", provider_id=providers["P1"], expires_at=NOW, now=NOW)
    with write_transaction(engine) as session:
        disable(session, "ana")
    with pytest.raises(TokenRefused, match="disabled"), write_transaction(engine) as session:
        issue(session, PERSONAL, "t", "admin", user_id=ana, now=NOW)


def test_list_shows_owners_and_never_the_token(engine, providers, ana):
    with write_transaction(engine) as session:
        _, system_text = issue(session, SYSTEM, "P2 system", "admin", provider_id=providers["P2"], now=NOW)
        _, personal_text = issue(session, PERSONAL, "ana's", "admin", user_id=ana, now=NOW)
    with read_transaction(engine) as session:
        listed = list_tokens(session)
    assert [(t.kind, t.owner, t.prefix) for t in listed] == [(SYSTEM, "P2", system_text[:12]), (PERSONAL, "ana", personal_text[:12])]
    assert not any(hasattr(t, "token_hash") for t in listed)
