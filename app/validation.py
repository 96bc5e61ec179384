"""Checks every JSON value we accept must pass, wherever it comes from (API body, Job.dispatch).

Pure functions, no Flask: a value SQL, Redis or JSON cannot store faithfully is refused
up front (422 naming the field) instead of failing later as a 500 or a stuck job.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from math import isfinite
from typing import Any

from app.errors import ValidationError

#: Default deepest nesting of arrays and objects (Settings.max_payload_depth overrides it).
DEFAULT_MAX_DEPTH = 64

#: Longest path or key shown in a message; the rest is cut with an ellipsis.
_SHOWN_CHARS = 120
#: Keys written as `.key` in a path; any other key is written as `["key"]`.
_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_-]*\Z")
#: Integers this long may not fit a double (the largest is about 2**1024).
_BIG_INT_BITS = 1000

#: A path to a value, built only when a message needs it: (parent, key or index) or None.
_Node = tuple[Any, str | int] | None


def check_json(value: Any, where: str = "", max_depth: int = DEFAULT_MAX_DEPTH) -> None:
    """Refuse what JSON, SQL or Redis cannot keep as given.

    Numbers must be finite doubles (no NaN, Infinity or integers past 1.8e308); strings,
    object keys included, must not contain NUL (PostgreSQL refuses it) nor lone
    surrogates (not encodable as UTF-8); arrays and objects may nest at most `max_depth`
    levels (`{}` is one level). Values of other Python types are left to the serializer.
    The walk is iterative, so a deep value cannot exhaust the stack.

    Args:
        value: the decoded JSON value (dict, list, str, int, float, bool or None).
        where: the name of `value` in messages, e.g. "payload" or "" for a whole body.
        max_depth: deepest nesting allowed.

    Raises:
        ValidationError: naming the first offending field, e.g.
            `payload.items[3].price: must be a finite number`.
    """
    stack: list[tuple[Any, int, _Node]] = [(value, 1, None)]
    while stack:
        item, depth, node = stack.pop()
        children = _children(item, depth, max_depth, where, node)
        if children is None:
            _check_scalar(item, where, node)
        else:
            _scan(children, depth, where, node, stack)


def _children(item: Any, depth: int, max_depth: int, where: str, node: _Node) -> Iterable[tuple[Any, Any]] | None:
    """The (key or index, value) pairs of a container, after checking its depth and keys."""
    if isinstance(item, dict):
        _check_depth(depth, max_depth, where, node)
        for key in item:
            if type(key) is str and ("\x00" in key or not key.isascii()):
                _check_key(key, where, node)
        return item.items()
    if isinstance(item, (list, tuple)):
        _check_depth(depth, max_depth, where, node)
        return enumerate(item)
    return None


def _scan(
    children: Iterable[tuple[Any, Any]], depth: int, where: str, node: _Node, stack: list[tuple[Any, int, _Node]]
) -> None:
    """Check the scalars among `children` and put the containers on `stack`.

    The common values (ASCII text, finite numbers, small integers) pass on a cheap test.
    """
    for key, child in children:
        kind = type(child)
        if kind is str:
            if "\x00" in child or not child.isascii():
                _check_scalar(child, where, (node, key))
        elif kind is float:
            if not isfinite(child):
                _check_scalar(child, where, (node, key))
        elif kind is int:
            if child.bit_length() > _BIG_INT_BITS:
                _check_scalar(child, where, (node, key))
        elif isinstance(child, (dict, list, tuple)):
            stack.append((child, depth + 1, (node, key)))
        elif child is not None and kind is not bool:
            _check_scalar(child, where, (node, key))


def _check_depth(depth: int, max_depth: int, where: str, node: _Node) -> None:
    if depth > max_depth:
        raise ValidationError(f"{path_of(where, node)}: nested deeper than {max_depth} levels")


def _check_key(key: str, where: str, node: _Node) -> None:
    problem = _string_problem(key)
    if problem is not None:
        raise ValidationError(f"{path_of(where, node)}: key {_shown(key)} {problem}")


def _check_scalar(item: Any, where: str, node: _Node) -> None:
    if isinstance(item, str):
        problem = _string_problem(item)
    elif isinstance(item, float):
        problem = None if isfinite(item) else "must be a finite number"
    elif isinstance(item, int) and item.bit_length() > _BIG_INT_BITS and not _fits_double(item):
        problem = "must be a finite number"
    else:
        return
    if problem is not None:
        raise ValidationError(f"{path_of(where, node)}: {problem}")


def _fits_double(number: int) -> bool:
    try:
        float(number)
    except OverflowError:
        return False
    return True


def _string_problem(text: str) -> str | None:
    if "\x00" in text:
        return "must not contain \\u0000"
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            return "must be valid Unicode (it contains a lone surrogate)"
    return None


def path_of(where: str, node: _Node) -> str:
    """`where` followed by the keys and indexes of `node`: `payload.items[3].price`."""
    parts: list[str | int] = []
    while node is not None:
        node, key = node
        parts.append(key)
    text = where
    for part in reversed(parts):
        if isinstance(part, int):
            text += f"[{part}]"
        elif _PLAIN_KEY.match(part):
            text += f".{part}" if text else part
        else:
            text += f"[{_shown(part)}]"
    text = text or "body"
    return text if len(text) <= _SHOWN_CHARS else "…" + text[-_SHOWN_CHARS:]


def _shown(text: str) -> str:
    """A string as a JSON literal (NUL and the like escaped), shortened for a message."""
    if len(text) > _SHOWN_CHARS:
        text = text[:_SHOWN_CHARS] + "…"
    return json.dumps(text)
