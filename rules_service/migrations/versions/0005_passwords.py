"""Passwords for people: an argon2 hash and the sign-in failure count behind the slow-down.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 11:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    with op.batch_alter_table("principals") as batch:
        batch.add_column(sa.Column("password_hash", sa.String(length=255), nullable=True))
        batch.add_column(sa.Column("failed_sign_ins", sa.Integer(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("sign_in_locked_until", sa.DateTime(timezone=True),
                                   nullable=True))


def downgrade() -> None:
    """Reverts this revision."""
    with op.batch_alter_table("principals") as batch:
        batch.drop_column("sign_in_locked_until")
        batch.drop_column("failed_sign_ins")
        batch.drop_column("password_hash")
