"""Live generation counter and decision rollups (minute buckets with a latency histogram).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01 11:05:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# As rules_service.adapters.orm.HISTOGRAM_COLUMNS: one count per latency bucket.
LATENCY_BUCKET_COUNT = 18


def upgrade() -> None:
    """Applies this revision."""
    live = op.create_table(
        "live_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_live_generation")),
    )
    op.bulk_insert(live, [{"id": 1, "value": 0}])
    op.create_table(
        "decision_rollups",
        sa.Column("ruleset_id", sa.Integer(), nullable=False),
        sa.Column("bucket_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("outcome", sa.String(length=10), nullable=False),
        sa.Column("fallback", sa.Boolean(), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("duration_sum", sa.Float(), nullable=False),
        sa.Column("duration_max", sa.Float(), nullable=False),
        *(sa.Column(f"latency_bucket_{i:02d}", sa.BigInteger(), nullable=False)
          for i in range(LATENCY_BUCKET_COUNT)),
        sa.ForeignKeyConstraint(["ruleset_id"], ["rulesets.id"],
                                name=op.f("fk_decision_rollups_ruleset_id_rulesets"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("ruleset_id", "bucket_start", "version", "outcome",
                                "fallback", name=op.f("pk_decision_rollups")),
    )
    op.create_index("ix_decision_rollups_bucket_start", "decision_rollups", ["bucket_start"],
                    unique=False)


def downgrade() -> None:
    """Reverts this revision."""
    op.drop_table("decision_rollups")
    op.drop_table("live_generation")
