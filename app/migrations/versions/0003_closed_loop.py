"""The closed loop: work-order lifecycle columns, parts per handler, history, deadline alerts, and the
exchange's outbox, inbox and nonces. ``confirmed`` orders become ``accepted`` (受理).

Revision ID: 0003_closed_loop
Revises: 0002_transcripts_work_orders
Create Date: 2026-12-03
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_closed_loop"
down_revision = "0002_transcripts_work_orders"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _new_order_columns() -> tuple[sa.Column, ...]:
    # fresh objects each time: a Column belongs to the one table it was added to
    return (
        sa.Column("caller", sa.String(32), nullable=True),
        sa.Column("contact", sa.String(32), nullable=True),
        sa.Column("confidential", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("request_kind", sa.String(16), nullable=True),
        sa.Column("words", sa.Text(), nullable=True),
        sa.Column("origin", sa.String(8), nullable=True),
        sa.Column("peer_ticket", sa.String(32), nullable=True),
        sa.Column("peer_transcript", sa.String(256), nullable=True),
        sa.Column("merged_into", sa.String(32), nullable=True),
        sa.Column("closed_at", sa.Double(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=False, server_default="0"),
    )


def upgrade() -> None:
    with op.batch_alter_table("work_orders") as batch:
        batch.alter_column("linkedid", existing_type=sa.String(64), nullable=True)
        batch.alter_column(
            "status", type_=sa.String(24), existing_type=sa.String(16), existing_nullable=False
        )
        for column in _new_order_columns():
            batch.add_column(column)
    op.execute("UPDATE work_orders SET status = 'accepted' WHERE status = 'confirmed'")
    op.create_index("ix_work_orders_caller_created", "work_orders", ["caller", "created_at"])
    op.create_index("ix_work_orders_origin_peer_ticket", "work_orders", ["origin", "peer_ticket"])

    op.create_table(
        "work_order_parts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ticket", sa.String(32), nullable=False),
        sa.Column("no", sa.Integer(), nullable=False),
        sa.Column("handler", sa.String(32), nullable=False),
        sa.Column("handler_kind", sa.String(16), nullable=False),
        sa.Column("handler_name", sa.String(128), nullable=False),
        sa.Column("state", sa.String(24), nullable=False),
        sa.Column("dispatched_at", sa.Double(), nullable=False),
        sa.Column("dispatched_by", sa.String(128), nullable=False),
        sa.Column("sign_due_at", sa.Double(), nullable=False),
        sa.Column("warn_at", sa.Double(), nullable=False),
        sa.Column("due_at", sa.Double(), nullable=False),
        sa.Column("calendar_covered", sa.Boolean(), nullable=False),
        sa.Column("signed_at", sa.Double(), nullable=True),
        sa.Column("replied_at", sa.Double(), nullable=True),
        sa.Column("overdue_at", sa.Double(), nullable=True),
        sa.Column("result", sa.Text(), nullable=True),
        sa.Column("extension", sa.JSON(), nullable=True),
        sa.Column("returned", sa.JSON(), nullable=True),
        sa.Column("peer", sa.String(8), nullable=True),
        sa.Column("peer_ticket", sa.String(32), nullable=True),
        sa.Column("peer_part", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.UniqueConstraint("ticket", "no", name="uq_work_order_parts_ticket_no"),
    )
    op.create_index("ix_work_order_parts_handler_state", "work_order_parts", ["handler", "state"])
    op.create_index("ix_work_order_parts_state_due", "work_order_parts", ["state", "due_at"])
    op.create_index("ix_work_order_parts_state_warn", "work_order_parts", ["state", "warn_at"])
    op.create_index("ix_work_order_parts_state_sign_due", "work_order_parts", ["state", "sign_due_at"])
    op.create_index("ix_work_order_parts_peer", "work_order_parts", ["peer", "peer_ticket", "peer_part"])

    op.create_table(
        "work_order_history",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ticket", sa.String(32), nullable=False),
        sa.Column("part", sa.Integer(), nullable=True),
        sa.Column("step", sa.String(24), nullable=False),
        sa.Column("from_state", sa.String(24), nullable=True),
        sa.Column("to_state", sa.String(24), nullable=False),
        sa.Column("who", sa.String(128), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    op.create_index("ix_work_order_history_ticket_at", "work_order_history", ["ticket", "at"])
    op.create_index("ix_work_order_history_step_at", "work_order_history", ["step", "at"])

    op.create_table(
        "deadline_alerts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("part_id", sa.BigInteger(), nullable=False),
        sa.Column("ticket", sa.String(32), nullable=False),
        sa.Column("handler", sa.String(32), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("due_at", sa.Double(), nullable=False),
        sa.Column("fired_at", sa.Double(), nullable=False),
        sa.UniqueConstraint("part_id", "kind", "level", "due_at", name="uq_deadline_alerts_once"),
    )
    op.create_index("ix_deadline_alerts_ticket", "deadline_alerts", ["ticket"])
    op.create_index("ix_deadline_alerts_fired_at", "deadline_alerts", ["fired_at"])

    op.create_table(
        "exchange_outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("message_id", sa.String(64), nullable=False),
        sa.Column("peer", sa.String(8), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("ticket", sa.String(32), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_at", sa.Double(), nullable=False),
        sa.Column("claimed_until", sa.Double(), nullable=True),
        sa.Column("delivered_at", sa.Double(), nullable=True),
        sa.Column("last_error", sa.String(256), nullable=True),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.UniqueConstraint("message_id"),
    )
    op.create_index("ix_exchange_outbox_pending", "exchange_outbox", ["delivered_at", "next_at"])
    op.create_index("ix_exchange_outbox_ticket", "exchange_outbox", ["ticket"])

    op.create_table(
        "exchange_inbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("peer", sa.String(8), nullable=True),
        sa.Column("message_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(32), nullable=True),
        sa.Column("ticket", sa.String(32), nullable=True),
        sa.Column("received_at", sa.Double(), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=False),
        sa.Column("error_id", sa.String(64), nullable=True),
        sa.Column("applied_key", sa.String(80), nullable=True),
        sa.Column("answer", sa.JSON(), nullable=True),
        sa.Column("body", sa.Text(), nullable=False),
        sa.UniqueConstraint("applied_key"),
    )
    op.create_index("ix_exchange_inbox_received_at", "exchange_inbox", ["received_at"])

    op.create_table(
        "exchange_nonces",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("peer", sa.String(8), nullable=False),
        sa.Column("nonce", sa.String(64), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.UniqueConstraint("peer", "nonce", name="uq_exchange_nonces_peer_nonce"),
    )
    op.create_index("ix_exchange_nonces_at", "exchange_nonces", ["at"])


def downgrade() -> None:
    for table in (
        "exchange_nonces",
        "exchange_inbox",
        "exchange_outbox",
        "deadline_alerts",
        "work_order_history",
        "work_order_parts",
    ):
        op.drop_table(table)
    op.drop_index("ix_work_orders_origin_peer_ticket", "work_orders")
    op.drop_index("ix_work_orders_caller_created", "work_orders")
    op.execute("UPDATE work_orders SET status = 'confirmed' WHERE status NOT IN ('draft')")
    with op.batch_alter_table("work_orders") as batch:
        for column in reversed(_new_order_columns()):
            batch.drop_column(column.name)
        batch.alter_column(
            "status", type_=sa.String(16), existing_type=sa.String(24), existing_nullable=False
        )
        batch.alter_column("linkedid", existing_type=sa.String(64), nullable=False)
