"""Sending a task message as Celeriac's recorder and workers read it: one path for every publish.

Celery copies a message's arguments into plaintext headers (`argsrepr` / `kwargsrepr`) that
reach logs, task events and Flower; for a sealed (encrypted) payload they must say nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from celery import Celery

from celeriac.sealed import REDACTED

#: One reconnect on a broken connection (Redis restarted since it was pooled), no more:
#: a caller waiting on a dispatch hears of an outage within seconds.
QUICK_RETRY_POLICY = {"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2}


def repr_options(sealed: bool) -> dict[str, str]:
    """The `send_task` options that keep a sealed payload out of Celery's plaintext headers."""
    return {"argsrepr": REDACTED, "kwargsrepr": REDACTED} if sealed else {}


def send(
    app: Celery,
    name: str,
    *,
    args: Sequence[Any] | None,
    kwargs: dict[str, Any],
    options: Mapping[str, Any],
    sealed: bool,
    producer: Any = None,
    retry_policy: Mapping[str, Any] | None = None,
) -> None:
    """Publish task `name`; `options` are `send_task`'s (task_id, queue, headers, eta...)."""
    everything: dict[str, Any] = {**repr_options(sealed), **options}
    if retry_policy is not None:
        everything["retry_policy"] = dict(retry_policy)
    app.send_task(name, args=args, kwargs=kwargs, producer=producer, **everything)
