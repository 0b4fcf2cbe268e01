"""Run configs and their artifacts.

A run is fully described by a `RunConfig`. Its artifacts live in `results/<experiment>/<config-hash>/`:

    config.json    the config (written first)
    history.csv    evaluations during training
    env.json       device, GPU, torch version, git commit, wall time, date
    metrics.json   final metrics, written last: its presence is what marks the run complete
    *.png, *.pt    small figures and weights written by the trainer

While a run is unfinished its training state lives in the checkpoint store, outside the work tree
(`checkpoint_path`: <cache dir>/checkpoints/, see cifar_nb.data.cache_dir), because a work tree may be laid
anew while the machine and its cache stay. It is written by wall clock (every `checkpoint_every_s`, 4 min by
default) and when SIGINT or SIGTERM arrives, and removed once the run is complete.

Asking for a run whose artifacts are complete returns them without training: this is how the
notebooks re-execute on a CPU from results made on a GPU. Where the data lives (`data_root`) and
which device trains are not part of the config, so they do not change its hash.
Every write goes to a temporary file that is renamed into place, so a killed run leaves either no
checkpoint or a complete one, and running it again resumes from there with the same final metrics.
"""
from __future__ import annotations

import csv
import dataclasses
import hashlib
import io
import json
import os
import platform
import signal
import shutil
import subprocess
import threading
import tempfile
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch

from . import budget

RUN_KINDS = ("classifier", "gan", "diffusion")
DEFAULT_RESULTS = Path(os.environ.get("CIFAR_NB_RESULTS", "results"))
CHECKPOINT_EVERY_S = 240.0


@dataclass
class RunConfig:
    """Everything that decides what a run computes. Kind-specific knobs live in the dicts."""

    experiment: str
    kind: str                                   # classifier | gan | diffusion
    model: str                                  # a name in cifar_nb.models.MODELS
    model_args: dict = field(default_factory=dict)
    dataset: str = "cifar100"
    steps: int = 1000
    batch_size: int = 128
    seed: int = 0
    optimizer: dict = field(default_factory=dict)   # {"name": "adam", "lr": 1e-3, ...}
    scheduler: dict = field(default_factory=dict)   # {"name": "exponential", ...} or {}
    augment: dict = field(default_factory=dict)     # see cifar_nb.augment
    train: dict = field(default_factory=dict)       # loop knobs: label_smoothing, val_size, gan tricks...
    eval_every: int = 500
    out_of_budget: bool = False

    def __post_init__(self):
        if self.kind not in RUN_KINDS:
            raise ValueError(f"kind must be one of {RUN_KINDS}, got {self.kind!r}")
        for name in ("steps", "batch_size", "eval_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v <= 0:
                raise ValueError(f"{name} must be a positive integer, got {v!r}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown RunConfig fields {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)

    def replace(self, **changes) -> "RunConfig":
        return dataclasses.replace(self, **changes)

    @property
    def hash(self) -> str:
        blob = json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------
# atomic writes

_UMASK = os.umask(0)
os.umask(_UMASK)

def atomic_write_bytes(path: Path, data: bytes) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)   # mkstemp makes 0600 files; artifacts are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=_json_default) + "\n")


def atomic_torch_save(path: Path, obj: Any) -> None:
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(path, buf.getvalue())


def _json_default(o):
    if isinstance(o, (Path,)):
        return str(o)
    if isinstance(o, torch.Tensor):
        return o.tolist()
    if hasattr(o, "item"):
        return o.item()
    raise TypeError(f"not JSON serialisable: {type(o)}")


def write_history_csv(path: Path, rows: list[dict]) -> None:
    keys: list[str] = []
    for r in rows:
        keys += [k for k in r if k not in keys]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def read_history_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return [{k: _parse(v) for k, v in row.items()} for row in csv.DictReader(f)]


def _parse(v: str):
    if v == "":
        return None
    try:
        return int(v)
    except ValueError:
        try:
            return float(v)
        except ValueError:
            return v


# ---------------------------------------------------------------------------------------------
# environment record

# What the code writes, not what it is: a change here does not make the code that wrote it "+dirty"
# (otherwise the second notebook of an execution, or the second run of a queue, would be marked dirty by
# the first one's output).
GENERATED = ("results", "book/*.ipynb", "book/_status*.md")


def git_commit(where: Path | str | None = None) -> str:
    """The commit the code came from, "+dirty" if tracked files other than GENERATED outputs differ from it;
    CIFAR_NB_COMMIT wins (a GPU copy of the tree has no .git)."""
    if os.environ.get("CIFAR_NB_COMMIT"):
        return os.environ["CIFAR_NB_COMMIT"]
    here = Path(where) if where is not None else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True,
                             timeout=10).stdout.strip()
        spec = [":(top)"] + [f":(top,exclude,glob){g}" for g in GENERATED]
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", *spec], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (sha + ("+dirty" if dirty else "")) if sha else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def device_name(device: torch.device | str) -> str:
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"CPU ({platform.processor() or platform.machine()}, {os.cpu_count()} cores)"


def environment_record(device: torch.device | str) -> dict:
    import torchvision
    return {
        "device": str(device),
        "device_name": device_name(device),
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "cuda": torch.version.cuda if torch.cuda.is_available() else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "git_commit": git_commit(),
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }


# ---------------------------------------------------------------------------------------------
# running

class RunInterrupted(RuntimeError):
    """Training stopped early (a time limit, a signal, or a simulated kill) after saving a checkpoint."""

    signalled: str | None = None   # "SIGINT" / "SIGTERM" when a signal stopped it


@dataclass
class RunContext:
    """What a trainer gets besides the config: where to run, where to write, when to stop."""

    config: RunConfig
    device: torch.device
    data_root: Path | None
    run_dir: Path
    time_limit_s: float | None = None   # checkpoint and stop once this much wall time has passed
    stop_at_step: int | None = None     # checkpoint and stop at this step (tests simulate a kill)
    progress: bool = True
    progress_interval_s: float = 2.0
    checkpoint_every: int | None = None         # also checkpoint every this many steps (tests)
    checkpoint_every_s: float = CHECKPOINT_EVERY_S
    checkpoint_file: Path | None = None
    runtime: Any = None                 # cifar_nb.runtime.Runtime; the trainer fills in its default
    started: float = field(default_factory=time.monotonic)
    history: list = field(default_factory=list)
    signalled: str | None = None        # the name of a SIGINT/SIGTERM that arrived during training

    def __post_init__(self):
        self._last_checkpoint = time.monotonic()

    @property
    def checkpoint_path(self) -> Path:
        return self.checkpoint_file or checkpoint_path(self.config, self.run_dir.parent.parent)

    def save_checkpoint(self, state: dict) -> None:
        state = dict(state, history=list(self.history), elapsed_s=self.elapsed())
        atomic_torch_save(self.checkpoint_path, state)
        self._last_checkpoint = time.monotonic()

    def load_checkpoint(self) -> dict | None:
        if not self.checkpoint_path.exists():
            return None
        try:
            state = torch.load(self.checkpoint_path, map_location=self.device, weights_only=False)
        except Exception as e:   # truncated or overwritten: torch raises several kinds
            raise RunCorrupt(f"checkpoint {self.checkpoint_path} of {self.config.experiment} seed {self.config.seed} "
                             f"cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}). "
                             f"Delete it to start the run over, or pass --force") from None
        if not isinstance(state, dict):
            raise RunCorrupt(f"checkpoint {self.checkpoint_path} does not hold training state; delete it to start "
                             f"the run over, or pass --force")
        self.history = list(state.pop("history", []))
        self._previous_elapsed = state.pop("elapsed_s", 0.0)
        return state

    def elapsed(self) -> float:
        return getattr(self, "_previous_elapsed", 0.0) + time.monotonic() - self.started

    def should_checkpoint(self, step: int) -> bool:
        """Call after finishing `step` (1-based count of steps done)."""
        if self.checkpoint_every and step % self.checkpoint_every == 0:
            return True
        return time.monotonic() - self._last_checkpoint >= self.checkpoint_every_s or self.should_stop(step)

    def should_stop(self, step: int) -> bool:
        if self.signalled is not None:
            return True
        if self.stop_at_step is not None and step >= self.stop_at_step:
            return True
        return self.time_limit_s is not None and time.monotonic() - self.started > self.time_limit_s

    def stop_message(self, step: int) -> str:
        why = f"{self.signalled} received" if self.signalled else "time limit reached" \
            if self.stop_at_step is None or step < self.stop_at_step else "stopped as asked"
        return (f"{self.config.experiment} seed {self.config.seed}: {why} at step {step:,} of "
                f"{self.config.steps:,}; checkpoint saved in {self.checkpoint_path}. Run the same command "
                f"again to resume")

    def log(self, **row) -> None:
        self.history.append(row)

    def progress_bar(self, initial: int = 0):
        from tqdm.auto import tqdm
        return tqdm(total=self.config.steps, initial=initial, disable=not self.progress,
                    desc=f"{self.config.experiment} seed {self.config.seed}", unit="step",
                    mininterval=self.progress_interval_s, dynamic_ncols=True)


@dataclass
class RunResult:
    config: RunConfig
    run_dir: Path
    metrics: dict
    history: list
    env: dict
    reused: bool = False

    def figure(self, name: str) -> Path:
        return self.run_dir / name


def run_dir(cfg: RunConfig, results_dir: Path | str | None = None) -> Path:
    return Path(results_dir or DEFAULT_RESULTS) / cfg.experiment / cfg.hash


def checkpoint_path(cfg: RunConfig, results_dir: Path | str | None = None) -> Path:
    """Where an unfinished run keeps its training state: the checkpoint store in the cache directory.

    The name carries the results folder's resolved path as a short hash, so two results folders (a test's
    and the project's) never resume each other's runs, while a work tree laid anew at the same place does.
    """
    root = Path(results_dir or DEFAULT_RESULTS).resolve()
    tag = hashlib.sha256(str(root).encode()).hexdigest()[:8]
    path = checkpoint_store() / f"{cfg.experiment}-{cfg.hash}-{tag}.ckpt"
    if not path.exists() and "feature_steps" in cfg.train:
        # Generator checkpoints written before train["feature_steps"] joined the config (and so its hash) are
        # adopted: how long the FD-cls network trains changes the score, never the training state.
        legacy = cfg.replace(train={k: v for k, v in cfg.train.items() if k != "feature_steps"})
        old = path.with_name(f"{cfg.experiment}-{legacy.hash}-{tag}.ckpt")
        if old.exists():
            old.replace(path)
    return path


def checkpoint_store() -> Path:
    """$CIFAR_NB_CHECKPOINTS, else <cache dir>/checkpoints."""
    from .data import cache_dir
    if os.environ.get("CIFAR_NB_CHECKPOINTS"):
        return Path(os.environ["CIFAR_NB_CHECKPOINTS"]).expanduser()
    return cache_dir() / "checkpoints"


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


class RunCorrupt(ValueError):
    """A run folder or checkpoint that cannot be trusted: unreadable, truncated, or edited by hand."""


def _read_json(path: Path, d: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunCorrupt(f"run folder {d} is corrupt: {path.name} is not valid JSON ({e}). Delete the folder to "
                         f"train the run again, or pass --force") from None


def _adopt_pre_feature_steps_run(cfg: RunConfig, results_dir=None) -> None:
    """A generator run finished before train["feature_steps"] joined its config sits under the hash of the
    config without it. When its own artifacts show it was scored with exactly cfg's feature steps (the FD-cls
    feature run it names), it is moved to cfg's folder with the key added, rather than trained again.
    Copied, then renamed into place, then the old folder removed: an interruption leaves no half-made run."""
    if "feature_steps" not in cfg.train:
        return
    legacy = cfg.replace(train={k: v for k, v in cfg.train.items() if k != "feature_steps"})
    old, new = run_dir(legacy, results_dir), run_dir(cfg, results_dir)
    try:
        feature_run = json.loads((old / "metrics.json").read_text()).get("fd_cls_feature_run")
        feature_cfg = json.loads((new.parent.parent / "fd-cls-features" / str(feature_run) / "config.json").read_text())
        if RunConfig.from_dict(json.loads((old / "config.json").read_text())) != legacy:
            return
    except (OSError, ValueError, TypeError):
        return
    if feature_cfg.get("steps") != cfg.train["feature_steps"]:
        return      # scored with another feature network: not this config's run
    tmp = new.with_name(f".adopting-{new.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(old, tmp)
    atomic_write_json(tmp / "config.json", cfg.to_dict())
    os.replace(tmp, new)
    shutil.rmtree(old)


def load_complete(cfg: RunConfig, results_dir: Path | str | None = None) -> RunResult | None:
    """The finished run with exactly this config, or None. Raises RunCorrupt for a folder that holds a finished
    run it cannot vouch for (unreadable JSON, or a config that is not the one its folder is named by)."""
    d = run_dir(cfg, results_dir)
    if not d.exists():
        _adopt_pre_feature_steps_run(cfg, results_dir)
    if not (d / "metrics.json").exists():
        return None
    try:
        saved = RunConfig.from_dict(_read_json(d / "config.json", d))
    except (TypeError, ValueError) as e:
        if isinstance(e, RunCorrupt):
            raise
        raise RunCorrupt(f"run folder {d} is corrupt: its config.json is not a run config ({e}). Delete the "
                         f"folder to train the run again, or pass --force") from None
    if saved != cfg:  # a hash collision or a hand-edited directory: never reuse, never overwrite silently
        changed = sorted(k for k, v in saved.to_dict().items() if cfg.to_dict().get(k) != v)
        raise RunCorrupt(f"run folder {d} was edited by hand: its config.json differs from the config its name "
                         f"(hash {cfg.hash}) stands for, in {', '.join(changed) or 'its fields'}. Restore it "
                         f"(git checkout {d}), delete the folder, or pass --force to train it again")
    metrics = _read_json(d / "metrics.json", d)
    if not isinstance(metrics, dict):
        raise RunCorrupt(f"run folder {d} is corrupt: metrics.json does not hold a JSON object. Delete the folder "
                         f"to train the run again, or pass --force")
    hist = read_history_csv(d / "history.csv") if (d / "history.csv").exists() else []
    env = _read_json(d / "env.json", d) if (d / "env.json").exists() else {}
    return RunResult(cfg, d, metrics, hist, env, reused=True)


def run(cfg: RunConfig, device: str | torch.device = "cpu", data_root: Path | str | None = None,
        results_dir: Path | str | None = None, force: bool = False, time_limit_s: float | None = None,
        stop_at_step: int | None = None, progress: bool = True,
        checkpoint_every: int | None = None, runtime=None,
        checkpoint_every_s: float | None = None, progress_interval_s: float = 2.0) -> RunResult:
    """Train `cfg` (or resume it, or return its finished artifacts) and write its artifacts.

    Raises BudgetError before anything is written if the run breaks its budget, and RunInterrupted
    (after checkpointing) when `time_limit_s` or `stop_at_step` stops it early.
    """
    from .data import describe
    from .models import build_for_config
    from .train import trainer_for

    if not force:
        done = load_complete(cfg, results_dir)   # raises RunCorrupt rather than overwrite a doubtful folder
        if done is not None:
            return done
    info = describe(cfg.dataset, data_root)
    n_params = budget.count_params(build_for_config(cfg, info.num_classes, info.image_size, info.channels))
    budget.check(cfg.kind, n_params, cfg.steps, cfg.out_of_budget)

    device = torch.device(device)
    d = run_dir(cfg, results_dir)
    _check_writable(Path(results_dir or DEFAULT_RESULTS))
    if force:
        (d / "metrics.json").unlink(missing_ok=True)
    atomic_write_json(d / "config.json", cfg.to_dict())
    ctx = RunContext(cfg, device, Path(data_root) if data_root else None, d, time_limit_s=time_limit_s,
                     stop_at_step=stop_at_step, progress=progress, checkpoint_every=checkpoint_every,
                     runtime=runtime, checkpoint_file=checkpoint_path(cfg, results_dir),
                     progress_interval_s=progress_interval_s)
    if checkpoint_every_s is not None:
        ctx.checkpoint_every_s = checkpoint_every_s
    if force:
        ctx.checkpoint_path.unlink(missing_ok=True)
    try:
        with _StopOnSignal(ctx):
            metrics = trainer_for(cfg.kind)(ctx)
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


def run_seeds(cfg: RunConfig, seeds: list[int], **kwargs) -> list[RunResult]:
    return [run(cfg.replace(seed=s), **kwargs) for s in seeds]


def aggregate(results: list[RunResult], key: str) -> dict:
    """Mean and sample standard deviation (ddof=1) of a final metric across seeds.

    This std is the spread between independent training runs, the honest error bar for a claim
    like "test accuracy 63.1% ± 1.6". With one seed the std is None, never 0.
    """
    vals = [float(r.metrics[key]) for r in results if r.metrics.get(key) is not None]
    if not vals:
        return {"mean": None, "std": None, "n": 0}
    t = torch.tensor(vals, dtype=torch.float64)
    return {"mean": t.mean().item(), "std": t.std().item() if len(vals) > 1 else None, "n": len(vals)}
