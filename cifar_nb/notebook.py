"""A notebook's papermill parameters, its run card, and the small display objects every chapter uses.

    P = validate_parameters(["B-classifier"], device=..., dataset=..., steps=..., ...)  # first cell
    runs = P.run_all()            # {experiment: [RunResult per seed]}: trained, or reused from results/
    show_run_card(P, runs)        # where, how and how long the numbers were made (+ preview banner)
    finish(P)                     # last cell: puts the notebook's total wall time on the run card

The notebooks reach these through cifar_nb.report, which re-exports them beside the chapter tables.
"""
from __future__ import annotations

import html
import os
import re
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from . import artifacts, budget, experiments, runs as runs_mod
from .audit import best_group, dataset_label, dataset_note, default_results_dir, n_params, project_root
from .artifacts import RunResult
from .config import PREVIEW_STEPS, RunConfig, derive

# tqdm.auto falls back to the text bar without ipywidgets, warning with this venv's absolute path,
# which would otherwise land in every executed notebook.
warnings.filterwarnings("ignore", message="IProgress not found")

# Dataset names the notebooks accept (cifar_nb.data resolves them); imagefolder:<path> is also allowed.
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

    def dataset_of(self, name: str) -> str:
        return self.dataset or experiments.get(name).config.dataset

    def config(self, name: str, seed: int | None = None) -> RunConfig:
        """The run a notebook asks for: the report's recipe with the notebook's overrides (config.derive)."""
        return derive(experiments.get(name).config, self.seeds[0] if seed is None else seed, self.dataset,
                      self.steps, self.batch_size, self.fid_samples, self.preview)

    def configs(self, name: str) -> list[RunConfig]:
        return [self.config(name, s) for s in self.seeds]

    def run(self, name: str, progress: bool = False) -> list[RunResult]:
        """Every seed of one experiment: trained here, or reused when results/ holds it finished."""
        out = []
        for cfg in self.configs(name):
            t0 = time.monotonic()
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
                if artifacts.load_complete(c, self.results_dir) is None]


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
    fallback = False
    if preview and dataset is None and any(experiments.get(n).config.dataset == "cifar100" for n in names):
        from .data import cifar_files_present
        if not cifar_files_present("cifar100", data_root):
            # the rule `make preview` follows: a preview runs on the stand-in when CIFAR-100 is not here
            dataset, fallback = STAND_IN, True

    resolved = _resolve_device(device)
    P = Params(tuple(names), resolved, dataset, data_root, steps, batch_size, list(seeds), fid_samples,
               Path(results_dir) if results_dir is not None else default_results_dir(), preview)
    P.dataset_fallback = fallback
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


def _positive_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _resolve_device(device: str) -> str | None:
    """The device to train on, or None when the one asked for is not here (fine if nothing needs training)."""
    from .runtime import resolve_device
    try:
        return str(resolve_device(device))
    except ValueError:
        return None


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
# the run card

def status_line(P: Params, results: dict[str, list[RunResult]] | None = None) -> str:
    """HTML: one line per experiment saying what was run: full budget or preview, steps, seeds, device, data."""
    items = []
    for n in P.experiments:
        exp = experiments.get(n)
        rs = (results or {}).get(n) or []
        steps = rs[0].config.steps if rs else (P.steps or exp.config.steps)
        full = steps == exp.config.steps and not P.preview
        seeds = [r.config.seed for r in rs] or list(P.seeds)
        devices = sorted({"CPU" if str(r.env.get("device_name", "")).startswith("CPU") else
                          str(r.env.get("device_name") or r.env.get("device") or "?") for r in rs}) or ["—"]
        what = "<b>full budget</b>" if full else "<b>preview</b>"
        planned = f" of {len(DEFAULT_SEEDS)} planned" if full and len(seeds) < len(DEFAULT_SEEDS) else ""
        items.append(f"<li>{html.escape(n)}: {what}, {steps:,} of the report's {exp.config.steps:,} steps · "
                     f"seed{'s' if len(seeds) != 1 else ''} {', '.join(map(str, seeds))} ({len(seeds)}{planned}) · "
                     f"trained on {html.escape(', '.join(devices))} · "
                     f"{html.escape(dataset_label(P.dataset_of(n), P.data_root)[0])}</li>")
    if not items:
        return ""
    return f'<div class="run-status"><p><b>What was run</b></p><ul>{"".join(items)}</ul></div>'


def banner(P: Params) -> str:
    """HTML: a preview is a smoke test; any other departure from the report's set-up is named."""
    departures: dict[str, list[str]] = {}      # what departs -> the experiments it applies to
    for n in P.experiments:
        exp = experiments.get(n)
        if P.dataset_of(n) != exp.config.dataset:
            why = (" (chosen by the preview itself: CIFAR-100 is not under the data root)"
                   if P.dataset_fallback and exp.config.dataset == "cifar100" else "")
            departures.setdefault(f"trained on {dataset_label(P.dataset_of(n), P.data_root)[0]}, a stand-in "
                                  f"for {dataset_label(exp.config.dataset)[0]}{why}", []).append(n)
        steps = P.steps or exp.config.steps
        if steps != exp.config.steps:
            departures.setdefault(f"trained {steps:,} of the report's {exp.config.steps:,} steps", []).append(n)
    items = "".join(f"<li>{html.escape(', '.join(names))}: {html.escape(what)}</li>"
                    for what, names in departures.items())
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
    here = artifacts.device_name(P.device)
    rows.append(("This notebook executed on", f"{P.device} — {here}"))
    for n, rs in results.items():       # one row per experiment: steps and parameters against the budget
        exp = experiments.get(n)
        steps = rs[0].config.steps if rs else (P.steps or exp.config.steps)
        a = budget.audit(exp.kind, n_params(n, rs), steps, exp.out_of_budget)
        ok = lambda b: "within budget" if b else "<b>over budget</b>"
        rows.append((n, f"steps: {a['steps']:,} of the {a['max_steps']:,}-step {a['budget']} budget "
                        f"({ok(a['steps_ok'])}; the report trained {exp.config.steps:,}) · "
                        f"parameters: {a['params']:,} of {a['max_params']:,} ({ok(a['params_ok'])})"
                        + ((f" {a['mark']}" if not (a["params_ok"] and a["steps_ok"]) else
                            f" (the experiment is {a['mark']} by design; this execution's network and steps "
                            "fit the budget)") if a["mark"] else "")
                        + (f" · batch size {rs[0].config.batch_size:,}" if rs else "")))
    n_seeds = len(P.seeds)
    rows.append(("Seeds", ", ".join(map(str, P.seeds))
                 + f" ({n_seeds} run{'s' if n_seeds != 1 else ''} per experiment)"))
    rows.append(("Code (git commit)", f"{run_commits(results)} · this execution: {_commit(artifacts.git_commit())}"))
    torches = sorted({e.get("torch", "?") for e in envs})
    rows.append(("torch", f"runs: {', '.join(torches) or '—'}; this execution: {torch.__version__}"))
    train_s = sum(float(e.get("wall_time_s") or 0) for e in envs)
    n_runs = len(envs)
    n_reused = sum(r.reused for rs in results.values() for r in rs)
    nb_s = time.monotonic() - P.started
    rows.append(("Wall time", f"runs: {_dur(train_s)} of training and evaluation over {n_runs} run{'s' if n_runs != 1 else ''} "
                              f"({n_reused} reused from results/); this execution of the notebook: {_dur(nb_s)}"
                              + (" in all, including any training it did" if final else " up to this card")))
    dirs = sorted({_rel(r.run_dir.parent) for rs in results.values() for r in rs})
    rows.append(("Artifacts", ", ".join(dirs) or "—"))
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{_allow_b(v)}</td></tr>" for k, v in rows)
    plain = "\n".join(f"{k}: {_plain(re.sub(r'<[^>]+>', '', v))}" for k, v in rows)
    text = (status_line(P, results) + banner(P) + '<table class="table run-card"><caption>Run card</caption><tbody>' + body
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


def _commit(c: str) -> str:
    """A commit as the run card shows it: 10 hex digits, and a bold flag when the code had uncommitted changes."""
    sha, dirty = c.removesuffix("+dirty"), c.endswith("+dirty")
    return sha[:10] + (" <b>+dirty</b> (uncommitted changes)" if dirty else "")


def run_commits(results: dict[str, list[RunResult]]) -> str:
    """The code each experiment's runs came from: one commit per experiment when its seeds agree, else each
    commit with the seeds it made; dirty ones flagged."""
    parts = []
    for n, rs in results.items():
        if not rs:
            continue
        by: dict[str, list[int]] = {}
        for r in rs:
            by.setdefault(r.env.get("git_commit") or "unknown", []).append(r.config.seed)
        if len(by) == 1:
            parts.append(f"{n}: {_commit(next(iter(by)))}")
        else:
            each = [f"{_commit(c)} (seed{'s' if len(s) > 1 else ''} {', '.join(map(str, sorted(s)))})"
                    for c, s in sorted(by.items(), key=lambda kv: min(kv[1]))]
            parts.append(f"{n}: " + ", ".join(each))
    return "; ".join(parts) or "—"


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
        ("Code (git commit)", f"{run_commits(groups)} · this execution: {_commit(artifacts.git_commit())}"),
        ("torch", f"runs: {', '.join(sorted({e.get('torch', '?') for e in envs})) or '—'}; "
                  f"this execution: {torch.__version__}"),
        ("Wall time", f"training {_dur(sum(float(e.get('wall_time_s') or 0) for e in envs))} in all; "
                      f"this notebook {_dur(time.monotonic() - P.started)}"),
    ]
    body = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>" for k, v in rows)
    plain = "\n".join(f"{k}: {v}" for k, v in rows)
    return HTML(banner(P) + '<table class="table run-card"><caption>Run card</caption><tbody>' + body
                + "</tbody></table>", "Run card\n" + plain)
