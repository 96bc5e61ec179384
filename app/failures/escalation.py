"""Escalation (F3): notify on permanent failures and on classes failing too often.

The recorder hands over what a committed batch finished; deciding is a few dict updates
in memory, and delivery (Redis de-duplication, HTTP, SMTP) runs in a thread of its own,
so a slow or broken channel never delays or fails the SQL write. A failed delivery is
logged, never retried: the next failure of the same kind after the cooldown notifies.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass

import redis

from app import redis_keys
from app.config import EscalationConfig
from app.failures.channels import Channel, channels_for
from app.kernel.failure_groups import NewFailure
from app.kernel.row_batch import Finished
from app.models import ExecutionStatus

logger = logging.getLogger(__name__)

#: Alerts waiting for delivery; past this, new ones are dropped (and logged).
MAX_PENDING_ALERTS = 1000
#: Width of one failure-rate bucket, in seconds.
RATE_BUCKET_S = 10


@dataclass(frozen=True)
class Alert:
    """One notification, de-duplicated on (tenant, kind, subject)."""

    tenant_id: str
    kind: str
    subject: str
    title: str
    text: str


class FailureRates:
    """Finished and failed jobs per tenant and class over a sliding window, in memory.

    Each recorder sees its share of the events, so with several recorders the rate is
    each one's sample of the traffic (the same rate, on fewer jobs).
    """

    def __init__(self, window_s: int) -> None:
        self.window_s = window_s
        self._buckets: dict[tuple[str, str], deque[list[float]]] = {}

    def observe(self, key: tuple[str, str], failed: bool, now: float) -> tuple[int, int]:
        """Count one finished job; returns (finished, failed) within the window."""
        buckets = self._buckets.setdefault(key, deque())
        start = now - now % RATE_BUCKET_S
        if not buckets or buckets[-1][0] != start:
            buckets.append([start, 0, 0])
        buckets[-1][1] += 1
        buckets[-1][2] += failed
        while buckets and buckets[0][0] <= now - self.window_s:
            buckets.popleft()
        return int(sum(b[1] for b in buckets)), int(sum(b[2] for b in buckets))


def failure_alert(failure: NewFailure) -> Alert:
    fp = failure.fingerprint
    where = f" at {fp.frames[0]}" if fp.frames else ""
    return Alert(
        failure.tenant_id,
        "failure",
        fp.key,
        f"[celeriac] {failure.job_class} failed: {fp.exception_type}",
        (
            f"Job {failure.id} ({failure.job_class}, queue {failure.queue}, tenant {failure.tenant_id}) "
            f"failed for good: {failure.message or fp.exception_type}{where}.\n"
            f"Fingerprint {fp.key}: {failure.group_count} failure(s) so far. "
            f"Report: GET /api/jobs/{failure.id}/failure-report"
        ),
    )


class Escalator:
    """Decides in the recorder's loop, delivers in a background thread."""

    def __init__(self, config: EscalationConfig, client: redis.Redis, channels: Sequence[Channel] | None = None):
        self.config = config
        self.redis = client
        self.channels = list(channels) if channels is not None else channels_for(config)
        self.rates = FailureRates(config.failure_rate_window_s)
        self._pending: queue.Queue[Alert | None] = queue.Queue(MAX_PENDING_ALERTS)
        self._thread: threading.Thread | None = None

    @property
    def enabled(self) -> bool:
        return bool(self.channels)

    def after_commit(self, finished: Sequence[Finished], failures: Sequence[NewFailure]) -> None:
        """Queue the alerts a committed batch calls for. Never raises, never blocks."""
        if not self.channels:
            return
        try:
            alerts = [failure_alert(f) for f in failures] if self.config.on_failure else []
            if self.config.failure_rate_threshold > 0:
                alerts.extend(self._rate_alerts(finished))
            for alert in alerts:
                self._enqueue(alert)
        except Exception:  # the recorder's loop: a bug here must not stop recording
            logger.exception("Escalation: could not queue alerts")

    def _rate_alerts(self, finished: Sequence[Finished]) -> list[Alert]:
        now = time.time()
        alerts: dict[tuple[str, str], Alert] = {}
        cfg = self.config
        for job in finished:
            if job.status == ExecutionStatus.CANCELLED.value or job.job_class is None:
                continue
            key = (job.tenant_id or "", job.job_class)
            total, failed = self.rates.observe(key, job.status == ExecutionStatus.FAILED.value, now)
            if total >= cfg.failure_rate_min_jobs and failed / total >= cfg.failure_rate_threshold:
                alerts[key] = Alert(
                    key[0],
                    "rate",
                    key[1],
                    f"[celeriac] {key[1]}: {failed / total:.0%} of jobs failing",
                    (
                        f"{failed} of the last {total} finished {key[1]} jobs of tenant {key[0]} failed "
                        f"within {cfg.failure_rate_window_s} s (threshold {cfg.failure_rate_threshold:.0%}). "
                        f"Groups: GET /api/monitoring/failures?job_class={key[1]}"
                    ),
                )
        return list(alerts.values())

    def _enqueue(self, alert: Alert) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._deliver_loop, name="celeriac-escalation", daemon=True)
            self._thread.start()
        try:
            self._pending.put_nowait(alert)
        except queue.Full:
            logger.warning(
                "Escalation: %d alerts waiting; dropped %s %s", MAX_PENDING_ALERTS, alert.kind, alert.subject
            )

    def _deliver_loop(self) -> None:
        while True:
            alert = self._pending.get()
            if alert is None:
                return
            try:
                self.deliver(alert)
            except Exception:  # a thread boundary: log and keep delivering
                logger.exception("Escalation: delivery of %s %s failed", alert.kind, alert.subject)

    def deliver(self, alert: Alert) -> bool:
        """Send `alert` unless one with its key was sent within the cooldown; True if sent."""
        key = redis_keys.escalation(alert.tenant_id, alert.kind, alert.subject)
        if not self.redis.set(key, str(time.time()), nx=True, ex=self.config.cooldown_s):
            return False
        for channel in self.channels:
            try:
                channel.send(alert.title, alert.text)
            except Exception as exc:  # each channel on its own: one down must not silence the others
                logger.warning(
                    "Escalation: %s delivery of %s %s failed: %s", channel.name, alert.kind, alert.subject, exc
                )
        return True

    def stop(self, timeout_s: float = 5.0) -> None:
        """Deliver what is queued, then end the thread (for shutdown and tests)."""
        if self._thread is not None and self._thread.is_alive():
            self._pending.put(None)
            self._thread.join(timeout_s)
