"""The recorder's composition step: after each commit, act on jobs that finished.

Runs before the events are acknowledged, so a Redis or SQL error here leaves them in the
stream and the whole batch is replayed; every step being idempotent, that is safe.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import redis
from sqlalchemy.exc import SQLAlchemyError

from app import redis_keys
from app.backends.current import backends
from app.composition.followups import drain_outbox, follow_up, involved, recover_inflight
from app.composition.held_release import ReleasePublisher
from app.composition.hub import Hub
from app.composition.resync import rebuild_batch, release_lost_catch
from app.composition.runtime import result_reader
from app.config import Settings
from app.db import session_scope
from app.kernel.ports import Publisher
from app.kernel.row_batch import Finished
from app.kernel.writer import mark_unqueued

logger = logging.getLogger(__name__)


class CompositionStep:
    def __init__(self, settings: Settings, client: redis.Redis, publisher: Publisher | None = None) -> None:
        self.settings = settings
        self.hub = Hub(client)
        self._publisher = publisher

    @property
    def publisher(self) -> Publisher:
        """The one given, else this process's (app.backends.current: Celery in the recorder)."""
        return self._publisher if self._publisher is not None else backends().publisher

    def start(self) -> None:
        """Re-queue released jobs a previous recorder took but did not confirm."""
        moved = recover_inflight(self.hub)
        if moved:
            logger.warning("Recovered %d released jobs from a recorder that stopped mid-publish", moved)

    def after_commit(self, finished: Sequence[Finished]) -> None:
        """Follow up on the jobs a committed batch finished, then publish what they released."""
        if finished:
            jobs = involved(self.hub, finished)
            try:
                follow_up(self.hub, jobs, self._rebuild_batch, self._release_lost_catch)
            except (redis.RedisError, SQLAlchemyError):
                raise  # an outage: the batch stays unacknowledged and is replayed
            except Exception:  # a bug must not stop recording; replaying would not help
                logger.exception("Composition follow-up failed for %d jobs", len(jobs))
        self.safe_drain()

    def _rebuild_batch(self, batch_id: str) -> None:
        """Redis lost the batch's counters: rebuild them from SQL (app.composition.resync)."""

        with session_scope(self.settings.database_url) as session:
            rebuild_batch(session, self.hub, batch_id)

    def _release_lost_catch(self, chain_id: str) -> None:

        with session_scope(self.settings.database_url) as session:
            release_lost_catch(session, self.hub, chain_id)

    def drain(self) -> int:
        """Publish released jobs waiting in the outbox (cheap when it is empty)."""
        if not self.hub.redis.llen(redis_keys.OUTBOX):
            return 0

        with session_scope(self.settings.database_url) as session:
            return drain_outbox(
                self.hub,
                ReleasePublisher(self.publisher, session, self.settings, self.hub.redis),
                result_reader(session),
                lambda job_id, reason: mark_unqueued(session, job_id, reason),
            )

    def safe_drain(self) -> None:
        """The periodic drain of the recorder loop: an outage is logged and retried later."""
        try:
            self.drain()
        except (redis.RedisError, SQLAlchemyError) as exc:
            logger.warning("Outbox not drained (%s); retrying", exc)
        except Exception:  # a broker error from publish: the entry went back to the outbox
            logger.exception("Outbox drain failed; retrying")
