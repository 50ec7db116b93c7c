"""Where state lives: metadata (SQLAlchemy, SQLite by default) and artifacts (s3:// on disk)."""
