"""The mail template pages (web/mail_template_pages.py): list, edit with preview, save,
errors kept at the field, 403 for anyone but process owners and admins, CSRF on every
form. Signed-in browser sessions; SQLite and (when configured) PostgreSQL."""

from __future__ import annotations

import html as html_lib
import re

import pytest
from sqlalchemy import func, select

from engine.db import unit_of_work
from engine.models import AuditEvent, MailTemplate
from engine.settings import PROJECT_ROOT

from . import support
from .support import csrf_token, seeded_database, sign_in

USERS = {"pat": ["process_owner"], "ada": ["admin"], "sam": ["staff"],
         "quinn": ["staff", "quality_manager"]}
SHIPPED = (PROJECT_ROOT / "processes" / "mail" / "acknowledgement.txt").read_text()
THANKS = ("Subject: Thanks, {{ complainant_name }}: {{ reference }}\n\n"
          "We received your complaint on {{ received_on }}.\n")
EDIT = "/definitions/mail/acknowledgement"


@pytest.fixture
def db(db_url, manual_clock, monkeypatch):
    monkeypatch.setattr("engine.users._SCRYPT_N", 2**4)
    return seeded_database(db_url, USERS)


@pytest.fixture
def app(db):
    return support.test_app()



def signed_in(app, username):
    return sign_in(app.test_client(), username)


def get(client, path, status=200) -> str:
    response = client.get(path)
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def post(client, path, data, status, token=True):
    if token:
        data = {**data, "csrf_token": csrf_token(client, "/definitions/mail")}
    response = client.post(path, data=data)
    assert response.status_code == status, response.get_data(as_text=True)
    return response


def textarea(html: str) -> str:
    found = re.search(r'<textarea id="m-text"[^>]*>\n?(.*?)</textarea>', html, re.S)
    return html_lib.unescape(found.group(1))


def saved(db) -> list[MailTemplate]:
    with unit_of_work(db, write=False) as uow:
        return list(uow.session.scalars(select(MailTemplate).order_by(MailTemplate.id)))


def test_the_list_shows_each_template_its_purpose_and_current_version(app, db, manual_clock):
    pat = signed_in(app, "pat")
    html = get(pat, "/definitions/mail")
    for name in ("acknowledgement", "task_assigned", "task_offered", "task_digest"):
        assert f'href="/definitions/mail/{name}"' in html
    assert "To the complainant when a complaint" in html
    assert html.count("as shipped") == 4
    post(pat, EDIT, {"text": THANKS, "change_note": "Shorter text", "action": "save"}, 303)
    html = get(pat, "/definitions/mail")
    row = re.search(r'href="/definitions/mail/acknowledgement".*?</tr>', html, re.S).group(0)
    assert "v1" in row and "pat" in row and "Mon 21 Dec 2026, 14:30" in row


def test_the_processes_page_links_to_the_mail_templates(app):
    assert 'href="/definitions/mail"' in get(signed_in(app, "pat"), "/definitions")
    assert 'href="/definitions/mail"' not in get(signed_in(app, "quinn"), "/definitions")


def test_the_edit_page_shows_the_current_text_its_preview_and_the_shipped_version(app):
    html = get(signed_in(app, "ada"), EDIT)
    assert textarea(html) == SHIPPED
    assert "We have received your complaint (reference CMP-2026-000042)" in html  # preview
    assert "Dear Ann Example," in html
    assert 'id="shipped"' in html and "as shipped (current)" in html
    assert 'src="/static/mail_templates.js"' in html and "<script>" not in html
    assert 'data-preview-url="/definitions/mail/acknowledgement/preview"' in html


def test_saving_makes_a_new_version_that_is_listed_below_as_current(app, db, manual_clock):
    pat = signed_in(app, "pat")
    response = post(pat, EDIT, {"text": THANKS.replace("\n", "\r\n"),
                                "change_note": "Shorter text", "action": "save",
                                "based_on_version": ""}, 303)
    assert response.headers["Location"].endswith(EDIT)
    html = get(pat, EDIT)
    assert "Version 1 of the acknowledgement mail was saved" in html
    assert textarea(html) == THANKS
    row = re.search(r'<tr id="v1">(.*?)</tr>', html, re.S).group(1)
    assert "(current)" in row and "pat" in row and "Shorter text" in row
    assert "Mon 21 Dec 2026, 14:30" in row
    assert "Thanks, Ann Example: CMP-2026-000042" in html
    assert [(r.version, r.text) for r in saved(db)] == [(1, THANKS)]


def test_the_preview_button_renders_the_typed_text_and_saves_nothing(app, db):
    pat = signed_in(app, "pat")
    html = post(pat, EDIT, {"text": THANKS, "change_note": "draft", "action": "preview"},
                200).get_data(as_text=True)
    assert "Thanks, Ann Example: CMP-2026-000042" in html
    assert textarea(html) == THANKS
    assert 'value="draft"' in html
    assert saved(db) == []


def test_the_live_preview_endpoint_returns_the_rendered_fragment(app, db):
    pat = signed_in(app, "pat")
    token = csrf_token(pat, EDIT)
    response = pat.post(f"{EDIT}/preview", data={"text": THANKS},
                        headers={"X-CSRF-Token": token})
    assert response.status_code == 200
    fragment = response.get_data(as_text=True)
    assert "Thanks, Ann Example: CMP-2026-000042" in fragment and "<html" not in fragment
    broken = pat.post(f"{EDIT}/preview", data={"text": "Subject: x\n\n{{ ''.__class__ }}"},
                      headers={"X-CSRF-Token": token}).get_data(as_text=True)
    assert "mail/acknowledgement.txt:3: template tried something unsafe" in broken
    assert saved(db) == []


def test_a_broken_template_shows_file_and_line_at_the_field_and_keeps_what_was_typed(app, db):
    pat = signed_in(app, "pat")
    typed = "Subject: {{ reference }}\n\nDear <Ann> {{ complainant_name }},\n\n{% if x %}\n"
    html = post(pat, EDIT, {"text": typed, "change_note": "My change", "action": "save"},
                422).get_data(as_text=True)
    field = re.search(r'<div class="field field-has-error">(.*?)</div>\s*<div', html,
                      re.S).group(1)
    assert "mail/acknowledgement.txt:5: template syntax error" in field
    assert 'aria-describedby="m-text-error"' in field
    assert textarea(html) == typed
    assert "&lt;Ann&gt;" in html  # escaped, never markup
    assert 'value="My change"' in html
    assert saved(db) == []


def test_a_missing_change_note_is_shown_at_its_field(app, db):
    html = post(signed_in(app, "pat"), EDIT, {"text": THANKS, "change_note": " ",
                                               "action": "save"}, 422).get_data(as_text=True)
    assert re.search(r'<p class="error" id="m-change_note-error">a change note is required',
                     html)
    assert textarea(html) == THANKS
    assert saved(db) == []


def test_a_stale_editor_is_told_to_reload(app, db):
    pat, ada = signed_in(app, "pat"), signed_in(app, "ada")
    post(ada, EDIT, {"text": THANKS, "change_note": "Ada's text", "action": "save",
                     "based_on_version": ""}, 303)
    html = post(pat, EDIT, {"text": THANKS + "Bye\n", "change_note": "Pat's text",
                            "action": "save", "based_on_version": ""},
                409).get_data(as_text=True)
    assert "version 1 of acknowledgement was saved by ada" in html
    assert textarea(html) == THANKS + "Bye\n"
    assert len(saved(db)) == 1


@pytest.mark.parametrize("user", ["sam", "quinn"])
def test_only_process_owners_and_admins_may_see_or_change_templates(app, db, user):
    client = signed_in(app, user)
    get(client, "/definitions/mail", 403)
    get(client, EDIT, 403)
    post(client, EDIT, {"text": THANKS, "change_note": "x", "action": "save"}, 403)
    post(client, f"{EDIT}/preview", {"text": THANKS}, 403)
    assert saved(db) == []


def test_signed_out_visitors_are_sent_to_sign_in(app):
    response = app.test_client().get("/definitions/mail")
    assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_every_form_needs_the_csrf_token(app, db):
    pat = signed_in(app, "pat")
    post(pat, EDIT, {"text": THANKS, "change_note": "x", "action": "save"}, 400, token=False)
    post(pat, f"{EDIT}/preview", {"text": THANKS}, 400, token=False)
    html = get(pat, EDIT)
    assert html.count('name="csrf_token"') >= 2  # the edit form and sign-out
    assert saved(db) == []
    with unit_of_work(db, write=False) as uow:
        assert uow.session.scalar(select(func.count()).select_from(AuditEvent).where(
            AuditEvent.action == "mail_template_saved")) == 0


def test_an_unknown_template_is_not_found(app):
    pat = signed_in(app, "pat")
    get(pat, "/definitions/mail/newsletter", 404)
    post(pat, "/definitions/mail/newsletter", {"text": THANKS, "change_note": "x",
                                               "action": "save"}, 404)
    post(pat, "/definitions/mail/newsletter/preview", {"text": THANKS}, 404)
    get(pat, "/definitions/mail/..%2Facknowledgement", 404)
