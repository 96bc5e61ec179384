"""All models, importable from one place (Alembic's autogenerate reads this)."""

from app.models.api_token import ApiToken
from app.models.audit import AuditLog
from app.models.failure_group import FailureGroup
from app.models.idempotency_key import IdempotencyKey
from app.models.job_batch import JobBatch
from app.models.job_definition import JobDefinition
from app.models.job_execution import (
    LIVE_STATUSES,
    TERMINAL_STATUSES,
    ExecutionStatus,
    JobAttempt,
    JobExecution,
    may_change_status,
)
from app.models.job_schedule import JobSchedule
from app.models.job_stats import JobStatsDay, JobStatsHour, JobStatsMinute, JobStatsTotal
from app.models.queue_settings import QueueSettings
from app.models.schedule_event import ScheduleEvent
from app.models.tenant import Tenant
from app.models.user import User

__all__ = [
    "LIVE_STATUSES",
    "TERMINAL_STATUSES",
    "ApiToken",
    "AuditLog",
    "ExecutionStatus",
    "FailureGroup",
    "IdempotencyKey",
    "JobAttempt",
    "JobBatch",
    "JobDefinition",
    "JobExecution",
    "JobSchedule",
    "JobStatsDay",
    "JobStatsHour",
    "JobStatsMinute",
    "JobStatsTotal",
    "QueueSettings",
    "ScheduleEvent",
    "Tenant",
    "User",
    "may_change_status",
]
