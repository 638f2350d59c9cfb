"""No import cycle: every module of the four packages imports alone, and the import graph — function-local
imports included — has no cycle (a lazy import only postpones a cycle, it does not remove it).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("deploy", "profilers", "lut", "hwnas")


def _modules() -> dict[str, Path]:
    mods = {}
    for pkg in PACKAGES:
        for path in sorted((REPO / pkg).rglob("*.py")):
            parts = list(path.relative_to(REPO).with_suffix("").parts)
            if parts[-1] == "__main__":
                continue  # running it is its purpose: `python -m hwnas`
            if parts[-1] == "__init__":
                parts = parts[:-1]
            mods[".".join(parts)] = path
    return mods


def _imports(path: Path, known: dict[str, Path]) -> set[str]:
    """Project modules ``path`` imports anywhere (module level and inside functions), except in
    ``if TYPE_CHECKING:`` blocks, which never run."""

    def resolve(name: str) -> str | None:
        while name and name not in known:
            name = name.rpartition(".")[0]
        return name or None

    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
                continue
            if isinstance(child, ast.Import):
                found.update(m for m in (resolve(a.name) for a in child.names) if m)
            elif isinstance(child, ast.ImportFrom) and child.module and child.level == 0:
                for a in child.names:  # `from pkg import submodule` depends on the submodule
                    m = resolve(f"{child.module}.{a.name}") or resolve(child.module)
                    if m:
                        found.add(m)
            else:
                visit(child)

    visit(ast.parse(path.read_text()))
    return found


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            connect(v)
    return out


def test_import_graph_has_no_cycle_even_through_function_local_imports():
    mods = _modules()
    graph = {m: _imports(p, mods) - {m} for m, p in mods.items()}
    assert len(graph) > 80
    assert ("hwnas.blocks" in graph["hwnas.space"]) and ("hwnas.space" not in graph["hwnas.model"])
    assert _cycles(graph) == []


def test_cycle_detector_finds_a_cycle_hidden_in_a_function():
    tree = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(tree) == [["a", "b", "c"]]


# in a fresh interpreter: forget every project module, import one, repeat (third-party modules such as
# torch stay loaded, so the whole walk takes seconds, not one interpreter start per module)
_WALK = """
import importlib, json, sys, traceback
failures = {}
for name in json.loads(sys.argv[1]):
    for loaded in [m for m in sys.modules if m.split(".")[0] in PACKAGES]:
        del sys.modules[loaded]
    try:
        importlib.import_module(name)
    except BaseException as e:  # noqa: BLE001 - report every kind of failure, including SystemExit
        failures[name] = traceback.format_exception_only(type(e), e)[-1].strip()
print(json.dumps(failures))
"""


def test_every_module_imports_alone():
    names = sorted(_modules())
    code = f"PACKAGES = {PACKAGES!r}\n" + _WALK
    out = subprocess.run([sys.executable, "-c", code, json.dumps(names)], cwd=REPO, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    failures = json.loads(out.stdout.strip().splitlines()[-1])
    assert failures == {}, "\n".join(f"{k}: {v}" for k, v in failures.items())
