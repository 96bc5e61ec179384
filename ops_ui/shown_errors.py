"""How the console words a failure: the exception type once, then its message.

Celeriac stores a failure's message as "Type: text" (celeriac.events), which the API keeps
as it is; a console cell that already shows the type in its own element drops that prefix.
"""

from __future__ import annotations


def without_type(message: str | None, exception_type: str | None) -> str:
    """`message` without a leading "<exception_type>: " (or "<exception_type>" alone)."""
    text = (message or "").strip()
    if not exception_type or not text.startswith(exception_type):
        return text
    rest = text[len(exception_type) :]
    if not rest:
        return ""
    if rest.startswith(":"):
        return rest[1:].strip()
    return text  # e.g. type "Error" and message "ErrorCode 7": not a prefix of the same word


__all__ = ["without_type"]
