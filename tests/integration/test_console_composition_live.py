"""Console batch and chain pages against a real worker and recorder: progress as jobs finish."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.conftest import wait_for

pytestmark = [pytest.mark.redis, pytest.mark.worker]


def job(job_class: str, **payload: Any) -> dict[str, Any]:
    return {"job_class": job_class, "payload": payload}


def test_batch_page_shows_final_counts_and_the_callbacks_that_ran(
    stack: Any, client: Any, auth: Any, console: Any, unique: str
) -> None:
    body = {
        "name": f"Import {unique}",
        "jobs": [job("demo.echo", value=1), job("demo.echo", value=2), job("demo.fail", message="bad row")],
        "allow_failures": 1,
        "then": job("demo.echo", value="then"),
        "catch": job("demo.echo", value="catch"),
        "finally": job("demo.echo", value="finally"),
    }
    created = client.post("/api/batches", json=body, headers=auth("operator", unique)).get_json()
    viewer = console(role="viewer", tenant=unique)
    path = f"/batches/{created['id']}"

    def settled() -> str | None:
        page: str = viewer.get(path).get_data(as_text=True)
        done = page.count(">completed</span>") >= 4  # two jobs, then and finally
        return page if done and ">finished</span>" in page else None

    page = wait_for(settled, timeout=60, what="the batch page to show the finished batch and its callbacks")
    assert '<progress value="100" max="100"' in page and "hx-trigger" not in page
    assert "100% processed: 3 of 3 jobs" in page and "bad row" in page
    assert "waiting (not dispatched, and will not be)" in page  # catch: the failure was allowed
    listing = viewer.get("/batches").get_data(as_text=True)
    row = listing[listing.index(f"Import {unique}") :]
    assert re.search(r">finished</span>.*?<progress value=\"100\"", row, re.S)


def test_chain_page_follows_the_steps_to_the_end(stack: Any, client: Any, auth: Any, console: Any, unique: str) -> None:
    body = {"name": f"Pipeline {unique}", "jobs": [job("demo.echo", value=7), job("demo.echo"), job("demo.echo")]}
    created = client.post("/api/chains", json=body, headers=auth("operator", unique)).get_json()
    viewer = console(role="viewer", tenant=unique)

    def finished() -> str | None:
        page: str = viewer.get(f"/chains/{created['id']}").get_data(as_text=True)
        return page if "All 3 steps completed." in page else None

    page = wait_for(finished, timeout=60, what="the chain page to show every step completed")
    assert page.count(">completed</span>") == 3 and '<progress value="100"' in page
