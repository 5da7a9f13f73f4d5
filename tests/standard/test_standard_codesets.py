"""The code sets the standard ships: unique codes, named sources, and consistent with the fields that use them."""

from __future__ import annotations

from collections import Counter

import pytest

from cldx.standard import RECORD_TYPES, REGISTRY_FILES, code_set, code_sets, load_instruments

ALL_FILES = [*RECORD_TYPES.values(), *REGISTRY_FILES.values()]


@pytest.mark.parametrize("name", list(code_sets()))
def test_code_set_has_no_duplicate_codes(name):
    counts = Counter(c.code for c in code_set(name))
    assert [code for code, n in counts.items() if n > 1] == []


@pytest.mark.parametrize("name", list(code_sets()))
def test_code_set_carries_a_title_source_and_version_and_labels_every_code(name):
    cs = code_set(name)
    assert cs.title.strip() and cs.source.strip() and cs.version.strip()
    assert len(cs) > 0
    assert all(c.label.strip() for c in cs)


@pytest.mark.parametrize("name", list(code_sets()))
def test_every_parent_of_a_classification_code_is_in_the_set_one_level_up(name):
    cs = code_set(name)
    if not any(c.level > 1 for c in cs) or name == "outcome_measure":  # measures' parents are dimensions
        return
    for c in cs:
        if c.level > 1:
            parent = cs.get(c.parent or "")
            assert parent is not None and parent.level == c.level - 1, f"{name} {c.code}: parent {c.parent}"


@pytest.mark.parametrize(("name", "field"), [(rt.name, f.name) for rt in ALL_FILES for f in rt.fields if f.code_set])
def test_every_coded_field_names_an_existing_code_set_and_its_example_is_accepted(name, field):
    f = next(rt for rt in ALL_FILES if rt.name == name).field(field)
    assert f.code_set in code_sets()
    assert f.accepted_codes(), f"{name}.{field} accepts no code at levels {f.levels}"
    if f.example:
        assert f.example in f.accepted_codes()


@pytest.mark.parametrize("name", list(RECORD_TYPES))
def test_every_key_field_is_required(name):
    rt = RECORD_TYPES[name]
    assert all(rt.field(k).required for k in rt.key)


def test_instrument_domains_have_a_range_and_a_better_direction_and_are_in_the_domain_code_set():
    domains = code_set("instrument_domain")
    for instrument in load_instruments().values():
        assert instrument.code in code_set("instrument")
        for d in instrument.domains.values():
            assert d.min_score < d.max_score
            assert d.better in ("higher", "lower")
            assert d.code in domains


def test_every_outcome_measure_belongs_to_a_dimension_and_every_dimension_has_measures():
    dimensions = code_set("outcome_dimension")
    measures = code_set("outcome_measure")
    assert all(m.parent in dimensions for m in measures)
    assert {m.parent for m in measures} == {d.code for d in dimensions}


def test_area_holds_every_territorial_authority_and_every_sa2():
    area = code_set("area")
    assert len(area) == len(code_set("territorial_authority")) + len(code_set("sa2"))
    assert all(ta.code in area for ta in code_set("territorial_authority"))
    assert all(area.get(sa2.code).parent == sa2.parent for sa2 in code_set("sa2"))
