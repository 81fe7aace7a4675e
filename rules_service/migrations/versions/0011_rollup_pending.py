"""The decisions waiting to be counted in the rollups (``rollup_pending``): each recorded
decision inserts one row in its own transaction, and the fold (``adapters.rollup_fold``)
adds it to the rollups and deletes it in one transaction, off the evaluate path.

The rollups are exact at this revision (every decision was counted in its own
transaction), so the table starts empty. The downgrade first counts whatever is still
waiting into the rollups, as the fold would, so going back loses no decision's count.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-03 02:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    op.create_table(
        "rollup_pending",
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
                  autoincrement=True, nullable=False),
        sa.Column("decision_id", sa.String(36), nullable=False),
        sa.Column("ruleset_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("fallback", sa.Boolean(), nullable=False),
        sa.Column("duration_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("position", name=op.f("pk_rollup_pending")),
    )


def downgrade() -> None:
    """Reverts this revision: counts the waiting decisions into the rollups, then drops
    the table."""
    from rules_service.adapters import rollup_fold

    connection = op.get_bind()
    while rollup_fold.fold_batch(connection, rollup_fold.FOLD_BATCH):
        pass
    op.drop_table("rollup_pending")
