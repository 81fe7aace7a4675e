"""Shadow mode: versions deciding live traffic beside the active one, and their results.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-03 02:40:00

Only adds two tables: code of the previous revision runs against this schema unchanged.
``shadows`` holds one row per start of a version in shadow; ``shadow_results`` one row
per (shadow, decision) looked at, whose primary key keeps the counts exact when a runner
is interrupted and resumes, or two runners race.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    op.create_table(
        "shadows",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ruleset_id", sa.Integer(),
                  sa.ForeignKey("rulesets.id", ondelete="CASCADE",
                                name="fk_shadows_ruleset_id_rulesets"), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("sample", sa.Float(), nullable=False),
        sa.Column("alert_above", sa.Float(), nullable=True),
        sa.Column("started_by", sa.String(200), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("scanned_until", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("ended_by", sa.String(200), nullable=True),
        sa.Column("end_reason", sa.String(40), nullable=True),
        sa.Column("alerted_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_shadows"),
    )
    op.create_index("ix_shadows_ruleset_id_version", "shadows", ["ruleset_id", "version"])
    op.create_index("ix_shadows_ended_at", "shadows", ["ended_at"])
    op.create_table(
        "shadow_results",
        sa.Column("shadow_id", sa.Integer(),
                  sa.ForeignKey("shadows.id", ondelete="CASCADE",
                                name="fk_shadow_results_shadow_id_shadows"), nullable=False),
        sa.Column("decision_id", sa.String(36), nullable=False),
        sa.Column("evaluated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(10), nullable=False),
        sa.Column("active_outcome", sa.String(10), nullable=False),
        sa.Column("shadow_outcome", sa.String(10), nullable=True),
        sa.Column("fallback", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("shadow_id", "decision_id", name="pk_shadow_results"),
    )
    op.create_index("ix_shadow_results_shadow_id_state_evaluated_at", "shadow_results",
                    ["shadow_id", "state", "evaluated_at"])


def downgrade() -> None:
    """Reverts this revision: the shadows and their results are dropped."""
    op.drop_index("ix_shadow_results_shadow_id_state_evaluated_at",
                  table_name="shadow_results")
    op.drop_table("shadow_results")
    op.drop_index("ix_shadows_ended_at", table_name="shadows")
    op.drop_index("ix_shadows_ruleset_id_version", table_name="shadows")
    op.drop_table("shadows")
