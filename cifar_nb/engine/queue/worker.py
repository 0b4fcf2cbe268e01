"""The queue's worker: claims a pending run with a lock file, trains it to its deadline, and starts K workers
side by side on a multi-core CPU."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import datetime

import torch

from cifar_nb.engine import artifacts, runs
from cifar_nb.engine.queue.entries import Entry, RunLock, _fill_state, _hm, plan, remaining
from cifar_nb.engine.runtime import default_runtime


def log(msg: str) -> None:
    print(f"[{datetime.now().strftime('%Y-%m-%d %H:%M:%S')}] {msg}", flush=True)


def select(entries: list[Entry], device: torch.device, only: list[str] | None) -> list[Entry]:
    if only:
        unknown = sorted(set(only) - {e.experiment for e in entries})
        if unknown:
            raise ValueError(f"--only names {', '.join(unknown)}, which the queue does not hold; "
                             f"see `python -m cifar_nb queue` for its experiments")
        chosen = [e for e in entries if e.experiment in only and e.state != "corrupt"]
    else:
        chosen = [e for e in entries if not e.hold and (e.cpu_plan or device.type == "cuda")]
    return [e for e in chosen if e.state != "done" and not e.experiment.startswith("D-search")]


# A GAN's scores depend on whether G samples with its BatchNorm running statistics (eval, ours) or each batch's
# own (train, as the PyTorch DCGAN tutorial does). Once a full-budget GAN run is finished the queue scores it the
# other way too, from its saved weights, so that its chapter shows both (about 10 min on this CPU).
TRAIN_MODE_SCORE_S = 1200.0


def _unscored_in_train_mode(entries: list[Entry], device: torch.device, only: list[str] | None,
                            results_dir=None) -> list[Entry]:
    out = []
    for e in entries:
        if e.state != "done" or e.config.kind != "gan" or (only and e.experiment not in only):
            continue
        if not (e.cpu_plan or device.type == "cuda" or only):
            continue
        n = e.config.train.get("fid_samples", 10_000)
        d = artifacts.run_dir(e.config, results_dir)
        if (artifacts.scored_dir(d, n, "train") / "scores.json").exists():
            continue
        if (d / "generator.pt").exists() or artifacts.kept_weights_path(e.config, "generator.pt", results_dir).exists():
            out.append(e)
    return out


def work(device: torch.device, seconds: float | None, only: list[str] | None, data_root=None, results_dir=None,
         margin_s: float = 90.0, progress_interval_s: float = 60.0, runtime_overrides: dict | None = None) -> int:
    """Train pending runs in priority order until none is left, the deadline nears, or a signal arrives."""
    deadline = time.monotonic() + seconds if seconds else None
    stop = {"signal": None}

    def on_signal(signum, frame):   # between runs; during one, runs.run checkpoints first
        stop["signal"] = signal.Signals(signum).name
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return _work(device, deadline, only, data_root, results_dir, margin_s, progress_interval_s,
                     runtime_overrides, stop)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _work(device, deadline, only, data_root, results_dir, margin_s, progress_interval_s, runtime_overrides,
          stop) -> int:
    done = 0
    for e in select(plan(data_root, results_dir), device, only):
        if stop["signal"]:
            break
        left = deadline - time.monotonic() - margin_s if deadline else None
        if left is not None and left <= 0:
            log("deadline near: stopping before another run")
            break
        lock = RunLock(e.key)
        if not lock.acquire():
            continue
        try:
            _fill_state(e, results_dir)   # another worker may have finished it meanwhile
            if e.state == "done":
                continue
            rt = default_runtime(e.config.model, device, threads=torch.get_num_threads(), **(runtime_overrides or {}))
            log(f"start {e.experiment} seed {e.seed} on {e.config.dataset} ({e.state}"
                f"{f' @ step {e.step:,}' if e.step else ''}; est. {_hm(remaining(e, device.type == 'cuda' and 'h200' or 'cpu'))}"
                f"; {rt.as_record()['precision']}, compile={rt.compile}, channels_last={rt.channels_last}, "
                f"threads={rt.as_record()['threads']})")
            t0 = time.monotonic()
            try:
                res = runs.run(e.config, device=device, data_root=data_root, results_dir=results_dir,
                               time_limit_s=left, runtime=rt, progress=True, progress_interval_s=progress_interval_s)
            except runs.RunInterrupted as err:
                log(f"checkpointed: {err}")
                if err.signalled:
                    stop["signal"] = err.signalled
                break
            except artifacts.RunCorrupt as err:
                log(f"skipped: {err}")
                continue
            done += 1
            log(f"finished {e.experiment} seed {e.seed} in {time.monotonic() - t0:.0f} s -> {res.run_dir} "
                f"({', '.join(f'{k}={v:.4f}' for k, v in res.metrics.items() if k.endswith('_acc') and isinstance(v, float))})")
        finally:
            lock.release()
    for e in _unscored_in_train_mode(plan(data_root, results_dir), device, only, results_dir):
        left = deadline - time.monotonic() - margin_s if deadline else None
        if stop["signal"] or (left is not None and left < TRAIN_MODE_SCORE_S):
            break
        log(f"scoring {e.experiment} seed {e.seed} with G's BatchNorm in train mode (issue 21)")
        t0 = time.monotonic()
        s = runs.score(e.config, device=device, data_root=data_root, results_dir=results_dir,
                       sampling_mode="train", progress=False)
        log(f"scored in {time.monotonic() - t0:.0f} s: FD-cls {s['fd_cls']:.2f}, KID {s['kid_mean']:.5f} (train mode)")
    if stop["signal"]:
        log(f"{stop['signal']}: stopped; run the same command again to resume")
        return 130 if stop["signal"] == "SIGINT" else 143
    log(f"queue worker done: {done} run(s) finished")
    return 0


def default_layout(device: torch.device, parallel: int | None, threads: int | None) -> tuple[int, int | None]:
    """(workers, threads each). On a CPU, one single-threaded run per core. Measured here (A-classifier, the
    queue's own logs): two 1-thread runs side by side did 1.55-1.7 steps/s each when the machine was otherwise
    idle; one 2-thread run did 3.38 steps/s alone, but 0.9-1.3 with other work on the machine. The two layouts
    are about equal in throughput when idle; side by side loses less to anything else running. E-classifier
    (fp32 channels_last): side by side 1.29 and 1.37 s/step (1.5 steps/s together, first minute); one 2-thread
    run 0.84 s/step over 84 min, evaluations included (1.19 steps/s). Side by side does more work per hour;
    `--parallel 1 --threads 2` finishes one run sooner, which is what a session shorter than a run needs."""
    if device.type == "cpu":
        cores = os.cpu_count() or 1
        return (parallel or cores), (threads or (1 if (parallel or cores) > 1 else cores))
    return (parallel or 1), threads


def work_parallel(k: int, argv: list[str]) -> int:
    """K workers as child processes sharing the queue through its locks; signals are passed on to them."""
    base = [a for a in argv]
    i = base.index("--parallel")
    base[i:i + 2] = ["--parallel", "1"]
    procs = []
    for w in range(k):
        procs.append(subprocess.Popen([sys.executable, "-m", "cifar_nb", "queue", *base],
                                      env=dict(os.environ, CIFAR_NB_WORKER=str(w))))
        time.sleep(5)   # let the first claim its run before the next looks

    def forward(signum, frame):
        for p in procs:
            if p.poll() is None:
                p.send_signal(signum)
    for s in (signal.SIGINT, signal.SIGTERM):
        signal.signal(s, forward)
    codes = [p.wait() for p in procs]
    return max(codes, key=abs) if any(codes) else 0
