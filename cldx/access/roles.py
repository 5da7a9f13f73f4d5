"""Roles: who may do what, which roles are bound to a provider, which need a second factor.

Owns the role names, the rules a user's set of roles must keep, what each role may do
(`CAPABILITIES`), and `Principal`: whoever is making a request (a signed-in user or an API
token), with the roles it acts under. Pages and API routes ask a principal `can(...)`; they
never test role names themselves.

The roles:
- provider-submitter: sends its provider's records (file, form or API) and sees everything of
  that provider's own: submissions, receipts, findings, records (names included: they are the
  provider's own data) and results. Bound to exactly one provider organisation, whatever
  number of contracts it holds.
- provider-viewer: sees the same as a submitter of its provider but sends nothing.
- analyst: the ministry's disclosure-controlled tables and pseudonymised records across
  providers; never names or exact dates of birth.
- research-requester: an analyst who may also request a research (IDI) extract. A separate
  role rather than a flag on analyst, so granting and withdrawing it is a role change like any
  other (audited, listed, carried by tokens); it needs analyst alongside it.
- privacy-officer: opens identifying values with a stated purpose (Privacy Act work), every
  opening audited; reads the audit trail; approves or refuses research extract requests (never
  their own: the two people rule is checked by user, not by role).
- administrator: users, roles, tokens and the registry; resets passwords and second factors;
  reads the audit trail. Sees no client data unless also given a role that does.

A user may hold several roles. All of a user's provider roles name the same provider: a person
working for two providers has two accounts, so nothing a provider sends can reach another.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

PROVIDER_SUBMITTER = "provider-submitter"
PROVIDER_VIEWER = "provider-viewer"
ANALYST = "analyst"
RESEARCH_REQUESTER = "research-requester"
PRIVACY_OFFICER = "privacy-officer"
ADMINISTRATOR = "administrator"

ROLES: tuple[str, ...] = (PROVIDER_SUBMITTER, PROVIDER_VIEWER, ANALYST, RESEARCH_REQUESTER, PRIVACY_OFFICER, ADMINISTRATOR)

# Bound to one provider organisation each; every other role is ministry-wide and names none.
PROVIDER_ROLES = frozenset({PROVIDER_SUBMITTER, PROVIDER_VIEWER})

# Roles that see across providers or change who sees what: a stolen password alone must not be
# enough for them, so signing in also needs a time-based one-time code.
SECOND_FACTOR_ROLES = frozenset({ANALYST, RESEARCH_REQUESTER, PRIVACY_OFFICER, ADMINISTRATOR})

# A role that only makes sense on top of another.
REQUIRES: dict[str, str] = {RESEARCH_REQUESTER: ANALYST}

# --- What a role may do -------------------------------------------------------------------

SUBMIT = "submit"                          # send records for a provider
VIEW_PROVIDER = "view-provider"            # a provider's own submissions, findings, records, results
VIEW_ANALYSIS = "view-analysis"            # ministry-wide disclosure-controlled tables, pseudonymised records
REQUEST_RESEARCH_EXTRACT = "request-research-extract"
DECIDE_RESEARCH_EXTRACT = "decide-research-extract"  # approve or refuse someone else's extract request
READ_IDENTITY = "read-identity"            # open names and dates of birth outside the provider, with a purpose
VIEW_AUDIT = "view-audit"
MANAGE_USERS = "manage-users"              # add, disable, roles, reset passwords and second factors
MANAGE_TOKENS = "manage-tokens"
MANAGE_REGISTRY = "manage-registry"        # providers, service lines, contracts

# Capabilities that apply to one provider only: asked with the provider they are wanted for.
PROVIDER_CAPABILITIES = frozenset({SUBMIT, VIEW_PROVIDER})

CAPABILITIES: dict[str, frozenset[str]] = {
    PROVIDER_SUBMITTER: frozenset({SUBMIT, VIEW_PROVIDER}),
    PROVIDER_VIEWER: frozenset({VIEW_PROVIDER}),
    ANALYST: frozenset({VIEW_ANALYSIS}),
    RESEARCH_REQUESTER: frozenset({REQUEST_RESEARCH_EXTRACT}),
    PRIVACY_OFFICER: frozenset({READ_IDENTITY, VIEW_AUDIT, DECIDE_RESEARCH_EXTRACT}),
    ADMINISTRATOR: frozenset({MANAGE_USERS, MANAGE_TOKENS, MANAGE_REGISTRY, VIEW_AUDIT}),
}

# A role held for a provider, or ministry-wide (None).
Grant = tuple[str, int | None]


class RoleError(ValueError):
    """A set of roles breaks the rules; `problems` says each way, as sentences."""

    code = "role-rules"

    def __init__(self, problems: list[str]) -> None:
        super().__init__(" ".join(problems))
        self.problems = problems


def role_problems(grants: Iterable[Grant]) -> list[str]:
    """Every rule the set of grants breaks (unknown role, provider missing or extra, a role without the one it needs)."""
    grants = set(grants)
    problems = []
    for role, provider_id in sorted(grants, key=lambda g: (ROLES.index(g[0]) if g[0] in ROLES else -1, g[1] or 0)):
        if role not in ROLES:
            problems.append(f"Unknown role {role!r}; roles are {', '.join(ROLES)}.")
        elif role in PROVIDER_ROLES and provider_id is None:
            problems.append(f"The {role} role needs the provider it is for.")
        elif role not in PROVIDER_ROLES and provider_id is not None:
            problems.append(f"The {role} role is ministry-wide and takes no provider.")
    if len({p for role, p in grants if role in PROVIDER_ROLES and p is not None}) > 1:
        problems.append("A user's provider roles must all be for one provider organisation (give someone working for two providers two accounts).")
    held = {role for role, _ in grants}
    for role, needed in REQUIRES.items():
        if role in held and needed not in held:
            problems.append(f"The {role} role needs the {needed} role too.")
    return problems


def check_roles(grants: Iterable[Grant]) -> None:
    """Raise `RoleError` when the grants break a rule."""
    problems = role_problems(grants)
    if problems:
        raise RoleError(problems)


def needs_second_factor(roles: Iterable[str]) -> bool:
    return any(role in SECOND_FACTOR_ROLES for role in roles)


# --- Who is asking ------------------------------------------------------------------------

VIA_PASSWORD = "password"              # a user signed in (with a second factor when a role needs one)
VIA_PERSONAL_TOKEN = "personal-token"  # a user's own API token: the user's roles at the time of use
VIA_SYSTEM_TOKEN = "system-token"      # a provider's case system: submits for that one provider


@dataclass(frozen=True)
class Principal:
    """Whoever is making a request, with the roles it acts under.

    `name` is what the audit trail records as the actor: the username (also when a user acts
    through a personal token) or the system token's name. `needs_second_factor` says whether
    signing in as these roles needs a one-time code; a token is itself the credential, issued
    by an administrator, so callers accept token principals without one.
    """

    name: str
    roles: frozenset[Grant]
    via: str = VIA_PASSWORD
    user_id: int | None = None
    token_id: int | None = None

    @property
    def provider_ids(self) -> frozenset[int]:
        """The providers whose own data this principal may see (empty for ministry-only principals)."""
        return frozenset(p for role, p in self.roles if role in PROVIDER_ROLES and p is not None)

    @property
    def role_names(self) -> frozenset[str]:
        return frozenset(role for role, _ in self.roles)

    def has(self, role: str) -> bool:
        return role in self.role_names

    @property
    def needs_second_factor(self) -> bool:
        return needs_second_factor(self.role_names)

    def can(self, capability: str, provider_id: int | None = None) -> bool:
        """Whether any role allows `capability`; a provider capability only for a provider that role is bound to."""
        for role, bound_to in self.roles:
            if capability in CAPABILITIES.get(role, frozenset()):
                if capability not in PROVIDER_CAPABILITIES or (provider_id is not None and provider_id == bound_to):
                    return True
        return False
