"""Fernet encryption of job payloads, results and errors (J9), with key rotation.

`CELERIAC_ENCRYPTION_KEYS` is a comma-separated list of Fernet keys: the first encrypts,
every one decrypts, so a new key goes first and an old one is dropped once nothing
queued or stored still needs it. A sealed payload travels as the only keyword argument
`{ENVELOPE_KEY: token}`, so the broker message, Celery's headers and the recorded row
never hold the clear payload. An encrypted job's exception travels as a `SealedError`
whose text is a token of the original's type, message and traceback.
"""

from __future__ import annotations

import json
import re
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

from app.config import get_settings
from app.errors import ValidationError
from celeriac.sealed import ENVELOPE_KEY as ENVELOPE_KEY
from celeriac.sealed import REDACTED as REDACTED
from celeriac.sealed import is_sealed as is_sealed


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


# -- errors of encrypted jobs ----------------------------------------------------------

#: Longest sealed error (the text of a `SealedError`), in characters. The recorder keeps
#: error messages up to 2,000 characters (celeriac.events.MAX_ERROR_CHARS); the token,
#: behind "ValueError: " or a retry's "Retry in 30s: SealedError('...')", must fit whole,
#: or it could not be opened again.
MAX_SEALED_ERROR_CHARS = 1_900
#: Innermost frames of each exception (of a chain) kept in a sealed error's traceback.
TRACE_FRAMES = 5
#: Longest exception type name kept in a sealed error.
MAX_TYPE_CHARS = 200
#: A Fernet token (version byte 0x80 and a 64-bit timestamp: it starts with "gAAAAA").
TOKEN_PATTERN = r"gAAAAA[A-Za-z0-9_-]{40,}={0,2}"
_TOKEN = re.compile(TOKEN_PATTERN)
_CUT = "[...]"


class SealedError(Exception):
    """Stands in for the exception an encrypted job raised: its text is a Fernet token.

    The token holds `{"type", "message", "traceback"}` of the original, so the worker log,
    Celery's result backend, task events and the recorded history only ever hold ciphertext.
    `celeriac_type` names the original class: the history shows it as the exception type.
    `original` is the exception itself, in the process that raised it only: it is never
    pickled, so it never reaches Celery's main process, its backend or its events.
    """

    def __init__(self, token: str, celeriac_type: str = "Exception") -> None:
        super().__init__(token)
        self.celeriac_type = celeriac_type
        self.original: BaseException | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        # Token and type only: the default would pickle `original` with the instance dict.
        return type(self), (str(self.args[0]), self.celeriac_type)


@dataclass(frozen=True)
class OpenedError:
    """What a sealed error holds, for an admin who reveals it."""

    type: str
    message: str
    traceback: str


def _max_plaintext(limit: int) -> int:
    """Most JSON bytes whose Fernet token fits in `limit` characters.

    A token is base64 (with padding) of version (1) + time (8) + IV (16) + AES-CBC
    ciphertext (PKCS7: whole 16-byte blocks, at least one byte of padding) + HMAC (32).
    """
    room = limit // 4 * 3 - 57
    return room // 16 * 16 - 1


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")).encode())


def seal_error(type_name: str, message: str, trace: str, limit: int = MAX_SEALED_ERROR_CHARS) -> str:
    """A token of `{"type", "message", "traceback"}` no longer than `limit` characters.

    What does not fit is cut: first the traceback's oldest lines (its end names the line
    that raised), then the end of the message.
    """
    budget = _max_plaintext(limit)
    error = {"type": type_name[:MAX_TYPE_CHARS], "message": message, "traceback": trace}
    excess = _json_size(error) - budget
    if excess > 0:  # every character is at least one byte: cutting `excess` more is enough
        keep = max(len(trace) - excess - len(_CUT), 0)
        error["traceback"] = _CUT + trace[len(trace) - keep :] if keep else ""
        excess = _json_size(error) - budget
    if excess > 0:
        keep = max(len(message) - excess - len(_CUT), 0)
        error["message"] = message[:keep] + _CUT if keep else ""
    return seal(error)


def _text_of(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not hide the failure itself
        return f"<{type(exc).__name__} whose message cannot be shown>"


def seal_exception(exc: BaseException, limit: int = MAX_SEALED_ERROR_CHARS) -> SealedError:
    """The stand-in for `exc` (itself if it is one already).

    Raises:
        EncryptionError: no keys are configured.
    """
    if isinstance(exc, SealedError):
        return exc
    name = type(exc).__name__
    # The innermost frames of each exception in the chain: the job's own code, not the runner's.
    trace = "".join(traceback.format_exception(exc, limit=-TRACE_FRAMES))
    stand_in = SealedError(seal_error(name, _text_of(exc), trace, limit), name)
    stand_in.original = exc
    return stand_in


def seal_text(type_name: str, message: str) -> SealedError:
    """A stand-in for an error known only as text (a Retry's or Reject's reason)."""
    return SealedError(seal_error(type_name, message, ""), type_name)


def is_sealed_text(text: str | None) -> bool:
    """Whether `text` (an error message or traceback) carries a sealed error."""
    return bool(text) and _TOKEN.search(text or "") is not None


def open_error(text: str | None, keys: Sequence[str] | None = None) -> OpenedError | None:
    """The error sealed inside `text` ("ValueError: <token>", a Retry's message...), or None
    when `text` holds no token.

    Raises:
        EncryptionError: no configured key opens it.
    """
    found = _TOKEN.search(text or "")
    if found is None:
        return None
    value = unseal(found.group(0), keys)
    if not isinstance(value, dict):
        raise EncryptionError("the sealed error is not a JSON object")
    return OpenedError(str(value.get("type", "")), str(value.get("message", "")), str(value.get("traceback", "")))
