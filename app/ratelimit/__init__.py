"""Global rate limits (J10): Redis-backed limits that hold across every worker.

`RateLimit` is what job classes declare; `gate` enforces limits before an attempt starts;
`queue_limits` holds per-queue limits from configuration and the API.
"""

from app.ratelimit.limits import RateLimit, RateLimitKeyError

__all__ = ["RateLimit", "RateLimitKeyError"]
