"""The orchestrator: `run(cfg)` trains a run (or resumes it, or returns its finished artifacts) and writes them.

Asking for a run whose artifacts are complete returns them without training: this is how the notebooks
re-execute on a CPU from results made on a GPU. Training state is checkpointed by wall clock (every
`checkpoint_every_s`, 4 min by default) and when SIGINT or SIGTERM arrives, into the checkpoint store
(cifar_nb.engine.artifacts.checkpoint_path), and removed once the run is complete; running the same config again
resumes from there with the same final metrics.

A generator is scored in the features of a classifier (FD-cls). That classifier is a run of its own, which
`run` trains or reuses first and hands to the trainer (RunContext.feature_net): evaluation never starts runs.
"""
from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from pathlib import Path

import torch

from cifar_nb import budget, models
from cifar_nb.config import RunConfig
from cifar_nb.engine import data, train
from cifar_nb.engine.artifacts import (
    RunResult,
    atomic_write_json,
    checkpoint_path,
    environment_record,
    git_commit,
    keep_weights,
    load_complete,
    results_root,
    run_dir,
    scored_dir,
    write_history_csv,
)
from cifar_nb.engine.evaluate import features
from cifar_nb.engine.evaluate.generator import evaluate_generator
from cifar_nb.engine.runtime import default_runtime
from cifar_nb.engine.train.context import RunContext, RunInterrupted
from cifar_nb.experiments import FEATURE_STEPS, GENERATOR_KINDS, feature_config


class _StopOnSignal:
    """While training, SIGINT/SIGTERM only set ctx.signalled: the loop then checkpoints and stops cleanly.
    A second signal of the same kind falls through to the previous handler (a second Ctrl-C kills)."""

    SIGNALS = ("SIGINT", "SIGTERM")

    def __init__(self, ctx: "RunContext"):
        self.ctx, self.previous = ctx, {}

    def __enter__(self):
        if threading.current_thread() is not threading.main_thread():
            return self
        for name in self.SIGNALS:
            sig = getattr(signal, name)
            self.previous[sig] = signal.getsignal(sig)
            signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.ctx.signalled is not None:
            prev = self.previous.get(signum)
            if callable(prev):
                return prev(signum, frame)
            raise KeyboardInterrupt
        self.ctx.signalled = signal.Signals(signum).name

    def __exit__(self, *exc):
        for sig, prev in self.previous.items():
            signal.signal(sig, prev)
        return False


def run(cfg: RunConfig, device: str | torch.device = "cpu", data_root: Path | str | None = None,
        results_dir: Path | str | None = None, force: bool = False, time_limit_s: float | None = None,
        stop_at_step: int | None = None, progress: bool = True,
        checkpoint_every: int | None = None, runtime=None,
        checkpoint_every_s: float | None = None, progress_interval_s: float = 2.0) -> RunResult:
    """Train `cfg` (or resume it, or return its finished artifacts) and write its artifacts.

    Raises BudgetError before anything is written if the run breaks its budget, and RunInterrupted
    (after checkpointing) when `time_limit_s` or `stop_at_step` stops it early.
    """

    if not force:
        done = load_complete(cfg, results_dir)   # raises RunCorrupt rather than overwrite a doubtful folder
        if done is not None:
            return done
    info = data.describe(cfg.dataset, data_root)
    n_params = budget.count_params(models.build_for_config(cfg, info.num_classes, info.image_size, info.channels))
    budget.check(cfg.kind, n_params, cfg.steps, cfg.out_of_budget)

    device = torch.device(device)
    feature_net = None
    if cfg.kind in GENERATOR_KINDS:
        t0 = time.monotonic()
        feature_net = feature_net_for(cfg, device, data_root, results_dir, progress, time_limit_s)
        if time_limit_s is not None:     # the feature run's time comes out of this run's allowance
            time_limit_s = max(1.0, time_limit_s - (time.monotonic() - t0))
    d = run_dir(cfg, results_dir)
    _check_writable(Path(results_dir or results_root()))
    if force:
        (d / "metrics.json").unlink(missing_ok=True)
    atomic_write_json(d / "config.json", cfg.to_dict())
    ctx = RunContext(cfg, device, Path(data_root) if data_root else None, d, time_limit_s=time_limit_s,
                     stop_at_step=stop_at_step, progress=progress, checkpoint_every=checkpoint_every,
                     runtime=runtime, checkpoint_file=checkpoint_path(cfg, results_dir),
                     progress_interval_s=progress_interval_s, feature_net=feature_net)
    if checkpoint_every_s is not None:
        ctx.checkpoint_every_s = checkpoint_every_s
    if force:
        ctx.checkpoint_path.unlink(missing_ok=True)
    try:
        with _StopOnSignal(ctx):
            metrics = train.trainer_for(cfg.kind)(ctx)
    except RunInterrupted as e:
        e.signalled = ctx.signalled
        raise
    except BaseException:
        # A run that failed before its first checkpoint leaves nothing behind.
        if not ctx.checkpoint_path.exists():
            (d / "config.json").unlink(missing_ok=True)
            if d.exists() and not any(d.iterdir()):
                d.rmdir()
        raise

    metrics = dict(metrics, params=n_params, steps=cfg.steps, seed=cfg.seed,
                   out_of_budget=cfg.out_of_budget, wall_time_s=round(ctx.elapsed(), 2))
    env = dict(environment_record(device), wall_time_s=metrics["wall_time_s"])
    if ctx.runtime is not None and hasattr(ctx.runtime, "as_record"):
        env["runtime"] = ctx.runtime.as_record()
    env["weights_sha256"] = keep_weights(cfg, d, results_dir)
    write_history_csv(d / "history.csv", ctx.history)
    atomic_write_json(d / "env.json", env)
    atomic_write_json(d / "metrics.json", metrics)   # last: marks the run complete
    ctx.checkpoint_path.unlink(missing_ok=True)
    return RunResult(cfg, d, metrics, ctx.history, env)


def _check_writable(root: Path) -> None:
    """A results folder that is a file, or that cannot be written, is refused before anything is trained."""
    for p in (root, *root.parents):
        if p.exists():
            if not p.is_dir():
                raise ValueError(f"results folder {root} cannot be made: {p} is a file, not a folder. Give "
                                 "--results-dir (or $CIFAR_NB_RESULTS) a folder, or move the file away")
            # no write bits means read-only by intent, even for root (whom os.access always lets write)
            if not os.access(p, os.W_OK) or not p.stat().st_mode & 0o222:
                raise ValueError(f"results folder {root} cannot be written ({p} is read-only). Give --results-dir "
                                 "(or $CIFAR_NB_RESULTS) a folder you can write to")
            return


def feature_net_for(cfg: RunConfig, device="cpu", data_root=None, results_dir=None, progress: bool = True,
                    time_limit_s: float | None = None):
    """The FD-cls feature network a generator run is scored in: the feature run of the generator's dataset at
    its train["feature_steps"], trained here once (a run like any other, so reused after) and loaded."""
    steps = cfg.train.get("feature_steps", FEATURE_STEPS)
    res = run(feature_config(cfg.dataset, steps), device=device, data_root=data_root, results_dir=results_dir,
              progress=progress, time_limit_s=time_limit_s)
    return features.load_feature_net(res, data_root, device)


def _finished_with_weights(cfg: RunConfig, name: str, results_dir) -> tuple[RunResult, Path]:
    """The finished run of `cfg` and its weights file `name`, or an error that says how to get them."""
    res = load_complete(cfg, results_dir)
    if res is None:
        raise ValueError(f"{cfg.experiment} seed {cfg.seed} has no finished run in {run_dir(cfg, results_dir)}: train "
                         f"it first (python -m cifar_nb run {cfg.experiment} --seed {cfg.seed})")
    weights_file = res.run_dir / name
    if not weights_file.exists():
        raise FileNotFoundError(f"{weights_file} is missing: weights are not kept in git. Train the run here "
                                f"(python -m cifar_nb run {cfg.experiment} --seed {cfg.seed} --force), or bring "
                                "them back from the machine that trained it (python -m cifar_nb lease unpack)")
    return res, weights_file


def score_classifier(cfg: RunConfig, split: str = "val", device="cpu", data_root=None, results_dir=None,
                     runtime=None) -> dict:
    """Evaluate a finished classifier run's saved weights on a split it never trained on, without retraining: how
    a variant chosen by its test accuracy is checked on a validation split. Scores go to
    <run_dir>/scored/<split>-split/scores.json; the training artifacts are never touched. The evaluation is the
    run's own (its weights, test-time views and measured runtime), so split="test" gives back its test_acc."""
    if cfg.kind != "classifier":
        raise ValueError(f"{cfg.experiment} is a {cfg.kind}: only classifiers are evaluated on a split")
    res, weights_file = _finished_with_weights(cfg, "weights.pt", results_dir)
    device = torch.device(device)
    imageset = train.classifier.held_out(cfg, split, data_root, device)
    runtime = runtime or default_runtime(cfg.model, device)
    loss, acc = train.classifier.evaluate_weights(
        cfg, torch.load(weights_file, map_location=device, weights_only=True), imageset, runtime)
    scores = {f"{split}_loss": loss, f"{split}_acc": acc, f"n_{split}": len(imageset), "split": split,
              "run": cfg.hash, "experiment": cfg.experiment, "seed": cfg.seed,
              "weights_sha256": hashlib.sha256(weights_file.read_bytes()).hexdigest(),
              "scored_with": git_commit(), "scored_on": environment_record(device)["date"],
              "runtime": runtime.as_record()}
    atomic_write_json(res.run_dir / "scored" / f"{split}-split" / "scores.json", scores)
    return scores


def score(cfg: RunConfig, device="cpu", data_root=None, results_dir=None, n_samples: int | None = None,
          fid_weights=None, progress: bool = True, sampling_mode: str = "eval", runtime=None,
          weights: str = "average") -> dict:
    """Score a finished generator run again from its saved weights, without retraining: FD-cls and KID always,
    FID where the Inception weights and the CIFAR-100 test set are here, and the figures. Everything goes to
    <run_dir>/scored/<n>-samples[-train-mode][-live-weights]/ (scores.json last); the training artifacts are never
    touched.
    The scoring code is the one training runs at its end (metrics.evaluate_generator); `runtime` (precision,
    layout) defaults to the measured default for the network on `device`, and scores.json records it."""
    if cfg.kind not in GENERATOR_KINDS:
        raise ValueError(f"{cfg.experiment} is a {cfg.kind}, not a generator: only generators are scored")
    if weights != "average" and cfg.kind != "gan":
        raise ValueError(f"weights={weights!r} is for a GAN trained with an EMA of G; {cfg.experiment} is a {cfg.kind}")
    res, weights_file = _finished_with_weights(cfg, "generator.pt", results_dir)
    device = torch.device(device)
    which = {"weights": weights} if weights != "average" else {}
    handle = train.handle_loader_for(cfg.kind)(cfg, weights_file, device, sampling_mode, runtime=runtime, **which)
    n = n_samples or cfg.train.get("fid_samples", 10_000)
    out = scored_dir(res.run_dir, n, sampling_mode, weights)
    feature_net = feature_net_for(cfg, device, data_root, results_dir, progress)
    scores = evaluate_generator(handle, dataset=cfg.dataset, run_dir=out, data_root=data_root, device=device,
                                seed=cfg.seed, progress=progress, n_samples=n, feature_net=feature_net,
                                inception_weights=fid_weights, interpolation=cfg.train.get("interpolation", "slerp"),
                                batch_size=handle.batch_size)
    scores = dict(scores, run=cfg.hash, experiment=cfg.experiment, seed=cfg.seed, samples=n,
                  generator_sha256=hashlib.sha256(weights_file.read_bytes()).hexdigest(), weights=weights,
                  scored_with=git_commit(), scored_on=environment_record(device)["date"],
                  runtime=handle.runtime.as_record())
    atomic_write_json(out / "scores.json", scores)
    return scores


def run_seeds(cfg: RunConfig, seeds: list[int], **kwargs) -> list[RunResult]:
    return [run(cfg.replace(seed=s), **kwargs) for s in seeds]
