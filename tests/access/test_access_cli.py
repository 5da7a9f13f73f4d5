"""`cldx users` and `cldx tokens` end to end on a SQLite store, through their Typer sub-apps."""

from __future__ import annotations

from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import select
from typer.testing import CliRunner

from cldx.access import passwords
from cldx.access.tokens import authenticate
from cldx.cli.tokens import app as tokens_app
from cldx.cli.users import app as users_app
from cldx.identity.vault import ensure_key_files
from cldx.store import make_engine, read_transaction, write_transaction
from cldx.store.migrate import upgrade
from cldx.store.models import AuditEvent, Provider, User

PASSWORD = "tuatara kettle orbit"


@pytest.fixture
def store(tmp_path: Path, monkeypatch) -> str:
    """A migrated SQLite store with keys and one provider (P1), set in the environment as the CLI reads it."""
    url = f"sqlite:///{tmp_path / 'cldx.db'}"
    monkeypatch.setenv("CLDX_DATABASE_URL", url)
    monkeypatch.setenv("CLDX_KEY_FILE", str(tmp_path / "keys.json"))
    monkeypatch.setenv("CLDX_LINKAGE_SECRET_FILE", str(tmp_path / "linkage.json"))
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that table rows are not wrapped
    monkeypatch.setattr(passwords, "HASHER", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))
    upgrade(url)
    ensure_key_files(tmp_path / "keys.json", tmp_path / "linkage.json")
    engine = make_engine(url)
    with write_transaction(engine) as session:
        session.add(Provider(code="P1", name="Provider One", region_code="01"))
    engine.dispose()
    return url


def run(app, args: list[str], input: str | None = None):
    return CliRunner().invoke(app, args, input=input)


def row_of(output: str, name: str) -> list[str]:
    line = next(line for line in output.splitlines() if f" {name} " in line)
    return [cell.strip() for cell in line.split("│")[1:-1]]


def test_users_add_and_list(store):
    added = run(users_app, ["add", "pat", "--role", "provider-submitter", "--role", "provider-viewer", "--provider", "P1",
                            "--display-name", "Pat", "--password-stdin"], input=PASSWORD + "\n")
    assert added.exit_code == 0, added.output
    assert "Added pat" in added.output and "otpauth://" not in added.output
    listed = run(users_app, ["list"])
    assert listed.exit_code == 0, listed.output
    assert row_of(listed.output, "pat") == ["pat", "Pat", "provider-submitter (P1)", "yes", "not needed", ""]
    assert "│ provider-viewer (P1)" in listed.output  # each role on its own line


def test_users_add_asks_twice_and_prints_the_second_factor_setup(store):
    added = run(users_app, ["add", "ana", "--role", "analyst"], input=f"{PASSWORD}\n{PASSWORD}\n")
    assert added.exit_code == 0, added.output
    assert "otpauth://totp/cldx:ana?secret=" in added.output and PASSWORD not in added.output
    assert row_of(run(users_app, ["list"]).output, "ana")[4] == "enrolled"


@pytest.mark.parametrize(("args", "password", "code", "message"), [
    (["add", "pat", "--role", "provider-viewer"], PASSWORD, 1, "needs the provider"),
    (["add", "pat", "--role", "provider-viewer", "--provider", "P9"], PASSWORD, 1, "No provider with code 'P9'"),
    (["add", "pat", "--role", "analyst", "--provider", "P1"], PASSWORD, 2, "only for the provider roles"),
    (["add", "pat", "--role", "provider-viewer", "--provider", "P1"], "password12", 1, "at least 12"),
])
def test_users_add_refusals(store, args, password, code, message):
    result = run(users_app, [*args, "--password-stdin"], input=password + "\n")
    assert result.exit_code == code and message in result.output
    engine = make_engine(store)
    with read_transaction(engine) as session:
        assert session.scalars(select(User)).all() == []
    engine.dispose()


def test_users_set_role_disable_and_reset(store):
    assert run(users_app, ["add", "ana", "--role", "provider-viewer", "--provider", "P1", "--password-stdin"], input=PASSWORD + "\n").exit_code == 0
    granted = run(users_app, ["set-role", "ana", "analyst"])
    assert granted.exit_code == 0 and "Granted analyst to ana" in granted.output and "otpauth://" in granted.output
    removed = run(users_app, ["set-role", "ana", "provider-viewer", "--remove"])
    assert removed.exit_code == 0, removed.output
    assert row_of(run(users_app, ["list"]).output, "ana")[2] == "analyst"
    assert run(users_app, ["set-role", "ana", "research-requester", "--provider", "P1"]).exit_code == 1

    assert run(users_app, ["reset", "ana"]).exit_code == 2
    weak = run(users_app, ["reset", "ana", "--password", "--password-stdin"], input="ana-password1\n")
    assert weak.exit_code == 1 and "Password refused" in weak.output
    reset = run(users_app, ["reset", "ana", "--password", "--second-factor"], input="a whole new kettle\n" * 2)
    assert reset.exit_code == 0, reset.output
    assert row_of(run(users_app, ["list"]).output, "ana")[4] == "not enrolled"

    assert run(users_app, ["disable", "ana"]).exit_code == 0
    assert row_of(run(users_app, ["list"]).output, "ana")[3] == "disabled"
    assert run(users_app, ["disable", "nobody"]).exit_code == 1

    engine = make_engine(store)
    with read_transaction(engine) as session:
        trail = session.execute(select(AuditEvent.action, AuditEvent.actor).order_by(AuditEvent.id)).all()
    engine.dispose()
    assert [a for a, _ in trail] == ["user-added", "role-change", "role-change", "password-reset", "second-factor-reset", "user-disabled"]
    assert all(actor.startswith("cli") for _, actor in trail)


def test_tokens_issue_list_and_revoke(store):
    assert run(users_app, ["add", "pat", "--role", "provider-viewer", "--provider", "P1", "--password-stdin"], input=PASSWORD + "\n").exit_code == 0
    issued = run(tokens_app, ["issue", "--name", "P1 case system", "--provider", "P1", "--expires-days", "30"])
    assert issued.exit_code == 0, issued.output
    plaintext = next(line for line in issued.output.splitlines() if line.startswith("cldx_"))
    assert "will not be shown again" in issued.output
    personal = run(tokens_app, ["issue", "--name", "pat's scripts", "--user", "pat"])
    assert personal.exit_code == 0, personal.output

    engine = make_engine(store)
    with write_transaction(engine) as session:
        assert authenticate(session, plaintext).name == "P1 case system"
    engine.dispose()

    listed = run(tokens_app, ["list"])
    assert listed.exit_code == 0 and plaintext not in listed.output
    system_row, personal_row = row_of(listed.output, "P1 case system"), row_of(listed.output, "pat's scripts")
    assert system_row[:5] == ["1", "P1 case system", "system", "P1", plaintext[:12] + "..."]
    assert system_row[6] and system_row[7] != "never" and not system_row[8]
    assert personal_row[2:4] == ["personal", "pat"] and personal_row[7] == "never"

    revoked = run(tokens_app, ["revoke", "1"])
    assert revoked.exit_code == 0 and "Revoked token 1" in revoked.output
    assert row_of(run(tokens_app, ["list"]).output, "P1 case system")[8]
    assert "P1 case system" not in run(tokens_app, ["list", "--active"]).output
    assert run(tokens_app, ["revoke", "99"]).exit_code == 1


@pytest.mark.parametrize("owner", [[], ["--provider", "P1", "--user", "pat"]])
def test_tokens_issue_needs_exactly_one_owner(store, owner):
    result = run(tokens_app, ["issue", "--name", "t", *owner])
    assert result.exit_code == 2 and "exactly one" in result.output


def test_tokens_issue_for_an_unknown_owner_is_refused(store):
    assert run(tokens_app, ["issue", "--name", "t", "--provider", "P9"]).exit_code == 1
    assert run(tokens_app, ["issue", "--name", "t", "--user", "nobody"]).exit_code == 1
