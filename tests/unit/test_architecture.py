"""The shape of the code, enforced (docs/architecture.md): arrows point one way, no cycles,
no module over 400 lines.

An AST walk over every module of `celeriac`, `app`, `ops_ui` and `tasks`, imports inside
function bodies included (a lazy import hides a cycle; it does not remove it).
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("celeriac", "app", "ops_ui", "tasks")
MAX_LINES = 400

#: Lowest first. A module may import modules of its own layer or of a layer below it.
LAYERS: tuple[tuple[str, ...], ...] = (
    # The worker-side package: celery and redis only.
    ("celeriac",),
    # Foundation: settings, errors, keys, connections, rows, sealing.
    (
        "app",
        "app.config",
        "app.errors",
        "app.redis_keys",
        "app.redis_client",
        "app.embedded_redis",
        "app.validation",
        "app.db",
        "app.models",
        "app.crypto",
        "app.broker",
    ),
    # The kernel: dispatch rules, the one writer of job rows, finding and cancelling a job.
    ("app.kernel",),
    # The real backends behind the kernel's ports, their in-memory twins, the one accessor.
    ("app.backends",),
    # Feature packages, each using the kernel and the features below it, never services.
    ("app.monitoring",),
    ("app.composition",),
    ("app.recording",),
    ("app.ratelimit",),
    ("app.failures",),
    ("app.control",),
    ("app.schedules",),
    # Use cases on top of the features.
    ("app.services",),
    # The Celery app with every hook connected (connect_worker): what processes start from.
    ("app.celery_app",),
    # The code API (Job, dispatch, batch, chain) and the task base every task uses.
    ("app.jobs", "app.tracked_task"),
    # The recorder process and the test helpers.
    ("app.recorder", "app.testing", "app.testing_plugin"),
    # The edge: the web console and API, the demo tasks.
    ("ops_ui", "tasks"),
)

#: Imports that break the layering today, each with why it is still there. The test fails
#: when one disappears (remove it here) and when a new one appears (fix it, don't add it).
KNOWN_UPWARD: dict[tuple[str, str], str] = {
    ("app.composition", "app.jobs.builders"): (
        "`from app.composition import batch, chain`, documented before the builders moved to"
        " app.jobs, resolved on first use by the package's __getattr__"
    ),
}


@dataclass(frozen=True)
class Import:
    source: str
    target: str
    line: int
    #: Inside a function body: runs on first call, not at import.
    lazy: bool
    #: Under `if TYPE_CHECKING:`: never runs (annotations only).
    typing_only: bool = False


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _resolve(name: str) -> str | None:
    """The module of ours that `name` (a module, or a name inside one) refers to."""
    known = modules()
    while name:
        if name in known:
            return name
        name = name.rpartition(".")[0]
    return None


def _imports_of(module: str, path: Path) -> Iterator[Import]:
    tree = ast.parse(path.read_text(), str(path))
    top_level = {id(node) for node in tree.body}
    typing_only = {
        id(inner)
        for node in tree.body
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for inner in ast.walk(node)
    }
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{alias.name}" for alias in node.names]
        for name in names:
            target = _resolve(name)
            if target is not None and target != module:
                yield Import(module, target, node.lineno, id(node) not in top_level, id(node) in typing_only)


@cache
def all_imports() -> tuple[Import, ...]:
    return tuple(imp for module, path in modules().items() for imp in _imports_of(module, path))


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for index, prefixes in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), index
    if rank < 0:
        raise AssertionError(f"{module} is in no layer: add it to LAYERS and to docs/architecture.md")
    return rank


def upward_imports() -> dict[tuple[str, str], Import]:
    return {
        (imp.source, imp.target): imp for imp in all_imports() if layer_of(imp.target) > layer_of(imp.source)
    }


def picture() -> str:
    """The layers as docs/architecture.md draws them, highest first."""
    width = max(len(" · ".join(layer)) for layer in LAYERS)
    lines = ["```", "imports point down, never up"]
    for number, layer in reversed(list(enumerate(LAYERS))):
        lines.append(f"{number:>2}  {' · '.join(layer):<{width}}")
    lines.append("```")
    return "\n".join(line.rstrip() for line in lines)


def test_docs_draw_the_layers_the_tests_enforce() -> None:
    text = (ROOT / "docs" / "architecture.md").read_text()
    assert picture() in text, "docs/architecture.md: replace the picture with\n" + picture()


def test_every_module_belongs_to_a_layer() -> None:
    for module in modules():
        layer_of(module)


def test_imports_point_down_the_layers() -> None:
    found = upward_imports()
    new = [
        f"{imp.source}:{imp.line} imports {imp.target}" for key, imp in sorted(found.items()) if key not in KNOWN_UPWARD
    ]
    assert new == [], "imports against the layers of docs/architecture.md:\n" + "\n".join(new)
    gone = [f"{source} -> {target}" for source, target in KNOWN_UPWARD if (source, target) not in found]
    assert gone == [], "fixed, remove from KNOWN_UPWARD:\n" + "\n".join(gone)


def test_the_worker_side_package_needs_nothing_but_celery_and_redis() -> None:
    allowed = {"celery", "kombu", "redis"}
    #: Only pytest loads the pytest plugin, so pytest is there whenever it runs.
    plugin_only = {"celeriac.pytest_plugin": {"pytest"}}
    for module, path in modules().items():
        if not module.startswith("celeriac"):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            roots = []
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                roots = [node.module.split(".")[0]]
            for root in roots:
                import sys

                assert root in allowed | plugin_only.get(module, set()) or root == "celeriac" or (
                    root in sys.stdlib_module_names
                ), (
                    f"{module} imports {root}: the celeriac package depends on celery and redis only"
                )


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0

    def visit(node: str) -> None:
        nonlocal counter
        index[node] = low[node] = counter
        counter += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("package", ["celeriac", "app", "ops_ui", "tasks"])
def test_no_import_cycles(package: str) -> None:
    """Runtime imports only: an annotation-only import (`if TYPE_CHECKING`) never runs."""
    edges: dict[str, set[str]] = {}
    for imp in all_imports():
        if imp.typing_only:
            continue
        if imp.source.split(".")[0] == package and imp.target.split(".")[0] == package:
            edges.setdefault(imp.source, set()).add(imp.target)
    assert _cycles(edges) == []


def test_no_module_over_400_lines() -> None:
    long = {
        module: count
        for module, path in modules().items()
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}, f"split these (one reason to change each): {long}"
