"""complaint_access_grants: need-to-know complaints opened to named users

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-21
"""

import sqlalchemy as sa
from alembic import op

import engine.db

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "complaint_access_grants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("complaint_id", sa.Integer(), nullable=False),
        sa.Column("username", sa.String(length=80), nullable=False),
        sa.Column("granted_by", sa.String(length=80), nullable=True),
        sa.Column("granted_at", engine.db.UTCDateTime(), nullable=False),
        sa.Column("revoked_at", engine.db.UTCDateTime(), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["complaint_id"], ["complaints.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("complaint_access_grants", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_complaint_access_grants_complaint_id"), ["complaint_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_complaint_access_grants_username"), ["username"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("complaint_access_grants", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_complaint_access_grants_username"))
        batch_op.drop_index(batch_op.f("ix_complaint_access_grants_complaint_id"))
    op.drop_table("complaint_access_grants")
