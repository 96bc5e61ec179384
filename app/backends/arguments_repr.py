"""The `argsrepr` / `kwargsrepr` headers of a task message, as Celery's `saferepr` writes them.

Celery's saferepr streams a structure token by token (about 50 µs for a small payload):
it quotes every string with single quotes without escaping it, truncates past a length,
and elides containers nested deeper than a level. For the payloads jobs usually carry
(plain strings, numbers, booleans, None, lists and dicts, shallow and short) that text is
exactly `repr()`'s (about 2 µs); anything else goes to saferepr itself. The unit tests
check the two against each other on generated payloads.
"""

from __future__ import annotations

from typing import Any

from celery.utils.saferepr import saferepr


def arguments_repr(value: Any, maxlen: int, maxlevels: int) -> str:
    """`saferepr(value, maxlen, maxlevels=maxlevels)`, the same text, cheaply when it can be."""
    if _is_plain(value, 0, maxlevels):
        text = repr(value)
        if len(text) < maxlen:
            return text
    return saferepr(value, maxlen, maxlevels=maxlevels)


def _is_plain(value: Any, depth: int, maxlevels: int) -> bool:
    """True when saferepr would print `value` as repr() does (shorter than the limit)."""
    kind = type(value)
    if kind is str:
        return _is_plain_text(value)
    if value is None or kind is int or kind is float or kind is bool:
        return True
    if kind is not dict and kind is not list and kind is not tuple:
        return False
    if maxlevels and depth >= maxlevels:
        return False  # saferepr prints "{...}" here
    if kind is dict:
        return all(
            type(key) is str and _is_plain_text(key) and (_is_scalar(item) or _is_plain(item, depth + 1, maxlevels))
            for key, item in value.items()
        )
    if kind is tuple and len(value) == 1:
        return False  # "(x,)": leave the corner to saferepr
    return all(_is_scalar(item) or _is_plain(item, depth + 1, maxlevels) for item in value)


def _is_plain_text(text: str) -> bool:
    """saferepr quotes text with single quotes and escapes nothing; repr escapes these."""
    return "'" not in text and "\\" not in text and text.isprintable()


def _is_scalar(item: Any) -> bool:
    """A number, boolean or None: printed alike by both (the common case, checked inline)."""
    kind = type(item)
    return item is None or kind is int or kind is float or kind is bool
