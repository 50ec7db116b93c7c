"""Invocation metrics: each endpoint's invocations, errors and latency per minute, written by
every server that served them (controllers/invocation_metrics.py), for the console's Metrics."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "invocation_metrics",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("endpoint", sa.String(63), nullable=False),
        sa.Column("variant", sa.String(63), nullable=False),
        sa.Column("minute", sa.Integer, nullable=False),
        sa.Column("invocations", sa.Integer, nullable=False),
        sa.Column("errors_4xx", sa.Integer, nullable=False),
        sa.Column("errors_5xx", sa.Integer, nullable=False),
        sa.Column("latency_us_sum", sa.Float, nullable=False),
        sa.Column("latency_us_max", sa.Float, nullable=False),
    )
    op.create_index(
        "ix_invocation_metrics_endpoint",
        "invocation_metrics",
        ["account_id", "region", "endpoint", "minute"],
    )
    op.create_index("ix_invocation_metrics_minute", "invocation_metrics", ["minute"])


def downgrade() -> None:
    raise NotImplementedError("mlmarket's schema only moves forward")
