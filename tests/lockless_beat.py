"""`celery -A tests.lockless_beat beat`: the Celeriac app with RedBeat's lock turned off.

Two of these tick at once, the split brain the per-tick claims must survive (S4).
"""

from __future__ import annotations

from app.celery_app import celery_app

celery_app.conf.redbeat_lock_key = None
app = celery_app
