"""CELERIAC_TASK_MODULES checked before any process imports them.

A misspelt module would otherwise stop every `flask` command, the web process and the
worker with a traceback from deep inside Celery's loader. Here it is one line naming the
module (and, when there is one, the module that was probably meant). A module that is
found but fails while importing is the user's code failing: its traceback is kept.
"""

from __future__ import annotations

import difflib
import importlib.util
import pkgutil
from collections.abc import Iterable
from typing import Any

from app.config import ConfigError, get_settings


class TaskModuleMissing(ConfigError):
    """Raised when a module CELERIAC_TASK_MODULES names cannot be found."""


def _found(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except (ImportError, ValueError):  # a missing parent package, an empty or relative name
        return False


def _near(name: str) -> str | None:
    """The existing module whose name is closest to `name` (in the same package), if one is close."""
    parent, _, leaf = name.rpartition(".")
    locations: list[str] | None = None  # None: top-level modules
    if parent:
        spec = importlib.util.find_spec(parent) if _found(parent) else None
        if spec is None or spec.submodule_search_locations is None:
            return None
        locations = list(spec.submodule_search_locations)
    siblings = [module.name for module in pkgutil.iter_modules(locations)]
    close = difflib.get_close_matches(leaf, siblings, n=1, cutoff=0.75)
    return ".".join([parent, close[0]] if parent else close) if close else None


def missing_module_message(names: Iterable[str]) -> str | None:
    """One line about the first of `names` that cannot be imported, or None when all can."""
    for name in names:
        if _found(name):
            continue
        near = _near(name)
        hint = f" (did you mean {near!r}?)" if near else ""
        return (
            f"CELERIAC_TASK_MODULES names {name!r}, but there is no module {name!r}{hint}: "
            "fix the name in .env or the environment, then start again"
        )
    return None


def check_task_modules(names: Iterable[str]) -> None:
    """Raises: TaskModuleMissing naming the first module that cannot be imported."""
    message = missing_module_message(names)
    if message is not None:
        raise TaskModuleMissing(message)


def exit_when_missing(sender: Any = None, **_: Any) -> None:
    """Celery's `import_modules` receiver (worker, beat): exit with the one line.

    SystemExit, not an exception: Celery logs a receiver's exceptions with a traceback and
    prints another when the worker fails to start; an exit message is printed alone.
    """
    from celery.utils.imports import cwd_in_path

    with cwd_in_path():  # Celery imports task modules from the working directory
        message = missing_module_message(get_settings().task_modules)
    if message is not None:
        raise SystemExit(f"Error: {message}")


def connect() -> None:
    from celery import signals

    signals.import_modules.connect(exit_when_missing, weak=False, dispatch_uid="celeriac-task-modules")
