"""Purpose limitation, proved over every route: identifiable records go only to the provider that
sent them, and to the privacy officer under a Privacy Act request (the stated purpose).

The calls are the access matrix's (tests/web/conftest.py, `access_matrix`): every route of the
app, enumerated from it, as every persona, with provider A's and B's objects, on SQLite and
PostgreSQL. "Identity" is any seeded family name, given name or date of birth (ISO, dd/mm/yyyy
or written out), looked for in the body (JSON also decoded), the Location and the
Content-Disposition of every response: pages, JSON, CSV and JSON downloads alike.

- Nobody but a provider's own personas and the privacy officer is ever given identity
  (nobody signed in, analysts, research requesters, administrators, a half-signed-in session).
- A provider's own personas get their own provider's identity only in downloads of their own
  submissions (the rejected rows to fix: Content-Disposition: attachment), never on a page or
  in JSON, and never another provider's.
- The privacy officer gets identity only on routes that name a Privacy Act request, and only
  for a request that exists (an unknown reference is a 404); and then only the request's
  subject: the other people held, even by the same provider with the same family name, stay
  closed. Every such route is listed in the failure message if this changes.
"""

from __future__ import annotations

import pytest

from cldx.access.roles import READ_IDENTITY
from cldx.config import Settings

from .conftest import MATRIX_PEOPLE, PURPOSE_PARAMS, UNKNOWN_REFERENCE, MatrixCall, MatrixRun, date_forms


@pytest.fixture
def web_settings(matrix_settings: Settings) -> Settings:
    return matrix_settings


def identity_in(run: MatrixRun, call: MatrixCall) -> dict[str, list[str]]:
    """Each provider's identity values the response holds."""
    found = {label: [v for v in p.identity if v.lower() in call.text] for label, p in run.providers.items()}
    return {label: values for label, values in found.items() if values}


def purpose_route(run: MatrixRun, call: MatrixCall) -> bool:
    spec = next(s for s in run.routes if s.path == call.route and s.method == call.method)
    return bool(PURPOSE_PARAMS & set(spec.path_params))


def line(call: MatrixCall, found: dict[str, list[str]] | None = None) -> str:
    return f"{call.method} {call.url} [{call.variant}] as {call.persona}: {call.status}" + (f" holds {found}" if found else "")


def test_nobody_outside_the_provider_or_the_privacy_officer_gets_identity(access_matrix: MatrixRun) -> None:
    run = access_matrix
    outsiders = {p.name for p in run.personas if p.provider is None and READ_IDENTITY not in p.capabilities}
    assert {"anonymous", "analyst", "research requester", "administrator"} <= outsiders
    leaks = [line(c, found) for c in run.calls if c.persona in outsiders and (found := identity_in(run, c))]
    assert not leaks, f"identity given to roles that may never have it ({run.backend}):\n" + "\n".join(leaks)


def test_providers_get_their_own_identity_only_in_their_own_downloads(access_matrix: MatrixRun) -> None:
    run = access_matrix
    problems, downloads = [], {}
    for call in run.calls:
        persona = run.persona(call.persona)
        if persona.provider is None:
            continue
        for label, values in identity_in(run, call).items():
            if label != persona.provider:
                problems.append(line(call, {label: values}) + f" (provider {label}'s, not {persona.provider}'s)")
            elif call.target != label or not call.attachment:
                problems.append(line(call, {label: values}) + " (outside a download of the provider's own submission)")
            else:
                downloads.setdefault(persona.name, set()).add(call.route)
    assert not problems, f"identity outside its provider's own downloads ({run.backend}):\n" + "\n".join(problems)
    # Not vacuous: each provider persona downloads its rejected rows, names and all.
    for persona in (p for p in run.personas if p.provider is not None):
        assert "/api/v1/submissions/{submission_id}/rejected" in downloads.get(persona.name, set()), persona.name
        rejected = next(c for c in run.calls if c.persona == persona.name and c.route.endswith("/rejected") and c.status == 200
                        and run.providers[persona.provider].stored_id in c.url and c.variant == "*/*")
        _, family, given, born, _ = MATRIX_PEOPLE[persona.provider]["rejected"][0]
        assert family.lower() in rejected.text and given.lower() in rejected.text and born.isoformat() in rejected.text


def test_the_privacy_officer_gets_identity_only_for_a_stated_purpose(access_matrix: MatrixRun) -> None:
    run = access_matrix
    officer = next(p for p in run.personas if READ_IDENTITY in p.capabilities)
    _, family, given, born, _ = MATRIX_PEOPLE["A"]["stored"][0]  # whom the seeded request is about
    subject = {family, given, *date_forms(born)}
    problems, opened = [], []
    for call in (c for c in run.calls if c.persona == officer.name):
        found = identity_in(run, call)
        if not found:
            continue
        opened.append(line(call, found))
        if not purpose_route(run, call):
            problems.append(line(call, found) + " (a route that names no Privacy Act request)")
        elif UNKNOWN_REFERENCE in call.url or run.reference not in call.url:
            problems.append(line(call, found) + " (no such request)")
        beyond = [v for values in found.values() for v in values if v not in subject]
        if beyond:
            problems.append(line(call) + f" opened {beyond}: people the request is not about")
    assert not problems, f"identity given to the privacy officer without a stated purpose ({run.backend}):\n" + "\n".join(problems)
    for call in run.calls:
        if call.persona == officer.name and purpose_route(run, call) and UNKNOWN_REFERENCE in call.url:
            assert call.status == 404, line(call)
    # Not vacuous: under the request, the officer does find and export the subject's records.
    purpose_routes = {s.path for s in run.routes if PURPOSE_PARAMS & set(s.path_params)}
    if not purpose_routes:
        assert not opened  # no route states a purpose yet: then nothing at all opens identity to the officer
        return
    exported = [c for c in run.calls if c.persona == officer.name and c.route.endswith("/export") and run.reference in c.url]
    assert exported and all(c.status == 200 and c.attachment for c in exported), [line(c) for c in exported]
    assert all(v.lower() in exported[0].text for v in (family, given, born.isoformat())), exported[0].text[:2000]
    print(f"\n{run.backend}: identity reached the privacy officer on {len(opened)} calls, all under request {run.reference}")
