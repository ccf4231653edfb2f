"""Gateway settings: one frozen Struct read from the environment; errors name the variable."""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

import msgspec

__all__ = ["Settings", "SettingsError"]

Environment = Literal["development", "production", "test"]
_ENVIRONMENTS = ("development", "production", "test")
_LOG_LEVELS = ("CRITICAL", "ERROR", "WARNING", "INFO", "DEBUG")
_BOOLEANS = {"1": True, "true": True, "yes": True, "0": False, "false": False, "no": False}


class SettingsError(ValueError):
    """A malformed environment variable; the message names it and says what is expected."""


class Settings(msgspec.Struct, frozen=True, kw_only=True):
    """Everything the gateway reads from its environment. See the README's configuration table."""

    environment: Environment = "development"
    database_url: str = "sqlite:///var/shiftgate.db"
    redis_url: str | None = None
    redis_namespace: str = "shiftgate"
    var_dir: Path = Path("var")
    root_key_file: Path = Path("var/root.key")
    root_key: str | None = None
    base_url: str = "http://127.0.0.1:8000"
    host: str = "127.0.0.1"
    port: int = 8000
    session_hours: float = 8.0
    login_max_failures: int = 5
    login_window_seconds: int = 900
    trusted_proxies: tuple[str, ...] = ()
    log_level: str = "INFO"
    sqlite_synchronous: Literal["NORMAL", "FULL"] = "NORMAL"
    access_token_seconds: int = 600
    token_rate_per_client: int = 60
    token_rate_per_address: int = 120
    run_worker: bool = False
    worker_max_sleep_seconds: float = 1.0
    webhook_timeout_seconds: float = 10.0
    webhook_allow_private: bool = False
    metrics_token: str | None = None
    audit_checkpoint_events: int = 1000
    audit_checkpoint_seconds: float = 60.0

    @property
    def secure_cookies(self) -> bool:
        """Cookies are `Secure` everywhere but on a plain-HTTP local setup."""
        return self.environment == "production" or self.base_url.startswith("https://")

    @property
    def issuer(self) -> str:
        """The OAuth issuer identifier: the public origin."""
        return self.base_url.rstrip("/")

    @property
    def token_url(self) -> str:
        return f"{self.issuer}/oauth/token"

    @property
    def api_audience(self) -> str:
        """The `aud` of every access token: the partner API's resource identifier."""
        return f"{self.issuer}/api/v1/partner"

    @property
    def webhook_lease(self) -> timedelta:
        """How long a worker holds a delivery it posts: past the timeout, with room to record."""
        return timedelta(seconds=2 * self.webhook_timeout_seconds + 5)

    @property
    def database_kind(self) -> Literal["sqlite", "postgres"]:
        return (
            "postgres"
            if self.database_url.startswith(("postgres://", "postgresql://"))
            else "sqlite"
        )

    @property
    def sqlite_path(self) -> Path:
        """The SQLite file of `DATABASE_URL`: `sqlite:///relative/path` or `sqlite:////abs/path`."""
        return Path(self.database_url.removeprefix("sqlite:///"))

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read `DATABASE_URL`, `REDIS_URL`, `SHIFTGATE_*`; a bad one raises `SettingsError`."""
        env = os.environ if environ is None else environ
        values: dict[str, object] = {}
        for spec in msgspec.structs.fields(cls):
            name = _env_name(spec.name)
            raw = env.get(name)
            if raw is None or raw == "":
                continue
            values[spec.name] = _parse(name, spec.name, raw)
        var_dir = values.get("var_dir")
        if isinstance(var_dir, str) and "root_key_file" not in values:
            values["root_key_file"] = str(Path(var_dir) / "root.key")
        if isinstance(var_dir, str) and "database_url" not in values:
            values["database_url"] = f"sqlite:///{Path(var_dir) / 'shiftgate.db'}"
        try:
            settings = msgspec.convert(values, cls, strict=False, dec_hook=_decode_path)
        except msgspec.ValidationError as exc:
            field = _field_of(str(exc))
            raise SettingsError(f"{_env_name(field)}: {exc}") from None
        settings._check()
        return settings

    def _check(self) -> None:
        url = urlsplit(self.database_url)
        if url.scheme not in {"sqlite", "postgres", "postgresql"}:
            raise SettingsError(
                "DATABASE_URL: expected sqlite:///path/to/file.db or postgresql://user@host/db, "
                f"got scheme {url.scheme!r}"
            )
        if self.database_kind == "sqlite" and str(self.sqlite_path) in {"", ".", ":memory:"}:
            raise SettingsError(
                "DATABASE_URL: SQLite needs a file path (sqlite:///var/shiftgate.db)"
            )
        if self.redis_url is not None and urlsplit(self.redis_url).scheme not in {
            "redis",
            "rediss",
            "unix",
        }:
            raise SettingsError("REDIS_URL: expected redis://host:port/db or rediss://...")
        base = urlsplit(self.base_url)
        if base.scheme not in {"http", "https"} or not base.netloc or base.path not in {"", "/"}:
            raise SettingsError(
                "SHIFTGATE_BASE_URL: expected the public origin, e.g. https://shiftgate.example.com"
            )
        if self.environment == "production" and base.scheme != "https":
            raise SettingsError("SHIFTGATE_BASE_URL: production requires an https:// origin")
        if not 0 < self.port < 65536:
            raise SettingsError("SHIFTGATE_PORT: expected a port number between 1 and 65535")
        if not 0 < self.session_hours <= 24 * 7:
            raise SettingsError("SHIFTGATE_SESSION_HOURS: expected hours between 0 and 168")
        if self.login_max_failures < 1:
            raise SettingsError("SHIFTGATE_LOGIN_MAX_FAILURES: expected a whole number above 0")
        if not 30 <= self.access_token_seconds <= 600:
            raise SettingsError(
                "SHIFTGATE_ACCESS_TOKEN_SECONDS: expected 30 to 600 (10 minutes at most)"
            )
        if self.token_rate_per_client < 1:
            raise SettingsError("SHIFTGATE_TOKEN_RATE_PER_CLIENT: expected requests per minute")
        if self.token_rate_per_address < 1:
            raise SettingsError("SHIFTGATE_TOKEN_RATE_PER_ADDRESS: expected requests per minute")
        if self.login_window_seconds < 1:
            raise SettingsError("SHIFTGATE_LOGIN_WINDOW_SECONDS: expected a whole number above 0")
        if not 0.05 <= self.worker_max_sleep_seconds <= 60:
            raise SettingsError("SHIFTGATE_WORKER_MAX_SLEEP_SECONDS: expected 0.05 to 60 seconds")
        if self.audit_checkpoint_events < 1:
            raise SettingsError(
                "SHIFTGATE_AUDIT_CHECKPOINT_EVENTS: expected a whole number above 0"
            )
        if not 1 <= self.audit_checkpoint_seconds <= 86400:
            raise SettingsError("SHIFTGATE_AUDIT_CHECKPOINT_SECONDS: expected 1 to 86400 seconds")
        if not 0.1 <= self.webhook_timeout_seconds <= 60:
            raise SettingsError("SHIFTGATE_WEBHOOK_TIMEOUT_SECONDS: expected 0.1 to 60 seconds")


_UNPREFIXED = {"database_url": "DATABASE_URL", "redis_url": "REDIS_URL"}


def _env_name(field: str) -> str:
    return _UNPREFIXED.get(field, f"SHIFTGATE_{field.upper()}")


def _parse(env_name: str, field: str, raw: str) -> object:
    if field == "environment" and raw not in _ENVIRONMENTS:
        raise SettingsError(f"{env_name}: expected one of {', '.join(_ENVIRONMENTS)}, got {raw!r}")
    if field == "log_level" and raw.upper() not in _LOG_LEVELS:
        raise SettingsError(f"{env_name}: expected one of {', '.join(_LOG_LEVELS)}, got {raw!r}")
    if field == "sqlite_synchronous":
        if raw.upper() not in {"NORMAL", "FULL"}:
            raise SettingsError(f"{env_name}: expected NORMAL or FULL, got {raw!r}")
        return raw.upper()
    if field == "base_url":
        return raw.rstrip("/")  # an origin; callers append paths that start with "/"
    if field == "trusted_proxies":
        proxies = tuple(part.strip() for part in raw.split(",") if part.strip())
        for proxy in proxies:
            try:
                ipaddress.ip_network(proxy, strict=False)
            except ValueError:
                raise SettingsError(
                    f"{env_name}: expected IP addresses or networks separated by commas, "
                    f"got {proxy!r}"
                ) from None
        return proxies
    if field in {
        "port",
        "login_max_failures",
        "login_window_seconds",
        "access_token_seconds",
        "token_rate_per_client",
        "token_rate_per_address",
        "audit_checkpoint_events",
    }:
        try:
            return int(raw)
        except ValueError:
            raise SettingsError(f"{env_name}: expected a whole number, got {raw!r}") from None
    if field in {
        "session_hours",
        "worker_max_sleep_seconds",
        "webhook_timeout_seconds",
        "audit_checkpoint_seconds",
    }:
        try:
            return float(raw)
        except ValueError:
            raise SettingsError(f"{env_name}: expected a number, got {raw!r}") from None
    if field in {"webhook_allow_private", "run_worker"}:
        if raw.lower() not in _BOOLEANS:
            raise SettingsError(f"{env_name}: expected true or false, got {raw!r}")
        return _BOOLEANS[raw.lower()]
    return raw


def _decode_path(kind: type, value: object) -> object:
    if kind is Path and isinstance(value, str):
        return Path(value)
    raise NotImplementedError


def _field_of(message: str) -> str:
    # msgspec reports "... - at `$.field`"
    marker = "`$."
    if marker in message:
        return message.split(marker, 1)[1].split("`", 1)[0].split("[", 1)[0]
    return "environment"
