"""`python -m cifar_nb`: list experiments, run one, check the data, execute the notebooks, search.

    python -m cifar_nb list [--json]
    python -m cifar_nb run <experiment> [--steps N] [--seed S | --seeds 0 1 2] [--dataset D]
                                        [--device auto|cpu|cuda] [--data-root DIR] [--results-dir DIR]
                                        [--batch-size B] [--set FIELD.KEY=VALUE ...] [--time-limit SECONDS]
                                        [--force]
    python -m cifar_nb score <experiment> [--seed S] [--samples N] [--fid-weights PATH]
                                          score a finished generator from its weights, without retraining
    python -m cifar_nb score <classifier> [--seed S] [--variant LABEL] [--split val|test]
                                          evaluate a finished classifier on a split it never trained on
    python -m cifar_nb ablate <experiment> --steps N --dataset D [--seed S]
                                          every ablation of our recipe, at a reduced budget (labelled)
    python -m cifar_nb data check [--data-root DIR]
    python -m cifar_nb status [--write book/_status.md]   what has really been run, per experiment
    python -m cifar_nb queue [--json]     every full-budget run of the book: state, device, estimates
    python -m cifar_nb queue run --device cpu [--seconds N] [--only NAME ...] [--threads T] [--parallel K]
    python -m cifar_nb execute ...        (papermill execution of the book's notebooks; see --help)
    python -m cifar_nb search ...         (report D's Optuna search; see --help)
    python -m cifar_nb lease pack|restore|export|unpack DIR   (a GPU lease, packed and merged; see --help)
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from datetime import datetime
from pathlib import Path

import torch

from cifar_nb import ablations, experiments
from cifar_nb.book import status
from cifar_nb.book import execute
from cifar_nb.budget import BudgetError
from cifar_nb.engine import artifacts, queue, runs, search
from cifar_nb.engine.data import DATA_ROOT_RULES, DataError, cache_dir, check, locate_data_root
from cifar_nb.engine.lease import main as lease_main
from cifar_nb.engine.runtime import default_runtime, resolve_device as to_device
from cifar_nb.flags import add_config_flags, config_from_flags, non_negative_int, positive_int, positive_int_named


def resolve_device(name: str) -> str:
    try:
        return str(to_device(name))
    except ValueError as e:
        raise SystemExit(f"error: {e}") from None


# Errors a user can cause and mend: one sentence each, exit status 2. Anything else is a bug of ours: a sentence,
# the traceback in a log file, exit status 70.
EXPECTED_ERRORS = (ValueError, KeyError, RuntimeError, OSError)
EXIT_USER_ERROR, EXIT_BUG, EXIT_INTERRUPTED = 2, 70, 130


def _error_log(exc: BaseException) -> Path | None:
    try:
        path = cache_dir() / "logs" / f"error-{datetime.now().strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("".join(traceback.format_exception(exc)))
        return path
    except Exception:
        return None


def main(argv: list[str] | None = None) -> int:
    """Every entry point (run, queue, status, execute, search, lease, data, list) behind one error boundary."""
    try:
        return _main(argv)
    except SystemExit:
        raise
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C); a run in training checkpoints first, so run the same command again to resume",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    except EXPECTED_ERRORS as e:
        if isinstance(e, RuntimeError) and type(e).__name__ in ("RuntimeError", "NotImplementedError"):
            return _unexpected(e)   # a bare RuntimeError comes from torch or from us: a bug, not a user's mistake
        msg = e.args[0] if isinstance(e, KeyError) and e.args else str(e)
        if isinstance(e, OSError) and e.filename:
            msg = f"{e.strerror or e}: {e.filename}"
        print(f"error: {msg}", file=sys.stderr)
        return EXIT_USER_ERROR
    except Exception as e:
        return _unexpected(e)


def _unexpected(e: BaseException) -> int:
    log = _error_log(e)
    print(f"unexpected error ({type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}). This is a bug in "
          f"cifar-nb, not in what you typed; the traceback is in {log or '(no log could be written)'}",
          file=sys.stderr)
    return EXIT_BUG


def cmd_list(args) -> int:
    rows = [experiments.get(n).summary() for n in experiments.REGISTRY]
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    w = max(22, *(len(r["name"]) for r in rows))
    print(f"{'experiment':<{w}} {'kind':<11} {'params':>10} {'claimed':>10} {'budget':>10} {'steps':>7}  dataset")
    for r in rows:
        mark = "  OUT OF BUDGET" if r["out_of_budget"] else ("" if r["within_budget"] else "  OVER BUDGET")
        claimed = f"{r['claimed_params']:,}" if r["claimed_params"] else "-"
        print(f"{r['name']:<{w}} {r['kind']:<11} {r['params']:>10,} {claimed:>10} "
              f"{r['budget']['max_params']:>10,} {r['steps']:>7,}  {r['dataset']}{mark}")
        for c in r["claims"]:
            print(f"    claim  {c['metric']:<16} {_claim_value(c):<16} {c['source']}")
        if not r["claims"]:
            print("    claim  none")
    return 0


def _claim_value(c: dict) -> str:
    """A claimed number as the reports state it: accuracies (stored as fractions) in percent, with the
    spread in percentage points; losses, FID and LPIPS as plain numbers."""
    m, v, sd = c["metric"], c["value"], c["std"]
    if m.endswith("_acc") or m.startswith("test_acc"):
        return f"{round(100 * v, 4):g}%" + (f" ± {round(100 * sd, 4):g}" if sd is not None else "")
    return f"{v:g}" + (f" ± {sd:g}" if sd is not None else "")


def cmd_run(args) -> int:
    try:
        exp = experiments.get(args.experiment)
    except KeyError as e:
        raise SystemExit(f"error: {e.args[0]}")
    seeds = args.seeds if args.seeds is not None else [args.seed]
    device = resolve_device(args.device)
    try:
        cfg = config_from_flags(exp, args)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    for seed in seeds:
        try:
            res = runs.run(cfg.replace(seed=seed), device=device, data_root=args.data_root,
                           results_dir=args.results_dir, force=args.force, time_limit_s=args.time_limit,
                           runtime=default_runtime(cfg.model, device, fp32=True) if args.fp32 else None)
        except (BudgetError, DataError, artifacts.RunCorrupt) as e:
            raise SystemExit(f"error: {e}")
        except runs.RunInterrupted as e:
            print(f"stopped early: {e}.")
            return 3
        shown = {k: v for k, v in res.metrics.items() if isinstance(v, (int, float, str)) or v is None}
        print(f"{exp.name} seed {seed}: {'reused' if res.reused else 'trained'} -> {res.run_dir}")
        print(json.dumps(shown, indent=2, sort_keys=True))
    return 0


def cmd_ablate(args) -> int:
    """Every variant of ablations.ABLATIONS[experiment], one after another; finished ones are reused."""
    try:
        todo = ablations.configs(args.experiment, args.steps, args.dataset, args.seed, args.only, args.earlier)
    except (KeyError, ValueError) as e:
        raise SystemExit(f"error: {e.args[0]}")
    device = resolve_device(args.device)
    for label, cfg in todo:
        try:
            res = runs.run(cfg, device=device, data_root=args.data_root, results_dir=args.results_dir)
        except (BudgetError, DataError, artifacts.RunCorrupt) as e:
            raise SystemExit(f"error: {e}")
        except runs.RunInterrupted as e:
            print(f"stopped early: {e}.")
            return 3
        acc, fd = res.metrics.get("test_acc"), res.metrics.get("fd_cls")
        score = f"FD-cls {'—' if fd is None else f'{fd:.2f}'}" if cfg.kind == "gan" else \
            f"test accuracy {'—' if acc is None else f'{100 * acc:.2f} %'}"
        print(f"{label}: {'reused' if res.reused else 'trained'}, {score} -> {res.run_dir}")
    return 0


def cmd_score(args) -> int:
    exp = experiments.get(args.experiment)
    cfg = config_from_flags(exp, args).replace(seed=args.seed)
    if args.variant or args.earlier:
        cfg = cfg.with_changes(ablations.earlier(args.experiment, args.earlier))
        if args.variant:
            todo = dict(ablations.variants(args.experiment, cfg.dataset, [args.variant], args.earlier))
            cfg = cfg.with_changes(todo[args.variant])
    if cfg.kind == "classifier":
        scores = runs.score_classifier(cfg, args.split, device=resolve_device(args.device), data_root=args.data_root,
                                       results_dir=args.results_dir)
        print(json.dumps(scores, indent=2, sort_keys=True))
        return 0
    scores = runs.score(cfg, device=resolve_device(args.device), data_root=args.data_root,
                        results_dir=args.results_dir, n_samples=args.samples, fid_weights=args.fid_weights,
                        sampling_mode=args.sampling_mode, weights=args.weights,
                        runtime=default_runtime(cfg.model, resolve_device(args.device), fp32=True) if args.fp32 else None)
    shown = {k: v for k, v in scores.items() if isinstance(v, (int, float, str)) or v is None}
    print(json.dumps(shown, indent=2, sort_keys=True))
    return 0


def cmd_data(args) -> int:
    try:
        root, rule = locate_data_root(args.data_root)
    except DataError as e:
        raise SystemExit(f"error: {e}")
    print(f"data root: {root} ({DATA_ROOT_RULES[rule]})")
    rows = check(root)
    width = max(len(r["dataset"]) for r in rows)
    for r in rows:
        print(f"  {r['dataset']:<{width}}  {r['status']:<8}  {r['detail']}")
    return 0


def cmd_status(args) -> int:
    if args.write:
        print(f"wrote {status.write(args.write, args.results_dir)}")
    else:
        print(status.status_markdown(args.results_dir), end="")
    return 0


def cmd_queue(args) -> int:
    if args.action is None:
        entries = queue.plan(args.data_root, args.results_dir)
        if args.json:
            print(json.dumps([e.to_json() for e in entries], indent=2))
        else:
            queue.print_plan(entries)
        return 0
    try:
        device = to_device(args.device)
    except ValueError as e:
        raise SystemExit(f"error: {e}")
    if args.only:   # before any worker starts: a bad name is one message, not one per worker
        queue.select(queue.plan(args.data_root, args.results_dir), device, args.only)
    parallel, threads = queue.default_layout(device, args.parallel, args.threads)
    if parallel > 1:
        argv = [a for a in args.argv]
        for flag, value in (("--parallel", parallel), ("--threads", threads)):
            if flag in argv:
                argv[argv.index(flag) + 1] = str(value)
            else:
                argv += [flag, str(value)]
        return queue.work_parallel(parallel, argv)
    args.threads = threads
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return queue.work(device, args.seconds, args.only, data_root=args.data_root, results_dir=args.results_dir,
                          runtime_overrides={"amp": False, "compile": False, "channels_last": False}
                          if args.fp32 else None)
    except ValueError as e:
        raise SystemExit(f"error: {e}")


def execute_main(argv: list[str] | None = None) -> int:
    """`python -m cifar_nb execute`: the book's notebooks through papermill (cifar_nb.book.execute)."""
    p = argparse.ArgumentParser(prog="python -m cifar_nb execute", description=execute.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preview", action="store_true", help="tiny budgets, stand-in data, bannered")
    p.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1 ...")
    p.add_argument("--notebooks", nargs="+", metavar="NAME",
                   help=f"which notebooks (default: all, in book order): {', '.join(execute.KINDS)}")
    p.add_argument("--data-root", help="folder holding the datasets (default: $CIFAR_NB_DATA)")
    p.add_argument("--results-dir", help="run artifacts (default: $CIFAR_NB_RESULTS or the project's results/)")
    p.add_argument("--from-results", action="store_true",
                   help="render chapters from the finished full-budget runs in results/ (the queue's), never "
                        "training; chapters without such runs for every experiment are left as they are")
    p.add_argument("--output-dir", default=None, help="where executed notebooks go (default: book/)")
    p.add_argument("--source-dir", default=None, help="jupytext sources (default: notebooks/)")
    args = p.parse_args(argv)
    try:
        return execute.run_notebooks(args.notebooks, args.preview, args.device, args.data_root, args.results_dir,
                                     args.from_results, args.output_dir, args.source_dir)
    except ValueError as e:
        p.error(str(e))


def search_main(argv: list[str] | None = None) -> int:
    """`python -m cifar_nb search`: report D's search (cifar_nb.engine.search), then the retrain of its top 3."""
    p = argparse.ArgumentParser(prog="python -m cifar_nb search", description=search.__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("experiment", choices=sorted(search.MAX_PARAMS))
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

    try:
        if args.preview:
            plan = search.preview_plan(args.experiment, args.dataset, retrain_steps=args.retrain_steps or 60,
                                batch_size=args.batch_size)
        else:
            plan = search.make_plan(args.experiment, args.scale, dataset=args.dataset, batch_size=args.batch_size,
                             retrain_steps=args.retrain_steps, pruner=args.pruner)
        res = search.run_all(plan, seeds=args.seeds, device=resolve_device(args.device), data_root=args.data_root,
                      results_dir=args.results_dir, storage=args.storage, n_jobs=args.n_jobs,
                      retrain=not args.search_only, progress=args.progress, verbose=True)
    except (BudgetError, DataError, ValueError) as e:
        raise SystemExit(f"error: {e}")
    print(json.dumps(res.summary(), indent=2))
    print(f"results in {res.dir}")
    return 0


def _main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    # Sub-tools with their own argument parsers.
    if argv and argv[0] == "execute":
        return execute_main(argv[1:])
    if argv and argv[0] == "search":
        return search_main(argv[1:])
    if argv and argv[0] == "lease":
        return lease_main(argv[1:])

    p = argparse.ArgumentParser(prog="python -m cifar_nb", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)

    q = sub.add_parser("list", help="every experiment with its kind, parameters, budget and claims")
    q.add_argument("--json", action="store_true")
    q.set_defaults(fn=cmd_list)

    q = sub.add_parser("run", help="train (or reuse) one experiment")
    q.add_argument("experiment")
    add_config_flags(q)
    q.add_argument("--seed", type=non_negative_int, default=0)
    q.add_argument("--seeds", type=non_negative_int, nargs="+", help="several seeds, run one after another")
    q.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1 ...")
    q.add_argument("--data-root", help="folder holding the datasets (default: $CIFAR_NB_DATA)")
    q.add_argument("--results-dir", help="where artifacts go (default: results/ or $CIFAR_NB_RESULTS)")
    q.add_argument("--time-limit", type=float, help="checkpoint and stop after this many seconds")
    q.add_argument("--force", action="store_true", help="retrain even if finished artifacts exist")
    q.add_argument("--fp32", action="store_true", help="plain fp32 eager, no bf16/channels_last/compile (a runtime "
                                                       "setting: same config hash, same results folder)")
    q.set_defaults(fn=cmd_run)

    q = sub.add_parser("score", help="score a finished generator again from its weights (FD-cls, KID, FID where "
                                     "possible), or evaluate a finished classifier on a held-out split, without "
                                     "retraining")
    q.add_argument("experiment")
    q.add_argument("--seed", type=non_negative_int, default=0)
    add_config_flags(q, role=" the run was trained with")
    q.add_argument("--variant", metavar="LABEL", help="the run of one ablation variant of the recipe (its label, as "
                                                      "in `ablate`; changes applied after --set)")
    q.add_argument("--earlier", metavar="LABEL", help="the run of an earlier recipe of ours (ablations.EARLIER_RECIPES), "
                                                      "or with --variant, of one of its variants")
    q.add_argument("--split", choices=["val", "test"], default="val",
                   help="classifiers: the held-out split to evaluate on (default val: train['val_size'] images held "
                        "out of the training split, else the dataset's own validation split)")
    q.add_argument("--samples", type=positive_int, help="images to generate (default: the run's fid_samples)")
    q.add_argument("--fid-weights", help="torch-fidelity's Inception weights file (default: $CIFAR_NB_INCEPTION_WEIGHTS "
                                         "or the torch hub cache)")
    q.add_argument("--sampling-mode", choices=["eval", "train"], default="eval",
                   help="GANs: BatchNorm with running statistics (eval, ours) or each batch's own (train, as the "
                        "DCGAN tutorial samples)")
    q.add_argument("--weights", choices=["average", "live"], default="average",
                   help="a GAN trained with an EMA of G: sample the average (default, as training scored it) or the "
                        "trained G's own weights, to measure what the average adds")
    q.add_argument("--fp32", action="store_true", help="sample in plain fp32 eager (default: the measured fast path)")
    q.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1 ...")
    q.add_argument("--data-root", help="folder holding the datasets (default: $CIFAR_NB_DATA)")
    q.add_argument("--results-dir", help="where the run's artifacts are (default: results/ or $CIFAR_NB_RESULTS)")
    q.set_defaults(fn=cmd_score)

    q = sub.add_parser("ablate", help="every ablation of one of our recipes at a reduced budget (see ablations.py)")
    q.add_argument("experiment", choices=list(ablations.ABLATIONS))
    q.add_argument("--steps", type=positive_int_named("steps"), required=True,
                   help="steps per variant: a reduced budget, labelled as such wherever it is shown")
    q.add_argument("--dataset", required=True, help="cifar100, cifar10, cifar10-jpeg, addnist")
    q.add_argument("--seed", type=non_negative_int, default=0)
    q.add_argument("--only", action="append", metavar="LABEL",
                   help="run only this variant (repeatable; the full recipe always runs): its label in ablations.py")
    q.add_argument("--earlier", metavar="LABEL", help="the variants of an earlier recipe of ours instead "
                                                      "(ablations.EARLIER_RECIPES), that recipe first")
    q.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1 ...")
    q.add_argument("--data-root", help="folder holding the datasets (default: $CIFAR_NB_DATA)")
    q.add_argument("--results-dir", help="where artifacts go (default: results/ or $CIFAR_NB_RESULTS)")
    q.set_defaults(fn=cmd_ablate)

    q = sub.add_parser("data", help="datasets under the data root")
    q.add_argument("action", choices=["check"])
    q.add_argument("--data-root")
    q.set_defaults(fn=cmd_data)

    q = sub.add_parser("queue", help="every full-budget run: state and estimates; `queue run` trains them")
    q.add_argument("action", nargs="?", choices=["run"], help="run: work through the pending runs")
    q.add_argument("--json", action="store_true")
    q.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:1 ...")
    q.add_argument("--seconds", type=float, help="stop cleanly (checkpointed) before this many seconds")
    q.add_argument("--only", nargs="+", metavar="NAME", help="only these experiments (any plan, even GPU ones)")
    q.add_argument("--threads", type=positive_int, help="intra-op threads per worker (CPU default: 1)")
    q.add_argument("--parallel", type=positive_int,
                   help="workers side by side, each claiming its own run (CPU default: one per core; CUDA: 1)")
    q.add_argument("--fp32", action="store_true", help="plain fp32 eager, no bf16/channels_last/compile")
    q.add_argument("--data-root", help="folder holding the datasets (default: $CIFAR_NB_DATA)")
    q.add_argument("--results-dir", help="where artifacts go (default: results/ or $CIFAR_NB_RESULTS)")
    q.set_defaults(fn=cmd_queue)

    q = sub.add_parser("status", help="what has really been run, per experiment (the book's status table)")
    q.add_argument("--write", metavar="FILE", help="write the table as Markdown (the book includes book/_status.md)")
    q.add_argument("--results-dir", help="where artifacts are (default: results/ or $CIFAR_NB_RESULTS)")
    q.set_defaults(fn=cmd_status)

    sub.add_parser("execute", help="execute the book's notebooks with papermill (see: execute --help)")
    sub.add_parser("lease", help="GPU leases: pack, restore, export, unpack (see: lease --help)")
    sub.add_parser("search", help="report D's architecture search in Optuna (see: search --help)")

    args = p.parse_args(argv)
    args.argv = argv[1:]
    return args.fn(args)
