"""`Idempotency-Key` on the creating endpoints (dispatch, batches, chains): API.md 2026-12.

A handler parses its body, chooses the ids it will create, and hands `answer_once` a
`perform(ids, resumed)` that does the work with those ids. Without the header the work
simply runs. With it, app/services/idempotency.py decides: run (first use), replay the
stored answer (a repeat), 409 (still running), 422 (another body). Only a successful
answer is stored; a request that fails releases the key so that a retry runs again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import jsonify, request

from app.services import idempotency
from ops_ui.errors import backend_outage
from ops_ui.extensions import sql

logger = logging.getLogger(__name__)

HEADER = "Idempotency-Key"
#: Set on an answer that repeats a stored one instead of doing the work again.
REPLAYED_HEADER = "Idempotent-Replayed"


@dataclass(frozen=True)
class Answer:
    """What a creating endpoint answers, and the audit entry that goes with it."""

    status: int
    body: dict[str, Any]
    #: Writes and commits the audit entry (ops_ui.trail.record_action); None for none.
    audit: Callable[[], None] | None = None


Perform = Callable[[dict[str, Any], bool], Answer]


def answer_once(endpoint: str, tenant_id: str, body: dict[str, Any], ids: dict[str, Any], perform: Perform) -> Any:
    """Run `perform(ids, resumed)` at most once per Idempotency-Key (when the request has one).

    Args:
        endpoint: e.g. "POST /api/batches"; keys are per tenant and endpoint.
        body: the parsed request body, compared as canonical JSON with the first use's.
        ids: the ids the work will create, chosen now; a resumed claim brings its own.
        perform: does the work; `resumed` says a request that died held the key, so what
            it created may exist already (answer with it instead of creating it again).

    Raises:
        ValidationError: a malformed key, or the key was used with another body.
        Conflict: a request with the key is still being handled.
    """
    key = request.headers.get(HEADER)
    if key is None:
        return _respond(perform(ids, False), None)
    idempotency.check_key(key)
    outcome = idempotency.claim(
        sql(),
        tenant_id=tenant_id,
        endpoint=endpoint,
        key=key,
        body_hash=idempotency.request_hash(body),
        resource_ids=ids,
    )
    if isinstance(outcome, idempotency.Replay):
        response = jsonify(outcome.body)
        response.status_code = outcome.status
        response.headers[REPLAYED_HEADER] = "true"
        return response
    try:
        answer = perform(outcome.resource_ids, outcome.resumed)
    except BaseException:
        _release(outcome)
        raise
    return _respond(answer, outcome)


def _release(claimed: idempotency.Claim) -> None:
    try:
        idempotency.release(sql(), claimed)
    except Exception as exc:  # the database is down: the claim's lease lets a retry in later
        logger.warning("Idempotency key %s not released (%s)", claimed.row_id, type(exc).__name__)


def _respond(answer: Answer, claimed: idempotency.Claim | None) -> Any:
    """Store the answer and the audit entry, then answer.

    The work is done by now: a database that fails at this point must not turn an
    accepted request into an error, which a client would retry into a duplicate. The
    claim then stays in progress, and a repeat after the lease finds what was created.
    """
    session = sql()
    try:
        if claimed is not None:
            idempotency.complete(session, claimed, answer.status, answer.body)
        if answer.audit is not None:
            answer.audit()
        else:
            session.commit()
    except Exception as exc:
        backend = backend_outage(exc)
        if backend is None:
            raise
        logger.warning(
            "%s %s: done, but its records were not saved: %s is unreachable", request.method, request.path, backend
        )
        try:
            session.rollback()
        except Exception:  # still down: the request's teardown discards the session
            logger.debug("Rollback failed as well", exc_info=True)
    return jsonify(answer.body), answer.status
