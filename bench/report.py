"""Summarise the runs (medians when repeated), print the table, write var/bench/last.json."""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

from bench.dispatch import DispatchResult
from bench.drain import DrainResult
from bench.env import ROOT

OUTPUT = ROOT / "var" / "bench" / "last.json"


def _median(values: list[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return statistics.median(present) if present else None


def summarise(
    n: int, database: str, concurrency: int, plain: list[DrainResult], tracked: list[DrainResult],
    dispatch: DispatchResult | None,
) -> dict[str, Any]:  # fmt: skip
    plain_rate = _median([r.jobs_per_s for r in plain]) or 0.0
    tracked_rate = _median([r.jobs_per_s for r in tracked]) or 0.0
    return {
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "n": n,
        "database": database,
        "concurrency": concurrency,
        "repeat": len(plain),
        "plain_jobs_per_s": plain_rate,
        "tracked_jobs_per_s": tracked_rate,
        "ratio": round(tracked_rate / plain_rate, 3) if plain_rate else None,
        # Each run's own ratio: plain and tracked ran back to back on the same machine state.
        "run_ratios": [round(t.jobs_per_s / p.jobs_per_s, 3) for p, t in zip(plain, tracked, strict=True)],
        "lag_p50_ms": _median([r.lag_p50_ms for r in tracked]),
        "lag_p99_ms": _median([r.lag_p99_ms for r in tracked]),
        "rows_after_drain_s": _median([r.rows_after_drain_s for r in tracked]),
        "rows": [r.rows for r in tracked],
        "rows_completed": [r.rows_completed for r in tracked],
        "cpu_s": {"plain": _median_cpu(plain), "tracked": _median_cpu(tracked)},
        "dispatch": dispatch.as_dict() if dispatch else None,
        "runs": {"plain": [r.as_dict() for r in plain], "tracked": [r.as_dict() for r in tracked]},
    }


def _median_cpu(runs: list[DrainResult]) -> dict[str, float]:
    """Median CPU seconds per role over the runs that measured it."""
    roles = sorted({role for r in runs for role in (r.cpu_s or {})})
    return {role: _median([(r.cpu_s or {}).get(role) for r in runs]) or 0.0 for role in roles}


def _fmt(value: float | None, spec: str = ".0f") -> str:
    return "n/a" if value is None else format(value, spec)


def render(summary: dict[str, Any]) -> str:
    n = summary["n"]
    runs = f", median of {summary['repeat']} runs" if summary["repeat"] > 1 else ""
    rows = ", ".join(str(r) for r in summary["rows"])
    completed = ", ".join(str(r) for r in summary["rows_completed"])
    lines = [f"database={summary['database']}"]
    if n > 0:
        lines = [
            f"N={n}, database={summary['database']}, worker -c {summary['concurrency']}{runs}",
            f"plain Celery:        {_fmt(summary['plain_jobs_per_s'])} jobs/s",
            f"Celeriac tracking:   {_fmt(summary['tracked_jobs_per_s'])} jobs/s   "
            f"ratio {_fmt(summary['ratio'], '.2f')}",
            f"recorder lag:        p50 {_fmt(summary['lag_p50_ms'])} ms, p99 {_fmt(summary['lag_p99_ms'])} ms; "
            f"all rows written {_fmt(summary['rows_after_drain_s'], '.2f')} s after the drain",
            f"rows in job_executions: {rows} (completed {completed}; expected {n})",
        ]
    lines.extend(render_speed(summary.get("speed") or {}))
    for mode, cpu in summary["cpu_s"].items():
        if cpu:
            parts = ", ".join(f"{role} {seconds:.1f}" for role, seconds in cpu.items())
            lines.append(f"CPU s during the {mode} drain: {parts}")
    if summary["repeat"] > 1:
        lines.append("ratio per run:       " + ", ".join(f"{r:.2f}" for r in summary["run_ratios"]))
    lines.extend(render_cpu_per_thousand(summary))
    for run in summary.get("batch") or []:
        lines.append(
            f"{run['n']} jobs {'as one batch' if run['mode'] == 'batch' else 'one by one'}: "
            f"dispatched in {run['dispatch_s']:.2f} s, all completed after {run['complete_s']:.2f} s"
        )
    lines.extend(render_scale(summary.get("scale") or {}))
    limit = summary.get("ratelimit")
    if limit:
        lines.append(
            f"rate limit {limit['configured_per_s']}/s: measured {limit['measured_per_s']:.1f}/s "
            f"({100 * limit['ratio']:.1f} %), at most {limit['max_in_any_second']} in any second"
        )
    return "\n".join(lines)


def render_cpu_per_thousand(summary: dict[str, Any]) -> list[str]:
    """What tracking costs in CPU, per 1,000 jobs: the recorder's, and the worker's extra."""
    n = summary["n"]
    plain, tracked = summary["cpu_s"].get("plain") or {}, summary["cpu_s"].get("tracked") or {}
    if n <= 0 or "recorder" not in tracked:
        return []

    def worker(cpu: dict[str, float]) -> float:
        return cpu.get("worker_main", 0.0) + cpu.get("worker_children", 0.0)

    per_k = 1000 / n * 1000  # CPU seconds over n jobs -> ms per 1,000 jobs
    return [
        f"CPU per 1,000 jobs: recorder {tracked['recorder'] * per_k:.0f} ms; worker {worker(tracked) * per_k:.0f} ms "
        f"tracked vs {worker(plain) * per_k:.0f} ms plain; Redis {tracked.get('redis', 0.0) * per_k:.0f} ms "
        f"tracked vs {plain.get('redis', 0.0) * per_k:.0f} ms plain"
    ]


def render_scale(scale: dict[str, Any]) -> list[str]:
    """Pages and endpoints at ten million rows, and the purge beside a dispatcher (bench.scale)."""
    lines = []
    for kind, history in (scale.get("history") or {}).items():
        if not history:
            lines.append(f"history at scale on {kind}: run failed (see above)")
            continue
        endpoints = history["endpoints"]
        worst_path, worst = max(endpoints.items(), key=lambda item: item[1]["p95_ms"])
        missed = history.get("missed") or []
        lines.append(
            f"history on {kind} at {history['rows']:,} executions: {len(endpoints) - len(missed)} of "
            f"{len(endpoints)} pages and endpoints p95 < {history['target_ms']:.0f} ms and < 1.5x the 10k figure; "
            f"slowest {worst_path} p95 {worst['p95_ms']:.1f} ms" + (f"; missed: {', '.join(missed)}" if missed else "")
        )
    for kind, purge in (scale.get("purge") or {}).items():
        if not purge:
            lines.append(f"purge beside dispatch on {kind}: run failed (see above)")
            continue
        during = purge["during"]
        lines.append(
            f"purge of {purge['purged']:,} rows on {kind} in {purge['purge_s']:.1f} s: dispatch beside it "
            f"p99 {during['p99_ms']:.2f} ms, worst {during['max_ms']:.1f} ms (target {purge['target_ms']:.0f} ms; "
            f"before the purge worst {purge['before']['max_ms']:.1f} ms)"
        )
    return lines


def render_speed(speed: dict[str, Any]) -> list[str]:
    """Issue 15's figures (bench.speed): dispatch against apply_async, the API, the bulks."""
    lines = []
    dispatch = speed.get("dispatch") or {}
    plain = dispatch.get("apply_async")
    if plain:
        lines.append("dispatch from code, same Redis, interleaved rounds (ratio to apply_async):")
        for name, figures in dispatch.items():
            ratio = ""
            if name != "apply_async":
                ratio = (
                    f"   x{figures['p50_ms'] / plain['p50_ms']:.2f} p50, x{figures['p99_ms'] / plain['p99_ms']:.2f} p99"
                )
            lines.append(
                f"  {name:24s} p50 {figures['p50_ms']:.3f} ms  p99 {figures['p99_ms']:.3f} ms  "
                f"(n={figures['n']}){ratio}"
            )
    fsync = speed.get("fsync") or {}
    if fsync:
        parts = [f"{kind} dir write+fsync p50 {f['p50_ms']:.3f} ms p99 {f['p99_ms']:.3f} ms"
                 for kind, f in fsync.items() if "p50_ms" in f]  # fmt: skip
        pg = fsync.get("postgresql") or {}
        if "pg_test_fsync_fdatasync_ms" in pg:
            parts.append(f"pg_test_fsync fdatasync {pg['pg_test_fsync_fdatasync_ms']:.3f} ms")
        if pg.get("fsync"):
            parts.append(f"PostgreSQL fsync={pg['fsync']} synchronous_commit={pg.get('synchronous_commit')}")
        lines.append("fsync floor: " + "; ".join(parts))
    for kind, bulk in (speed.get("bulk") or {}).items():
        lines.append(
            f"bulk on {kind}: dispatch_many {_fmt(bulk['dispatch_many_s'], '.3f')} s, "
            f"batch {bulk['batch_s']:.3f} s (accepted, recorded, published)"
        )
    for kind, api in (speed.get("api") or {}).items():
        errors = f", {api['errors']} errors" if api["errors"] else ""
        lines.append(
            f"POST /api/jobs/dispatch on {kind} at {api['rate']:.0f}/s ({api['achieved_rate']:.0f}/s achieved, "
            f"{api['clients']} clients, {api['requests']} requests): p50 {api['p50_ms']:.1f} ms, "
            f"p99 {api['p99_ms']:.1f} ms, max {api['max_ms']:.1f} ms{errors}"
        )
        if api.get("batch_jobs"):
            lines.append(
                f"POST /api/batches of {api['batch_jobs']:,} jobs on {kind}: {api['batch_s']:.3f} s "
                f"(status {api['batch_status']})"
            )
    return lines


def write_json(summary: dict[str, Any], path: Path = OUTPUT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(summary, indent=2) + "\n")
    return path
