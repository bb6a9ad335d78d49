"""transcript_segments, work_orders, work_order_corrections; call_events.type widened to 32

Revision ID: 0002_transcripts_work_orders
Revises: 0001_initial
Create Date: 2026-11-29
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_transcripts_work_orders"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    # "conference_joined" is 17 characters: PostgreSQL refused it in a VARCHAR(16). (On SQLite, which
    # does not enforce lengths, batch mode copies the table once so the schema says the same.)
    with op.batch_alter_table("call_events") as batch:
        batch.alter_column("type", type_=sa.String(32), existing_type=sa.String(16), existing_nullable=False)

    op.create_table(
        "transcript_segments",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("linkedid", sa.String(64), nullable=False),
        sa.Column("tap", sa.String(64), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("speaker", sa.String(16), nullable=False),
        sa.Column("seat", sa.String(16), nullable=True),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("start_at", sa.Double(), nullable=False),
        sa.Column("end_at", sa.Double(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("confidence", sa.Double(), nullable=True),
        sa.Column("stored_at", sa.Double(), nullable=False),
        sa.UniqueConstraint("tap", "seq", name="uq_transcript_segments_tap_seq"),
    )
    op.create_index("ix_transcript_segments_linkedid_start", "transcript_segments", ["linkedid", "start_at"])

    op.create_table(
        "work_orders",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ticket", sa.String(32), nullable=False),
        sa.Column("linkedid", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(8), nullable=False),
        sa.Column("service", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("category_code", sa.String(8), nullable=True),
        sa.Column("category_name", sa.String(64), nullable=True),
        sa.Column("action", sa.String(32), nullable=False),
        sa.Column("life_threat", sa.Boolean(), nullable=False),
        sa.Column("linkage", sa.JSON(), nullable=False),
        sa.Column("address", sa.String(256), nullable=True),
        sa.Column("slots", sa.JSON(), nullable=False),
        sa.Column("summary", sa.String(256), nullable=False),
        sa.Column("dispatch", sa.JSON(), nullable=False),
        sa.Column("rules_version", sa.String(32), nullable=False),
        sa.Column("caller_segments", sa.Integer(), nullable=False),
        sa.Column("suggestion", sa.JSON(), nullable=True),
        sa.Column("alert", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.Double(), nullable=False),
        sa.Column("updated_at", sa.Double(), nullable=False),
        sa.Column("confirmed_by", sa.String(128), nullable=True),
        sa.Column("confirmed_at", sa.Double(), nullable=True),
        sa.UniqueConstraint("ticket"),
        sa.UniqueConstraint("linkedid"),
    )
    op.create_index("ix_work_orders_status_created", "work_orders", ["status", "created_at"])
    op.create_index("ix_work_orders_service_created", "work_orders", ["service", "created_at"])

    op.create_table(
        "work_order_corrections",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("ticket", sa.String(32), nullable=False),
        sa.Column("field", sa.String(16), nullable=False),
        sa.Column("engine_value", sa.JSON(), nullable=True),
        sa.Column("operator_value", sa.JSON(), nullable=True),
        sa.Column("corrected_by", sa.String(128), nullable=False),
        sa.Column("corrected_at", sa.Double(), nullable=False),
    )
    op.create_index("ix_work_order_corrections_ticket", "work_order_corrections", ["ticket"])
    op.create_index("ix_work_order_corrections_at", "work_order_corrections", ["corrected_at"])


def downgrade() -> None:
    op.drop_table("work_order_corrections")
    op.drop_table("work_orders")
    op.drop_table("transcript_segments")
    with op.batch_alter_table("call_events") as batch:
        batch.alter_column("type", type_=sa.String(16), existing_type=sa.String(32), existing_nullable=False)
