"""A job's place in Celery's canvas (parent, root, group) and its attempt limit, from events.

Relations. `parent_id` and `root_id` are Celery's own (protocol-2 headers), as Celery's
result graph has them: a chain step's parent is the step before it. A chord callback is the
exception Celery gets wrong in its headers (they name the header task that happened to
finish last): its parent is the header's group id, as `AsyncResult(callback).parent` is the
header's `GroupResult`, and so is its root when the chord was sent on its own. `group_id`
is set for members of a group only (a chord's header is one); the callback has none.

Who wins, since events arrive in any order: a publish naming the chord wins over
everything; a job's first publish sets what it names; a re-publish from the job's own run
(retry, throttle: Celery then names the job as its own parent) and a start only fill in
what is still unknown.

Attempt limit. A Celeriac dispatch states `max_attempts` in its header. A plain task's
limit is what Celery will do (`mr`, its `max_retries`, celeriac.retry_limits) and wins:
it is the rule its retries follow. No limit (`max_retries=None`) is stored as
`UNLIMITED_ATTEMPTS`. A failure that ended the retries (`spent`) shows the attempts made
as the limit, which covers a per-call `self.retry(max_retries=N)`.
"""

from __future__ import annotations

from typing import Any

from app.kernel.event_values import cut

#: `max_attempts` of a job Celery retries without end (a plain task with `max_retries=None`).
UNLIMITED_ATTEMPTS = 0
#: Width of the id columns (parent_id, root_id, group_id).
_ID = 36


def attempts_limit(max_retries: Any) -> int | None:
    """`max_attempts` for a task's `max_retries` (None: no limit); None when unusable."""
    if max_retries is None:
        return UNLIMITED_ATTEMPTS
    if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
        return None
    return max_retries + 1


def relations_of_publish(row_id: str, e: dict[str, Any]) -> tuple[str | None, str | None, str | None]:
    """(parent, root, group) a publish event names; a chord callback's point to its header."""
    parent, root, group = e.get("parent"), e.get("root"), e.get("grp")
    chord = e.get("chord")
    if chord:
        # Celery names the header task that finished last; the whole header published it.
        if root is None or root == parent:
            root = chord
        return chord, root, None
    if parent == row_id:
        parent = None  # a re-publish from the job's own run: not a relation
    return parent, root, group


def apply_publish(row: Any, e: dict[str, Any]) -> None:
    """Relations and attempt limit from a publish event `e` (app.kernel.apply._on_pub)."""
    parent, root, group = relations_of_publish(row.id, e)
    from_own_run = e.get("parent") == row.id and not e.get("chord")
    if e.get("chord") or not from_own_run:
        _set(row, parent, root, group)
    else:
        _fill(row, parent, root, group)
    header = e.get("c") or {}
    if header.get("max_attempts"):
        row.max_attempts = int(header["max_attempts"])
    apply_limit(row, e)


def apply_start(row: Any, e: dict[str, Any]) -> None:
    """What a start event adds: Celery's links where no publish said them, the limit."""
    parent = e.get("parent") if e.get("parent") != row.id else None
    _fill(row, parent, e.get("root"), e.get("grp"))
    apply_limit(row, e)


def apply_limit(row: Any, e: dict[str, Any]) -> None:
    """The plain task's limit an event reports (`mr`), if it reports one."""
    if "mr" in e:
        limit = attempts_limit(e["mr"])
        if limit is not None:
            row.max_attempts = limit


def apply_spent(row: Any, e: dict[str, Any]) -> None:
    """A failure that ended Celery's retries: the attempts made were all it had."""
    if e.get("spent"):
        row.max_attempts = max(1, int(e.get("r") or 0) + 1)


def _set(row: Any, parent: Any, root: Any, group: Any) -> None:
    row.parent_id = cut(parent, _ID) or row.parent_id
    row.root_id = cut(root, _ID) or row.root_id
    row.group_id = cut(group, _ID) or row.group_id


def _fill(row: Any, parent: Any, root: Any, group: Any) -> None:
    row.parent_id = row.parent_id or cut(parent, _ID)
    row.root_id = row.root_id or cut(root, _ID)
    row.group_id = row.group_id or cut(group, _ID)
