"""Exit 0 when PostgreSQL accepts a connection on 127.0.0.1:5432 within 3 s, else 1.

`make test` uses it to decide whether to run the suite a second time on PostgreSQL.
A URL given as the first argument replaces the default.
"""

from __future__ import annotations

import sys

import psycopg

#: The server the PostgreSQL test run expects (the maintenance database always exists).
DEFAULT_URL = "postgresql://127.0.0.1:5432/postgres"
#: Seconds to wait for the connection (libpq's connect_timeout, whole seconds).
TIMEOUT_S = 3


def main(argv: list[str]) -> int:
    url = argv[1] if len(argv) > 1 else DEFAULT_URL
    try:
        with psycopg.connect(url, connect_timeout=TIMEOUT_S) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"PostgreSQL not available at {url}: {first_line}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
