"""Notifications: the outbox, subscriptions, deliveries, escalation steps along the runbook's
path, and a contact address for principals.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 11:20:00
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# JSONB on PostgreSQL, JSON (text) on SQLite, as in rules_service.adapters.orm.
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Applies this revision."""
    op.add_column("principals", sa.Column("email", sa.String(length=320), nullable=True))
    op.add_column("escalations", sa.Column("breached_at", sa.DateTime(timezone=True),
                                           nullable=True))
    op.add_column("escalations", sa.Column("steps_taken", sa.Integer(), nullable=False,
                                           server_default="0"))
    op.add_column("escalations", sa.Column("next_step_at", sa.DateTime(timezone=True),
                                           nullable=True))
    op.create_table(
        "outbox_events",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("ruleset_id", sa.Integer(), nullable=True),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("data", JSON_TYPE, nullable=False),
        sa.Column("dispatched_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["ruleset_id"], ["rulesets.id"],
                                name=op.f("fk_outbox_events_ruleset_id_rulesets"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox_events")),
    )
    op.create_index("ix_outbox_events_dispatched_at_occurred_at", "outbox_events",
                    ["dispatched_at", "occurred_at"], unique=False)
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("url", sa.Text(), nullable=False),
        sa.Column("events", JSON_TYPE, nullable=False),
        sa.Column("ruleset", sa.String(length=63), nullable=True),
        sa.Column("secret", sa.String(length=200), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_subscriptions")),
    )
    op.create_index(op.f("ix_subscriptions_ruleset"), "subscriptions", ["ruleset"],
                    unique=False)
    op.create_table(
        "deliveries",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=40), nullable=False),
        sa.Column("subscription_id", sa.String(length=36), nullable=True),
        sa.Column("recipient", sa.String(length=200), nullable=True),
        sa.Column("target", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("leased_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_status", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["event_id"], ["outbox_events.id"],
                                name=op.f("fk_deliveries_event_id_outbox_events"),
                                ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["subscription_id"], ["subscriptions.id"],
                                name=op.f("fk_deliveries_subscription_id_subscriptions"),
                                ondelete="SET NULL"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_deliveries")),
    )
    op.create_index("ix_deliveries_state_next_attempt_at", "deliveries",
                    ["state", "next_attempt_at"], unique=False)
    op.create_index("ix_deliveries_created_at_id", "deliveries", ["created_at", "id"],
                    unique=False)
    op.create_index(op.f("ix_deliveries_event_id"), "deliveries", ["event_id"], unique=False)
    op.create_index(op.f("ix_deliveries_subscription_id"), "deliveries", ["subscription_id"],
                    unique=False)
    op.create_table(
        "escalation_steps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("escalation_id", sa.String(length=36), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("principal", sa.String(length=200), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["escalation_id"], ["escalations.id"],
                                name=op.f("fk_escalation_steps_escalation_id_escalations"),
                                ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_escalation_steps")),
        sa.UniqueConstraint("escalation_id", "step",
                            name=op.f("uq_escalation_steps_escalation_id_step")),
    )


def downgrade() -> None:
    """Reverts this revision."""
    op.drop_table("escalation_steps")
    op.drop_table("deliveries")
    op.drop_table("subscriptions")
    op.drop_table("outbox_events")
    with op.batch_alter_table("escalations") as batch:
        batch.drop_column("next_step_at")
        batch.drop_column("steps_taken")
        batch.drop_column("breached_at")
    with op.batch_alter_table("principals") as batch:
        batch.drop_column("email")
