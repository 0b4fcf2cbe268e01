"""The one training loop every trainer runs: step, sum the step's statistics on the device, report them at
intervals, checkpoint by wall clock, stop cleanly. What a step computes and what a report writes are the
trainer's (train/classifier.py, gan.py, diffusion.py); resuming, logging cadence, checkpoints and the
progress bar are here, once.

A checkpoint holds the trainer's own state (`Steps.state()`: model, optimisers, schedulers, RNG) beside the
loop's: the step count, and the sums and count of the interval in progress, so a resumed run reports the
same interval means as an uninterrupted one.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from cifar_nb.engine.train.context import RunInterrupted

# Checkpoints written before this loop existed kept the interval sums under names of their own.
LEGACY_SUMS = {"run_loss": "loss", "run_hits": "hits", "loss_sum": "loss"}
LEGACY_COUNTS = ("run_n", "loss_n")


@dataclass
class Steps:
    """What a trainer hands the loop."""

    total: int                                       # steps of the run (cfg.steps)
    step: Callable[[int], dict]                      # do one step, given the steps done before it; returns its
                                                     # statistics as 0-d device tensors (no host sync)
    every: int                                       # report every this many steps, and at the last
    report: Callable[[int, dict, int], dict | None]  # (steps done, interval sums, steps in the interval): log a
                                                     # row; may return a progress-bar postfix
    state: Callable[[], dict]                        # the trainer's state for a checkpoint
    restore: Callable[[dict], int]                   # load that state back; returns the steps it had done


@dataclass
class LoopResult:
    steps_run: int      # steps trained in this call (fewer than total after a resume)
    train_s: float      # their wall time, device synchronised

    @property
    def steps_per_s(self) -> float | None:
        return self.steps_run / self.train_s if self.steps_run and self.train_s > 0 else None


def _interval_state(state: dict) -> tuple[dict, int]:
    if "sums" in state:
        return state["sums"], state["count"]
    sums = {new: state[old] for old, new in LEGACY_SUMS.items() if old in state}
    return sums, next((state[k] for k in LEGACY_COUNTS if k in state), 0)


def run_steps(ctx, spec: Steps) -> LoopResult:
    """Train from the checkpoint (or from step 0) to spec.total; raise RunInterrupted after checkpointing when
    the context says stop."""
    step, sums, count = 0, {}, 0
    state = ctx.load_checkpoint()
    if state:
        step = spec.restore(state)
        sums, count = _interval_state(state)
        sums = {k: v.to(ctx.device) for k, v in sums.items()}

    bar = ctx.progress_bar(step)
    t0, start = time.perf_counter(), step
    while step < spec.total:
        stats = spec.step(step)
        step += 1
        sums = {k: sums[k] + v if k in sums else v for k, v in stats.items()}
        count += 1
        bar.update(1)
        if step % spec.every == 0 or step == spec.total:
            postfix = spec.report(step, sums, count)
            if postfix:
                bar.set_postfix(**postfix)
            sums, count = {}, 0
        if ctx.should_checkpoint(step):
            ctx.save_checkpoint({**spec.state(), "step": step, "sums": sums, "count": count})
            if ctx.should_stop(step) and step < spec.total:
                bar.close()
                raise RunInterrupted(ctx.stop_message(step))
    bar.close()
    if ctx.device.type == "cuda":
        torch.cuda.synchronize(ctx.device)
    return LoopResult(step - start, time.perf_counter() - t0)
