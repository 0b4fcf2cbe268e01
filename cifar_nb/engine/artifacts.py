"""A run's artifacts: where they live, how they are written, and how a finished run is read back.

A run's artifacts live in `<results root>/<experiment>/<config-hash>/`:

    config.json    the config (written first)
    history.csv    evaluations during training
    env.json       device, GPU, torch version, git commit, wall time, date
    metrics.json   final metrics, written last: its presence is what marks the run complete
    *.png, *.pt    small figures and weights written by the trainer

The results root is one place for every caller: $CIFAR_NB_RESULTS, else the project's results/ (`results_root`).
While a run is unfinished its training state lives in the checkpoint store, outside the work tree
(`checkpoint_path`: <cache dir>/checkpoints/, see cifar_nb.engine.data.cache_dir), because a work tree may be laid
anew while the machine and its cache stay.
Every write goes to a temporary file that is renamed into place, so a killed run leaves either no
checkpoint or a complete one.
"""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import platform
import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import torch
import torchvision

from cifar_nb.config import PROJECT_ROOT, RunConfig
from cifar_nb.engine import augment, data
from cifar_nb.engine.data import cache_dir


def project_root() -> Path:
    return PROJECT_ROOT


def results_root() -> Path:
    """$CIFAR_NB_RESULTS, else the project's results/ (so the CLI, the queue and the notebooks agree wherever
    they are started from); plain results/ where the package is installed away from its project."""
    if os.environ.get("CIFAR_NB_RESULTS"):
        return Path(os.environ["CIFAR_NB_RESULTS"])
    root = project_root()
    return root / "results" if (root / "pyproject.toml").exists() else Path("results")


# ---------------------------------------------------------------------------------------------
# atomic writes

_UMASK = os.umask(0)
os.umask(_UMASK)

def portable(path: Path | str) -> str:
    """A path as an artifact may hold it: relative to the project, or under the home folder as ~/...; never
    this machine's absolute path (committed artifacts are read on other machines)."""
    path = Path(path).expanduser()
    for base, shown in ((PROJECT_ROOT, ""), (Path.home(), "~/")):
        try:
            return shown + str(path.resolve().relative_to(base.resolve()))
        except ValueError:
            pass
    return str(path)


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
GENERATED = ("results", "book/*.ipynb", "book/_status*.md", "book/_runtimes.md", "book/_fd_cls_protocol.md",
             "book/_speed.md")


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


def device_slug(name: str) -> str:
    """A device's name as a file-name part: "CPU (x86_64, 2 cores)" -> "cpu-x86-64-2-cores". Benchmark results
    are saved per device under it (benchmarks/results/<slug>-<benchmark>.json), and the book reads them by it."""
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def environment_record(device: torch.device | str) -> dict:
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


@dataclass
class RunResult:
    config: RunConfig
    run_dir: Path
    metrics: dict
    history: list
    env: dict
    reused: bool = False


def run_dir(cfg: RunConfig, results_dir: Path | str | None = None) -> Path:
    return Path(results_dir or results_root()) / cfg.experiment / cfg.hash


def scored_dir(run_dir: Path, n_samples: int, sampling_mode: str = "eval", weights: str = "average") -> Path:
    """Where `python -m cifar_nb score` puts a finished generator's scores from n_samples images sampled in that
    mode: <run_dir>/scored/<n>-samples[-<mode>-mode][-live-weights]/ (eval mode and, for a GAN trained with an
    EMA of G, the average, both as training scored, have no suffix)."""
    suffix = ("" if sampling_mode == "eval" else f"-{sampling_mode}-mode") + ("" if weights == "average" else
                                                                               f"-{weights}-weights")
    return Path(run_dir) / "scored" / f"{n_samples}-samples{suffix}"


def checkpoint_path(cfg: RunConfig, results_dir: Path | str | None = None) -> Path:
    """Where an unfinished run keeps its training state: the checkpoint store in the cache directory.

    The name carries the results folder's resolved path as a short hash, so two results folders (a test's
    and the project's) never resume each other's runs, while a work tree laid anew at the same place does.
    """
    root = Path(results_dir or results_root()).resolve()
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


# A run's weights are git-ignored, and the work tree is laid anew from git: a copy of them is kept in the
# checkpoint store, which persists with the machine, and put back when the run is next loaded (a generator can
# then be scored again, a feature network reused) without retraining.
WEIGHT_FILES = ("weights.pt", "generator.pt")


def kept_weights_path(cfg: RunConfig, name: str, results_dir: Path | str | None = None) -> Path:
    """The store's copy of a finished run's `name` (weights.pt or generator.pt), named like its checkpoint."""
    ckpt = checkpoint_path(cfg, results_dir)
    return ckpt.parent / "weights" / f"{ckpt.stem}-{name}"


def keep_weights(cfg: RunConfig, d: Path, results_dir: Path | str | None = None) -> dict:
    """Copy the run's weight files into the store; returns {file name: sha256} for its env record."""
    kept = {}
    for name in WEIGHT_FILES:
        if (d / name).exists():
            digest = sha256_file(d / name)
            atomic_write_bytes(kept_weights_path(cfg, name, results_dir), (d / name).read_bytes())
            kept[name] = digest
    return kept


def restore_weights(cfg: RunConfig, d: Path, env: dict, results_dir: Path | str | None = None) -> None:
    """Put back weight files missing from a finished run folder from the store, when the store's copy is the one
    the run wrote (its sha256 is in env.json; runs from before this record are taken as they are)."""
    for name in WEIGHT_FILES:
        if (d / name).exists():
            continue
        own = kept_weights_path(cfg, name, results_dir)
        want = (env.get("weights_sha256") or {}).get(name)
        if want is None:
            if own.exists():
                atomic_write_bytes(d / name, own.read_bytes())
            continue
        # A copy kept for another results folder (another clone or work tree of the project) is the run's own
        # too when its sha256 is the one the run recorded; the own folder's copy is tried first.
        others = sorted(own.parent.glob(f"{cfg.experiment}-{cfg.hash}-*-{name}"))
        for kept in [own] + [k for k in others if k != own]:
            if kept.exists() and sha256_file(kept) == want:
                atomic_write_bytes(d / name, kept.read_bytes())
                break


def sha256_file(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def checkpoint_store() -> Path:
    """$CIFAR_NB_CHECKPOINTS, else <cache dir>/checkpoints."""
    if os.environ.get("CIFAR_NB_CHECKPOINTS"):
        return Path(os.environ["CIFAR_NB_CHECKPOINTS"]).expanduser()
    return cache_dir() / "checkpoints"


class RunCorrupt(ValueError):
    """A run folder or checkpoint that cannot be trusted: unreadable, truncated, or edited by hand."""


def _read_json(path: Path, d: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RunCorrupt(f"run folder {d} is corrupt: {path.name} is not valid JSON ({e}). Delete the folder to "
                         f"train the run again, or pass --force") from None


def _adopt(legacy: RunConfig, cfg: RunConfig, results_dir, why: str) -> None:
    """Move the finished run of `legacy` to cfg's folder, with cfg's config and env.json's `adopted_from` saying
    from which hash and why. Copied, then renamed into place, then the old folder removed: an interruption
    leaves no half-made run."""
    old, new = run_dir(legacy, results_dir), run_dir(cfg, results_dir)
    tmp = new.with_name(f".adopting-{new.name}")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(old, tmp)
    atomic_write_json(tmp / "config.json", cfg.to_dict())
    if (tmp / "env.json").exists():
        env = json.loads((tmp / "env.json").read_text())
        record = {"config_hash": legacy.hash, "why": why}
        if env.get("adopted_from"):            # adopted before: the earlier move stays on record
            record["earlier"] = env["adopted_from"]
        atomic_write_json(tmp / "env.json", {**env, "adopted_from": record})
    os.replace(tmp, new)
    shutil.rmtree(old)
    for name in WEIGHT_FILES:     # the store's copies of its weights follow it (restore_weights finds them by hash)
        kept, moved = kept_weights_path(legacy, name, results_dir), kept_weights_path(cfg, name, results_dir)
        if kept.exists() and not moved.exists():
            atomic_write_bytes(moved, kept.read_bytes())


def _finished_run_of(legacy: RunConfig, results_dir) -> bool:
    d = run_dir(legacy, results_dir)
    try:
        return (d / "metrics.json").exists() and \
            RunConfig.from_dict(json.loads((d / "config.json").read_text())) == legacy
    except (OSError, ValueError, TypeError):
        return False


def _adopt_pre_feature_steps_run(cfg: RunConfig, results_dir=None) -> None:
    """A generator run finished before train["feature_steps"] joined its config sits under the hash of the
    config without it. When its own artifacts show it was scored with exactly cfg's feature steps (the FD-cls
    feature run it names), it is moved to cfg's folder with the key added, rather than trained again."""
    if "feature_steps" not in cfg.train:
        return
    legacy = cfg.replace(train={k: v for k, v in cfg.train.items() if k != "feature_steps"})
    old, new = run_dir(legacy, results_dir), run_dir(cfg, results_dir)
    try:
        feature_run = json.loads((old / "metrics.json").read_text()).get("fd_cls_feature_run")
        feature_cfg = json.loads((new.parent.parent / "fd-cls-features" / str(feature_run) / "config.json").read_text())
    except (OSError, ValueError, TypeError):
        return
    if not _finished_run_of(legacy, results_dir) or feature_cfg.get("steps") != cfg.train["feature_steps"]:
        return      # scored with another feature network: not this config's run
    _adopt(legacy, cfg, results_dir, f"train.feature_steps {cfg.train['feature_steps']} added: the run was scored "
                                     "with exactly that FD-cls feature network")


def _noop_keys(cfg: RunConfig) -> list[tuple[str, str, Any]]:
    """Keys of a classifier config that change nothing on its dataset and that older runs' configs lack, as
    (field, key, value the older config had, or None for absent): "auto" channel shuffling where the channels'
    order matters (it draws nothing then), "symmetries" test-time augmentation where it gives the views of "auto",
    and our classifier's pool_first=False (its default). tests/test_ours.py checks each is the same computation."""
    if cfg.kind != "classifier":
        return []
    info = data.known_info(cfg.dataset)
    if info is None:
        return []
    out = []
    shuffle, tta = cfg.augment.get("channel_shuffle"), cfg.train.get("tta")
    if shuffle is not None and augment.channel_shuffle_probability(shuffle, info) == 0:
        out.append(("augment", "channel_shuffle", None))
    if tta == "symmetries" and augment.tta_views(tta, info) == augment.tta_views("auto", info):
        out.append(("train", "tta", "auto"))
    if cfg.model == "ours_classifier" and cfg.model_args.get("pool_first") is False:
        out.append(("model_args", "pool_first", None))
    return out


def _adopt_run_from_before_noop_keys(cfg: RunConfig, results_dir=None) -> None:
    """A classifier run finished before some keys of its config existed (see _noop_keys) sits under the hash of
    the config without them. Where they change nothing, training and evaluation are the same computation, draw
    for draw, so that run is moved to cfg's folder. Any subset of them may be older than the run."""
    keys = _noop_keys(cfg)
    for mask in range(1, 2 ** len(keys)):
        legacy = cfg
        for i, (field, key, old) in enumerate(keys):
            if mask >> i & 1:
                d = {k: v for k, v in getattr(legacy, field).items() if k != key}
                legacy = legacy.replace(**{field: d if old is None else {**d, key: old}})
        if _finished_run_of(legacy, results_dir):
            changed = ", ".join(f"{f}.{k} = {getattr(cfg, f)[k]!r}"
                                for i, (f, k, _) in enumerate(keys) if mask >> i & 1)
            _adopt(legacy, cfg, results_dir, f"{changed} added: on {cfg.dataset} this changes nothing (no channel "
                                             "shuffling, the same test-time views, the default head), so it is the "
                                             "same computation")
            return


def load_complete(cfg: RunConfig, results_dir: Path | str | None = None) -> RunResult | None:
    """The finished run with exactly this config, or None. Raises RunCorrupt for a folder that holds a finished
    run it cannot vouch for (unreadable JSON, or a config that is not the one its folder is named by)."""
    d = run_dir(cfg, results_dir)
    if not d.exists():
        _adopt_pre_feature_steps_run(cfg, results_dir)
    if not d.exists():
        _adopt_run_from_before_noop_keys(cfg, results_dir)
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
    restore_weights(cfg, d, env if isinstance(env, dict) else {}, results_dir)
    return RunResult(cfg, d, metrics, hist, env, reused=True)


# Metrics measured in an FD-cls feature network: two of them compare only when measured in the same network (the
# fd_cls_feature_run a score records).
FEATURE_NET_METRICS = ("fd_cls", "kid_mean", "kid_std")


def by_feature_net(results: list[RunResult]) -> dict[str | None, list[RunResult]]:
    """The results grouped by the FD-cls feature run they were scored in (None: not scored in one), in order."""
    out: dict[str | None, list[RunResult]] = {}
    for r in results:
        out.setdefault(r.metrics.get("fd_cls_feature_run"), []).append(r)
    return out


def aggregate(results: list[RunResult], key: str) -> dict:
    """Mean and sample standard deviation (ddof=1) of a final metric across seeds.

    This std is the spread between independent training runs, the honest error bar for a claim
    like "test accuracy 63.1% ± 1.6". With one seed the std is None, never 0.
    """
    vals = [float(r.metrics[key]) for r in results if r.metrics.get(key) is not None]
    nets = {r.metrics.get("fd_cls_feature_run") for r in results if r.metrics.get(key) is not None}
    if key in FEATURE_NET_METRICS and len(nets) > 1:
        raise ValueError(f"{key} of runs scored in different FD-cls feature networks "
                         f"({', '.join(sorted(map(str, nets)))}) do not average: group them with by_feature_net first")
    if not vals:
        return {"mean": None, "std": None, "n": 0}
    t = torch.tensor(vals, dtype=torch.float64)
    return {"mean": t.mean().item(), "std": t.std().item() if len(vals) > 1 else None, "n": len(vals)}
