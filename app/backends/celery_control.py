"""The production worker control: Celery remote control (broadcasts over the broker)."""

from __future__ import annotations

from typing import Any


class CeleryWorkerControl:
    """Sends remote-control commands through a Celery app's `control`."""

    def __init__(self, control: Any) -> None:
        self.control = control

    def cancel_consumer(self, queue: str) -> None:
        self.control.cancel_consumer(queue, reply=False)

    def add_consumer(self, queue: str, hostnames: list[str]) -> None:
        self.control.add_consumer(queue, destination=hostnames, reply=False)

    def shutdown(self, hostname: str) -> None:
        self.control.shutdown(destination=[hostname], reply=False)

    def revoke(self, job_ids: list[str], terminate: bool) -> None:
        self.control.revoke(job_ids, terminate=terminate, signal="SIGTERM")

    def command(self, hostname: str, name: str, arguments: dict[str, Any], timeout_s: float) -> list[dict[str, Any]]:
        replies = self.control.broadcast(
            name, arguments=arguments, destination=[hostname], reply=True, timeout=timeout_s
        )
        return list(replies or [])
