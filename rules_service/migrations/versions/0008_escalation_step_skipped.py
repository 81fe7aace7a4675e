"""Escalation steps passed over: a late walk (the worker was down) records the steps it
skipped without paging anyone, so the trail says who was paged and who was not.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02 19:30:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    with op.batch_alter_table("escalation_steps") as batch:
        batch.add_column(sa.Column("skipped", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


def downgrade() -> None:
    """Reverts this revision."""
    with op.batch_alter_table("escalation_steps") as batch:
        batch.drop_column("skipped")
