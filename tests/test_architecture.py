"""The package's import rules, checked on its source: the layers import one way and nothing imports in a circle.

Layers, lowest first (see the README's layout):
    spec     what is run: config, budget, experiments (and the architectures they count, models/)
    engine   how it is run: data, augment, train/, metrics, sampling, figures, artifacts, runs, runtime, queue,
             search, lease/
    book     how it is shown: notebook, report, audit, plots, status, execute, search_tables
    cli      the command line
Every import counts, also those inside functions (a lazy import is still a dependency).
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cifar_nb"
SPEC = {"config", "budget", "experiments", "models"}
BOOK = {"notebook", "report", "audit", "plots", "status", "execute", "search_tables"}
CLI = {"cli", "__main__"}


def modules() -> dict[str, Path]:
    out = {}
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = p
    return out


def imports(mods: dict[str, Path]) -> dict[str, set[str]]:
    """module -> the package modules it imports, resolved from relative and absolute imports."""
    graph = {}
    for name, path in mods.items():
        pkg = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = pkg.split(".")[:len(pkg.split(".")) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    deps.add(sub if sub in mods else target)
            elif isinstance(node, ast.Import):
                deps.update(a.name for a in node.names)
        graph[name] = {d for d in deps if d in mods and d != name}
    return graph


def layer(module: str) -> str:
    top = module.split(".")[1] if "." in module else ""
    if module == "cifar_nb":
        return "cli"
    if top in SPEC:
        return "spec"
    if top in BOOK:
        return "book"
    if top in CLI:
        return "cli"
    return "engine"


ORDER = {"spec": 0, "engine": 1, "book": 2, "cli": 3}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in graph:
        if v not in index:
            visit(v)
    return out


def test_the_import_graph_is_read_from_the_source():
    graph = imports(modules())
    assert "cifar_nb.artifacts" in graph["cifar_nb.runs"] and "cifar_nb.config" in graph["cifar_nb.experiments"]
    assert "cifar_nb.train.context" in graph["cifar_nb.runs"]          # a dotted relative import
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back_in_a_circle():
    found = cycles(imports(modules()))
    assert not found, f"import circles (function-level imports included): {found}"


def test_layers_import_one_way():
    graph = imports(modules())
    back = sorted(f"{m} ({layer(m)}) -> {d} ({layer(d)})" for m, deps in graph.items() for d in deps
                  if ORDER[layer(d)] > ORDER[layer(m)])
    assert not back, "imports against the layers (spec -> engine -> book -> cli):\n" + "\n".join(back)


def test_config_and_the_architectures_stand_alone():
    graph = imports(modules())
    assert graph["cifar_nb.config"] == set()
    for m, deps in graph.items():
        if m.startswith("cifar_nb.models"):
            assert all(d.startswith("cifar_nb.models") for d in deps), f"{m} imports {deps}"


def test_scoring_never_starts_a_run():
    graph = imports(modules())
    for m in ("cifar_nb.metrics", "cifar_nb.sampling", "cifar_nb.figures"):
        assert "cifar_nb.runs" not in graph[m], f"{m} imports the orchestrator"
    trainers = graph["cifar_nb.train.gan"] | graph["cifar_nb.train.diffusion"]
    assert not any(d.startswith("cifar_nb.runs") for d in trainers)
