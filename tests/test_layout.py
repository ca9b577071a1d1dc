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
    for backend in ("generation.llamacpp", "generation.openai_compat", "generation.lora_gguf"):
        assert "generation.transformers_backend" not in graph[backend], backend
        assert "generation.registry" not in graph[backend], backend
    assert "generation.base" in graph["generation.transformers_backend"]


def test_the_tree_reads_like_the_pipeline() -> None:
    """Only the shared foundation sits at the top; every stage is a package."""
    top = {p.stem for p in PKG.glob("*.py")}
    foundation = {
        "__init__",
        "__main__",
        "artifacts",
        "cli",
        "cli_dist",
        "cli_help",
        "cli_judge",
        "config",
        "config_checks",
    }
    foundation |= {
        "config_sections",
        "environment",
        "errors",
        "io",
        "model_registry",
        "offline",
        "recipe_keys",
    }
    foundation |= {"profiles", "variant_specs", "weights"}
    assert top == foundation, top
    stages = {p.name for p in PKG.iterdir() if (p / "__init__.py").exists()}
    assert {"core", "ingest", "retrieval", "training", "generation", "eval", "reporting"} <= stages, stages


def test_the_import_graph_sees_package_imports() -> None:
    graph = import_graph()
    assert "eval.runner" in graph
    assert "config" in graph["eval.runner"]
    assert "eval.stages" in graph["eval.runner"]
    assert any(d.startswith("retrieval.") for d in graph["eval.stages"]), graph["eval.stages"]  # lazy import


MAX_MODULE_LINES = 400


def test_modules_stay_readable() -> None:
    """Every module stays under ~400 lines: split along a real seam (cohesion), not to meet a count."""
    too_long = {
        str(p.relative_to(PKG.parent)): n
        for p in sorted(PKG.rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_MODULE_LINES
    }
    assert not too_long, f"modules over {MAX_MODULE_LINES} lines: {too_long}"


def package_of(module: str) -> str:
    """The room a module lives in: ``eval.runner`` → ``eval``; a top-level module is its own (``config``)."""
    return module.split(".")[0]


def two_way_pairs(graph: dict[str, set[str]]) -> dict[frozenset[str], list[str]]:
    """Packages that import each other (lazy imports included), each with the imports that make it so."""
    edges: dict[tuple[str, str], list[str]] = {}
    for mod, deps in graph.items():
        for dep in sorted(deps):
            if package_of(mod) != package_of(dep):
                edges.setdefault((package_of(mod), package_of(dep)), []).append(f"{mod} -> {dep}")
    return {
        frozenset(ab): edges[ab] + edges[(ab[1], ab[0])]
        for ab in edges
        if ab[0] < ab[1] and ab[::-1] in edges
    }


# Two-way package pairs (issue 27: "layers that only point down"): none are left. Keep it empty: a new pair
# means an import points up, so move the shared code down (bench/core/ or the ground modules) instead.
KNOWN_TWO_WAY: set[frozenset[str]] = set()


def test_no_new_two_way_package_pairs() -> None:
    new = {
        " <-> ".join(sorted(p)): how
        for p, how in two_way_pairs(import_graph()).items()
        if p not in KNOWN_TWO_WAY
    }
    assert not new, f"packages that now import each other (imports only point down): {new}"


def test_known_two_way_pairs_are_still_there() -> None:
    """An allow-list entry that no longer holds is dropped from KNOWN_TWO_WAY, so the list only shrinks."""
    pairs = two_way_pairs(import_graph())
    gone = sorted(" <-> ".join(sorted(p)) for p in KNOWN_TWO_WAY if p not in pairs)
    assert not gone, f"no longer two-way, remove from KNOWN_TWO_WAY: {gone}"


# The floors of the house, bottom up: a package imports only its own floor or the floors below it.
LAYERS = {
    "ground": {"__init__", "artifacts", "config", "config_checks", "config_sections", "environment", "errors"}
    | {"io", "profiles"}
    | {"model_registry", "recipe_keys", "variant_specs", "weights"},
    "vocabulary": {"core"},
    "stages": {"ingest", "retrieval", "training", "generation", "questions"},
    "orchestration": {"eval", "reporting", "tracking", "export", "perf"},
    "entry": {"__main__", "cli", "cli_dist", "cli_help", "cli_judge", "offline", "interactive"},
}
FLOOR = {pkg: n for n, pkgs in enumerate(LAYERS.values()) for pkg in pkgs}


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    """Imports from a lower floor to a higher one (lazy imports included)."""
    return [
        f"{mod} -> {dep}"
        for mod, deps in sorted(graph.items())
        for dep in sorted(deps)
        if FLOOR[package_of(dep)] > FLOOR[package_of(mod)]
    ]


def test_every_package_has_a_floor() -> None:
    packages = {package_of(m) for m in import_graph()}
    assert packages == set(FLOOR), f"place these in LAYERS: {packages ^ set(FLOOR)}"


def test_imports_only_point_down() -> None:
    up = upward_imports(import_graph())
    assert not up, f"imports that point up a floor (move the shared code down): {up}"


def test_packages_import_each_other_in_no_cycle() -> None:
    """Across packages on one floor (ingest → retrieval → training → ingest would pass the pair test)."""
    graph: dict[str, set[str]] = {}
    for mod, deps in import_graph().items():
        graph.setdefault(package_of(mod), set()).update(package_of(d) for d in deps)
    cycle = find_cycle({p: ds - {p} for p, ds in graph.items()})
    assert cycle is None, " -> ".join(cycle or [])


def test_upward_finder_finds_a_planted_import() -> None:
    assert upward_imports({"core.metrics": {"eval.scoring"}, "eval.scoring": {"core.metrics"}}) == [
        "core.metrics -> eval.scoring"
    ]


def test_two_way_finder_finds_a_planted_pair() -> None:
    graph = {"a.x": {"b.y"}, "b.y": {"c"}, "b.z": {"a.w"}, "a.w": set(), "c": set()}
    assert two_way_pairs(graph) == {frozenset({"a", "b"}): ["a.x -> b.y", "b.z -> a.w"]}
    assert (
        two_way_pairs({"a.x": {"a.y"}, "a.y": {"a.x"}, "b": {"a.x"}}) == {}
    )  # inside one package: the cycle test


MAX_FUNCTION_LINES = 80
# Functions over MAX_FUNCTION_LINES (issue 27): none are left; keep it empty (split along a real seam).
LONG_FUNCTIONS: set[str] = set()


def long_functions(limit: int = MAX_FUNCTION_LINES) -> dict[str, int]:
    """``path:Qualified.name`` → lines (``def`` line to last line) of every function longer than ``limit``."""
    out: dict[str, int] = {}

    def visit(node: ast.AST, path: str, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            name = prefix
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                name = f"{prefix}{child.name}"
                n = (child.end_lineno or child.lineno) - child.lineno + 1
                if not isinstance(child, ast.ClassDef) and n > limit:
                    out[f"{path}:{name}"] = n
                name += "."
            visit(child, path, name)

    for p in sorted(PKG.rglob("*.py")):
        visit(ast.parse(p.read_text(encoding="utf-8")), str(p.relative_to(PKG)), "")
    return out


def test_functions_fit_a_screen() -> None:
    too_long = {k: n for k, n in long_functions().items() if k not in LONG_FUNCTIONS}
    assert not too_long, f"functions over {MAX_FUNCTION_LINES} lines (split along a real seam): {too_long}"


def test_long_function_allow_list_only_shrinks() -> None:
    gone = sorted(LONG_FUNCTIONS - set(long_functions()))
    assert not gone, f"no longer over {MAX_FUNCTION_LINES} lines, remove from LONG_FUNCTIONS: {gone}"
    assert long_functions(10)["eval/runner.py:_run_variant"] > 10  # the finder sees module-level functions


def test_no_module_imports_a_private_name_of_another() -> None:
    """A name with a leading underscore stays in its module: neither ``from bench.x import _y`` nor
    ``x._y`` on an imported bench module (a helper that others need is public and named for it)."""

    root = Path(__file__).resolve().parents[1]
    found = []
    for path in sorted((root / "bench").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        modules: set[str] = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("bench"):
                for alias in node.names:
                    target = root / Path(*f"{node.module}.{alias.name}".split("."))
                    if target.with_suffix(".py").exists() or target.is_dir():
                        modules.add(alias.asname or alias.name)
                    elif alias.name.startswith("_") and not alias.name.startswith("__"):
                        found.append(f"{path.relative_to(root)}:{node.lineno} imports {alias.name}")
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id in modules
                and node.attr.startswith("_")
                and not node.attr.startswith("__")
            ):
                found.append(f"{path.relative_to(root)}:{node.lineno} uses {node.value.id}.{node.attr}")
    assert found == []


def test_no_stand_in_objects_built_with_type() -> None:
    """No fake objects: ``type("T", (), {...})()`` stood in for a trainer's state in the snapshots; typed
    state (a dataclass) is handed over instead."""
    root = Path(__file__).resolve().parents[1] / "bench"
    found = [
        f"{p.relative_to(root)}:{node.lineno}"
        for p in sorted(root.rglob("*.py"))
        for node in ast.walk(ast.parse(p.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call)
        and isinstance(node.func, ast.Name)
        and node.func.id in ("type", "SimpleNamespace")
        and (node.func.id == "SimpleNamespace" or len(node.args) == 3)
    ]
    assert found == []


def test_the_environment_is_configured_in_one_place() -> None:
    """Process-wide defaults (RAGAS_DO_NOT_TRACK, TOKENIZERS_PARALLELISM): set by bench.environment only."""
    root = Path(__file__).resolve().parents[1] / "bench"
    setters = sorted(
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if any(
            f'"{v}"' in p.read_text(encoding="utf-8")
            for v in ("RAGAS_DO_NOT_TRACK", "TOKENIZERS_PARALLELISM")
        )
    )
    assert setters == ["environment.py"]


def test_variant_metadata_is_defined_once() -> None:
    """Labels, colours and the report order live on the specs in bench/variant_specs.py: any other module
    with a dict literal mapping three or more variant names to strings, or a literal list of eight or more
    of them, is a second definition that would drift."""
    import ast

    from bench.variant_specs import VARIANTS

    root = Path(__file__).resolve().parents[1] / "bench"
    found = []
    for path in sorted(root.rglob("*.py")):
        if path.name == "variant_specs.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Dict):
                names = [k.value for k in node.keys if isinstance(k, ast.Constant) and k.value in VARIANTS]
                texts = all(isinstance(v, ast.Constant) and isinstance(v.value, str) for v in node.values)
                if len(names) >= 3 and texts:  # labels or colours (not a name → function registry)
                    found.append(f"{path.relative_to(root)}:{node.lineno} dict keyed by {names}")
            elif isinstance(node, ast.Tuple | ast.List):
                names = [e.value for e in node.elts if isinstance(e, ast.Constant) and e.value in VARIANTS]
                if len(names) >= 8:
                    found.append(f"{path.relative_to(root)}:{node.lineno} list of {len(names)} variants")
    assert found == []
