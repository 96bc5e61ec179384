"""Settings of attach mode (CELERIAC_ATTACH): recording a project's unchanged Celery workers
from Celery's task events (docs/adopting.md, "Path 2"). Read by app.config only.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from app.config_parsing import env_bool, env_int

#: Celeriac's own queue in attach mode: bulk jobs and maintenance, never the project's.
ATTACH_QUEUE = "celeriac"
#: Queues Celeriac's worker consumes without attach mode (the Procfile's).
DEFAULT_WORKER_QUEUES = ("high", "default", "low")


@dataclass(frozen=True)
class AttachConfig:
    """Whether Celeriac records a project's workers from their events, and how."""

    #: CELERIAC_ATTACH: record the project's workers from Celery's task events; Celeriac's
    #: own worker consumes only `queues`.
    enabled: bool = False
    #: CELERIAC_ATTACH_ENABLE_EVENTS: turn task events on in the project's workers by
    #: broadcast (as Flower does), at start and every `enable_events_interval_s`.
    enable_events: bool = True
    enable_events_interval_s: int = 60
    #: CELERIAC_ATTACH_VISIBILITY_TIMEOUT_S: the project's broker visibility timeout (Celery's
    #: default for Redis: 3600 s). Celeriac's is never shorter: kombu puts back every
    #: unacknowledged message older than it, the project's included.
    project_visibility_timeout_s: int = 3600

    @property
    def queues(self) -> tuple[str, ...]:
        """The queues Celeriac's own worker consumes."""
        return (ATTACH_QUEUE,) if self.enabled else DEFAULT_WORKER_QUEUES

    @property
    def system_queue(self) -> str:
        """Where Celeriac's own jobs (bulk actions, maintenance) go."""
        return ATTACH_QUEUE if self.enabled else "default"


def attach_config(environ: Mapping[str, str]) -> AttachConfig:
    return AttachConfig(
        enabled=env_bool(environ, "CELERIAC_ATTACH", False),
        enable_events=env_bool(environ, "CELERIAC_ATTACH_ENABLE_EVENTS", True),
        enable_events_interval_s=env_int(environ, "CELERIAC_ATTACH_ENABLE_EVENTS_S", 60, 1),
        project_visibility_timeout_s=env_int(environ, "CELERIAC_ATTACH_VISIBILITY_TIMEOUT_S", 3600, 1),
    )
