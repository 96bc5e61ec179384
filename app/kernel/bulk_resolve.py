"""Resolving thousands of dispatches at once (batches, `dispatch_many`): each distinct set of
options once, then per job only what can differ.

`resolve` validates every option and fills every default (about 40 µs). Jobs of a batch
mostly share their class and options and differ in their payload: for those, the first
job's resolution is copied with the job's own id, payload and arguments, after the same
payload checks `resolve` makes. A class whose concurrency key is computed from the payload
is resolved job by job.
"""

from __future__ import annotations

import operator
import uuid
from collections.abc import Callable, Sequence
from dataclasses import fields
from typing import Any

from app.errors import ValidationError
from app.kernel.dispatching import DispatchSpec, ResolvedJob, TaskInfo
from app.validation import check_json

#: DispatchSpec fields that may differ between jobs resolved from one template.
_PER_JOB = frozenset({"payload", "job_id", "args"})
_SHARED = tuple(f.name for f in fields(DispatchSpec) if f.name not in _PER_JOB)
_shared_of = operator.attrgetter(*_SHARED)


def resolve_many(
    specs: Sequence[DispatchSpec],
    resolve_one: Callable[[int, DispatchSpec], ResolvedJob],
    task_info: Callable[[str], TaskInfo | None],
    max_depth: int,
    where: Callable[[int], str],
) -> list[ResolvedJob]:
    """`[resolve_one(i, spec) ...]`, calling it once per distinct set of options.

    Raises:
        ValidationError: as `resolve_one`; a payload's error names its job (`where(i)`).
    """
    templates: dict[tuple[Any, ...], ResolvedJob] = {}
    jobs: list[ResolvedJob] = []
    for i, spec in enumerate(specs):
        key = _options_of(spec)
        template = templates.get(key)
        if template is None or _payload_matters(task_info(spec.job_class), spec):
            job = resolve_one(i, spec)
            templates[key] = job
        else:
            job = _copy(template, spec, i, max_depth, where)
        jobs.append(job)
    return jobs


def _options_of(spec: DispatchSpec) -> tuple[Any, ...]:
    values: tuple[Any, ...] = _shared_of(spec)
    try:
        hash(values)
    except TypeError:  # a list option (tags, backoff, depends_on)
        values = tuple(tuple(value) if isinstance(value, list) else value for value in values)
    return values


def _payload_matters(info: TaskInfo | None, spec: DispatchSpec) -> bool:
    """The resolution depends on the payload itself: a concurrency key computed from it."""
    return info is not None and callable(info.concurrency_key) and spec.concurrency_key is None


def _copy(
    template: ResolvedJob, spec: DispatchSpec, i: int, max_depth: int, where: Callable[[int], str]
) -> ResolvedJob:
    """`template` for another job: `resolve`'s payload checks, then its own id and payload."""
    if spec.args and template.encrypted:
        raise ValidationError(f"{where(i)}: positional arguments cannot be encrypted; pass a payload object")
    try:
        check_json(spec.payload, "payload", max_depth)
        if spec.args:
            check_json(spec.args, "args", max_depth)
    except ValidationError as exc:
        raise ValidationError(f"{where(i)}: {exc}") from exc
    job: ResolvedJob = object.__new__(ResolvedJob)
    # A frozen dataclass: its fields are set once, here, as its own __init__ would.
    job.__dict__.update(template.__dict__)
    job.__dict__.update(
        job_id=spec.job_id or str(uuid.uuid4()),
        payload=dict(spec.payload),
        args=list(spec.args) if spec.args else None,
    )
    return job
