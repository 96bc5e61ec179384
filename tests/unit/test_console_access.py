"""Every console route, found from the URL map: nothing without a session, no action without CSRF.

New pages are covered as soon as they are registered; per-page tests check roles and
tenancy in detail.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from werkzeug.routing import Rule

from tests.conftest import page_csrf_token

PUBLIC = {"console.login"}


def _console_rules(app: Any) -> list[Rule]:
    return sorted(
        (r for r in app.url_map.iter_rules() if r.endpoint.startswith("console.") and r.endpoint not in PUBLIC),
        key=lambda r: r.rule,
    )


def _path(rule: Rule) -> str:
    values: dict[str, Any] = {}
    for name in rule.arguments:
        converter = rule._converters[name]  # noqa: SLF001  (werkzeug keeps converters per rule)
        values[name] = 987654 if converter.__class__.__name__ == "IntegerConverter" else str(uuid.uuid4())
    built: str = rule.build(values, append_unknown=False)[1]  # type: ignore[index]
    return built


def _methods(rule: Rule) -> list[str]:
    return sorted((rule.methods or set()) & {"GET", "POST", "PUT", "PATCH", "DELETE"})


def test_every_console_route_sends_anonymous_callers_to_login(app: Any) -> None:
    client = app.test_client()
    token = page_csrf_token(client.get("/login").get_data(as_text=True))
    checked = 0
    for rule in _console_rules(app):
        for method in _methods(rule):
            data = {"csrf_token": token} if method != "GET" else None
            answer = client.open(_path(rule), method=method, data=data)
            assert answer.status_code == 302, (method, rule.rule, answer.status_code)
            assert "/login" in answer.headers["Location"], (method, rule.rule)
            checked += 1
    assert checked >= 13  # every page of the navigation at least


def test_no_console_action_accepts_a_post_without_csrf_token(console: Any, app: Any) -> None:
    admin = console("admin")
    for rule in _console_rules(app):
        for method in _methods(rule):
            if method == "GET":
                continue
            answer = admin.client.open(_path(rule), method=method, data={})
            assert answer.status_code == 400, (method, rule.rule, answer.status_code)


@pytest.mark.parametrize("role", ["viewer", "operator", "admin"])
def test_every_page_opens_or_refuses_by_role(console: Any, app: Any, role: str) -> None:
    """Navigation pages render for the role they need; an unknown or foreign id is 404 (or 403)."""
    from app.services.auth import role_allows
    from ops_ui.templating import NAVIGATION

    session = console(role)
    needed = {endpoint: least for endpoint, _label, least in NAVIGATION}
    for rule in _console_rules(app):
        if "GET" not in _methods(rule) or rule.endpoint == "console.logout":
            continue
        answer = session.get(_path(rule))
        if rule.rule.startswith("/queues/<name>"):
            # Any well-formed name is a queue (maybe empty, never configured): it opens or is refused.
            assert answer.status_code in (200, 403), (rule.rule, answer.status_code)
            continue
        if rule.arguments:
            assert answer.status_code in (403, 404), (rule.rule, answer.status_code)
            continue
        if rule.endpoint in needed:
            expected = 200 if role_allows(role, needed[rule.endpoint]) else 403
            assert answer.status_code == expected, (role, rule.rule, answer.status_code)
        else:  # forms and fragments: they may need a role or query parameters, never crash
            assert answer.status_code in (200, 302, 400, 403, 422), (role, rule.rule, answer.status_code)
            if answer.status_code == 302:  # e.g. back to the list with a message; the session holds
                assert "/login" not in answer.headers["Location"], (role, rule.rule)
