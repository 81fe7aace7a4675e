"""Every test here is a reliability test (``-m reliability`` selects them)."""

from __future__ import annotations

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks every test collected under tests/reliability."""
    for item in items:
        if "tests/reliability" in str(item.path):
            item.add_marker(pytest.mark.reliability)
