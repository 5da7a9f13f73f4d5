"""`make demo`'s accounts: one per role, a submitter and viewer for a few providers, each able to sign in."""

from __future__ import annotations

import stat

import pyotp

from cldx.access.users import authenticate_password, get_user, principal_for_user, verify_second_factor
from cldx.cli.demo import make_demo_accounts
from cldx.config import Settings
from cldx.identity.vault import open_store, vault_of
from cldx.store import transaction
from cldx.store.migrate import upgrade
from cldx.store.models import Provider


def test_every_demo_account_signs_in_with_what_the_file_says(tmp_path):
    url = f"sqlite:///{tmp_path / 'cldx.db'}"
    upgrade(url)
    settings = Settings(database_url=url)
    engine = open_store(settings)
    with transaction(engine) as session:
        session.add_all(Provider(code=code, name=f"Trust {code}", region_code="09") for code in ("P0001", "P0002"))
    path = tmp_path / "demo-data" / "accounts.txt"
    make_demo_accounts(settings, path, ["P0001", "P0002"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    accounts = [line.split("  ") for line in path.read_text(encoding="utf-8").splitlines() if not line.startswith("#")]
    assert {a[0] for a in accounts} == {"admin", "analyst", "researcher", "privacy", "p0001.submitter", "p0001.viewer",
                                         "p0002.submitter", "p0002.viewer"}
    with transaction(engine) as session:
        for username, password, roles, *secret in accounts:
            user = authenticate_password(session, username, password)
            assert user is not None, username
            if secret:
                assert verify_second_factor(session, user, pyotp.TOTP(secret[0]).now(), vault_of(engine).keys)
            principal = principal_for_user(session, get_user(session, username))
            assert {r for r, _ in principal.roles} == {r.split("@")[0] for r in roles.split(",")}
    engine.dispose()
