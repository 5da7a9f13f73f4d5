"""Passwords: the policy a new password must meet, and argon2id hashing.

Owns what makes a password acceptable and how it is stored; never stores or logs a password
itself. The common-password list ships with the package (`common_passwords.txt`, its source in
its first line).
"""

from __future__ import annotations

import re
from functools import lru_cache
from importlib.resources import files

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

# NIST SP 800-63B allows 8 characters for a memorised secret chosen by its user; this system
# holds identifying data about vulnerable people, so we ask for 12: long enough that a pass
# phrase is the easy way to meet it.
MIN_LENGTH = 12
# A ceiling only so nobody can make the server hash megabytes per request; NIST asks that at
# least 64 characters be allowed.
MAX_LENGTH = 256

# argon2id with argon2-cffi's defaults (RFC 9106's second recommended option: 64 MiB, 3 passes,
# 4 lanes). When these defaults change in a later release, `needs_rehash` says so and the next
# successful sign-in stores a new hash.
HASHER = PasswordHasher()


@lru_cache(maxsize=1)
def common_passwords() -> frozenset[str]:
    """The bundled list of the most common passwords, lower-cased."""
    text = files("cldx.access").joinpath("common_passwords.txt").read_text(encoding="utf-8")
    return frozenset(line.strip().lower() for line in text.splitlines() if line.strip() and not line.startswith("#"))


def _core(password: str) -> str:
    """The password without the digits and symbols people pad a common word with ("Password2024!")."""
    return re.sub(r"^[\W\d_]+|[\W\d_]+$", "", password.lower())


def _is_repetition(password: str) -> bool:
    """True when the password is one piece said twice or more ("abcabcabcabc", "dragondragon")."""
    length = len(password)
    return any(length % size == 0 and password == password[:size] * (length // size) for size in range(1, length // 2 + 1))


def check_password_policy(password: str, username: str = "") -> list[str]:
    """Every way `password` falls short of the policy, as sentences for the person choosing it; [] when it is fine."""
    problems = []
    if len(password) < MIN_LENGTH:
        problems.append(f"Use at least {MIN_LENGTH} characters (a few unrelated words make a good password).")
    if len(password) > MAX_LENGTH:
        problems.append(f"Use at most {MAX_LENGTH} characters.")
    lowered, core = password.lower(), _core(password)
    common = common_passwords()
    if lowered in common:
        problems.append("That is one of the most commonly used passwords; choose something less predictable.")
    elif len(core) >= 4 and core in common:
        problems.append(f"That is a common password ({core!r}) with digits or symbols added; choose something less predictable.")
    if _is_repetition(lowered):
        problems.append("Do not make a password by repeating the same characters or word.")
    name = username.strip().lower()
    if name and (lowered == name or (len(name) >= 3 and name in lowered)):
        problems.append("Do not use your username in your password.")
    return problems


def hash_password(password: str) -> str:
    """The argon2id hash to store (salted; it encodes its own parameters)."""
    return HASHER.hash(password)


def verify_password(password_hash: str, password: str) -> bool:
    """True when `password` matches the stored hash; a malformed hash never matches."""
    try:
        return HASHER.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(password_hash: str) -> bool:
    """True when the hash was made with other parameters than today's (re-hash at the next sign-in)."""
    return HASHER.check_needs_rehash(password_hash)


@lru_cache(maxsize=1)
def _decoy_hash() -> str:
    return HASHER.hash("a password nobody has, hashed once so unknown users cost the same")


def spend_verification_time(password: str) -> None:
    """Verify against a decoy hash and discard the answer: an unknown or refused username takes
    as long as a known one, so response times do not say which usernames exist."""
    verify_password(_decoy_hash(), password)
