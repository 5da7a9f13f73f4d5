"""The submissions API: files or JSON in, receipts and findings out, on SQLite and PostgreSQL."""

from __future__ import annotations

import csv
import io
import time

import pytest
from fastapi.testclient import TestClient

from cldx.access import tokens
from cldx.config import Settings
from cldx.access.audit import list_events
from cldx.store import read_transaction, transaction
from cldx.store.models import Provider
from cldx.store.registry import seed_service_lines
from cldx.web.app import create_app

CLIENTS = (
    "client_ref,family_name,given_names,date_of_birth,gender,primary_ethnicity,area,notified_of_sharing_on\n"
    "A-1,Ngata,Aroha,1990-05-17,21,21,100100,2017-01-02\n"
    "A-2,Smith,=HYPERLINK(\"x\"),31/02/1990,7,11,100100,2017-01-02\n"
)
ENGAGEMENTS = "engagement_ref,client_ref,service_code,start_date,end_date,end_reason\nE-1,A-1,FS,2017-01-02,,\nE-2,A-9,FS,2017-01-02,,\n"


def p1_and_its_token(engine) -> dict[str, str]:
    """Seed provider P1 with a system token; the headers its case system would send."""
    with transaction(engine) as session:
        seed_service_lines(session)
        provider = Provider(code="P1", name="Provider One", region_code="01")
        session.add(provider)
        session.flush()
        _, token = tokens.issue(session, tokens.SYSTEM, "P1 case system", created_by="test", provider_id=provider.id)
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def client(engine, migrated_url):
    headers = p1_and_its_token(engine)
    with TestClient(create_app(Settings(database_url=migrated_url, embedded_worker=False)), headers=headers) as test_client:
        yield test_client


def post_files(client, **fields):
    files = [("files", ("clients.csv", CLIENTS.encode(), "text/csv")), ("files", ("engagements.csv", ENGAGEMENTS.encode(), "text/csv"))]
    return client.post("/api/v1/submissions", data={"provider": "P1", "period": "2017-01", **fields}, files=files)


def test_files_give_a_receipt_with_exact_findings(client):
    response = post_files(client)
    assert response.status_code == 201
    receipt = response.json()
    assert response.headers["location"].endswith(receipt["submission_id"])
    assert receipt["status"] == "partial"
    assert receipt["counts"] == {"new": 2, "changed": 0, "unchanged": 0, "warned": 0, "rejected": 2}
    found = {(f["file"], f["row"], f["field"], f["rule"]) for f in receipt["findings"]}
    assert found == {
        ("clients.csv", 3, "date_of_birth", "impossible-date"),
        ("clients.csv", 3, "gender", "unknown-code"),
        ("engagements.csv", 3, "client_ref", "unknown-reference"),
    }
    assert all(len(f["sha256"]) == 64 for f in receipt["files"])
    again = client.get(f"/api/v1/submissions/{receipt['submission_id']}").json()
    assert again["counts"] == receipt["counts"] and len(again["findings"]) == 3


def test_findings_as_csv_and_rejected_rows_to_fix_are_neutralised(client, engine):
    submission_id = post_files(client).json()["submission_id"]
    response = client.get(f"/api/v1/submissions/{submission_id}/findings", headers={"accept": "text/csv"})
    assert response.headers["content-type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.text.lstrip("\ufeff"))))
    assert {r["rule"] for r in rows} == {"impossible-date", "unknown-code", "unknown-reference"}
    rejected = client.get(f"/api/v1/submissions/{submission_id}/rejected", params={"file": "clients.csv"})
    fixed = list(csv.DictReader(io.StringIO(rejected.text.lstrip("\ufeff"))))
    assert [r["client_ref"] for r in fixed] == ["A-2"]
    assert fixed[0]["given_names"] == "'=HYPERLINK(\"x\")"  # a formula never reaches Excel as one
    assert "date_of_birth" in fixed[0]["cldx_errors"] and "gender" in fixed[0]["cldx_errors"]
    # Opening rejected rows (they hold names) is an identity read, and the trail says so.
    with read_transaction(engine) as session:
        [read] = list_events(session, action="identity-read", limit=5)
    assert (read.target, read.purpose) == (submission_id, "the provider's own rejected rows, to fix and send again")


def test_json_batch_and_all_or_nothing_mode(client):
    body = {"provider": "P1", "mode": "all-or-nothing", "records": {"clients": [
        {"client_ref": "J-1", "family_name": "Tūroa", "given_names": "Mere", "date_of_birth": "1990-05-17", "gender": 21,
         "primary_ethnicity": "21", "area": "100100", "notified_of_sharing_on": "2017-01-02"},
        {"client_ref": "J-2", "gender": "9x"},
    ]}}
    refused = client.post("/api/v1/submissions", json=body)
    assert refused.status_code == 201 and refused.json()["status"] == "refused"
    assert refused.json()["counts"]["new"] == 0
    body["mode"] = "partial"
    body["records"]["clients"].pop()
    accepted = client.post("/api/v1/submissions", json=body).json()
    assert accepted["status"] == "accepted" and accepted["counts"]["new"] == 1
    assert accepted["findings"] == []


def test_large_upload_is_queued_and_its_progress_shown(engine, migrated_url):
    from cldx.ingest.queue import work_once

    headers = p1_and_its_token(engine)
    settings = Settings(database_url=migrated_url, embedded_worker=False, queue_threshold_bytes=10)
    with TestClient(create_app(settings), headers=headers) as client:
        response = post_files(client)
        assert response.status_code == 202
        queued = response.json()
        assert queued["status"] == "queued" and queued["progress"]["status"] == "queued"
        assert work_once(engine)
        done = client.get(f"/api/v1/submissions/{queued['submission_id']}").json()
        assert done["status"] == "partial" and done["counts"]["new"] == 2
        assert done["progress"]["status"] == "done"


def test_embedded_worker_finishes_queued_uploads(engine, migrated_url):
    headers = p1_and_its_token(engine)
    settings = Settings(database_url=migrated_url, queue_threshold_bytes=10)
    with TestClient(create_app(settings), headers=headers) as client:
        submission_id = post_files(client).json()["submission_id"]
        for _ in range(100):
            status = client.get(f"/api/v1/submissions/{submission_id}").json()["status"]
            if status not in ("queued", "processing"):
                break
            time.sleep(0.1)
        assert status == "partial"


@pytest.mark.parametrize(
    ("kwargs", "status"),
    [
        ({"json": {"provider": "NOPE", "records": {}}}, 422),
        ({"json": {"provider": "P1", "records": []}}, 422),
        ({"json": {"provider": "P1", "period": "2017-13", "records": {}}}, 422),
        ({"json": {"provider": "P1", "mode": "sometimes", "records": {}}}, 422),
        ({"content": b"{not json", "headers": {"content-type": "application/json"}}, 422),
        ({"content": b"provider=P1", "headers": {"content-type": "text/plain"}}, 415),
        ({"data": {"provider": "P1"}, "files": [("other", ("x.csv", b"a", "text/csv"))]}, 422),
    ],
)
def test_malformed_requests_get_the_error_shape(client, kwargs, status):
    response = client.post("/api/v1/submissions", **kwargs)
    assert response.status_code == status
    body = response.json()
    assert body["ok"] is False and body["status"] == status and body["error"]


def test_unknown_submission_is_404(client):
    for path in ("/api/v1/submissions/nope", "/api/v1/submissions/nope/findings", "/api/v1/submissions/nope/rejected?file=x.csv"):
        assert client.get(path).status_code == 404


def test_submission_routes_are_in_the_openapi_document(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/api/v1/submissions", "/api/v1/submissions/{submission_id}", "/api/v1/submissions/{submission_id}/findings",
            "/api/v1/submissions/{submission_id}/rejected"} <= set(paths)
    assert set(paths["/api/v1/submissions"]["post"]["requestBody"]["content"]) == {"multipart/form-data", "application/json"}


@pytest.mark.parametrize("slots", [1, 2])
def test_a_process_stores_as_many_submissions_at_once_as_it_has_slots(engine, migrated_url, monkeypatch, slots):
    import threading

    import cldx.web.api.submissions as api

    running, most = [0], [0]
    lock = threading.Lock()
    real_submit = api.submit

    def counting_submit(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        try:
            time.sleep(0.2)  # long enough for every request to have arrived and be waiting
            return real_submit(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(api, "submit", counting_submit)
    headers = p1_and_its_token(engine)
    settings = Settings(database_url=migrated_url, embedded_worker=False, submissions_per_process=slots)
    answers: list[int] = []
    with TestClient(create_app(settings), headers=headers) as client:
        def send(i: int) -> None:
            body = {"provider": "P1", "records": {"clients": [
                {"client_ref": f"S-{i}", "family_name": "Tūroa", "given_names": "Mere", "date_of_birth": "1990-05-17", "gender": "2",
                 "primary_ethnicity": "21", "area": "100100", "notified_of_sharing_on": "2017-01-02"}]}}
            answers.append(client.post("/api/v1/submissions", json=body).status_code)

        senders = [threading.Thread(target=send, args=(i,)) for i in range(5)]
        for sender in senders:
            sender.start()
        for sender in senders:
            sender.join()
    assert answers == [201] * 5
    assert most[0] == slots
