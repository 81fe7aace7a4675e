"""Seals over the decision log and the audit trail: the chain and what each seal covers.

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-03 02:40:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    op.create_table(
        "seals",
        sa.Column("number", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("previous_hash", sa.String(64), nullable=False),
        sa.Column("root", sa.String(64), nullable=False),
        sa.Column("items", sa.Integer(), nullable=False),
        sa.Column("cutoff", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sealed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("number", name="pk_seals"),
        sa.UniqueConstraint("hash", name="uq_seals_hash"),
    )
    op.create_table(
        "seal_items",
        sa.Column("kind", sa.String(12), nullable=False),
        sa.Column("item_id", sa.String(36), nullable=False),
        sa.Column("seal", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("hash", sa.String(64), nullable=False),
        sa.PrimaryKeyConstraint("kind", "item_id", name="pk_seal_items"),
        sa.ForeignKeyConstraint(["seal"], ["seals.number"],
                                name="fk_seal_items_seal_seals"),
        sa.UniqueConstraint("seal", "position", name="uq_seal_items_seal_position"),
    )
    op.create_index("ix_seal_items_kind_recorded_at", "seal_items", ["kind", "recorded_at"])


def downgrade() -> None:
    """Reverts this revision: the seals are gone, the decisions and events stay."""
    op.drop_index("ix_seal_items_kind_recorded_at", table_name="seal_items")
    op.drop_table("seal_items")
    op.drop_table("seals")
