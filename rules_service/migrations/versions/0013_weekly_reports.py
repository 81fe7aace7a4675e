"""The weeks whose scheduled report went out.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-03 02:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    op.create_table(
        "weekly_reports",
        sa.Column("week_start", sa.Date(), primary_key=True),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rulesets", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    """Reverts this revision."""
    op.drop_table("weekly_reports")
