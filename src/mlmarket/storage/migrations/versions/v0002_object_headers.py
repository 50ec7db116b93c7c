"""Objects and multipart uploads keep the headers S3 returns as given (Content-Encoding,
Cache-Control, …). A database made before migrations may have the column already."""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    for table in ("objects", "uploads"):
        if "headers" not in {c["name"] for c in inspector.get_columns(table)}:
            op.add_column(table, sa.Column("headers", sa.Text, nullable=False, server_default="{}"))


def downgrade() -> None:
    raise NotImplementedError("mlmarket's schema only moves forward")
