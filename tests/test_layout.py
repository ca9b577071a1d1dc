"""The package's shape: no import cycles between bench modules (lazy imports inside functions included),
and modules that stay readable."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "bench"


def module_name(path: Path) -> str:
    """``bench/eval/runner.py`` → ``eval.runner``."""
    return ".".join(path.relative_to(PKG).with_suffix("").parts)


def _resolve(dotted: str, names: list[str]) -> set[str]:
    """Modules named by ``from bench.<dotted> import <names>`` (a module, or a package's submodules)."""
    if (PKG / (dotted.replace(".", "/") + ".py")).exists():
        return {dotted}
    return {f"{dotted}.{n}" if dotted else n for n in names}


def import_graph() -> dict[str, set[str]]:
    modules = {module_name(p) for p in PKG.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for path in sorted(PKG.rglob("*.py")):
        mod = module_name(path)
        deps: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "bench":
                dotted = node.module.partition(".")[2]
                deps |= _resolve(dotted, [a.name for a in node.names])
            elif isinstance(node, ast.Import):
                deps.update(a.name.partition(".")[2] for a in node.names if a.name.startswith("bench."))
        graph[mod] = {d for d in deps if d in modules and d != mod}
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(n: str) -> list[str] | None:
        state[n] = 1
        stack.append(n)
        for d in sorted(graph.get(n, ())):
            if state.get(d) == 1:
                return [*stack[stack.index(d) :], d]
            if d not in state and (cycle := visit(d)):
                return cycle
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(graph):
        if n not in state and (cycle := visit(n)):
            return cycle
    return None


def test_no_import_cycles() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_cycle_finder_finds_a_planted_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_backends_import_the_contract_not_each_other() -> None:
    graph = import_graph()
    for backend in ("generation.llamacpp", "generation.openai_compat", "training.lora_gguf"):
        assert "generation.transformers_backend" not in graph[backend], backend
        assert "generation.registry" not in graph[backend], backend
    assert "generation.base" in graph["generation.transformers_backend"]


def test_the_tree_reads_like_the_pipeline() -> None:
    """Only the shared foundation sits at the top; every stage is a package."""
    top = {p.stem for p in PKG.glob("*.py")}
    foundation = {"__init__", "__main__", "artifacts", "cli", "cli_help", "config", "config_checks"}
    foundation |= {"config_sections", "errors", "io", "offline", "weights"}
    assert top == foundation, top
    stages = {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()}
    assert {"ingest", "retrieval", "training", "generation", "eval", "reporting"} <= stages, stages


def test_the_import_graph_sees_package_imports() -> None:
    graph = import_graph()
    assert "eval.runner" in graph
    assert "config" in graph["eval.runner"]
    assert "eval.stages" in graph["eval.runner"]
    assert any(d.startswith("retrieval.") for d in graph["eval.stages"]), graph["eval.stages"]  # lazy import


MAX_MODULE_LINES = 300


def test_modules_stay_readable() -> None:
    """Every module stays under ~300 lines: split along a real seam rather than grow one file."""
    too_long = {
        str(p.relative_to(PKG.parent)): n
        for p in sorted(PKG.rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"
