"""Console login throttling (U1): failed logins counted per account and per client address.

One attacked account locks only that account; one noisy address (an office behind a proxy)
locks only that address. Unknown e-mails are counted like real ones, so the answers never
reveal which accounts exist. Counters live in Redis (keys in app.redis_keys); no Flask here.
"""

from __future__ import annotations

import contextlib
import hashlib
import ipaddress
import logging
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Literal

import redis

from app import redis_keys
from app.errors import BackendUnavailable
from app.services.auth import normalise_email

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoginLimits:
    """How many failed logins are allowed in a window before logins are refused."""

    #: Failures for one account, from any addresses, before that account is locked.
    account_failures: int = 10
    #: Failures from one client address, across accounts, before that address is locked.
    #: Higher than the account limit: many people may share one address (NAT, a proxy).
    address_failures: int = 50
    #: Seconds from a counter's first failure until it is forgotten, which also ends its lock.
    window_s: int = 15 * 60


#: What the console applies.
DEFAULT_LIMITS = LoginLimits()

Scope = Literal["account", "address"]


@dataclass(frozen=True)
class Lockout:
    """Logins are refused for `scope` for another `retry_after_s` seconds."""

    scope: Scope
    retry_after_s: int

    @property
    def retry_after_min(self) -> int:
        """Whole minutes to wait, rounded up (what a person is told)."""
        return max(1, math.ceil(self.retry_after_s / 60))


#: On success: forget the account's failures, and take this account's own failures from this
#: address off the address count (a user's typos on a shared address are forgiven once they
#: get in; failures against other accounts are not). KEYS: account, address, pair.
_FORGIVE = """
local own = tonumber(redis.call('GET', KEYS[3]) or '0')
redis.call('DEL', KEYS[1], KEYS[3])
if own > 0 then
  local left = tonumber(redis.call('GET', KEYS[2]) or '0') - own
  if left > 0 then redis.call('DECRBY', KEYS[2], own) else redis.call('DEL', KEYS[2]) end
end
return own
"""


def client_key(address: str | None) -> str:
    """The address a client is counted under: IPv4 as is, IPv6 by its /64 network.

    One IPv6 host usually holds a whole /64 and could otherwise take a fresh address for
    every attempt.
    """
    if not address:
        return "unknown"
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address[:100]
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.IPv6Network((ip, 64), strict=False))
    return str(ip)


def account_key(email: str) -> str:
    """The account an e-mail is counted under: a digest, so Redis holds no e-mail addresses."""
    return hashlib.sha256(normalise_email(email).encode()).hexdigest()[:32]


@dataclass(frozen=True)
class _Keys:
    account: str
    address: str
    pair: str

    @classmethod
    def of(cls, email: str, address: str | None) -> _Keys:
        account, client = account_key(email), client_key(address)
        return cls(
            redis_keys.login_account_failures(account),
            redis_keys.login_failures(client),
            redis_keys.login_pair_failures(account, client),
        )


@contextlib.contextmanager
def _redis_errors() -> Iterator[None]:
    try:
        yield
    except redis.RedisError as exc:
        # Fail closed: without the counters nobody can tell a guessing attack from a typo.
        raise BackendUnavailable("logins are paused: the login throttle (Redis) cannot be reached") from exc


class LoginThrottle:
    """Counts failed logins and says when an account or an address is locked."""

    def __init__(self, client: redis.Redis, limits: LoginLimits = DEFAULT_LIMITS) -> None:
        self._client = client
        self._limits = limits

    def lockout(self, email: str, address: str | None) -> Lockout | None:
        """The lock that refuses this login now (the longer one if both apply), or None.

        Raises:
            BackendUnavailable: Redis cannot be reached.
        """
        keys = _Keys.of(email, address)
        with _redis_errors():
            pipe = self._client.pipeline(transaction=False)
            for key in (keys.account, keys.address):
                pipe.get(key)
                pipe.ttl(key)
            account, account_ttl, client, client_ttl = pipe.execute()
        return self._judge(account, account_ttl, client, client_ttl)

    def record_failure(self, email: str, address: str | None) -> Lockout | None:
        """Count a failed login; the lock it started (or one already on), or None.

        A counter's window starts at its first failure and is not extended by later ones, so
        a lock always ends `window_s` after it began to be earned.

        Raises:
            BackendUnavailable: Redis cannot be reached.
        """
        keys = _Keys.of(email, address)
        with _redis_errors():
            pipe = self._client.pipeline(transaction=True)
            for key in (keys.account, keys.address, keys.pair):
                pipe.set(key, 0, ex=self._limits.window_s, nx=True)
                pipe.incr(key)
            pipe.ttl(keys.account)
            pipe.ttl(keys.address)
            results = pipe.execute()
        account, client, account_ttl, client_ttl = results[1], results[3], results[6], results[7]
        lockout = self._judge(account, account_ttl, client, client_ttl)
        just_locked = account == self._limits.account_failures or client == self._limits.address_failures
        if lockout is not None and just_locked:
            logger.warning(
                "Login throttle: %s %s locked for %d s",
                lockout.scope,
                keys.account if lockout.scope == "account" else keys.address,
                lockout.retry_after_s,
            )
        return lockout

    def record_success(self, email: str, address: str | None) -> None:
        """Forget the account's failures and forgive its own failures from this address.

        Raises:
            BackendUnavailable: Redis cannot be reached.
        """
        keys = _Keys.of(email, address)
        with _redis_errors():
            self._client.eval(_FORGIVE, 3, keys.account, keys.address, keys.pair)

    def _judge(self, account: Any, account_ttl: int, client: Any, client_ttl: int) -> Lockout | None:
        found = []
        if int(account or 0) >= self._limits.account_failures:
            found.append(Lockout("account", self._seconds_left(account_ttl)))
        if int(client or 0) >= self._limits.address_failures:
            found.append(Lockout("address", self._seconds_left(client_ttl)))
        return max(found, key=lambda lock: lock.retry_after_s) if found else None

    def _seconds_left(self, ttl: int) -> int:
        # -1: a counter without expiry (never written so here); -2: it expired a moment ago.
        return self._limits.window_s if ttl == -1 else max(ttl, 1)
