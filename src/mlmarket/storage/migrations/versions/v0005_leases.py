"""Leases and intents: what lets several servers share one database.

A lease names the one server that reconciles a resource (its `holder`) until `expires` (seconds
since the epoch, the holder's clock); an intent is what a caller asked of a resource that
another server reconciles (stop this job, roll out this endpoint update), with what it needs
to act (`payload`, JSON), kept until its holder acts on it.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "leases",
        sa.Column("arn", sa.String(2048), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("holder", sa.String(512), nullable=False),
        sa.Column("expires", sa.Float, nullable=False),
    )
    op.create_index("ix_leases_holder", "leases", ["holder"])
    op.create_table(
        "intents",
        sa.Column("arn", sa.String(2048), primary_key=True),
        sa.Column("intent", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(64), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("payload", sa.Text),
    )


def downgrade() -> None:
    raise NotImplementedError("mlmarket's schema only moves forward")
