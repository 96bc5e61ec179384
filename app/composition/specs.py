"""A resolved job as JSON, for jobs held in Redis until their turn (J5-J7).

Encrypted jobs keep their payload sealed while held, like everywhere else.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from app.crypto import open_payload
from app.kernel.dispatching import ResolvedJob

_FIELDS = {f.name for f in dataclasses.fields(ResolvedJob)}


def to_spec(job: ResolvedJob, pass_result: bool = False) -> dict[str, Any]:
    """The job as JSON; `pass_result` adds the dependency's result as `previous_result`."""
    spec = dataclasses.asdict(job)
    spec["payload"] = job.wire_payload()
    spec["pass_result"] = pass_result
    return spec


def from_spec(spec: dict[str, Any], previous_result: Any = None) -> ResolvedJob:
    """Rebuild the job, with `previous_result` in its payload when the spec asks for it.

    Raises:
        app.crypto.EncryptionError: an encrypted payload no configured key opens.
    """
    values = {k: v for k, v in spec.items() if k in _FIELDS}
    payload = dict(values.get("payload") or {})
    if values.get("encrypted"):

        payload = open_payload(payload)
    if spec.get("pass_result"):
        payload["previous_result"] = previous_result
    values["payload"] = payload
    return ResolvedJob(**values)
