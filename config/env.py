"""Small typed helpers that read settings from the environment.

Each helper raises ImproperlyConfigured with the variable's name when the
value cannot be used, so a bad deployment fails at start-up with a message
instead of misbehaving later.
"""

import os
from pathlib import Path

from django.core.exceptions import ImproperlyConfigured

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


def env_str(name: str, default: str | None = None) -> str:
    value = os.environ.get(name, default)
    if value is None:
        raise ImproperlyConfigured(f"Environment variable {name} is required but not set.")
    return value


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None:
        return default
    lowered = raw.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ImproperlyConfigured(
        f"Environment variable {name}={raw!r} is not a boolean; use one of 1/0, true/false, yes/no, on/off."
    )


def env_int(name: str, default: int) -> int:
    raw = os.environ.get(name)
    if raw is None:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ImproperlyConfigured(f"Environment variable {name}={raw!r} is not an integer.") from None


def env_list(name: str, default: list[str]) -> list[str]:
    raw = os.environ.get(name)
    if raw is None:
        return default
    return [item.strip() for item in raw.split(",") if item.strip()]


def env_path(name: str, default: Path) -> Path:
    raw = os.environ.get(name)
    path = Path(raw).expanduser() if raw else default
    if not path.is_absolute():
        raise ImproperlyConfigured(f"Environment variable {name}={raw!r} must be an absolute path.")
    return path


# Django's own deployment check (security.W009) asks for at least this much of a secret key.
SECRET_KEY_MIN_LENGTH = 50
SECRET_KEY_MIN_UNIQUE_CHARACTERS = 5
INSECURE_KEY_PREFIXES = ("django-insecure-", "granary-insecure")


def env_secret_key(name: str, *, debug: bool, dev_default: str) -> str:
    """The secret key; with DEBUG off, refuse a missing, short, repetitive or known-insecure one."""
    raw = os.environ.get(name, "")
    if debug:
        return raw or dev_default
    hint = "generate one with: python -c 'import secrets; print(secrets.token_urlsafe(50))'"
    if not raw.strip():
        raise ImproperlyConfigured(f"Environment variable {name} is required when DEBUG is off; {hint}")
    if raw.startswith(INSECURE_KEY_PREFIXES):
        prefix = next(p for p in INSECURE_KEY_PREFIXES if raw.startswith(p))
        raise ImproperlyConfigured(f"Environment variable {name} starts with {prefix!r}, a known insecure key; {hint}")
    if len(raw) < SECRET_KEY_MIN_LENGTH or len(set(raw)) < SECRET_KEY_MIN_UNIQUE_CHARACTERS:
        raise ImproperlyConfigured(
            f"Environment variable {name} is too weak ({len(raw)} characters, {len(set(raw))} different); it needs at least "
            f"{SECRET_KEY_MIN_LENGTH} characters and {SECRET_KEY_MIN_UNIQUE_CHARACTERS} different ones; {hint}"
        )
    return raw


def env_header_pair(name: str, default: tuple[str, str] | None) -> tuple[str, str] | None:
    """A request header and the value that marks it, written `X-Forwarded-Proto=https`; empty: none.

    Returned as Django wants it for SECURE_PROXY_SSL_HEADER: ("HTTP_X_FORWARDED_PROTO", "https").
    """
    raw = os.environ.get(name)
    if raw is None:
        return default
    if not raw.strip():
        return None
    header, sep, value = raw.partition("=")
    header, value = header.strip(), value.strip()
    if not sep or not header or not value:
        raise ImproperlyConfigured(f"Environment variable {name}={raw!r} must look like X-Forwarded-Proto=https (or be empty).")
    meta = header.upper().replace("-", "_")
    return (meta if meta.startswith("HTTP_") else f"HTTP_{meta}", value)
