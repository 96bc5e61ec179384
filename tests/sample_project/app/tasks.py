"""The sample project's tasks: plain Celery tasks; one reports progress when Celeriac is there."""

from celery import shared_task

from app.celery import app

try:
    from celeriac import report_progress
except ImportError:  # the project runs without Celeriac as well

    def report_progress(done, total, message=None):
        pass


class Flaky(ConnectionError):
    """A failure worth retrying (a remote service that is briefly down)."""


@app.task
def add(x, y):
    return x + y


@app.task
def mul(x, y):
    return x * y


@shared_task
def total(numbers):
    """A chord's callback: the sum of its header's results."""
    return sum(numbers)


@app.task(bind=True, autoretry_for=(Flaky,), max_retries=3, retry_kwargs={"countdown": 0})
def flaky(self, succeed_on_attempt):
    """Fails until attempt `succeed_on_attempt` (1 is the first), retried by autoretry_for."""
    attempt = self.request.retries + 1
    if attempt < succeed_on_attempt:
        raise Flaky(f"attempt {attempt} of {succeed_on_attempt} failed")
    return attempt


@app.task
def count_rows(rows):
    """A long import, reporting how far it got."""
    for row in range(1, rows + 1):
        report_progress(row, rows, f"row {row} of {rows}")
    return rows
