"""Test helpers for your own test suite: `fake_queue()` captures dispatches (J12).

    from app.testing import fake_queue

    def test_signup_sends_the_welcome_email():
        with fake_queue() as q:
            signup("ann@example.com")
        q.assert_pushed(SendWelcomeEmail, lambda job: job.payload["to"] == "ann@example.com")

Inside the block, `Job.dispatch`, `batch([...]).dispatch()` and `chain([...]).dispatch()`
are validated as for real (an unknown job class or a bad option still raises
ValidationError) but captured instead of queued: nothing reaches Redis, the broker or SQL.
Assertions: `assert_pushed`, `assert_pushed_on`, `assert_not_pushed`, `assert_pushed_times`,
`assert_nothing_pushed`, `assert_batched`, `assert_chained`; `q.pushed(JobClass)` lists the
captured jobs (`CapturedJob`), `q.batches` and `q.chains` the groups. A failed assertion
lists everything that was pushed. Guide: docs/composition.md.
"""

from __future__ import annotations

from app.jobs.fake import CapturedBatch, CapturedChain, CapturedJob, FakeQueue, fake_queue

__all__ = ["CapturedBatch", "CapturedChain", "CapturedJob", "FakeQueue", "fake_queue"]
