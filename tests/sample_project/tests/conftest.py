"""The test settings, read by app/celery.py when it is imported, so set before any test runs:
a Redis database for the tests alone, a queue no other worker consumes, and Celeriac's
tracking on as the project's workers run it."""

import os
import uuid

os.environ.setdefault("SAMPLE_BROKER_URL", "redis://127.0.0.1:6379/9")
os.environ.setdefault("SAMPLE_QUEUE", f"sample-tests-{uuid.uuid4().hex[:8]}")
os.environ.setdefault("SAMPLE_CELERIAC", "instrument")
