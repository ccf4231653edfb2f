"""Settings.from_env: the defaults, every malformed variable named in its error, derived paths."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateway.settings import Settings, SettingsError


def test_defaults_for_an_empty_environment() -> None:
    settings = Settings.from_env({})

    assert settings.environment == "development"
    assert settings.database_url == "sqlite:///var/shiftgate.db"
    assert settings.database_kind == "sqlite"
    assert settings.sqlite_path == Path("var/shiftgate.db")
    assert settings.var_dir == Path("var")
    assert settings.root_key_file == Path("var/root.key")
    assert settings.root_key is None
    assert settings.redis_url is None
    assert settings.base_url == "http://127.0.0.1:8000"
    assert (settings.host, settings.port) == ("127.0.0.1", 8000)
    assert settings.session_hours == 8.0
    assert (settings.login_max_failures, settings.login_window_seconds) == (5, 900)
    assert settings.trusted_proxies == ()
    assert settings.secure_cookies is False


def test_empty_values_count_as_unset() -> None:
    assert Settings.from_env({"SHIFTGATE_PORT": "", "DATABASE_URL": ""}) == Settings.from_env({})


def test_well_formed_values_are_read() -> None:
    settings = Settings.from_env(
        {
            "DATABASE_URL": "postgresql://gw@db.internal:5432/shiftgate",
            "REDIS_URL": "redis://cache.internal:6379/2",
            "SHIFTGATE_ENVIRONMENT": "production",
            "SHIFTGATE_BASE_URL": "https://gate.example.com",
            "SHIFTGATE_PORT": "9000",
            "SHIFTGATE_SESSION_HOURS": "2.5",
            "SHIFTGATE_LOGIN_MAX_FAILURES": "3",
            "SHIFTGATE_LOGIN_WINDOW_SECONDS": "60",
            "SHIFTGATE_LOG_LEVEL": "debug",
        }
    )
    assert settings.database_kind == "postgres"
    assert settings.redis_url == "redis://cache.internal:6379/2"
    assert settings.environment == "production"
    assert settings.port == 9000
    assert settings.session_hours == 2.5
    assert (settings.login_max_failures, settings.login_window_seconds) == (3, 60)


MALFORMED = [
    ("DATABASE_URL", "mysql://x"),
    ("DATABASE_URL", "sqlite:///"),
    ("DATABASE_URL", "sqlite:///:memory:"),
    ("REDIS_URL", "http://cache:6379"),
    ("SHIFTGATE_BASE_URL", "ftp://x"),
    ("SHIFTGATE_BASE_URL", "https://"),
    ("SHIFTGATE_BASE_URL", "https://gate.example.com/portal"),
    ("SHIFTGATE_ENVIRONMENT", "staging"),
    ("SHIFTGATE_PORT", "eighty"),
    ("SHIFTGATE_PORT", "0"),
    ("SHIFTGATE_PORT", "65536"),
    ("SHIFTGATE_SESSION_HOURS", "abc"),
    ("SHIFTGATE_SESSION_HOURS", "0"),
    ("SHIFTGATE_SESSION_HOURS", "169"),
    ("SHIFTGATE_SESSION_HOURS", "nan"),
    ("SHIFTGATE_LOGIN_MAX_FAILURES", "many"),
    ("SHIFTGATE_LOGIN_MAX_FAILURES", "0"),
    ("SHIFTGATE_LOGIN_WINDOW_SECONDS", "-5"),
    ("SHIFTGATE_TRUSTED_PROXIES", "10.0.0.1, proxy.internal"),
    ("SHIFTGATE_LOG_LEVEL", "verbose"),
]


@pytest.mark.parametrize(("name", "value"), MALFORMED)
def test_a_malformed_variable_is_named_first_in_the_error(name: str, value: str) -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({name: value})
    message = str(caught.value)
    assert message.startswith(f"{name}: "), message
    assert "\n" not in message


def test_unknown_environment_error_lists_the_choices() -> None:
    with pytest.raises(SettingsError, match="development, production, test"):
        Settings.from_env({"SHIFTGATE_ENVIRONMENT": "staging"})


def test_var_dir_moves_the_root_key_file_and_the_sqlite_file() -> None:
    settings = Settings.from_env({"SHIFTGATE_VAR_DIR": "/srv/shiftgate"})

    assert settings.var_dir == Path("/srv/shiftgate")
    assert settings.root_key_file == Path("/srv/shiftgate/root.key")
    assert settings.database_kind == "sqlite"
    assert settings.sqlite_path == Path("/srv/shiftgate/shiftgate.db")


def test_relative_var_dir_gives_a_relative_sqlite_file() -> None:
    settings = Settings.from_env({"SHIFTGATE_VAR_DIR": "data"})
    assert settings.sqlite_path == Path("data/shiftgate.db")
    assert settings.root_key_file == Path("data/root.key")


def test_explicit_database_url_and_root_key_file_win_over_var_dir() -> None:
    settings = Settings.from_env(
        {
            "SHIFTGATE_VAR_DIR": "/srv/shiftgate",
            "DATABASE_URL": "sqlite:////data/gw.db",
            "SHIFTGATE_ROOT_KEY_FILE": "/etc/shiftgate/root.key",
        }
    )
    assert settings.sqlite_path == Path("/data/gw.db")
    assert settings.root_key_file == Path("/etc/shiftgate/root.key")


def test_production_requires_an_https_base_url() -> None:
    with pytest.raises(SettingsError) as caught:
        Settings.from_env({"SHIFTGATE_ENVIRONMENT": "production"})
    assert str(caught.value).startswith("SHIFTGATE_BASE_URL: ")
    assert "https" in str(caught.value)

    with pytest.raises(SettingsError, match=r"^SHIFTGATE_BASE_URL: "):
        Settings.from_env(
            {"SHIFTGATE_ENVIRONMENT": "production", "SHIFTGATE_BASE_URL": "http://gate.example"}
        )

    settings = Settings.from_env(
        {"SHIFTGATE_ENVIRONMENT": "production", "SHIFTGATE_BASE_URL": "https://gate.example"}
    )
    assert settings.base_url == "https://gate.example"


def test_base_url_is_kept_as_an_origin_without_trailing_slash() -> None:
    settings = Settings.from_env({"SHIFTGATE_BASE_URL": "https://gate.example/"})
    assert settings.base_url == "https://gate.example"


@pytest.mark.parametrize(
    ("environ", "secure"),
    [
        ({}, False),
        ({"SHIFTGATE_BASE_URL": "http://localhost:8000"}, False),
        ({"SHIFTGATE_ENVIRONMENT": "test"}, False),
        ({"SHIFTGATE_BASE_URL": "https://gate.example"}, True),
        ({"SHIFTGATE_ENVIRONMENT": "production", "SHIFTGATE_BASE_URL": "https://g.example"}, True),
    ],
)
def test_secure_cookies_outside_plain_http_development(
    environ: dict[str, str], secure: bool
) -> None:
    assert Settings.from_env(environ).secure_cookies is secure


def test_production_cookies_are_secure_even_if_constructed_with_http() -> None:
    # Settings built in code skip from_env's checks; the cookie flag must still hold.
    assert Settings(environment="production", base_url="http://gate.example").secure_cookies


def test_trusted_proxies_from_a_comma_list() -> None:
    settings = Settings.from_env(
        {"SHIFTGATE_TRUSTED_PROXIES": " 10.0.0.1, 192.168.0.0/16 ,,fd00::/8, "}
    )
    assert settings.trusted_proxies == ("10.0.0.1", "192.168.0.0/16", "fd00::/8")
