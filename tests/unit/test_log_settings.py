"""The logging and tracing settings: defaults, accepted spellings, every bad value named."""

from __future__ import annotations

import pytest

from rules_service.config import Settings, SettingsError
from rules_service.gunicorn_conf import control_socket_for


def test_logs_are_json_at_info_and_tracing_is_off_by_default() -> None:
    settings = Settings.from_env({})
    assert (settings.log_level, settings.log_format, settings.otel) == ("INFO", "json", False)


def test_log_settings_accept_any_case_and_tracing_the_usual_yes() -> None:
    settings = Settings.from_env({"RULES_SERVICE_LOG_LEVEL": " debug ",
                                  "RULES_SERVICE_LOG_FORMAT": "TEXT",
                                  "RULES_SERVICE_OTEL": "true"})
    assert (settings.log_level, settings.log_format, settings.otel) == ("DEBUG", "text", True)
    assert Settings.from_env({"RULES_SERVICE_OTEL": "0"}).otel is False


@pytest.mark.parametrize(("name", "value"), [("RULES_SERVICE_LOG_LEVEL", "loud"),
                                             ("RULES_SERVICE_LOG_FORMAT", "xml")])
def test_an_unusable_log_setting_is_refused_by_name_with_the_choices(name: str,
                                                                      value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    assert name in str(caught.value) and repr(value) in str(caught.value)


def test_each_master_address_has_its_own_control_socket_beside_gunicorns_default() -> None:
    default = "/run/user/0/gunicorn.ctl"
    a = control_socket_for(["127.0.0.1:8080"], default)
    b = control_socket_for(["127.0.0.1:8081"], default)
    assert a == "/run/user/0/rules-service-127.0.0.1-8080.ctl" and a != b
    assert control_socket_for(["unix:/run/rules.sock"], default) == (
        "/run/user/0/rules-service-unix-run-rules.sock.ctl")
