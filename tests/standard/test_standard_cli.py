"""`cldx standard ...` through the real command-line app."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from cldx.cli.main import app
from cldx.standard import STANDARD_VERSION
from cldx.standard.docs import render_docs

runner = CliRunner()


def test_standard_version_prints_the_standard_version():
    result = runner.invoke(app, ["standard", "version"])
    assert result.exit_code == 0
    assert result.output.strip() == STANDARD_VERSION


def test_standard_export_writes_the_generated_files_and_lists_them(tmp_path: Path):
    out = tmp_path / "standard"
    result = runner.invoke(app, ["standard", "export", str(out)])
    assert result.exit_code == 0, result.output
    assert (out / "schemas/client.schema.json").is_file()
    assert (out / f"templates/cldx-template-v{STANDARD_VERSION}.xlsx").is_file()
    assert (out / "data-standard.md").is_file()
    assert "files written" in result.output and "clients.csv" in result.output


def test_standard_docs_writes_the_docs_relative_to_the_current_folder(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    result = runner.invoke(app, ["standard", "docs"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "docs/data-standard.md").read_text(encoding="utf-8") == render_docs()


def test_standard_docs_check_passes_on_fresh_docs_and_fails_on_stale_ones(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    docs = tmp_path / "docs/data-standard.md"
    docs.parent.mkdir()
    docs.write_text(render_docs(), encoding="utf-8")
    assert runner.invoke(app, ["standard", "docs", "--check"]).exit_code == 0

    docs.write_text(render_docs().replace("version", "versoin", 1), encoding="utf-8")
    result = runner.invoke(app, ["standard", "docs", "--check"])
    assert result.exit_code == 1
    assert "make standard-docs" in result.output
    assert "versoin" in docs.read_text(encoding="utf-8")  # --check writes nothing


def test_standard_docs_check_fails_when_the_file_is_missing(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert runner.invoke(app, ["standard", "docs", "--check"]).exit_code == 1
    assert not (tmp_path / "docs").exists()
