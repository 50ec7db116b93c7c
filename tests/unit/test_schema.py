"""The metadata database's schema: made, upgraded in place, refused when too new — on the
backend the suite runs on (SQLite, or PostgreSQL with MLMARKET_TEST_DATABASE=postgresql)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from mlmarket import cli
from mlmarket.domain import kinds
from mlmarket.storage import schema
from mlmarket.storage.metadata import DatabaseUnavailable, ListQuery, MetadataStore, connect
from mlmarket.storage.objects import ObjectStore

NOW = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)


def _tables(url: str) -> set[str]:
    engine = connect(url)
    try:
        return set(sa.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_an_empty_database_is_made_at_this_versions_schema(database_url: str) -> None:
    store = MetadataStore(database_url)
    assert store.schema.current == store.schema.head
    store.close()
    assert {"resources", "accounts", "usage", "objects", "uploads", "parts"} <= _tables(
        database_url
    )


def _legacy_database(url: str) -> None:
    """What mlmarket made before migrations (create_all, objects without their headers), with
    an endpoint and an object in it."""
    meta = sa.MetaData()
    resources = sa.Table(
        "resources",
        meta,
        sa.Column("account_id", sa.String(12), primary_key=True),
        sa.Column("region", sa.String(32), primary_key=True),
        sa.Column("kind", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("arn", sa.String(2048), nullable=False),
        sa.Column("created", sa.DateTime(timezone=True), nullable=False),
        sa.Column("modified", sa.DateTime(timezone=True), nullable=False),
        sa.Column("spec", sa.Text, nullable=False),
        sa.Column("state", sa.Text, nullable=False),
    )
    for name, columns in (
        ("accounts", [sa.Column("account_id", sa.String(12), primary_key=True)]),
        ("buckets", [sa.Column("name", sa.String(63), primary_key=True)]),
    ):
        sa.Table(name, meta, *columns)
    objects = sa.Table(
        "objects",
        meta,
        sa.Column("bucket", sa.String(63), primary_key=True),
        sa.Column("key", sa.String(1024), primary_key=True),
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
        sa.Column("bucket", sa.String(63), nullable=False),
        sa.Column("key", sa.String(1024), nullable=False),
        sa.Column("content_type", sa.String(255), nullable=False),
        sa.Column("metadata", sa.Text, nullable=False),
        sa.Column("initiated", sa.DateTime(timezone=True), nullable=False),
    )
    engine = connect(url)
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(
            resources.insert().values(
                account_id="123456789012",
                region="us-east-1",
                kind="endpoint",
                name="kept",
                arn="arn:aws:sagemaker:us-east-1:123456789012:endpoint/kept",
                created=NOW,
                modified=NOW,
                spec=json.dumps({"EndpointName": "kept"}),
                state=json.dumps({"EndpointStatus": "InService"}),
            )
        )
        conn.execute(
            objects.insert().values(
                bucket="b",
                key="model.tar.gz",
                blob="0" * 64,
                size=3,
                etag="e",
                content_type="application/x-gzip",
                metadata="{}",
                checksums="{}",
                modified=NOW,
            )
        )
    engine.dispose()


def test_a_database_made_before_migrations_upgrades_in_place_keeping_its_rows(
    database_url: str, tmp_path: Path
) -> None:
    _legacy_database(database_url)
    assert "alembic_version" not in _tables(database_url)
    store = MetadataStore(database_url)
    assert store.schema.current == store.schema.head
    kept = store.get("123456789012", "us-east-1", kinds.ENDPOINT, "kept")
    assert kept is not None and kept.state["EndpointStatus"] == "InService"
    # the columns List operations filter on were filled from the rows' JSON
    listed, _ = store.page(
        "123456789012",
        "us-east-1",
        kinds.ENDPOINT,
        ListQuery(name_contains="KEP", status="InService"),
    )
    assert [r.name for r in listed] == ["kept"]
    found = ObjectStore(store.engine, tmp_path / "objects").head("b", "model.tar.gz")
    assert found is not None and found.headers == {}  # the column the upgrade added
    # the tables that did not exist yet were made
    assert {"usage", "quotas", "access_keys", "parts"} <= _tables(database_url)
    store.close()


def test_a_schema_newer_than_this_mlmarket_is_refused_with_a_clear_message(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    MetadataStore(database_url).close()
    engine = connect(database_url)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    with pytest.raises(schema.SchemaTooNew, match="at revision 9999, which this mlmarket"):
        MetadataStore(database_url)
    monkeypatch.setenv("MLMARKET_DATABASE_URL", database_url)
    assert cli.main(["db", "upgrade"]) == 2
    assert "upgraded by a newer mlmarket" in capsys.readouterr().err


def test_an_unreachable_database_is_named_with_its_password_hidden(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "postgresql://seller:hunter2@127.0.0.1:1/mlmarket"  # nothing listens on port 1
    with pytest.raises(DatabaseUnavailable) as error:
        MetadataStore(url)
    assert "postgresql+psycopg://seller:***@127.0.0.1:1/mlmarket" in str(error.value)
    assert "hunter2" not in str(error.value)
    monkeypatch.setenv("MLMARKET_DATABASE_URL", url)
    assert cli.main(["db", "version"]) == 2
    assert "Cannot use the database" in capsys.readouterr().err


def test_object_keys_list_in_utf8_byte_order_on_every_backend(
    database_url: str, tmp_path: Path
) -> None:
    store = MetadataStore(database_url)
    objects = ObjectStore(store.engine, tmp_path / "objects")
    objects.create_bucket("b", "123456789012", "us-east-1", NOW)
    keys = ["a", "B", "é", "~", "Z", "a/b", "a-b", "ä", "😀"]
    for key in keys:
        objects.put_chunks(iter([b"x"]), "b", key, "text/plain", NOW)
    listed = [o.key for o in objects.list_objects("b", "", "", 100)]
    assert listed == sorted(keys, key=lambda k: k.encode())
    store.close()
