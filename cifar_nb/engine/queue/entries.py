"""The queue's entries: every full-budget run of the book in priority order, its state on disk and its
estimated time on this CPU and on an H200."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import torch

from cifar_nb import experiments
from cifar_nb.config import PROJECT_ROOT, RunConfig
from cifar_nb.engine import artifacts, data
from cifar_nb.engine.data import DataError, cache_dir

SEEDS = (0, 1, 2)
STAND_IN = "cifar10-jpeg"
# Every dataset the book has: our own models run on each (the reports' on their own). CIFAR-100 and CIFAR-10, where
# absent, become the stand-in, so a run that would be listed twice is listed once.
ALL_DATASETS = ("cifar100", "cifar10", STAND_IN, "addnist")

# (experiment, seeds, on the CPU plan, why it waits[, datasets]). Order is priority: the CPU plan first (issue 12),
# then our own models, then what needs a GPU, cheapest first. Without datasets an entry runs on its experiment's
# own dataset (E-classifier: AddNIST; CIFAR-100 where present, else the stand-in); with them, on each in turn.
PLAN = [
    ("E-classifier", SEEDS, True, None),
    ("A-classifier", SEEDS, True, None),
    ("B-classifier", (0,), True, None),
    # Held until issue 13 changed the generator hashes (train.feature_steps); they are now pinned by a test. Its
    # FD-cls feature run (2,000 steps) trains first, inside this run.
    ("C-generator", (0,), True, None),
    # our own models (issue 16): on the CPU after the reports' CPU runs; every seed and dataset on a GPU
    ("ours-classifier", (0,), True, None, ("addnist", STAND_IN)),
    ("ours-generator", (0,), True, None, (STAND_IN,)),
    ("ours-classifier", SEEDS, False, None, ALL_DATASETS),
    ("ours-generator", SEEDS, False, None, ALL_DATASETS),
    ("B-classifier", (1, 2), False, None),
    ("B-ablation-1", SEEDS, False, None),
    ("B-ablation-2", SEEDS, False, None),
    ("B-ablation-3", SEEDS, False, None),
    ("B-ablation-4", SEEDS, False, None),
    ("C-classifier", SEEDS, False, None),
    ("D-search-inbudget", (0,), False, "runs through `python -m cifar_nb search` (report D's plan)"),
    ("D-search", (0,), False, "runs through `python -m cifar_nb search` (report D's plan)"),
    ("C-generator", (1, 2), False, None),
    ("A-generator", SEEDS, False, None),
    ("E-generator", SEEDS, False, None),
    ("B-generator", SEEDS, False, None),
    ("B-generator-sigmoid-128", SEEDS, False, None),
    ("B-generator-linear", SEEDS, False, None),
]

# H200 speed model, until a lease brings back a measured table: these loops are launch-bound, so a step costs
# about (kernels per step) x 10 us. Kernel counts per step are rough counts of the model's forward+backward+
# optimiser (fused Adam) launches.
LAUNCH_S = 10e-6
KERNELS_PER_STEP = {"resnet_bottleneck": 400, "dsconv_resnet": 500, "densenet": 800, "mbconv_se": 800,
                    "search_cnn": 150, "dcgan": 200, "unet_ddpm": 1000,
                    # ours, not yet counted either: ~7 convs + EMA; G + spectrally normalised D + DiffAugment x 3
                    "ours_classifier": 300, "ours_gan": 500}
# Evaluation and scoring beside training, as a fraction of training time (classifiers: 21 evaluations of
# 10k test + 10k train images; generators: 10,000 samples scored), measured on the CPU runs so far.
EVAL_OVERHEAD = {"classifier": 0.08, "gan": 0.05, "diffusion": 0.02}
DDPM_SAMPLE_S_H200 = 10 * 1000 * 300 * LAUNCH_S   # 10 batches of 1,000 x 1,000 sampler steps x ~300 kernels


@dataclass
class Entry:
    experiment: str
    seed: int
    priority: int
    cpu_plan: bool
    hold: str | None
    config: RunConfig
    dataset_note: str = ""
    state: str = "pending"              # done | running | checkpointed | pending | held | corrupt
    step: int = 0
    device: str | None = None           # where it ran (done) or is being trained (checkpointed)
    wall_time_s: float | None = None
    est_cpu_s: float | None = None
    est_h200_s: float | None = None
    run_dir: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def key(self) -> str:
        return f"{self.experiment}-{self.config.hash}-seed{self.seed}"

    def to_json(self) -> dict:
        return dict(experiment=self.experiment, seed=self.seed, priority=self.priority, dataset=self.config.dataset,
                    dataset_note=self.dataset_note, state=self.state, step=self.step, steps=self.config.steps,
                    device=self.device, wall_time_s=self.wall_time_s, est_cpu_s=self.est_cpu_s,
                    est_h200_s=self.est_h200_s, cpu_plan=self.cpu_plan, hold=self.hold, config_hash=self.config.hash,
                    run_dir=self.run_dir)


def _dataset_for(exp: experiments.Experiment, present: set[str]) -> tuple[str, str]:
    return _dataset_named(exp.config.dataset, present)


def _dataset_named(ds: str, present: set[str]) -> tuple[str, str]:
    """(the dataset a run asking for `ds` uses here, a note when that is the stand-in instead)."""
    if ds in ("cifar100", "cifar10") and ds not in present:
        return STAND_IN, f"{'CIFAR-100' if ds == 'cifar100' else 'CIFAR-10'} absent here: the CIFAR-10 JPEG stand-in"
    return ds, ""


def _present_datasets(data_root) -> set[str]:
    """Which report datasets this machine has, by their files alone (cheap: no archive read, no md5; a
    corrupt file is caught when a run loads it)."""
    try:
        root = data.data_root(data_root)
    except DataError:
        return set()
    present = {kind for kind in ("cifar100", "cifar10") if data.cifar_files_present(kind, root)}
    if (root / "mnist" / "MNIST" / "raw").is_dir():
        present.add("addnist")
    return present


def cpu_speeds() -> dict[str, float]:
    """Measured CPU steps/s per experiment from the committed benchmark tables (the new default path where
    measured, else the older 'fast' column)."""
    out: dict[str, float] = {}
    bench = PROJECT_ROOT / "benchmarks" / "results"
    for path in sorted(bench.glob("cpu-*.json")):
        try:
            rows = json.loads(path.read_text()).get("rows", [])
        except (OSError, ValueError):
            continue
        for r in rows:
            rate = r.get("steps_per_s") or r.get("fast_steps_per_s") or r.get("train_steps_per_s")
            if rate and r.get("experiment"):
                out.setdefault(r["experiment"], float(rate))
    return out


def h200_speeds() -> dict[str, float]:
    """Measured H200 steps/s per experiment (evaluation included), from the table `lease unpack` keeps."""
    path = PROJECT_ROOT / "benchmarks" / "results" / "h200-speed.json"
    try:
        exps = json.loads(path.read_text()).get("experiments", {})
    except (OSError, ValueError):
        return {}
    return {k: float(v["steps_per_s"]) for k, v in exps.items() if v.get("steps_per_s")}


def _base_experiment(name: str) -> str:
    """Experiments that share a network (and, but for the feature run, a batch size) with a benchmarked one."""
    if name.startswith("B-ablation"):
        return "B-classifier"
    if name.startswith("B-generator"):
        return "B-generator"
    if name.startswith("D-search"):
        return "D-search"
    if name == experiments.FEATURE_CONFIG.experiment:     # report C's DenseNet, at batch 256 instead of 512
        return "C-classifier"
    return name


def estimate(cfg: RunConfig, speeds: dict[str, float], h200: dict[str, float] | None = None
             ) -> tuple[float | None, float]:
    """(CPU seconds, H200 seconds) for a whole run of `cfg`. The H200 figure is measured where a lease has
    brought back a speed for the experiment (or the one it shares a network with), else the speed model's."""
    rate = speeds.get(cfg.experiment) or speeds.get(_base_experiment(cfg.experiment))
    if rate and cfg.experiment == experiments.FEATURE_CONFIG.experiment and cfg.experiment not in speeds:
        rate *= experiments.get("C-classifier").config.batch_size / cfg.batch_size   # a step's cost ~ its batch
    over = 1 + EVAL_OVERHEAD[cfg.kind]
    cpu = cfg.steps / rate * over if rate else None
    measured = (h200 or {}).get(cfg.experiment) or (h200 or {}).get(_base_experiment(cfg.experiment))
    if measured:
        return cpu, cfg.steps / measured
    gpu = cfg.steps * KERNELS_PER_STEP.get(cfg.model, 500) * LAUNCH_S * over
    if cfg.kind == "diffusion":
        gpu += DDPM_SAMPLE_S_H200
    return cpu, gpu


def _checkpoint_progress(path: Path) -> tuple[int, float | None]:
    """(steps done, wall seconds spent) recorded in a checkpoint."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception:   # an unreadable checkpoint is the run's problem, reported when it resumes
        return 0, None
    elapsed = state.get("elapsed_s") if isinstance(state, dict) else None
    for key in ("loop", None):
        s = state.get(key, state) if key else state
        if isinstance(s, dict) and isinstance(s.get("step"), int):
            return s["step"], elapsed
    return 0, elapsed


def _measured_cpu_rates(entries: list["Entry"]) -> dict[str, float]:
    """Whole-run steps per wall second (evaluation included) of this queue's own CPU runs, per experiment:
    better estimates than a benchmark measured on another CPU."""
    # all steps over all seconds, not a mean of per-run rates: one slow run (a first compile, a machine shared
    # with other work) then weighs by the time it took, as it does in the queue's total
    totals: dict[str, list[float]] = {}
    for e in entries:
        secs = e.wall_time_s if e.state == "done" else e.extra.get("elapsed_s")
        steps = e.config.steps if e.state == "done" else e.step
        cpu = e.state in ("checkpointed", "running") or (e.device or "").startswith("CPU")
        if cpu and secs and steps:
            t = totals.setdefault(e.experiment, [0.0, 0.0])
            t[0] += steps
            t[1] += secs
    return {k: steps / secs for k, (steps, secs) in totals.items()}


def plan(data_root=None, results_dir=None) -> list[Entry]:
    """Every full-budget run of the book, in priority order, with its state on this machine."""
    present = _present_datasets(data_root)
    speeds, h200 = cpu_speeds(), h200_speeds()
    entries: list[Entry] = []
    keys: set[str] = set()
    for exp_name, seeds, cpu_plan, hold, *datasets in PLAN:
        exp = experiments.get(exp_name)
        wanted = [_dataset_named(ds, present) for ds in datasets[0]] if datasets else [_dataset_for(exp, present)]
        for dataset, note in wanted:
            for seed in seeds:
                cfg = exp.make_config(dataset=dataset, seed=seed)
                e = Entry(exp_name, seed, len(entries) + 1, cpu_plan, hold, cfg, note)
                if e.key in keys:        # listed already (a stand-in for an absent dataset, or a CPU-plan run)
                    continue
                keys.add(e.key)
                e.est_cpu_s, e.est_h200_s = estimate(cfg, speeds, h200)
                _fill_state(e, results_dir)
                entries.append(e)
    for e in entries:
        rate = _measured_cpu_rates(entries).get(e.experiment)
        if rate:
            e.est_cpu_s = e.config.steps / rate
    _add_feature_runs(entries, speeds, h200, results_dir)
    return entries


def _add_feature_runs(entries: list["Entry"], speeds, h200, results_dir) -> None:
    """A generator run first trains its FD-cls feature run unless that is finished; the first unfinished
    generator entry per feature run carries that time in its estimates."""
    counted = set()
    for e in entries:
        if e.config.kind not in experiments.GENERATOR_KINDS or e.state == "done":
            continue
        f = experiments.feature_config(e.config.dataset, e.config.train.get("feature_steps", experiments.FEATURE_STEPS))
        if f.hash in counted or artifacts.load_complete(f, results_dir) is not None:
            continue
        counted.add(f.hash)
        cpu, gpu = estimate(f, speeds, h200)
        e.est_cpu_s = e.est_cpu_s + cpu if e.est_cpu_s is not None and cpu is not None else e.est_cpu_s
        e.est_h200_s = e.est_h200_s + gpu if e.est_h200_s is not None else e.est_h200_s
        e.extra["feature_run_cpu_s"] = cpu


def _fill_state(e: Entry, results_dir) -> None:
    d = artifacts.run_dir(e.config, results_dir)
    e.run_dir = str(d)
    if e.experiment.startswith("D-search"):
        done = sorted(d.parent.glob("search-*/summary.json"))
        full = [p for p in done if json.loads(p.read_text()).get("preview") is False]
        e.state = "done" if full else "held"
        return
    try:
        done = artifacts.load_complete(e.config, results_dir)
    except artifacts.RunCorrupt as err:
        e.state, e.hold = "corrupt", str(err)
        return
    if done is not None:
        e.state, e.step = "done", e.config.steps
        e.device = done.env.get("device_name")
        e.wall_time_s = done.metrics.get("wall_time_s")
        return
    ck = artifacts.checkpoint_path(e.config, results_dir)
    pid = RunLock(e.key).holder()
    if pid:
        e.state, e.device = "running", f"worker pid {pid}"
        if ck.exists():
            e.step, e.extra["elapsed_s"] = _checkpoint_progress(ck)
    elif ck.exists():
        e.state, e.device = "checkpointed", "checkpoint store"
        e.step, e.extra["elapsed_s"] = _checkpoint_progress(ck)
    elif e.hold:
        e.state = "held"


def remaining(e: Entry, which: str) -> float | None:
    est = e.est_cpu_s if which == "cpu" else e.est_h200_s
    if est is None or e.state == "done":
        return 0.0 if e.state == "done" else None
    return est * (1 - e.step / e.config.steps)


def _hm(s: float | None) -> str:
    if s is None:
        return "?"
    if s < 3600:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


def print_plan(entries: list[Entry]) -> None:
    head = f"{'#':>2}  {'experiment':<24} {'seed':>4}  {'dataset':<13} {'state':<22} {'device':<22} " \
           f"{'CPU est':>8} {'H200 est':>8}  plan"
    print(head + "\n" + "-" * len(head))
    for e in entries:
        state = {"checkpointed": f"checkpoint @ {e.step:,}", "running": f"running (ckpt @ {e.step:,})"}.get(
            e.state, e.state)
        print(f"{e.priority:>2}  {e.experiment:<24} {e.seed:>4}  {e.config.dataset:<13} {state:<22} "
              f"{(e.device or '-')[:22]:<22} {_hm(e.est_cpu_s):>8} {_hm(e.est_h200_s):>8}  "
              f"{'CPU' if e.cpu_plan else 'GPU'}{'; ' + e.hold if e.hold and e.state != 'done' else ''}")
    todo = [e for e in entries if e.state != "done"]
    cpu_left = sum(remaining(e, "cpu") or 0 for e in todo if e.cpu_plan and not e.hold)
    gpu_left = sum(remaining(e, "h200") or 0 for e in todo)
    print(f"\n{len(entries) - len(todo)} of {len(entries)} runs done. Left: CPU plan about {_hm(cpu_left)} on this "
          f"CPU; everything about {_hm(gpu_left)} on an H200 (speed model: {LAUNCH_S * 1e6:.0f} us per kernel launch).")
    if any(e.dataset_note for e in entries):
        print("Datasets: CIFAR-100 is absent here, so its experiments use the CIFAR-10 JPEG stand-in.")


class RunLock:
    """A run claimed by one worker: an O_EXCL file holding the worker's pid; a dead worker's lock is stale."""

    def __init__(self, key: str):
        self.path = cache_dir() / "locks" / f"{key}.lock"
        self.held = False

    def acquire(self) -> bool:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(2):
            try:
                fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
            except FileExistsError:
                try:
                    pid = int(self.path.read_text().strip() or 0)
                except (OSError, ValueError):
                    pid = 0
                if pid and pid_alive(pid):
                    return False
                self.path.unlink(missing_ok=True)   # stale: its worker is gone
                continue
            with os.fdopen(fd, "w") as f:
                f.write(str(os.getpid()))
            self.held = True
            return True
        return False

    def holder(self) -> int | None:
        """The pid of the live worker that holds this run, if any."""
        try:
            pid = int(self.path.read_text().strip() or 0)
        except (OSError, ValueError):
            return None
        return pid if pid and pid != os.getpid() and pid_alive(pid) else None

    def release(self) -> None:
        if self.held:
            self.path.unlink(missing_ok=True)
            self.held = False


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
