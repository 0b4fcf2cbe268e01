"""What the book's notebooks show, computed here so that a notebook holds only narrative and calls.

    P = validate_parameters(["B-classifier"], device=..., dataset=..., steps=..., ...)  # first cell
    runs = P.run_all()            # {experiment: [RunResult per seed]}: trained, or reused from results/
    show_run_card(P, runs)        # where, how and how long the numbers were made (+ preview banner)
    claims_table(P, runs)         # the report's claims beside ours, mean ± sample std, with a verdict
    finish(P)                     # last cell: puts the notebook's total wall time on the run card
    leaderboard()                 # the summary chapter: every experiment's headline claim, from results/

Verdicts (book/methods.md says the same in prose; keep the two in step):
  "claim breaks the report's rules"  the report's own parameter or step count is over its budget.
  "unmeasurable here"                our runs are not on the report's dataset, or not at its step count,
                                     or the metric cannot be computed here (FID without the Inception
                                     weights and the CIFAR-100 test set), or nothing has been run yet.
  "reproduced"                       |claimed - our mean| <= max(2 * our sample std over seeds, TOLERANCE).
  "not reproduced"                   otherwise.
"""
from __future__ import annotations

import contextlib
import html
import inspect
import json
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import budget, experiments, runs as runs_mod
from .runs import RunConfig, RunResult

# tqdm.auto falls back to the text bar without ipywidgets, warning with this venv's absolute path,
# which would otherwise land in every executed notebook.
warnings.filterwarnings("ignore", message="IProgress not found")

# Dataset names the notebooks accept (cifar_nb.data resolves them); imagefolder:<path> is also allowed.
DATASETS = ("cifar100", "cifar10", "cifar10-jpeg", "addnist")
DEVICES = ("auto", "cpu", "cuda", "mps")
# A preview is a smoke test of the whole pipeline, not a measurement.
PREVIEW_STEPS = {"classifier": 60, "gan": 60, "diffusion": 60}
PREVIEW_SAMPLE_STEPS = 20        # respaced DDPM sampler in previews (report B samples with all 1,000)
PREVIEW_TRAIN_EVAL = 1000        # training images scored at each evaluation in previews (default 10,000)
PREVIEW_FEATURE_STEPS = 60       # FD-cls feature classifier steps in previews (the protocol: 2,000)
DEFAULT_SEEDS = (0, 1, 2)
# Agreement needed for "reproduced", besides 2 sample std of our seeds. Fractions for accuracies.
TOLERANCE = {"acc": ("abs", 0.02), "loss": ("rel", 0.10), "fid": ("rel", 0.10), "lpips": ("abs", 0.02)}

REPRODUCED = "reproduced"
NOT_REPRODUCED = "not reproduced"
UNMEASURABLE = "unmeasurable here"
BREAKS_RULES = "claim breaks the report's rules"
VERDICTS = (REPRODUCED, NOT_REPRODUCED, UNMEASURABLE, BREAKS_RULES)


def project_root() -> Path:
    return Path(__file__).resolve().parents[1]


def default_results_dir() -> Path:
    """$CIFAR_NB_RESULTS, else the project's results/ (wherever the notebook runs from)."""
    if os.environ.get("CIFAR_NB_RESULTS"):
        return Path(os.environ["CIFAR_NB_RESULTS"])
    root = project_root()
    return root / "results" if (root / "pyproject.toml").exists() else Path("results")


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
    card: object = None          # the run card's display handle, updated by finish()
    results: dict = field(default_factory=dict)

    def dataset_of(self, name: str) -> str:
        return self.dataset or experiments.get(name).config.dataset

    def config(self, name: str, seed: int | None = None) -> RunConfig:
        """The run a notebook asks for: the report's recipe with the notebook's overrides."""
        exp = experiments.get(name)
        cfg = exp.config
        changes: dict = {"seed": self.seeds[0] if seed is None else seed}
        if self.dataset is not None:
            changes["dataset"] = self.dataset
        if self.steps is not None and self.steps != cfg.steps:
            changes["steps"] = self.steps
            changes["eval_every"] = min(cfg.eval_every, max(1, self.steps // (3 if self.preview else 5)))
        if self.preview and cfg.kind == "classifier":
            changes["train"] = dict(cfg.train, train_eval_size=PREVIEW_TRAIN_EVAL)   # cheaper evaluations
        if self.batch_size is not None:
            changes["batch_size"] = self.batch_size
        if cfg.kind in ("gan", "diffusion"):
            train = dict(cfg.train)
            if self.fid_samples is not None:
                train["fid_samples"] = self.fid_samples
            if self.preview and cfg.kind == "diffusion":
                train["sample_steps"] = PREVIEW_SAMPLE_STEPS
            changes["train"] = train
        return cfg.replace(**changes)

    def configs(self, name: str) -> list[RunConfig]:
        return [self.config(name, s) for s in self.seeds]

    def run(self, name: str, progress: bool = False) -> list[RunResult]:
        """Every seed of one experiment: trained here, or reused when results/ holds it finished."""
        out = []
        for cfg in self.configs(name):
            t0 = time.monotonic()
            with _preview_feature_classifier(self.preview and cfg.kind != "classifier"):
                r = runs_mod.run(cfg, device=self.device, data_root=self.data_root,
                                 results_dir=self.results_dir, progress=progress)
            what = "reused from results/" if r.reused else f"trained in {time.monotonic() - t0:,.0f} s"
            print(f"{name} seed {cfg.seed}: {what} ({_rel(r.run_dir)})")
            out.append(r)
        self.results[name] = out
        return out

    def run_all(self, progress: bool = False) -> dict[str, list[RunResult]]:
        return {name: self.run(name, progress) for name in self.experiments}

    def missing(self) -> list[RunConfig]:
        """Runs that are not finished in results/ and so need training."""
        return [c for n in self.experiments for c in self.configs(n)
                if runs_mod.load_complete(c, self.results_dir) is None]


@contextlib.contextmanager
def _preview_feature_classifier(active: bool):
    """In a preview, the FD-cls feature classifier trains PREVIEW_FEATURE_STEPS steps, not 2,000 (a CPU
    preview cannot afford more; its FD-cls says how many steps its features had). Stopgap until the
    generator trainers take a train["feature_steps"] knob: it swaps evaluate_generator's default."""
    if not active:
        yield
        return
    from . import metrics
    kw = metrics.evaluate_generator.__kwdefaults__
    old = kw["feature_steps"]
    kw["feature_steps"] = PREVIEW_FEATURE_STEPS
    try:
        yield
    finally:
        kw["feature_steps"] = old


def validate_parameters(experiment_names, *, device="auto", dataset=None, data_root=None, steps=None,
                        batch_size=None, seeds=DEFAULT_SEEDS, fid_samples=None, results_dir=None,
                        preview=False) -> Params:
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
    if data_root is not None:
        if not isinstance(data_root, (str, Path)) or not Path(data_root).is_dir():
            raise ValueError(f"data_root {data_root!r} is not a folder; pass the folder that holds the "
                             "datasets, or None to use $CIFAR_NB_DATA")
        data_root = str(data_root)
    if results_dir is not None and not isinstance(results_dir, (str, Path)):
        raise ValueError(f"results_dir must be a path or None (the project's results/), got {results_dir!r}")
    if preview and steps is None and kinds:
        steps = min(PREVIEW_STEPS[k] for k in kinds)

    resolved = _resolve_device(device)
    P = Params(tuple(names), resolved, dataset, data_root, steps, batch_size, list(seeds), fid_samples,
               Path(results_dir) if results_dir is not None else default_results_dir(), preview)
    todo = P.missing()
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


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _resolve_device(device: str) -> str | None:
    import torch
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        return None
    if device == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        return None
    return device


def _check_data_root(data_root, datasets: set) -> None:
    from . import data
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
    import warnings
    try:   # tqdm.auto's note that ipywidgets is absent: the notebooks show no progress bars anyway
        from tqdm import TqdmWarning
        warnings.filterwarnings("ignore", category=TqdmWarning)
    except ImportError:
        pass
    import matplotlib
    matplotlib.rcParams.update({"figure.dpi": 80, "savefig.dpi": 80, "figure.figsize": (7.0, 3.6),
                                "axes.grid": True, "grid.alpha": 0.3})
    try:   # in a kernel: show cifar_nb.plots' Figures (built without pyplot) as PNG
        from IPython import get_ipython
        from matplotlib_inline.backend_inline import set_matplotlib_formats
        if get_ipython() is not None:
            set_matplotlib_formats("png", dpi=80)
    except ImportError:
        pass


# ---------------------------------------------------------------------------------------------
# small display objects: Markdown for Jupyter and the book (MyST), plain text for terminals and nbval

class Markdown:
    def __init__(self, text: str):
        self.text = text

    def _repr_markdown_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.text


class HTML:
    def __init__(self, text: str, plain: str = ""):
        self.text, self.plain = text, plain

    def _repr_html_(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return self.plain or re.sub(r"<[^>]+>", "", self.text)


@dataclass
class Table:
    columns: list
    rows: list
    caption: str = ""

    def _repr_markdown_(self) -> str:
        def cell(v) -> str:
            return str(v).replace("|", "\\|").replace("\n", " ")
        lines = [f"**{self.caption}**", ""] if self.caption else []
        lines.append("| " + " | ".join(cell(c) for c in self.columns) + " |")
        lines.append("|" + "|".join("---" for _ in self.columns) + "|")
        lines += ["| " + " | ".join(cell(v) for v in r) + " |" for r in self.rows]
        return "\n".join(lines) + "\n"

    def __repr__(self) -> str:
        cells = [[_plain(c) for c in self.columns]] + [[_plain(v) for v in r] for r in self.rows]
        widths = [max(len(r[i]) for r in cells) for i in range(len(self.columns))]
        out = [self.caption] if self.caption else []
        for j, r in enumerate(cells):
            out.append("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip())
            if j == 0:
                out.append("  ".join("-" * w for w in widths))
        return "\n".join(out)

    def column(self, name: str) -> list:
        i = self.columns.index(name)
        return [r[i] for r in self.rows]


def _plain(v) -> str:
    return re.sub(r"\*\*|`", "", str(v))


def _rel(path: Path) -> str:
    """A path as the book shows it: relative to the project, never the machine's absolute path."""
    path = Path(path).resolve()
    for base in (project_root(), Path.cwd()):
        try:
            return str(path.relative_to(base.resolve()))
        except ValueError:
            pass
    return path.name


# ---------------------------------------------------------------------------------------------
# formatting numbers

def _family(metric: str) -> str:
    m = metric.lower()
    for fam in ("acc", "loss", "fid", "lpips"):
        if fam in m:
            return fam
    return "other"


def fmt(metric: str, v, std=None) -> str:
    if v is None:
        return "—"
    if _family(metric) == "acc":
        s = f"{100 * v:.2f} %"
        return s if std is None else f"{100 * v:.2f} ± {100 * std:.2f} %"
    digits = 3 if _family(metric) in ("loss", "lpips") or abs(v) < 10 else 2
    digits = 4 if abs(v) < 0.1 and _family(metric) == "other" else digits
    if std is None and f"{v:.3f}" != f"{v:.{digits}f}0" and digits < 3:
        digits = 3                                   # keep a claim's third decimal (FID 61.047)
    return f"{v:.{digits}f}" if std is None else f"{v:.{digits}f} ± {std:.{digits}f}"


def fmt_int(n) -> str:
    return "—" if n is None else f"{int(n):,}"


METRIC_NAMES = {"test_acc": "test accuracy", "train_acc": "train accuracy", "train_loss": "train loss",
                "test_loss": "test loss", "best_test_acc": "best test accuracy",
                "best_train_acc": "best train accuracy", "fid": "FID (CIFAR-100 test)",
                "lpips_nn": "LPIPS to nearest training image", "fd_cls": "FD-cls (substitute, not FID)",
                "kid_mean": "KID (substitute features)", "nn_pixel_mean": "RMS pixel distance to nearest training image"}


def metric_name(key: str) -> str:
    return METRIC_NAMES.get(key, key.replace("_", " "))


# ---------------------------------------------------------------------------------------------
# datasets, budgets, verdicts

def dataset_label(name: str, data_root=None) -> tuple[str, bool]:
    """(display name, is a stand-in for the report's data). Never reads the dataset itself."""
    try:
        from .data import describe
        info = describe(name, data_root)
        return info.display_name, bool(info.standin)
    except Exception:
        nice = {"cifar100": "CIFAR-100", "cifar10": "CIFAR-10", "cifar10-jpeg": "CIFAR-10 (JPEG stand-in)",
                "addnist": "AddNIST (regenerated)"}
        return nice.get(name, name), name not in ("cifar100", "addnist")


def dataset_note(used: str, report_dataset: str, data_root=None) -> str:
    label, _ = dataset_label(used, data_root)
    if used == report_dataset:
        return f"{label} (the report's own dataset)"
    want, _ = dataset_label(report_dataset, data_root)
    return f"{label}: **stand-in, not {want}**"


def tolerance(metric: str, claimed: float) -> float:
    how, tol = TOLERANCE.get(_family(metric), ("rel", 0.10))
    return tol if how == "abs" else tol * abs(claimed)


def rules_broken(exp: experiments.Experiment) -> str:
    """Why a report's own claim breaks its rules, or ''."""
    if exp.out_of_budget or exp.claimed_params is None:
        return ""
    b = exp.budget
    if exp.claimed_params > b.max_params:
        return (f"the report's own count, {exp.claimed_params:,} parameters, is "
                f"{exp.claimed_params - b.max_params:,} over the {b.max_params:,} {b.name} budget")
    return ""


def verdict(exp: experiments.Experiment, claim: experiments.Claim, results: list[RunResult],
            data_root=None) -> tuple[str, str]:
    """(verdict, why) for one claim against our runs of the same experiment (one config, many seeds)."""
    if not results:
        return UNMEASURABLE, "not run yet: no finished runs in results/"
    cfg = results[0].config
    if cfg.dataset != exp.config.dataset:
        return UNMEASURABLE, f"our runs use {dataset_label(cfg.dataset, data_root)[0]}, not the report's dataset"
    if cfg.steps != exp.config.steps:
        return UNMEASURABLE, f"our runs have {cfg.steps:,} of the report's {exp.config.steps:,} steps"
    if claim.metric == "fid" and not any(r.metrics.get("fid") is not None for r in results):
        return UNMEASURABLE, ("FID not measured here: it needs the Inception weights and the CIFAR-100 test "
                              "set; FD-cls is on another scale and cannot stand in for it")
    stats = runs_mod.aggregate(results, claim.metric)
    if stats["mean"] is None:
        return UNMEASURABLE, f"our runs do not record {metric_name(claim.metric)}"
    allowed = max(2 * (stats["std"] or 0.0), tolerance(claim.metric, claim.value))
    diff = stats["mean"] - claim.value
    if abs(diff) <= allowed:
        return REPRODUCED, f"within {fmt(claim.metric, allowed)} of ours"
    side = "higher" if diff > 0 else "lower"
    return NOT_REPRODUCED, f"ours is {fmt(claim.metric, abs(diff))} {side} (allowed {fmt(claim.metric, allowed)})"


def n_params(name: str, results: list[RunResult] | None = None, dataset: str | None = None) -> int:
    """Our parameter count: from the runs when there are any, else by building the network."""
    for r in results or []:
        if r.metrics.get("params") is not None:
            return int(r.metrics["params"])
    exp = experiments.get(name)
    from .models import build_for_config
    from .experiments import _shape_of
    cfg = exp.config if dataset is None else exp.config.replace(dataset=dataset)
    return budget.count_params(build_for_config(cfg, **_shape_of(cfg.dataset)))


# ---------------------------------------------------------------------------------------------
# the run card

def banner(P: Params) -> str:
    """HTML: a preview is a smoke test; any other departure from the report's set-up is named."""
    departures = []
    for n in P.experiments:
        exp = experiments.get(n)
        if P.dataset_of(n) != exp.config.dataset:
            departures.append(f"{n} runs on {dataset_label(P.dataset_of(n), P.data_root)[0]}, "
                              f"a stand-in for {dataset_label(exp.config.dataset)[0]}")
        steps = P.steps or exp.config.steps
        if steps != exp.config.steps:
            departures.append(f"{n} trains {steps:,} of the report's {exp.config.steps:,} steps")
    items = "".join(f"<li>{html.escape(d)}</li>" for d in dict.fromkeys(departures))
    if P.preview:
        return ('<div class="admonition warning"><p class="admonition-title">Preview: these numbers are NOT a '
                'reproduction</p><p>This notebook was executed with tiny budgets on whatever data is at hand, '
                'to check that every step of the chapter runs. Its numbers say nothing about the report\'s '
                'claims; <code>make reproduce</code> replaces them with full-budget runs.</p>'
                f'<ul>{items}</ul></div>')
    if departures:
        return ('<div class="admonition note"><p class="admonition-title">Not the report\'s set-up</p>'
                f'<ul>{items}</ul></div>')
    return ""


def run_card(P: Params, results: dict[str, list[RunResult]], final: bool = False) -> HTML:
    rows = []
    first = P.experiments[0]
    rows.append(("Dataset", dataset_note(P.dataset_of(first), experiments.get(first).config.dataset,
                                         P.data_root)))
    envs = [r.env for rs in results.values() for r in rs]
    trained_on = sorted({f"{e.get('device', '?')} — {e.get('device_name', '?')}" for e in envs})
    rows.append(("Runs trained on", "; ".join(trained_on) or "—"))
    import torch
    here = runs_mod.device_name(P.device)
    rows.append(("This notebook executed on", f"{P.device} — {here}"))
    for n, rs in results.items():
        exp = experiments.get(n)
        steps = rs[0].config.steps if rs else (P.steps or exp.config.steps)
        a = budget.audit(exp.kind, n_params(n, rs), steps, exp.out_of_budget)
        ok = lambda b: "within budget" if b else "<b>over budget</b>"
        rows.append((f"{n}: steps", f"{a['steps']:,} of the {a['max_steps']:,}-step {a['budget']} budget "
                                    f"({ok(a['steps_ok'])}); the report trained {exp.config.steps:,}"))
        rows.append((f"{n}: parameters", f"{a['params']:,} of {a['max_params']:,} ({ok(a['params_ok'])})"
                                         + (f" {a['mark']}" if a["mark"] else "")))
        if rs:
            rows.append((f"{n}: batch size", f"{rs[0].config.batch_size:,}"))
    rows.append(("Seeds", ", ".join(map(str, P.seeds)) + f" ({len(P.seeds)} runs per experiment)"))
    commits = sorted({e.get("git_commit", "unknown") for e in envs})
    rows.append(("Code (git commit)", f"runs: {', '.join(commits) or '—'}; this execution: "
                                      f"{runs_mod.git_commit()}"))
    torches = sorted({e.get("torch", "?") for e in envs})
    rows.append(("torch", f"runs: {', '.join(torches) or '—'}; this execution: {torch.__version__}"))
    train_s = sum(float(e.get("wall_time_s") or 0) for e in envs)
    n_runs = len(envs)
    n_reused = sum(r.reused for rs in results.values() for r in rs)
    nb_s = time.monotonic() - P.started
    rows.append(("Wall time", f"runs: {_dur(train_s)} of training and evaluation over {n_runs} runs "
                              f"({n_reused} reused from results/); this execution of the notebook: {_dur(nb_s)}"
                              + (" in all, including any training it did" if final else " up to this card")))
    dirs = sorted({_rel(r.run_dir.parent) for rs in results.values() for r in rs})
    rows.append(("Artifacts", ", ".join(dirs) or "—"))
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{_allow_b(v)}</td></tr>" for k, v in rows)
    plain = "\n".join(f"{k}: {_plain(re.sub(r'<[^>]+>', '', v))}" for k, v in rows)
    text = (banner(P) + '<table class="table run-card"><caption>Run card</caption><tbody>' + body
            + "</tbody></table>")
    return HTML(text, "Run card\n" + plain)


def _allow_b(v: str) -> str:
    """Escape a value but keep the <b> and ** emphasis the card uses."""
    s = html.escape(v).replace("&lt;b&gt;", "<b>").replace("&lt;/b&gt;", "</b>")
    return re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", s)


def _dur(s: float) -> str:
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    return f"{s / 3600:.2f} h"


def show_run_card(P: Params, results: dict[str, list[RunResult]]):
    """Display the run card and keep its handle, so finish(P) can add the notebook's total time."""
    from IPython.display import display
    P.results = dict(results)
    P.card = display(run_card(P, results), display_id=True)
    return None


def finish(P: Params) -> None:
    if P.card is not None:
        P.card.update(run_card(P, P.results, final=True))


# ---------------------------------------------------------------------------------------------
# chapter content

def claims_list(names) -> Table:
    """The reports' claims with their sources, before any of our numbers."""
    names = [names] if isinstance(names, str) else list(names)
    rows = []
    for n in names:
        exp = experiments.get(n)
        rows.append([n, "parameters", fmt_int(exp.claimed_params), f"report {exp.report}"])
        for c in exp.claims:
            rows.append([n, metric_name(c.metric), fmt(c.metric, c.value, c.std), c.source(exp.report)])
    return Table(["experiment", "claim", "value", "source"], rows)


def architecture(name: str) -> Markdown:
    """The model's docstring: our reading of the report's network and the choices we made."""
    from .models import model_class
    cls = model_class(experiments.get(name).config.model)
    parts = [inspect.getmodule(cls).__doc__, cls.__dict__.get("__doc__")]   # never nn.Module's docstring
    doc = "\n\n".join(inspect.cleandoc(p) for p in parts if p) or "(no description)"
    return Markdown(doc)


def recipe(P: Params, name: str) -> Table:
    """The training recipe as it runs here, field by field."""
    cfg = P.config(name)
    report_cfg = experiments.get(name).config
    rows = []
    for key in ("model", "model_args", "dataset", "steps", "batch_size", "optimizer", "scheduler", "augment",
                "train", "eval_every"):
        ours, theirs = getattr(cfg, key), getattr(report_cfg, key)
        show = lambda v: json.dumps(v, sort_keys=True) if isinstance(v, dict) else str(v)
        rows.append([key, f"`{show(ours)}`", "" if ours == theirs else f"`{show(theirs)}`"])
    return Table(["field", "this run", "report's recipe (where different)"], rows)


def budget_table(P: Params, results: dict[str, list[RunResult]]) -> Table:
    """Parameters as run, at the report's own data shape (the number comparable with its claim), the
    report's count, and the budget; steps as run against the budget."""
    rows = []
    for n, rs in results.items():
        exp = experiments.get(n)
        ours = n_params(n, rs)
        at_report = n_params(n)                     # built at the report's dataset shape
        a = budget.audit(exp.kind, max(ours, at_report), rs[0].config.steps if rs else exp.config.steps,
                         exp.out_of_budget)
        claimed = exp.claimed_params
        claimed_s = fmt_int(claimed)
        if claimed is not None and claimed > a["max_params"] and not exp.out_of_budget:
            claimed_s += f" (**{claimed - a['max_params']:,} over**)"
        diff = "" if claimed is None else f" ({(at_report - claimed) / claimed:+.2%} vs the report)"
        rows.append([n, f"{ours:,}", f"{at_report:,}{diff}", claimed_s, f"{a['max_params']:,}",
                     "yes" if a["params_ok"] else ("no, " + a["mark"] if a["mark"] else "**no**"),
                     f"{a['steps']:,} / {a['max_steps']:,}"])
    return Table(["experiment", "our parameters, as run", "ours at the report's data shape",
                  "report's parameters", "budget", "ours within budget", "steps (ours / budget)"], rows,
                 caption="Trainable parameters (a GAN counts generator and discriminator together). The "
                         "class count of the dataset changes the size of the last layer.")


def claims_table(P: Params, results: dict[str, list[RunResult]], metrics: list[str] | None = None) -> Table:
    """Each claim beside our mean ± sample std (ddof=1) over seeds, with the verdict and its reason."""
    rows = []
    for n, rs in results.items():
        exp = experiments.get(n)
        for c in exp.claims:
            if metrics and c.metric not in metrics:
                continue
            st = runs_mod.aggregate(rs, c.metric)
            ours = fmt(c.metric, st["mean"], st["std"]) if st["mean"] is not None else "not measured here"
            v, why = verdict(exp, c, rs, P.data_root)
            rows.append([n, metric_name(c.metric), fmt(c.metric, c.value, c.std), f"{ours} (n={st['n']})",
                         f"**{v}**: {why}"])
    return Table(["experiment", "metric", "claimed", "ours: mean ± std over seeds", "verdict"], rows,
                 caption="Claimed against measured. std: sample standard deviation (ddof=1) over seeds.")


def ours_table(results: dict[str, list[RunResult]], keys: list[str]) -> Table:
    """Our final metrics, mean ± sample std over seeds, for metrics the reports did not claim."""
    rows = []
    for n, rs in results.items():
        row = [n]
        for k in keys:
            st = runs_mod.aggregate(rs, k)
            row.append(fmt(k, st["mean"], st["std"]) if st["mean"] is not None else "—")
        rows.append(row + [str(len(rs))])
    return Table(["experiment"] + [metric_name(k) for k in keys] + ["seeds"], rows)


def fid_command(name: str) -> str:
    """The command that measures FID where CIFAR-100 and the Inception weights exist (--force retrains a
    finished run, whose FID was not measured)."""
    return (f"CIFAR_NB_INCEPTION_WEIGHTS=<path to weights-inception-2015-12-05-6726825d.pth> "
            f"python -m cifar_nb run {name} --seeds 0 1 2 --device cuda --data-root <folder holding "
            "cifar-100-python/> --force")


def generator_table(P: Params, results: dict[str, list[RunResult]]) -> Table:
    """FID as claimed beside what we can measure: FD-cls and KID, clearly labelled as substitutes."""
    rows = []
    for n, rs in results.items():
        exp = experiments.get(n)
        fid_claim = next((c for c in exp.claims if c.metric == "fid"), None)
        fid = runs_mod.aggregate(rs, "fid")
        fid_ours = fmt("fid", fid["mean"], fid["std"]) if fid["mean"] is not None else "not measured here"
        fd = runs_mod.aggregate(rs, "fd_cls")
        kid = runs_mod.aggregate(rs, "kid_mean")
        rows.append([n, fmt("fid", fid_claim.value) if fid_claim else "—", fid_ours,
                     fmt("fd_cls", fd["mean"], fd["std"]), fmt("kid_mean", kid["mean"], kid["std"]), str(len(rs))])
    unmeasured = [n for n, rs in results.items() if runs_mod.aggregate(rs, "fid")["mean"] is None]
    caption = "Generators: mean ± sample std (ddof=1) over seeds."
    if unmeasured:
        caption += (" FID needs the CIFAR-100 test set and torch-fidelity's Inception weights; where both "
                    f"exist it is measured by `{fid_command(unmeasured[0])}`"
                    + (" (likewise for the other experiments)." if len(unmeasured) > 1 else "."))
    return Table(["experiment", "FID claimed", "FID ours", "FD-cls ours (substitute, not FID)",
                  "KID ours (substitute features)", "seeds"], rows, caption=caption)


# ---------------------------------------------------------------------------------------------
# the leaderboard (summary chapter)

def runs_on_disk(name: str, results_dir=None) -> list[list[RunResult]]:
    """Finished runs of an experiment in results/, grouped by config (seeds of one config together)."""
    base = Path(results_dir or default_results_dir()) / name
    groups: dict[str, list[RunResult]] = {}
    for cfg_file in sorted(base.glob("*/config.json")):
        try:
            cfg = RunConfig.from_dict(json.loads(cfg_file.read_text()))
        except (ValueError, TypeError, json.JSONDecodeError):
            continue
        r = runs_mod.load_complete(cfg, results_dir or default_results_dir())
        if r is not None:
            groups.setdefault(cfg.replace(seed=0).hash, []).append(r)
    return [sorted(g, key=lambda r: r.config.seed) for g in groups.values()]


def best_group(name: str, results_dir=None) -> list[RunResult]:
    """The most faithful finished runs: the report's dataset first, then its step count, then more seeds."""
    exp = experiments.get(name)
    groups = runs_on_disk(name, results_dir)
    if not groups:
        return []
    return max(groups, key=lambda g: (g[0].config.dataset == exp.config.dataset,
                                      g[0].config.steps == exp.config.steps, g[0].config.steps, len(g),
                                      max(r.env.get("date", "") for r in g)))


def leaderboard_rows(results_dir=None) -> list[dict]:
    rows = []
    for n, exp in experiments.REGISTRY.items():
        rs = best_group(n, results_dir)
        claim = exp.claims[0] if exp.claims else None
        broken = rules_broken(exp)
        if claim is None:
            v, why = UNMEASURABLE, "the report makes no numeric claim"
        else:
            v, why = verdict(exp, claim, rs)
        if broken:
            v, why = BREAKS_RULES, broken + (f"; {claim.metric}: {v}, {why}" if claim else "")
        st = runs_mod.aggregate(rs, claim.metric) if claim else {"mean": None, "std": None, "n": 0}
        rows.append(dict(
            experiment=n, report=exp.report, kind=exp.kind, title=exp.title,
            params=n_params(n, rs) if rs else None, claimed_params=exp.claimed_params,
            max_params=exp.budget.max_params, steps=rs[0].config.steps if rs else None,
            report_steps=exp.config.steps, dataset=rs[0].config.dataset if rs else None,
            report_dataset=exp.config.dataset, metric=claim.metric if claim else None,
            claimed=claim.value if claim else None, claimed_std=claim.std if claim else None,
            ours=st["mean"], ours_std=st["std"], seeds=st["n"], verdict=v, why=why,
            out_of_budget=exp.out_of_budget))
    return rows


def leaderboard(results_dir=None) -> Table:
    rows = []
    for r in leaderboard_rows(results_dir):
        m = r["metric"] or ""
        params = "—" if r["params"] is None else f"{r['params']:,}"
        if r["out_of_budget"]:
            params += " (OUT OF BUDGET)"
        ds = "—" if r["dataset"] is None else dataset_label(r["dataset"])[0]
        ours = (fmt(m, r["ours"], r["ours_std"]) + f" (n={r['seeds']})") if r["ours"] is not None else "—"
        rows.append([r["experiment"], r["kind"], f"{params} / {fmt_int(r['claimed_params'])}",
                     f"{fmt_int(r['steps'])} / {r['report_steps']:,}", ds, metric_name(m),
                     fmt(m, r["claimed"], r["claimed_std"]), ours, f"**{r['verdict']}**: {r['why']}"])
    return Table(["experiment", "kind", "params (ours / claimed)", "steps (ours / report)", "our dataset",
                  "headline metric", "claimed", "ours: mean ± std", "verdict"], rows)


def verdict_counts(results_dir=None) -> Table:
    counts = {v: 0 for v in VERDICTS}
    for r in leaderboard_rows(results_dir):
        counts[r["verdict"]] += 1
    return Table(["verdict", "experiments"], [[v, str(c)] for v, c in counts.items()])


def claim_rows(P: Params, results: dict[str, list[RunResult]], family: str = "acc") -> list[dict]:
    """Rows for plots.plot_claims: claims of one metric family beside ours (accuracies in percent)."""
    scale = 100.0 if family == "acc" else 1.0
    rows = []
    for n, rs in results.items():
        for c in experiments.get(n).claims:
            if _family(c.metric) != family:
                continue
            st = runs_mod.aggregate(rs, c.metric)
            mul = lambda v: None if v is None else v * scale
            rows.append(dict(label=f"{n}: {metric_name(c.metric)}", claim=mul(c.value), claim_std=mul(c.std),
                             ours=mul(st["mean"]), ours_std=mul(st["std"])))
    return rows


def verdict_summary(P: Params, results: dict[str, list[RunResult]]) -> Markdown:
    """One sentence on this execution's verdicts, so the prose never contradicts the numbers."""
    counts: dict[str, int] = {}
    reasons: list[str] = []
    for n, rs in results.items():
        exp = experiments.get(n)
        for c in exp.claims:
            v, why = verdict(exp, c, rs, P.data_root)
            counts[v] = counts.get(v, 0) + 1
            if v == UNMEASURABLE and why not in reasons:
                reasons.append(why)
    total = sum(counts.values())
    parts = [f"{k} {v}" for v, k in ((v, counts.get(v, 0)) for v in VERDICTS) if k]
    text = f"In this execution, of {total} claim{'s' if total != 1 else ''}: " + ", ".join(parts) + "."
    broken = [f"{n}: {rules_broken(experiments.get(n))}" for n in results if rules_broken(experiments.get(n))]
    if broken:
        text += " The report's own numbers break its rules (" + "; ".join(broken) + ")."
    if reasons:
        text += " Unmeasurable because " + "; ".join(reasons) + "."
    return Markdown(text)


def show_figure(result: RunResult, key: str, max_side: int = 512):
    """A figure a generator run wrote (metrics[key] names the PNG in its run folder), as a compact JPEG
    so that committed notebooks stay small; the PNG itself stays in results/."""
    import io
    from IPython.display import Image
    from PIL import Image as PILImage
    name = result.metrics.get(key)
    path = result.run_dir / name if name else None
    if path is None or not path.exists():
        return Markdown(f"*figure {key!r} is not in {_rel(result.run_dir)}; re-run the experiment to make it*")
    im = PILImage.open(path).convert("RGB")
    if max(im.size) > max_side:
        f = max_side / max(im.size)
        im = im.resize((round(im.width * f), round(im.height * f)), PILImage.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=75, optimize=True)
    return Image(data=buf.getvalue(), format="jpeg")


def all_claims(results_dir=None) -> Table:
    """Every claim of every experiment with our best-matching runs and its verdict."""
    rows = []
    for n, exp in experiments.REGISTRY.items():
        rs = best_group(n, results_dir)
        for c in exp.claims:
            st = runs_mod.aggregate(rs, c.metric)
            v, why = verdict(exp, c, rs)
            ours = fmt(c.metric, st["mean"], st["std"]) + f" (n={st['n']})" if st["mean"] is not None else "—"
            rows.append([n, metric_name(c.metric), fmt(c.metric, c.value, c.std), ours, f"**{v}**: {why}",
                         c.source(exp.report)])
    return Table(["experiment", "metric", "claimed", "ours: mean ± std", "verdict", "source"], rows)


def ablation_table(P: Params, results: dict[str, list[RunResult]], names: list[str]) -> Table:
    """One row per ablation: what changed, and each of its claims beside ours with the verdict."""
    rows = []
    for n in names:
        exp, rs = experiments.get(n), results.get(n, [])
        cells = []
        for c in exp.claims:
            st = runs_mod.aggregate(rs, c.metric)
            ours = fmt(c.metric, st["mean"], st["std"]) if st["mean"] is not None else "—"
            cells.append(f"{fmt(c.metric, c.value, c.std)} / {ours} (**{verdict(exp, c, rs, P.data_root)[0]}**)")
        change = exp.title.split(": ", 1)[-1]
        rows.append([n, change] + cells)
    heads = [f"{metric_name(c.metric)}: claimed / ours" for c in experiments.get(names[0]).claims]
    return Table(["experiment", "change from the final recipe"] + heads, rows,
                 caption="Ablations: ours is mean ± sample std over seeds; verdict rules in the methods appendix.")


def generator_notes(result: RunResult) -> Table:
    """How one generator run was scored and its figures chosen, from its metrics.json."""
    m = result.metrics
    keys = [("sampler", "sampler"), ("fd_cls_metric", "FD-cls"), ("fd_cls_reference", "FD-cls reference"),
            ("fd_cls_samples", "generated images scored"), ("kid_subset_size", "KID subset size"),
            ("resized_for_eval", "resizing before scoring"), ("fid_status", "FID"),
            ("lpips_status", "LPIPS nearest neighbours"), ("nn_pixel_metric", "pixel nearest neighbours"),
            ("cherry_pick_rule", "cherry-picking rule")]
    rows = [[label, str(m[k]).replace(str(Path.home()), "~")] for k, label in keys if m.get(k) is not None]
    return Table(["", f"{result.config.experiment}, seed {result.config.seed}"], rows)


def leaderboard_claim_rows(results_dir=None, family: str = "acc") -> list[dict]:
    """Rows for plots.plot_claims from the leaderboard: headline claims of one family (percent for acc)."""
    scale = 100.0 if family == "acc" else 1.0
    mul = lambda v: None if v is None else v * scale
    return [dict(label=r["experiment"], claim=mul(r["claimed"]), claim_std=mul(r["claimed_std"]),
                 ours=mul(r["ours"]), ours_std=mul(r["ours_std"]))
            for r in leaderboard_rows(results_dir) if r["metric"] and _family(r["metric"]) == family]


def summary_card(P: Params) -> HTML:
    """The summary chapter's run card: what results/ holds, and how it was made."""
    groups = {n: best_group(n, P.results_dir) for n in experiments.REGISTRY}
    envs = [r.env for g in groups.values() for r in g]
    datasets = sorted({dataset_label(g[0].config.dataset)[0] for g in groups.values() if g})
    import torch
    rows = [
        ("Runs read", f"{len(envs)} finished runs of {sum(bool(g) for g in groups.values())} of "
                      f"{len(groups)} experiments, from {_rel(P.results_dir)}"),
        ("Datasets", ", ".join(datasets) or "—"),
        ("Trained on", "; ".join(sorted({f"{e.get('device', '?')} — {e.get('device_name', '?')}"
                                         for e in envs})) or "—"),
        ("Code (git commit)", f"runs: {', '.join(sorted({e.get('git_commit', '?') for e in envs})) or '—'}; "
                              f"this execution: {runs_mod.git_commit()}"),
        ("torch", f"runs: {', '.join(sorted({e.get('torch', '?') for e in envs})) or '—'}; "
                  f"this execution: {torch.__version__}"),
        ("Wall time", f"training {_dur(sum(float(e.get('wall_time_s') or 0) for e in envs))} in all; "
                      f"this notebook {_dur(time.monotonic() - P.started)}"),
    ]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    plain = "\n".join(f"{k}: {v}" for k, v in rows)
    return HTML(banner(P) + '<table class="table run-card"><caption>Run card</caption><tbody>' + body
                + "</tbody></table>", "Run card\n" + plain)
