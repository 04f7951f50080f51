"""the Complaints Register and its per-year reference counter

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04 16:27:06.683015
"""

import sqlalchemy as sa
from alembic import op

import engine.db

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "complaint_reference_counters",
        sa.Column("year", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("last_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("year"),
    )
    op.create_table(
        "complaints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reference", sa.String(length=20), nullable=False),
        sa.Column("instance_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("received_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("complainant_name", sa.Text(), nullable=False),
        sa.Column("complainant_email", sa.Text(), nullable=True),
        sa.Column("complainant_phone", sa.Text(), nullable=True),
        sa.Column("complainant_postal_address", sa.Text(), nullable=True),
        sa.Column("summary", sa.Text(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("product_or_service", sa.Text(), nullable=True),
        sa.Column("remedy_sought", sa.Text(), nullable=True),
        sa.Column("classification", sa.String(length=40), nullable=True),
        sa.Column("personal_data_involved", sa.Boolean(), nullable=True),
        sa.Column("data_breach", sa.Boolean(), nullable=True),
        sa.Column("owner", sa.String(length=80), nullable=True),
        sa.Column("root_cause", sa.Text(), nullable=True),
        sa.Column("corrective_action", sa.Text(), nullable=True),
        sa.Column("remedial_measures", sa.Text(), nullable=True),
        sa.Column("resolution_summary", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=40), nullable=False),
        sa.Column("deadlines", sa.JSON(), nullable=False),
        sa.Column("logged_at", engine.db.UTCDateTime(), nullable=True),
        sa.Column("acknowledged_at", engine.db.UTCDateTime(), nullable=True),
        sa.Column("resolved_at", engine.db.UTCDateTime(), nullable=True),
        sa.Column("closed_at", engine.db.UTCDateTime(), nullable=True),
        sa.Column("need_to_know", sa.Boolean(), nullable=False),
        sa.Column("created_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("updated_at", engine.db.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["instance_id"],
            ["process_instances.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("instance_id"),
        sa.UniqueConstraint("reference"),
    )
    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_complaints_channel"), ["channel"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_complaints_classification"), ["classification"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_complaints_owner"), ["owner"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_complaints_received_at"), ["received_at"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_complaints_status"), ["status"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("complaints", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_complaints_status"))
        batch_op.drop_index(batch_op.f("ix_complaints_received_at"))
        batch_op.drop_index(batch_op.f("ix_complaints_owner"))
        batch_op.drop_index(batch_op.f("ix_complaints_classification"))
        batch_op.drop_index(batch_op.f("ix_complaints_channel"))

    op.drop_table("complaints")
    op.drop_table("complaint_reference_counters")
