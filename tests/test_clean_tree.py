"""The suite leaves no trace: `git status` is the same after a test run as before it, nothing is ever written
into the data root, and what the book's notebooks rewrite (report D's summary.json) is the same bytes in
every clone."""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# The small files of the data root that the subset below reads; never the full CIFAR pickles.
SMALL_DATA = ("README.md", "cifar100-sample.npz", "cifar-100-meta", "cifar10-jpeg.tar.gz", "mnist")
# A fast slice of the suite that reads the data root, caches datasets and writes results (about 20 s on one
# core). The test that runs it is not in it.
SUBSET = ("tests/test_budget.py", "tests/test_data.py")


def git_status() -> str:
    p = subprocess.run(["git", "-C", str(ROOT), "status", "--porcelain", "--untracked-files=all"],
                       capture_output=True, text=True, timeout=60)
    assert p.returncode == 0, p.stderr
    return p.stdout


def is_git_checkout() -> bool:
    if shutil.which("git") is None:
        return False
    p = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--show-toplevel"], capture_output=True, text=True)
    return p.returncode == 0 and Path(p.stdout.strip()).resolve() == ROOT.resolve()


def listing(folder: Path) -> dict[str, tuple]:
    """Every file and folder under `folder` (itself included) with its size, mtime and mode."""
    out = {}
    for p in [folder, *sorted(folder.rglob("*"))]:
        st = p.lstat()
        out[str(p.relative_to(folder))] = (stat.S_IFMT(st.st_mode), st.st_size if p.is_file() else None,
                                           st.st_mtime_ns, stat.S_IMODE(st.st_mode))
    return out


def set_writable(folder: Path, writable: bool) -> None:
    for p in [folder, *folder.rglob("*")]:
        mode = stat.S_IMODE(p.lstat().st_mode)
        p.chmod(mode | stat.S_IWUSR if writable else mode & ~(stat.S_IWUSR | stat.S_IWGRP | stat.S_IWOTH))


@pytest.mark.realdata
def test_a_test_run_leaves_git_status_and_the_data_root_as_they_were(data_root, tmp_path):
    if not is_git_checkout():
        pytest.skip(f"{ROOT} is not a git checkout: there is no `git status` to compare")
    data = tmp_path / "data"
    data.mkdir()
    for name in SMALL_DATA:
        src = data_root / name
        if src.is_dir():
            shutil.copytree(src, data / name)
        elif src.is_file():
            shutil.copy2(src, data / name)
    set_writable(data, False)          # chmod -R a-w (root ignores it: the listing below is the real check)
    before_data, before_git = listing(data), git_status()
    env = dict(os.environ, CIFAR_NB_DATA=str(data), CIFAR_NB_CACHE=str(tmp_path / "cache"),
               CIFAR_NB_CHECKPOINTS=str(tmp_path / "checkpoints"), OMP_NUM_THREADS="1")
    env.pop("CIFAR_NB_RESULTS", None)
    try:
        p = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "not slow",
                            *SUBSET], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        after_data, after_git = listing(data), git_status()
    finally:
        set_writable(data, True)       # so that tmp_path can be removed
    assert p.returncode == 0, f"the subset failed, so the check proves nothing:\n{p.stdout[-3000:]}{p.stderr[-2000:]}"
    assert " passed" in p.stdout
    assert after_git == before_git, (f"the test run changed `git status --porcelain`:\nbefore:\n{before_git}\n"
                                     f"after:\n{after_git}")
    changed = sorted(k for k in before_data.keys() | after_data.keys() if before_data.get(k) != after_data.get(k))
    assert not changed, f"the test run wrote into the data root: {changed}"


def _book_parameters() -> dict:
    nb = json.loads((ROOT / "book" / "report_d.ipynb").read_text())
    return nb["metadata"].get("papermill", {}).get("parameters") or {}


@pytest.mark.parametrize("experiment", ["D-search", "D-search-inbudget"])
def test_report_d_summary_is_the_same_bytes_in_any_clone(experiment, tmp_path):
    """Rebuild the committed summary.json of report D's search from a copy of results/ at another absolute path,
    as re-executing the notebook does: the bytes must be the committed ones (no machine path in them)."""
    optuna = pytest.importorskip("optuna")
    from cifar_nb.engine import artifacts, search
    p = _book_parameters()
    if p.get("preview"):
        plan = search.preview_plan(experiment, p.get("dataset"), retrain_steps=p.get("steps") or 60,
                                   batch_size=p.get("batch_size"))
        seeds = list(p.get("seeds", [0]))[:1]
    else:
        plan = search.make_plan(experiment, 1.0, dataset=p.get("dataset"), batch_size=p.get("batch_size"),
                                retrain_steps=p.get("steps"))
        seeds = list(p.get("seeds", [0, 1, 2]))
    committed = search.search_dir(plan, ROOT / "results") / "summary.json"
    if not committed.is_file():
        pytest.skip(f"no committed {committed.relative_to(ROOT)} for the book's parameters {p}")
    results = tmp_path / "elsewhere" / "results"
    shutil.copytree(ROOT / "results" / experiment, results / experiment)
    d = search.search_dir(plan, results)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=plan.study_name, storage=f"sqlite:///{d / 'study.db'}")
    retrained = []
    for rank, t in enumerate(search.top_trials(study, plan.top_k), start=1):
        cfg = search.retrain_config(plan, t)
        found = [artifacts.load_complete(cfg.replace(seed=s), results) for s in seeds]
        assert all(found), f"a retrained run of trial {t.number} is not committed under results/{experiment}"
        retrained.append(search.Retrained(rank, t, found))
    res = search.SearchResult(plan, study, retrained, d)
    artifacts.atomic_write_json(d / "summary.json", res.summary())          # what run_all writes
    written = (d / "summary.json").read_text()
    assert all(not Path(r).is_absolute() and r.startswith(f"{experiment}/")
               for t in json.loads(written)["top"] for r in t["runs"])
    assert str(tmp_path) not in written and str(ROOT) not in written
    assert written == committed.read_text(), f"{committed.relative_to(ROOT)} would be rewritten differently"
