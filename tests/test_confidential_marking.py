"""Policy 11.1: "All complaint records are classified as Confidential under our ISMS."

Every view of complaint records carries the marking of engine/information_classification.py:
the case, register and task pages, and the register's CSV export (a column on every row
and the file name). On SQLite and (when configured) PostgreSQL.
"""

from __future__ import annotations

import csv
import io
import re

from sqlalchemy import select

from engine.db import unit_of_work
from engine.information_classification import CLASSIFICATION, CSV_COLUMN, HANDLING_NOTE
from engine.models import HumanTask
from web.register_pages import CSV_FIELDS

from . import test_pages_register as pages

db = pages.db
client = pages.client
auth = pages.auth
register = pages.register
secret = pages.secret

MARKING = re.compile(r'<p class="classification-marking" role="note"><strong>Confidential'
                     r"</strong> \(ISMS classification\)\. ([^<]+)</p>")


def marking_of(html: str) -> list[str]:
    return MARKING.findall(html)


def get(client, auth, url, user="sam") -> str:
    response = client.get(url, headers=auth[user])
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def test_the_classification_is_confidential():
    assert CLASSIFICATION == "Confidential"


def test_the_register_page_is_marked_confidential(client, auth, register):
    html = get(client, auth, "/register")
    assert len(marking_of(html)) == 1
    # right under the heading, before any record
    assert html.index("classification-marking") < html.index(register["Bob Baker"])


def test_the_case_page_is_marked_confidential(client, auth, register):
    html = get(client, auth, f"/complaints/{register['Bob Baker']}")
    assert marking_of(html) == [HANDLING_NOTE.replace("'", "&#39;")]


def test_a_need_to_know_case_page_is_marked_confidential_too(client, auth, secret):
    assert len(marking_of(get(client, auth, f"/complaints/{secret}", user="owen"))) == 1


def test_the_task_page_of_a_complaint_is_marked_confidential(db, client, auth, register):
    with unit_of_work(db, write=False) as uow:
        task_id = uow.session.scalars(select(HumanTask.id).where(
            HumanTask.bpmn_id == "log", HumanTask.state == "ready").limit(1)).one()
    html = get(client, auth, f"/tasks/{task_id}")
    assert len(marking_of(html)) == 1


def test_every_row_of_the_csv_export_is_classified_confidential(client, auth, register):
    response = client.get("/register.csv", headers=auth["sam"])
    assert response.status_code == 200
    assert response.headers["Content-Disposition"] == \
        'attachment; filename="complaints-register-confidential.csv"'
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0] == list(CSV_FIELDS) and rows[0][-1] == CSV_COLUMN
    records = [dict(zip(rows[0], row, strict=True)) for row in rows[1:]]
    assert len(records) == 4
    assert {r[CSV_COLUMN] for r in records} == {"Confidential"}
    assert {r["reference"] for r in records} == set(register.values())


def test_an_empty_export_still_names_the_classification(client, auth, register):
    response = client.get("/register.csv", headers=auth["sam"], query_string={"q": "nobody"})
    assert "confidential" in response.headers["Content-Disposition"]
    assert list(csv.reader(io.StringIO(response.get_data(as_text=True)))) == [list(CSV_FIELDS)]
