"""Base class of every task: skips jobs a prerun gate took out, opens encrypted payloads.

The recording itself happens in signal handlers (app.recording.signals), so tasks with
another base class are tracked as well. This class adds the cancel check's effect and
the worker side of encrypted jobs (J9): it opens a sealed payload just before the body
and seals the return value, so Celery's request, result backend and logs only ever hold
ciphertext.
"""

from __future__ import annotations

import json
from typing import Any

from celery import Task
from celery.exceptions import Ignore
from cryptography.fernet import InvalidToken

from app.config import get_settings
from app.crypto import EncryptionError, is_sealed, open_payload, seal


class EncryptedJobError(EncryptionError):
    """An encrypted job's payload or result cannot be decrypted or encrypted here.

    Raised outside the job's body, so neither Job retry logic nor `autoretry_for` sees it:
    no attempt could succeed with the same keys, and the job fails at once.
    """


class TrackedTask(Task):  # type: ignore[type-arg]
    #: Wait before re-running a job whose worker process died (task_retry_on_worker_lost).
    default_retry_delay = get_settings().worker_lost_retry_delay_s

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if getattr(self.request, "celeriac_skip", False):
            raise Ignore()
        if not (is_sealed(kwargs) or _header_says_encrypted(self.request)):
            return super().__call__(*args, **kwargs)
        payload = _open(kwargs)
        return _seal_result(self._run_body(args, payload))

    def _run_body(self, args: tuple[Any, ...], payload: dict[str, Any]) -> Any:
        request = self.request_stack.top
        if request is not None and not request.called_directly:
            # A tracer (worker or `apply`) already pushed this run's request, whose kwargs
            # are the sealed envelope; Task.__call__ would push a copy holding the clear
            # payload, where a retry, a failure report or a log could pick it up.
            return self.run(*args, **payload)
        return super().__call__(*args, **payload)


def _header_says_encrypted(request: Any) -> bool:
    header = getattr(request, "celeriac", None)
    if header is None and isinstance(getattr(request, "headers", None), dict):
        header = request.headers.get("celeriac")
    return isinstance(header, dict) and bool(header.get("encrypted"))


def _open(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The clear payload; a retried job's stored envelope may be sealed once more."""
    payload = kwargs
    try:
        while is_sealed(payload):
            payload = open_payload(payload)
    except EncryptionError as exc:
        reason = str(exc)
        if isinstance(exc.__cause__, InvalidToken):
            reason += " (it was encrypted with an unknown key: one rotated out, or another deployment's)"
        raise EncryptedJobError(f"encrypted job cannot run: {reason}") from None
    return payload


def _seal_result(result: Any) -> Any:
    """The result as an encrypted token (None stays None: there is nothing to hide)."""
    if result is None:
        return None
    # Non-JSON values are kept as their repr, as the recorder would show them.
    value = json.loads(json.dumps(result, default=repr))
    try:
        return seal(value)
    except EncryptionError as exc:
        raise EncryptedJobError(f"the result of an encrypted job cannot be encrypted: {exc}") from None
