"""Evidence on task forms: a ``"format": "evidence"`` field is a file input; the files are
kept with the task's complaint (outside the database row, within the store's size and
type limits) in the transaction that completes the task; the API names documents
already kept; the case page lists them and only those who may see the personal data
download them.

Runs on SQLite and (when configured) PostgreSQL, on the process of test_pages_inbox
whose "Log the complaint" form gets an evidence field.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select

from engine.db import unit_of_work
from engine.documents import store_document
from engine.forms import check_form_data, evidence_fields, form_source_key
from engine.instances import claim_task
from engine.models import AuditEvent, Document
from engine.users import create_token
from web import create_app, form_render

from .support import seeded_database, test_app
from .test_pages_inbox import (
    EVERYONE,
    USERS,
    actor,
    csrf_token,
    process_directory,
    record,
    sign_in,
    task_of,
)

EVIDENCE = {
    "type": "array",
    "format": "evidence",
    "title": "Evidence files (optional)",
    "maxItems": 2,
    "items": {
        "type": "object",
        "properties": {"document_id": {"type": "integer", "minimum": 1},
                       "filename": {"type": "string", "maxLength": 255}},
        "required": ["document_id"],
        "additionalProperties": False,
    },
}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40
LOG = {"owner": "owen", "personal_data_involved": "false"}


@pytest.fixture
def evidence_dir(tmp_path, monkeypatch):
    path = tmp_path / "evidence"
    monkeypatch.setenv("COMPLAINTS_EVIDENCE_DIR", str(path))
    return path


@pytest.fixture
def db(db_url, tmp_path, evidence_dir):
    directory = process_directory(tmp_path)
    form = directory / "forms" / "log.json"
    schema = json.loads(form.read_text())
    schema["properties"]["evidence"] = EVIDENCE
    form.write_text(json.dumps(schema))
    return seeded_database(db_url, USERS, [directory], EVERYONE)


@pytest.fixture
def app(db):
    return test_app()


@pytest.fixture
def client(app):
    return app.test_client()


def post_form(client, task_id, form, files=()):
    data = {**form, "csrf_token": csrf_token(client, f"/tasks/{task_id}")}
    if files:
        data["evidence"] = [(io.BytesIO(content), name, kind) for name, content, kind in files]
    return client.post(f"/tasks/{task_id}", data=data, content_type="multipart/form-data")


def documents(db) -> list[Document]:
    with unit_of_work(db, write=False) as uow:
        rows = list(uow.session.scalars(select(Document).order_by(Document.id)))
        uow.session.expunge_all()
        return rows


def events(db, action) -> list[AuditEvent]:
    with unit_of_work(db, write=False) as uow:
        rows = list(uow.session.scalars(
            select(AuditEvent).where(AuditEvent.action == action).order_by(AuditEvent.id)))
        uow.session.expunge_all()
        return rows


def stored_files(path) -> list:
    return [p for p in path.rglob("*") if p.is_file()] if path.exists() else []


# -- the form -------------------------------------------------------------------------------

def test_the_evidence_convention_is_a_list_of_document_references():
    schema = {"type": "object", "properties": {"evidence": EVIDENCE, "note": {"type": "string"}},
              "additionalProperties": False}
    assert evidence_fields(schema) == ["evidence"]
    sources = {form_source_key("f.json"): json.dumps(schema)}
    check_form_data(sources, "f.json", {"evidence": [{"document_id": 3, "filename": "a.png"}]})
    check_form_data(sources, "f.json", {})  # optional
    with pytest.raises(Exception) as error:
        check_form_data(sources, "f.json", {"evidence": [{"document_id": "x"}] * 3})
    assert "evidence" in error.value.fields

    [field, _] = form_render.fields_for(schema)
    assert field.kind == "file" and field.evidence
    assert field.constraints["multiple"] is True and "image/png" in field.constraints["accept"]
    single = form_render.fields_for({"properties": {"e": {**EVIDENCE, "maxItems": 1}}})[0]
    assert "multiple" not in single.constraints


def test_a_required_evidence_field_asks_for_a_file():
    schema = {"type": "object", "properties": {"evidence": EVIDENCE}, "required": ["evidence"]}
    _, errors = form_render.validate(schema, None, {})
    assert errors == {"evidence": ["choose a file"]}
    data, errors = form_render.validate(
        schema, None, {}, uploads={"evidence": [{"document_id": 1, "filename": "a.png"}]})
    assert errors == {} and data == {"evidence": [{"document_id": 1, "filename": "a.png"}]}


def test_the_task_page_sends_the_form_as_multipart_with_a_file_input(db, client):
    task_id = task_of(db, record(db), "log").id
    page = sign_in(client, "sam").get(f"/tasks/{task_id}").get_data(as_text=True)
    assert 'enctype="multipart/form-data"' in page
    control = re.search(r'<input type="file"[^>]*>', page).group(0)
    assert 'name="evidence"' in control and "multiple" in control and 'accept="' in control
    assert re.search(r'<label for="f-evidence">Evidence files \(optional\)', page)
    assert "at most 10 MiB each" in page


# -- uploading ------------------------------------------------------------------------------

def test_uploaded_evidence_is_kept_with_the_complaint_and_named_in_the_task_data(
        db, client, evidence_dir):
    complaint = record(db)
    task_id = task_of(db, complaint, "log").id
    sign_in(client, "sam")
    response = post_form(client, task_id, LOG, files=[
        ("photo.png", PNG, "image/png"), ("../../note.txt", b"Broken vase", "")])
    assert response.status_code == 302, response.get_data(as_text=True)

    docs = documents(db)
    assert [(d.filename, d.content_type, d.size, d.created_by) for d in docs] == [
        ("photo.png", "image/png", len(PNG), "sam"),
        ("note.txt", "text/plain", 11, "sam")]  # the type guessed from the name
    assert {d.complaint_id for d in docs} == {complaint.id}
    # The bytes are outside the database, named by their SHA-256.
    assert sorted(p.name for p in stored_files(evidence_dir)) == sorted(
        hashlib.sha256(b).hexdigest() for b in (PNG, b"Broken vase"))

    [completed] = events(db, "task_completed")
    assert completed.details["data"]["evidence"] == [
        {"document_id": docs[0].id, "filename": "photo.png"},
        {"document_id": docs[1].id, "filename": "note.txt"}]
    added = events(db, "document_added")
    assert [(e.actor, e.details["filename"]) for e in added] == [
        ("sam", "photo.png"), ("sam", "note.txt")]
    assert {e.instance_id for e in added} == {complaint.instance_id}


def test_no_file_chosen_completes_without_evidence(db, client):
    complaint = record(db)
    task_id = task_of(db, complaint, "log").id
    response = post_form(sign_in(client, "sam"), task_id, LOG)
    assert response.status_code == 302
    assert documents(db) == []
    assert "evidence" not in events(db, "task_completed")[0].details["data"]


def test_a_file_too_big_or_of_a_wrong_type_is_refused_at_the_field_with_the_rest_kept(
        db, client, evidence_dir, monkeypatch):
    monkeypatch.setenv("COMPLAINTS_EVIDENCE_MAX_BYTES", "100")
    complaint = record(db)
    task_id = task_of(db, complaint, "log").id
    sign_in(client, "sam")
    response = post_form(client, task_id, {**LOG, "summary": "Typed summary"}, files=[
        ("big.png", PNG * 3, "image/png"), ("tool.exe", b"MZ\x90\x00", "application/x-msdownload")])
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    error = page.split('id="f-evidence-error">', 1)[1].split("</p>", 1)[0]
    assert "big.png is too big: at most 100 bytes a file" in error
    assert "tool.exe is not a file type that can be kept" in error
    assert 'aria-invalid="true"' in re.search(r'<input type="file"[^>]*>', page).group(0)
    assert 'value="Typed summary"' in page and 'value="owen"' in page
    assert documents(db) == [] and stored_files(evidence_dir) == []
    assert task_of(db, complaint, "log").state == "ready"
    assert events(db, "document_added") == []


def test_other_errors_keep_no_file_and_ask_for_it_again(db, client, evidence_dir):
    complaint = record(db)
    task_id = task_of(db, complaint, "log").id
    sign_in(client, "sam")
    response = post_form(client, task_id, {"personal_data_involved": "false"},
                         files=[("photo.png", PNG, "image/png")])
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "photo.png was not kept because of the other problems: choose it again" in page
    assert documents(db) == [] and stored_files(evidence_dir) == []
    # Too many files is an error at the field too.
    response = post_form(client, task_id, LOG, files=[
        (f"p{n}.png", PNG + bytes([n]), "image/png") for n in range(3)])
    assert response.status_code == 422
    assert "choose at most 2 files" in response.get_data(as_text=True)
    assert documents(db) == [] and stored_files(evidence_dir) == []


def test_a_task_taken_meanwhile_keeps_no_evidence(db, client, evidence_dir):
    complaint = record(db)
    task = task_of(db, complaint, "log")
    sign_in(client, "sam")
    token = csrf_token(client, f"/tasks/{task.id}")
    with unit_of_work(db) as uow:
        claim_task(uow, task.id, actor("sue"))
    response = client.post(f"/tasks/{task.id}", content_type="multipart/form-data", data={
        **LOG, "csrf_token": token, "evidence": [(io.BytesIO(PNG), "photo.png", "image/png")]})
    assert response.status_code == 409
    page = response.get_data(as_text=True)
    assert "claimed by sue" in page and "photo.png was not kept: choose it again" in page
    assert 'value="owen"' in page
    assert documents(db) == [] and stored_files(evidence_dir) == []


# -- the API ----------------------------------------------------------------------------------

def test_the_api_names_evidence_already_kept_with_the_case(db, client):
    complaint = record(db)
    other = record(db, summary="Another case")
    with unit_of_work(db) as uow:
        mine = store_document(uow, complaint.reference, "letter.pdf", "application/pdf",
                              b"%PDF-1.4 letter", actor("sam")).id
        theirs = store_document(uow, other.reference, "other.pdf", "application/pdf",
                                b"%PDF-1.4 other", actor("sam")).id
        token = create_token(uow.session, "sam")
    headers = {"Authorization": f"Bearer {token}"}
    task_id = task_of(db, complaint, "log").id
    body = {"owner": "owen", "personal_data_involved": False}

    for refused in ([{"document_id": theirs}], [{"document_id": 99999}]):
        response = client.post(f"/api/v1/tasks/{task_id}/complete", headers=headers,
                               json={"data": {**body, "evidence": refused}})
        assert response.status_code == 422
        assert "there is no document" in response.get_json()["error"]["fields"]["evidence"][0]
    response = client.post(f"/api/v1/tasks/{task_id}/complete", headers=headers,
                           json={"data": {**body, "evidence": [{"document_id": "seven"}]}})
    assert response.status_code == 422
    assert list(response.get_json()["error"]["fields"]) == ["evidence.0.document_id"]
    assert task_of(db, complaint, "log").state == "ready"

    response = client.post(f"/api/v1/tasks/{task_id}/complete", headers=headers, json={
        "data": {**body, "evidence": [{"document_id": mine, "filename": "renamed.exe"}]}})
    assert response.status_code == 200, response.get_json()
    [completed] = events(db, "task_completed")
    assert completed.details["data"]["evidence"] == [
        {"document_id": mine, "filename": "letter.pdf"}]


def test_the_api_completes_without_the_optional_evidence(db, client):
    complaint = record(db)
    with unit_of_work(db) as uow:
        token = create_token(uow.session, "sam")
    response = client.post(f"/api/v1/tasks/{task_of(db, complaint, 'log').id}/complete",
                           headers={"Authorization": f"Bearer {token}"},
                           json={"data": {"owner": "owen", "personal_data_involved": False}})
    assert response.status_code == 200


# -- the case page and downloads ----------------------------------------------------------------

def _upload(db, client, complaint, form=LOG) -> Document:
    task_id = task_of(db, complaint, "log").id
    response = post_form(sign_in(client, "sam"), task_id, form,
                         files=[("photo.png", PNG, "image/png")])
    assert response.status_code == 302
    client.post("/logout", data={"csrf_token": csrf_token(client, "/inbox")})
    return documents(db)[-1]


def test_the_case_page_lists_the_documents_and_they_download(db, client):
    complaint = record(db)
    document = _upload(db, client, complaint)
    page = sign_in(client, "sue").get(f"/complaints/{complaint.reference}").get_data(as_text=True)
    section = page.split('id="documents-heading"', 1)[1].split("</section>", 1)[0]
    url = f"/complaints/{complaint.reference}/documents/{document.id}"
    assert f'href="{url}"' in section and "photo.png" in section and "image/png" in section
    assert "Added a document (image/png)" in page  # the timeline, without the file name
    response = client.get(url)
    assert response.status_code == 200 and response.data == PNG
    assert response.headers["Content-Disposition"].startswith("attachment")
    assert "sandbox" in response.headers["Content-Security-Policy"]
    # A document is reached only through its own case.
    assert client.get(f"/complaints/{record(db).reference}/documents/{document.id}"
                      ).status_code == 404
    assert client.get(f"/complaints/{complaint.reference}/documents/999").status_code == 404


def test_need_to_know_evidence_is_hidden_from_others_and_withheld_from_the_auditor(db, client):
    complaint = record(db, personal_data_involved=True)
    document = _upload(db, client, complaint, {**LOG, "personal_data_involved": "true"})
    url = f"/complaints/{complaint.reference}/documents/{document.id}"
    # Unrelated staff: the same 404 as a case that does not exist.
    sign_in(client, "sue")
    assert client.get(url).status_code == 404
    assert client.get("/complaints/CMP-2099-999999/documents/1").status_code == 404
    client.post("/logout", data={"csrf_token": csrf_token(client, "/inbox")})

    sign_in(client, "aud")
    page = client.get(f"/complaints/{complaint.reference}").get_data(as_text=True)
    section = page.split('id="documents-heading"', 1)[1].split("</section>", 1)[0]
    assert "photo.png" not in section and "(withheld)" in section and url not in section
    assert client.get(url).status_code == 403
    client.post("/logout", data={"csrf_token": csrf_token(client, "/inbox")})

    sign_in(client, "quinn")  # the Quality Manager sees need-to-know cases
    before = len(events(db, "complaint_read"))
    assert client.get(url).data == PNG
    reads = events(db, "complaint_read")[before:]
    assert [(e.actor, e.details["via"]) for e in reads] == [("quinn", "document")]


def test_the_investigation_form_of_the_policy_takes_evidence():
    forms = Path(__file__).resolve().parent.parent / "forms"
    schema = json.loads((forms / "investigate_complaint.json").read_text())
    assert evidence_fields(schema) == ["evidence_files"]
    ui = json.loads((forms / "investigate_complaint.ui.json").read_text())
    fields = form_render.fields_for(schema, ui)
    assert fields.needs_multipart
    assert fields.by_name["evidence_files"].kind == "file"


def test_a_request_over_the_size_limit_shows_the_task_page_again(db, evidence_dir):
    small = create_app({"SECRET_KEY": "test-secret", "TESTING": True,
                        "MAX_CONTENT_LENGTH": 4096}).test_client()
    complaint = record(db)
    task_id = task_of(db, complaint, "log").id
    sign_in(small, "sam")
    response = post_form(small, task_id, LOG, files=[("big.png", PNG * 200, "image/png")])
    assert response.status_code == 413
    page = response.get_data(as_text=True)
    assert "<h1>Log the complaint" in page and "Nothing was saved" in page
    assert "too big together (at most 4096 bytes in all)" in page
    assert documents(db) == [] and task_of(db, complaint, "log").state == "ready"
