"""Failure fingerprints (F4): which failures share a root cause.

Exception type + the message with its variable parts (numbers, ids, quoted values)
replaced + the innermost frames as `file:function` (no line numbers, so an unrelated
edit above the failing line keeps the group). Pure functions: the recorder and the API
compute the same fingerprint for the same failure.

An encrypted job's failure is recorded as "<Type>: <Fernet token>" (app.crypto.SealedError):
the token differs on every failure and says nothing readable, and the traceback is the
stand-in's. Such a failure is fingerprinted by exception type and job class alone, and its
group's message is "[encrypted]".
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from app.crypto import REDACTED, TOKEN_PATTERN

#: Innermost frames that take part in the fingerprint.
TOP_FRAMES = 3
#: Longest normalised message kept (and hashed), in characters.
MAX_MESSAGE_CHARS = 500

_QUOTED = re.compile(r"'[^'\n]*'|\"[^\"\n]*\"")
_UUID = re.compile(r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b")
_HEX = re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)(?=[0-9a-fA-F]*[a-fA-F])[0-9a-fA-F]{8,}\b")
_NUMBER = re.compile(r"(?<![A-Za-z_])\d+(?:[.,:]\d+)*")
_SPACES = re.compile(r"\s+")
_FRAME = re.compile(r'^\s*File "(?P<path>[^"]+)", line \d+, in (?P<func>\S+)', re.MULTILINE)
_TRACE_START = "Traceback (most recent call last):"
#: The whole message of a sealed failure: "<Type>: <token>".
_SEALED_MESSAGE = re.compile(rf"[\w.]+: {TOKEN_PATTERN}")


def normalise_message(message: str | None) -> str:
    """The message with its variable parts replaced, so `order 17` and `order 18` match."""
    if not message:
        return ""
    text = _QUOTED.sub("<str>", message)
    text = _UUID.sub("<uuid>", text)
    text = _HEX.sub("<hex>", text)
    text = _NUMBER.sub("<n>", text)
    return _SPACES.sub(" ", text).strip()[:MAX_MESSAGE_CHARS]


def _short_path(path: str) -> str:
    """Independent of where the code is installed: after site-packages, else the last two parts."""
    path = path.replace("\\", "/")
    if "site-packages/" in path:
        return path.rsplit("site-packages/", 1)[1]
    return "/".join(path.rsplit("/", 2)[-2:])


def top_frames(trace: str | None, count: int = TOP_FRAMES) -> list[str]:
    """The innermost `count` frames of the last exception in `trace`, innermost first."""
    if not trace:
        return []
    last = trace.rsplit(_TRACE_START, 1)[-1]
    frames = [f"{_short_path(m['path'])}:{m['func']}" for m in _FRAME.finditer(last)]
    return frames[::-1][:count]


@dataclass(frozen=True)
class Fingerprint:
    """A failure's group key and the parts it was made of."""

    key: str
    exception_type: str
    message: str
    frames: tuple[str, ...]
    #: An encrypted job's failure: `message` is "[encrypted]", and no message of it is shown.
    sealed: bool = False


def is_sealed_message(message: str | None) -> bool:
    """Whether `message` is an encrypted job's sealed error (nothing else, so a message that
    merely quotes a token is grouped as usual)."""
    return bool(message) and _SEALED_MESSAGE.fullmatch(message or "") is not None


def fingerprint(
    exception_type: str | None, message: str | None, trace: str | None, job_class: str | None = None
) -> Fingerprint:
    """The fingerprint of one failure (the same inputs always give the same key).

    `job_class` counts only for a sealed failure, which has no readable message or frames.
    """
    exc = exception_type or "Unknown"
    if is_sealed_message(message):
        digest = hashlib.sha256("\n".join((exc, REDACTED, job_class or "")).encode()).hexdigest()[:32]
        return Fingerprint(digest, exc, REDACTED, (), sealed=True)
    normalised = normalise_message(message)
    frames = tuple(top_frames(trace))
    digest = hashlib.sha256("\n".join((exc, normalised, *frames)).encode()).hexdigest()[:32]
    return Fingerprint(digest, exc, normalised, frames)
