"""The `celeriac` message header: built here, and read here, wherever a message is handled.

Every message Celeriac publishes carries it (tenant, max attempts, backoff, links, flags);
the worker (retry decisions, encrypted jobs, rate-limit re-queues) and the recorder read
it from a Celery request, a kombu message or a plain headers mapping.

A second header, `celeriac_ts`, is the publish time of any message a process with
Celeriac's signals sends (plain `apply_async` included): the reconciler orders a queue's
messages by it (app.recording.reconcile).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

#: Name of the header (a JSON object) in every message Celeriac builds.
NAME = "celeriac"
#: Name of the header holding the publish time (epoch seconds) of every message.
PUBLISHED_AT = "celeriac_ts"


class HeaderSource(Protocol):
    """What the header is built from: a resolved dispatch (app.kernel.dispatching.ResolvedJob)."""

    @property
    def tenant_id(self) -> str: ...
    @property
    def max_attempts(self) -> int: ...
    @property
    def backoff(self) -> list[int] | None: ...
    @property
    def tags(self) -> list[str]: ...
    @property
    def retry_of(self) -> str | None: ...
    @property
    def job_definition_id(self) -> str | None: ...
    @property
    def encrypted(self) -> bool: ...
    @property
    def depends_on(self) -> list[str] | None: ...
    @property
    def batch_id(self) -> str | None: ...
    @property
    def chain_id(self) -> str | None: ...
    @property
    def chain_step(self) -> int | None: ...
    @property
    def schedule_id(self) -> str | None: ...
    @property
    def concurrency(self) -> dict[str, Any] | None: ...


def build(job: HeaderSource) -> dict[str, Any]:
    """The header of `job`'s message: what the recorder and the job runner read."""
    header: dict[str, Any] = {"tenant": job.tenant_id, "max_attempts": job.max_attempts}
    if job.backoff is not None:
        header["backoff"] = job.backoff
    if job.tags:
        header["tags"] = job.tags
    if job.retry_of:
        header["retry_of"] = job.retry_of
    if job.job_definition_id:
        header["definition"] = job.job_definition_id
    if job.encrypted:
        header["encrypted"] = True
    if job.depends_on:
        header["depends_on"] = job.depends_on
    if job.batch_id:
        header["batch"] = job.batch_id
    if job.chain_id:
        header["chain"] = job.chain_id
        header["chain_step"] = job.chain_step
    if job.schedule_id:
        header["schedule"] = job.schedule_id
    if job.concurrency:
        # {"key": "<tenant>:<key>", "limit", "lease"}: read by celeriac.concurrency_worker.
        header["concurrency"] = job.concurrency
    return header


def read(source: Any) -> dict[str, Any] | None:
    """The header of a Celery request or kombu message (attribute or `headers`), or of a
    headers mapping; None when the message has none (a producer without Celeriac)."""
    if isinstance(source, Mapping):
        value = source.get(NAME)
    else:
        value = getattr(source, NAME, None)
        headers = getattr(source, "headers", None)
        if value is None and isinstance(headers, Mapping):
            value = headers.get(NAME)
    return value if isinstance(value, dict) else None


def read_or_empty(source: Any) -> dict[str, Any]:
    return read(source) or {}


def is_encrypted(source: Any) -> bool:
    return bool(read_or_empty(source).get("encrypted"))


def with_flags(header: Mapping[str, Any] | None, **flags: Any) -> dict[str, Any]:
    """A copy of `header` with `flags` set (a re-queue marks itself `throttled`, say)."""
    return {**(header or {}), **flags}


def published_at(headers: Mapping[str, Any] | None) -> float | None:
    """The publish time a message's headers carry, or None (published without Celeriac)."""
    value = (headers or {}).get(PUBLISHED_AT)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    return float(value)
