"""Operators and the audit trail: an account may be marked as an operator (`mlmarket account
operator NAME`), and every API operation called (who, what, the outcome, when) is kept in
`audit`, for the console's operators."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("accounts") as batch:
        batch.add_column(
            sa.Column("operator", sa.Boolean, nullable=False, server_default=sa.false())
        )
    op.create_table(
        "audit",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.String(12), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("service", sa.String(64), nullable=False),
        sa.Column("operation", sa.String(128), nullable=False),
        sa.Column("status", sa.Integer, nullable=False),
        sa.Column("error_code", sa.String(128)),
        sa.Column("request_id", sa.String(64), nullable=False),
    )
    op.create_index("ix_audit_at", "audit", ["at"])
    op.create_index("ix_audit_account_at", "audit", ["account_id", "at"])


def downgrade() -> None:
    raise NotImplementedError("mlmarket's schema only moves forward")
