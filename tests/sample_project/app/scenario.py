"""What the sample project's web app dispatches, each shape once: `python -m app.scenario`.

Prints the ids of what it published as one JSON object (the integration test reads it).
"""

import json
import os

from celery import chain, chord, group

from app.tasks import add, count_rows, flaky, mul, total


def dispatch():
    members = group(add.s(i, i) for i in range(3)).apply_async()
    header = group(add.s(1, 1), add.s(2, 2))
    callback = chord(header)(total.s())
    steps = chain(add.s(1, 2), mul.s(10)).apply_async()
    return {
        "add": add.delay(2, 3).id,
        "kwargs": add.apply_async(kwargs={"x": 1, "y": 2}).id,
        "flaky_recovers": flaky.delay(3).id,
        "flaky_gives_up": flaky.delay(99).id,
        "group": {"id": members.id, "members": [r.id for r in members.results]},
        "chord": {
            "callback": callback.id,
            "group": callback.parent.id,
            "header": [r.id for r in callback.parent.results],
        },
        "chain": {"first": steps.parent.id, "second": steps.id},
        "countdown": add.apply_async((4, 4), countdown=2).id,
        "tenant": add.apply_async((5, 5), headers={"celeriac": {"tenant": "sample-tenant"}}).id,
        "progress": count_rows.delay(4).id,
        # Time for an operator to cancel it before it starts (a test that cancels it through
        # the API on a loaded machine asks for more).
        "cancel_me": add.apply_async((6, 6), countdown=int(os.environ.get("SAMPLE_CANCEL_COUNTDOWN", "5"))).id,
    }


if __name__ == "__main__":
    print(json.dumps(dispatch()))
