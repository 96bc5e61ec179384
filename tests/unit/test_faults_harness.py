"""The fault suite's own arithmetic (faults/): ledger lines, verdicts, ticks, the table.

Pure functions only: no process, Redis or SQL is started here (`make faults` does that).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from faults import ledger, load, report
from faults.features import Delayed, Kill, judge_delays, judge_limits, peak_overlap
from faults.ledger import DONE, FAIL, START, Entry, Ledger, LedgerReader, format_line, parse_line
from faults.load import CONCURRENCY_LIMIT, plan
from faults.ticks import minute_ticks, tick_report
from faults.verdict import Accepted, RowState, affected_by, judge, judge_row, recovery_seconds


def line(job_id: str, phase: str, token: str = "-", pid: int = 100, at: float = 1.0) -> str:
    return format_line(Entry(job_id, pid, at, 1, phase, token))


def ledger_of(*lines: str) -> Ledger:
    book = Ledger()
    book.add_lines(lines)
    return book


def test_ledger_line_round_trips() -> None:
    entry = Entry("5f0c-id", 4242, 1764670000.123456, 2, START, "child-kills-00007")
    assert parse_line(format_line(entry)) == entry


def test_ledger_skips_torn_and_foreign_lines() -> None:
    book = ledger_of("abc 12 1.0 1 start", "abc 12 x 1 start tok", "abc 12 1.0 1 begun tok", line("j1", START))
    assert book.malformed == 3
    assert book.by_id["j1"].starts == 1


def test_ledger_append_writes_whole_lines_that_the_reader_takes_incrementally(tmp_path: Path) -> None:
    path = tmp_path / "ledger.txt"
    reader = LedgerReader(path)
    assert reader.refresh().by_id == {}  # no file yet
    ledger.append(path, Entry("j1", 1, 1.0, 1, START, "t1"))
    with path.open("a") as handle:
        handle.write("j1 1 2.0 1 do")  # a line still being written is not read
    assert reader.refresh().by_id["j1"].starts == 1
    assert reader.ledger.by_id["j1"].dones == 0
    with path.open("a") as handle:
        handle.write("ne t1\n")
    assert reader.refresh().by_id["j1"].dones == 1
    assert reader.ledger.by_token["t1"].succeeded


def test_runs_count_kills_and_restarts_after_success() -> None:
    book = ledger_of(
        line("j1", START), line("j1", START, pid=101), line("j1", DONE, pid=101), line("j1", START, pid=102)
    )
    runs = book.by_id["j1"]
    assert (runs.starts, runs.dones, runs.killed, runs.starts_after_success) == (3, 1, 2, 1)


def test_completed_row_is_right_only_when_a_run_finished() -> None:
    finished = ledger_of(line("j", START), line("j", DONE)).by_id["j"]
    killed = ledger_of(line("j", START)).by_id["j"]
    never = Ledger().by_id.get("j") or ledger.Runs()
    assert judge_row(finished, RowState("completed")) is None
    assert judge_row(killed, RowState("completed")) == "completed, no run finished"
    assert judge_row(never, RowState("completed")) == "completed, never ran"


def test_failed_row_is_wrong_when_the_job_succeeded_and_right_when_it_failed_or_died() -> None:
    succeeded = ledger_of(line("j", START), line("j", DONE)).by_id["j"]
    failed = ledger_of(line("j", START), line("j", FAIL)).by_id["j"]
    killed = ledger_of(line("j", START)).by_id["j"]
    assert judge_row(succeeded, RowState("failed", "WorkerLostError")) == "failed, but it succeeded"
    assert judge_row(failed, RowState("failed")) is None
    assert judge_row(killed, RowState("failed", "worker lost 3 times")) is None


def test_never_run_job_is_right_only_when_its_row_says_it_was_not_queued() -> None:
    never = ledger.Runs()
    assert judge_row(never, RowState("failed", "could not be queued: Connection refused")) is None
    assert judge_row(never, RowState("cancelled", "not queued: broker down")) is None
    assert judge_row(never, RowState("failed", "WorkerLostError")) == "failed, never ran, reason not 'not queued'"
    assert judge_row(never, RowState("pending")) == "still pending"
    assert judge_row(never, None) == "no row"


def test_verdict_columns_add_up() -> None:
    accepted = [Accepted(f"j{i}", f"t{i}") for i in range(6)]
    book = ledger_of(
        line("j0", START, "t0"), line("j0", DONE, "t0"),  # right
        line("j1", START, "t1"), line("j1", START, "t1", pid=2), line("j1", DONE, "t1", pid=2),  # right, duplicate
        line("j2", START, "t2"), line("j2", DONE, "t2"),  # succeeded, recorded failed: wrong
        line("j3", START, "t3"),  # killed, never re-run, row failed: right but unfinished
        # j4 never ran, row pending: lost and wrong; j5 never ran, not queued: right
        line("ghost", START, "refused-1"), line("ghost", DONE, "refused-1"),  # a refused dispatch that ran
        line("beat-job", START), line("beat-job", DONE),  # no token, not accepted: ghost
    )  # fmt: skip
    rows = {
        "j0": RowState("completed"), "j1": RowState("completed"), "j2": RowState("failed", "WorkerLostError"),
        "j3": RowState("failed", "WorkerLostError"), "j4": RowState("pending"),
        "j5": RowState("failed", "could not be queued: Error 111"),
    }  # fmt: skip
    verdict = judge(accepted, rows, book, refused_tokens={"refused-1"})
    assert verdict.accepted == 6 and verdict.right + verdict.wrong == 6
    assert (verdict.ran, verdict.right, verdict.wrong, verdict.lost) == (4, 4, 2, 1)
    assert (verdict.duplicates, verdict.unfinished, verdict.killed_runs, verdict.live) == (1, 1, 2, 1)
    assert (verdict.ghosts, verdict.refused_ghosts) == (2, 1)
    assert verdict.wrong_reasons == {"failed, but it succeeded": 1, "still pending": 1}
    assert verdict.examples["still pending"] == ["j4"]
    assert verdict.example_errors == {"failed, but it succeeded": "WorkerLostError"}
    assert not verdict.all_right and not verdict.all_terminal


def test_runs_are_found_by_token_even_under_another_job_id() -> None:
    """A job re-published under a new id still counts for the dispatch that accepted it."""
    book = ledger_of(line("new-id", START, "t1"), line("new-id", DONE, "t1"))
    verdict = judge([Accepted("old-id", "t1")], {"old-id": RowState("completed")}, book, set())
    assert (verdict.ran, verdict.right, verdict.ghosts) == (1, 1, 0)


def test_recovery_is_counted_from_the_end_of_the_fault() -> None:
    assert recovery_seconds(100.0, 142.5) == 42.5
    assert recovery_seconds(100.0, 90.0) == 0.0  # right before the fault ended
    assert recovery_seconds(100.0, None) is None
    assert report.format_recovery(None) == "—"
    assert report.format_recovery(42.5) == "42"


def test_recovery_waits_only_for_jobs_dispatched_before_the_fault_ended() -> None:
    early, late, fired = Accepted("a", "t1", at=10.0), Accepted("b", "t2", at=30.0), Accepted("c")
    assert affected_by([early, late, fired], fault_end=20.0) == [early, fired]
    assert affected_by([early, late], fault_end=None) == [early, late]


def test_load_plan_is_reproducible_and_mixed(monkeypatch: pytest.MonkeyPatch) -> None:
    first = plan(2000, seed=11, prefix="s")
    assert first == plan(2000, seed=11, prefix="s")
    assert first != plan(2000, seed=12, prefix="s")
    assert len({spec.token for spec in first}) == 2000
    http = sum(spec.via == "http" for spec in first)
    sleeping = sum(spec.seconds > 0 for spec in first)
    long = sum(spec.seconds >= 1 for spec in first)
    assert 100 < http < 300 and 350 < sleeping < 550 and 50 < long < 150
    assert 20 < sum(spec.fail for spec in first) < 100
    delayed = [spec for spec in first if spec.delay_s]
    limited = [spec for spec in first if spec.limited]
    assert 150 < len(delayed) < 250 and 150 < len(limited) < 250
    assert all(3 <= spec.delay_s <= 20 for spec in delayed) and not any(s.limited for s in delayed)
    assert limited[0].api_options() == {"concurrency_key": "faults", "concurrency_limit": CONCURRENCY_LIMIT}
    assert delayed[0].api_options() == {"delay": delayed[0].delay_s}
    # The delays and limits are drawn apart: the rest of the mix is what it is without them.
    monkeypatch.setattr(load, "DELAY_SHARE", 0.0)
    monkeypatch.setattr(load, "LIMITED_SHARE", 0.0)
    plain = plan(2000, seed=11, prefix="s")
    assert not any(s.delay_s or s.limited for s in plain)
    assert [(s.fail, s.via) for s in first] == [(s.fail, s.via) for s in plain]
    pairs = zip(first, plain, strict=True)
    assert all(mine.seconds == theirs.seconds for mine, theirs in pairs if not mine.limited)
    assert all(s.seconds >= 0.2 for s in limited)


def test_delayed_jobs_must_start_once_and_not_before_they_are_due() -> None:
    book = ledger_of(
        line("on-time", START, "t1", at=110.4), line("on-time", DONE, "t1", at=110.5),
        line("early", START, "t2", at=105.0), line("early", DONE, "t2", at=105.1),
        line("tolerated", START, "t3", at=99.5), line("tolerated", DONE, "t3", at=99.6),
        line("twice", START, "t4", at=101.0, pid=7), line("twice", START, "t4", at=112.0, pid=8),
        line("twice", DONE, "t4", at=112.1, pid=8),
    )  # fmt: skip
    due = [Delayed("on-time", "t1", 100.0), Delayed("early", "t2", 110.0), Delayed("tolerated", "t3", 100.0),
           Delayed("twice", "t4", 100.0), Delayed("lost", "t5", 100.0)]  # fmt: skip
    verdict = judge_delays(due, book)
    assert (verdict.delayed, verdict.once, verdict.early, verdict.several, verdict.never) == (5, 2, 1, 1, 1)
    assert (verdict.earliest_s, verdict.latest_s) == (-5.0, 10.4)
    assert verdict.examples["never ran"] == ["lost"] and verdict.examples["started early"] == ["early"]
    outcome = {"scenario": "x", "db": "y", "verdict": {}, "extra": {"delays": verdict.as_dict()}}
    assert report.cells(outcome)[-2] == "2/5"
    assert report.notes([outcome])[1].startswith("  delayed: 5 (2 started once and on time, 1 more than once, 1 early")


def test_overlap_counts_runs_at_once_and_back_to_back_runs_do_not_overlap() -> None:
    assert peak_overlap([(0, 1), (1, 2), (2, 3)], limit=1) == (1, [])
    assert peak_overlap([(0, 2), (1, 3), (1.5, 4)], limit=2) == (3, [1.5])


def test_limited_runs_end_at_their_end_line_or_at_the_kill_of_their_process() -> None:
    book = ledger_of(
        line("a", START, "t1", pid=1, at=10.0), line("a", DONE, "t1", pid=1, at=11.0),
        line("b", START, "t2", pid=2, at=11.0),  # killed at 12 (pool child 2)
        line("b", START, "t2", pid=3, at=14.0), line("b", DONE, "t2", pid=3, at=15.0),
        line("c", START, "t3", pid=1, at=13.0), line("c", FAIL, "t3", pid=1, at=13.5),
    )  # fmt: skip
    limited = [("a", "t1"), ("b", "t2"), ("c", "t3"), ("d", "t4")]
    left = {"holders": 0, "waiting": 0}
    verdict = judge_limits(limited, 1, book, [Kill(12.0, 2)], left)
    assert (verdict.ran, verdict.never, verdict.peak, verdict.over_limit, verdict.killed_runs) == (3, 1, 1, 0, 1)
    # Without the kill, run b's end is unknown: left out, and counted.
    assert judge_limits(limited, 1, book, [], left).open_runs == 1
    # A whole-worker kill after c started would not end b (it was killed earlier), but a run
    # still going when another starts is over the limit.
    late = judge_limits(limited, 1, book, [Kill(13.2, None)], left)
    assert late.peak == 2 and late.over_limit == 1 and late.over_limit_at == [13.0]
    assert report.cells({"scenario": "x", "db": "y", "verdict": {}, "extra": {"limits": late.as_dict()}})[-1] == "2/1"


def test_ticks_fired_once_twice_and_missed() -> None:
    t0 = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
    minute = timedelta(minutes=1)
    runs = [
        ("a", "s1", t0 + timedelta(seconds=1)),
        ("b", "s1", t0 + minute + timedelta(seconds=25)),  # late but on time
        ("c", "s1", t0 + minute + timedelta(seconds=40)),  # the same tick again
        ("d", "s1", t0 + 3 * minute + timedelta(seconds=2)),
        ("e", "s1", t0 + 3 * minute + timedelta(seconds=3)),  # catch-up job of the missed tick
        ("x", "s2", t0 + 2 * minute),  # another schedule
    ]
    events = [
        {"schedule_id": "s1", "kind": "missed", "tick_at": t0 + 2 * minute, "last_tick_at": t0 + 2 * minute,
         "count": 1, "action": "ran_once", "job_id": "e"},
    ]  # fmt: skip
    counts = tick_report(runs, events, "s1", t0, t0 + 3 * minute)
    assert counts["expected"] == 4
    assert (counts["once"], counts["twice_or_more"], counts["missing"]) == (2, 1, 1)
    assert counts["missing_recorded_as_missed"] == 1 and counts["catch_up_jobs"] == 1
    assert minute_ticks(t0 + timedelta(seconds=5), t0 + 2 * minute) == [t0 + minute, t0 + 2 * minute]


def test_table_rows_and_renderings() -> None:
    outcome = {
        "scenario": "worker-kill", "db": "postgresql", "recover_s": None,
        "verdict": {"accepted": 3000, "ran": 2999, "right": 2990, "lost": 1, "wrong": 10, "duplicates": 4,
                    "ghosts": 0, "unfinished": 2, "rerun_after_success": 0},
        "load": {"errors": 2, "unanswered": 1},
    }  # fmt: skip
    row = report.cells(outcome)
    assert row == ["worker-kill", "postgresql", "3000", "2999", "2990", "1", "10", "4", "0", "—", "2", "0", "3", "", ""]
    failed = report.cells({"scenario": "sql-outage", "db": "sqlite", "error": "RuntimeError: boom", "verdict": None})
    assert failed[2] == "harness error"
    text = report.render_text([row])
    assert text.splitlines()[0].split()[:3] == ["scenario", "db", "accepted"]
    assert text.splitlines()[2].endswith("3")
    markdown = report.render_markdown([row])
    assert markdown.splitlines()[2] == "| " + " | ".join(row) + " |"


def test_machine_facts_are_read_from_proc_files() -> None:
    assert report.cpu_model("processor\t: 0\nmodel name\t: AMD EPYC 7B13\n") == "AMD EPYC 7B13"
    assert report.total_ram_gib("MemTotal:       24576000 kB\n") == 23.4
