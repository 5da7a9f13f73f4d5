"""The full access matrix: every route x every persona x provider, on SQLite and PostgreSQL.

Two providers, A and B, each with a stored submission (two clients kept, one row rejected with
a finding) and a queued one. Every route of the app (enumerated from it, so a new route is in
the matrix at once) is called as every persona (nobody, A's and B's submitters, viewers and
system tokens, an analyst by session and by personal token, an analyst still waiting to give
their code, a research requester, the privacy officer, an administrator), with A's objects and
with B's: each of its submissions in the path, and for a write a body sending records for that
provider which would overwrite one of its clients and add another. Reads are asked for JSON,
CSV and anything; writes are sent as a form with a file and as JSON.

What must hold (the machinery is `access_matrix` in tests/web/conftest.py):
- no route answers 5xx to anyone;
- a provider's objects are refused to everyone but that provider's own personas (401, 403,
  404, 422, or 303 to sign-in), and given to them (200), so the matrix is not vacuous;
- no response to a persona outside a provider holds any of that provider's identifiers: client
  refs, names, dates of birth (ISO, dd/mm/yyyy and written out) or submission ids (other than
  the one the request itself named). Two stated exceptions: the privacy officer under a Privacy
  Act request (tests/web/test_purpose.py checks that is the only place identity reaches them),
  and the audit trail, which names submissions by id to those who read it (never a client);
- a write by anyone but the provider's own changes none of that provider's rows in any table;
- every route is one the matrix knows how to call: a route with a path or required query
  parameter it cannot fill fails this test by name, so it is added to the matrix consciously;
- a research extract request (approved, asked for by the research requester persona) is shown
  only to its requester and to the privacy officer, and taken once, by its requester only.

On PostgreSQL the app connects as a login role in cldx_app (no superuser), as deployed, so
row-level security is in force; the before/after comparison reads as the superuser.
"""

from __future__ import annotations

import os
from collections import Counter
from urllib.parse import unquote, urlsplit

import pytest

from cldx.access.roles import DECIDE_RESEARCH_EXTRACT, READ_IDENTITY, REQUEST_RESEARCH_EXTRACT, VIEW_AUDIT
from cldx.config import Settings

from .conftest import PROVIDER_PARAMS, SAFE, UNKNOWN_RESEARCH_REFERENCE, MatrixCall, MatrixRun

# The audit trail names what happened, submissions included (by id), to those who may read it.
AUDIT_TRAIL_ROUTES = {"/privacy/audit"}
SIGN_IN_PATHS = {"/sign-in", "/sign-in/code"}
REFUSED = {401, 403, 404, 422}


@pytest.fixture
def web_settings(matrix_settings: Settings) -> Settings:
    return matrix_settings


def refused(call: MatrixCall) -> bool:
    return call.status in REFUSED or (call.status == 303 and urlsplit(call.location).path in SIGN_IN_PATHS)


def route_params(run: MatrixRun, call: MatrixCall) -> set[str]:
    return set(next(spec.path_params for spec in run.routes if spec.path == call.route and spec.method == call.method))


def leaks(run: MatrixRun, call: MatrixCall) -> list[str]:
    """The identifiers of providers other than the persona's own that the response holds."""
    persona = run.persona(call.persona)
    if READ_IDENTITY in persona.capabilities and run.spec(call).states_purpose:
        return []  # the privacy officer under a stated purpose: tests/web/test_purpose.py
    asked = unquote(call.url).lower()
    found = []
    for label, provider in run.providers.items():
        if persona.provider == label:
            continue
        found += [f"{label}:{value}" for value in provider.identifiers if value.lower() in call.text]
        if not (call.route in AUDIT_TRAIL_ROUTES and VIEW_AUDIT in persona.capabilities):
            found += [f"{label}:submission {sid}" for sid in provider.submission_ids if sid in call.text and sid not in asked]
    return found


def test_every_route_is_in_the_matrix(access_matrix: MatrixRun) -> None:
    run = access_matrix
    assert not run.unknown_routes, (
        "Routes the access matrix does not know how to call (add their parameters to the matrix in tests/web/conftest.py, "
        "saying whose object each one names):\n" + "\n".join(run.unknown_routes))
    called = {(c.route, c.method) for c in run.calls}
    assert called == {(s.path, s.method) for s in run.routes}
    if os.environ.get("CLDX_MATRIX_TABLE") == "1":  # the whole table: CLDX_MATRIX_TABLE=1 pytest -s ...
        print("\n" + run.table())
    print(f"\n{run.backend}: {len(run.routes)} routes x {len(run.personas)} personas x providers A and B = {len(run.calls)} requests")


def test_zero_cross_provider_reads_or_writes(access_matrix: MatrixRun) -> None:
    run = access_matrix
    problems: list[str] = []
    for call in run.calls:
        persona = run.persona(call.persona)
        where = f"{call.method} {call.url} [{call.variant}] as {call.persona}"
        if call.error or call.status >= 500:
            problems.append(f"{where}: {call.status} {call.error}")
        owner = call.target is not None and persona.provider == call.target
        names_object = bool(PROVIDER_PARAMS & route_params(run, call))
        if names_object and call.method in SAFE:
            if owner and call.status != 200:
                problems.append(f"{where}: {call.status}, but it is the provider's own submission (over-blocking)")
            if not owner and not refused(call):
                problems.append(f"{where}: {call.status} for provider {call.target}'s submission (expected 401/403/404/422 or sign-in)")
        if call.changed:
            problems.append(f"{where}: changed provider {call.target}'s rows in {', '.join(call.changed)}")
        for leak in leaks(run, call):
            problems.append(f"{where}: {call.status} holds {leak}")
    problems += run.unattributed_changes
    counts = Counter((c.route, c.method, c.persona, c.target, c.status) for c in run.calls)
    summary = "\n".join(f"{m:6} {r:48} {p:24} {t or '-':2} {s}  x{n}" for (r, m, p, t, s), n in sorted(counts.items(), key=str))
    assert not problems, f"{len(problems)} problems on {run.backend}:\n" + "\n".join(problems[:200]) + "\n\nThe matrix:\n" + summary


def test_the_matrix_is_not_vacuous(access_matrix: MatrixRun) -> None:
    """The providers' own personas are given their own data, so a refusal above is a real one."""
    run = access_matrix
    for label, provider in run.providers.items():
        own = [c for c in run.calls if run.persona(c.persona).provider == label]
        for sid in provider.submission_ids:
            assert any(sid in c.text and c.status == 200 and sid not in c.url for c in own), (
                f"provider {label}'s personas never saw its submission {sid} listed:\n" + run.table(own))
        rejected_ref = provider.client_refs[2]
        assert any(rejected_ref.lower() in c.text and c.status == 200 for c in own), f"{label}'s rejected row never reached {label}"
        # A write by the provider itself succeeds, so the refusals of everyone else's writes are refusals, not bad bodies.
        sent = [c for c in own if c.route == "/api/v1/submissions" and c.method == "POST" and c.target == label]
        assert {c.status for c in sent if "submitter" in c.persona or "token" in c.persona} == {201}, run.table(sent)
        assert {c.status for c in sent if "viewer" in c.persona} == {403}, run.table(sent)


def test_a_research_extract_goes_only_to_its_requester_and_the_privacy_officer(access_matrix: MatrixRun) -> None:
    """The matrix's approved extract: read by its requester and the privacy officer (200), an unknown
    reference 404 to them; refused to everyone else; and made once, for its requester alone."""
    run = access_matrix
    assert run.research_reference
    research = [c for c in run.calls if run.spec(c).names_research_extract]
    problems = []
    for call in research:
        persona = run.persona(call.persona)
        may_see = bool({REQUEST_RESEARCH_EXTRACT, DECIDE_RESEARCH_EXTRACT} & persona.capabilities)
        where = f"{call.method} {call.url} [{call.variant}] as {call.persona}: {call.status}"
        if not may_see and not refused(call):
            problems.append(where + " (a role that neither asks for nor decides extracts)")
        if may_see and call.method in SAFE and not call.route.endswith("/download"):
            expected = 404 if UNKNOWN_RESEARCH_REFERENCE in call.url else 200
            if call.status != expected and not (call.variant == "text/csv" and call.status == 406):
                problems.append(where + f" (expected {expected})")
    taken = [c for c in research if c.route.endswith("/download") and c.status == 200]
    assert [(c.persona, c.attachment) for c in taken] == [("research requester", True)], run.table(taken)
    later = [c for c in research if c.route.endswith("/download") and c.persona == "research requester"
             and run.research_reference in c.url and c is not taken[0] and calls_after(run, taken[0], c)]
    assert later and {c.status for c in later} == {409}, run.table(later)
    assert not problems, f"{len(problems)} problems on {run.backend}:\n" + "\n".join(problems)


def calls_after(run: MatrixRun, first: MatrixCall, call: MatrixCall) -> bool:
    return run.calls.index(call) > run.calls.index(first)
