"""The run queue: every full-budget run the book needs, its state, its cost, and a worker that trains it.

    python -m cifar_nb queue [--json]                  the plan: experiment x seed, state, device, estimates
    python -m cifar_nb queue run --device cpu [--seconds N] [--only NAME ...] [--threads T] [--parallel K]

The plan is ordered by priority. On a CPU the worker takes only the runs marked for the CPU (the ones this
machine can finish in hours); `--only` names others explicitly. Each run is the experiment's full recipe; only
the dataset changes where CIFAR-100 is absent (the CIFAR-10 JPEG stand-in, labelled as such everywhere).

Several workers may share one queue (`--parallel K` starts K of them): each claims a run with a lock file in the
cache directory, so no run is trained twice at once. A run checkpoints by wall clock and on SIGINT/SIGTERM
(cifar_nb.engine.runs), and the worker stops before its deadline, leaving a checkpoint that the next worker resumes.

Modules: entries (the plan, its state and estimates), worker (locks, the work loop, parallel workers).
"""
from __future__ import annotations

# The queue's public names, so that callers write queue.plan(), queue.work(...), ...
from cifar_nb.engine.queue.entries import (DDPM_SAMPLE_S_H200, EVAL_OVERHEAD, KERNELS_PER_STEP, LAUNCH_S, PLAN, SEEDS,
                                         STAND_IN, Entry, RunLock, cpu_speeds, estimate, h200_speeds, pid_alive, plan,
                                         print_plan, remaining)
from cifar_nb.engine.queue.worker import default_layout, log, select, work, work_parallel

__all__ = ["SEEDS", "STAND_IN", "PLAN", "LAUNCH_S", "KERNELS_PER_STEP", "EVAL_OVERHEAD", "DDPM_SAMPLE_S_H200",
           "Entry", "cpu_speeds", "h200_speeds", "estimate", "plan", "remaining", "print_plan", "RunLock",
           "pid_alive", "log", "select", "work", "default_layout", "work_parallel"]
