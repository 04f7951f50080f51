"""definition_drafts, process_governance, definition_reviews: editing and annual review

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

import engine.db

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "definition_drafts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("process_id", sa.String(length=255), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("based_on_version", sa.Integer(), nullable=True),
        sa.Column("files", sa.JSON(), nullable=False),
        sa.Column("created_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", engine.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("process_id", "username"),
    )
    op.create_index("ix_definition_drafts_process_id", "definition_drafts", ["process_id"])
    op.create_table(
        "process_governance",
        sa.Column("process_id", sa.String(length=255), nullable=False),
        sa.Column("owner", sa.String(length=80), nullable=True),
        sa.Column("review_interval_months", sa.Integer(), nullable=False),
        sa.Column("last_approved_at", engine.db.UTCDateTime(), nullable=True),
        sa.Column("review_due_on", sa.Date(), nullable=True),
        sa.Column("updated_at", engine.db.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("process_id"),
    )
    op.create_index("ix_process_governance_review_due_on", "process_governance",
                    ["review_due_on"])
    op.create_table(
        "definition_reviews",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("process_id", sa.String(length=255), nullable=False),
        sa.Column("definition_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=True),
        sa.Column("started_by", sa.String(length=80), nullable=True),
        sa.Column("started_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("outcome", sa.String(length=20), nullable=True),
        sa.Column("approver", sa.String(length=80), nullable=True),
        sa.Column("decided_at", engine.db.UTCDateTime(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.Column("next_review_on", sa.Date(), nullable=True),
        sa.Column("approver_name", sa.String(length=200), nullable=True),
        sa.Column("findings", sa.Text(), nullable=True),
        sa.Column("changes_made", sa.Text(), nullable=True),
        sa.Column("rounds", sa.Integer(), nullable=False),
        sa.Column("figures", sa.JSON(), nullable=True),
        sa.ForeignKeyConstraint(["definition_id"], ["process_definitions.id"]),
        sa.ForeignKeyConstraint(["instance_id"], ["process_instances.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("instance_id"),
    )
    op.create_index("ix_definition_reviews_process_id", "definition_reviews", ["process_id"])


def downgrade() -> None:
    op.drop_index("ix_definition_reviews_process_id", table_name="definition_reviews")
    op.drop_table("definition_reviews")
    op.drop_index("ix_process_governance_review_due_on", table_name="process_governance")
    op.drop_table("process_governance")
    op.drop_index("ix_definition_drafts_process_id", table_name="definition_drafts")
    op.drop_table("definition_drafts")
