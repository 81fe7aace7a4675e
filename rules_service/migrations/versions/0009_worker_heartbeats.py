"""The notification worker's heartbeat and per-pass figures, one row per worker process,
so every API process serves them in /metrics.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02 19:40:00

Only adds a table: code of 0008 runs against this schema unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    op.create_table(
        "worker_heartbeats",
        sa.Column("worker", sa.String(length=200), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("beat_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("passes", sa.BigInteger(), nullable=False),
        sa.Column("escalation_steps", sa.BigInteger(), nullable=False),
        sa.Column("events_dispatched", sa.BigInteger(), nullable=False),
        sa.Column("delivered", sa.BigInteger(), nullable=False),
        sa.Column("failed", sa.BigInteger(), nullable=False),
        sa.Column("dead", sa.BigInteger(), nullable=False),
        sa.Column("last_pass_ms", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("worker", name="pk_worker_heartbeats"),
    )


def downgrade() -> None:
    """Reverts this revision."""
    op.drop_table("worker_heartbeats")
