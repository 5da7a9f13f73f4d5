"""docs/data-standard.md: generated from the definitions, and kept in step with them."""

from __future__ import annotations

from pathlib import Path

import pytest

from cldx.standard import RECORD_TYPES, REGISTRY_FILES, SEED_SERVICE_LINES, STANDARD_VERSION, code_set, code_sets, load_instruments
from cldx.standard.docs import DOCS_PATH, LARGE_CODE_SETS, render_docs

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def docs() -> str:
    return render_docs()


def section(docs: str, heading: str) -> str:
    """The text from a `## heading` to the next `## ` heading."""
    start = docs.index(heading)
    end = docs.find("\n## ", start + len(heading))
    return docs[start : end if end != -1 else None]


def test_docs_in_the_repository_match_a_fresh_render(docs):
    path = REPO / DOCS_PATH
    assert path.exists(), f"{DOCS_PATH} is missing: run `make standard-docs` or `cldx standard docs`."
    assert path.read_text(encoding="utf-8") == docs, (
        f"{DOCS_PATH} is out of date with cldx/standard: run `make standard-docs` or `cldx standard docs` and commit the result."
    )


def test_docs_state_the_standard_version(docs):
    assert docs.startswith("# ") and f"version {STANDARD_VERSION}" in docs.splitlines()[0]


@pytest.mark.parametrize("name", list(RECORD_TYPES))
def test_docs_have_a_row_for_every_field_and_state_the_key(docs, name):
    rt = RECORD_TYPES[name]
    text = section(docs, f"## {rt.title} records: `{rt.file_name}`")
    for f in rt.fields:
        row = next((line for line in text.splitlines() if line.startswith(f"| `{f.name}`")), None)
        assert row is not None, f"{name}.{f.name} is not in the docs"
        assert f.requirement in row and str(f.type) in row
    assert "Key: " + " + ".join(f"`{k}`" for k in rt.key) in text


@pytest.mark.parametrize("name", list(REGISTRY_FILES))
def test_docs_describe_every_registry_file_for_ministry_staff(docs, name):
    rt = REGISTRY_FILES[name]
    text = section(docs, "## Registry files")
    assert f"`{rt.file_name}`" in text
    for f in rt.fields:
        assert f"| `{f.name}`" in text


def test_docs_list_small_code_sets_in_full_and_only_name_large_ones(docs):
    for name in ("end_reason", "relationship", "gender", "phase", "yes_no", "action", "outcome_dimension", "outcome_measure"):
        for c in code_set(name):
            assert f"| `{c.code}` |" in docs, f"{name} {c.code} missing"
    for instrument in load_instruments().values():
        for d in instrument.domains.values():
            assert f"| `{instrument.code}` | {instrument.label} | `{d.code}` | {d.label} | {d.min_score:g} to {d.max_score:g} | {d.better} |" in docs
    for name in LARGE_CODE_SETS:
        assert f"`{name}`" in docs
    assert "Rangaunu Harbour" not in docs  # an SA2: the 2,253 of them are not listed
    assert "| `0402` |" not in docs  # nor the iwi


def test_docs_give_every_code_set_source_and_version(docs):
    table = section(docs, "## Code sets")
    for cs in code_sets().values():
        assert f"| `{cs.name}` | {cs.title} | {cs.source} | {cs.version} | {len(cs)} |" in table


def test_docs_explain_iwi_levels_dates_and_withdrawals(docs):
    assert "`iwi_1`, `iwi_2` and `iwi_3`" in docs
    assert "level 2 (two digits" in docs
    assert "09/03/2017" in docs and "2017-03-09" in docs
    assert "`withdraw`" in section(docs, "## The `action` column")


def test_docs_list_the_service_lines_they_are_given():
    assert all(f"| `{s.code}` | {s.name} |" in render_docs() for s in SEED_SERVICE_LINES)
    custom = render_docs([("FS", "Family Start"), ("NEW_1", "A new line")])
    assert "| `NEW_1` | A new line |" in custom and "`SWIS`" not in section(custom, "## Service lines")
