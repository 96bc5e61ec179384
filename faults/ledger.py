"""The ledger: one line per phase of each run of a probe job, written by the worker itself.

It is the suite's independent record of what really ran. It depends on neither Redis nor
Celeriac's SQL (the two things the suite breaks): a plain file opened with O_APPEND, one
short `write()` per line, so lines from concurrent processes never interleave.

Line: `<job id> <pid> <wall time> <attempt> <phase> <token>`; `token` is "-" for jobs
the harness did not dispatch itself (schedule fires).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

#: Environment variable naming the ledger file, set on every process of the stack.
LEDGER_ENV = "FAULTS_LEDGER"
#: The run began (written first thing in `handle`).
START = "start"
#: The run returned normally (written just before `handle` returns).
DONE = "done"
#: The run raised on purpose (a probe told to fail), written just before it raises.
FAIL = "fail"
PHASES = frozenset({START, DONE, FAIL})
#: Token of a run the harness did not dispatch itself.
NO_TOKEN = "-"


@dataclass(frozen=True)
class Entry:
    job_id: str
    pid: int
    at: float
    attempt: int
    phase: str
    token: str


def format_line(entry: Entry) -> str:
    return f"{entry.job_id} {entry.pid} {entry.at:.6f} {entry.attempt} {entry.phase} {entry.token}\n"


def parse_line(line: str) -> Entry | None:
    """The entry of one line, or None when the line is not one (torn or foreign)."""
    parts = line.split()
    if len(parts) != 6 or parts[4] not in PHASES:
        return None
    job_id, pid, at, attempt, phase, token = parts
    try:
        return Entry(job_id, int(pid), float(at), int(attempt), phase, token)
    except ValueError:
        return None


def append(path: str | os.PathLike[str], entry: Entry) -> None:
    """Append one line atomically (O_APPEND, a single write of well under PIPE_BUF bytes)."""
    data = format_line(entry).encode()
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, data)
    finally:
        os.close(fd)


@dataclass
class Runs:
    """What the ledger says about one job (or one dispatch token)."""

    starts: int = 0
    dones: int = 0
    fails: int = 0
    #: Starts written after a run of the same job had finished (file order is write order).
    starts_after_success: int = 0
    pids: set[int] = field(default_factory=set)
    #: Every entry, in file order (start times for delays, run intervals for limits).
    entries: list[Entry] = field(default_factory=list)

    def add(self, entry: Entry) -> None:
        self.entries.append(entry)
        if entry.phase == START:
            self.starts += 1
            self.pids.add(entry.pid)
            if self.dones:
                self.starts_after_success += 1
        elif entry.phase == DONE:
            self.dones += 1
        else:
            self.fails += 1

    @property
    def ran(self) -> bool:
        return self.starts > 0

    @property
    def succeeded(self) -> bool:
        return self.dones > 0

    @property
    def first_start(self) -> float | None:
        """Wall time of the first start (None: never ran)."""
        return min((e.at for e in self.entries if e.phase == START), default=None)

    @property
    def killed(self) -> int:
        """Runs that began and never reached their end: their process died under them."""
        return max(0, self.starts - self.dones - self.fails)


@dataclass
class Ledger:
    """Every entry read so far, indexed by job id and by token; `malformed` counts bad lines."""

    by_id: dict[str, Runs] = field(default_factory=dict)
    by_token: dict[str, Runs] = field(default_factory=dict)
    ids_of_token: dict[str, set[str]] = field(default_factory=dict)
    #: Job ids seen with no token (runs the harness did not dispatch itself).
    tokenless_ids: set[str] = field(default_factory=set)
    malformed: int = 0

    def add_lines(self, lines: Iterable[str]) -> None:
        for line in lines:
            entry = parse_line(line)
            if entry is None:
                self.malformed += 1
                continue
            self.by_id.setdefault(entry.job_id, Runs()).add(entry)
            if entry.token == NO_TOKEN:
                self.tokenless_ids.add(entry.job_id)
            else:
                self.by_token.setdefault(entry.token, Runs()).add(entry)
                self.ids_of_token.setdefault(entry.token, set()).add(entry.job_id)


class LedgerReader:
    """Reads a growing ledger file incrementally; only complete lines are taken."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.ledger = Ledger()
        self._offset = 0

    def refresh(self) -> Ledger:
        try:
            with self.path.open("rb") as handle:
                handle.seek(self._offset)
                data = handle.read()
        except FileNotFoundError:
            return self.ledger
        end = data.rfind(b"\n")
        if end >= 0:
            self._offset += end + 1
            self.ledger.add_lines(_lines(data[: end + 1]))
        return self.ledger


def _lines(data: bytes) -> Iterator[str]:
    for raw in data.splitlines():
        yield raw.decode("utf-8", errors="replace")
