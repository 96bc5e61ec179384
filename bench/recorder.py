"""Recorder subprocess for the benchmark: `python -m bench.recorder`.

The same `app.recorder.Recorder` loop as `python -m app.recorder`, with two changes
that only affect what it reports: lag samples are kept for every event (not the last
10,000), and SIGUSR1 clears them, so the published lag covers the drain only. With
BENCH_PROFILE_RECORDER=FILE it runs under cProfile and writes its statistics there on exit.
"""

from __future__ import annotations

import logging
import os
import signal
from collections import deque
from typing import Any

from app import recorder as app_recorder
from app.config import get_settings
from app.redis_client import get_redis


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    settings = get_settings()
    app_recorder._sync_definitions()
    recorder = app_recorder.Recorder(settings, get_redis(settings.redis_url), name="bench-recorder")
    recorder.stats.lags_ms = deque()

    def reset_lag(*_: Any) -> None:
        recorder.stats.lags_ms.clear()

    signal.signal(signal.SIGTERM, recorder.stop)
    signal.signal(signal.SIGINT, recorder.stop)
    signal.signal(signal.SIGUSR1, reset_lag)
    profile_to = os.environ.get("BENCH_PROFILE_RECORDER")
    if not profile_to:
        recorder.run()
        return
    import cProfile

    profiler = cProfile.Profile()
    profiler.runcall(recorder.run)
    profiler.dump_stats(profile_to)


if __name__ == "__main__":
    main()
