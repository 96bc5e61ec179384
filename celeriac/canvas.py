"""Where a task message stands in Celery's canvas: group membership and chord callbacks.

Celery marks each member of a group (a chord's header included) with the group's id and
its place in it (the `group` and `group_index` headers). A chord's callback carries the
header's group id too, without a place: it is not a member. Celery publishes the callback
from whichever header task finished last, so its `parent_id` names that one task, and so
does its `root_id` when the chord was sent on its own. The recorder needs the callback's
real relation, the header as a whole, as Celery's own result graph has it
(`AsyncResult(callback).parent` is the header's `GroupResult`): `chord_header_of` tells it
at publish time, in the worker process that triggers the callback.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from celery._state import get_current_worker_task


def member_group(group: Any, group_index: Any, *, index_known: bool = True) -> str | None:
    """The group a message is a member of, or None.

    `index_known`: the producer sends `group_index` (Celery 5 does, None for a non-member);
    an older producer's `group` is taken as membership.
    """
    if not isinstance(group, str) or not group:
        return None
    if index_known and group_index is None:
        return None  # a chord callback, or a later step of a callback chain: not a member
    return group


def member_group_of_headers(headers: Mapping[str, Any]) -> str | None:
    """`member_group` of a message's protocol-2 headers."""
    return member_group(headers.get("group"), headers.get("group_index"), index_known="group_index" in headers)


def chord_header_of(job_id: str) -> str | None:
    """The group id of the chord header whose completion is publishing `job_id`, or None.

    True when the task this worker runs is a header member (its request names the chord's
    callback and its group) and `job_id` is where that callback starts: the callback
    itself, the first step of a callback chain, each task of a callback group.
    """
    task = get_current_worker_task()
    if task is None:
        return None
    request = task.request
    body, group = getattr(request, "chord", None), getattr(request, "group", None)
    if not isinstance(body, Mapping) or not group:
        return None
    return str(group) if job_id in set(entry_ids(body)) else None


def entry_ids(signature: Mapping[str, Any]) -> Iterator[str]:
    """Ids of the tasks that start `signature` (a serialized canvas signature) when applied."""
    kwargs = signature.get("kwargs")
    kwargs = kwargs if isinstance(kwargs, Mapping) else {}
    task = signature.get("task")
    if task == "celery.chain":
        steps = kwargs.get("tasks")
        if isinstance(steps, list) and steps and isinstance(steps[0], Mapping):
            yield from entry_ids(steps[0])
        return
    if task in ("celery.group", "celery.chord"):
        members = kwargs.get("tasks") if task == "celery.group" else kwargs.get("header")
        if isinstance(members, Mapping):  # a chord's header given as a group signature
            yield from entry_ids(members)
        elif isinstance(members, list):
            for member in members:
                if isinstance(member, Mapping):
                    yield from entry_ids(member)
        return
    options = signature.get("options")
    if isinstance(options, Mapping) and options.get("task_id"):
        yield str(options["task_id"])
