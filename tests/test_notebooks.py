"""Regression test of the executed notebooks in book/: nbval re-executes each one and compares outputs.

The notebooks reuse the finished runs committed under results/, so re-execution trains nothing and
must reproduce every compared output exactly. Cells whose output is volatile by nature (the run card,
training logs, generated figures) are tagged `nbval-ignore-output`; tests/sanitize.cfg masks what
little volatile text is left. Two further tests make sure the regression can fail: enough cells are
actually compared, and a deliberately altered output is caught.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BOOK = ROOT / "book"
SANITIZE = ROOT / "tests" / "sanitize.cfg"
IGNORE_TAGS = {"nbval-ignore-output", "nbval-skip"}
IGNORE_MARKERS = ("NBVAL_IGNORE_OUTPUT", "NBVAL_SKIP", "PYTEST_VALIDATE_IGNORE_OUTPUT")
UNCOMPARED_MIME = {"image/png", "image/jpeg"}      # nbval skips images unless run with --nbdime
MIN_COMPARED_PER_NOTEBOOK = 3
MIN_COMPARED_TOTAL = 60


def executed_notebooks() -> list[Path]:
    return sorted(BOOK.glob("*.ipynb"))


def nbval(paths, cwd=ROOT, timeout=900) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONHASHSEED="0", MPLBACKEND="module://matplotlib_inline.backend_inline")
    env.pop("CIFAR_NB_RESULTS", None)         # the committed results/, whatever the caller's shell says
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--nbval", "--nbval-current-env",
           "--nbval-sanitize-with", str(SANITIZE), "--rootdir", str(cwd), "-o", "testpaths=",
           *map(str, paths)]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def compared_cells(nb: dict) -> list[dict]:
    """Code cells whose outputs nbval will compare: not tagged or marked to be ignored, with some
    output that is not an image."""
    out = []
    for cell in nb["cells"]:
        if cell["cell_type"] != "code":
            continue
        tags = set(cell.get("metadata", {}).get("tags", []))
        src = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
        if tags & IGNORE_TAGS or any(m in src for m in IGNORE_MARKERS):
            continue
        keys = set()
        for o in cell.get("outputs", []):
            keys |= set(o.get("data", {})) - UNCOMPARED_MIME if "data" in o else {o["output_type"]}
        if keys:
            out.append(cell)
    return out


def toc_chapters() -> list[str]:
    import yaml
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    return [c["file"] for part in toc["parts"] for c in part["chapters"]]


def test_every_notebook_chapter_of_the_toc_is_executed():
    """Each notebook chapter the book lists has its executed copy in book/, and vice versa."""
    from cifar_nb.book.execute import NOTEBOOKS
    names = {p.stem for p in executed_notebooks()}
    listed = {Path(f).name for f in toc_chapters() if Path(f).name in {n for n, _, _ in NOTEBOOKS}}
    assert listed, "_toc.yml lists no notebook chapter"
    missing = sorted(listed - names)
    assert not missing, f"book/ lacks executed notebooks {missing}: run `make preview` (or make reproduce)"
    unlisted = sorted(names - listed)
    assert not unlisted, f"executed notebooks {unlisted} are not in _toc.yml"


def test_enough_cells_are_compared():
    counts = {}
    for p in executed_notebooks():
        counts[p.stem] = len(compared_cells(json.loads(p.read_text())))
    assert counts, "no executed notebooks in book/"
    thin = {k: v for k, v in counts.items() if v < MIN_COMPARED_PER_NOTEBOOK}
    assert not thin, f"notebooks with fewer than {MIN_COMPARED_PER_NOTEBOOK} compared cells: {thin}"
    assert sum(counts.values()) >= MIN_COMPARED_TOTAL, counts


def test_executed_notebooks_hold_no_errors_or_machine_paths():
    for p in executed_notebooks():
        nb = json.loads(p.read_text())
        for cell in nb["cells"]:
            for o in cell.get("outputs", []):
                assert o["output_type"] != "error", f"{p.name}: a cell raised {o.get('ename')}: {o.get('evalue')}"
        text = p.read_text()
        assert str(ROOT) not in text, f"{p.name} holds this checkout's absolute path {ROOT}"


@pytest.mark.slow
def test_nbval_reproduces_the_executed_notebooks():
    paths = executed_notebooks()
    assert paths, "no executed notebooks in book/: run `make preview`"
    res = nbval(paths)
    tail = (res.stdout + res.stderr)[-6000:]
    assert res.returncode == 0, f"nbval found differences or errors:\n{tail}"
    m = re.search(r"(\d+) passed", res.stdout)
    assert m and int(m.group(1)) >= len(paths), tail


@pytest.mark.slow
def test_nbval_fails_on_an_altered_output(tmp_path):
    """Change one digit in one compared output of a copy: nbval must report the mismatch."""
    src = BOOK / "summary.ipynb"
    if not src.exists():
        src = executed_notebooks()[0]
    nb = json.loads(src.read_text())
    for cell in compared_cells(nb):
        for o in cell["outputs"]:
            for mime in ("text/markdown", "text/plain"):
                text = o.get("data", {}).get(mime)
                if text is None:
                    continue
                joined = "".join(text) if isinstance(text, list) else text
                if re.search(r"\d", joined):
                    altered = re.sub(r"\d", lambda d: str((int(d.group()) + 1) % 10), joined, count=1)
                    o["data"][mime] = altered
                    break
            else:
                continue
            break
        else:
            continue
        break
    else:
        pytest.fail(f"{src.name} has no compared output with a digit to alter")
    copy = tmp_path / src.name
    copy.write_text(json.dumps(nb))
    shutil.copy(SANITIZE, tmp_path / "sanitize.cfg")
    res = nbval([copy], cwd=tmp_path)
    assert res.returncode != 0, "nbval passed a notebook whose output was altered: the regression cannot fail"
    assert "mismatch" in (res.stdout + res.stderr).lower(), (res.stdout + res.stderr)[-3000:]




@pytest.mark.parametrize("name", [n for n, _, _ in __import__("cifar_nb.book.execute").book.execute.NOTEBOOKS])
def test_notebook_sources_take_the_parameters_and_validate_them_first(name):
    """Each jupytext source has a `parameters` cell with every parameter, and the code cell after it is one
    call (beside its imports): chapter.start, which validates them before anything runs, for the experiments
    that `execute` knows the chapter by."""
    import ast

    import jupytext

    from cifar_nb.book import chapter, execute
    nb = jupytext.read(ROOT / "notebooks" / f"{name}.py")
    code = [c for c in nb.cells if c.cell_type == "code"]
    i = next(i for i, c in enumerate(code) if "parameters" in c.metadata.get("tags", []))
    assigned = {t.id for node in ast.parse(code[i].source).body if isinstance(node, ast.Assign)
                for t in node.targets if isinstance(t, ast.Name)}
    assert set(chapter.PARAMETERS) <= assigned, f"{name}: parameters cell lacks {set(chapter.PARAMETERS) - assigned}"
    first = [n for n in ast.parse(code[i + 1].source).body if not isinstance(n, (ast.Import, ast.ImportFrom))]
    assert len(first) == 1, f"{name}: the first cell must be one call, not:\n{code[i + 1].source}"
    call = first[0].value
    assert isinstance(call, ast.Call) and ast.unparse(call.func) in ("chapter.start", "chapter.start_summary"), \
        f"{name}: the first cell must call chapter.start"
    assert ast.unparse(call.args[0]) == "globals()"
    assert [a.value for a in call.args[1:]] == execute.EXPERIMENTS.get(name, [])
    for c in code:   # narrative and calls only: the library does the work
        tree = ast.parse(c.source)
        assert not any(isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef, ast.Lambda))
                       for n in ast.walk(tree)), f"{name}: a notebook cell defines a function or class:\n{c.source}"


def test_execute_parameters_and_arguments():
    from cifar_nb import config
    from cifar_nb.book import execute
    p = execute.parameters("report_e_classifier", preview=True, device="cpu")
    assert p["dataset"] == "addnist" and p["preview"] is True and p["steps"] == config.PREVIEW_STEPS["classifier"]
    p = execute.parameters("report_a_generator", preview=True, device="cpu")
    assert p["dataset"] == "cifar10-jpeg" and p["fid_samples"] == config.PREVIEW_FID_SAMPLES
    full = execute.parameters("report_a_generator", preview=False, device="cuda")
    assert full["dataset"] is None and full["steps"] is None and full["seeds"] == [0, 1, 2]
    assert all(v is None for k, v in full.items() if k in ("data_root", "results_dir"))   # no machine paths
    from cifar_nb import cli
    with pytest.raises(SystemExit):
        cli.main(["execute", "--notebooks", "no_such_notebook"])


def test_every_chapter_s_preview_runs_are_found_by_the_configs_the_code_derives():
    """config.derive must keep giving the committed previews' configs (and so their hashes): a change there
    would make `make preview` retrain everything instead of re-rendering it."""
    from cifar_nb.book import execute, params
    from cifar_nb.engine import artifacts
    missing = []
    for name, exps in execute.EXPERIMENTS.items():
        if name == "report_d":      # the search derives its own trials (search.preview_plan)
            continue
        p = execute.parameters(name, True, "cpu")
        P = params.validate_parameters(exps, **{k: v for k, v in p.items() if k != "results_dir"})
        missing += [f"{c.experiment} seed {c.seed} ({c.hash})" for n in exps for c in P.configs(n)
                    if artifacts.load_complete(c, P.results_dir) is None]
    assert not missing, f"previews not found in results/: {missing}"


FIGURE_CALLS = ("plots.plot_history(", "plots.plot_comparison(", "plots.plot_claims(", "chapter.show_figure(",
                "chapter.show_image(",
                "report.beside_real_cifar100(")


def test_every_figure_has_a_numbered_caption():
    """A cell that draws one figure carries myst-nb's figure metadata, so the book numbers it (Fig. N) and
    captions it; the names are unique across the book, so a reference to one cannot land on another."""
    import jupytext
    names, seen = [], 0
    for src in sorted((ROOT / "notebooks").glob("*.py")):
        for c in jupytext.read(src).cells:
            if c.cell_type != "code" or not c.source.lstrip().startswith(FIGURE_CALLS):
                continue
            seen += 1
            fig = c.metadata.get("mystnb", {}).get("figure", {})
            assert len(fig.get("caption", "")) > 30 and fig.get("name"), f"{src.name}: uncaptioned figure\n{c.source}"
            names.append(fig["name"])
    assert seen >= 35 and len(names) == len(set(names))


def test_committed_artifacts_hold_no_machine_paths():
    """Artifacts are read on other machines: paths in them are relative to the project or to ~ (artifacts.portable)."""
    import re
    home = str(Path.home())
    pattern = re.compile(r"(?<![\w.~])/(?:root|home|work|tmp|Users)/")
    found = []
    for p in sorted((ROOT / "results").rglob("*.json")):
        text = p.read_text()
        if str(ROOT) in text or home + "/" in text or pattern.search(text):
            found.append(str(p.relative_to(ROOT)))
    assert not found, f"absolute machine paths in {found[:5]} ({len(found)} files)"


def test_portable_paths():
    from cifar_nb.engine.artifacts import portable
    assert portable(ROOT / "results" / "x") == "results/x"
    assert portable(Path.home() / ".cache" / "torch") == "~/.cache/torch"
    assert portable("/opt/elsewhere") == "/opt/elsewhere"
