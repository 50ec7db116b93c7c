"""The database schema's history, as Alembic migrations run by storage/schema.py."""
