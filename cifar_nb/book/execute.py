"""Execute the book's notebooks with papermill: `python -m cifar_nb execute [--preview] ...`.

The reviewed sources are jupytext percent-format files in notebooks/. Each is converted to a notebook in
memory, executed by papermill with its parameters, and written, executed, to book/<name>.ipynb, which is
what `make book` renders (it never executes anything itself). Runs already finished in results/ are
reused, not retrained (cifar_nb.engine.runs.run returns them), so executing again is cheap.

    --preview   tiny budgets on CPU, on the data at hand: the CIFAR-10 JPEG stand-in for the CIFAR-100
                chapters and the regenerated AddNIST for report E's classifier. Bannered in every notebook.
    (default)   the reports' own budgets and datasets (a GPU and CIFAR-100 are needed for new runs).

The data root and results folder reach the notebooks through $CIFAR_NB_DATA and $CIFAR_NB_RESULTS, not
as parameters, so an executed notebook holds no machine's absolute paths and re-executes anywhere.
"""
from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

from cifar_nb.book.status import write as write_status
from cifar_nb.config import PREVIEW_BATCH_SIZE, PREVIEW_FID_SAMPLES, PREVIEW_SEEDS, PREVIEW_STEPS, PROJECT_ROOT
from cifar_nb.engine import queue
from cifar_nb.engine.artifacts import git_commit

# Book order. (notebook, run kind, preview dataset). The summary reads every other notebook's runs.
NOTEBOOKS = [
    ("report_a_classifier", "classifier", "cifar10-jpeg"),
    ("report_b_classifier", "classifier", "cifar10-jpeg"),
    ("report_c_classifier", "classifier", "cifar10-jpeg"),
    ("report_d", "classifier", "cifar10-jpeg"),
    ("report_e_classifier", "classifier", "addnist"),
    ("report_a_generator", "gan", "cifar10-jpeg"),
    ("report_b_generator", "diffusion", "cifar10-jpeg"),
    ("report_c_generator", "gan", "cifar10-jpeg"),
    ("report_e_generator", "gan", "cifar10-jpeg"),
    ("beyond_the_reports", "classifier", "cifar10-jpeg"),
    ("summary", None, None),
]
KINDS = {name: kind for name, kind, _ in NOTEBOOKS}
# The experiments each chapter runs (the names its first cell hands to chapter.start).
EXPERIMENTS = {
    "report_a_classifier": ["A-classifier"],
    "report_b_classifier": ["B-classifier", "B-ablation-1", "B-ablation-2", "B-ablation-3", "B-ablation-4"],
    "report_c_classifier": ["C-classifier"],
    "report_d": ["D-search", "D-search-inbudget"],
    "report_e_classifier": ["E-classifier"],
    "report_a_generator": ["A-generator"],
    "report_b_generator": ["B-generator", "B-generator-sigmoid-128", "B-generator-linear"],
    "report_c_generator": ["C-generator"],
    "report_e_generator": ["E-generator"],
    "beyond_the_reports": ["ours-classifier", "ours-generator", "C-generator"],
}

FULL_SEEDS = [0, 1, 2]
KERNEL = "python3"


def root() -> Path:
    return PROJECT_ROOT


def parameters(name: str, preview: bool, device: str) -> dict:
    """The papermill parameters of one notebook (see each notebook's `parameters` cell)."""
    kind = KINDS[name]
    p = dict(device=device, dataset=None, data_root=None, steps=None, batch_size=None,
             seeds=list(FULL_SEEDS), fid_samples=None, results_dir=None, preview=preview, full_budget=None)
    if preview:
        p.update(seeds=list(PREVIEW_SEEDS), fid_samples=PREVIEW_FID_SAMPLES)
        if kind is not None:
            p.update(steps=PREVIEW_STEPS[kind], batch_size=PREVIEW_BATCH_SIZE[kind],
                     dataset=dict((n, d) for n, _, d in NOTEBOOKS)[name])
    return p


def from_results(name: str, device: str, results_dir=None) -> dict | None:
    """Parameters that render a chapter from the finished full-budget runs in results/ (no training). When only
    some of its experiments have them on the chapter's preview dataset, the chapter is a preview whose
    full_budget names those, so each part is shown as what it is. None when none has any (the chapter then
    stays as it is)."""
    exps = EXPERIMENTS.get(name)
    if not exps:
        return None
    done = [e for e in queue.plan(results_dir=results_dir or root() / "results") if e.state == "done" and e.experiment in exps]
    for dataset in sorted({e.config.dataset for e in done}):
        seeds = [{e.seed for e in done if e.experiment == n and e.config.dataset == dataset} for n in exps]
        common = set.intersection(*seeds)
        if common:
            p = parameters(name, False, device)
            p.update(seeds=sorted(common), dataset=dataset)
            return p
    p = parameters(name, True, device)
    partial = {n: sorted({e.seed for e in done if e.experiment == n and e.config.dataset == p["dataset"]})
               for n in exps}
    partial = {n: s for n, s in partial.items() if s}
    if not partial:
        return None
    p.update(full_budget=partial)
    return p


def failure_line(e: BaseException) -> str:
    """The notebook's own exception line (papermill carries it as ename/evalue), not source around it."""
    if getattr(e, "ename", None):
        return f"{e.ename}: {e.evalue}"
    lines = [ln for ln in str(e).strip().splitlines() if ln.strip()]
    return lines[-1] if lines else type(e).__name__


def toggle_label(cell) -> str | None:
    """What a folded cell's toggle says in the book: what it hides, not 'Show code cell content'."""
    tags = set(cell.metadata.get("tags", []))
    src = cell.get("source", "")
    if not tags & {"hide-input", "hide-cell", "hide-output"}:
        return None
    if "injected-parameters" in tags:
        return "Show the parameters this execution was given"
    if "chapter.start" in src:
        return "Show the code that checks this chapter's parameters and trains or reuses its runs"
    if "for_notebook(" in src or "run_all(" in src:
        if "hide-cell" not in tags and "hide-input" not in tags:
            return "Show the log of the runs this cell trains or reuses"
        return "Show the code that trains or reuses the runs, and its log"
    if "hide-output" in tags:
        return "Show the output"
    first = next((ln.lstrip("# ").strip() for ln in src.splitlines() if ln.startswith("#")), "")
    return f"Show the code: {first}" if first else "Show the code"


def load_source(path: Path):
    """A jupytext percent-format .py as an unexecuted notebook with the project's kernel."""
    import jupytext
    nb = jupytext.read(path)
    nb.metadata["kernelspec"] = {"name": KERNEL, "display_name": "Python 3 (cifar-nb)", "language": "python"}
    nb.metadata.pop("jupytext", None)
    return nb


def execute(name: str, params: dict, src_dir: Path, out_dir: Path, failed_dir: Path) -> Path:
    """Execute one notebook; the executed copy replaces out_dir/<name>.ipynb only if every cell ran."""
    import nbformat
    import papermill as pm

    src = src_dir / f"{name}.py"
    if not src.exists():
        raise FileNotFoundError(f"no notebook source {src}")
    out_dir.mkdir(parents=True, exist_ok=True)
    work = failed_dir.parent / "executing"        # not in book/: a killed run leaves nothing there
    work.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=work, prefix=f"{name}.", suffix=".ipynb")
    os.close(fd)
    try:
        pm.execute_notebook(load_source(src), tmp, parameters=params, kernel_name=KERNEL, cwd=str(out_dir),
                            progress_bar=False, log_output=False)
    except BaseException:
        failed_dir.mkdir(parents=True, exist_ok=True)
        if Path(tmp).exists() and Path(tmp).stat().st_size:
            os.replace(tmp, failed_dir / f"{name}.ipynb")
        Path(tmp).unlink(missing_ok=True)
        raise
    nb = nbformat.read(tmp, as_version=4)
    for cell in nb.cells:      # the run card states the parameters; keep their cell folded in the book
        tags = cell.metadata.setdefault("tags", [])
        if "injected-parameters" in tags and "hide-cell" not in tags:
            tags.append("hide-cell")
        label = toggle_label(cell)
        if label:
            cell.metadata.setdefault("mystnb", {})["code_prompt_show"] = label
    pmeta = nb.metadata.get("papermill", {})
    pmeta["input_path"] = f"notebooks/{name}.py"
    pmeta["output_path"] = f"book/{name}.ipynb"
    nbformat.write(nb, tmp)
    final = out_dir / f"{name}.ipynb"
    os.replace(tmp, final)
    final.chmod(0o644)            # mkstemp made it private; the book is for reading
    return final


def run_notebooks(names: list[str] | None = None, preview: bool = False, device: str = "auto", data_root=None,
                  results_dir=None, from_results_only: bool = False, output_dir=None, source_dir=None) -> int:
    """Execute the named notebooks (default: all, in book order) with papermill into book/; 0 when all
    succeeded, 1 when some failed (the others still run). `python -m cifar_nb execute` (cli.py) calls it."""
    names = [Path(n).stem for n in (names or list(KINDS))]
    unknown = [n for n in names if n not in KINDS]
    if unknown:
        raise ValueError(f"unknown notebook {unknown[0]!r}; known: {', '.join(KINDS)}")
    if data_root:
        if not Path(data_root).is_dir():
            raise ValueError(f"--data-root {data_root} is not a folder")
        os.environ["CIFAR_NB_DATA"] = str(Path(data_root).resolve())
    if results_dir:
        os.environ["CIFAR_NB_RESULTS"] = str(Path(results_dir).resolve())
    src_dir = Path(source_dir) if source_dir else root() / "notebooks"
    out_dir = Path(output_dir) if output_dir else root() / "book"
    failed_dir = root() / "_build" / "failed"

    if git_commit().endswith("+dirty"):
        print("warning: the code has uncommitted changes, so every run card of this execution will say "
              "'+dirty'. Commit first, then execute, then commit the executed notebooks.", file=sys.stderr)
    status = 0
    if from_results_only:
        os.environ["CIFAR_NB_REUSE_ONLY"] = "1"
    for n in names:
        params = parameters(n, preview, device)
        if from_results_only and n != "summary":
            params = from_results(n, device, results_dir)
            if params is None:
                print(f"skipping {n}: none of its experiments has finished full-budget runs yet")
                continue
        t0 = time.monotonic()
        seeds = ", ".join(map(str, params["seeds"]))
        full = params.get("full_budget") or {}
        what = (f"preview, seeds {seeds}, with full-budget runs of " + "; ".join(
                    f"{e} (seeds {', '.join(map(str, s))})" for e, s in full.items())) if full else \
            f"{'preview' if params['preview'] else 'full budget'}, seeds {seeds}"
        print(f"executing {n} ({what}) ...", flush=True)
        try:
            out = execute(n, params, src_dir, out_dir, failed_dir)
        except Exception as e:   # keep going with the rest
            print(f"FAILED {n} after {time.monotonic() - t0:.0f} s: {failure_line(e)}\n"
                  f"  the partly executed notebook is in {failed_dir / (n + '.ipynb')}", file=sys.stderr)
            status = 1
            continue
        if n == "summary" or n == names[-1]:
            write_status(root() / "book" / "_status.md", results_dir)
        print(f"  wrote {out.relative_to(root()) if out.is_relative_to(root()) else out} "
              f"in {time.monotonic() - t0:.0f} s", flush=True)
    return status

