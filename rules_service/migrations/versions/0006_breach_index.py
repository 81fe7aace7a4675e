"""A partial index for the dashboard's breach count (escalations that passed their target).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 12:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BREACHED = sa.text("breached_at IS NOT NULL")


def upgrade() -> None:
    """Applies this revision."""
    op.create_index("ix_escalations_breached_due_at", "escalations", ["due_at", "ruleset_id"],
                    unique=False, sqlite_where=BREACHED, postgresql_where=BREACHED)


def downgrade() -> None:
    """Reverts this revision."""
    op.drop_index("ix_escalations_breached_due_at", table_name="escalations")
