"""Formation (scaled counts per service) and what each promotion scaled or ran.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "formation",
        sa.Column(
            "app",
            sa.String(30),
            sa.ForeignKey("apps.name", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("service", sa.String(30), primary_key=True),
        sa.Column("count", sa.Integer(), nullable=False),
    )
    with op.batch_alter_table("promotions") as batch:
        batch.add_column(sa.Column("options", sa.Text()))
        batch.add_column(sa.Column("release_command", sa.Text()))


def downgrade() -> None:
    with op.batch_alter_table("promotions") as batch:
        batch.drop_column("release_command")
        batch.drop_column("options")
    op.drop_table("formation")
