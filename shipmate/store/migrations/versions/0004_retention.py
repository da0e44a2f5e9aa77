"""Retention: how many releases' builds an app keeps, and pinned releases.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("apps") as batch:
        batch.add_column(sa.Column("keep", sa.Integer()))
    with op.batch_alter_table("releases") as batch:
        batch.add_column(
            sa.Column("pinned", sa.Boolean(), nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("releases") as batch:
        batch.drop_column("pinned")
    with op.batch_alter_table("apps") as batch:
        batch.drop_column("keep")
