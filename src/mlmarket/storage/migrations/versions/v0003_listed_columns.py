"""List operations filter, sort and page in SQL: each resource's name as given, its status and
the group it is a version of are copied out of its JSON into indexed columns.

Existing rows are filled from their JSON here, by the kinds' fields as they were at this
revision (a migration does not follow later code).
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

# kind: (the spec's name field or None for the stored name, the status field (in the state,
# or "spec:" and its field in the spec), the spec's group field)
_LISTED: dict[str, tuple[str | None, str | None, str | None]] = {
    "model": ("ModelName", None, None),
    "endpoint-config": ("EndpointConfigName", None, None),
    "endpoint": ("EndpointName", "EndpointStatus", None),
    "training-job": ("TrainingJobName", "TrainingJobStatus", None),
    "transform-job": ("TransformJobName", "TransformJobStatus", None),
    "model-package": (None, "spec:ModelApprovalStatus", "ModelPackageGroupName"),
    "model-package-group": ("ModelPackageGroupName", None, None),
    "algorithm": ("AlgorithmName", "AlgorithmStatus", None),
}

_KEY = ("account_id", "region", "kind", "name")


def upgrade() -> None:
    name_type = sa.String(255).with_variant(sa.String(255, collation="C"), "postgresql")
    op.add_column(
        "resources", sa.Column("display_name", name_type, nullable=False, server_default="")
    )
    op.add_column("resources", sa.Column("status", sa.String(64)))
    op.add_column("resources", sa.Column("parent", sa.String(255)))
    _fill()
    op.create_index(
        "ix_resources_created",
        "resources",
        ["account_id", "region", "kind", "created", "display_name"],
    )
    op.create_index(
        "ix_resources_name",
        "resources",
        ["account_id", "region", "kind", "display_name", "created"],
    )
    op.create_index(
        "ix_resources_status",
        "resources",
        ["account_id", "region", "kind", "status", "display_name"],
    )
    op.create_index("ix_resources_kind", "resources", ["kind"])


def _fill() -> None:
    bind = op.get_bind()
    table = sa.table(
        "resources",
        *(sa.column(c) for c in (*_KEY, "spec", "state", "display_name", "status", "parent")),
    )
    rows = bind.execute(
        sa.select(
            table.c.account_id,
            table.c.region,
            table.c.kind,
            table.c.name,
            table.c.spec,
            table.c.state,
        )
    ).all()
    for row in rows:
        name_field, status_field, parent_field = _LISTED.get(row.kind, (None, None, None))
        spec, state = json.loads(row.spec), json.loads(row.state)
        bind.execute(
            table.update()
            .where(*(table.c[k] == getattr(row, k) for k in _KEY))
            .values(
                display_name=spec.get(name_field, row.name) if name_field else row.name,
                status=_status(spec, state, status_field),
                parent=spec.get(parent_field) if parent_field else None,
            )
        )


def _status(spec: dict[str, object], state: dict[str, object], field: str | None) -> object:
    if field is None:
        return None
    if field.startswith("spec:"):
        return spec.get(field.removeprefix("spec:"))
    return state.get(field)


def downgrade() -> None:
    raise NotImplementedError("mlmarket's schema only moves forward")
