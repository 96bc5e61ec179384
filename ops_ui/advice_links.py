"""Recommendations in the console: the API's sentence with its references as links to pages.

`app.monitoring.advice.Advice` names, for each reference, the API path the API's text shows
and the console page to link instead; this module knows the pages' endpoints.
"""

from __future__ import annotations

from typing import Any

from flask import url_for
from markupsafe import Markup, escape

from app.monitoring.advice import Advice, Ref, as_advice

#: Console page key of a `Ref` -> endpoint.
PAGES: dict[str, str] = {
    "failed": "console.failed",
    "performance": "console.performance",
    "workers": "console.workers",
    "jobs": "console.jobs",
    "queues": "console.queues",
}


def _link(ref: Ref) -> Markup:
    endpoint = PAGES.get(ref.page)
    if endpoint is None:  # a page this console does not have: say it as the API does
        return Markup(escape(ref.api))
    arguments: dict[str, Any] = dict(ref.args)
    href = url_for(endpoint, **arguments)
    return Markup(f'<a href="{escape(href)}">{escape(ref.label)}</a>')


def advice_html(value: str | Advice) -> Markup:
    """One recommendation as HTML: text escaped, references as links (a plain string as it is)."""
    given = as_advice(value)
    return Markup("").join(_link(p) if isinstance(p, Ref) else Markup(escape(p)) for p in given.parts)


__all__ = ["advice_html", "PAGES"]
