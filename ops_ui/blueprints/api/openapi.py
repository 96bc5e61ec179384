"""GET /api/openapi.json: the OpenAPI 3 document of what this version serves."""

from __future__ import annotations

from typing import Any

from flask import Response, jsonify

from app import __version__
from ops_ui.auth import api_auth
from ops_ui.blueprints.api import bp
from ops_ui.blueprints.api.workers import openapi_paths as control_paths  # queues and workers (W2)

_PROBLEM = {"$ref": "#/components/responses/Problem"}
#: A 503 also says when to try again (R2).
_UNAVAILABLE = {"$ref": "#/components/responses/Unavailable"}
#: Idempotency-Key on dispatch, batches and chains (R2; docs/api.md).
_IDEMPOTENCY_KEY = {"$ref": "#/components/parameters/IdempotencyKey"}
_REPLAYED = {
    "Idempotent-Replayed": {
        "description": "true when this is the stored answer to an earlier request with the same key",
        "schema": {"type": "string", "enum": ["true"]},
    }
}


def _errors(*codes: int) -> dict[str, Any]:
    return {str(code): _UNAVAILABLE if code == 503 else _PROBLEM for code in codes}


_JOB = {
    "type": "object",
    "properties": {
        name: {"type": kind}
        for name, kind in {
            "id": "string",
            "job_class": "string",
            "queue": "string",
            "priority": "integer",
            "status": "string",
            "attempts": "integer",
            "max_attempts": "integer",
            "error_message": "string",
            "exception_trace": "string",
            "worker_id": "string",
            "execution_time_ms": "integer",
            "memory_usage_mb": "number",
            "tags": "array",
            "tenant_id": "string",
            "batch_id": "string",
            "created_at": "string",
            "started_at": "string",
            "completed_at": "string",
            "failed_at": "string",
        }.items()
    },
}
_DISPATCH = {
    "type": "object",
    "required": ["job_class"],
    "properties": {
        "job_class": {"type": "string", "example": "demo.echo"},
        "payload": {"type": "object"},
        "options": {
            "type": "object",
            "properties": {
                "queue": {"type": "string"},
                "priority": {"type": "integer", "minimum": 0, "maximum": 9},
                "delay": {
                    "type": "number",
                    "minimum": 0,
                    "description": "seconds; at most CELERIAC_MAX_DELAY_S",
                },
                "max_attempts": {"type": "integer", "minimum": 1},
                "backoff": {"type": "array", "items": {"type": "integer"}},
                "timeout": {"type": "integer", "minimum": 1},
                "tags": {"type": "array", "items": {"type": "string"}},
                "depends_on": {
                    "type": "array",
                    "items": {"type": "string"},
                    "description": "job ids that must complete first; a failed or cancelled one cancels this job",
                },
                "unique_for": {
                    "type": "integer",
                    "minimum": 1,
                    "description": "seconds; a twin dispatch while this job is live answers 200 with its id",
                },
                "unique_id": {"type": "string", "description": "identity for unique_for (default: the payload)"},
                "encrypted": {"type": "boolean", "description": "payload and result Fernet-encrypted"},
                "expires": {
                    "type": "number",
                    "minimum": 1,
                    "description": "seconds after its due time when the job is no longer run (cancelled)",
                },
            },
        },
    },
}

_JOB_LIST = {"type": "array", "items": _DISPATCH, "minItems": 1}
_BATCH_BODY: dict[str, Any] = {
    "type": "object",
    "required": ["jobs"],
    "properties": {
        "name": {"type": "string"},
        "jobs": _JOB_LIST,
        "allow_failures": {"type": "integer", "minimum": 0},
        "then": _DISPATCH,
        "catch": _DISPATCH,
        "finally": _DISPATCH,
    },
}
_CHAIN_BODY = {
    "type": "object",
    "required": ["jobs"],
    "properties": {"name": {"type": "string"}, "jobs": {"type": "array", "items": _DISPATCH}, "catch": _DISPATCH},
}


def _group_paths() -> dict[str, Any]:
    """Batches and chains (J5, J6)."""
    group_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}

    def post(summary: str, code: str, body: Any = None, *errors: int) -> dict[str, Any]:
        operation: dict[str, Any] = {
            "summary": summary,
            "responses": {code: {"description": summary}, **_errors(401, 403, 404, *errors)},
        }
        if body is not None:
            operation["requestBody"] = {"content": {"application/json": {"schema": body}}}
        return {"post": operation}

    def get(summary: str) -> dict[str, Any]:
        return {
            "get": {
                "summary": summary,
                "parameters": [group_id],
                "responses": {"200": {"description": summary}, **_errors(401, 404)},
            }
        }

    def with_id(item: dict[str, Any]) -> dict[str, Any]:
        item["post"]["parameters"] = [group_id]
        return item

    batches = post("Dispatch a batch (all or nothing)", "201", _BATCH_BODY, 400, 409, 413, 422, 503)
    chains = post("Dispatch a chain", "201", _CHAIN_BODY, 400, 409, 413, 422, 503)
    for created in (batches, chains):
        created["post"]["parameters"] = [_IDEMPOTENCY_KEY]
        created["post"]["responses"]["201"]["headers"] = _REPLAYED
    return {
        "/api/batches": batches,
        "/api/batches/{id}": get("Batch status, counts and progress"),
        "/api/batches/{id}/jobs": with_id(
            post(
                "Add jobs to a running batch",
                "201",
                {"type": "object", "properties": {"jobs": _JOB_LIST}},
                400,
                409,
                422,
            )
        ),
        "/api/batches/{id}/cancel": with_id(post("Cancel a batch and its pending jobs", "200", None, 409)),
        "/api/chains": chains,
        "/api/chains/{id}": get("Chain status, current step and progress"),
        "/api/chains/{id}/cancel": with_id(post("Cancel a chain's running and waiting steps", "200", None, 409)),
    }


def _schedule_paths() -> dict[str, Any]:
    """Schedules (S1-S3): API.md's routes, plus pause, resume and history (extensions)."""
    schedule_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    cron = {
        "type": "string",
        "example": "30 2 * * *",
        "description": "5 fields (minute hour day-of-month month day-of-week), or 6 with a leading "
        "seconds field; @hourly, @daily, @weekly, @monthly, @yearly",
    }
    zone = {"type": "string", "default": "UTC", "example": "Europe/Berlin", "description": "IANA time zone"}
    fields = {
        "job_class": {"type": "string", "example": "demo.echo"},
        "cron": cron,
        "timezone": zone,
        "payload": {"type": "object"},
        "active": {"type": "boolean", "default": True},
        "name": {"type": "string", "maxLength": 200},
        "missed_fire_policy": {
            "type": "string",
            "enum": ["skip", "run_once"],
            "default": "skip",
            "description": "ticks missed while beat was down: skipped, or one catch-up run",
        },
    }
    schedule = {
        "type": "object",
        "properties": {
            **fields,
            "id": {"type": "string"},
            "description": {"type": "string", "example": "At 02:30"},
            "next_run_at": {"type": "string", "format": "date-time", "nullable": True},
            "last_run_at": {"type": "string", "format": "date-time", "nullable": True},
            "tenant_id": {"type": "string"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
        },
    }

    def body(schema: dict[str, Any]) -> dict[str, Any]:
        return {"content": {"application/json": {"schema": schema}}}

    def answer(description: str, schema: dict[str, Any] | None = None) -> dict[str, Any]:
        if schema is None:
            return {"description": description}
        return {"description": description, "content": {"application/json": {"schema": schema}}}

    def admin_action(summary: str) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "parameters": [schedule_id],
                "responses": {"200": answer("the schedule", schedule), **_errors(401, 403, 404, 503)},
            }
        }

    return {
        "/api/schedules/preview": {
            "post": {
                "summary": "Describe a cron expression and list its next 5 run times in the zone (viewer)",
                "requestBody": body(
                    {"type": "object", "required": ["cron"], "properties": {"cron": cron, "timezone": zone}}
                ),
                "responses": {
                    "200": answer(
                        "description and next_runs (ISO 8601 with the zone's offset)",
                        {
                            "type": "object",
                            "properties": {
                                "description": {"type": "string"},
                                "next_runs": {"type": "array", "items": {"type": "string", "format": "date-time"}},
                            },
                        },
                    ),
                    **_errors(400, 401, 422),
                },
            }
        },
        "/api/schedules": {
            "get": {
                "summary": "The tenant's schedules (viewer); ?active=true|false filters",
                "parameters": [
                    {"name": "active", "in": "query", "schema": {"type": "string", "enum": ["true", "false"]}}
                ],
                "responses": {
                    "200": answer(
                        "items", {"type": "object", "properties": {"items": {"type": "array", "items": schedule}}}
                    ),
                    **_errors(401, 422),
                },
            },
            "post": {
                "summary": "Create a schedule and its RedBeat entry (admin)",
                "requestBody": body({"type": "object", "required": ["job_class", "cron"], "properties": fields}),
                "responses": {"201": answer("the schedule", schedule), **_errors(400, 401, 403, 413, 422, 503)},
            },
        },
        "/api/schedules/{id}": {
            "parameters": [schedule_id],
            "get": {"responses": {"200": answer("the schedule", schedule), **_errors(401, 404)}},
            "patch": {
                "summary": "Change any of the fields (admin); takes effect without restarting beat",
                "requestBody": body({"type": "object", "properties": fields}),
                "responses": {"200": answer("the schedule", schedule), **_errors(400, 401, 403, 404, 422, 503)},
            },
            "delete": {
                "summary": "Delete the schedule and its entry (admin); its runs stay in job history",
                "responses": {"204": answer("deleted"), **_errors(401, 403, 404, 503)},
            },
        },
        "/api/schedules/{id}/run": {
            "post": {
                "summary": "Dispatch the schedule's job now (operator); its ticks are unchanged",
                "parameters": [schedule_id],
                "responses": {
                    "201": answer(
                        "the job: id and job_id (the same), schedule_id, status pending",
                        {
                            "type": "object",
                            "properties": {k: {"type": "string"} for k in ("id", "job_id", "schedule_id", "status")},
                        },
                    ),
                    **_errors(401, 403, 404, 422, 503),
                },
            }
        },
        "/api/schedules/{id}/pause": admin_action("Pause (admin): no fires until resumed; next_run_at null"),
        "/api/schedules/{id}/resume": admin_action(
            "Resume (admin) from the next tick; paused ticks are not missed fires"
        ),
        "/api/schedules/{id}/history": {
            "get": {
                "summary": "Runs (newest first), missed and refused fires, counts by outcome (viewer)",
                "parameters": [
                    schedule_id,
                    {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}},
                ],
                "responses": {
                    "200": answer(
                        "schedule_id, counts {runs, by_status, failed, missed, refused}, runs, events",
                        {
                            "type": "object",
                            "properties": {
                                "schedule_id": {"type": "string"},
                                "counts": {"type": "object"},
                                "runs": {"type": "array", "items": {"type": "object"}},
                                "events": {
                                    "type": "array",
                                    "items": {
                                        "type": "object",
                                        "properties": {
                                            "kind": {"type": "string", "enum": ["missed", "refused"]},
                                            "tick_at": {"type": "string", "format": "date-time"},
                                            "last_tick_at": {"type": "string", "format": "date-time"},
                                            "count": {"type": "integer"},
                                            "action": {
                                                "type": "string",
                                                "enum": ["skipped", "ran_once"],
                                                "nullable": True,
                                            },
                                            "job_id": {"type": "string", "nullable": True},
                                            "detail": {"type": "string", "nullable": True},
                                        },
                                    },
                                },
                            },
                        },
                    ),
                    **_errors(401, 404, 422),
                },
            }
        },
    }


def _performance_paths() -> dict[str, Any]:
    """Per-class performance (M6), from the per-minute aggregates."""
    return {
        "/api/monitoring/performance": {
            "get": {
                "summary": "Per job class: completed, failed, success rate, throughput, avg/p95 runtime, "
                "memory, recommendations",
                "parameters": [{"name": "hours", "in": "query", "schema": {"type": "number", "default": 1}}],
                "responses": {"200": {"description": "classes and recommendations"}, **_errors(401, 422)},
            }
        },
        "/api/admin/queue/stats": {
            "get": {
                "summary": "Stats of every queue the tenant used (as /api/jobs/queue/{name}/stats)",
                "responses": {"200": {"description": "{queues: [...]}"}, **_errors(401)},
            }
        },
        "/api/admin/queue/health": {
            "get": {
                "summary": "healthy / warning / critical, with issues and recommendations",
                "responses": {"200": {"description": "{status, issues, recommendations}"}, **_errors(401)},
            }
        },
        "/api/admin/queue/metrics": {
            "get": {
                "summary": "The figures of /metrics as JSON counters and gauges",
                "responses": {"200": {"description": "{counters, gauges}"}, **_errors(401)},
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus text exposition: jobs finished, runtime histogram, live jobs, queue depth, "
                "oldest pending age, recorder lag and backlog",
                "responses": {"200": {"description": "text/plain; version=0.0.4"}, **_errors(401)},
            }
        },
    }


def _failure_paths() -> dict[str, Any]:
    """Failure reports, fingerprint groups and dead-letter queue actions (F2, F4)."""
    fields_schema: dict[str, Any] = {
        "queue": {"type": "string"},
        "older_than": {"type": "string", "description": "ISO 8601 date or time; only jobs failed before it"},
    }

    def action(summary: str, role: str, answer: str, fields: list[str], *errors: int) -> dict[str, Any]:
        schema = {
            "type": "object",
            "required": ["queue"],
            "properties": {f: fields_schema[f] for f in fields},
        }
        return {
            "post": {
                "summary": f"{summary} ({role}; audited). 404: no job of the tenant was ever recorded on the queue",
                "requestBody": {"content": {"application/json": {"schema": schema}}},
                "responses": {"200": {"description": answer}, **_errors(400, 401, 403, 404, *errors)},
            }
        }

    query = [
        {"name": n, "in": "query", "schema": {"type": "string"}, "description": d}
        for n, d in (
            ("job_class", "groups in which this class failed"),
            ("since", "ISO 8601; groups last seen at or after it"),
            ("limit", "1-200, default 50"),
            ("cursor", "next_cursor of the previous page"),
        )
    ]
    return {
        "/api/jobs/{id}/failure-report": {
            "get": {
                "summary": "Exception, traceback, attempts timeline, fingerprint, similar_failures_count and group",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "the report"},
                    **_errors(401, 404, 409),
                },
            }
        },
        "/api/monitoring/failures": {
            "get": {
                "summary": "Fingerprint groups, newest first: count, first/last seen, job classes, sample ids",
                "parameters": query,
                "responses": {"200": {"description": "items and next_cursor"}, **_errors(401, 422)},
            }
        },
        "/api/admin/queue/retry": action(
            "Retry every failed job of the queue not retried yet, as new executions with retry_of",
            "operator",
            "{retried, skipped}",
            ["queue"],
            503,
        ),
        "/api/admin/queue/clear": action(
            "Delete the queue's failed jobs, optionally only those failed before older_than",
            "admin",
            "{cleared}",
            ["queue", "older_than"],
            422,
        ),
    }


def _monitoring_paths() -> dict[str, Any]:
    """Worker registry, stuck and slow jobs (M2, M3); viewer reads."""
    limit = [{"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 200}}]
    job_fields = ["id", "job_class", "queue", "status", "tenant_id", "worker_id", "started_at", "reasons"]

    def jobs(summary: str, extra: list[str]) -> dict[str, Any]:
        item = {"type": "object", "properties": {f: {} for f in job_fields + extra}}
        schema = {"type": "object", "properties": {"items": {"type": "array", "items": item}}}
        return {
            "get": {
                "summary": summary,
                "parameters": limit,
                "responses": {
                    "200": {"description": "items", "content": {"application/json": {"schema": schema}}},
                    **_errors(401, 422),
                },
            }
        }

    worker_fields = ["hostname", "status", "last_heartbeat", "pool_size", "active", "processed", "queues"]
    worker_fields += ["pid", "load_average", "memory_mb", "started_at", "stopped_at"]
    worker = {"type": "object", "properties": {f: {} for f in worker_fields}}
    workers = {"type": "object", "properties": {"workers": {"type": "array", "items": worker}}}
    return {
        "/api/admin/queue/workers": {
            "get": {
                "summary": "Workers from their heartbeats: online, and offline ones for CELERIAC_WORKER_FORGET_AFTER_S "
                "(any tenant's token: workers are shared)",
                "responses": {
                    "200": {
                        "description": "workers by hostname",
                        "content": {"application/json": {"schema": workers}},
                    },
                    **_errors(401),
                },
            }
        },
        "/api/monitoring/stuck": jobs(
            "The tenant's processing jobs past timeout + grace (past_timeout) or on an offline worker "
            "(worker_offline), longest running first",
            ["running_s", "timeout_s", "worker_status"],
        ),
        "/api/monitoring/slow": jobs(
            "The tenant's running, then recently finished, jobs past a multiple of their class's p95 "
            "(past_p95) or near their timeout (near_timeout)",
            ["runtime_ms", "class_p95_ms", "timeout_s"],
        ),
    }


def _definition_paths() -> dict[str, Any]:
    from ops_ui.blueprints.api.definitions import openapi_paths

    return openapi_paths()


def document() -> dict[str, Any]:
    job_id = {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
    return {
        "openapi": "3.0.3",
        "info": {"title": "Celeriac API", "version": __version__},
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": {"security": [], "responses": {"200": {"description": "up"}}}},
            "/api/jobs/dispatch": {
                "post": {
                    "summary": "Dispatch a job",
                    "parameters": [_IDEMPOTENCY_KEY],
                    "requestBody": {"content": {"application/json": {"schema": _DISPATCH}}},
                    "responses": {
                        "201": {"description": "queued", "headers": _REPLAYED},
                        "200": {"description": "a unique job's live twin (nothing queued)"},
                        **_errors(400, 401, 403, 409, 413, 422, 503),
                    },
                }
            },
            "/api/jobs": {
                "get": {
                    "summary": "List jobs, newest first (keyset pagination)",
                    "parameters": [
                        {"name": n, "in": "query", "schema": {"type": "string"}}
                        for n in ("status", "queue", "job_class", "limit", "cursor")
                    ],
                    "responses": {"200": {"description": "items and next_cursor"}, **_errors(401, 422)},
                }
            },
            "/api/jobs/{id}": {
                "get": {
                    "parameters": [job_id],
                    "responses": {
                        "200": {"description": "the job", "content": {"application/json": {"schema": _JOB}}},
                        **_errors(401, 404),
                    },
                }
            },
            "/api/jobs/{id}/retry": {
                "post": {
                    "parameters": [job_id],
                    "responses": {"202": {"description": "retry queued"}, **_errors(401, 403, 404, 409)},
                }
            },
            "/api/jobs/{id}/cancel": {
                "post": {
                    "parameters": [job_id],
                    "responses": {"200": {"description": "cancelled"}, **_errors(401, 403, 404, 409)},
                }
            },
            "/api/jobs/queue/{name}/stats": {
                "get": {
                    "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                    "responses": {"200": {"description": "queue statistics"}, **_errors(401, 404)},
                }
            },
            "/api/queues/{name}/rate-limit": {
                "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}}],
                "get": {
                    "summary": "A queue's global rate limit: {queue, limit, per, source: config|api|null}",
                    "responses": {"200": {"description": "the limit (nulls: none)"}, **_errors(401, 422)},
                },
                "put": {
                    "summary": "Set a queue's global rate limit (admin); wins over CELERIAC_QUEUE_RATE_LIMITS",
                    "requestBody": {
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "object",
                                    "required": ["limit", "per"],
                                    "properties": {
                                        "limit": {"type": "integer", "minimum": 1},
                                        "per": {"type": "integer", "minimum": 1, "description": "seconds"},
                                    },
                                }
                            }
                        }
                    },
                    "responses": {"200": {"description": "the new limit"}, **_errors(400, 401, 403, 422)},
                },
                "delete": {
                    "summary": "Remove the API-set limit (admin); a configured one applies again",
                    "responses": {"204": {"description": "removed"}, **_errors(401, 403, 422)},
                },
            },
            **_group_paths(),
            **_schedule_paths(),
            **_failure_paths(),
            **_performance_paths(),
            **control_paths(),
            **_definition_paths(),
        },
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "parameters": {
                "IdempotencyKey": {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": (
                        "A repeat with the same key and body within 24 h returns the first answer and queues "
                        "nothing; another body answers 422; a repeat while the first runs answers 409"
                    ),
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[\\x20-\\x7E]+$"},
                }
            },
            "responses": {
                "Unavailable": {
                    "description": "SQL or Redis is unreachable (application/problem+json); try again later",
                    "headers": {"Retry-After": {"description": "seconds", "schema": {"type": "integer"}}},
                    "content": {"application/problem+json": {"schema": {"type": "object"}}},
                },
                "Problem": {
                    "description": "application/problem+json",
                    "content": {
                        "application/problem+json": {
                            "schema": {
                                "type": "object",
                                "properties": {k: {"type": "string"} for k in ("type", "title", "detail")}
                                | {"status": {"type": "integer"}},
                            }
                        }
                    },
                }
            },
        },
    }


@bp.get("/openapi.json")
@api_auth("viewer")
def openapi() -> Response:
    return jsonify(document())
