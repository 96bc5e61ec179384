"""The probe job of the fault suite, loaded by workers with CELERIAC_TASK_MODULES=faults.jobs.

`faults.probe` writes to the ledger (faults.ledger) when it starts and when it ends, and
in between sleeps as long as its payload says, so that kills land in the middle of runs.
`max_tries = 1`: a probe killed under its process must still run again (issue 11, item 3);
the ledger shows whether it did.
"""

from __future__ import annotations

import os
import time
from typing import Any

from app.jobs import Job
from faults import ledger

#: Name the harness (and schedules) dispatch.
PROBE = "faults.probe"


class ProbeFailure(RuntimeError):
    """Raised by a probe told to fail: its row must say failed, and the ledger says so too."""


class Probe(Job):
    """Writes start/end lines to the ledger; sleeps `seconds`; raises when `fail` is true."""

    name = PROBE
    max_tries = 1

    def handle(self, token: str = ledger.NO_TOKEN, seconds: float = 0.0, fail: bool = False, **_: Any) -> str:
        self._write(ledger.START, token)
        if seconds:
            time.sleep(float(seconds))
        if fail:
            self._write(ledger.FAIL, token)
            raise ProbeFailure(f"probe {token} failed on purpose")
        self._write(ledger.DONE, token)
        return token

    def _write(self, phase: str, token: str) -> None:
        # Read at run time, not import time: the harness sets it per scenario.
        path = os.environ[ledger.LEDGER_ENV]
        entry = ledger.Entry(self.job_id, os.getpid(), time.time(), self.attempt, phase, token)
        ledger.append(path, entry)
