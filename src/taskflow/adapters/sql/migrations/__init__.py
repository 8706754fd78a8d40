"""Alembic migrations of the SQL task store; run them with ``taskflow.adapters.sql.migrate``."""
