"""Per-queue settings as admins see and change them (API, CLI, console): read, validate, save.

One resource per queue: the `queues` row (SQL, the truth), the code's `define_queue`
defaults under it, and the queue's rate limit, which stays in its one Redis store
(app.ratelimit.queue_limits, the same as `PUT /api/queues/{name}/rate-limit`). Saving
also rewrites the weight mirror workers read (app.control.weighted_cycle). Shared by
every tenant, like pause. No Flask here; auditing is the caller's (ops_ui.queue_actions).
"""

from __future__ import annotations

from typing import Any

import redis
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app import redis_keys
from app.config import Settings
from app.control.weighted_cycle import forget_weights
from app.errors import BackendUnavailable, ValidationError
from app.kernel import queue_defaults as qd
from app.models.queue_settings import QueueSettings
from app.ratelimit import queue_limits

#: What `PUT /api/queues/{name}` accepts: the SQL settings and the rate limit.
EDITABLE = (*qd.FIELDS, "rate_limit")
#: Celeriac's own attempts when neither the job nor the queue names any (Job.max_tries).
DEFAULT_MAX_ATTEMPTS = 3


def queue_view(session: Session, client: redis.Redis, settings: Settings, name: str) -> dict[str, Any]:
    """The public shape of one queue: each setting in effect and where it comes from.

    A queue nobody configured answers Celeriac's defaults (`sources` all "default").

    Raises:
        ValidationError: not a valid queue name.
    """
    qd.check_queue_name(name)
    row = session.get(QueueSettings, name)
    limits = queue_limits.load_all(client, settings)
    return _view(name, row, limits.get(name), settings)


def list_queue_views(
    session: Session, client: redis.Redis, settings: Settings, names: set[str]
) -> list[dict[str, Any]]:
    """Every named queue, every configured one and every one defined in code; one query."""
    rows = {row.name: row for row in session.scalars(select(QueueSettings))}
    limits = queue_limits.load_all(client, settings)
    every = set(names) | set(rows) | set(qd.code_queues())
    return [_view(name, rows.get(name), limits.get(name), settings) for name in sorted(every)]


def _view(
    name: str, row: QueueSettings | None, limit: queue_limits.QueueLimit | None, settings: Settings
) -> dict[str, Any]:
    code = qd.code_defaults(name)
    effective = qd.merged(name, row)
    defaults: dict[str, Any] = {
        "max_attempts": DEFAULT_MAX_ATTEMPTS,
        "retry_after": None,
        "timeout": settings.default_timeout_s,
        "encrypted": False,
        "weight": qd.DEFAULT_WEIGHT,
        "max_pending": None,
    }
    view: dict[str, Any] = {"queue": name}
    sources: dict[str, str] = {}
    for field in qd.FIELDS:
        value = getattr(effective, field)
        view[field] = defaults[field] if value is None else value
        if row is not None and getattr(row, field) is not None:
            sources[field] = "api"
        else:
            sources[field] = "code" if getattr(code, field) is not None else "default"
    view["rate_limit"] = limit.as_dict() if limit is not None else queue_limits.empty(name)
    sources["rate_limit"] = limit.source if limit is not None else "default"
    view["sources"] = sources
    view["updated_at"] = row.updated_at.isoformat() if row is not None and row.updated_at else None
    view["updated_by"] = row.updated_by if row is not None else None
    return view


def change_errors(changes: dict[str, Any], settings: Settings) -> dict[str, str]:
    """What is wrong with each field of `changes` (empty: all valid); the console shows these."""
    problems = {key: f"unknown setting {key}" for key in changes if key not in EDITABLE}
    problems.update(qd.field_errors(changes, settings.max_timeout_s))
    limit = changes.get("rate_limit")
    if limit is not None:
        try:
            count, per = qd.parse_rate_limit(limit)
        except ValidationError as exc:
            problems["rate_limit"] = str(exc)
        else:
            if count > queue_limits.MAX_LIMIT or per > queue_limits.MAX_PER_S:
                problems["rate_limit"] = (
                    f"rate_limit must be at most {queue_limits.MAX_LIMIT} jobs per at most {queue_limits.MAX_PER_S} s"
                )
    return problems


def update_queue(
    session: Session,
    client: redis.Redis,
    settings: Settings,
    name: str,
    changes: dict[str, Any],
    actor: str,
) -> dict[str, Any]:
    """Apply `changes` to queue `name`: a field left out stays as it is, None clears it.

    Clearing a setting lets the code's `define_queue` value (or Celeriac's default) apply
    again; clearing `rate_limit` removes the limit set here (a configured one applies).
    The row is committed first, then the rate limit and the weight mirror are written.

    Returns:
        The queue's view after the change.

    Raises:
        ValidationError: a bad name, an unknown field or a value out of range; nothing changes.
        BackendUnavailable: SQL or Redis failed (saving again repairs the mirror).
    """
    qd.check_queue_name(name)
    problems = change_errors(changes, settings)
    if problems:
        raise ValidationError("; ".join(problems.values()))
    columns = {key: value for key, value in changes.items() if key in qd.FIELDS}
    try:
        if columns:
            row = session.get(QueueSettings, name)
            if row is None:
                row = QueueSettings(name=name)
                session.add(row)
            for key, value in columns.items():
                setattr(row, key, value)
            row.updated_by = actor
            session.commit()
    except SQLAlchemyError as exc:
        session.rollback()
        raise BackendUnavailable("the database is unavailable; the queue settings were not saved") from exc
    try:
        if "rate_limit" in changes:
            if changes["rate_limit"] is None:
                queue_limits.clear_limit(client, name)
            else:
                count, per = qd.parse_rate_limit(changes["rate_limit"])
                queue_limits.set_limit(client, name, count, per)
            queue_limits.forget_cache()
        if "weight" in columns:
            mirror_weights(session, client)
    except redis.RedisError as exc:
        raise BackendUnavailable("Redis is unavailable; save the queue settings again to apply them") from exc
    return queue_view(session, client, settings, name)


def mirror_weights(session: Session, client: redis.Redis) -> dict[str, int]:
    """Rewrite the Redis copy of every queue's weight from SQL (the truth), in one transaction.

    Returns the weights written.
    """
    rows = session.execute(select(QueueSettings.name, QueueSettings.weight).where(QueueSettings.weight.is_not(None)))
    weights = {str(queue): int(weight) for queue, weight in rows if weight is not None}
    pipe = client.pipeline(transaction=True)
    pipe.delete(redis_keys.QUEUE_WEIGHTS)
    if weights:
        pipe.hset(redis_keys.QUEUE_WEIGHTS, mapping=weights)  # type: ignore[arg-type]
    pipe.execute()
    forget_weights()
    return weights
