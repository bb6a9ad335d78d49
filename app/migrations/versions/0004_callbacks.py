"""Outbound calls: the end-of-call rating on each call, callback tasks (回访, missed calls, callbacks
asked for in the queue), their attempts, the outbound line slots, and the do-not-call list.

Revision ID: 0004_callbacks
Revises: 0003_closed_loop
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_callbacks"
down_revision = "0003_closed_loop"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("rating", sa.String(24), nullable=True))
        batch.add_column(sa.Column("rating_result", sa.String(16), nullable=True))
    op.create_table(
        "callback_tasks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("platform", sa.String(8), nullable=False),
        sa.Column("ticket", sa.String(32), nullable=True),
        sa.Column("linkedid", sa.String(64), nullable=True),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("result", sa.String(24), nullable=True),
        sa.Column("due_at", sa.Double(), nullable=False),
        sa.Column("expires_at", sa.Double(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("max_attempts", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(64), nullable=True),
        sa.Column("lease_until", sa.Double(), nullable=True),
        sa.Column("seat", sa.String(16), nullable=True),
        sa.Column("answers", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("note", sa.String(256), nullable=True),
        sa.Column("waited_s", sa.Double(), nullable=True),
        sa.Column("dedupe_key", sa.String(96), nullable=False, unique=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
    )
    op.create_index("ix_callback_tasks_state_due", "callback_tasks", ["state", "due_at"])
    op.create_index("ix_callback_tasks_ticket", "callback_tasks", ["ticket"])
    op.create_index("ix_callback_tasks_linkedid", "callback_tasks", ["linkedid"])
    op.create_table(
        "callback_attempts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("task_id", sa.BigInteger(), nullable=False),
        sa.Column("no", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.String(64), nullable=False, unique=True),
        sa.Column("started_at", sa.Double(), nullable=False),
        sa.Column("ended_at", sa.Double(), nullable=True),
        sa.Column("result", sa.String(24), nullable=True),
        sa.Column("cause", sa.Integer(), nullable=True),
        sa.Column("cause_txt", sa.String(64), nullable=True),
        sa.Column("placed_by", sa.String(128), nullable=False),
        sa.UniqueConstraint("task_id", "no", name="uq_callback_attempts_task_no"),
    )
    op.create_table(
        "callback_slots",
        sa.Column("platform", sa.String(8), primary_key=True),
        sa.Column("slot", sa.Integer(), primary_key=True),
        sa.Column("task_id", sa.BigInteger(), nullable=True),
        sa.Column("taken_at", sa.Double(), nullable=True),
    )
    op.create_table(
        "no_call_numbers",
        sa.Column("number", sa.String(32), primary_key=True),
        sa.Column("reason", sa.String(256), nullable=True),
        sa.Column("added_by", sa.String(128), nullable=False),
        sa.Column("added_at", sa.Double(), nullable=False),
    )


def downgrade() -> None:
    for table in ("no_call_numbers", "callback_slots", "callback_attempts"):
        op.drop_table(table)
    for index in ("ix_callback_tasks_linkedid", "ix_callback_tasks_ticket", "ix_callback_tasks_state_due"):
        op.drop_index(index, table_name="callback_tasks")
    op.drop_table("callback_tasks")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("rating_result")
        batch.drop_column("rating")
