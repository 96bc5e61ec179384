"""The project's Celery app and tasks: plain Celery, nothing of Celeriac imported or hooked.

Configured from the environment its test gives it: FOREIGN_BROKER_URL, FOREIGN_QUEUE.
"""

from __future__ import annotations

import os
from typing import Any

from celery import Celery

app = Celery("foreign", broker=os.environ["FOREIGN_BROKER_URL"], set_as_current=False)
app.conf.update(task_default_queue=os.environ["FOREIGN_QUEUE"], accept_content=["json"], timezone="UTC")


@app.task(name="foreign.add")
def add(x: int, y: int) -> int:
    return x + y


@app.task(name="foreign.fail")
def fail(message: str) -> None:
    raise ValueError(message)


@app.task(name="foreign.retrying", bind=True, max_retries=2)
def retrying(self: Any, key: str) -> int:
    """Fails its first two runs, then returns how many retries it took."""
    if self.request.retries < 2:
        raise self.retry(exc=RuntimeError(f"{key}: not yet"), countdown=0)
    return int(self.request.retries)
