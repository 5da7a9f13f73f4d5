"""`/api/v1/research-extracts`: ask, decide (never one's own), take once; who sees which request; bad
input a 422 naming the field; every step audited. On SQLite and on PostgreSQL, where the app
connects as a member of cldx_app (as deployed), on a store with no client data: the extract is
then empty but whole (what it holds is tests/export/test_research_extract.py's)."""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from datetime import date

import pytest
from fastapi.testclient import TestClient

from cldx.access import tokens
from cldx.access.audit import list_events
from cldx.access.roles import ADMINISTRATOR, ANALYST, RESEARCH_REQUESTER
from cldx.config import Settings
from cldx.store.db import read_transaction, write_transaction

from ..conftest import second_factor_user

API = "/api/v1/research-extracts"
PURPOSE = "Re-referral within a year of Social Workers in Schools, for the Ministry's evaluation team."
ASK = {"period": "2016-07:2017-06", "purpose": PURPOSE}
YEAR = date.today().year
EXTRACT_FILES = {"manifest.json", "clients.parquet", "clients.csv", "data_dictionary.md"}


@pytest.fixture
def web_settings(matrix_settings: Settings) -> Settings:
    return matrix_settings


def ask(client: TestClient, **changes) -> dict:
    response = client.post(API, json={**ASK, **changes})
    assert response.status_code == 201, response.text
    return response.json()


def decide(client: TestClient, reference: str, decision: str = "approve", note: str = ""):
    return client.post(f"{API}/{reference}/decision", json={"decision": decision, "note": note})


def audit_of(web_app, action: str) -> list:
    with read_transaction(web_app.state.engine) as session:
        return list(reversed(list_events(session, action=action, limit=None)))


# --- Asking --------------------------------------------------------------------------------------


def test_a_requester_asks_and_gets_the_request(client_for, researcher, web_app) -> None:
    client = client_for(researcher)
    response = client.post(API, json={**ASK, "k": 7, "date_precision": "quarter"})
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["reference"] == f"RX-{YEAR}-0001"
    assert response.headers["location"] == f"{API}/{body['reference']}"
    assert body["status"] == "requested" and body["purpose"] == PURPOSE
    assert body["period"] == {"from": "2016-07-01", "to": "2017-06-30"}
    assert (body["k"], body["date_precision"]) == (7, "quarter")
    assert body["requested_by"] == researcher.username and body["requested_at"]
    assert body["decided_by"] is body["decided_at"] is body["produced_at"] is body["manifest_sha256"] is body["summary"] is None
    assert body["decision_note"] == ""
    assert client.get(f"{API}/{body['reference']}").json() == body
    [entry] = audit_of(web_app, "research-extract-requested")
    assert (entry.actor, entry.target, entry.purpose) == (researcher.username, body["reference"], PURPOSE)
    # Defaults: k 5, month precision; references count up within the year.
    second = ask(client)
    assert (second["reference"], second["k"], second["date_precision"]) == (f"RX-{YEAR}-0002", 5, "month")


@pytest.mark.parametrize("body, field", [
    ({"purpose": PURPOSE}, "period"),
    ({"period": "2016-07:2017-06"}, "purpose"),
    ({**ASK, "period": "2016-07"}, "period"),
    ({**ASK, "period": "2016-07:"}, "period"),
    ({**ASK, "period": "2017-06:2016-07"}, "period"),
    ({**ASK, "period": "2016-13:2017-06"}, "period"),
    ({**ASK, "period": "2098-01:2099-06"}, "period"),
    ({**ASK, "period": "2016-07:2017-06\x00"}, "period"),
    ({**ASK, "period": "x" * 41}, "period"),
    ({**ASK, "period": 201607}, "period"),
    ({**ASK, "purpose": "For research."}, "purpose"),
    ({**ASK, "purpose": "   " + "x" * 10 + "   "}, "purpose"),
    ({**ASK, "purpose": "x" * 2001}, "purpose"),
    ({**ASK, "purpose": PURPOSE + "\x00"}, "purpose"),
    ({**ASK, "k": 4}, "k"),
    ({**ASK, "k": 51}, "k"),
    ({**ASK, "k": "5"}, "k"),
    ({**ASK, "k": 5.5}, "k"),
    ({**ASK, "k": True}, "k"),
    ({**ASK, "k": None}, "k"),
    ({**ASK, "date_precision": "week"}, "date_precision"),
    ({**ASK, "provider": "P0001"}, "provider"),
])
def test_a_request_that_cannot_be_taken_is_422_naming_the_field(client_for, researcher, body, field) -> None:
    client = client_for(researcher)
    response = client.post(API, json=body)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["status"] == 422 and f"body.{field}" in answer["error"], answer
    assert field in answer["errors"][0]["location"]
    assert client.get(API).json() == []  # nothing was recorded


@pytest.mark.parametrize("content", [b"", b"{", b"[]", b'"text"', b"null", b'{"period": "2016-07:2017-06", "purpose": "\\ud800' + b"x" * 30 + b'"}',
                                     b"\xff\xfe", b'{"k": 1' + b"0" * 5000 + b"}"])
def test_a_malformed_body_is_4xx_never_500(client_for, researcher, content: bytes) -> None:
    client = client_for(researcher)
    response = client.post(API, content=content, headers={"content-type": "application/json"})
    # 422, or 400 where the JSON parser itself gives up (an integer of over 4,300 digits).
    assert response.status_code in (400, 422), (content[:40], response.status_code, response.text[:300])
    assert response.json()["ok"] is False
    assert client.get(API).json() == []


def test_only_research_requesters_ask(client_for, officer, analyst, app_client) -> None:
    for user in (officer, analyst):
        for body in (ASK, {}, {"period": 1}):  # refused before the body is looked at
            response = client_for(user).post(API, json=body)
            assert response.status_code == 403, (user.username, body)
            assert "research-requester" in response.json()["error"]
    assert app_client.post(API, json=ASK).status_code == 401


# --- Deciding ------------------------------------------------------------------------------------


def test_the_requester_cannot_decide_their_own_even_as_a_privacy_officer(client_for, officer_researcher, web_app) -> None:
    client = client_for(officer_researcher)
    reference = ask(client)["reference"]
    for decision, note in (("approve", ""), ("refuse", "Not enough detail.")):
        response = decide(client, reference, decision, note)
        assert response.status_code == 403, response.text
        assert "another privacy officer must approve or refuse it" in response.json()["error"]
    after = client.get(f"{API}/{reference}").json()
    assert after["status"] == "requested" and after["decided_by"] is None
    assert audit_of(web_app, "research-extract-decided") == []


def test_another_officer_approves_once(client_for, officer_researcher, officer, web_app) -> None:
    reference = ask(client_for(officer_researcher))["reference"]
    officer_client = client_for(officer)
    response = decide(officer_client, reference, "approve", "Within the evaluation's ethics approval.")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "approved" and body["decided_by"] == officer.username and body["decided_at"]
    assert body["decision_note"] == "Within the evaluation's ethics approval."
    # A decision is made once: by the same officer or another.
    again = decide(officer_client, reference, "refuse", "Changed my mind.")
    assert again.status_code == 409 and "already approved" in again.json()["error"]
    assert client_for(officer_researcher).get(f"{API}/{reference}").json()["status"] == "approved"
    [entry] = audit_of(web_app, "research-extract-decided")
    assert (entry.actor, entry.target, json.loads(entry.detail)["decision"]) == (officer.username, reference, "approved")


def test_a_refusal_needs_a_note(client_for, researcher, officer) -> None:
    reference = ask(client_for(researcher))["reference"]
    officer_client = client_for(officer)
    for note in ("", "   "):
        response = decide(officer_client, reference, "refuse", note)
        assert response.status_code == 422 and "body.note" in response.json()["error"], response.text
    assert officer_client.get(f"{API}/{reference}").json()["status"] == "requested"
    refused = decide(officer_client, reference, "refuse", "Say which outcomes the evaluation needs.")
    assert refused.status_code == 200
    assert refused.json()["status"] == "refused" and refused.json()["decision_note"] == "Say which outcomes the evaluation needs."


@pytest.mark.parametrize("body, field", [
    ({}, "decision"),
    ({"decision": "maybe", "note": ""}, "decision"),
    ({"decision": "approve", "note": "x" * 2001}, "note"),
    ({"decision": "approve", "note": "fine\x00"}, "note"),
    ({"decision": "approve", "extra": 1}, "extra"),
])
def test_a_decision_that_cannot_be_taken_is_422(client_for, researcher, officer, body, field) -> None:
    reference = ask(client_for(researcher))["reference"]
    response = client_for(officer).post(f"{API}/{reference}/decision", json=body)
    assert response.status_code == 422 and f"body.{field}" in response.json()["error"], response.text


def test_only_privacy_officers_decide(client_for, researcher, make_user, analyst) -> None:
    reference = ask(client_for(researcher))["reference"]
    other = second_factor_user(make_user, "other.researcher", ANALYST, RESEARCH_REQUESTER)
    for user in (researcher, other, analyst):
        for body in ({"decision": "approve", "note": ""}, {}):
            response = client_for(user).post(f"{API}/{reference}/decision", json=body)
            assert response.status_code == 403, user.username
            assert "Only a privacy officer" in response.json()["error"]


# --- Who sees which request ----------------------------------------------------------------------


def test_requesters_see_their_own_and_officers_every_request(client_for, researcher, officer, make_user, analyst, app_client) -> None:
    other = second_factor_user(make_user, "other.researcher", ANALYST, RESEARCH_REQUESTER)
    admin = second_factor_user(make_user, "ada.admin", ADMINISTRATOR)
    mine = ask(client_for(researcher))["reference"]
    theirs = ask(client_for(other), purpose="Engagement length by service line, for the sector workforce study.")["reference"]

    assert [e["reference"] for e in client_for(researcher).get(API).json()] == [mine]
    assert [e["reference"] for e in client_for(other).get(API).json()] == [theirs]
    assert [e["reference"] for e in client_for(officer).get(API).json()] == [theirs, mine]  # newest first
    # Another requester's request is answered as if there were none.
    assert client_for(researcher).get(f"{API}/{theirs}").status_code == 404
    assert client_for(officer).get(f"{API}/{theirs}").status_code == 200
    for user in (analyst, admin):
        client = client_for(user)
        assert client.get(API).status_code == 403, user.username
        assert client.get(f"{API}/{mine}").status_code == 403, user.username
        assert client.get(f"{API}/{mine}/download").status_code == 403, user.username
    assert app_client.get(API).status_code == 401
    assert app_client.get(f"{API}/{mine}").status_code == 401


@pytest.mark.parametrize("path, status", [
    ("RX-1999-0001", 404),
    ("RX-1999-0001/decision", 404),
    ("RX-1999-0001/download", 404),
    ("nothing", 422),
    ("RX-2026-1%00", 422),
    ("RX-2026-" + "1" * 40, 422),
    ("PA-2026-0001", 422),
])
def test_unknown_and_malformed_references(client_for, officer_researcher, path: str, status: int) -> None:
    client = client_for(officer_researcher)
    if path.endswith("/decision"):
        response = decide(client, path.removesuffix("/decision"))
    else:
        response = client.get(f"{API}/{path}")
    assert response.status_code == status, response.text
    assert response.json()["ok"] is False


# --- Taking the extract --------------------------------------------------------------------------


def test_the_requester_downloads_the_approved_extract_once(client_for, researcher, officer, web_app) -> None:
    client = client_for(researcher)
    reference = ask(client)["reference"]
    early = client.get(f"{API}/{reference}/download")
    assert early.status_code == 409 and "waiting for a privacy officer" in early.json()["error"]
    assert decide(client_for(officer), reference).status_code == 200

    response = client.get(f"{API}/{reference}/download")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/zip"
    assert response.headers["content-disposition"] == f'attachment; filename="{reference}.zip"'
    assert response.headers["cache-control"] == "no-store"
    with zipfile.ZipFile(io.BytesIO(response.content)) as archive:
        names = {name.split("/", 1)[1] for name in archive.namelist()}
        assert EXTRACT_FILES <= names, names
        assert all(name.startswith(f"{reference}/") for name in archive.namelist())
        manifest_bytes = archive.read(f"{reference}/manifest.json")
    manifest = json.loads(manifest_bytes)
    assert manifest["reference"] == reference and manifest["approved_by"] == officer.username
    assert manifest["rows"] == {"clients": 0, "engagements": 0, "assessments": 0, "outcomes": 0}  # no client data stored

    after = client.get(f"{API}/{reference}").json()
    assert after["status"] == "produced" and after["produced_by"] == researcher.username and after["produced_at"]
    assert after["manifest_sha256"] == hashlib.sha256(manifest_bytes).hexdigest()
    assert after["summary"]["rows"] == manifest["rows"] and after["summary"]["k"] == 5
    [export] = audit_of(web_app, "export")
    assert (export.actor, export.target, export.purpose) == (researcher.username, f"research:{reference}", PURPOSE)
    assert json.loads(export.detail)["manifest_sha256"] == after["manifest_sha256"]

    # Made once: a second download is refused, and nothing more is recorded.
    again = client.get(f"{API}/{reference}/download")
    assert again.status_code == 409 and "produced already" in again.json()["error"]
    assert len(audit_of(web_app, "export")) == 1


def test_nobody_but_the_requester_takes_the_extract(client_for, researcher, officer, officer_researcher, make_user, web_app) -> None:
    client = client_for(researcher)
    reference = ask(client)["reference"]
    assert decide(client_for(officer), reference).status_code == 200
    other = second_factor_user(make_user, "other.researcher", ANALYST, RESEARCH_REQUESTER)
    assert client_for(officer).get(f"{API}/{reference}/download").status_code == 403  # decides, never takes
    assert client_for(other).get(f"{API}/{reference}/download").status_code == 404  # not theirs to know of
    both = client_for(officer_researcher).get(f"{API}/{reference}/download")  # sees it, as an officer; still not theirs
    assert both.status_code == 403 and researcher.username in both.json()["error"]
    assert client.get(f"{API}/{reference}").json()["status"] == "approved"
    assert audit_of(web_app, "export") == []
    assert client.get(f"{API}/{reference}/download").status_code == 200


def test_a_link_from_another_site_does_not_spend_the_download(client_for, researcher, officer, make_user, web_app) -> None:
    """A browser session's cookie alone (what a link followed from another site carries) is not
    enough for the download, which makes the extract once; its CSRF header or an API token is."""
    client = client_for(researcher)
    reference = ask(client)["reference"]
    assert decide(client_for(officer), reference).status_code == 200
    response = client_for(researcher, csrf=False).get(f"{API}/{reference}/download")
    assert response.status_code == 403 and "did not come from this site" in response.json()["error"]
    assert client.get(f"{API}/{reference}").json()["status"] == "approved"
    with write_transaction(web_app.state.engine) as session:
        token = tokens.issue(session, tokens.PERSONAL, "researcher's token", created_by="test", user_id=researcher.id)[1]
    by_token = TestClient(web_app, base_url="https://testserver", raise_server_exceptions=False)
    answer = by_token.get(f"{API}/{reference}/download", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.headers["content-type"] == "application/zip"


def test_a_refused_extract_is_never_made(client_for, researcher, officer) -> None:
    client = client_for(researcher)
    reference = ask(client)["reference"]
    assert decide(client_for(officer), reference, "refuse", "Use the published tables instead.").status_code == 200
    response = client.get(f"{API}/{reference}/download")
    assert response.status_code == 409 and "was refused" in response.json()["error"]


def test_the_api_is_documented(app_client: TestClient) -> None:
    paths = app_client.get("/openapi.json").json()["paths"]
    assert {API, f"{API}/{{reference}}", f"{API}/{{reference}}/decision", f"{API}/{{reference}}/download"} <= set(paths)
    assert "409" in paths[f"{API}/{{reference}}/decision"]["post"]["responses"]
    assert "application/zip" in paths[f"{API}/{{reference}}/download"]["get"]["responses"]["200"]["content"]
