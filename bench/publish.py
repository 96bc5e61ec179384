"""Publisher subprocess: `python -m bench.publish --n N --queue bench`.

Runs with the mode's environment, so with CELERIAC_TRACKING=false no `pub` events are
emitted, exactly like a producer without Celeriac. Prints the publish rate.
"""

from __future__ import annotations

import argparse
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, required=True)
    parser.add_argument("--queue", default="bench")
    args = parser.parse_args()

    from app.celery_app import celery_app
    from bench.tasks import noop

    started = time.perf_counter()
    with celery_app.producer_or_acquire() as producer:
        for i in range(args.n):
            noop.apply_async(args=(i,), queue=args.queue, producer=producer)
    elapsed = time.perf_counter() - started
    # The tracking buffer (if any) is flushed by its atexit hook when we return.
    print(f"published {args.n} in {elapsed:.2f}s ({args.n / elapsed:.0f}/s)", flush=True)


if __name__ == "__main__":
    main()
