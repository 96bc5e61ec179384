"""Plain Celery tasks honour Celeriac's prerun marks, as `CeleriacTask` does.

`celeriac.signals` cannot stop a task from its `task_prerun` handler: it marks the
request skipped (the job was cancelled before it started, or a gate parked it) and the
task's `__call__` turns the mark into `Ignore`. A project's own tasks are plain
`celery.Task`, whose `__call__` knows nothing of the mark, so `instrument` gives their
classes the same check. Celery decides when it builds a task's tracer (in the worker,
after the app is finalized) whether the task has a `__call__` of its own, so the check is
added when the app is finalized: to the app's base `Task` (tasks defined later inherit
it) and to the class of every task registered by then (`base=` classes included).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.exceptions import Ignore

from celeriac.task import CeleriacTask, is_skipped

#: Set on the `__call__` this module installs: a class that has it checks already.
_MARK = "__celeriac_skip_check__"


def make_skip_aware(cls: type) -> bool:
    """Give task class `cls` the skip check; False when it has one already."""
    if issubclass(cls, CeleriacTask) or getattr(cls.__call__, _MARK, False):
        return False
    inner = cls.__call__

    def __call__(self: Any, *args: Any, **kwargs: Any) -> Any:
        if is_skipped(self.request):
            raise Ignore()
        return inner(self, *args, **kwargs)

    setattr(__call__, _MARK, True)
    __call__.__qualname__ = f"{cls.__qualname__}.__call__"
    cls.__call__ = __call__  # type: ignore[method-assign]
    return True


def is_skip_aware(task: Any) -> bool:
    """Whether the body of `task` is kept from running when its request is marked skipped."""
    cls = task.__class__  # a lazy task (a Proxy) names the class it stands for
    return issubclass(cls, CeleriacTask) or bool(getattr(cls.__call__, _MARK, False))


def patch_app(app: Celery) -> None:
    """Add the check to `app`'s tasks once it is finalized (now, if it is already)."""

    def on_finalized(sender: Any = None, **_: Any) -> None:
        make_skip_aware(app.Task)
        for task in list(app.tasks.values()):
            make_skip_aware(type(task))

    if getattr(app, "finalized", False):
        on_finalized()
    else:
        app.on_after_finalize.connect(on_finalized, weak=False)
