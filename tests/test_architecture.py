"""The package's import rules, checked on its source: the layers import one way and nothing imports in a circle.

Layers, lowest first, one folder each (see ARCHITECTURE.md):
    spec     what is run: cifar_nb/config.py, budget.py, experiments.py and the architectures they count, models/
    engine   how it is run: cifar_nb/engine/ (data, augment, train, evaluate, artifacts, runs, queue, search, lease)
    book     how it is shown: cifar_nb/book/ (parameters, run cards, tables, verdicts, plots, status, execute)
    cli      the command line: cifar_nb/cli.py, __main__.py
Every import counts, also those inside functions (a lazy import is still a dependency), and only heavy
optional libraries may be imported inside a function.
"""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "cifar_nb"
SPEC = {"config", "budget", "experiments", "ablations", "models"}
CLI = {"cli", "flags", "__main__"}
# what a function may import: heavy, optional or display-only libraries, which a plain `import cifar_nb` should not load
LAZY_OK = {"torch_fidelity", "lpips", "optuna", "papermill", "nbformat", "jupytext", "IPython", "matplotlib",
           "matplotlib_inline", "sqlalchemy"}


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
    """A module's layer is the folder it sits in."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else ""
    if top in ("engine", "book"):
        return top
    if top in SPEC:
        return "spec"
    return "cli"


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
    assert "cifar_nb.engine.artifacts" in graph["cifar_nb.engine.runs"] and "cifar_nb.config" in graph["cifar_nb.experiments"]
    assert "cifar_nb.engine.train.context" in graph["cifar_nb.engine.runs"]          # a dotted relative import
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
    for m in [*(m for m in graph if m.startswith("cifar_nb.engine.evaluate")), "cifar_nb.engine.figures"]:
        assert "cifar_nb.engine.runs" not in graph[m], f"{m} imports the orchestrator"
    trainers = graph["cifar_nb.engine.train.gan"] | graph["cifar_nb.engine.train.diffusion"]
    assert not any(d.startswith("cifar_nb.engine.runs") for d in trainers)


def test_every_module_sits_in_its_layers_folder():
    top = {p.stem if p.suffix else p.name for p in PACKAGE.iterdir() if p.name != "__pycache__" and
           (p.suffix == ".py" or p.is_dir())}
    assert top == SPEC | CLI | {"engine", "book", "__init__"}, f"modules outside the layer folders: {top}"
    assert layer("cifar_nb.engine.train.gan") == "engine" and layer("cifar_nb.book.report") == "book"
    assert layer("cifar_nb.models.dcgan") == "spec" and layer("cifar_nb.cli") == "cli"


def hidden_imports(source: str, where: str = "") -> list[str]:
    """Imports inside functions of anything but LAZY_OK (relative imports are the package's own)."""
    out = []
    for fn in ast.walk(ast.parse(source)):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.ImportFrom):
                    mods = ["cifar_nb"] if node.level else [node.module]
                elif isinstance(node, ast.Import):
                    mods = [a.name for a in node.names]
                else:
                    continue
                out += [f"{where}:{node.lineno} {fn.name}() imports {m}" for m in mods
                        if m.split(".")[0] not in LAZY_OK]
    return out


def test_hidden_imports_are_found():
    src = "def f():\n    from cifar_nb.engine import runs\n    import optuna\n    import io\n"
    assert hidden_imports(src, "x.py") == ["x.py:2 f() imports cifar_nb.engine", "x.py:4 f() imports io"]


def test_only_heavy_optional_libraries_are_imported_inside_functions():
    found = [h for name, path in modules().items()
             for h in hidden_imports(path.read_text(), str(path.relative_to(PACKAGE.parent)))]
    assert not found, "imports hidden inside functions:\n" + "\n".join(found)
