"""Does the CPU fast path change what a run learns? The same runs trained twice: plain fp32 eager, and the
runtime the queue uses on this machine (cifar_nb.engine.runtime.default_runtime), at a reduced budget.

    python benchmarks/precision_check.py [--steps 1000] [--seeds 0 1] [--experiments A-classifier E-classifier]
                                         [--threads 1] [--out PATH]

Precision, layout and compilation are runtime settings, outside the config: both arms of a pair have the same
config hash, so each arm trains into a results folder of its own in the cache directory
($CIFAR_NB_CACHE/precision_check/<arm>; never the project's results/), and a finished arm is reused when the
script runs again. A-classifier trains on the CIFAR-10 JPEG stand-in, E-classifier on AddNIST (its report's
data). The summary goes to benchmarks/results/<device>-precision_check.json: per run the final test and train
accuracy, wall time and runtime record of both arms, and per experiment the mean and largest difference.
This is a check at a labelled reduced budget (--steps of a 10,000-step recipe), not a reproduction.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime, timezone
from pathlib import Path

import torch

from cifar_nb import experiments
from cifar_nb.engine import runs
from cifar_nb.engine.artifacts import atomic_write_json, cache_dir, device_name, device_slug, git_commit
from cifar_nb.engine.runtime import default_runtime

RESULTS = Path(__file__).resolve().parent / "results"
ARMS = ("fp32", "fast")



def train_arm(cfg, arm: str, device, threads: int, data_root=None) -> dict:
    rt = default_runtime(cfg.model, device, fp32=(arm == "fp32"), threads=threads)
    res = runs.run(cfg, device=device, data_root=data_root, runtime=rt,
                   results_dir=cache_dir() / "precision_check" / arm)
    m, env = res.metrics, res.env
    return dict(test_acc=m["test_acc"], train_acc=m["train_acc"], test_loss=m["test_loss"],
                wall_time_s=env.get("wall_time_s"), runtime=env.get("runtime", rt.as_record()),
                reused=res.reused, git_commit=env.get("git_commit"))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=1000)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    p.add_argument("--experiments", nargs="+", default=["A-classifier", "E-classifier"])
    p.add_argument("--threads", type=int, default=1, help="intra-op threads (default 1: the queue's layout)")
    p.add_argument("--data-root", default=None, help="default: $CIFAR_NB_DATA")
    p.add_argument("--out", default=None, help="JSON path (default benchmarks/results/<device>-precision_check.json)")
    args = p.parse_args(argv)
    if args.steps <= 0 or not args.seeds:
        p.error("--steps must be positive and --seeds non-empty")
    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    rows = []
    for name in args.experiments:
        exp = experiments.get(name)
        if exp.config.kind != "classifier":
            p.error(f"{name} is a {exp.config.kind}: this check compares classifiers' accuracies")
        dataset = "addnist" if exp.config.dataset == "addnist" else "cifar10-jpeg"
        for seed in args.seeds:
            cfg = exp.make_config(dataset=dataset, steps=args.steps).replace(seed=seed)
            row = dict(experiment=name, seed=seed, steps=cfg.steps, budget_steps=exp.config.steps,
                       dataset=dataset, config_hash=cfg.hash)
            for arm in ARMS:
                row[arm] = train_arm(cfg, arm, device, args.threads, args.data_root)
                print(f"{name} seed {seed} {arm}: test {row[arm]['test_acc']:.4f} "
                      f"({row[arm]['runtime']['precision']}, compile={row[arm]['runtime']['compile']}, "
                      f"channels_last={row[arm]['runtime']['channels_last']})", flush=True)
            row["test_acc_difference"] = row["fast"]["test_acc"] - row["fp32"]["test_acc"]
            rows.append(row)

    summary = {}
    for name in args.experiments:
        diffs = [r["test_acc_difference"] for r in rows if r["experiment"] == name]
        summary[name] = dict(mean_difference=sum(diffs) / len(diffs), largest_difference=max(diffs, key=abs),
                             seeds=len(diffs))
    print(f"\n{'experiment':<14} {'seed':>4} {'fp32 test':>9} {'fast test':>9} {'fast - fp32':>11}  fast path")
    for r in rows:
        rt = r["fast"]["runtime"]
        path = rt["precision"] + ("+cl" if rt["channels_last"] else "") + ("+compile" if rt["compile"] else "")
        print(f"{r['experiment']:<14} {r['seed']:>4} {r['fp32']['test_acc']:>9.4f} {r['fast']['test_acc']:>9.4f} "
              f"{r['test_acc_difference']:>+11.4f}  {path}")
    out = Path(args.out) if args.out else RESULTS / f"{device_slug(device_name(device))}-precision_check.json"
    atomic_write_json(out, dict(device=str(device), device_name=device_name(device), torch=torch.__version__,
                                date=datetime.now(timezone.utc).isoformat(timespec="seconds"), git_commit=git_commit(),
                                threads=args.threads, steps=args.steps, reduced_budget=True,
                                rows=rows, summary=summary))
    print(f"\nwrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
