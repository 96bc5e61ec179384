"""Base class of every task: skips jobs a prerun gate took out (celeriac.task), opens encrypted payloads.

The recording itself happens in signal handlers (celeriac.signals), so tasks with
another base class are tracked as well. This class adds the cancel check's effect and
the worker side of encrypted jobs (J9): it opens a sealed payload just before the body,
seals the return value, and replaces any exception the body raised by a `SealedError`
(a Retry or Reject by one carrying it), so Celery's request, result backend, task events
and logs, and the recorded history, only ever hold ciphertext.
"""

from __future__ import annotations

import json
from typing import Any

from celery.exceptions import Ignore, Reject, Retry
from cryptography.fernet import InvalidToken

from app.config import get_settings
from app.crypto import (
    REDACTED,
    EncryptionError,
    SealedError,
    is_sealed,
    open_payload,
    seal,
    seal_exception,
    seal_text,
)
from app.kernel.held_retry import held_wait, hold_retry
from celeriac import header, signals
from celeriac.progress import check_message, percent_of
from celeriac.task import CeleriacTask, is_skipped


class EncryptedJobError(EncryptionError):
    """An encrypted job's payload or result cannot be decrypted or encrypted here.

    Raised outside the job's body, so neither Job retry logic nor `autoretry_for` sees it:
    no attempt could succeed with the same keys, and the job fails at once.
    """


class TrackedTask(CeleriacTask):
    #: The worker's request: a pool process dying under the job puts it back in its queue
    #: (up to the worker-loss limit) instead of failing it (R1, app.recording.worker_loss).
    Request = "app.recording.worker_loss:LossAwareRequest"
    #: Wait before re-running a job whose worker process died (task_retry_on_worker_lost).
    default_retry_delay = get_settings().worker_lost_retry_delay_s

    def retry(
        self,
        args: Any = None,
        kwargs: Any = None,
        exc: Any = None,
        throw: bool = True,
        eta: Any = None,
        countdown: Any = None,
        max_retries: Any = None,
        **options: Any,
    ) -> Any:
        """Celery's retry, except that a wait too long for a broker ETA is held in Celeriac's
        scheduled set (app.kernel.held_retry): the message is acknowledged, nothing published."""
        wait = held_wait(self, args, kwargs, eta, countdown, max_retries)
        if wait is None:
            return super().retry(args, kwargs, exc, throw, eta, countdown, max_retries, **options)
        ignore = hold_retry(self, exc, wait)
        if throw:
            raise ignore
        return ignore

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if not (is_sealed(kwargs) or header.is_encrypted(self.request)):
            return super().__call__(*args, **kwargs)  # CeleriacTask: a skipped job does not run
        if is_skipped(self.request):
            raise Ignore()
        payload = _open(kwargs)
        try:
            result = self._run_body(args, payload)
        except Exception as exc:
            stand_in = sealed_exception(exc)
        else:
            return _seal_result(result)
        # Raised outside the handler, so the stand-in has no context: no chained traceback
        # can print the original.
        raise stand_in from None

    def progress(self, done: Any, total: Any, message: str | None = None) -> None:
        """Report how far this run got (plain tasks bound with `bind=True`); see `Job.progress`."""
        report_progress(self.request, done, total, message)

    def _run_body(self, args: tuple[Any, ...], payload: dict[str, Any]) -> Any:
        request = self.request_stack.top
        if request is not None and not request.called_directly:
            # A tracer (worker or `apply`) already pushed this run's request, whose kwargs
            # are the sealed envelope; Task.__call__ would push a copy holding the clear
            # payload, where a retry, a failure report or a log could pick it up.
            return self.run(*args, **payload)
        return super().__call__(*args, **payload)


def report_progress(request: Any, done: Any, total: Any, message: str | None) -> None:
    """Send the progress of the run of `request`: checked, throttled (celeriac.progress).

    An encrypted job's message never leaves the worker (it could quote the payload): it
    is recorded as "[encrypted]". Outside a worker run (no request id) only the checks run.

    Raises:
        TypeError, ValueError: done or total not numbers >= 0, done > total, message not a string.
    """
    percent_of(done, total)
    if check_message(message) is not None and header.is_encrypted(request):
        message = REDACTED
    job_id = getattr(request, "id", None)
    if job_id:
        signals.report_progress(job_id, done, total, message)


def sealed_exception(exc: Exception) -> Exception:
    """What Celery may see of `exc`, raised by an encrypted job's body.

    Control flow keeps its meaning: a Retry or Reject is rebuilt around a stand-in for its
    reason (an autoretry's Retry carries the original exception); Ignore says nothing.
    Everything else becomes a `SealedError`.
    """
    if isinstance(exc, Retry):
        return _sealed_retry(exc)
    if isinstance(exc, Reject):
        # (getattr: celery-types does not declare Reject's or Retry's attributes.)
        return Reject(_sealed_reason("Reject", getattr(exc, "reason", None)), requeue=getattr(exc, "requeue", False))
    if isinstance(exc, Ignore):
        return exc
    return stand_in_for(exc)


def stand_in_for(reason: BaseException | str, kind: str = "Exception") -> SealedError:
    """A stand-in for an exception, or for a reason known only as text (a `kind`'s)."""
    name = type(reason).__name__ if isinstance(reason, BaseException) else kind
    try:
        return seal_exception(reason) if isinstance(reason, BaseException) else seal_text(name, reason)
    except EncryptionError:  # keys gone mid-run: say nothing rather than something in clear
        return SealedError(f"{REDACTED} (no key could encrypt this error)", name)


def _sealed_reason(kind: str, reason: Any) -> SealedError | None:
    if reason is None or reason == "":
        return None
    return stand_in_for(reason if isinstance(reason, BaseException) else str(reason), kind)


def _sealed_retry(retry: Retry) -> Retry:
    """An equivalent Retry whose exception (and so its message) is a stand-in."""
    if isinstance(retry.exc, SealedError) and not retry.message:
        return retry
    reason = retry.exc if retry.exc is not None else (retry.message or getattr(retry, "excs", None))
    return Retry(
        exc=_sealed_reason("Retry", reason),
        when=retry.when,
        is_eager=getattr(retry, "is_eager", False),
        sig=getattr(retry, "sig", None),
    )


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
