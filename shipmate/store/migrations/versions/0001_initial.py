"""Apps, builds, releases, promotions and events.

Revision ID: 0001
Revises:
Create Date: 2026-11-27
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "apps",
        sa.Column("name", sa.String(30), primary_key=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("release_id", sa.String(10)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
    )
    op.create_table(
        "builds",
        sa.Column("id", sa.String(10), primary_key=True),
        sa.Column(
            "app", sa.String(30), sa.ForeignKey("apps.name", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("manifest", sa.Text()),
        sa.Column("manifest_name", sa.String(32)),
        sa.Column("release_id", sa.String(10)),
        sa.Column("error", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("started_at", sa.DateTime()),
        sa.Column("ended_at", sa.DateTime()),
    )
    op.create_index("ix_builds_app_created", "builds", ["app", "created_at"])
    op.create_table(
        "releases",
        sa.Column("id", sa.String(10), primary_key=True),
        sa.Column(
            "app", sa.String(30), sa.ForeignKey("apps.name", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("build_id", sa.String(10), sa.ForeignKey("builds.id")),
        sa.Column("env", sa.Text(), nullable=False),
        sa.Column("manifest", sa.Text()),
        sa.Column("manifest_name", sa.String(32)),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("copied_from", sa.String(10)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.UniqueConstraint("app", "number", name="uq_releases_app_number"),
    )
    op.create_table(
        "promotions",
        sa.Column("id", sa.String(10), primary_key=True),
        sa.Column(
            "app", sa.String(30), sa.ForeignKey("apps.name", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("release_id", sa.String(10), sa.ForeignKey("releases.id"), nullable=False),
        sa.Column("previous_release_id", sa.String(10)),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("history", sa.Text(), nullable=False),
        sa.Column("reason", sa.Text()),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("finished_at", sa.DateTime()),
    )
    op.create_index("ix_promotions_app_created", "promotions", ["app", "created_at"])
    op.create_index("ix_promotions_release", "promotions", ["release_id"])
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), primary_key=True, autoincrement=True),
        sa.Column(
            "app", sa.String(30), sa.ForeignKey("apps.name", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("promotion_id", sa.String(10)),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("runtime", sa.String(16), nullable=False),
        sa.Column("object", sa.String(128), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
    )
    op.create_index("ix_events_app_id", "events", ["app", "id"])
    op.create_index("ix_events_promotion_id", "events", ["promotion_id", "id"])


def downgrade() -> None:
    for table in ("events", "promotions", "releases", "builds", "apps"):
        op.drop_table(table)
