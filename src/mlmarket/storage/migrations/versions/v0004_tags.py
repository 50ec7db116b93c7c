"""Tags of SageMaker resources (AddTags, ListTags, DeleteTags, and the Tags of Create calls),
one row per key, beside their resource's row."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    key = sa.String(128).with_variant(sa.String(128, collation="C"), "postgresql")
    op.create_table(
        "tags",
        sa.Column("account_id", sa.String(32), primary_key=True),
        sa.Column("region", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("key", key, primary_key=True),
        sa.Column("value", sa.String(256), nullable=False),
    )


def downgrade() -> None:
    raise NotImplementedError("mlmarket's schema only moves forward")
