"""Report D's architecture and hyper-parameter search, in Optuna, then a retrain of the top 3.

Report D ran Ray Tune with asynchronous successive halving (ASHA): 60 trials, 16 at a time, each at most
30 epochs on a 40k/10k train/validation split, the worse half dropped at every rung; it then retrained the
three best models on all 50k images for 100 epochs. Here the same plan runs in Optuna:

  sampler   TPE, seeded (`constant_liar` so that parallel workers do not pile onto one point).
  pruner    SuccessiveHalvingPruner, Optuna's ASHA: reduction factor 2 keeps the top half at each rung;
            rungs at 1, 2, 4, 8, 16 epochs (min_resource = one epoch of steps). `pruner="hyperband"` runs
            HyperbandPruner (several ASHA brackets) instead.
  a trial   one RunConfig (kind "classifier", model "search_cnn") trained by the shared classifier loop
            through `runs.run`, in legs: `runs.run(stop_at_step=rung)` trains to the rung, checkpoints and
            stops; the trial reports the validation rows so far (they travel in the checkpoint), asks the
            pruner, and either stops for good (pruned) or runs the next leg, which resumes from the
            checkpoint. Each leg reloads the data and rebuilds the model: a fixed cost per rung.
  value     final validation accuracy (a fraction), maximised.
  results   trial and retrain runs in results/<experiment>/<hash>/ like every run; the search itself in
            results/<experiment>/search-<study>/: study.db, trials.csv and .json, summary.json, figures.

Resume. The study lives in an Optuna storage (default: SQLite at results/<experiment>/search-<plan>/study.db)
and is opened with load_if_exists=True, so running the same command again continues until `n_trials`
trials are finished (complete or pruned). Trials already finished are not touched. A process killed in the
middle of a trial leaves it RUNNING; the storage's heartbeat marks it failed after `GRACE_S` seconds and
RetryHeartbeatStaleTrialCallback queues the same parameters again, whose run resumes from its checkpoint.

Parallel trials on one GPU. `n_jobs=k` runs k trials in threads of one process, all on the same device
(report D: 16). Or start the same command several times on one machine: the processes share the default
SQLite file of the plan (or any `--storage` given to all of them):

    python -m cifar_nb search D-search --device cuda --n-jobs 4 &   # x 4

Many machines. Give every machine the same RDB URL; each worker pulls trials until the total is reached:

    python -m cifar_nb search D-search --storage postgresql://user:pass@host:5432/optuna --n-jobs 4

(SQLite is a file: fine for threads and processes on one machine, not over a network file system.)
Threads and extra processes change which parameters TPE proposes next, so a parallel search is not
bit-reproducible; a search with n_jobs=1 on the CPU is.

Budgets. `scale` shrinks the whole plan for previews: trials (at least 8), steps, evaluation interval,
validation size, retrain steps and, for the out-of-budget search, the width of every family (by
sqrt(scale), so the parameter count scales like `scale`). Report D's networks are far over the
100k-parameter classifier budget: its runs are marked out_of_budget and every number they produce carries
budget.OUT_OF_BUDGET_MARK. "D-search-inbudget" is the same search held to the rules: each trial's width is
the largest that keeps its model within 100,000 parameters, a trial trains at most 30 epochs (9,390 steps
at batch 128) and the retrain stops at 10,000 steps. The rules cap one training run, not a search: the
search as a whole spends many runs' worth of steps.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path

import optuna
import torch

from . import artifacts, budget, runs
from .models.search_cnn import FAMILIES, KERNEL_SIZES, fit_width, param_count
from .config import RunConfig

# Report D, §II-§V.
REPORT_D = dict(n_trials=60, parallel=16, trial_epochs=30, train_size=40_000, val_size=10_000,
                full_train_size=50_000, retrain_epochs=100, top_k=3, reduction_factor=2)
GRACE_S = 600            # a RUNNING trial without a heartbeat for this long is failed and retried
VALUE = "val_acc"        # the metric a trial maximises


# The searches; each registered experiment's config is the final training of a chosen model (the retrain).
MAX_PARAMS = {"D-search": None, "D-search-inbudget": budget.CLASSIFIER.max_params}


@dataclass
class Plan:
    """A search with its scale applied. What decides a trial names the study, so plans never share one."""
    experiment: str
    scale: float
    trial: RunConfig            # a trial's config before the search fills in model_args and optimizer
    retrain: RunConfig          # the same for the retrain of the top 3
    n_trials: int
    parallel: int               # report D's 16; how many run at once here is n_jobs
    width: float                # family width multiplier (before fitting to max_params)
    max_params: int | None      # fit each trial's width to this many parameters (None: no cap)
    min_resource: int = 0       # steps before the first pruning decision (0: one evaluation interval)
    top_k: int = 3
    seed: int = 0
    pruner: str = "asha"

    @property
    def rungs(self) -> list[int]:
        """Steps at which the pruner decides: one evaluation interval, then doubling (keep the top half)."""
        out, r = [], self.min_resource or self.trial.eval_every
        while r < self.trial.steps:
            out.append(r)
            r *= REPORT_D["reduction_factor"]
        return out

    @property
    def study_name(self) -> str:
        """Named by everything that decides what a trial computes; not by n_trials, so asking for more
        trials later continues the same study."""
        d = {k: v for k, v in asdict(self).items() if k not in ("n_trials", "parallel", "retrain", "top_k")}
        blob = json.dumps(d, sort_keys=True, default=str)
        return f"{self.experiment}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


def make_plan(experiment: str, scale: float = 1.0, dataset: str | None = None, batch_size: int | None = None,
              retrain_steps: int | None = None, seed: int = 0, pruner: str = "asha") -> Plan:
    """Report D's plan for `experiment`, every size multiplied by `scale` (1: the report's)."""
    from . import experiments
    if experiment not in MAX_PARAMS:
        raise ValueError(f"no search called {experiment!r}; known: {', '.join(MAX_PARAMS)}")
    if not (isinstance(scale, (int, float)) and 0 < scale <= 1):
        raise ValueError(f"scale must be in (0, 1], got {scale!r} (1 is report D's full plan)")
    if pruner not in ("asha", "hyperband"):
        raise ValueError(f"pruner must be 'asha' or 'hyperband', got {pruner!r}")
    max_params = MAX_PARAMS[experiment]
    final = experiments.get(experiment).config
    bs = batch_size or final.batch_size
    epoch = math.ceil(REPORT_D["train_size"] / bs)            # steps per epoch on the 40k split
    eval_every = max(1, round(epoch * scale))
    steps = max(4 * eval_every, round(REPORT_D["trial_epochs"] * epoch * scale))
    if max_params is not None:
        steps = min(steps, budget.CLASSIFIER.max_steps)
    val_size = max(200, round(REPORT_D["val_size"] * scale))
    # a preview also measures train accuracy on fewer images (the loop's default is 10,000)
    train = dict(final.train, **({"train_eval_size": val_size} if scale < 1 else {}))
    common = dict(dataset=dataset or final.dataset, batch_size=bs, seed=seed)
    trial = final.replace(steps=steps, eval_every=eval_every,
                          train=dict(train, val_size=val_size, eval_split="val"), **common)
    r_steps = retrain_steps or max(8, round(final.steps * (final.batch_size / bs) * scale))
    if max_params is not None:
        r_steps = min(r_steps, budget.CLASSIFIER.max_steps)
    retrain = final.replace(steps=r_steps, eval_every=max(1, min(final.eval_every, r_steps // 20)), train=train,
                            **common)
    return Plan(experiment, scale, trial, retrain, n_trials=max(8, round(REPORT_D["n_trials"] * scale)),
                parallel=REPORT_D["parallel"], width=min(1.0, math.sqrt(scale)), max_params=max_params,
                top_k=REPORT_D["top_k"], seed=seed, pruner=pruner)


# ---------------------------------------------------------------------------------------------
# the search space (report D §III.1)

def suggest(trial: optuna.Trial) -> tuple[dict, dict]:
    """(model_args, optimizer spec). Ranges are report D's; "[a, b]" in the report is uniform, "logU" log."""
    arch = dict(
        family=trial.suggest_categorical("family", sorted(FAMILIES)),
        activation=trial.suggest_categorical("activation", ["relu", "leaky_relu"]),
        pool=trial.suggest_categorical("pool", ["max", "avg"]),
        kernel_size=trial.suggest_categorical("kernel_size", list(KERNEL_SIZES)),
        batch_norm=trial.suggest_categorical("batch_norm", [True, False]),
        dropout=trial.suggest_float("dropout", 0.1, 0.3),
    )
    name = trial.suggest_categorical("optimizer", ["adam", "rmsprop", "adagrad", "sgd"])
    if name == "adam":
        opt = dict(lr=trial.suggest_float("adam_lr", 1e-4, 1e-1),
                   betas=[trial.suggest_float("adam_beta1", 0.8, 0.99999),
                          trial.suggest_float("adam_beta2", 0.8, 0.99999999)])
    elif name == "rmsprop":
        opt = dict(lr=trial.suggest_float("rmsprop_lr", 1e-4, 1e-1, log=True),
                   alpha=trial.suggest_float("rmsprop_alpha", 0.8, 1.0),
                   momentum=trial.suggest_float("rmsprop_momentum", 0.0, 0.5))
    elif name == "adagrad":
        opt = dict(lr=trial.suggest_float("adagrad_lr", 1e-3, 1e-1, log=True),
                   initial_accumulator_value=trial.suggest_float("adagrad_initial_accumulator_value", 0.0, 0.3),
                   lr_decay=trial.suggest_float("adagrad_lr_decay", 0.0, 0.1))
    else:
        opt = dict(lr=trial.suggest_float("sgd_lr", 1e-5, 0.1, log=True),
                   momentum=trial.suggest_float("sgd_momentum", 0.0, 0.4),
                   dampening=trial.suggest_float("sgd_dampening", 0.0, 0.4))
    return arch, {"name": name, **opt}


def trial_config(plan: Plan, arch: dict, opt: dict, shape: dict) -> RunConfig:
    """The RunConfig of one trial: width 1 (scaled), or the widest that fits the plan's parameter cap."""
    width = plan.width
    if plan.max_params is not None:
        width = min(width, fit_width(plan.max_params, **shape, **arch))
    return plan.trial.replace(model_args=dict(arch, width=width), optimizer=opt)


# ---------------------------------------------------------------------------------------------
# running a trial

def _shape(dataset: str, data_root) -> dict:
    from .data import describe
    info = describe(dataset, data_root)
    return dict(num_classes=info.num_classes, image_size=info.image_size, in_channels=info.channels)


def _history_so_far(cfg, results_dir) -> list[dict]:
    """The evaluation rows of a run stopped at a rung: they travel in its checkpoint."""
    state = torch.load(artifacts.checkpoint_path(cfg, results_dir), map_location="cpu", weights_only=False)
    return list(state.get("history", []))


def make_objective(plan: Plan, device, data_root, results_dir, progress: bool = False):
    shape = _shape(plan.trial.dataset, data_root)

    def objective(trial: optuna.Trial) -> float:
        arch, opt = suggest(trial)
        cfg = trial_config(plan, arch, opt, shape)
        n_params = param_count(**shape, **cfg.model_args)
        trial.set_user_attr("config", cfg.to_dict())
        trial.set_user_attr("run", cfg.hash)
        trial.set_user_attr("params", n_params)
        reported: set[int] = set()
        for stop in plan.rungs + [cfg.steps]:
            try:
                res = runs.run(cfg, device=device, data_root=data_root, results_dir=results_dir,
                               stop_at_step=stop if stop < cfg.steps else None, progress=progress)
                rows = res.history
            except runs.RunInterrupted:
                rows = _history_so_far(cfg, results_dir)
            for row in rows:
                if row.get(VALUE) is not None and row["step"] not in reported:
                    trial.report(float(row[VALUE]), int(row["step"]))
                    reported.add(int(row["step"]))
            if stop < cfg.steps and trial.should_prune():
                # a pruned trial is never resumed: drop its checkpoint (large at full width)
                artifacts.checkpoint_path(cfg, results_dir).unlink(missing_ok=True)
                raise optuna.TrialPruned(f"pruned at step {stop}")
        # a finished trial's weights are not used again either (the top 3 are retrained from scratch)
        (res.run_dir / "weights.pt").unlink(missing_ok=True)
        return float(res.metrics[VALUE])

    return objective


# ---------------------------------------------------------------------------------------------
# the study

def search_dir(plan: Plan, results_dir=None) -> Path:
    return Path(results_dir or artifacts.results_root()) / plan.experiment / f"search-{plan.study_name}"


def _storage(url: str | None, plan: Plan, results_dir) -> optuna.storages.BaseStorage:
    if url is None:
        path = search_dir(plan, results_dir) / "study.db"
        path.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{path.resolve()}"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        retry = optuna.storages.RetryHeartbeatStaleTrialCallback(max_retry=2, inherit_intermediate_values=True)
        return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=GRACE_S,
                                          heartbeat_stale_trial_callback=retry)


def open_study(plan: Plan, storage: str | None = None, results_dir=None) -> optuna.Study:
    if plan.pruner == "asha":
        pruner = optuna.pruners.SuccessiveHalvingPruner(
            min_resource=plan.rungs[0] if plan.rungs else plan.trial.steps,
            reduction_factor=REPORT_D["reduction_factor"],
            min_early_stopping_rate=0)
    else:
        pruner = optuna.pruners.HyperbandPruner(
            min_resource=plan.rungs[0] if plan.rungs else plan.trial.steps, max_resource=plan.trial.steps,
            reduction_factor=REPORT_D["reduction_factor"])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        sampler = optuna.samplers.TPESampler(seed=plan.seed, constant_liar=True)
    study = optuna.create_study(study_name=plan.study_name, storage=_storage(storage, plan, results_dir),
                                sampler=sampler, pruner=pruner, direction="maximize", load_if_exists=True)
    described = json.loads(json.dumps(asdict(plan), default=str))
    if study.user_attrs.get("plan") != described:     # a finished study reopened is left unwritten
        study.set_user_attr("plan", described)
    return study


FINISHED = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)


def n_finished(study: optuna.Study) -> int:
    return len(study.get_trials(deepcopy=False, states=FINISHED))


def preflight(plan: Plan, storage: str | None, data_root=None) -> None:
    """What would fail a search after its first trial, checked before anything is created: the storage URL
    (its dialect, and the folder of a SQLite file) and the dataset. Raises ValueError/DataError with the remedy."""
    if storage is not None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.exc import ArgumentError, NoSuchModuleError
        try:
            url = make_url(storage)
            url.get_dialect()
        except (ArgumentError, NoSuchModuleError, ValueError) as e:
            raise ValueError(f"--storage {storage!r} is not a database URL SQLAlchemy can open ({e}); use "
                             "sqlite:///path/to/study.db on one machine or postgresql://user@host/db for a cluster") \
                from None
        except ImportError as e:
            raise ValueError(f"--storage {storage!r} needs a database driver that is not installed ({e.name}); "
                             "install it, or use sqlite:///path/to/study.db") from None
        if url.get_backend_name() == "sqlite" and url.database not in (None, "", ":memory:"):
            folder = Path(url.database).expanduser().resolve().parent
            if not folder.is_dir():
                raise ValueError(f"--storage {storage!r}: the folder {folder} does not exist; create it first "
                                 "or point the SQLite file somewhere that exists")
    from .data import load
    load(plan.trial.dataset, "train", root=data_root)   # DataError names what is missing and where it goes


def run_search(plan: Plan, device="cpu", data_root=None, results_dir=None, storage: str | None = None,
               n_jobs: int = 1, progress: bool = False, verbose: bool = False) -> optuna.Study:
    """Run (or continue) the study until plan.n_trials trials are complete or pruned."""
    preflight(plan, storage, data_root)
    optuna.logging.set_verbosity(optuna.logging.INFO if verbose else optuna.logging.WARNING)
    study = open_study(plan, storage, results_dir)
    remaining = plan.n_trials - n_finished(study)
    if remaining > 0:
        study.optimize(make_objective(plan, device, data_root, results_dir, progress),
                       n_trials=remaining, n_jobs=n_jobs, gc_after_trial=True,
                       callbacks=[optuna.study.MaxTrialsCallback(plan.n_trials, states=FINISHED)])
    write_trials(study, search_dir(plan, results_dir))
    return study


# ---------------------------------------------------------------------------------------------
# results: trials table, retrain of the top 3, figures

def trials_table(study: optuna.Study) -> list[dict]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        steps = sorted(t.intermediate_values)
        rows.append(dict(
            number=t.number, state=t.state.name, value=t.value, last_step=steps[-1] if steps else None,
            params=t.user_attrs.get("params"), run=t.user_attrs.get("run"),
            width=(t.user_attrs.get("config") or {}).get("model_args", {}).get("width"),
            out_of_budget=(t.user_attrs.get("config") or {}).get("out_of_budget"),
            duration_s=round(t.duration.total_seconds(), 2) if t.duration else None,
            **t.params))
    return rows


def write_trials(study: optuna.Study, out: Path) -> None:
    rows = trials_table(study)
    if rows:
        artifacts.write_history_csv(out / "trials.csv", rows)
    artifacts.atomic_write_json(out / "trials.json", rows)


def top_trials(study: optuna.Study, k: int = 3) -> list[optuna.trial.FrozenTrial]:
    """The k best complete trials of distinct families: report D retrained three different architectures."""
    done = sorted(study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,)),
                  key=lambda t: -t.value)
    best, seen = [], set()
    for t in done:
        if t.params["family"] not in seen and len(best) < k:
            best.append(t)
            seen.add(t.params["family"])
    return best


def retrain_config(plan: Plan, trial: optuna.trial.FrozenTrial) -> RunConfig:
    """The trial's model and optimiser, trained on the whole training set and scored on the test set."""
    cfg = RunConfig.from_dict(trial.user_attrs["config"])
    return plan.retrain.replace(model_args=cfg.model_args, optimizer=cfg.optimizer)


@dataclass
class Retrained:
    rank: int
    trial: optuna.trial.FrozenTrial
    results: list                       # RunResult per seed

    def row(self, results_dir=None) -> dict:
        """The retrained trial's line of summary.json. With `results_dir`, its runs are given relative to that
        results folder (`D-search/<hash>`), so the file is the same bytes in every clone."""
        m = self.results[0].metrics
        return dict(rank=self.rank, trial=self.trial.number, family=self.trial.params["family"],
                    optimizer=self.trial.params["optimizer"], val_acc=self.trial.value, params=m["params"],
                    steps=m["steps"], out_of_budget=bool(m.get("out_of_budget")),
                    test_acc=artifacts.aggregate(self.results, "test_acc"),
                    train_acc=artifacts.aggregate(self.results, "train_acc"),
                    runs=[_relative(r.run_dir, results_dir) for r in self.results])


def _relative(path, base=None) -> str:
    """`path` relative to `base` (POSIX separators) when it lies inside it, else as given."""
    if base is None:
        return str(path)
    try:
        return Path(path).resolve().relative_to(Path(base).resolve()).as_posix()
    except ValueError:
        return str(path)


def retrain_top(plan: Plan, study: optuna.Study, seeds=(0,), device="cpu", data_root=None,
                results_dir=None, progress: bool = False) -> list[Retrained]:
    return [Retrained(rank, t, runs.run_seeds(retrain_config(plan, t), list(seeds), device=device,
                                              data_root=data_root, results_dir=results_dir, progress=progress))
            for rank, t in enumerate(top_trials(study, plan.top_k), start=1)]


def figures(study: optuna.Study, out: Path, mark: str = "") -> dict[str, Path]:
    """Optimisation history, validation curves (pruned trials stop early), parameter importances;
    `mark` (budget.OUT_OF_BUDGET_MARK or "") goes into every title.

    Optuna's matplotlib backend needs only matplotlib. Importances use PED-ANOVA: fANOVA and
    mean-decrease-impurity need scikit-learn, which this environment does not have.
    """
    import matplotlib
    import matplotlib.pyplot as plt
    from optuna.visualization import matplotlib as ovm
    out.mkdir(parents=True, exist_ok=True)
    plots = {
        "history": lambda: ovm.plot_optimization_history(study),
        "intermediate": lambda: _plot_curves(study),
        # the parameters in a fixed order: optuna draws tied importances in the order it is given them, and a
        # set's order changes with the interpreter's hash seed (the PNG then changed on every execution)
        "importances": lambda: ovm.plot_param_importances(
            study, evaluator=optuna.importance.PedAnovaImportanceEvaluator(),
            params=sorted({k for t in study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
                           for k in t.params})),
    }
    paths = {}
    for name, plot in plots.items():
        # optuna's plots switch the global style to ggplot; keep that out of the notebook's later figures
        with warnings.catch_warnings(), matplotlib.rc_context():
            warnings.simplefilter("ignore")
            try:
                ax = plot()
            except (ValueError, RuntimeError, ZeroDivisionError) as e:   # e.g. too few complete trials
                print(f"figure '{name}' skipped: {e}")
                continue
            mark_title(ax, mark)
            fig = ax.figure
            fig.set_size_inches(7, 3.6)
            fig.tight_layout()
            artifacts.atomic_write_bytes(out / f"{name}.png", _png(fig))
            plt.close(fig)
        paths[name] = out / f"{name}.png"
    return paths


def mark_title(ax, mark: str) -> None:
    """Append `mark` to the plot's title, wherever the plot put it (optuna's importances title sits on
    the left, over a narrow axes, where a longer title runs off the figure), as one title centred on
    the figure."""
    if not mark:
        return
    title = next((ax.get_title(loc) for loc in ("center", "left", "right") if ax.get_title(loc)), "")
    for loc in ("center", "left", "right"):
        ax.set_title("", loc=loc)
    ax.figure.suptitle(f"{title} ({mark})" if title else mark)


def _plot_curves(study: optuna.Study):
    """Every trial's validation accuracy against steps; pruned trials dashed, where they stop is the rung."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots()
    styles = {"COMPLETE": dict(color="C0", lw=1.5), "PRUNED": dict(color="C3", lw=1, ls="--", alpha=0.7)}
    for t in study.get_trials(deepcopy=False):
        steps = sorted(t.intermediate_values)
        style = styles.get(t.state.name, dict(color="grey", lw=1, ls=":"))
        ax.plot(steps, [t.intermediate_values[s] for s in steps], marker=".", ms=3, **style)
    for state, style in styles.items():
        ax.plot([], [], label=state.lower(), **style)
    ax.set(xlabel="step", ylabel="validation accuracy", title="Trials: complete and pruned")
    ax.legend()
    return ax


def _png(fig) -> bytes:
    import io
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return buf.getvalue()


@dataclass
class SearchResult:
    plan: Plan
    study: optuna.Study
    retrained: list[Retrained]
    dir: Path
    figures: dict = field(default_factory=dict)

    @property
    def mark(self) -> str:
        return budget.OUT_OF_BUDGET_MARK if self.plan.trial.out_of_budget else ""

    def run_results(self) -> list:
        return [r for t in self.retrained for r in t.results]

    def summary(self) -> dict:
        trials = self.study.get_trials(deepcopy=False)
        states = [t.state.name for t in trials]
        top = [r.row(self.dir.parent.parent) for r in self.retrained]   # runs relative to the results folder
        return dict(
            experiment=self.plan.experiment, study=self.study.study_name, scale=self.plan.scale,
            mark=self.mark, dataset=self.plan.trial.dataset, n_trials=len(states),
            complete=states.count("COMPLETE"), pruned=states.count("PRUNED"), failed=states.count("FAIL"),
            rungs=self.plan.rungs, trial_steps=self.plan.trial.steps, retrain_steps=self.plan.retrain.steps,
            trial_time_s=round(sum(t.duration.total_seconds() for t in trials if t.duration), 1),
            trial_steps_done=sum(max(t.intermediate_values, default=0) for t in trials),
            best_val_acc=self.study.best_value if "COMPLETE" in states else None,
            top=top, **{f"test_acc_{r['family']}": r["test_acc"]["mean"] for r in top})


def run_all(plan: Plan, seeds=(0,), device="cpu", data_root=None, results_dir=None, storage: str | None = None,
            n_jobs: int = 1, retrain: bool = True, progress: bool = False, verbose: bool = False) -> SearchResult:
    """Search (or continue, or reuse) and retrain the top 3; writes trials.csv/json, figures, summary.json."""
    study = run_search(plan, device, data_root, results_dir, storage, n_jobs, progress, verbose)
    retrained = retrain_top(plan, study, seeds, device, data_root, results_dir, progress) if retrain else []
    res = SearchResult(plan, study, retrained, search_dir(plan, results_dir))
    res.figures = figures(study, res.dir, res.mark)
    artifacts.atomic_write_json(res.dir / "summary.json", res.summary())
    return res


# ---------------------------------------------------------------------------------------------
# tables for the report-D notebook

# A preview is a smoke test of the whole pipeline on a CPU, not a measurement. Every leg of a trial reloads
# the data (see make_objective), so it keeps the legs few: 16 steps, pruning at 4 and 8; the retrain
# evaluates once, at its end.
PREVIEW = dict(scale=0.001, batch_size=32, trial_steps=16, eval_every=4, min_resource=4, n_trials=8)


def preview_plan(experiment: str, dataset: str | None = None, retrain_steps: int = 60,
                 batch_size: int | None = None) -> Plan:
    plan = make_plan(experiment, PREVIEW["scale"], dataset=dataset, batch_size=batch_size or PREVIEW["batch_size"],
                     retrain_steps=retrain_steps)
    return dataclasses.replace(
        plan, n_trials=PREVIEW["n_trials"], min_resource=PREVIEW["min_resource"], width=0.1,
        trial=plan.trial.replace(steps=PREVIEW["trial_steps"], eval_every=PREVIEW["eval_every"]),
        retrain=plan.retrain.replace(eval_every=plan.retrain.steps))


def for_notebook(P, experiment: str, scale: float | None = None, n_jobs: int = 1) -> SearchResult:
    """One search with a notebook's parameters (cifar_nb.notebook.Params): report D's plan (scale 1), a
    scaled one, or in a preview the tiny preview plan. `steps`, when set, is the retrain's."""
    if P.preview and scale is None:
        plan = preview_plan(experiment, P.dataset, retrain_steps=P.steps or 60, batch_size=P.batch_size)
    else:
        plan = make_plan(experiment, scale or 1.0, dataset=P.dataset, batch_size=P.batch_size,
                         retrain_steps=P.steps)
    return run_all(plan, seeds=P.seeds, device=P.device, data_root=P.data_root,
                   results_dir=P.results_dir, n_jobs=n_jobs)


def space_rows() -> list[tuple[str, str]]:
    """The search space as Optuna sees it, read from `suggest` itself (so the table cannot drift)."""
    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    optuna.logging.set_verbosity(level)
    dists: dict = {}
    for _ in range(200):
        t = study.ask()
        suggest(t)
        dists.update(t.distributions)
        study.tell(t, 0.0)
        if len(dists) >= 18:
            break
    rows = []
    for name, d in dists.items():
        if isinstance(d, optuna.distributions.CategoricalDistribution):
            rows.append((name, "one of " + ", ".join(map(str, d.choices))))
        else:
            rows.append((name, f"{'log-uniform' if d.log else 'uniform'} [{d.low:.10g}, {d.high:.10g}]"))
    return rows


# ---------------------------------------------------------------------------------------------
# command line

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cifar_nb search", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", choices=sorted(MAX_PARAMS))
    p.add_argument("--scale", type=float, default=1.0, help="shrink the whole plan (1 = report D's)")
    p.add_argument("--preview", action="store_true", help="the notebook's tiny smoke-test plan (overrides --scale)")
    p.add_argument("--storage", help="Optuna storage URL (default: SQLite in the search's results folder); "
                                     "sqlite:///path.db on one machine, postgresql://... for a cluster")
    p.add_argument("--n-jobs", type=int, default=1, help="trials at once in this process (threads)")
    p.add_argument("--pruner", choices=["asha", "hyperband"], default="asha")
    p.add_argument("--dataset", help="cifar100 (default), cifar10, cifar10-jpeg, imagefolder:<path>")
    p.add_argument("--batch-size", type=int)
    p.add_argument("--retrain-steps", type=int, help="steps of the top-3 retrain (default: the plan's)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="seeds of the top-3 retrain")
    p.add_argument("--search-only", action="store_true", help="skip the retrain of the top 3")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1 ...")
    p.add_argument("--data-root", help="folder holding the datasets (default: $CIFAR_NB_DATA)")
    p.add_argument("--results-dir", help="where artifacts go (default: results/ or $CIFAR_NB_RESULTS)")
    p.add_argument("--progress", action="store_true", help="a progress bar per training run")
    args = p.parse_args(argv)
    if args.n_jobs < 1:
        raise SystemExit("error: --n-jobs must be at least 1")

    from .budget import BudgetError
    from .data import DataError
    from .runtime import resolve_device
    try:
        if args.preview:
            plan = preview_plan(args.experiment, args.dataset, retrain_steps=args.retrain_steps or 60,
                                batch_size=args.batch_size)
        else:
            plan = make_plan(args.experiment, args.scale, dataset=args.dataset, batch_size=args.batch_size,
                             retrain_steps=args.retrain_steps, pruner=args.pruner)
        res = run_all(plan, seeds=args.seeds, device=str(resolve_device(args.device)), data_root=args.data_root,
                      results_dir=args.results_dir, storage=args.storage, n_jobs=args.n_jobs,
                      retrain=not args.search_only, progress=args.progress, verbose=True)
    except (BudgetError, DataError, ValueError) as e:
        raise SystemExit(f"error: {e}")
    print(json.dumps(res.summary(), indent=2))
    print(f"results in {res.dir}")
    return 0
