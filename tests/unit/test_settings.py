"""Settings read from the environment: the batch limit and the public-docs switch."""

from __future__ import annotations

import pytest

from rules_service.config import Settings, SettingsError


def test_the_docs_are_closed_unless_the_setting_opens_them() -> None:
    assert Settings.from_env({}).public_docs is False
    for word in ("true", "1", "yes", "ON"):
        assert Settings.from_env({"RULES_SERVICE_PUBLIC_DOCS": word}).public_docs is True
    for word in ("false", "0", "no", "off", " "):
        assert Settings.from_env({"RULES_SERVICE_PUBLIC_DOCS": word}).public_docs is False


def test_an_unclear_public_docs_value_is_refused_not_guessed() -> None:
    with pytest.raises(SettingsError, match="RULES_SERVICE_PUBLIC_DOCS"):
        Settings.from_env({"RULES_SERVICE_PUBLIC_DOCS": "maybe"})


def test_the_batch_limit_can_be_lowered_and_raised() -> None:
    assert Settings.from_env({}).batch_limit == 1000
    assert Settings.from_env({"RULES_SERVICE_BATCH_LIMIT": "10"}).batch_limit == 10
    assert Settings.from_env({"RULES_SERVICE_BATCH_LIMIT": "5000"}).batch_limit == 5000
    with pytest.raises(SettingsError):
        Settings.from_env({"RULES_SERVICE_BATCH_LIMIT": "0"})


@pytest.mark.parametrize(("raw", "kept"), [
    ("", ""), ("https://rules.example.com/", "https://rules.example.com"),
    ("http://127.0.0.1:8080", "http://127.0.0.1:8080"),
    (" https://example.com/rules// ", "https://example.com/rules"),
])
def test_the_base_url_is_kept_without_its_trailing_slash(raw: str, kept: str) -> None:
    assert Settings.from_env({"RULES_SERVICE_BASE_URL": raw}).base_url == kept


@pytest.mark.parametrize("raw", ["rules.example.com", "ftp://example.com", "https://",
                                 "https://example.com/?x=1", "javascript:alert(1)"])
def test_a_base_url_that_is_not_an_http_address_is_refused(raw: str) -> None:
    with pytest.raises(SettingsError, match="RULES_SERVICE_BASE_URL"):
        Settings.from_env({"RULES_SERVICE_BASE_URL": raw})
