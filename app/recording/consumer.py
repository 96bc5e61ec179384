"""Worker consumer that also records messages it cannot decode.

Celery logs and acknowledges an undecodable message (bad JSON, a pickle body refused
by `accept_content`) without firing any signal; this records it as a rejected
execution so it shows up in history instead of only in a log line.
"""

from __future__ import annotations

from typing import Any

from celery.worker.consumer import Consumer

from celeriac import events as ev
from celeriac import signals


class RecordingConsumer(Consumer):
    def on_decode_error(self, message: Any, exc: Exception) -> None:
        try:
            headers = getattr(message, "headers", None) or {}
            reason = f"message could not be decoded ({message.content_type}): {exc}"
            signals.emit(ev.rejected(headers.get("id"), headers.get("task"), reason, message))
        except Exception:  # process boundary: never let recording break consumption
            signals.logger.exception("Could not record an undecodable message")
        super().on_decode_error(message, exc)
