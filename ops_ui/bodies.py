"""Request bodies: read at most the size limit, and throw away what a request left unread.

Why the second part: an answer sent before the body was read (413, 401) reaches a client
that is still sending only if the server keeps reading. A server that closes with unread
bytes makes the kernel reset the connection, and the client sees a network error instead
of the answer. So the rest of the body is read and discarded before the answer goes out,
up to a bound; past it the connection is closed.
"""

from __future__ import annotations

import logging
from typing import IO, Any

from flask import Response, current_app, g, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wsgi import get_input_stream

logger = logging.getLogger(__name__)

#: Bytes read at a time while discarding a body.
_CHUNK = 64 * 1024
#: Discard at most this many times the size limit (and at least 16 MiB) before closing.
DISCARD_LIMIT_FACTOR = 16
DISCARD_LIMIT_MIN = 16 * 1024 * 1024


def read_limited(limit: int) -> bytes:
    """The request body, refused past `limit` bytes (chunked bodies too).

    Raises:
        RequestEntityTooLarge: the body is over `limit` bytes.
    """
    # Read one byte past the limit: a chunked body has no Content-Length to check first
    # (and request.stream would silently cut a chunked body at the limit).
    stream = get_input_stream(request.environ, max_content_length=limit + 1)
    g.body_stream = stream  # what is left unread is discarded after the answer is built
    raw = stream.read(limit + 1)
    if len(raw) > limit:
        raise RequestEntityTooLarge(f"the body is over the {limit}-byte limit")
    return bytes(raw)


def _unread_stream() -> IO[bytes] | None:
    """Where the rest of this request's body can be read from without blocking."""
    environ = request.environ
    if request.content_length is None:
        # Chunked (or no body): only a server that marks the end lets us read to it.
        return environ["wsgi.input"] if environ.get("wsgi.input_terminated") else None
    # A stream that already read part of the body knows how much is left; a fresh one
    # (nothing read yet) stops at Content-Length.
    stream: Any = g.get("body_stream") or request.__dict__.get("stream")
    return stream if stream is not None else get_input_stream(environ, max_content_length=None)


def _discard(stream: IO[bytes], budget: int) -> bool:
    """Read and drop up to `budget` bytes; True when the body ended within it."""
    while budget > 0:
        chunk = stream.read(min(_CHUNK, budget))
        if not chunk:
            return True
        budget -= len(chunk)
    return not stream.read(1)


def discard_unread_body(response: Response) -> Response:
    """after_request hook: read what is left of the body so the client can read the answer."""
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return response
    limit = int(current_app.config["MAX_CONTENT_LENGTH"] or 0)
    budget = max(limit * DISCARD_LIMIT_FACTOR, DISCARD_LIMIT_MIN)
    try:
        stream = _unread_stream()
        finished = True if stream is None else _discard(stream, budget)
    except (OSError, ValueError, HTTPException):  # the client went away, or sent a broken chunk
        finished = False
    if not finished:
        logger.info("%s %s: body past %d bytes left unread; closing", request.method, request.path, budget)
        response.headers["Connection"] = "close"
    return response
