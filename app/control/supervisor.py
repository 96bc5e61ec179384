"""Restart a worker through supervisord's XML-RPC interface (W2).

A worker run by supervisord knows its program name (supervisord sets SUPERVISOR_GROUP_NAME
and SUPERVISOR_PROCESS_NAME in its environment; app.control.worker_side publishes them), so
no hostname-to-program mapping is configured: only where supervisord listens,
CELERIAC_SUPERVISOR_URL, e.g. `http://celeriac:secret@127.0.0.1:9001/RPC2`. With workers on
several machines, give one URL per machine: `web1=http://...,web2=http://...` (the machine
name is what `hostname` prints there).

A restart is `stopProcess` then `startProcess`, as `supervisorctl restart` does: the stop
honours the program's stopsignal / stopwaitsecs, so running tasks finish first.
"""

from __future__ import annotations

import http.client
import logging
import threading
import xmlrpc.client
from typing import Any, cast
from urllib.parse import urlsplit

from app.errors import BackendUnavailable, Conflict, NotFound

logger = logging.getLogger(__name__)

#: Seconds to wait for a quick call (process info); a stop may wait for running tasks.
QUICK_TIMEOUT_S = 5.0
STOP_TIMEOUT_S = 1200.0
#: supervisor.xmlrpc.Faults.BAD_NAME: no such program.
BAD_NAME = 10
#: Process states a stop applies to.
RUNNING_STATES = {"STARTING", "RUNNING", "BACKOFF"}


class _TimeoutTransport(xmlrpc.client.Transport):
    def __init__(self, timeout: float) -> None:
        super().__init__()
        self.timeout = timeout

    def make_connection(self, host: Any) -> http.client.HTTPConnection:
        conn = super().make_connection(host)
        conn.timeout = self.timeout
        return conn


def url_for_machine(setting: str, machine: str | None) -> str | None:
    """The supervisord URL for `machine` from CELERIAC_SUPERVISOR_URL (one URL, or machine=url pairs)."""
    entries = [part.strip() for part in setting.split(",") if part.strip()]
    pairs: dict[str, str] = {}
    for entry in entries:
        name, sep, url = entry.partition("=")
        if sep and "://" not in name:
            pairs[name.strip()] = url.strip()
        elif len(entries) == 1:
            return entry  # one URL for every worker
    return pairs.get(machine or "")


def redacted(url: str) -> str:
    """`url` without its credentials, for messages and logs."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}{':' + str(parts.port) if parts.port else ''}{parts.path}"


class Supervisor:
    """A small client of supervisord's `supervisor.*` XML-RPC namespace."""

    def __init__(self, url: str) -> None:
        self.url = url

    def _proxy(self, timeout: float) -> Any:
        return xmlrpc.client.ServerProxy(self.url, transport=_TimeoutTransport(timeout), allow_none=True)

    def _call(self, name: str, method: str, *args: Any, timeout: float = QUICK_TIMEOUT_S) -> Any:
        try:
            return getattr(self._proxy(timeout).supervisor, method)(name, *args)
        except xmlrpc.client.Fault as fault:
            if fault.faultCode == BAD_NAME:
                raise NotFound(f"supervisord at {redacted(self.url)} has no program {name!r}") from fault
            raise Conflict(f"supervisord refused {method} of {name}: {fault.faultString}") from fault
        except xmlrpc.client.ProtocolError as exc:
            raise BackendUnavailable(
                f"supervisord at {redacted(self.url)} answered {exc.errcode} {exc.errmsg} (check the user and password)"
            ) from exc
        except OSError as exc:
            raise BackendUnavailable(f"supervisord at {redacted(self.url)} is not reachable: {exc}") from exc

    def info(self, name: str) -> dict[str, Any]:
        """`getProcessInfo`: state name, pid, description ...

        Raises:
            NotFound: no such program. BackendUnavailable: supervisord not reachable.
        """
        return cast(dict[str, Any], self._call(name, "getProcessInfo"))

    def restart(self, name: str) -> int:
        """Stop (waiting for the graceful stop) and start `name`; returns the new pid."""
        if self.info(name).get("statename") in RUNNING_STATES:
            self._call(name, "stopProcess", True, timeout=STOP_TIMEOUT_S)
        self._call(name, "startProcess", True, timeout=STOP_TIMEOUT_S)
        return int(self.info(name)["pid"])

    def restart_later(self, name: str) -> threading.Thread:
        """Restart in a daemon thread, so a request does not wait for running tasks to finish."""

        def run() -> None:
            try:
                pid = self.restart(name)
                logger.warning("Restarted %s through supervisord: pid %s", name, pid)
            except Exception:
                logger.exception("Restarting %s through supervisord failed", name)

        thread = threading.Thread(target=run, name=f"celeriac-restart-{name}", daemon=True)
        thread.start()
        return thread
