"""The identity commands end to end on a real SQLite store: linkage, notifications, keys, deidentify."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cldx.cli.main import app
from cldx.generator.generate import generate
from cldx.identity.deidentify import deidentify_csv
from cldx.identity.vault import KeyRing


@pytest.fixture
def store(tmp_path, monkeypatch) -> tuple[CliRunner, Path]:
    monkeypatch.setenv("CLDX_DATABASE_URL", f"sqlite:///{tmp_path / 'cldx.db'}")
    monkeypatch.setenv("CLDX_KEY_FILE", str(tmp_path / "keys.json"))
    monkeypatch.setenv("CLDX_LINKAGE_SECRET_FILE", str(tmp_path / "linkage.json"))
    out = tmp_path / "rollout"
    generate(clients=300, seed=4, fault_rate=0, out=out)
    runner = CliRunner()
    assert runner.invoke(app, ["init"]).exit_code == 0
    assert runner.invoke(app, ["registry", "import", str(out / "registry")]).exit_code == 0
    folder = max((p for p in out.iterdir() if p.is_dir() and p.name != "registry"), key=lambda p: len((p / "clients.csv").read_bytes()))
    result = runner.invoke(app, ["submit", "--provider", folder.name, "--json", *map(str, sorted(folder.glob("*.csv")))])
    assert result.exit_code == 0, result.output
    return runner, folder


def test_linkage_summary_and_notifications_print_counts(store):
    runner, folder = store
    clients = list(csv.DictReader(io.StringIO((folder / "clients.csv").read_text(encoding="utf-8"))))
    summary = runner.invoke(app, ["linkage", "summary"])
    assert summary.exit_code == 0 and f"{len(clients):,}" in summary.output
    notified = runner.invoke(app, ["linkage", "notifications"])
    assert notified.exit_code == 0 and folder.name in notified.output
    missing = sum(1 for c in clients if not c["notified_of_sharing_on"])
    declined = sum(1 for c in clients if c["identity_consent"] == "n")
    row = next(line for line in notified.output.splitlines() if folder.name in line)
    assert [cell.strip() for cell in row.split("│") if cell.strip()][1:3] == [f"{len(clients):,}", f"{missing:,}"]
    assert row.split("│")[-2].strip() == f"{declined:,}"


def test_keys_rotate_and_purge_leave_every_value_under_the_new_key(store, tmp_path):
    runner, folder = store
    old = KeyRing(tmp_path / "keys.json").current
    result = runner.invoke(app, ["keys", "rotate", "--purge"])
    assert result.exit_code == 0, result.output
    ring = KeyRing(tmp_path / "keys.json")
    assert ring.current != old and ring.key_ids == [ring.current]
    status = runner.invoke(app, ["keys", "status"])
    assert status.exit_code == 0 and "not sealed" not in status.output and ring.current in status.output
    again = runner.invoke(app, ["submit", "--provider", folder.name, "--json", *map(str, sorted(folder.glob("*.csv")))])
    counts = json.loads(again.output)["counts"]
    assert again.exit_code == 0 and counts["new"] == counts["changed"] == 0


def test_deidentify_writes_the_same_files_without_names(store, tmp_path):
    runner, folder = store
    out = tmp_path / "safe"
    files = sorted(folder.glob("*.csv"))
    result = runner.invoke(app, ["deidentify", *map(str, files), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in files)  # nothing else written there
    clients = list(csv.DictReader(io.StringIO((folder / "clients.csv").read_text(encoding="utf-8"))))
    written = (out / "clients.csv").read_text(encoding="utf-8")
    assert written == deidentify_csv((folder / "clients.csv").read_bytes()).text
    header = next(csv.reader(io.StringIO(written)))
    assert {"family_name", "given_names", "date_of_birth"}.isdisjoint(header) and header[-2:] == ["slk581", "birth_year_month"]
    for client in clients:
        for value in (client["family_name"], client["given_names"]):
            if len(value) >= 4:
                assert value not in written
    assert (out / "engagements.csv").read_bytes() == deidentify_csv((folder / "engagements.csv").read_bytes()).text.encode()


def test_deidentify_refuses_a_workbook(tmp_path):
    book = tmp_path / "clients.xlsx"
    book.write_bytes(b"PK\x03\x04")
    result = CliRunner().invoke(app, ["deidentify", str(book), "--out", str(tmp_path / "out")])
    assert result.exit_code == 2 and "CSV UTF-8" in result.output
    assert not (tmp_path / "out").exists()
