"""Generated bodies never make the API answer 5xx (issue 11, item 7).

Hypothesis throws arbitrary JSON at the creating endpoints: odd types where objects are
expected, NaN, infinities and numbers past a double, NUL and lone surrogates in strings
and keys, deep nesting, unknown and misspelt option keys. Whatever the body, the answer is
a 2xx or a 4xx. Deterministic (derandomize, no example database) and small enough to run
in seconds; nothing reaches the broker (`recording_publisher`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ops_ui.blueprints.api.schemas import KNOWN_OPTIONS

#: Examples per endpoint: enough to reach every branch above, quick enough for `make test`.
EXAMPLES = 60


def _mostly(common: st.SearchStrategy[Any], rare: st.SearchStrategy[Any], odds: int = 4) -> st.SearchStrategy[Any]:
    """`rare` one time in `odds` (one_of would merge repeated strategies, not weigh them)."""
    return st.integers(min_value=1, max_value=odds).flatmap(lambda n: rare if n == 1 else common)


ODD_STRINGS = st.sampled_from(["", "\x00", "a\x00b", "\ud800", "é", " ", "../x", "9" * 300, "demo.echo"])
ODD_NUMBERS = st.one_of(
    st.sampled_from([10**400, -(10**400), 2**63, 2**31, -1, 0, 1e308, -0.0]),
    st.floats(allow_nan=True, allow_infinity=True),
)
SANE_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-1000, max_value=1000),
    st.floats(min_value=-1e6, max_value=1e6),
    st.text(alphabet="abc xyz-_.", max_size=8),
)
ODD_SCALARS = st.one_of(ODD_STRINGS, ODD_NUMBERS, st.text(max_size=12))


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


#: Up to 900 levels: json.dumps itself recurses (5,000 levels: test_api_bad_input.py).
DEEP = st.integers(min_value=1, max_value=900).map(_nested)
#: Mostly ordinary values, some odd ones: bodies must get past the first check to test the rest.
SCALARS = _mostly(SANE_SCALARS, ODD_SCALARS)
NAMES = st.text(alphabet="abcxyz_", min_size=1, max_size=6)
KEYS = _mostly(NAMES, ODD_STRINGS, 6)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(KEYS, inner, max_size=4)),
    max_leaves=12,
)
ANY_VALUE = _mostly(JSON_VALUES, DEEP, 6)
OBJECTS = st.dictionaries(KEYS, ANY_VALUE, max_size=4)

OPTION_VALUES = st.one_of(
    SCALARS, st.integers(min_value=0, max_value=20), st.lists(SCALARS, max_size=3), st.dictionaries(KEYS, SCALARS)
)
OPTION_KEYS = _mostly(st.sampled_from(sorted(KNOWN_OPTIONS)), KEYS)
OPTIONS = st.dictionaries(OPTION_KEYS, OPTION_VALUES, max_size=4)
JOB_CLASSES = _mostly(st.sampled_from(["demo.echo", "demo.echo", "demo.add", "demo.sleep", "no.such.job"]), ODD_SCALARS)


def _maybe(**fields: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    """Objects where each field may be missing."""
    return st.fixed_dictionaries({}, optional=fields)


DISPATCH = st.fixed_dictionaries(
    {"job_class": JOB_CLASSES},
    optional={"payload": _mostly(OBJECTS, ANY_VALUE), "options": _mostly(OPTIONS, SCALARS)},
)
JOBS = st.one_of(
    st.lists(DISPATCH, min_size=1, max_size=4), st.lists(st.one_of(DISPATCH, SCALARS), max_size=4), SCALARS
)
BATCH = st.fixed_dictionaries(
    {"jobs": JOBS},
    optional={
        "name": SCALARS,
        "allow_failures": st.one_of(st.integers(min_value=0, max_value=3), ODD_NUMBERS, SCALARS),
        "then": st.one_of(DISPATCH, SCALARS),
        "catch": DISPATCH,
        "finally": DISPATCH,
        "extra": ANY_VALUE,
    },
)
CHAIN = st.fixed_dictionaries({"jobs": JOBS}, optional={"name": SCALARS, "catch": st.one_of(DISPATCH, SCALARS)})
CRONS = st.one_of(st.sampled_from(["* * * * *", "0 3 * * 1-5", "*/0 * * * *", "61 * * * *", "@daily", ""]), ODD_SCALARS)
ZONES = st.one_of(st.sampled_from(["UTC", "Europe/Paris", "Nowhere/Land", "../../etc/passwd"]), ODD_SCALARS)
PREVIEW = st.fixed_dictionaries({"cron": CRONS}, optional={"timezone": ZONES, "extra": ANY_VALUE})
SCHEDULE = st.fixed_dictionaries(
    {"job_class": JOB_CLASSES, "cron": CRONS},
    optional={
        "timezone": ZONES,
        "payload": st.one_of(OBJECTS, SCALARS),
        "active": st.one_of(st.booleans(), SCALARS),
        "name": st.one_of(SCALARS, st.text(max_size=300)),
        "missed_fire_policy": st.one_of(st.sampled_from(["skip", "run_once", "run_all"]), ODD_STRINGS),
        "options": st.one_of(OPTIONS, SCALARS),
    },
)


def _bodies(objects: st.SearchStrategy[dict[str, Any]]) -> st.SearchStrategy[Any]:
    """Mostly objects of the endpoint's shape, sometimes any JSON value at all."""
    return _mostly(objects, ANY_VALUE, 8)


ENDPOINTS = [
    ("/api/jobs/dispatch", "operator", _bodies(DISPATCH)),
    ("/api/batches", "operator", _bodies(BATCH)),
    ("/api/chains", "operator", _bodies(CHAIN)),
    ("/api/schedules", "admin", _bodies(SCHEDULE)),
    ("/api/schedules/preview", "viewer", _bodies(PREVIEW)),
]


def _encode(body: Any) -> str:
    """JSON text as a careless client writes it: NaN and Infinity as bare tokens."""
    return json.dumps(body, allow_nan=True)


@pytest.mark.parametrize(("path", "role", "bodies"), ENDPOINTS, ids=[path for path, _, _ in ENDPOINTS])
def test_generated_bodies_never_answer_5xx(
    client: Any,
    auth: Callable[..., dict[str, str]],
    recording_publisher: list[Any],
    path: str,
    role: str,
    bodies: st.SearchStrategy[Any],
) -> None:
    headers = {**auth(role), "Content-Type": "application/json"}

    @settings(
        max_examples=EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )
    @given(body=bodies)
    def post(body: Any) -> None:
        response = client.post(path, data=_encode(body), headers=headers)
        assert response.status_code < 500, (body, response.get_data(as_text=True))

    post()
