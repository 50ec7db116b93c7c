"""The schema as it was before migrations: accounts, keys, quotas, resources, usage, and the
object store (buckets, objects, multipart uploads and their parts).

A database made before migrations existed already holds these tables (made by `create_all`),
so they are made only where missing; every later revision is an ordinary migration.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _key() -> sa.types.TypeEngine[str]:
    # S3 lists keys in UTF-8 byte order: on PostgreSQL the column collates bytewise ("C")
    return sa.String(1024).with_variant(sa.String(1024, collation="C"), "postgresql")


def upgrade() -> None:
    meta = sa.MetaData()
    sa.Table(
        "accounts",
        meta,
        sa.Column("account_id", sa.String(12), primary_key=True),
        sa.Column("name", sa.String(255), nullable=False, unique=True),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "access_keys",
        meta,
        sa.Column("access_key", sa.String(128), primary_key=True),
        sa.Column("secret_key", sa.String(128), nullable=False),
        sa.Column("account_id", sa.String(12), nullable=False, index=True),
    )
    sa.Table(
        "quotas",
        meta,
        sa.Column("account_id", sa.String(12), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("value", sa.Integer, nullable=False),
    )
    sa.Table(
        "resources",
        meta,
        sa.Column("account_id", sa.String(32), primary_key=True),
        sa.Column("region", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("arn", sa.String(2048), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
    )
    sa.Table(
        "usage",
        meta,
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("buyer", sa.String(12), nullable=False, index=True),
        sa.Column("seller", sa.String(12), nullable=False, index=True),
        sa.Column("product_id", sa.String(64), nullable=False),
        sa.Column("dimension", sa.String(128), nullable=False),
        sa.Column("resource_arn", sa.String(2048), nullable=False),
        sa.Column("started", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended", sa.DateTime(timezone=True)),
        sa.Column("instances", sa.Integer),
        sa.Column("quantity", sa.Float),
    )
    sa.Table(
        "buckets",
        meta,
        sa.Column("name", sa.String(63), primary_key=True),
        sa.Column("account_id", sa.String(12), nullable=False, index=True),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "objects",
        meta,
        sa.Column("bucket", sa.String(63), primary_key=True),
        sa.Column("key", _key(), primary_key=True),
        sa.Column("blob", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("checksums", sa.Text, nullable=False),
        sa.Column("modified", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "uploads",
        meta,
        sa.Column("upload_id", sa.String(64), primary_key=True),
        sa.Column("bucket", sa.String(63), nullable=False, index=True),
        sa.Column("key", _key(), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("initiated", sa.DateTime(timezone=True), nullable=False),
    )
    sa.Table(
        "parts",
        meta,
        sa.Column("upload_id", sa.String(64), primary_key=True),
        sa.Column("part_number", sa.Integer, primary_key=True),
        sa.Column("blob", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
        sa.Column("etag", sa.String(64), nullable=False),
        sa.Column("modified", sa.DateTime(timezone=True), nullable=False),
    )
    meta.create_all(op.get_bind(), checkfirst=True)


def downgrade() -> None:
    raise NotImplementedError("mlmarket's schema only moves forward")
