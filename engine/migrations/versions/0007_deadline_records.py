"""deadline records: met and missed deadlines of each case, with the actual times

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-04
"""

import sqlalchemy as sa
from alembic import op

import engine.db

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "complaint_deadlines",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("complaint_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("due_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("computed_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("met_at", engine.db.UTCDateTime(), nullable=True),
        sa.Column("missed_at", engine.db.UTCDateTime(), nullable=True),
        sa.Column("state", sa.String(length=20), nullable=False),
        sa.Column("updated_at", engine.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["complaint_id"], ["complaints.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("complaint_id", "name"),
    )
    with op.batch_alter_table("complaint_deadlines", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_complaint_deadlines_complaint_id"), ["complaint_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_complaint_deadlines_state"), ["state"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("complaint_deadlines", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_complaint_deadlines_state"))
        batch_op.drop_index(batch_op.f("ix_complaint_deadlines_complaint_id"))
    op.drop_table("complaint_deadlines")
