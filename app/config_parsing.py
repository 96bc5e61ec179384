"""One environment value to a typed one, or a ConfigError naming the variable.

The helpers `app.config` builds `Settings` with. They read only the mapping they are
given: `app.config` alone decides where values come from (`read_environment`).
"""

from __future__ import annotations

from collections.abc import Mapping


class ConfigError(ValueError):
    """Raised when an environment variable has a value Celeriac cannot use."""


def env_int(environ: Mapping[str, str], name: str, default: int, minimum: int = 0) -> int:
    """`name` as an integer of at least `minimum`; `default` when unset or empty."""
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be an integer, got {raw!r}") from exc
    if value < minimum:
        raise ConfigError(f"{name} must be at least {minimum}, got {value}")
    return value


def env_bool(environ: Mapping[str, str], name: str, default: bool) -> bool:
    """`name` as true (1, true, yes, on) or false (0, false, no, off); `default` when unset."""
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    lowered = raw.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{name} must be true or false, got {raw!r}")


def env_csv(environ: Mapping[str, str], name: str) -> tuple[str, ...]:
    """`name` as a comma-separated list, blanks dropped."""
    return tuple(part.strip() for part in environ.get(name, "").split(",") if part.strip())


def env_float(environ: Mapping[str, str], name: str, default: float, minimum: float, maximum: float) -> float:
    """`name` as a number from `minimum` to `maximum`; `default` when unset or empty."""
    raw = environ.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = float(raw)
    except ValueError as exc:
        raise ConfigError(f"{name} must be a number, got {raw!r}") from exc
    if not minimum <= value <= maximum:
        raise ConfigError(f"{name} must be from {minimum} to {maximum}, got {value}")
    return value
