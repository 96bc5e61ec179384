"""`make bench`: plain Celery vs Celeriac tracking on the same Redis and worker settings.

Run with `python -m bench` (see bench.__main__ for the options). Nothing here is a test:
the run prints figures and writes them to var/bench/last.json.
"""
