"""SQLAlchemy models. Schema changes go through Alembic (engine/migrations)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from engine.db import StateText, UTCDateTime


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    email: Mapped[str | None] = mapped_column(String(255))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    roles: Mapped[list[UserRole]] = relationship(
        cascade="all, delete-orphan", lazy="selectin"
    )

    @property
    def role_names(self) -> frozenset[str]:
        return frozenset(r.role for r in self.roles)


class UserRole(Base):
    __tablename__ = "user_roles"

    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(40), primary_key=True)


class ApiToken(Base):
    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ProcessDefinition(Base):
    """One deployed version of one executable process, with everything it needs."""

    __tablename__ = "process_definitions"
    __table_args__ = (UniqueConstraint("process_id", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    process_id: Mapped[str] = mapped_column(String(255), index=True)
    version: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    # Heavy columns load only when used (a cold spec cache, a download).
    sources: Mapped[dict[str, str]] = mapped_column(JSON, deferred=True)
    specs_json: Mapped[str] = mapped_column(Text, deferred=True)
    user_tasks: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    deployed_by: Mapped[str | None] = mapped_column(String(80))
    deployed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    change_note: Mapped[str | None] = mapped_column(Text)


class ProcessInstance(Base):
    """A running (or finished) process. ``state`` is the task tree without the spec."""

    __tablename__ = "process_instances"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definitions.id"), index=True)
    process_id: Mapped[str] = mapped_column(String(255), index=True)
    status: Mapped[str] = mapped_column(String(20), index=True)
    state: Mapped[str] = mapped_column(StateText())
    lock_version: Mapped[int] = mapped_column(Integer)
    next_due_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    error_message: Mapped[str | None] = mapped_column(Text)
    error_task_id: Mapped[str | None] = mapped_column(String(36))
    error_task_bpmn_id: Mapped[str | None] = mapped_column(String(255))
    created_by: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    definition: Mapped[ProcessDefinition] = relationship(lazy="joined")

    #: Every UPDATE checks and bumps lock_version: a stale writer gets StaleDataError.
    __mapper_args__ = {"version_id_col": lock_version}


class HumanTask(Base):
    """Projection of the user/manual tasks, kept in step with the state at every persist.

    A row is inserted when a task becomes READY; it stays (state ``completed`` or
    ``cancelled``) afterwards so that a late request gets a clear conflict and the
    history of an instance needs no deserialization.
    """

    __tablename__ = "human_tasks"
    __table_args__ = (
        Index("ix_human_tasks_state_role_due", "state", "role", "due_at"),
        Index("ix_human_tasks_state_assignee_due", "state", "assignee", "due_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), index=True)
    bpmn_id: Mapped[str] = mapped_column(String(255))
    title: Mapped[str] = mapped_column(String(255))
    lane: Mapped[str | None] = mapped_column(String(255))
    role: Mapped[str | None] = mapped_column(String(40))
    assignee: Mapped[str | None] = mapped_column(String(80))
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    form: Mapped[str | None] = mapped_column(String(255))
    #: The task's instructionsForEndUser, rendered (sandboxed, HTML-escaped) when it
    #: became ready: its data does not change until it is completed.
    instructions: Mapped[str | None] = mapped_column(Text)
    due_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(20), default="ready")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    completed_by: Mapped[str | None] = mapped_column(String(80))


class AuditEvent(Base):
    """Append-only trail of who did or read what, when, from where."""

    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    actor: Mapped[str | None] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(60))
    instance_id: Mapped[int | None] = mapped_column(Integer, index=True)
    task_id: Mapped[str | None] = mapped_column(String(36))
    address: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ClosureDay(Base):
    """A company closure day: not a business day for deadlines computed after it is added."""

    __tablename__ = "closure_days"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    reason: Mapped[str] = mapped_column(String(255))
    created_by: Mapped[str | None] = mapped_column(String(80))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Complaint(Base):
    """The Complaints Register: one row per complaint, with the fields of the interface.

    Written when the complaint is recorded and kept in step with its case data after
    every step of its process (engine/register.py). The complainant is stored as
    separate columns, so that the register can be searched and personal data can be
    anonymised column by column.
    """

    __tablename__ = "complaints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    reference: Mapped[str] = mapped_column(String(20), unique=True)
    instance_id: Mapped[int] = mapped_column(ForeignKey("process_instances.id"), unique=True)
    channel: Mapped[str] = mapped_column(String(20), index=True)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    complainant_name: Mapped[str] = mapped_column(Text)
    complainant_email: Mapped[str | None] = mapped_column(Text)
    complainant_phone: Mapped[str | None] = mapped_column(Text)
    complainant_postal_address: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text)
    product_or_service: Mapped[str | None] = mapped_column(Text)
    remedy_sought: Mapped[str | None] = mapped_column(Text)
    classification: Mapped[str | None] = mapped_column(String(40), index=True)
    personal_data_involved: Mapped[bool | None] = mapped_column(Boolean)
    data_breach: Mapped[bool | None] = mapped_column(Boolean)
    owner: Mapped[str | None] = mapped_column(String(80), index=True)
    root_cause: Mapped[str | None] = mapped_column(Text)
    corrective_action: Mapped[str | None] = mapped_column(Text)
    remedial_measures: Mapped[str | None] = mapped_column(Text)
    resolution_summary: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(40), index=True)
    deadlines: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    logged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    acknowledged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    #: Visible only to the owner, the Information Security Officer, the Quality Manager
    #: and users granted access (engine.permissions.may_see_complaint).
    need_to_know: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ComplaintReferenceCounter(Base):
    """The last reference number given out in each year (``CMP-YYYY-NNNNNN``)."""

    __tablename__ = "complaint_reference_counters"

    year: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    last_number: Mapped[int] = mapped_column(Integer)


class Document(Base):
    """A piece of evidence kept with a complaint (engine/documents.py).

    The row holds what is known about the file; its bytes are kept outside the
    database, under the evidence directory, named by their SHA-256.
    """

    __tablename__ = "documents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id"), index=True)
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    created_by: Mapped[str | None] = mapped_column(String(80))


class ComplaintAccessGrant(Base):
    """A need-to-know complaint opened to one more user (engine/access_grants.py).

    A grant is active until revoked; a revoked grant is kept as a record. At most one
    grant per complaint and user is active at a time (enforced by grant_access).
    """

    __tablename__ = "complaint_access_grants"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id"), index=True)
    username: Mapped[str] = mapped_column(String(80), index=True)
    granted_by: Mapped[str | None] = mapped_column(String(80))
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reason: Mapped[str] = mapped_column(Text)


class DefinitionDraft(Base):
    """A process owner's unsaved revision of one process's files (the editor's draft).

    One draft per process and user; ``files`` maps a file name (``acknowledgement.bpmn``,
    ``forms/send_acknowledgement.json``) to its text. ``based_on_version`` is the version
    the draft was opened from, so a deploy can warn when someone else deployed since.
    """

    __tablename__ = "definition_drafts"
    __table_args__ = (UniqueConstraint("process_id", "username"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    process_id: Mapped[str] = mapped_column(String(255), index=True)
    username: Mapped[str] = mapped_column(String(80))
    based_on_version: Mapped[int | None] = mapped_column(Integer)
    files: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ProcessGovernance(Base):
    """Who owns a process definition and when its annual review is due."""

    __tablename__ = "process_governance"

    process_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(80))
    #: Months between approval and the next review (12 = the policy's annual review).
    review_interval_months: Mapped[int] = mapped_column(Integer, default=12)
    last_approved_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    review_due_on: Mapped[date | None] = mapped_column(Date, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class DefinitionReview(Base):
    """One review of a process definition, run as a ``definition_review`` instance."""

    __tablename__ = "definition_reviews"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    process_id: Mapped[str] = mapped_column(String(255), index=True)
    #: The version under review (on approval: the version approved, the current one then).
    definition_id: Mapped[int] = mapped_column(ForeignKey("process_definitions.id"))
    instance_id: Mapped[int | None] = mapped_column(
        ForeignKey("process_instances.id"), unique=True)
    started_by: Mapped[str | None] = mapped_column(String(80))
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    #: ``None`` while running; ``sent_back`` after a send-back (still running); finally
    #: ``approved`` or ``rejected`` (by Senior Management after too many rounds).
    outcome: Mapped[str | None] = mapped_column(String(20))
    approver: Mapped[str | None] = mapped_column(String(80))
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    notes: Mapped[str | None] = mapped_column(Text)
    next_review_on: Mapped[date | None] = mapped_column(Date)
    #: The approver's name and title as typed on the approval ("Approved by").
    approver_name: Mapped[str | None] = mapped_column(String(200))
    #: The process owner's findings and the changes made or proposed (last round).
    findings: Mapped[str | None] = mapped_column(Text)
    changes_made: Mapped[str | None] = mapped_column(Text)
    #: Decisions taken so far (each send-back is one round).
    rounds: Mapped[int] = mapped_column(Integer, default=0)
    #: The last year's figures the review started with (engine.reviews.last_year_figures).
    figures: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class OutboxMessage(Base):
    """One e-mail, written in the transaction of the step that causes it (engine/outbox.py).

    ``message_id`` is made when the message is queued and sent as its Message-ID
    header on every attempt, so that a copy sent again after a crash (between the SMTP
    server's acceptance and the recording of it) is folded by mail clients.
    ``dedupe_key`` (unique when set) keeps a message from being queued twice, e.g. one
    acknowledgement per complaint, one digest per user and day.
    """

    __tablename__ = "outbox_messages"
    __table_args__ = (
        Index("ix_outbox_messages_state_next_attempt_at", "state", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    dedupe_key: Mapped[str | None] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    to_address: Mapped[str] = mapped_column(String(320))
    #: The staff user the message is for (notifications), or None (the complainant).
    recipient: Mapped[str | None] = mapped_column(String(80))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    #: The process instance (and so the complaint) the message is about, if any.
    instance_id: Mapped[int | None] = mapped_column(Integer, index=True)
    #: ``queued`` (waiting for its next attempt), ``sent`` or ``failed`` (gave up).
    state: Mapped[str] = mapped_column(String(20))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class ComplaintDeadline(Base):
    """The record of one deadline of a case: when due, and when met or missed (reports).

    Kept by engine/deadlines.py from the register's after-step hook. ``state`` is
    ``open``, ``met``, ``met_late`` or ``missed`` (due time passed unmet; ``missed_at`` is
    when that was recorded, normally by the deadline's timer firing). ``computed_at`` is
    when the process set this due time (the start of its "due soon" window).
    """

    __tablename__ = "complaint_deadlines"
    __table_args__ = (UniqueConstraint("complaint_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id"), index=True)
    name: Mapped[str] = mapped_column(String(60))
    due_at: Mapped[datetime] = mapped_column(UTCDateTime())
    computed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    met_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    missed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    state: Mapped[str] = mapped_column(String(20), index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class MailTemplate(Base):
    """One saved version of a mail template (engine/mail_templates.py), edited by a
    process owner in the browser. The newest version of a name is the text sent; with
    none, the file shipped in processes/mail is."""

    __tablename__ = "mail_templates"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(80))
    version: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    changed_by: Mapped[str] = mapped_column(String(80))
    changed_at: Mapped[datetime] = mapped_column(UTCDateTime())
    change_note: Mapped[str] = mapped_column(Text)
