"""After the search: the trials table, the retrain of the top 3, figures, and the result a notebook reads."""
from __future__ import annotations

import io
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import optuna

from cifar_nb import budget
from cifar_nb.config import RunConfig
from cifar_nb.engine import artifacts, runs
from cifar_nb.engine.search.plan import Plan, make_plan, preview_plan
from cifar_nb.engine.search.study import run_search, search_dir

# ---------------------------------------------------------------------------------------------
# results: trials table, retrain of the top 3, figures

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


def for_notebook(P, experiment: str, scale: float | None = None, n_jobs: int = 1) -> SearchResult:
    """One search with a notebook's parameters (cifar_nb.book.params.Params): report D's plan (scale 1), a
    scaled one, or in a preview the tiny preview plan. `steps`, when set, is the retrain's."""
    if P.preview and scale is None:
        plan = preview_plan(experiment, P.dataset, retrain_steps=P.steps or 60, batch_size=P.batch_size)
    else:
        plan = make_plan(experiment, scale or 1.0, dataset=P.dataset, batch_size=P.batch_size,
                         retrain_steps=P.steps)
    return run_all(plan, seeds=P.seeds, device=P.device, data_root=P.data_root,
                   results_dir=P.results_dir, n_jobs=n_jobs)
