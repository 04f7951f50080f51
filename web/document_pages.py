"""Downloading a complaint's evidence (engine/documents.py); the case page links here.

Who may download follows engine.permissions like the case page: a complaint the reader
may not see is 404 here too, whether or not the document exists (so the URL tells an
unrelated user nothing). A reader who sees a need-to-know case with its personal data
withheld (the auditor) gets 403: evidence may hold that data. A download of a
need-to-know case's document is audited as a read of the case (``complaint_read``,
via ``document``). Files are always sent as attachments, in a CSP sandbox.
"""

from __future__ import annotations

import io

from flask import Blueprint, abort, send_file
from flask_login import login_required
from werkzeug.wrappers import Response

from engine.documents import read_document
from engine.errors import NotFound
from engine.models import Document
from engine.permissions import may_see_complaint, may_see_personal_data
from engine.register import record_reads
from engine.register_queries import complaint_by_reference
from web.auth import current_actor
from web.db import uow

bp = Blueprint("document_pages", __name__)

@bp.get("/complaints/<reference>/documents/<int:document_id>")
@login_required
def download(reference: str, document_id: int) -> Response:
    actor = current_actor()
    with uow(write=False) as work:
        row = complaint_by_reference(work.session, reference)
        if row is None or not may_see_complaint(actor, row, withholding_personal_data=True):
            abort(404, f"There is no complaint {reference}.")
        document = work.session.get(Document, document_id)
        if document is None or document.complaint_id != row.id:
            abort(404, f"{row.reference} has no document {document_id}.")
        if not may_see_personal_data(actor, row):
            abort(403, "The evidence of this case may hold personal data, which is withheld "
                       "from you.")
        try:
            document, data = read_document(work, document_id)
        except NotFound:  # pragma: no cover - checked above in the same transaction
            abort(404)
        work.session.expunge_all()
    if row.need_to_know:
        with uow() as work:
            record_reads(work.session, actor, [row], "document")
    # Always a download, never shown in our origin: the bytes come from outside.
    response = send_file(io.BytesIO(data), mimetype=document.content_type, as_attachment=True,
                         download_name=document.filename, max_age=0)
    response.headers["Content-Security-Policy"] = "sandbox; default-src 'none'"
    return response
