"""Procfile and supervisor/celeriac.conf define the same processes with the same commands."""

from __future__ import annotations

import configparser
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PROCFILE = ROOT / "Procfile"
SUPERVISOR_CONF = ROOT / "supervisor" / "celeriac.conf"
VENV_PREFIX = "%(ENV_CELERIAC_HOME)s/.venv/bin/"
#: The longest hard time limit a job may have (Settings.max_timeout_s).
LONGEST_HARD_LIMIT_S = 900
#: `${NAME:-default}` in a Procfile (run by honcho through /bin/sh).
SHELL_DEFAULT = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):-(?P<default>[^}]*)\}")


def read_procfile() -> dict[str, str]:
    processes: dict[str, str] = {}
    for line in PROCFILE.read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        name, _, command = line.partition(":")
        processes[name.strip()] = command.strip()
    return processes


def read_supervisor() -> configparser.RawConfigParser:
    # Raw: supervisor's own %(ENV_X)s expressions are not configparser interpolation.
    parser = configparser.RawConfigParser(inline_comment_prefixes=(" ;",))
    parser.read(SUPERVISOR_CONF)
    return parser


def procfile_argv(command: str) -> list[str]:
    """The Procfile command as argv, each `${NAME:-default}` taken at its default."""
    return shlex.split(SHELL_DEFAULT.sub(lambda m: m.group("default"), command))


def supervisor_argv(command: str) -> list[str]:
    """The supervisor command as argv, its program named as on the Procfile's PATH."""
    argv = shlex.split(command)
    assert argv[0].startswith(VENV_PREFIX), f"{argv[0]} is not run from the checkout's .venv"
    argv[0] = argv[0][len(VENV_PREFIX) :]
    return argv


PROCESSES = sorted(read_procfile())


def test_procfile_has_the_expected_processes() -> None:
    assert PROCESSES == ["beat", "flower", "recorder", "web", "worker"]


@pytest.mark.parametrize("name", PROCESSES)
def test_supervisor_runs_each_procfile_process_with_the_same_command(name: str) -> None:
    conf = read_supervisor()
    section = f"program:{name}"
    assert conf.has_section(section)
    procfile_command = read_procfile()[name]
    assert supervisor_argv(conf.get(section, "command")) == procfile_argv(procfile_command)
    assert conf.get(section, "directory") == "%(ENV_CELERIAC_HOME)s"
    assert conf.getboolean(section, "autorestart")


def test_supervisor_has_no_program_missing_from_the_procfile() -> None:
    programs = {s.split(":", 1)[1] for s in read_supervisor().sections() if s.startswith("program:")}
    assert programs == set(PROCESSES)


def test_supervisor_group_lists_every_program() -> None:
    programs = read_supervisor().get("group:celeriac", "programs")
    assert sorted(p.strip() for p in programs.split(",")) == PROCESSES


def test_worker_stops_gracefully_under_supervisor() -> None:
    conf, worker = read_supervisor(), "program:worker"
    # A TERM to the whole group kills prefork children mid-task (CELERY-NOTES.md).
    assert conf.getboolean(worker, "stopasgroup") is False
    assert conf.getboolean(worker, "killasgroup") is True
    assert conf.get(worker, "stopsignal") == "TERM"
    assert conf.getint(worker, "stopwaitsecs") > LONGEST_HARD_LIMIT_S


def test_beat_runs_a_single_process() -> None:
    assert read_supervisor().getint("program:beat", "numprocs") == 1


def test_flower_is_never_started_without_basic_auth() -> None:
    conf = read_supervisor()
    assert "FLOWER_BASIC_AUTH=" in conf.get("program:flower", "environment")
    assert "basic_auth" not in conf.get("program:flower", "command")
    assert "basic_auth" not in read_procfile()["flower"]


def test_procfile_default_expansion_matches_the_shell() -> None:
    assert procfile_argv("celery flower --port=${FLOWER_PORT:-5555}") == [
        "celery",
        "flower",
        "--port=5555",
    ]
