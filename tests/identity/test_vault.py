"""Sealing at rest: the key file, sealed values, and what `cldx init` creates."""

from __future__ import annotations

import json
import os
import stat
from datetime import date

import polars as pl
import pytest
from cryptography.exceptions import InvalidTag
from typer.testing import CliRunner

from cldx.cli.main import app
from cldx.identity.vault import KeyRing, KeysUnavailable, ensure_key_files, key_id_of, open_vault


@pytest.fixture
def ring(tmp_path) -> KeyRing:
    return KeyRing.create(tmp_path / "keys.json")


def test_a_sealed_value_names_its_key_and_opens_only_in_its_place(ring):
    token = ring.seal("Pōmare", "client_identity.family_name")
    assert token.startswith(f"enc1:{ring.current}:") and "Pōmare" not in token
    assert key_id_of(token) == ring.current
    assert ring.open(token, "client_identity.family_name") == "Pōmare"
    with pytest.raises(InvalidTag):  # copied into another column, it does not open
        ring.open(token, "client_identity.given_names")
    assert ring.seal("Pōmare", "x") != ring.seal("Pōmare", "x")  # a fresh nonce every time


def test_a_tampered_value_does_not_open(ring):
    token = ring.seal("Hēmi", "p")
    body = token.rsplit(":", 1)[1]
    flipped = body[:-3] + ("A" if body[-3] != "A" else "B") + body[-2:]
    with pytest.raises((InvalidTag, ValueError)):
        ring.open(token.rsplit(":", 1)[0] + ":" + flipped, "p")


def test_bytes_seal_and_open(ring):
    data = "family_name\nPōmare\n".encode()
    sealed = ring.seal_bytes(data, "job_file.data")
    assert data not in sealed and key_id_of(sealed) == ring.current
    assert ring.open_bytes(sealed, "job_file.data") == data


def test_columns_seal_and_open_with_dates(tmp_path):
    ensure_key_files(tmp_path / "k.json", tmp_path / "l.json")
    vault = open_vault(tmp_path / "k.json", tmp_path / "l.json")
    frame = pl.DataFrame({"family_name": ["Ngata", None], "date_of_birth": [date(1990, 5, 17), None]})
    sealed = vault.seal_frame(frame, "client_identity", ("family_name", "date_of_birth"))
    assert sealed.schema["date_of_birth"] == pl.String and sealed["family_name"][1] is None
    assert vault.open_frame(sealed, "client_identity", ("family_name", "date_of_birth"), dates=("date_of_birth",)).equals(frame)


def test_an_older_key_still_opens_after_a_new_one_is_added(ring):
    old = ring.seal("Aroha", "p")
    first = ring.current
    second = ring.add_key()
    assert ring.current == second != first
    assert key_id_of(ring.seal("Aroha", "p")) == second
    assert ring.open(old, "p") == "Aroha"
    ring.remove_keys({first})
    with pytest.raises(KeysUnavailable):
        ring.open(old, "p")
    with pytest.raises(ValueError):
        ring.remove_keys({second})


def test_another_process_rotating_is_noticed(tmp_path):
    path = tmp_path / "keys.json"
    service = KeyRing.create(path)
    admin = KeyRing(path)
    new = admin.add_key()
    sealed = admin.seal("Mere", "p")
    assert service.open(sealed, "p") == "Mere"  # an unknown key id re-reads the file
    service.refresh()
    assert service.current == new


def test_init_creates_owner_only_key_files_once(tmp_path, monkeypatch):
    monkeypatch.setenv("CLDX_DATABASE_URL", f"sqlite:///{tmp_path / 'cldx.db'}")
    monkeypatch.setenv("CLDX_KEY_FILE", str(tmp_path / "secrets" / "keys.json"))
    monkeypatch.setenv("CLDX_LINKAGE_SECRET_FILE", str(tmp_path / "secrets" / "linkage.json"))
    runner = CliRunner()
    result = runner.invoke(app, ["init"])
    assert result.exit_code == 0, result.output
    for name in ("keys.json", "linkage.json"):
        path = tmp_path / "secrets" / name
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    before = (tmp_path / "secrets" / "keys.json").read_bytes()
    assert runner.invoke(app, ["init"]).exit_code == 0
    assert (tmp_path / "secrets" / "keys.json").read_bytes() == before  # never overwritten
    assert json.loads(before)["format"] == "cldx-keys-1"


def test_a_missing_key_file_is_a_clear_error(tmp_path):
    with pytest.raises(KeysUnavailable, match="cldx init"):
        KeyRing(tmp_path / "nowhere.json")
