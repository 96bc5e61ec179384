"""The table: header (date, machine, versions), one row per scenario, notes; as text,
Markdown and JSON. Pure functions over the outcomes' dictionaries (tested without processes).
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from faults.features import delayed_cell, feature_notes, limit_cell

#: (heading, key in the verdict or a special key) in table order.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("scenario", "scenario"),
    ("db", "db"),
    ("accepted", "accepted"),
    ("ran", "ran"),
    ("right", "right"),
    ("lost", "lost"),
    ("wrong", "wrong"),
    ("dup", "duplicates"),
    ("ghosts", "ghosts"),
    ("recover s", "recover_s"),
    ("unfinished", "unfinished"),
    ("rerun ok", "rerun_after_success"),
    ("refused", "refused"),
    ("delayed", "delayed"),
    ("limit peak", "limit_peak"),
)
NEVER = "—"


def cells(outcome: dict[str, Any]) -> list[str]:
    """The row of one scenario's outcome."""
    verdict = outcome.get("verdict")
    if outcome.get("error") and verdict is None:
        return [outcome["scenario"], outcome["db"], "harness error"] + [""] * (len(COLUMNS) - 3)
    verdict = verdict or {}
    row = []
    for _, key in COLUMNS:
        if key in ("scenario", "db"):
            row.append(str(outcome[key]))
        elif key == "recover_s":
            row.append(format_recovery(outcome.get("recover_s")))
        elif key == "delayed":
            row.append(delayed_cell((outcome.get("extra") or {}).get("delays")))
        elif key == "limit_peak":
            row.append(limit_cell((outcome.get("extra") or {}).get("limits")))
        elif key == "refused":
            row.append(str(outcome.get("load", {}).get("errors", 0) + outcome.get("load", {}).get("unanswered", 0)))
        else:
            row.append(str(verdict.get(key, "")))
    return row


def format_recovery(seconds: float | None) -> str:
    return NEVER if seconds is None else f"{seconds:.0f}"


def render_text(rows: Sequence[Sequence[str]]) -> str:
    headings = [heading for heading, _ in COLUMNS]
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headings)]

    def line(values: Sequence[str]) -> str:
        parts = [v.ljust(w) if i < 2 else v.rjust(w) for i, (v, w) in enumerate(zip(values, widths, strict=True))]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(headings), rule, *(line(r) for r in rows)])


def render_markdown(rows: Sequence[Sequence[str]]) -> str:
    headings = [heading for heading, _ in COLUMNS]
    align = ["---" if i < 2 else "---:" for i in range(len(headings))]
    out = ["| " + " | ".join(headings) + " |", "| " + " | ".join(align) + " |"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def notes(outcomes: Sequence[dict[str, Any]]) -> list[str]:
    """What explains each row: the fault, the dispatch errors, wrong reasons, process events."""
    lines: list[str] = []
    for outcome in outcomes:
        lines.append(f"{outcome['scenario']} ({outcome['db']}, {outcome.get('seconds', 0):.0f} s):")
        if outcome.get("error"):
            lines.append(f"  HARNESS ERROR: {outcome['error']}")
        if outcome.get("fault"):
            lines.append(f"  fault: {outcome['fault']}")
        load = outcome.get("load") or {}
        if "errors" in load:
            lines.append(
                f"  dispatch: {load['dispatched']} sent ({load['via_http']} through the API), "
                f"{load['errors']} answered an error, {load['unanswered']} never answered; "
                f"slowest answer {load['slowest_answer_s']} s, slowest error {load['slowest_error_s']} s, "
                f"{load['answers_over_5s']} over 5 s"
            )
            if load.get("error_kinds"):
                kinds = ", ".join(f"{k} ×{n}" for k, n in sorted(load["error_kinds"].items(), key=lambda kv: -kv[1]))
                lines.append(f"  dispatch errors: {kinds}")
        verdict = outcome.get("verdict") or {}
        for reason, count in sorted((verdict.get("wrong_reasons") or {}).items(), key=lambda kv: -kv[1]):
            example = ", ".join((verdict.get("examples") or {}).get(reason, [])[:2])
            lines.append(f"  wrong: {count} × {reason} (e.g. {example})")
            error = (verdict.get("example_errors") or {}).get(reason)
            if error:
                lines.append(f"    its row's reason: {error!r}")
        if verdict.get("killed_runs"):
            lines.append(f"  runs killed mid-run (started, never ended): {verdict['killed_runs']}")
        if verdict.get("refused_ghosts"):
            lines.append(f"  ghosts whose dispatch answered an error: {verdict['refused_ghosts']}")
        lines += [f"  {note}" for note in feature_notes(outcome.get("extra") or {})]
        lines += [f"  {note}" for note in outcome.get("notes", [])]
        backlog = outcome.get("backlog_after") or {}
        if backlog.get("unacked"):
            unacked = backlog["unacked"]
            lines.append(f"  left in Redis at the end: {unacked} unacknowledged messages (may run again later)")
        unexpected = [e for e in outcome.get("events", []) if "unexpectedly" in e]
        if unexpected:
            lines.append(f"  unexpected exits ({len(unexpected)}): " + "; ".join(e.strip() for e in unexpected[:6]))
    return lines


def _read(path: str) -> str:
    try:
        return Path(path).read_text(errors="replace")
    except OSError:
        return ""


def cpu_model(cpuinfo: str) -> str:
    for line in cpuinfo.splitlines():
        if line.lower().startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def total_ram_gib(meminfo: str) -> float | None:
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / (1024 * 1024), 1)
    return None


def _git(*argv: str) -> str:
    try:
        return subprocess.run(["git", *argv], capture_output=True, text=True, check=False, timeout=10).stdout.strip()
    except OSError:
        return ""


def machine() -> dict[str, Any]:
    """Date, machine and software versions printed above the table."""
    commit = _git("rev-parse", "--short", "HEAD")
    dirty = bool(_git("status", "--porcelain", "--untracked-files=no"))
    return {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "nproc": os.cpu_count(),
        "cpu": cpu_model(_read("/proc/cpuinfo")),
        "ram_gib": total_ram_gib(_read("/proc/meminfo")),
        "python": platform.python_version(),
        "celery": importlib.metadata.version("celery"),
        "commit": f"{commit}{' (uncommitted changes)' if dirty else ''}",
    }


def header(info: dict[str, Any], versions: dict[str, str]) -> list[str]:
    return [
        f"Celeriac fault suite — {info['date']} — commit {info['commit']}",
        f"machine: {info['nproc']} CPUs ({info['cpu']}), {info['ram_gib']} GiB RAM",
        "versions: "
        + ", ".join(f"{k} {v}" for k, v in [("Python", info["python"]), ("Celery", info["celery"])])
        + "".join(f", {v}" for v in versions.values() if v),
    ]
