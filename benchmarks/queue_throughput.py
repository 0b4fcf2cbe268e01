"""Queue throughput on this machine: one run on all cores against several runs side by side on one core each.

    python benchmarks/queue_throughput.py [--experiments A-classifier C-generator] [--steps 40]

For each experiment it times `--steps` optimisation steps (a) in one process with T = cpu_count threads and
(b) in K = cpu_count processes with one thread each, started together, both on the runtime the queue uses here
(cifar_nb.engine.runtime.default_runtime), and (c) the loop as it was before that runtime existed: one process
of T threads in plain fp32 eager (CIFAR_NB_PRECISION=fp32). It reports the steps per wall second of the machine
in each. (b)/(a) is what `queue run --parallel K --threads 1` gains (or loses) over `--parallel 1 --threads T`,
and the queue's default follows it; (b)/(c) is the two changes together, runs finished per hour against the
old queue's. Results go to benchmarks/results/cpu-<cores>-cores-queue_throughput.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
CHILD = """
import sys, time, torch
torch.set_num_threads({threads})
from cifar_nb import experiments
from cifar_nb.engine import data
exp = experiments.get({name!r})
ds = "addnist" if exp.config.dataset == "addnist" else "cifar10-jpeg"
cfg = exp.make_config(dataset=ds)
if cfg.kind == "classifier":
    from cifar_nb.engine.train.classifier import Loop
    loop = Loop(cfg, data.load(ds, "train"), "cpu")
    step = loop.step
else:
    from cifar_nb.engine.train import gan
    tr = data.load(ds, "train")
    s = gan.setup(cfg, tr.info, torch.device("cpu")); s.model.train()
    g = torch.Generator().manual_seed(0)
    step = lambda: gan.train_step(s, tr.images[torch.randint(0, len(tr), (cfg.batch_size,), generator=g)], 0, g)
for _ in range({warmup}):
    step()
print("READY", flush=True)
sys.stdin.readline()                       # start together
t = time.perf_counter()
for _ in range({steps}):
    step()
print(time.perf_counter() - t, flush=True)
"""


def timed(name: str, procs: int, threads: int, steps: int, warmup: int, fp32: bool = False) -> float:
    """Steps per wall second of the whole machine, `procs` processes of `threads` threads each."""
    code = CHILD.format(name=name, threads=threads, steps=steps, warmup=warmup)
    env = dict(os.environ, CIFAR_NB_PRECISION="fp32") if fp32 else None
    ps = [subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                           env=env) for _ in range(procs)]
    for p in ps:
        while p.stdout.readline().strip() != "READY":
            if p.poll() is not None:
                raise RuntimeError(f"{name}: benchmark child exited with {p.returncode}")
    t0 = time.perf_counter()
    for p in ps:
        p.stdin.write("go\n")
        p.stdin.flush()
    for p in ps:
        p.stdout.readline()
        p.wait()
    return procs * steps / (time.perf_counter() - t0)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--experiments", nargs="+",
                    default=["A-classifier", "B-classifier", "E-classifier", "ours-classifier", "C-generator"])
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--out", default=None)
    args = ap.parse_args(argv)
    cores = os.cpu_count() or 1
    load_before = os.getloadavg()[0]      # anything else running makes the timings worth less
    rows = []
    for name in args.experiments:
        old = timed(name, 1, cores, args.steps, args.warmup, fp32=True)
        one = timed(name, 1, cores, args.steps, args.warmup)
        side = timed(name, cores, 1, args.steps, args.warmup)
        rows.append(dict(experiment=name, fp32_one_run_all_threads_steps_per_s=old,
                         one_run_all_threads_steps_per_s=one, runs_side_by_side_steps_per_s=side,
                         side_by_side_over_one=side / one, side_by_side_over_fp32_one=side / old, processes=cores))
        print(f"{name}: fp32 eager 1 x {cores} threads {old:.3f} steps/s; default 1 x {cores} threads {one:.3f}; "
              f"{cores} x 1 thread {side:.3f} (x{side / one:.2f} over one run, x{side / old:.2f} over fp32)", flush=True)
    import torch
    out = Path(args.out) if args.out else HERE / "results" / f"cpu-{cores}-cores-queue_throughput.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(dict(date=datetime.now(timezone.utc).isoformat(timespec="seconds"),
                                   torch=torch.__version__, cores=cores, steps=args.steps, rows=rows,
                                   load_average_before=load_before,
                                   load_average_after=os.getloadavg()[0]), indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
