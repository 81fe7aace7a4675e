"""A ruleset's pause and review reminder; what the rules would have decided while paused.

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-03 02:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    op.add_column("rulesets", sa.Column("paused_by", sa.String(200), nullable=True))
    op.add_column("rulesets", sa.Column("paused_at", sa.DateTime(timezone=True),
                                        nullable=True))
    op.add_column("rulesets", sa.Column("paused_reason", sa.Text(), nullable=True))
    op.add_column("rulesets", sa.Column("review_told_at", sa.DateTime(timezone=True),
                                        nullable=True))
    # On PostgreSQL the decision log is partitioned: a column added to the parent table
    # reaches every partition.
    op.add_column("decisions", sa.Column("paused_outcome", sa.String(10), nullable=True))
    op.add_column("decisions", sa.Column("paused_reason", sa.Text(), nullable=True))


def downgrade() -> None:
    """Reverts this revision: pauses in force and the rules' answers while paused are lost
    (the decisions themselves stay, recorded as the escalations they were)."""
    with op.batch_alter_table("decisions") as batch:
        batch.drop_column("paused_reason")
        batch.drop_column("paused_outcome")
    with op.batch_alter_table("rulesets") as batch:
        batch.drop_column("review_told_at")
        batch.drop_column("paused_reason")
        batch.drop_column("paused_at")
        batch.drop_column("paused_by")
