"""Gunicorn settings for the console (Procfile `web`, supervisor `program:web`).

The port comes from app.config (PORT, default 8000); gunicorn runs from the repository
root, which it puts on sys.path before reading this file.
"""

from __future__ import annotations

from app.config import VAR_DIR, get_settings

#: Loopback only: put a TLS-terminating proxy in front to publish the console.
bind = f"127.0.0.1:{get_settings().port}"
#: Two processes of four threads (gthread worker): requests are short and I/O bound.
workers = 2
threads = 4
#: Seconds a worker may finish in-flight requests after SIGTERM; supervisor's
#: stopwaitsecs for `web` is longer.
graceful_timeout = 30
#: Access log to stdout, collected by honcho or supervisor.
accesslog = "-"
#: Gunicorn's control socket (gunicornc) per checkout, not the shared ~/.gunicorn one
#: that a second instance on this machine would take over.
control_socket = str(VAR_DIR / "gunicorn.ctl")
