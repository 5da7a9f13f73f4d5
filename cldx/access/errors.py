"""Why an access operation was refused: one exception class per reason, each with a stable `code`.

The CLI prints the message; the web app will map them to answers (an unknown user or token to
404 for someone allowed to ask, a rule broken to 422). `RoleError` lives with the role rules in
`cldx.access.roles`.
"""

from __future__ import annotations


class AccessError(Exception):
    """Base of every refusal in `cldx.access`."""

    code = "access-error"


class InvalidUsername(AccessError, ValueError):
    code = "invalid-username"


class UsernameTaken(AccessError, ValueError):
    code = "username-taken"


class UnknownUser(AccessError, LookupError):
    code = "unknown-user"


class UnknownProvider(AccessError, LookupError):
    code = "unknown-provider"


class UnknownToken(AccessError, LookupError):
    code = "unknown-token"


class PasswordRejected(AccessError, ValueError):
    """The password breaks the policy; `problems` lists each way, as sentences for the user."""

    code = "password-rejected"

    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems))
        self.problems = problems


class AlreadyEnrolled(AccessError, ValueError):
    """A second factor is already set up: only an administrator's reset clears it, so a stolen
    password alone can never replace it."""

    code = "second-factor-enrolled"


class TokenRefused(AccessError, ValueError):
    """A token cannot be issued as asked (wrong owner for its kind, a disabled user, a past expiry...)."""

    code = "token-refused"
