"""What report D searches: the plan (trials, rungs, budgets), the search space and the preview plan."""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
from dataclasses import asdict, dataclass

import optuna

from cifar_nb import budget, experiments
from cifar_nb.config import RunConfig
from cifar_nb.models.search_cnn import FAMILIES, KERNEL_SIZES, fit_width

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
