"""A ruleset's pause and review reminder; what the rules would have decided while paused.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-03 02:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    # The decision log first, then the rulesets: the order in which a running instance's
    # decision transaction takes them (its insert, then the ruleset row its foreign keys
    # name), so this migration waits behind such a transaction instead of deadlocking with
    # it (the instance would answer that request 503).
    # On PostgreSQL the decision log is partitioned: a column added to the parent table
    # reaches every partition.
    op.add_column("decisions", sa.Column("paused_outcome", sa.String(10), nullable=True))
    op.add_column("decisions", sa.Column("paused_reason", sa.Text(), nullable=True))
    op.add_column("rulesets", sa.Column("paused_by", sa.String(200), nullable=True))
    op.add_column("rulesets", sa.Column("paused_at", sa.DateTime(timezone=True),
                                        nullable=True))
    op.add_column("rulesets", sa.Column("paused_reason", sa.Text(), nullable=True))
    op.add_column("rulesets", sa.Column("review_told_at", sa.DateTime(timezone=True),
                                        nullable=True))


def downgrade() -> None:
    """Reverts this revision: pauses in force and the rules' answers while paused are lost
    (the decisions themselves stay, recorded as the escalations they were).

    A plain ``ALTER TABLE ... DROP COLUMN`` on both databases (SQLite 3.35 and later): a
    batch copy of ``rulesets`` on SQLite would drop the table, and with it, through the
    cascading foreign keys, every version and decision."""
    for table, column in _ADDED:
        op.execute(f"ALTER TABLE {table} DROP COLUMN {column}")


_ADDED = (("decisions", "paused_reason"), ("decisions", "paused_outcome"),
          ("rulesets", "review_told_at"), ("rulesets", "paused_reason"),
          ("rulesets", "paused_at"), ("rulesets", "paused_by"))
