"""A publisher that captures dispatches instead of queuing them (J12), for users' own tests.

Installed by `fake_queue()` (public: `app.testing`). Jobs are validated as for real, so an
unknown job class or a bad option still raises, but nothing reaches Redis, the broker or
SQL. "Pushed" means what the broker would have received at dispatch time: each single
dispatch, every member of a batch, and the first step of a chain.
"""

from __future__ import annotations

import dataclasses
import inspect
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from app.backends import current
from app.composition.batches import BatchRequest, _check_size
from app.config import get_settings
from app.errors import ValidationError
from app.jobs.builders import Dispatched
from app.jobs.dispatch import JobCall
from app.kernel.dispatching import DispatchSpec, ResolvedJob, resolve

#: Captured jobs a failure message lists before it only counts the rest.
MAX_LISTED = 30
#: Characters of a payload's repr shown in a failure message.
MAX_PAYLOAD_REPR = 200

#: A job to look for: a Job subclass, a plain Celery task, a task name, or (to compare
#: the payload and options too) a Job instance such as `SendEmail(to=x)` or a JobCall.
JobRef = Any


@dataclasses.dataclass(frozen=True)
class CapturedJob(ResolvedJob):
    """A job as the fake received it: every resolved option, and the payload in clear."""

    #: "job" (pushed at once), "step" (a later chain step), or "then"/"catch"/"finally".
    role: str = "job"
    batch: CapturedBatch | None = dataclasses.field(default=None, compare=False, repr=False)
    chain: CapturedChain | None = dataclasses.field(default=None, compare=False, repr=False)

    @classmethod
    def of(cls, job: ResolvedJob, role: str = "job", **group: Any) -> CapturedJob:
        values = {f.name: getattr(job, f.name) for f in dataclasses.fields(ResolvedJob)}
        return cls(**values, role=role, **group)

    @property
    def id(self) -> str:
        return self.job_id

    def describe(self) -> str:
        """One line for failure messages; an encrypted payload shows its keys only."""
        if self.encrypted:
            payload = "<encrypted: " + ", ".join(sorted(self.payload)) + ">"
        else:
            payload = repr(self.payload)
            if len(payload) > MAX_PAYLOAD_REPR:
                payload = payload[: MAX_PAYLOAD_REPR - 3] + "..."
        parts = [f"{self.job_class} {payload} on {self.queue!r}, priority {self.priority}"]
        if self.delay_s:
            parts.append(f"delay {self.delay_s:g}s")
        if self.tenant_id != get_settings().default_tenant:
            parts.append(f"tenant {self.tenant_id!r}")
        if self.tags:
            parts.append(f"tags {self.tags}")
        if self.depends_on and self.chain is None:
            parts.append(f"after {self.depends_on}")
        if self.batch is not None:
            parts.append(f"in batch {self.batch.name or self.batch.id!r}")
        if self.chain is not None and self.chain_step is not None:
            parts.append(f"step {self.chain_step + 1} of chain {self.chain.name or self.chain.id!r}")
        return ", ".join(parts)


@dataclasses.dataclass(eq=False)
class CapturedBatch:
    """A batch as dispatched: its jobs in order and its callbacks (None when not set)."""

    id: str
    tenant_id: str
    name: str | None
    allow_failures: int
    jobs: list[CapturedJob] = dataclasses.field(default_factory=list)
    then: CapturedJob | None = None
    catch: CapturedJob | None = None
    finally_: CapturedJob | None = None

    def has(self, job: JobRef, predicate: Callable[[CapturedJob], bool] | None = None) -> bool:
        """Whether a member (not a callback) is `job` and satisfies `predicate`."""
        return any(_matches(member, _expected(job), predicate) for member in self.jobs)

    def describe(self) -> str:
        callbacks = [
            f"{label}={job.job_class}"
            for label, job in (("then", self.then), ("catch", self.catch), ("finally", self.finally_))
            if job is not None
        ]
        members = ", ".join(job.job_class for job in self.jobs)
        return f"batch {self.name or self.id!r}: [{members}], allow_failures={self.allow_failures}" + (
            "".join(f", {c}" for c in callbacks)
        )


@dataclasses.dataclass(eq=False)
class CapturedChain:
    """A chain as dispatched: its steps in order (only the first is pushed) and its catch job."""

    id: str
    tenant_id: str
    name: str | None
    steps: list[CapturedJob] = dataclasses.field(default_factory=list)
    catch: CapturedJob | None = None

    @property
    def jobs(self) -> list[CapturedJob]:
        return self.steps

    def describe(self) -> str:
        steps = " -> ".join(job.job_class for job in self.steps)
        catch = f", catch={self.catch.job_class}" if self.catch else ""
        return f"chain {self.name or self.id!r}: {steps}{catch}"


@dataclasses.dataclass(frozen=True)
class _Expected:
    """What an assertion looks for; payload and options only when given."""

    job_class: str
    payload: dict[str, Any] | None = None
    options: dict[str, Any] = dataclasses.field(default_factory=dict)

    def matches(self, job: CapturedJob) -> bool:
        if job.job_class != self.job_class or (self.payload is not None and job.payload != self.payload):
            return False
        missing = object()
        return all(getattr(job, key, missing) == value for key, value in self.options.items())

    def __str__(self) -> str:
        text = self.job_class
        if self.payload is not None:
            text += f" {self.payload!r}"
        return text + "".join(f", {key}={value!r}" for key, value in self.options.items())


def _expected(ref: JobRef) -> _Expected:
    """Raises: TypeError: `ref` names no job."""
    if isinstance(ref, str):
        return _Expected(ref)
    if isinstance(ref, JobCall):
        return _Expected(ref.job_class, dict(ref.payload), dict(ref.options))
    task_name = getattr(ref, "task_name", None)
    if isinstance(ref, type) and callable(task_name):
        return _Expected(str(task_name()))
    if callable(getattr(ref, "to_call", None)):
        return _expected(ref.to_call())
    if isinstance(getattr(ref, "name", None), str):
        return _Expected(ref.name)
    raise TypeError(f"expected a Job class, a Celery task or a task name, got {ref!r}")


def _matches(job: CapturedJob, expected: _Expected, predicate: Callable[[CapturedJob], bool] | None) -> bool:
    return expected.matches(job) and (predicate is None or bool(predicate(job)))


def _describe_predicate(predicate: Callable[..., Any]) -> str:
    """A lambda's own source (`lambda job: job.payload["to"] == x`), else the function's name."""
    name = getattr(predicate, "__name__", "")
    if name != "<lambda>":
        return name or repr(predicate)
    try:
        source = " ".join(inspect.getsource(predicate).split())
    except (OSError, TypeError):
        return "<lambda>"
    text, depth = source[source.find("lambda") :], 0
    for index, char in enumerate(text):
        depth += (char in "([{") - (char in ")]}")
        if depth < 0 or (depth == 0 and char == ","):
            return text[:index].strip()
    return text.strip()


def _listing(title: str, lines: list[str]) -> list[str]:
    shown = [f"  - {line}" for line in lines[:MAX_LISTED]]
    if len(lines) > MAX_LISTED:
        shown.append(f"  ... and {len(lines) - MAX_LISTED} more")
    return [f"{title} ({len(lines)}):", *shown]


class FakeQueue:
    """The publisher `fake_queue()` installs; it also holds what was captured and the assertions."""

    #: Tells dispatch (`app.jobs.dispatch.is_fake`) to skip SQL and Redis.
    captures_dispatches = True

    def __init__(self) -> None:
        self._pushed: list[CapturedJob] = []
        self.batches: list[CapturedBatch] = []
        self.chains: list[CapturedChain] = []

    # -- capture (called by dispatch, batch() and chain()) ---------------------------
    def publish(self, job: ResolvedJob) -> None:
        self._pushed.append(CapturedJob.of(job))

    def capture_batch(self, request: BatchRequest) -> Dispatched:
        """Validate like `create_batch` (all or nothing), then capture.

        Raises:
            ValidationError: empty or oversized batch, bad allow_failures, a bad job or callback.
        """
        _check_size(len(request.jobs), get_settings(), "a batch")
        if isinstance(request.allow_failures, bool) or not isinstance(request.allow_failures, int):
            raise ValidationError("allow_failures must be an integer")
        if request.allow_failures < 0:
            raise ValidationError("allow_failures must be 0 or more")
        batch = CapturedBatch(str(uuid.uuid4()), request.tenant_id, request.name, request.allow_failures)
        jobs = [
            _resolve(dataclasses.replace(s, tenant_id=request.tenant_id, batch_id=batch.id), f"jobs[{i}]")
            for i, s in enumerate(request.jobs)
        ]
        callbacks = {
            name: _resolve(dataclasses.replace(spec, tenant_id=request.tenant_id), name)
            for name, spec in (("then", request.then), ("catch", request.catch), ("finally", request.finally_))
            if spec is not None
        }
        batch.jobs = [CapturedJob.of(job, batch=batch) for job in jobs]
        captured = {name: CapturedJob.of(job, name, batch=batch) for name, job in callbacks.items()}
        batch.then, batch.catch, batch.finally_ = (captured.get(n) for n in ("then", "catch", "finally"))
        self.batches.append(batch)
        self._pushed.extend(batch.jobs)
        return Dispatched(batch.id, [job.id for job in batch.jobs])

    def capture_chain(self, steps: list[DispatchSpec], catch: DispatchSpec | None, name: str | None) -> Dispatched:
        """Validate like `create_chain` (all or nothing), then capture; only step 1 is pushed.

        Raises:
            ValidationError: empty or oversized chain, or a bad step or catch job.
        """
        _check_size(len(steps), get_settings(), "a chain")
        chain = CapturedChain(str(uuid.uuid4()), steps[0].tenant_id, name)
        ids = [str(uuid.uuid4()) for _ in steps]
        resolved = [
            dataclasses.replace(
                _resolve(dataclasses.replace(spec, chain_id=chain.id, chain_step=k, job_id=ids[k]), f"jobs[{k}]"),
                depends_on=[ids[k - 1]] if k else None,
            )
            for k, spec in enumerate(steps)
        ]
        catch_job = _resolve(catch, "catch") if catch is not None else None
        chain.steps = [CapturedJob.of(job, "step" if k else "job", chain=chain) for k, job in enumerate(resolved)]
        chain.catch = CapturedJob.of(catch_job, "catch", chain=chain) if catch_job else None
        self.chains.append(chain)
        self._pushed.append(chain.steps[0])
        return Dispatched(chain.id, ids)

    # -- accessors -------------------------------------------------------------------
    def pushed(
        self, job: JobRef | None = None, predicate: Callable[[CapturedJob], bool] | None = None
    ) -> list[CapturedJob]:
        """Jobs pushed so far, in order; only those that are `job` and satisfy `predicate`."""
        if job is None:
            return [j for j in self._pushed if predicate is None or predicate(j)]
        expected = _expected(job)
        return [j for j in self._pushed if _matches(j, expected, predicate)]

    def clear(self) -> None:
        """Forget everything captured, e.g. after the arrange step of a test."""
        self._pushed.clear()
        self.batches.clear()
        self.chains.clear()

    # -- assertions ------------------------------------------------------------------
    def assert_pushed(self, job: JobRef, predicate: Callable[[CapturedJob], bool] | None = None) -> None:
        """At least one pushed job is `job` and satisfies `predicate`."""
        if not self.pushed(job, predicate):
            self._fail(f"Expected {_what(job, predicate)} to be pushed, but it was not.")

    def assert_pushed_on(self, queue: str, job: JobRef, predicate: Callable[[CapturedJob], bool] | None = None) -> None:
        """At least one job pushed on `queue` is `job` and satisfies `predicate`."""
        if not [j for j in self.pushed(job, predicate) if j.queue == queue]:
            self._fail(f"Expected {_what(job, predicate)} to be pushed on queue {queue!r}, but it was not.")

    def assert_not_pushed(self, job: JobRef, predicate: Callable[[CapturedJob], bool] | None = None) -> None:
        """No pushed job is `job` and satisfies `predicate`."""
        found = self.pushed(job, predicate)
        if found:
            self._fail(f"Expected {_what(job, predicate)} not to be pushed, but it was pushed {_times(len(found))}.")

    def assert_pushed_times(
        self, job: JobRef, times: int, predicate: Callable[[CapturedJob], bool] | None = None
    ) -> None:
        """Exactly `times` pushed jobs are `job` (and satisfy `predicate`)."""
        count = len(self.pushed(job, predicate))
        if count != times:
            self._fail(
                f"Expected {_what(job, predicate)} to be pushed {_times(times)}, but it was pushed {_times(count)}."
            )

    def assert_nothing_pushed(self) -> None:
        """No job, batch or chain was dispatched."""
        if self._pushed or self.batches or self.chains:
            self._fail("Expected nothing to be pushed, but something was.")

    def assert_batched(self, predicate: Callable[[CapturedBatch], bool] | None = None) -> None:
        """At least one batch was dispatched that satisfies `predicate`."""
        if not any(predicate is None or predicate(batch) for batch in self.batches):
            where = f" matching {_describe_predicate(predicate)}" if predicate else ""
            self._fail(f"Expected a batch{where} to be dispatched, but none was.")

    def assert_chained(self, steps: list[JobRef], catch: JobRef | None = None) -> None:
        """A chain was dispatched whose steps are `steps`, in order (and whose catch job is `catch`)."""
        expected = [_expected(step) for step in steps]
        catch_expected = _expected(catch) if catch is not None else None
        if any(_is_chain(chain, expected, catch_expected) for chain in self.chains):
            return
        wanted = " -> ".join(str(e) for e in expected) + (f", catch={catch_expected}" if catch_expected else "")
        self._fail(f"Expected a chain {wanted} to be dispatched, but none matched.")

    def _fail(self, headline: str) -> None:
        """Raise AssertionError: `headline`, then everything that WAS dispatched."""
        lines = [headline]
        if self._pushed:
            lines += _listing("Pushed jobs", [job.describe() for job in self._pushed])
        else:
            lines.append("Nothing was pushed.")
        if self.batches:
            lines += _listing("Batches", [batch.describe() for batch in self.batches])
        if self.chains:
            lines += _listing("Chains", [chain.describe() for chain in self.chains])
        raise AssertionError("\n".join(lines))


def _resolve(spec: DispatchSpec, where: str) -> ResolvedJob:
    """Resolve a batch or chain member as `app.composition.batches` does, without SQL.

    Raises:
        ValidationError: prefixed with `where` (`jobs[2]`, `then`, ...).
    """
    if spec.depends_on or spec.unique_for:
        raise ValidationError(f"{where}: depends_on and unique_for are not available inside a batch or chain")
    try:
        return resolve(spec, current.backends().registry.get(spec.job_class), None, get_settings())
    except ValidationError as exc:
        raise ValidationError(f"{where}: {exc}") from exc


def _is_chain(chain: CapturedChain, steps: list[_Expected], catch: _Expected | None) -> bool:
    if len(chain.steps) != len(steps) or not all(e.matches(s) for e, s in zip(steps, chain.steps, strict=True)):
        return False
    return catch is None or (chain.catch is not None and catch.matches(chain.catch))


def _what(job: JobRef, predicate: Callable[..., Any] | None) -> str:
    text = f"[{_expected(job)}]"
    return text + (f" matching {_describe_predicate(predicate)}" if predicate else "")


def _times(n: int) -> str:
    return "once" if n == 1 else f"{n} times"


@contextmanager
def fake_queue() -> Iterator[FakeQueue]:
    """Capture every dispatch inside the block; the previous publisher comes back on exit.

    Nested fakes each capture their own block; the outer one sees nothing of the inner.
    """
    fake = FakeQueue()
    with current.replaced(publisher=fake):
        yield fake
