"""Sign-in throttles per name and client address (the slow-down after failed sign-ins).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-02 19:50:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    op.create_table(
        "sign_in_throttles",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("address", sa.String(64), primary_key=True),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("locked_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_attempt_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_sign_in_throttles_last_attempt_at", "sign_in_throttles",
                    ["last_attempt_at"])


def downgrade() -> None:
    """Reverts this revision."""
    op.drop_index("ix_sign_in_throttles_last_attempt_at", table_name="sign_in_throttles")
    op.drop_table("sign_in_throttles")
