"""The package imports only downward: the graph of its internal imports has no cycle.

Function-level imports count too: one that closes a cycle would only hide it until the function runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src"


def _module_name(path: Path, src: Path) -> str:
    parts = list(path.relative_to(src).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules(src: Path) -> dict[str, Path]:
    return {_module_name(p, src): p for p in sorted((src / "crossvit").rglob("*.py"))}


def import_edges(src: Path = SRC) -> dict[str, set[tuple[str, bool]]]:
    """module -> {(imported internal module, imported inside a function)} for every ``import`` under ``src``."""
    mods = _modules(src)
    edges: dict[str, set[tuple[str, bool]]] = {m: set() for m in mods}
    for mod, path in mods.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(), str(path))
        nested = {
            id(n)
            for f in ast.walk(tree)
            if isinstance(f, (ast.FunctionDef, ast.AsyncFunctionDef))
            for n in ast.walk(f)
            if n is not f
        }
        for node in ast.walk(tree):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    pkg = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (node.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                # ``from .pkg import mod`` imports the submodule when there is one, else a name of the package
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in node.names]
            elif isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            for t in targets:
                if t in mods and t != mod:
                    edges[mod].add((t, id(node) in nested))
    return edges


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    """One cycle of the directed graph as a list of modules (first == last), or None."""
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    stack: list[str] = []

    def visit(m: str) -> list[str] | None:
        state[m] = 1
        stack.append(m)
        for n in sorted(edges.get(m, ())):
            if state.get(n) == 1:
                return stack[stack.index(n) :] + [n]
            if n not in state and (c := visit(n)):
                return c
        stack.pop()
        state[m] = 2
        return None

    for m in sorted(edges):
        if m not in state and (c := visit(m)):
            return c
    return None


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": {"c"}, "d": {"a", "c"}}) is None


def test_edges_see_relative_and_function_level_imports(tmp_path: Path) -> None:
    edges = import_edges()
    assert ("crossvit.models.config", False) in edges["crossvit.models.model"]  # ``from .config import ...`` at the top
    assert ("crossvit.models.layers.attention", False) in edges[
        "crossvit.models.layers.block"
    ]  # ``from .attention import``
    # src/ imports none of its own modules inside a function any more: a made-up package shows one would be seen
    pkg = tmp_path / "crossvit"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "low.py").write_text("def f():\n    from . import high\n")
    (pkg / "high.py").write_text("from .low import f\n")
    fake = import_edges(tmp_path)
    assert fake["crossvit.low"] == {("crossvit.high", True)} and fake["crossvit.high"] == {("crossvit.low", False)}
    assert find_cycle({m: {t for t, _ in deps} for m, deps in fake.items()}) is not None


def test_internal_imports_have_no_cycle() -> None:
    edges = import_edges()
    graph = {m: {t for t, _ in deps} for m, deps in edges.items()}
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


# Packages from the bottom up: a module may import its own package and the packages before it, never one after.
LAYERS = ("models", "io", "runtime", "data", "train", "serve", "cli")
# The only module allowed function-level imports of the package: the server's command builds the FastAPI app only
# when it starts, because fastapi is an optional dependency (``pip install crossvit[serve]``).
LAZY_ALLOWED = {"crossvit.serve.cli"}


def _layer(mod: str) -> int | None:
    parts = mod.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_sits_in_a_layer() -> None:
    loose = [m for m in _modules(SRC) if _layer(m) is None and m not in ("crossvit", "crossvit.__main__")]
    assert not loose, f"modules outside the layer packages {LAYERS}: {loose}"


def test_lower_layers_never_import_higher_ones() -> None:
    bad = [
        f"{m} ({LAYERS[_layer(m)]}) imports {t}"
        for m, deps in import_edges().items()
        if _layer(m) is not None
        for t, _ in deps
        if t == "crossvit" or (_layer(t) is not None and _layer(t) > _layer(m))
    ]
    assert not bad, "upward imports:\n" + "\n".join(sorted(bad))


def test_layers_rank_packages_bottom_up() -> None:
    assert _layer("crossvit.models.layers.block") == _layer("crossvit.models.model") < _layer("crossvit.io.hub")
    assert _layer("crossvit.runtime.fast") < _layer("crossvit.train.trainer") < _layer("crossvit.cli.main")
    assert _layer("crossvit") is None and _layer("crossvit.__main__") is None


def test_function_level_imports_only_where_a_dependency_is_optional() -> None:
    lazy = sorted(
        f"{m} -> {t}" for m, deps in import_edges().items() for t, inner in deps if inner and m not in LAZY_ALLOWED
    )
    assert not lazy, "function-level imports of crossvit modules:\n" + "\n".join(lazy)
