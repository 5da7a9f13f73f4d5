"""The password policy and argon2id hashing: what is refused, and that hashes verify and age."""

from __future__ import annotations

from importlib.resources import files

from argon2 import PasswordHasher

from cldx.access.passwords import (
    MIN_LENGTH,
    check_password_policy,
    common_passwords,
    hash_password,
    needs_rehash,
    verify_password,
)

GOOD = "tuatara kettle orbit"


def test_policy_accepts_a_long_uncommon_passphrase():
    assert check_password_policy(GOOD, "alice") == []


def test_policy_rejects_a_password_shorter_than_the_minimum():
    assert MIN_LENGTH == 12
    problems = check_password_policy("kettle-orbi", "alice")  # 11 characters
    assert len(problems) == 1 and "at least 12" in problems[0]


def test_policy_rejects_a_common_password_whatever_its_case():
    assert any("most commonly used" in p for p in check_password_policy("PassWord", "alice"))
    assert any("most commonly used" in p for p in check_password_policy("trustno1", "alice"))


def test_policy_rejects_a_common_password_padded_to_length():
    problems = check_password_policy("Password2024!", "alice")
    assert problems == ["That is a common password ('password') with digits or symbols added; choose something less predictable."]


def test_policy_rejects_the_username_in_the_password():
    assert any("username" in p for p in check_password_policy("alice.smith", "alice.smith"))
    assert any("username" in p for p in check_password_policy("ALICE.SMITH kettle orbit", "alice.smith"))


def test_policy_rejects_a_repeated_piece():
    assert any("repeating" in p for p in check_password_policy("abcabcabcabc", "alice"))
    assert any("repeating" in p for p in check_password_policy("zzzzzzzzzzzzzz", "alice"))


def test_common_list_ships_with_the_package_and_names_its_source():
    text = files("cldx.access").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    assert text.startswith("# ") and "SecLists" in text.splitlines()[0]
    listed = common_passwords()
    assert {"password", "123456", "qwerty", "letmein"} <= listed and len(listed) > 1000


def test_hash_is_argon2id_and_verifies_only_the_right_password():
    stored = hash_password(GOOD)
    assert stored.startswith("$argon2id$") and GOOD not in stored
    assert verify_password(stored, GOOD)
    assert not verify_password(stored, GOOD + "!")
    assert not verify_password("not a hash", GOOD)
    assert hash_password(GOOD) != stored  # salted


def test_needs_rehash_when_the_parameters_changed():
    weaker = PasswordHasher(time_cost=1, memory_cost=8192, parallelism=1).hash(GOOD)
    assert verify_password(weaker, GOOD)  # still opens: parameters travel with the hash
    assert needs_rehash(weaker)
    assert not needs_rehash(hash_password(GOOD))
