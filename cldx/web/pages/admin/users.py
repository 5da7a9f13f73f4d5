"""The users page: accounts, their roles, passwords and second factors (MANAGE_USERS).

- `GET /admin/users`: every user (username, name, active, locked, roles with their provider,
  second factor, last sign-in) and the form to add one; `?user=NAME` opens the panel to grant
  or withdraw a role, disable the account, or reset its password or second factor.
- `POST /admin/users`, `/admin/users/roles`, `/disable`, `/password`, `/second-factor`.

Every change goes through `cldx.access.users`, which checks the rules (password policy, role
rules), records the change in the audit trail and signs the user out where it should; this
module only reads the form and says what went wrong next to the field. A new user whose roles
need a second factor sets it up at their first sign-in: no secret is made or shown here, and
no password hash or second-factor secret ever reaches the page.

An administrator changes other people's accounts, never their own: granting oneself a role
that reads client data (or resetting one's own second factor from a stolen session) is what
a second administrator is there to see. The command line (`cldx users`) remains for the rest.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Form, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from cldx.access import users
from cldx.access.errors import InvalidUsername, PasswordRejected, UnknownProvider, UnknownUser, UsernameTaken
from cldx.access.passwords import MAX_LENGTH, check_password_policy
from cldx.access.roles import (
    ADMINISTRATOR, ANALYST, MANAGE_USERS, PRIVACY_OFFICER, PROVIDER_ROLES, PROVIDER_SUBMITTER, PROVIDER_VIEWER, RESEARCH_REQUESTER, ROLES,
    RoleError, needs_second_factor, role_problems,
)
from cldx.store.db import read_transaction, write_transaction
from cldx.store.models import Provider, User
from cldx.web.auth import forbidden, principal_of
from cldx.web.deps import SessionDep
from cldx.web.pages.privacy import needs
from cldx.web.templating import render

from .forms import NO_CONTROL, FormErrors, Notices, clean, has_control

NO_USERS = "Your role does not manage users."
NO_SUCH_USER = "There is no user with that username."
NOT_YOURSELF = "An administrator does not change their own account here: another administrator does it, and the audit trail shows who."

# What each role may do, in the words the form shows beside it.
ROLE_NOTES: dict[str, str] = {
    PROVIDER_SUBMITTER: "Sends its provider's records and sees that provider's own data. Needs the provider.",
    PROVIDER_VIEWER: "Sees its provider's own data; sends nothing. Needs the provider.",
    ANALYST: "The ministry's disclosure-controlled tables and pseudonymised records; never names. Needs a second factor.",
    RESEARCH_REQUESTER: "An analyst who may also ask for research (IDI) extracts. Needs the analyst role too.",
    PRIVACY_OFFICER: "Privacy Act requests, the audit trail, deciding research extracts. Needs a second factor.",
    ADMINISTRATOR: "Users, roles, API tokens and the registry; no client data. Needs a second factor.",
}
assert set(ROLE_NOTES) == set(ROLES)

EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")
MAX_DISPLAY_NAME = 200
MAX_EMAIL = 320

NOTICES = Notices(
    user_added="Added {item}.",
    user_added_code="Added {item}. Their roles need a one-time code: they set up their second factor when they first sign in.",
    role_granted="Granted the role to {item}. Their roles are listed below.",
    role_granted_code="Granted the role to {item}. It needs a one-time code: they set up their second factor when they next sign in.",
    role_withdrawn="Withdrew the role from {item}. Their roles are listed below.",
    role_unchanged="{item} already held that role: nothing changed.",
    user_disabled="{item} is disabled: they are signed out, cannot sign in, and their personal API tokens no longer work.",
    password_reset="Set a new password for {item}: the account is unlocked and signed out everywhere. Give them the password directly.",
    second_factor_reset="Reset {item}'s second factor: they set up a new one when they next sign in. The account is unlocked and signed "
                        "out everywhere.",
)

router = APIRouter(prefix="/users", dependencies=[needs(MANAGE_USERS, NO_USERS)])

UsernameForm = Annotated[str, Form(max_length=200)]
PasswordForm = Annotated[str, Form(max_length=4 * MAX_LENGTH)]


def _problems_text(problems: list[str]) -> str:
    return " ".join(problems)


def _context(request: Request, session: Session, *, manage: str = "", errors: FormErrors | None = None,
             values: dict[str, Any] | None = None, notice: str = "") -> dict[str, Any]:
    everyone = users.list_users(session)
    managed = next((u for u in everyone if u.username == users.normalise_username(manage)), None) if manage else None
    if manage and managed is None:
        raise HTTPException(404, detail=NO_SUCH_USER)
    providers = [(code, f"{code} {name}") for code, name in session.execute(select(Provider.code, Provider.name).order_by(Provider.code))]
    return {
        "users": everyone,
        "managed": managed,
        "is_self": managed is not None and managed.username == principal_of(request).name,
        "providers": providers,
        "roles": [(role, role, ROLE_NOTES[role]) for role in ROLES],
        "role_options": [(role, role) for role in ROLES],
        "provider_roles": sorted(PROVIDER_ROLES),
        "errors": errors or FormErrors(),
        "values": values or {"username": "", "display_name": "", "email": "", "roles": [], "provider": ""},
        "grant": {"role": "", "provider": ""},
        "notice": notice,
    }


@router.get("", response_class=HTMLResponse, name="admin_users_page")
def users_page(
    request: Request,
    session: SessionDep,
    user: Annotated[str, Query(max_length=200, pattern=NO_CONTROL)] = "",
    done: Annotated[str, Query(max_length=40, pattern=NO_CONTROL)] = "",
    item: Annotated[str, Query(max_length=100, pattern=NO_CONTROL)] = "",
) -> HTMLResponse:
    return render(request, "admin_users.html", _context(request, session, manage=user.strip(), notice=NOTICES.message(done, item)))


def _page_after(request: Request, *, manage: str, errors: FormErrors, values: dict[str, Any] | None = None,
                grant: dict[str, str] | None = None) -> HTMLResponse:
    """The page again, at 422, with the failed form's problems; read afresh (the request's own read may predate a write)."""
    with read_transaction(request.app.state.engine) as session:
        context = _context(request, session, manage=manage, errors=errors, values=values)
        if grant is not None:
            context["grant"] = grant
        return render(request, "admin_users.html", context, status_code=422)


# --- Adding a user -------------------------------------------------------------------------------


@router.post("", name="admin_add_user")
def add_user(
    request: Request,
    session: SessionDep,
    username: UsernameForm = "",
    display_name: Annotated[str, Form(max_length=2 * MAX_DISPLAY_NAME)] = "",
    email: Annotated[str, Form(max_length=2 * MAX_EMAIL)] = "",
    password: PasswordForm = "",
    roles: Annotated[list[str], Form()] = [],  # noqa: B006 - FastAPI copies a form default per request
    provider: Annotated[str, Form(max_length=40)] = "",
) -> Response:
    values = {"username": clean(username), "display_name": clean(display_name), "email": clean(email),
              "roles": [r for r in roles if r in ROLES], "provider": clean(provider)}
    errors = FormErrors("add")
    name = users.normalise_username(values["username"])
    if not users.USERNAME_PATTERN.fullmatch(name) or name in users.RESERVED_USERNAMES:
        errors.add("username", "Use 2 to 100 lower-case letters, digits and . _ @ + - (an email address works), starting with a letter "
                               "or digit" + (", and not a reserved name." if name in users.RESERVED_USERNAMES else "."))
    elif session.scalar(select(User.id).where(User.username == name)) is not None:
        errors.add("username", f"There is already a user {name}: choose another username, or change theirs from the list.")
    if has_control(values["display_name"]) or len(values["display_name"]) > MAX_DISPLAY_NAME:
        errors.add("display_name", f"Write the name as plain text, up to {MAX_DISPLAY_NAME} characters.")
    if values["email"] and (not EMAIL.fullmatch(values["email"]) or len(values["email"]) > MAX_EMAIL):
        errors.add("email", "Write the email address as name@example.govt.nz, or leave it empty.")
    if problems := check_password_policy(password, name):
        errors.add("password", _problems_text(problems))
    if any(r not in ROLES for r in roles):
        errors.add("roles", "Choose roles from the list.")
    elif not values["roles"]:
        errors.add("roles", "Choose at least one role: a user without a role can do nothing.")
    provider_id = None
    wants_provider = bool(PROVIDER_ROLES & set(values["roles"]))
    if values["provider"]:
        provider_id = session.scalar(select(Provider.id).where(Provider.code == values["provider"]))
        if provider_id is None:
            errors.add("provider", f"There is no provider {values['provider']!r}: choose one from the list.")
        elif not wants_provider:
            errors.add("provider", "Leave the provider empty: only the provider roles (provider-submitter, provider-viewer) take one.")
    elif wants_provider:
        errors.add("provider", "Choose the provider the provider roles are for.")
    if "roles" not in errors.fields and "provider" not in errors.fields:
        grants = {(r, provider_id if r in PROVIDER_ROLES else None) for r in values["roles"]}
        if problems := role_problems(grants):
            errors.add("roles", _problems_text(problems))
    if not errors:
        grants_by_code = [(r, values["provider"] if r in PROVIDER_ROLES else None) for r in values["roles"]]
        try:
            with write_transaction(request.app.state.engine) as writer:
                users.add_user(writer, name, password, values["display_name"], roles=grants_by_code, email=values["email"] or None,
                               actor=principal_of(request).name)
        except (InvalidUsername, UsernameTaken) as exc:  # another administrator took the name a moment ago
            errors.add("username", str(exc))
        except PasswordRejected as exc:
            errors.add("password", _problems_text(exc.problems))
        except RoleError as exc:
            errors.add("roles", _problems_text(exc.problems))
        except UnknownProvider as exc:
            errors.add("provider", str(exc))
        else:
            done = "user-added-code" if needs_second_factor(values["roles"]) else "user-added"
            return NOTICES.redirect(request, "/admin/users", done, name, user=name)
    return _page_after(request, manage="", errors=errors, values=values)


# --- Changing a user -----------------------------------------------------------------------------


def _other_user(request: Request, session: Session, username: str) -> User:
    """The user the form names: 404 when there is none, 403 when it is the administrator themself."""
    try:
        user = users.get_user(session, username) if username.strip() else None
    except UnknownUser:
        user = None
    if user is None:
        raise HTTPException(404, detail=NO_SUCH_USER)
    if user.username == principal_of(request).name:
        raise forbidden(NOT_YOURSELF)
    return user


@router.post("/roles", name="admin_change_role")
def change_role(
    request: Request,
    session: SessionDep,
    username: UsernameForm = "",
    role: Annotated[str, Form(max_length=40)] = "",
    provider: Annotated[str, Form(max_length=40)] = "",
    action: Annotated[str, Form(max_length=10)] = "grant",
) -> Response:
    """Grant a role, or withdraw one (`action=withdraw`): the rules are `set_role`'s."""
    user = _other_user(request, session, username)
    role, provider, remove = role.strip(), provider.strip(), action == "withdraw"
    form = "withdraw" if remove else "grant"
    errors = FormErrors(form)
    if action not in ("grant", "withdraw"):
        errors.add("role", "Say whether to grant or withdraw the role.")
    elif role not in ROLES:
        errors.add("role", "Choose a role from the list.")
    elif not remove and role in PROVIDER_ROLES and not provider:
        errors.add("provider", f"Choose the provider the {role} role is for.")
    elif role not in PROVIDER_ROLES and provider:
        errors.add("provider", f"Leave the provider empty: the {role} role is ministry-wide.")
    if not errors:
        try:
            with write_transaction(request.app.state.engine) as writer:
                changed = users.set_role(writer, user.username, role, provider or None, remove=remove, actor=principal_of(request).name)
                code_needed = (changed and not remove and writer.get(User, user.id).totp_secret is None
                               and users.second_factor_required(writer, writer.get(User, user.id)))
        except RoleError as exc:
            errors.add("role", _problems_text(exc.problems))
        except UnknownProvider:
            errors.add("provider", f"There is no provider {provider!r}: choose one from the list.")
        else:
            done = ("role-withdrawn" if remove else "role-granted-code" if code_needed else "role-granted") if changed else "role-unchanged"
            return NOTICES.redirect(request, "/admin/users", done, user.username, user=user.username)
    return _page_after(request, manage=user.username, errors=errors, grant={"role": role, "provider": provider} if not remove else None)


@router.post("/disable", name="admin_disable_user")
def disable_user(request: Request, session: SessionDep, username: UsernameForm = "") -> Response:
    user = _other_user(request, session, username)
    with write_transaction(request.app.state.engine) as writer:
        users.disable(writer, user.username, actor=principal_of(request).name)
    return NOTICES.redirect(request, "/admin/users", "user-disabled", user.username, user=user.username)


@router.post("/password", name="admin_reset_password")
def reset_password(request: Request, session: SessionDep, username: UsernameForm = "", password: PasswordForm = "") -> Response:
    user = _other_user(request, session, username)
    errors = FormErrors("password")
    if problems := check_password_policy(password, user.username):
        errors.add("password", _problems_text(problems))
    else:
        try:
            with write_transaction(request.app.state.engine) as writer:
                users.reset_password(writer, user.username, password, actor=principal_of(request).name)
        except PasswordRejected as exc:
            errors.add("password", _problems_text(exc.problems))
        else:
            return NOTICES.redirect(request, "/admin/users", "password-reset", user.username, user=user.username)
    return _page_after(request, manage=user.username, errors=errors)


@router.post("/second-factor", name="admin_reset_second_factor")
def reset_second_factor(request: Request, session: SessionDep, username: UsernameForm = "") -> Response:
    user = _other_user(request, session, username)
    with write_transaction(request.app.state.engine) as writer:
        users.reset_second_factor(writer, user.username, actor=principal_of(request).name)
    return NOTICES.redirect(request, "/admin/users", "second-factor-reset", user.username, user=user.username)
