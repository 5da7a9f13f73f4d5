"""SLK-581 against the shared vectors, and the keyed pseudonym's properties."""

from __future__ import annotations

import json
from datetime import date
from importlib import resources

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cldx.identity.slk import fold, person_key, slk581

VECTORS = json.loads(resources.files("cldx.identity").joinpath("slk581_vectors.json").read_text(encoding="utf-8"))["vectors"]
SECRET = b"k" * 32


@pytest.mark.parametrize("vector", VECTORS, ids=[v["note"] for v in VECTORS])
def test_slk581_matches_the_shared_vectors(vector):
    got = slk581(vector["family_name"], vector["given_names"], date.fromisoformat(vector["date_of_birth"]), vector["gender"])
    assert got == vector["slk"]


def test_folding_drops_marks_and_non_letters():
    assert fold("Pōkai") == "POKAI"
    assert fold("Te Whāiti-O'Brien") == "TEWHAITIOBRIEN"
    assert fold(None) == ""


@given(st.text(max_size=30), st.text(max_size=30), st.dates(), st.sampled_from(["1", "11", "2", "21", "3", "31", "9", "99", ""]))
def test_slk_is_always_14_characters_of_the_right_kinds(family, given_names, born, gender):
    slk = slk581(family, given_names, born, gender)
    assert len(slk) == 14
    assert all(c.isupper() or c in "29" for c in slk[:5])
    assert slk[5:13].isdigit() and slk[13] in "1239"


def test_person_key_links_the_same_person_and_hides_the_slk():
    key = person_key("MIHAN191220002", SECRET)
    assert key == person_key("MIHAN191220002", SECRET)
    assert key != person_key("MIHAN191220002", b"x" * 32)
    assert "MIHAN" not in key and len(key) == 64
    with pytest.raises(ValueError):
        person_key("MIHAN191220002", b"short")
