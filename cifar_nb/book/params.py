"""A notebook's papermill parameters, checked and resolved (validate_parameters -> Params), and the runs
they name (Params.run_all: trained, or reused from results/)."""
from __future__ import annotations

import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import TqdmWarning

from cifar_nb import experiments
from cifar_nb.book.audit import default_results_dir
from cifar_nb.book.display import rel_path
from cifar_nb.config import PREVIEW_STEPS, RunConfig, derive
from cifar_nb.engine import artifacts, data
from cifar_nb.engine import runs as runs_mod
from cifar_nb.engine.artifacts import RunResult
from cifar_nb.engine.runtime import resolve_device

# Dataset names the notebooks accept (cifar_nb.engine.data resolves them); imagefolder:<path> is also allowed.
DATASETS = ("cifar100", "cifar10", "cifar10-jpeg", "addnist")
STAND_IN = "cifar10-jpeg"        # the natural-image stand-in a preview falls back to without CIFAR-100
DEVICES = ("auto", "cpu", "cuda", "mps")
DEFAULT_SEEDS = (0, 1, 2)


# ---------------------------------------------------------------------------------------------
# parameters

@dataclass
class Params:
    """A notebook's papermill parameters, checked and resolved. Build it with validate_parameters."""

    experiments: tuple
    device: str
    dataset: str | None          # None: each experiment's own dataset
    data_root: str | None
    steps: int | None            # None: each experiment's own (the report's) step count
    batch_size: int | None
    seeds: list
    fid_samples: int | None
    results_dir: Path
    preview: bool
    started: float = field(default_factory=time.monotonic)
    dataset_fallback: bool = False   # a preview moved to the stand-in because CIFAR-100 is not under the data root
    card: object = None          # the run card's display handle, updated by finish()
    results: dict = field(default_factory=dict)
    # Experiments shown from their finished full-budget runs (name -> seeds) although the chapter is a
    # preview: a chapter whose experiments are only partly run at full budget shows those parts as they are.
    full_budget: dict = field(default_factory=dict)

    def is_full(self, name: str) -> bool:
        """The experiment runs at its report's budget here: a full execution, or a full-budget part of a preview."""
        return name in self.full_budget or (not self.preview and self.steps is None)

    def seeds_of(self, name: str) -> list:
        return list(self.full_budget.get(name) or self.seeds)

    def steps_of(self, name: str) -> int:
        recipe = experiments.get(name).config.steps
        return recipe if name in self.full_budget else (self.steps or recipe)

    def dataset_of(self, name: str) -> str:
        return self.dataset or experiments.get(name).config.dataset

    def config(self, name: str, seed: int | None = None) -> RunConfig:
        """The run a notebook asks for: the report's recipe with the notebook's overrides (config.derive); an
        experiment in full_budget keeps its recipe's budget and takes only the chapter's dataset."""
        seed = self.seeds_of(name)[0] if seed is None else seed
        recipe = experiments.get(name).make_config(dataset=self.dataset_of(name))
        if name in self.full_budget:
            return derive(recipe, seed, self.dataset)
        return derive(recipe, seed, self.dataset, self.steps, self.batch_size_of(name), self.fid_samples, self.preview)

    def batch_size_of(self, name: str) -> int | None:
        """The batch an experiment runs at. In a preview the chapter's one batch size goes to the experiment
        with the largest recipe batch, and the others are scaled down with it, so that arms told apart by
        their batch (report B's sigmoid schedule at 256 and at 128) stay two runs."""
        if not (self.preview and self.batch_size):
            return self.batch_size
        lead = max(experiments.get(n).config.batch_size for n in self.experiments)
        return max(1, self.batch_size * experiments.get(name).config.batch_size // lead)

    def configs(self, name: str) -> list[RunConfig]:
        return [self.config(name, s) for s in self.seeds_of(name)]

    def run(self, name: str, progress: bool = False) -> list[RunResult]:
        """Every seed of one experiment: trained here, or reused when results/ holds it finished."""
        out = []
        for cfg in self.configs(name):
            t0 = time.monotonic()
            r = runs_mod.run(cfg, device=self.device, data_root=self.data_root,
                             results_dir=self.results_dir, progress=progress)
            what = "reused from results/" if r.reused else f"trained in {time.monotonic() - t0:,.0f} s"
            print(f"{name} seed {cfg.seed}: {what} ({rel_path(r.run_dir)})")
            out.append(r)
        self.results[name] = out
        return out

    def run_all(self, progress: bool = False) -> dict[str, list[RunResult]]:
        return {name: self.run(name, progress) for name in self.experiments}

    def missing(self) -> list[RunConfig]:
        """Runs that are not finished in results/ and so need training."""
        return [c for n in self.experiments for c in self.configs(n)
                if artifacts.load_complete(c, self.results_dir) is None]


def validate_parameters(experiment_names, *, device="auto", dataset=None, data_root=None, steps=None,
                        batch_size=None, seeds=DEFAULT_SEEDS, fid_samples=None, results_dir=None,
                        preview=False, full_budget=None) -> Params:
    """Check a notebook's parameters before anything runs; raise one ValueError saying what to do."""
    names = [experiment_names] if isinstance(experiment_names, str) else list(experiment_names)
    for n in names:
        if n not in experiments.REGISTRY:
            raise ValueError(f"unknown experiment {n!r}; known: {', '.join(experiments.REGISTRY)}")
    kinds = {experiments.get(n).kind for n in names}

    if not isinstance(preview, bool):
        raise ValueError(f"preview must be True or False, got {preview!r}")
    if not isinstance(device, str) or not (device in DEVICES or re.fullmatch(r"cuda:\d+", device)):
        raise ValueError(f"device must be one of {', '.join(DEVICES)} or 'cuda:N', got {device!r}")
    if dataset is not None and not (isinstance(dataset, str) and (dataset in DATASETS
                                                                  or dataset.startswith("imagefolder:"))):
        raise ValueError(f"unknown dataset {dataset!r}: use one of {', '.join(DATASETS)}, "
                         "'imagefolder:<path>', or None for the report's own dataset")
    if steps is not None:
        if not _positive_int(steps):
            raise ValueError(f"steps must be a positive whole number of optimisation steps, or None for the "
                             f"report's own count; got {steps!r}")
        for n in names:
            exp = experiments.get(n)
            if steps > exp.budget.max_steps and not exp.out_of_budget:
                raise ValueError(f"steps={steps:,} is over the {exp.budget.name} budget of "
                                 f"{exp.budget.max_steps:,} steps ({n}); use at most that, or None")
    if batch_size is not None and not _positive_int(batch_size):
        raise ValueError(f"batch_size must be a positive whole number, or None for the report's own; "
                         f"got {batch_size!r}")
    if _positive_int(seeds) or seeds == 0:
        seeds = [seeds]
    if (not isinstance(seeds, (list, tuple)) or not seeds
            or not all(_positive_int(s) or s == 0 for s in seeds) or any(isinstance(s, bool) for s in seeds)):
        raise ValueError(f"seeds must be a non-empty list of non-negative whole numbers, e.g. [0, 1, 2]; "
                         f"got {seeds!r}")
    if len(set(seeds)) != len(seeds):
        raise ValueError(f"seeds must not repeat (a repeat is the same run twice); got {list(seeds)!r}")
    if fid_samples is not None and not (_positive_int(fid_samples) and fid_samples >= 2):
        raise ValueError(f"fid_samples must be a whole number >= 2, or None for the protocol's 10,000; "
                         f"got {fid_samples!r}")
    full_budget = _check_full_budget(full_budget, names, preview)
    if data_root is not None:
        if not isinstance(data_root, (str, Path)) or not Path(data_root).is_dir():
            raise ValueError(f"data_root {data_root!r} is not a folder; pass the folder that holds the "
                             "datasets, or None to use $CIFAR_NB_DATA")
        data_root = str(data_root)
    if results_dir is not None and not isinstance(results_dir, (str, Path)):
        raise ValueError(f"results_dir must be a path or None (the project's results/), got {results_dir!r}")
    if preview and steps is None and kinds:
        steps = min(PREVIEW_STEPS[experiments.get(n).kind] for n in names if n not in full_budget) \
            if set(names) - set(full_budget) else None
    fallback = False
    if preview and dataset is None and any(experiments.get(n).config.dataset == "cifar100" for n in names):
        if not data.cifar_files_present("cifar100", data_root):
            # the rule `make preview` follows: a preview runs on the stand-in when CIFAR-100 is not here
            dataset, fallback = STAND_IN, True

    resolved = _resolve_device(device)
    P = Params(tuple(names), resolved, dataset, data_root, steps, batch_size, list(seeds), fid_samples,
               Path(results_dir) if results_dir is not None else default_results_dir(), preview)
    P.dataset_fallback = fallback
    P.full_budget = full_budget
    todo = P.missing()
    if todo and os.environ.get("CIFAR_NB_REUSE_ONLY") == "1":
        names_ = ", ".join(f"{c.experiment} seed {c.seed}" for c in todo)
        raise ValueError(f"this execution reuses finished runs only (CIFAR_NB_REUSE_ONLY=1), but {len(todo)} are "
                         f"not in {P.results_dir}: {names_}. Train them first (python -m cifar_nb queue run), "
                         "or execute without --from-results")
    if todo and resolved is None:
        raise ValueError(f"device={device!r} is not available here and {len(todo)} run(s) are not in "
                         f"{P.results_dir} yet, so they need training; pass device='cpu' (slow) or 'auto', "
                         "or run this notebook on a machine with that device")
    if resolved is None:    # everything is reused: no training, so any device will do
        P.device = "cpu"
    if todo:
        _check_data_root(data_root, {c.dataset for c in todo})
    _style_figures()
    return P


def _check_full_budget(full_budget, names: list[str], preview: bool) -> dict:
    """{experiment: [seeds]} of the chapter's experiments to show from full-budget runs inside a preview."""
    if full_budget is None:
        return {}
    if not isinstance(full_budget, dict):
        raise ValueError("full_budget must be None or a dict {experiment: [seeds]} of the chapter's experiments "
                         f"to show from their full-budget runs; got {full_budget!r}")
    if full_budget and not preview:
        raise ValueError("full_budget names the full-budget parts of a preview; without preview=True every "
                         "experiment runs at full budget already, so leave it None")
    out = {}
    for n, seeds in full_budget.items():
        if n not in names:
            raise ValueError(f"full_budget names {n!r}, which is not an experiment of this chapter "
                             f"({', '.join(names)})")
        if (not isinstance(seeds, (list, tuple)) or not seeds or len(set(seeds)) != len(seeds)
                or not all(_positive_int(s) or s == 0 for s in seeds) or any(isinstance(s, bool) for s in seeds)):
            raise ValueError(f"full_budget[{n!r}] must be a non-empty list of distinct seeds, e.g. [0]; got {seeds!r}")
        out[n] = sorted(seeds)
    return out


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _resolve_device(device: str) -> str | None:
    """The device to train on, or None when the one asked for is not here (fine if nothing needs training)."""
    try:
        return str(resolve_device(device))
    except ValueError:
        return None


def _check_data_root(data_root, datasets: set) -> None:
    root_fn = getattr(data, "data_root", None)
    if root_fn is None:
        return
    try:
        root_fn(data_root)
    except Exception as e:   # DataError: the message says where the data should be
        raise ValueError(f"runs on {', '.join(sorted(datasets))} need training but the data root is not "
                         f"usable: {e}") from None


def _style_figures() -> None:
    """Modest PNGs: the executed notebooks are committed and must stay small."""
    try:   # tqdm.auto's note that ipywidgets is absent: the notebooks show no progress bars anyway
        warnings.filterwarnings("ignore", category=TqdmWarning)
    except ImportError:
        pass
    import matplotlib
    matplotlib.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80, "figure.figsize": (7.0, 3.6),
                                "axes.grid": True, "grid.alpha": 0.3})
    try:   # in a kernel: show cifar_nb.book.plots' Figures (built without pyplot) as PNG
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
        if get_ipython() is not None:
            set_matplotlib_formats("png", dpi=80)
    except ImportError:
        pass
