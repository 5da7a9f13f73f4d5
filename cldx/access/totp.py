"""Time-based one-time codes (RFC 6238): secrets, provisioning URIs, checking a code once.

Owns the second factor's arithmetic and how its secret is kept: sealed, like identifying
values, because it is a shared secret (anyone holding it can make codes), not something a hash
could stand in for. Access may not import identity, so the sealing is done by whatever the
caller passes in with `.seal(value, place)` / `.open(token, place)` (the CLI and web app pass
`vault_of(engine).keys`).
"""

from __future__ import annotations

import hmac
from datetime import datetime, timezone
from typing import Protocol

import pyotp

ISSUER = "cldx"
DIGITS = 6
STEP_SECONDS = 30
# Codes from one step either side of now are accepted: phones' clocks drift, and a code typed
# in the last seconds of its step arrives in the next.
DRIFT_STEPS = 1
# Where the sealed secret is kept; sealing binds the value to it (a copy elsewhere won't open).
SECRET_PLACE = "app_user.totp_secret"


class Sealer(Protocol):
    """Anything that seals and opens text for a place, like `cldx.identity.vault.KeyRing`."""

    def seal(self, value: str, place: str) -> str: ...

    def open(self, token: str, place: str) -> str: ...


def new_secret() -> str:
    """A new random base32 secret (160 bits, as RFC 4226 recommends)."""
    return pyotp.random_base32()


def provisioning_uri(secret: str, username: str) -> str:
    """The `otpauth://` URI an authenticator app reads (usually as a QR code)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).provisioning_uri(name=username, issuer_name=ISSUER)


def step_at(moment: datetime) -> int:
    """The time step a moment falls in (Unix seconds // 30)."""
    return int(moment.timestamp()) // STEP_SECONDS


def code_at(secret: str, step: int) -> str:
    """The code for a time step (what the user's app shows during it)."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=STEP_SECONDS).generate_otp(step)


def verify(secret: str, code: str, last_step: int | None, now: datetime | None = None) -> int | None:
    """The step a code belongs to when it is accepted, else None.

    Accepted: the code of the current step or one either side, for a step after `last_step`
    (the step of the code last accepted), so a code seen over someone's shoulder or replayed
    from a log cannot be used again. Store the returned step as the new `last_step`.
    """
    code = "".join(code.split())
    if len(code) != DIGITS or not code.isdigit():
        return None
    current = step_at(now or datetime.now(timezone.utc))
    for step in range(current - DRIFT_STEPS, current + DRIFT_STEPS + 1):
        if last_step is not None and step <= last_step:
            continue
        if hmac.compare_digest(code_at(secret, step), code):
            return step
    return None


def seal_secret(sealer: Sealer, secret: str) -> str:
    return sealer.seal(secret, SECRET_PLACE)


def open_secret(sealer: Sealer, sealed: str) -> str:
    return sealer.open(sealed, SECRET_PLACE)
