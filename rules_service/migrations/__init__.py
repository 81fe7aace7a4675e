"""Alembic migrations of the rules-service schema (run with ``rules-service db upgrade``)."""
