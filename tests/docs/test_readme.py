"""The README keeps its promises: the quick start first, every setting documented."""

from __future__ import annotations

from pathlib import Path

from cldx.config import Settings

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_opens_with_the_two_commands():
    head = "\n".join(README.read_text(encoding="utf-8").splitlines()[:15])
    assert "make demo" in head and "make test" in head


def test_every_setting_is_documented_in_the_readme():
    text = README.read_text(encoding="utf-8")
    missing = [f"CLDX_{name.upper()}" for name in Settings.model_fields if f"CLDX_{name.upper()}" not in text]
    assert missing == [], f"document these settings in README.md: {missing}"


def test_rule_catalogue_is_up_to_date():
    from cldx.ingest.findings import render_rules_doc

    path = README.parent / "docs" / "rules.md"
    assert path.read_text(encoding="utf-8") == render_rules_doc(), "docs/rules.md is stale: run `make docs`"
