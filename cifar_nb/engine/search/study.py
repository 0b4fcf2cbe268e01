"""Running report D's trials in an Optuna study: the objective (a trial is a run in legs), storage, resume."""
from __future__ import annotations

import json
import warnings
from dataclasses import asdict
from pathlib import Path

import optuna
import torch

from cifar_nb.engine import artifacts, data, runs
from cifar_nb.engine.search.plan import REPORT_D, Plan, suggest, trial_config
from cifar_nb.models.search_cnn import param_count

GRACE_S = 600            # a RUNNING trial without a heartbeat for this long is failed and retried
VALUE = "val_acc"        # the metric a trial maximises


# ---------------------------------------------------------------------------------------------
# running a trial

def _shape(dataset: str, data_root) -> dict:
    info = data.describe(dataset, data_root)
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
    data.load(plan.trial.dataset, "train", root=data_root)   # DataError names what is missing and where it goes


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
