"""Adapters: ruleset files, database tables and repositories."""
