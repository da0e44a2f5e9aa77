"""API tokens, the audit trail, and who created each release and promotion.

Release environments are encrypted by the rack at start (shipmate.services.keys), not
here: a migration has no access to the secret key.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-28
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tokens",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(64), nullable=False, unique=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False, unique=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("revoked_at", sa.DateTime()),
        sa.Column("last_used_at", sa.DateTime()),
    )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column("time", sa.DateTime(), nullable=False),
        sa.Column("actor", sa.String(64), nullable=False),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("app", sa.String(30)),
        sa.Column("target", sa.String(64), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
    )
    op.create_index("ix_audit_app_id", "audit", ["app", "id"])
    with op.batch_alter_table("releases") as batch:
        batch.add_column(sa.Column("created_by", sa.String(64)))
    with op.batch_alter_table("promotions") as batch:
        batch.add_column(sa.Column("created_by", sa.String(64)))


def downgrade() -> None:
    sealed = op.get_bind().scalar(sa.text("SELECT count(*) FROM releases WHERE env NOT LIKE '{%'"))
    if sealed:
        raise NotImplementedError(
            f"{sealed} release environments are encrypted, and the code of revision 0001 "
            "cannot read them"
        )
    with op.batch_alter_table("promotions") as batch:
        batch.drop_column("created_by")
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("created_by")
    op.drop_index("ix_audit_app_id", "audit")
    op.drop_table("audit")
    op.drop_table("tokens")
