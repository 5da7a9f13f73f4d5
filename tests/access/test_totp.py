"""One-time codes: accepted once, with a step of clock drift either way; the secret is sealed at rest."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlparse

from sqlalchemy import text

from cldx.access import totp
from cldx.access.roles import ANALYST
from cldx.access.users import add_user, enrol_totp, get_user
from cldx.store import read_transaction, write_transaction

NOW = datetime(2026, 11, 25, 9, 30, 10, tzinfo=timezone.utc)
SECRET = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def test_the_current_code_is_accepted_and_its_step_returned():
    step = totp.step_at(NOW)
    assert totp.verify(SECRET, totp.code_at(SECRET, step), None, NOW) == step


def test_codes_one_step_either_side_are_accepted_and_two_steps_are_not():
    step = totp.step_at(NOW)
    assert totp.verify(SECRET, totp.code_at(SECRET, step - 1), None, NOW) == step - 1
    assert totp.verify(SECRET, totp.code_at(SECRET, step + 1), None, NOW) == step + 1
    assert totp.verify(SECRET, totp.code_at(SECRET, step - 2), None, NOW) is None
    assert totp.verify(SECRET, totp.code_at(SECRET, step + 2), None, NOW) is None


def test_a_code_is_accepted_only_once():
    step = totp.step_at(NOW)
    code = totp.code_at(SECRET, step)
    accepted = totp.verify(SECRET, code, None, NOW)
    assert totp.verify(SECRET, code, accepted, NOW) is None
    assert totp.verify(SECRET, code, accepted, NOW + timedelta(seconds=20)) is None
    # nor an older code still inside the drift window, once a later one was used
    assert totp.verify(SECRET, totp.code_at(SECRET, step - 1), accepted, NOW) is None
    assert totp.verify(SECRET, totp.code_at(SECRET, step + 1), accepted, NOW) == step + 1


def test_malformed_codes_are_refused_and_spaces_ignored():
    code = totp.code_at(SECRET, totp.step_at(NOW))
    assert totp.verify(SECRET, f"{code[:3]} {code[3:]}", None, NOW) is not None
    for bad in ("", "12345", "1234567", "abcdef"):
        assert totp.verify(SECRET, bad, None, NOW) is None


def test_provisioning_uri_names_the_issuer_and_user():
    uri = totp.provisioning_uri(SECRET, "ana")
    parsed = urlparse(uri)
    assert parsed.scheme == "otpauth" and parsed.netloc == "totp" and "cldx:ana" in parsed.path
    assert parse_qs(parsed.query)["issuer"] == ["cldx"] and parse_qs(parsed.query)["secret"] == [SECRET]


def test_the_secret_is_sealed_at_rest(engine, vault):
    with write_transaction(engine) as session:
        add_user(session, "ana", "tuatara kettle orbit", roles=[(ANALYST, None)])
        uri = enrol_totp(session, "ana", vault.keys)
    secret = parse_qs(urlparse(uri).query)["secret"][0]
    with read_transaction(engine) as session:
        stored = session.execute(text("SELECT totp_secret FROM app_user WHERE username = 'ana'")).scalar_one()
        user = get_user(session, "ana")
    assert secret not in stored and stored.startswith("enc1:")
    assert totp.open_secret(vault.keys, stored) == secret
    assert totp.verify(secret, totp.code_at(secret, totp.step_at(NOW)), user.totp_last_step, NOW) is not None
