"""Fernet encryption of job payloads and results (J9), with key rotation.

`CELERIAC_ENCRYPTION_KEYS` is a comma-separated list of Fernet keys: the first encrypts,
every one decrypts, so a new key goes first and an old one is dropped once nothing
queued or stored still needs it. A sealed payload travels as the only keyword argument
`{ENVELOPE_KEY: token}`, so the broker message, Celery's headers and the recorded row
never hold the clear payload.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.config import get_settings
from app.errors import ValidationError

#: The single keyword argument that carries an encrypted payload.
ENVELOPE_KEY = "__celeriac_encrypted__"
#: What every API answer, page and log shows instead of encrypted data.
REDACTED = "[encrypted]"


class EncryptionError(Exception):
    """Data cannot be encrypted or decrypted with the configured keys."""


def _cipher(keys: Sequence[str] | None = None) -> MultiFernet:
    chosen = tuple(keys) if keys is not None else get_settings().encryption_keys
    if not chosen:
        raise EncryptionError("no encryption keys are configured (set CELERIAC_ENCRYPTION_KEYS)")
    try:
        return MultiFernet([Fernet(key.encode()) for key in chosen])
    except ValueError as exc:
        raise EncryptionError("CELERIAC_ENCRYPTION_KEYS holds a value that is not a Fernet key") from exc


def require_keys() -> None:
    """Refuse an encrypted dispatch up front when it could not be encrypted.

    Raises:
        ValidationError: no usable keys.
    """
    try:
        _cipher()
    except EncryptionError as exc:
        raise ValidationError(f"encrypted jobs are not available: {exc}") from exc


def seal(value: Any, keys: Sequence[str] | None = None) -> str:
    """Encrypt any JSON value with the first key."""
    return _cipher(keys).encrypt(json.dumps(value, separators=(",", ":")).encode()).decode()


def unseal(token: str, keys: Sequence[str] | None = None) -> Any:
    """Decrypt a token made by `seal` with any configured key.

    Raises:
        EncryptionError: no configured key opens it (rotated out, or another deployment's).
    """
    try:
        return json.loads(_cipher(keys).decrypt(token.encode()))
    except InvalidToken as exc:
        raise EncryptionError(
            "the encrypted payload cannot be decrypted with any key in CELERIAC_ENCRYPTION_KEYS"
        ) from exc


def seal_payload(payload: dict[str, Any], keys: Sequence[str] | None = None) -> dict[str, Any]:
    return {ENVELOPE_KEY: seal(payload, keys)}


def is_sealed(kwargs: Any) -> bool:
    return isinstance(kwargs, dict) and len(kwargs) == 1 and isinstance(kwargs.get(ENVELOPE_KEY), str)


def open_payload(kwargs: dict[str, Any], keys: Sequence[str] | None = None) -> dict[str, Any]:
    """The clear payload of a sealed envelope (the envelope itself if it is not sealed).

    Raises:
        EncryptionError: sealed with a key that is not configured, or not a payload.
    """
    if not is_sealed(kwargs):
        return kwargs
    payload = unseal(kwargs[ENVELOPE_KEY], keys)
    if not isinstance(payload, dict):
        raise EncryptionError("the encrypted payload is not a JSON object")
    return payload
