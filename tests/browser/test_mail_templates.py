"""The mail template editor in the browser: the live preview follows what is typed
(web/static/mail_templates.js, allowed by the page's CSP), without saving anything. (The
"Preview" button without JavaScript: tests/test_pages_mail_templates.py.)"""

from __future__ import annotations

from playwright.sync_api import expect

from tests.browser.test_browser import sign_in

DRAFT = ("Subject: Live {{ reference }} for {{ complainant_name }}\n\n"
         "Received {{ received_on }}.\n")


def test_the_preview_follows_the_text_as_it_is_typed(page, shot):
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico") else None)
    page.on("console", lambda m: failed.append(m.text)
            if m.type == "error" and "404" not in m.text else None)
    sign_in(page, "paul.process")
    page.goto("/definitions")
    page.click("text=mail templates")
    page.click("a[href='/definitions/mail/acknowledgement']")
    preview = page.locator("#mail-preview")
    expect(preview).to_contain_text("We have received your complaint")
    page.fill("#m-text", DRAFT)
    expect(preview).to_contain_text("Live CMP-2026-000042 for Ann Example")
    shot(page, "live-preview")
    page.fill("#m-text", "Subject: x\n\n{{ ''.__class__.__mro__ }}\n")
    expect(preview).to_contain_text("mail/acknowledgement.txt:3:")
    assert failed == []

