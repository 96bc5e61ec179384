"""A recommendation that names where to look: an API path for API clients, a page for the console.

The API's recommendations are plain sentences that API clients may read ("see
/api/monitoring/failures for the causes"); the console shows the same sentence with the
reference as a link to its own page ("see the Failed page for the causes"). One `Advice`
holds both: text parts and `Ref`s, rendered by `text` for the API and by the console's
`advice` filter (ops_ui/advice_links.py) for pages.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Ref:
    """A place an advice points to: `api` as the API's text names it, `page` a console page key."""

    api: str
    page: str
    label: str
    #: Query arguments of the console page (e.g. a status filter of the Jobs page).
    args: tuple[tuple[str, str], ...] = field(default=())


@dataclass(frozen=True)
class Advice:
    """One recommendation: text and references, in reading order."""

    parts: tuple[str | Ref, ...]

    @property
    def text(self) -> str:
        """The sentence as the API answers it (references as API paths)."""
        return "".join(p if isinstance(p, str) else p.api for p in self.parts)

    @property
    def links(self) -> list[Ref]:
        return [p for p in self.parts if isinstance(p, Ref)]

    def __str__(self) -> str:
        return self.text


def advice(*parts: str | Ref) -> Advice:
    return Advice(tuple(parts))


def as_advice(value: str | Advice) -> Advice:
    return value if isinstance(value, Advice) else Advice((value,))


def failed_page(api: str) -> Ref:
    """The failure causes: GET /api/monitoring/failures, or the console's Failed page."""
    return Ref(api, "failed", "the Failed page")


def performance_page(api: str) -> Ref:
    return Ref(api, "performance", "the Performance page")


def workers_page(api: str) -> Ref:
    return Ref(api, "workers", "the Workers page")


def running_jobs(api: str) -> Ref:
    return Ref(api, "jobs", "the running jobs", (("status", "running"),))


__all__ = ["Advice", "Ref", "advice", "as_advice", "failed_page", "performance_page", "workers_page", "running_jobs"]
