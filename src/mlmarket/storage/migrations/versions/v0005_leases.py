"""Leases, intents and shared routes: what lets several servers share one database.

A lease names the one server that reconciles a resource (its `holder`) until `expires` (seconds
since the epoch, the holder's clock); an intent is what a caller asked of a resource that
another server reconciles (stop this job, roll out this endpoint update), with what it needs
to act (`payload`, JSON), kept until its holder acts on it. A shared route is how an endpoint
serves as its holder runs it (instances, health, containers), for the other servers to route
invocations by; `version` grows with every change.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

# kind → the state's key of its progress, as mlmarket had them when this migration was written
_PROGRESS = {
    "endpoint": "EndpointStatus",
    "training-job": "TrainingJobStatus",
    "transform-job": "TransformJobStatus",
    "hyper-parameter-tuning-job": "HyperParameterTuningJobStatus",
    "model-package": "ModelPackageStatus",
    "algorithm": "AlgorithmStatus",
    "mp-changeset": "Status",
}

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("resources") as batch:
        batch.add_column(sa.Column("progress", sa.String(64)))
    op.create_index("ix_resources_progress", "resources", ["kind", "progress"])
    resources = sa.table(
        "resources",
        sa.column("account_id"),
        sa.column("region"),
        sa.column("kind"),
        sa.column("name"),
        sa.column("state"),
        sa.column("progress"),
    )
    conn = op.get_bind()
    rows = conn.execute(sa.select(resources).where(resources.c.kind.in_(list(_PROGRESS)))).all()
    for row in rows:
        progress = json.loads(row.state).get(_PROGRESS[row.kind])
        if progress is not None:
            conn.execute(
                resources.update()
                .where(
                    resources.c.account_id == row.account_id,
                    resources.c.region == row.region,
                    resources.c.kind == row.kind,
                    resources.c.name == row.name,
                )
                .values(progress=str(progress))
            )
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

    op.create_table(
        "routes",
        sa.Column("arn", sa.String(2048), primary_key=True),
        sa.Column("account_id", sa.String(32), nullable=False),
        sa.Column("region", sa.String(32), nullable=False),
        sa.Column("name", sa.String(255), nullable=False),  # lower case, as endpoints match
        sa.Column("holder", sa.String(512), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("route", sa.Text, nullable=False),
    )
    op.create_index("ix_routes_name", "routes", ["account_id", "region", "name"], unique=True)


def downgrade() -> None:
    raise NotImplementedError("mlmarket's schema only moves forward")
