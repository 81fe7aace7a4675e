"""Reliability: faults injected into real servers and databases, a soak, and fuzzing.

Run by ``make reliability`` (and by CI on SQLite and on PostgreSQL), not by ``make test``.
"""
