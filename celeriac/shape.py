"""The "shape" of a task message: what, beside its payload, it takes to publish it again.

Read from what `before_task_publish` sees (any producer): the retry count, Celery's time
limits and canvas links. The reconciler rebuilds a lost message from it (app.kernel.message).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

#: Keys of a protocol-2 body's third element ("embed") that link other tasks.
_LINKS = ("callbacks", "errbacks", "chain", "chord")


def shape_of_message(headers: Mapping[str, Any], body: Any) -> dict[str, Any]:
    """The shape of a message as `before_task_publish` sees it (any producer), without its
    `celeriac` header, which the publish event carries already (`with_header` adds it back)."""
    shape: dict[str, Any] = {"r": int(headers.get("retries") or 0)}
    limits = headers.get("timelimit")
    if isinstance(limits, (list, tuple)) and any(limit is not None for limit in limits):
        shape["tl"] = list(limits)
    embed = body[2] if isinstance(body, (list, tuple)) and len(body) >= 3 else None
    if isinstance(embed, Mapping):
        links = {key: embed[key] for key in _LINKS if embed.get(key)}
        if links:
            shape["links"] = links
    return shape


def with_header(shape: dict[str, Any], celeriac: dict[str, Any] | None) -> dict[str, Any]:
    """A publish event's shape with its `celeriac` header (None: published without Celeriac)."""
    return {**shape, "h": celeriac or None}
