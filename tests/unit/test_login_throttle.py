"""Login throttling per account and per client address (U1), with real Redis and the console.

One attacked account locks only that account; one noisy address locks only that address;
behind a trusted proxy the client address is the forwarded one, and without one a client
cannot pick its own address with X-Forwarded-For.
"""

from __future__ import annotations

import dataclasses
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import redis

from app import redis_keys
from app.db import db
from app.errors import BackendUnavailable
from app.models import AuditLog
from app.services import login_throttle
from app.services.auth import create_user
from app.services.login_throttle import LoginLimits, LoginThrottle, account_key, client_key
from tests.conftest import _forget_cached_csrf, page_csrf_token

PASSWORD = "correct horse battery"
#: Addresses these tests fail logins from; their counters are cleared around every test.
ADDRESSES = ("127.0.0.1", "198.51.100.1", "198.51.100.2", "203.0.113.5", "203.0.113.6")
WRONG = "E-mail or password is wrong."


@pytest.fixture(autouse=True)
def _clean_address_counters(redis_client: Any) -> Iterator[None]:
    """The test client's address is shared with every console test: never leave it locked."""
    keys = [redis_keys.login_failures(address) for address in ADDRESSES]
    redis_client.delete(*keys)
    yield
    redis_client.delete(*keys)


def _email(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:10]}@example.com"


def _user(name: str) -> str:
    email = _email(name)
    create_user(db.session, email, PASSWORD, "viewer", "acme")
    db.session.commit()
    return email


def _login(client: Any, email: str, password: str = PASSWORD, **kwargs: Any) -> Any:
    _forget_cached_csrf()  # the test's app context is shared by every client
    token = page_csrf_token(client.get("/login").get_data(as_text=True))
    _forget_cached_csrf()
    return client.post("/login", data={"email": email, "password": password, "csrf_token": token}, **kwargs)


def _forwarded(address: str) -> dict[str, str]:
    return {"X-Forwarded-For": address}


def _error(answer: Any) -> str:
    return str(answer.get_data(as_text=True))


@pytest.fixture()
def proxied_app(app: Any) -> Iterator[Any]:
    """The console as deployed behind one proxy hop (CELERIAC_TRUSTED_PROXIES=1)."""
    from ops_ui import create_app

    settings = dataclasses.replace(app.extensions["celeriac_settings"], trusted_proxies=1)
    behind_proxy = create_app({"TESTING": True, "WTF_CSRF_ENABLED": True}, settings=settings)
    with behind_proxy.app_context():
        yield behind_proxy


@pytest.fixture()
def small_address_limit(monkeypatch: pytest.MonkeyPatch) -> LoginLimits:
    """An address limit of 12 instead of 50, so HTTP tests need fewer password checks (each
    costs a deliberate ~0.1 s); the default of 50 is proven against the service below."""
    limits = LoginLimits(address_failures=12)
    monkeypatch.setattr(login_throttle, "DEFAULT_LIMITS", limits)
    return limits


# --- Through the console -------------------------------------------------------------------


def test_ten_wrong_passwords_lock_alice_but_bob_on_the_same_address_still_logs_in(app: Any) -> None:
    alice, bob = _user("alice"), _user("bob")
    client = app.test_client()
    for _ in range(10):
        answer = _login(client, alice, "wrong")
        assert answer.status_code == 401 and WRONG in _error(answer)

    locked = _login(client, alice)  # even the right password, for a while

    assert locked.status_code == 429
    assert "Too many failed attempts for this account. Try again in 15 minutes." in _error(locked)
    assert 0 < int(locked.headers["Retry-After"]) <= 15 * 60
    assert _login(app.test_client(), bob).status_code == 302
    assert _login(app.test_client(), alice, environ_base={"REMOTE_ADDR": "198.51.100.1"}).status_code == 429
    reasons = [row.reason for row in db.session.query(AuditLog).filter_by(actor=f"login:{alice}").all()]
    assert len(reasons) == 12 and reasons.count("account locked: too many failed attempts") == 2


def test_an_unknown_email_is_answered_exactly_like_a_known_one(app: Any) -> None:
    """No account enumeration: the same statuses and messages, and the lock, for both."""
    answers = {}
    for email in (_user("known"), _email("nobody")):
        client = app.test_client()
        seen = [_login(client, email, "wrong") for _ in range(11)]
        answers[email.split("-")[0]] = [(a.status_code, WRONG in _error(a), "this account" in _error(a)) for a in seen]
    assert answers["known"] == answers["nobody"]
    assert answers["nobody"][-1] == (429, False, True)


def test_behind_a_trusted_proxy_each_forwarded_address_is_counted_and_locked_alone(
    proxied_app: Any, small_address_limit: LoginLimits, redis_client: Any
) -> None:
    bob, client = _user("bob"), proxied_app.test_client()
    for _ in range(3):
        assert _login(client, _email("guess"), "wrong", headers=_forwarded("203.0.113.6")).status_code == 401
    for _ in range(small_address_limit.address_failures):  # across accounts, so no account lock
        assert _login(client, _email("guess"), "wrong", headers=_forwarded("203.0.113.5")).status_code == 401

    locked = _login(client, bob, headers=_forwarded("203.0.113.5"))

    assert locked.status_code == 429 and "from your network address" in _error(locked)
    assert int(redis_client.get(redis_keys.login_failures("203.0.113.5"))) == small_address_limit.address_failures
    assert int(redis_client.get(redis_keys.login_failures("203.0.113.6"))) == 3
    assert redis_client.get(redis_keys.login_failures("127.0.0.1")) is None  # the proxy itself
    # Another client behind the same proxy is not locked out.
    assert _login(proxied_app.test_client(), bob, headers=_forwarded("203.0.113.6")).status_code == 302
    row = db.session.query(AuditLog).filter_by(actor=f"login:{bob}", outcome="denied").one()
    assert row.ip == "203.0.113.5"


def test_without_trusted_proxies_x_forwarded_for_is_ignored(app: Any, small_address_limit: LoginLimits) -> None:
    """A client cannot pick a new address per attempt to escape the address limit."""
    bob, client = _user("bob"), app.test_client()
    for n in range(small_address_limit.address_failures):
        forged = _forwarded(f"198.18.0.{n}")
        assert _login(client, _email("guess"), "wrong", headers=forged).status_code == 401

    locked = _login(app.test_client(), bob, headers=_forwarded("198.18.1.1"))

    assert locked.status_code == 429 and "from your network address" in _error(locked)
    assert _login(app.test_client(), bob, environ_base={"REMOTE_ADDR": "198.51.100.2"}).status_code == 302


def test_the_login_page_states_the_limits(client: Any) -> None:
    page = " ".join(client.get("/login").get_data(as_text=True).split())
    assert "After 10 failed attempts an account is locked for up to 15 minutes" in page
    assert "after 50 from one network address" in page


def test_logins_answer_503_not_500_when_redis_is_down(app: Any) -> None:
    """Fail closed: without its counters the throttle cannot tell an attack from a typo."""
    from ops_ui import create_app

    settings = dataclasses.replace(app.extensions["celeriac_settings"], redis_url="redis://127.0.0.1:1/0")
    down = create_app({"TESTING": True, "WTF_CSRF_ENABLED": True}, settings=settings)
    with down.app_context():
        answer = _login(down.test_client(), _user("bob"))
    assert answer.status_code == 503 and "login throttle (Redis) cannot be reached" in _error(answer)


# --- The throttle itself, at its default limits ----------------------------------------------


@pytest.fixture()
def throttle(redis_client: Any) -> LoginThrottle:
    return LoginThrottle(redis_client)


def test_an_account_locks_after_ten_failures_from_any_addresses(throttle: LoginThrottle) -> None:
    victim = _email("victim")
    for n in range(9):
        assert throttle.record_failure(victim, f"192.0.2.{n}") is None
    started = throttle.record_failure(victim, "192.0.2.200")
    assert started is not None and started.scope == "account" and started.retry_after_min == 15
    lock = throttle.lockout(victim.upper() + " ", "192.0.2.201")  # the same account however typed
    assert lock is not None and lock.scope == "account"
    assert throttle.lockout(_email("other"), "192.0.2.200") is None


def test_an_address_locks_after_fifty_failures_across_accounts(throttle: LoginThrottle, redis_client: Any) -> None:
    address = "192.0.2.77"
    try:
        for _ in range(49):
            assert throttle.record_failure(_email("spray"), address) is None
        started = throttle.record_failure(_email("spray"), address)
        assert started is not None and started.scope == "address"
        lock = throttle.lockout(_email("anyone"), address)
        assert lock is not None and lock.scope == "address" and 0 < lock.retry_after_s <= 15 * 60
        assert throttle.lockout(_email("anyone"), "192.0.2.78") is None
    finally:
        redis_client.delete(redis_keys.login_failures(address))


def test_success_forgives_only_the_users_own_failures_on_the_address(
    throttle: LoginThrottle, redis_client: Any
) -> None:
    alice, bob, address = _email("alice"), _email("bob"), "192.0.2.90"
    try:
        for _ in range(4):
            throttle.record_failure(alice, address)
        for _ in range(3):
            throttle.record_failure(bob, address)
        throttle.record_success(alice, address)
        assert int(redis_client.get(redis_keys.login_failures(address))) == 3  # bob's stay
        assert redis_client.get(redis_keys.login_account_failures(account_key(alice))) is None
        assert int(redis_client.get(redis_keys.login_account_failures(account_key(bob)))) == 3
    finally:
        redis_client.delete(redis_keys.login_failures(address))


def test_a_lock_is_not_extended_by_further_attempts(throttle: LoginThrottle, redis_client: Any) -> None:
    """The window runs from the first failure: hammering a locked account does not keep it locked."""
    victim = _email("victim")
    key = redis_keys.login_account_failures(account_key(victim))
    throttle.record_failure(victim, "192.0.2.1")
    redis_client.expire(key, 100)  # as if the first failure were 800 s old
    throttle.record_failure(victim, "192.0.2.1")
    assert 0 < redis_client.ttl(key) <= 100


def test_the_counters_hold_no_email_address(throttle: LoginThrottle, redis_client: Any) -> None:
    victim = _email("private")
    throttle.record_failure(victim, "192.0.2.5")
    try:
        names = [key.decode() for key in redis_client.scan_iter(match="celeriac:login:*")]
        assert names and not any("private" in name or "@" in name for name in names)
    finally:
        redis_client.delete(redis_keys.login_failures("192.0.2.5"))


@pytest.mark.parametrize(
    ("address", "counted_as"),
    [
        ("203.0.113.9", "203.0.113.9"),
        ("2001:db8:1:2:aaaa::1", "2001:db8:1:2::/64"),
        ("2001:db8:1:2:bbbb::2", "2001:db8:1:2::/64"),  # the same host's /64: the same client
        ("::ffff:203.0.113.9", "203.0.113.9"),
        (None, "unknown"),
    ],
)
def test_clients_are_counted_by_address_and_ipv6_by_its_64_network(address: str | None, counted_as: str) -> None:
    assert client_key(address) == counted_as


def test_the_throttle_raises_backend_unavailable_when_redis_is_down() -> None:
    down = LoginThrottle(redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=1))
    with pytest.raises(BackendUnavailable):
        down.lockout("a@example.com", "192.0.2.1")
    with pytest.raises(BackendUnavailable):
        down.record_failure("a@example.com", "192.0.2.1")
