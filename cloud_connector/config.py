"""Service configuration: a TOML file, then ``CARIFLEX_CLOUD_<SECTION>_<KEY>`` environment variables on top.

Every value is checked once, here; the rest of the service reads a frozen :class:`Config`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace
import os
from pathlib import Path
import re
import tomllib
from typing import Any
from urllib.parse import urlsplit

ENV_PREFIX = "CARIFLEX_CLOUD_"
ENV_CONFIG_FILE = "CARIFLEX_CLOUD_CONFIG"


class ConfigError(Exception):
    """The configuration cannot be used; the message says which value and why."""


@dataclass(frozen=True, kw_only=True)
class ServerConfig:
    """Where the HTTP server listens and how peers reach it."""

    host: str = "0.0.0.0"
    port: int = 8080
    base_url: str = ""  # public URL of this service; derived from host/port when empty


@dataclass(frozen=True, kw_only=True)
class DatabaseConfig:
    """Storage."""

    path: str = "cariflex-cloud.sqlite3"


@dataclass(frozen=True, kw_only=True)
class OcpiConfig:
    """OCPI behaviour."""

    page_limit: int = 100  # server maximum for paginated GETs (X-Limit)
    request_timeout: float = 10.0  # every request to a peer (pushes, registration)
    realtime_auth_timeout: float = 5.0  # POST tokens/{uid}/authorize
    command_timeout: int = 30  # announced in CommandResponse.timeout, and given to the site
    retry_initial: float = 30.0  # first re-push of a dirty object after a failed push
    retry_max: float = 3600.0  # cap of the exponential back-off
    retry_interval: float = 5.0  # how often the re-push loop looks for due objects
    currency: str = "EUR"  # sessions and CDRs without a tariff


@dataclass(frozen=True, kw_only=True)
class LoggingConfig:
    """Logs: JSON lines on stderr."""

    level: str = "INFO"
    json: bool = True


@dataclass(frozen=True, kw_only=True)
class Config:
    """The whole configuration."""

    server: ServerConfig = ServerConfig()
    database: DatabaseConfig = DatabaseConfig()
    ocpi: OcpiConfig = OcpiConfig()
    logging: LoggingConfig = LoggingConfig()

    @property
    def public_url(self) -> str:
        """Base URL peers use to reach us, without a trailing slash."""
        if self.server.base_url:
            return self.server.base_url.rstrip("/")
        host = "127.0.0.1" if self.server.host in {"0.0.0.0", "::", ""} else self.server.host
        return f"http://{host}:{self.server.port}"


_SECTIONS: dict[str, type[Any]] = {
    "server": ServerConfig,
    "database": DatabaseConfig,
    "ocpi": OcpiConfig,
    "logging": LoggingConfig,
}


def _check(name: str, ok: bool, why: str) -> None:
    if not ok:
        raise ConfigError(f"{name}: {why}")


def _validate(config: Config) -> None:
    s, o = config.server, config.ocpi
    _check("server.port", 0 <= s.port <= 65535, "must be between 0 and 65535")
    if s.base_url:
        parts = urlsplit(s.base_url)
        _check("server.base_url", parts.scheme in {"http", "https"} and bool(parts.netloc), "must be an http(s) URL")
        _check("server.base_url", not parts.query and not parts.fragment, "must not have a query or fragment")
    _check("database.path", bool(config.database.path), "must not be empty")
    _check("ocpi.page_limit", 1 <= o.page_limit <= 1000, "must be between 1 and 1000")
    for name in ("request_timeout", "realtime_auth_timeout", "retry_initial", "retry_interval"):
        _check(f"ocpi.{name}", getattr(o, name) > 0, "must be positive")
    _check("ocpi.command_timeout", 1 <= o.command_timeout <= 600, "must be between 1 and 600 seconds")
    _check("ocpi.retry_max", o.retry_max >= o.retry_initial, "must not be below ocpi.retry_initial")
    _check("ocpi.currency", re.fullmatch(r"[A-Z]{3}", o.currency) is not None, "must be an ISO 4217 code")
    _check(
        "logging.level",
        config.logging.level.upper() in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"},
        "must be DEBUG, INFO, WARNING, ERROR or CRITICAL",
    )


def _convert(name: str, kind: type[Any], value: Any, *, from_env: bool) -> Any:
    """Coerce one value to the type of its field (strings from the environment are parsed)."""
    if kind is bool:
        if isinstance(value, bool):
            return value
        if (
            from_env
            and isinstance(value, str)
            and value.lower() in {"1", "true", "yes", "on", "0", "false", "no", "off"}
        ):
            return value.lower() in {"1", "true", "yes", "on"}
        raise ConfigError(f"{name}: expected true or false, got {value!r}")
    if kind is int:
        if from_env and isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                raise ConfigError(f"{name}: expected an integer, got {value!r}") from None
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if kind is float:
        if from_env and isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                raise ConfigError(f"{name}: expected a number, got {value!r}") from None
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    if not isinstance(value, str):
        raise ConfigError(f"{name}: expected a string, got {value!r}")
    return value


_KINDS: dict[str, type[Any]] = {"str": str, "int": int, "float": float, "bool": bool}


def _section(name: str, cls: type[Any], values: Mapping[str, Any], *, from_env: bool) -> dict[str, Any]:
    known = {f.name: _KINDS[str(f.type)] for f in fields(cls)}
    out: dict[str, Any] = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{name}.{key}: unknown setting")
        out[key] = _convert(f"{name}.{key}", known[key], value, from_env=from_env)
    return out


def load_config(path: Path | None = None, environ: Mapping[str, str] | None = None) -> Config:
    """Read ``path`` (TOML, optional) then the environment, validate, return the result."""
    env = os.environ if environ is None else environ
    if path is None and env.get(ENV_CONFIG_FILE):
        path = Path(env[ENV_CONFIG_FILE])
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            raw = tomllib.loads(path.read_text(encoding="utf-8"))
        except OSError as err:
            raise ConfigError(f"{path}: cannot read ({err.strerror})") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"{path}: invalid TOML ({err})") from None
    sections: dict[str, dict[str, Any]] = {}
    for name, values in raw.items():
        if name not in _SECTIONS:
            raise ConfigError(f"{name}: unknown section")
        if not isinstance(values, dict):
            raise ConfigError(f"{name}: expected a table")
        sections[name] = _section(name, _SECTIONS[name], values, from_env=False)
    for var, value in env.items():
        if not var.startswith(ENV_PREFIX) or var == ENV_CONFIG_FILE:
            continue
        rest = var.removeprefix(ENV_PREFIX).lower()
        section, _, key = rest.partition("_")
        if section not in _SECTIONS or not key:
            raise ConfigError(f"{var}: unknown setting")
        sections.setdefault(section, {}).update(_section(section, _SECTIONS[section], {key: value}, from_env=True))
    config = Config()
    updates: dict[str, Any] = {name: replace(getattr(config, name), **values) for name, values in sections.items()}
    config = replace(config, **updates)
    _validate(config)
    return config


def config_with(config: Config, **sections: Mapping[str, Any]) -> Config:
    """A copy of ``config`` with some values changed (tests, ``serve --port``); validated again."""
    updates = {name: replace(getattr(config, name), **values) for name, values in sections.items()}
    result = replace(config, **updates)
    _validate(result)
    return result
