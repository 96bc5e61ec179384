"""The project's web side: sends its tasks as it always has, and prints their ids (JSON).

python -m tests.attach_project.produce
"""

from __future__ import annotations

import json

from tests.attach_project.foreign import add, fail, retrying


def main() -> None:
    sent = {
        "add": add.delay(2, 3).id,
        "fail": fail.delay("boom").id,
        "retrying": retrying.delay("r1").id,
        # Longer than Celery's 1024-character argument repr: recorded cut.
        "long_fail": fail.delay("x" * 2000).id,
        # Held by the worker for its countdown: time to cancel it.
        "later": add.apply_async((1, 1), countdown=4).id,
    }
    print(json.dumps(sent), flush=True)


if __name__ == "__main__":
    main()
