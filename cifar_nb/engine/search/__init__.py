"""Report D's architecture and hyper-parameter search, in Optuna, then a retrain of the top 3.

Modules: plan (what is searched: the plan, the space, the preview), study (running trials in an Optuna
study), results (trials table, the retrain of the top 3, figures). The command line is `python -m cifar_nb
search` (cli.py).

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

# The search's public names, so that callers write search.make_plan, search.run_all, ...
from cifar_nb.engine.search.plan import (MAX_PARAMS, PREVIEW, REPORT_D, Plan, make_plan, preview_plan, space_rows,
                                         suggest, trial_config)
from cifar_nb.engine.search.study import (FINISHED, GRACE_S, VALUE, make_objective, n_finished, open_study, preflight,
                                          run_search, search_dir, trials_table, write_trials)
from cifar_nb.engine.search.results import (Retrained, SearchResult, figures, for_notebook, mark_title,
                                            retrain_config, retrain_top, run_all, top_trials)

__all__ = ["MAX_PARAMS", "PREVIEW", "REPORT_D", "Plan", "make_plan", "preview_plan", "space_rows", "suggest",
           "trial_config", "FINISHED", "GRACE_S", "VALUE", "make_objective", "n_finished", "open_study", "preflight",
           "run_search", "search_dir", "trials_table", "write_trials", "Retrained", "SearchResult", "figures",
           "for_notebook", "mark_title", "retrain_config", "retrain_top", "run_all", "top_trials"]
