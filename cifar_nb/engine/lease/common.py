"""What every step of a lease shares: the limits, small file helpers, safe tar extraction, run state."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tarfile
import zlib
from datetime import datetime, timezone
from pathlib import Path

import torch

from cifar_nb.config import PROJECT_ROOT
from cifar_nb.engine import queue
from cifar_nb.engine.artifacts import sha256_file  # noqa: F401  (lease.common.sha256_file is public)
from cifar_nb.engine.data import cache_dir

MiB = 1 << 20
PACK_LIMIT_BYTES = 60 * MiB             # tree + pack; the device takes 64 MiB, the rest is margin
OUT_MAX_FILES = 8
OUT_FILE_LIMIT = 16 * MiB - 64 * 1024   # each file back through $OUT stays under 16 MiB
OUT_TOTAL_LIMIT = 64 * MiB - 256 * 1024
LOG_LIMIT = 2 * MiB                     # the queue log's tail that comes back
BENCH_FILE = PROJECT_ROOT / "benchmarks" / "results" / "h200-speed.json"

# Wheels the GPU lacks (pinned to the versions of this environment, which pyproject.toml pins).
WHEELS_MISSING = ["torch-fidelity", "lpips", "optuna", "alembic", "sqlalchemy", "colorlog", "Mako"]
# Present on the GPU image (its package list), carried as small fallbacks; installed only where missing.
WHEELS_FALLBACK = ["tqdm", "PyYAML", "packaging", "typing_extensions", "MarkupSafe"]
PIP_PLATFORM = ["--only-binary=:all:", "--python-version", "3.12", "--implementation", "cp", "--abi", "cp312",
                "--platform", "manylinux2014_x86_64", "--platform", "manylinux_2_17_x86_64",
                "--platform", "manylinux_2_27_x86_64", "--platform", "manylinux_2_28_x86_64",
                "--platform", "any", "--no-deps"]
MNIST_RAW = "mnist/MNIST/raw"
# Files of a finished run folder that git ignores and that may be left behind when $OUT's limits demand it
# (first in this order). weights.pt (FD-cls feature nets) is small and always comes back.
OPTIONAL_RUN_FILES = ("samples-full*.npz", "generator*.pt")


class LeaseError(RuntimeError):
    """Something the user must fix; the message says what."""


def say(msg: str) -> None:
    print(f"[lease {datetime.now().strftime('%H:%M:%S')}] {msg}", flush=True)


def _mib(n: float) -> str:
    return f"{n / MiB:.1f} MiB"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def _run_key(cfg) -> str:
    return f"{cfg.experiment}/{cfg.hash}"


# ---------------------------------------------------------------------------------------------
# tar helpers

def _tar_gz(path: Path, members: list[tuple[str, Path]]) -> int:
    """Write members (arcname, source file) into a .tar.gz at path; return its size."""
    def clean(ti: tarfile.TarInfo) -> tarfile.TarInfo:
        ti.uid = ti.gid = 0
        ti.uname = ti.gname = ""
        return ti
    with tarfile.open(path, "w:gz", compresslevel=6) as tar:
        for arc, src in members:
            tar.add(str(src), arcname=arc, recursive=False, filter=clean)
    return path.stat().st_size


def _safe_members(tar: tarfile.TarFile, what: str) -> list[tarfile.TarInfo]:
    """The archive's members, or LeaseError if any could escape the folder it is unpacked into."""
    out = []
    for m in tar.getmembers():
        name = m.name
        parts = Path(name).parts
        if name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts or "\\" in name:
            raise LeaseError(f"{what}: member {name!r} has an absolute path or '..'; refusing the archive")
        if not (m.isfile() or m.isdir()):
            raise LeaseError(f"{what}: member {name!r} is a link or special file; refusing the archive")
        out.append(m)
    return out


def safe_extract(archive: Path, dest: Path) -> list[str]:
    """Extract regular files and folders of archive under dest (no absolute paths, no '..', no links).
    Checks every member before writing any. Returns the files' relative paths."""
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    try:
        with tarfile.open(archive) as tar:
            members = _safe_members(tar, str(archive))
            files = []
            for m in members:
                target = (root / m.name).resolve()
                if target != root and root not in target.parents:
                    raise LeaseError(f"{archive}: member {m.name!r} would land outside {dest}; refusing")
                if m.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                with tar.extractfile(m) as src, open(target, "wb") as out:
                    shutil.copyfileobj(src, out)
                files.append(m.name)
            return files
    except (tarfile.TarError, EOFError, zlib.error, OSError) as e:
        if isinstance(e, LeaseError):
            raise
        raise LeaseError(f"{archive} cannot be read ({type(e).__name__}: {e})") from None


# ---------------------------------------------------------------------------------------------
# checkpoints

def checkpoint_info(path: Path) -> dict:
    """step and elapsed_s of a checkpoint file (the run's training state)."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as e:   # noqa: BLE001 - torch raises several kinds for a bad file
        return {"step": None, "elapsed_s": None, "error": f"{type(e).__name__}: {str(e)[:100]}"}
    step = None
    if isinstance(state, dict):
        for s in (state.get("loop"), state):
            if isinstance(s, dict) and isinstance(s.get("step"), int):
                step = s["step"]
                break
        elapsed = state.get("elapsed_s")
    else:
        elapsed = None
    return {"step": step, "elapsed_s": float(elapsed) if isinstance(elapsed, (int, float)) else None}


def _live_lock(cfg) -> int | None:
    """The pid of a live local queue worker that holds this run's lock, else None."""
    path = cache_dir() / "locks" / f"{cfg.experiment}-{cfg.hash}-seed{cfg.seed}.lock"
    try:
        pid = int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid and pid != os.getpid() and queue.pid_alive(pid) else None


def complete_runs(results_dir: Path) -> dict[str, str]:
    """'experiment/hash' -> sha256 of metrics.json, for every complete run folder under results_dir."""
    out = {}
    for m in sorted(Path(results_dir).glob("*/*/metrics.json")):
        if m.parent.name.startswith(".") or m.parent.parent.name.startswith("."):
            continue
        out[f"{m.parent.parent.name}/{m.parent.name}"] = sha256_file(m)
    return out


# ---------------------------------------------------------------------------------------------
# pack

def _git(*args, cwd=PROJECT_ROOT) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=cwd, capture_output=True, timeout=60)


def repo_root() -> Path | None:
    try:
        r = _git("rev-parse", "--show-toplevel")
    except (OSError, subprocess.SubprocessError):
        return None
    return Path(r.stdout.decode().strip()).resolve() if r.returncode == 0 else None


def tree_size(root: Path | None = None, exclude: Path | None = None) -> tuple[int, list[tuple[int, str]]]:
    """Bytes of what the device call uploads besides carried folders: tracked files plus untracked files git
    does not ignore (plus shared/ in the checkout), leaving out the folder `exclude` (a pack being built).
    Returns (total, the ten largest (bytes, path))."""
    root = root or repo_root()
    sizes: dict[str, int] = {}
    if root is None:   # no git: estimate by walking the project, skipping what is never tracked
        root = PROJECT_ROOT
        say(f"warning: {root} is not a git checkout (or git is missing): the tree's size is an estimate")
        for dirpath, dirs, names in os.walk(root):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d not in ("lease", "_build", "__pycache__")
                       and not d.endswith(".egg-info")]
            for n in names:
                p = Path(dirpath) / n
                sizes[str(p.relative_to(root))] = p.lstat().st_size
    else:
        r = _git("ls-files", "-z", "--cached", "--others", "--exclude-standard", cwd=root)
        if r.returncode != 0:
            raise LeaseError(f"git ls-files failed in {root}: {r.stderr.decode().strip()}")
        for rel in r.stdout.decode(errors="surrogateescape").split("\0"):
            if not rel:
                continue
            try:
                sizes[rel] = os.lstat(root / rel).st_size
            except OSError:   # tracked but deleted in the work tree
                pass
    shared = root / "shared"
    if shared.is_dir():
        for p in shared.rglob("*"):
            if p.is_file():
                sizes.setdefault(str(p.relative_to(root)), p.lstat().st_size)
    if exclude is not None:
        try:
            skip = str(Path(exclude).resolve().relative_to(root)) + "/"
            sizes = {p: n for p, n in sizes.items() if not p.startswith(skip)}
        except ValueError:
            pass
    largest = sorted(((n, p) for p, n in sizes.items()), reverse=True)[:10]
    return sum(sizes.values()), largest


