"""Alembic migrations of the gateway database (run them with gateway.storage.session.migrate)."""
