"""Fluent batches and chains from code (J5, J6).

    batch([ImportRow(row=1), ImportRow(row=2)]).name("Import").allow_failures(1)
        .then(SendReport(kind="ok")).catch(Alert(msg="import")).finally_(Cleanup()).dispatch()
    chain([Fetch(url=u), Parse(), Store()]).catch(Alert(msg="pipeline")).dispatch()

Members are Job instances (`ImportRow(row=1)`) or `JobClass.on_queue("x").make(row=1)`.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Protocol

from app.backends.current import backends
from app.composition.batches import BatchRequest, create_batch, create_chain
from app.composition.runtime import get_hub
from app.config import get_settings
from app.db import session_scope
from app.jobs.dispatch import JobCall, is_fake
from app.kernel.dispatching import DispatchSpec


class _ToCall(Protocol):
    def to_call(self) -> JobCall: ...


Member = JobCall | _ToCall


def _call(member: Member) -> JobCall:
    return member if isinstance(member, JobCall) else member.to_call()


def _spec(member: Member | None, tenant_id: str | None) -> DispatchSpec | None:
    return None if member is None else _call(member).spec(tenant_id)


@dataclasses.dataclass(frozen=True)
class Dispatched:
    """What a batch or chain dispatch returns: its id and its jobs' ids, in order."""

    id: str
    job_ids: list[str]


@dataclasses.dataclass(frozen=True)
class PendingBatch:
    jobs: tuple[JobCall, ...]
    batch_name: str | None = None
    allowed_failures: int = 0
    then_job: JobCall | None = None
    catch_job: JobCall | None = None
    finally_job: JobCall | None = None
    tenant_id: str | None = None

    def name(self, name: str) -> PendingBatch:
        return dataclasses.replace(self, batch_name=name)

    def allow_failures(self, n: int) -> PendingBatch:
        return dataclasses.replace(self, allowed_failures=n)

    def then(self, job: Member) -> PendingBatch:
        """Runs once when every job succeeded (or failures stayed within the allowance)."""
        return dataclasses.replace(self, then_job=_call(job))

    def catch(self, job: Member) -> PendingBatch:
        """Runs once, on the first failure beyond the allowance."""
        return dataclasses.replace(self, catch_job=_call(job))

    def finally_(self, job: Member) -> PendingBatch:
        """Runs once when every job has finished, whatever the outcome."""
        return dataclasses.replace(self, finally_job=_call(job))

    def for_tenant(self, tenant_id: str) -> PendingBatch:
        return dataclasses.replace(self, tenant_id=tenant_id)

    def dispatch(self) -> Dispatched:
        """Validate everything, then queue; nothing is queued if anything is invalid.

        Raises:
            ValidationError: empty or oversized batch, or a bad job or callback.
        """

        tenant = self.tenant_id or get_settings().default_tenant
        request = BatchRequest(
            tenant_id=tenant,
            jobs=[call.spec(tenant) for call in self.jobs],
            name=self.batch_name,
            allow_failures=self.allowed_failures,
            then=_spec(self.then_job, tenant),
            catch=_spec(self.catch_job, tenant),
            finally_=_spec(self.finally_job, tenant),
        )
        used = backends()
        publisher = used.publisher
        if is_fake(publisher):
            return publisher.capture_batch(request)  # type: ignore[attr-defined,no-any-return]
        settings = get_settings()
        with session_scope() as session:
            created = create_batch(
                session, request, registry=used.registry, publisher=publisher, settings=settings, hub=get_hub(settings)
            )
        return Dispatched(created.id, created.job_ids)


@dataclasses.dataclass(frozen=True)
class PendingChain:
    jobs: tuple[JobCall, ...]
    chain_name: str | None = None
    catch_job: JobCall | None = None
    tenant_id: str | None = None

    def name(self, name: str) -> PendingChain:
        return dataclasses.replace(self, chain_name=name)

    def catch(self, job: Member) -> PendingChain:
        """Runs once if a step fails; the steps after it are cancelled."""
        return dataclasses.replace(self, catch_job=_call(job))

    def for_tenant(self, tenant_id: str) -> PendingChain:
        return dataclasses.replace(self, tenant_id=tenant_id)

    def dispatch(self) -> Dispatched:
        """Queue the first step; each next one receives `previous_result`.

        Raises:
            ValidationError: empty or oversized chain, or a bad step.
        """

        tenant = self.tenant_id or get_settings().default_tenant
        steps = [call.spec(tenant) for call in self.jobs]
        catch = _spec(self.catch_job, tenant)
        used = backends()
        publisher = used.publisher
        if is_fake(publisher):
            return publisher.capture_chain(steps, catch, self.chain_name)  # type: ignore[attr-defined,no-any-return]
        settings = get_settings()
        with session_scope() as session:
            created = create_chain(
                session,
                tenant,
                steps,
                catch,
                self.chain_name,
                registry=used.registry,
                publisher=publisher,
                settings=settings,
                hub=get_hub(settings),
            )
        return Dispatched(created.id, created.job_ids)


def batch(jobs: list[Any]) -> PendingBatch:
    """Start describing a batch of `jobs` (Job instances or JobCalls)."""
    return PendingBatch(tuple(_call(job) for job in jobs))


def chain(jobs: list[Any]) -> PendingChain:
    """Start describing a chain of `jobs`, run one after another."""
    return PendingChain(tuple(_call(job) for job in jobs))
