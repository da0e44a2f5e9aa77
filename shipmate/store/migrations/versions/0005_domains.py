"""Domains and certificates (issue 15).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "domains",
        sa.Column("name", sa.String(253), primary_key=True),
        sa.Column(
            "app", sa.String(30), sa.ForeignKey("apps.name", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("service", sa.String(30), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_index("ix_domains_app", "domains", ["app"])
    op.create_table(
        "certs",
        sa.Column("name", sa.String(253), primary_key=True),
        sa.Column("cert_pem", sa.Text(), nullable=False),
        sa.Column("key_sealed", sa.Text(), nullable=False),
        sa.Column("issuer", sa.String(200), nullable=False),
        sa.Column("not_after", sa.DateTime(), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("certs")
    op.drop_index("ix_domains_app", "domains")
    op.drop_table("domains")
