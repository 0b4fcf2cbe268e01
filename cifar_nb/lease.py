"""The GPU lease kit: pack what a lent H200 machine lacks, train the queue there, bring the results back.

A lease is one device command (at most 10 minutes, 64 MiB uploaded: the git tree plus carried folders; at most
8 files of under 16 MiB each, 64 MiB together, come back through $OUT). The machine has Python 3.12, torch
2.11, torchvision 0.26, numpy, pillow, scipy, tqdm, PyYAML, packaging, typing-extensions and MarkupSafe, but
no torch-fidelity, lpips, optuna (nor alembic, SQLAlchemy, colorlog, Mako) and no network. Three steps:

1. Here, pack (into a git-ignored folder of the checkout, so that it travels only when carried):

       python -m cifar_nb lease pack lease

   lease/wheels/       torch-fidelity, lpips, optuna and their missing pure/cp312 dependencies (pip download;
                       `--no-wheels` skips it). tqdm, PyYAML, packaging, typing_extensions and MarkupSafe ride
                       along as ~1 MiB of fallbacks: the script installs only the wheels whose distribution the
                       machine lacks. Not packed: torch, torchvision, numpy, pillow, scipy (all there; scipy's
                       cp312 wheel is 35 MB and would not fit anyway: `--also scipy==1.17.1` to try), greenlet
                       (SQLAlchemy 2.1 needs it only for asyncio), papermill (the notebooks are not run there).
   lease/data/         cifar10-jpeg.tar.gz as it is (the code reads the archive) and mnist.tar.gz (MNIST's four
                       raw IDX files, all AddNIST generation needs).
   lease/checkpoints/  the checkpoint of every run the queue lists as checkpointed, with manifest.json
                       (experiment, seed, config hash, config, step), so the GPU resumes where this machine
                       stopped.
   lease/run-weights.tar.gz  git-ignored weights.pt of finished runs (FD-cls feature nets), when there are any.
   lease/manifest.json sizes, sha256s, the git commit, the complete run folders at packing time.

   Measured (2026-12): wheels 6.5 MiB (SQLAlchemy's 4.5), cifar10-jpeg.tar.gz 18.5 MiB, mnist.tar.gz 11.0 MiB,
   one classifier checkpoint 1.5 MiB: a 37.5 MiB pack + an 8.3 MiB tree = 45.8 MiB. With scipy: 79.4 MiB.

   It refuses, leaving nothing behind, when the tree (tracked + untracked-not-ignored files) and the pack
   together exceed 60 MiB, and says what is large and what to leave out.

2. The device call (the tool `run`):

       command:   bash scripts/lease_run.sh lease 540 8
       carry:     ["lease"]
       timeout_s: 600

   540 is the script's whole budget in seconds (setup, training, export), 8 the queue workers side by side.
   The script installs the missing wheels into a temporary site folder, lays out a temporary data root, cache
   and checkpoint store (`lease restore`), trains with `python -m cifar_nb queue run --device cuda` until
   shortly before the budget ends (then SIGTERM: every worker checkpoints), and writes into $OUT
   (`lease export`): results.tar.gz (every run folder completed during the lease; results-1.tar.gz, ... when
   one file would pass 16 MiB; git-ignored generator*.pt / samples-full*.npz only where room is left),
   ckpt-<experiment>-<hash>.ckpt (each run it left unfinished, smallest first; the largest bundled into
   checkpoints.tar.gz, or dropped with a warning, when the 8-file / 16 MiB / 64 MiB limits demand it),
   queue.log (its last 2 MiB), speed.json (measured steps/s) and manifest.json (sha256s, the checkpoints'
   configs). Finished runs are never dropped: if they alone cannot fit, export refuses and writes nothing.

3. Here again, with the folder the reply names as files_at:

       python -m cifar_nb lease unpack /work/.device/<...>/files

   It checks every file's sha256, every run folder's config hash against its name and its metrics.json, merges
   the new run folders into results/ (never over a complete folder that differs: that is reported and kept in
   the cache's lease-conflicts/), puts the checkpoints into this machine's checkpoint store, merges speed.json
   into benchmarks/results/h200-speed.json and prints the queue's remaining work.

Which run folders come back: `lease restore` writes a snapshot of the complete run folders (by sha256 of
metrics.json) and of the restored checkpoints before the queue starts; `lease export --since SNAPSHOT` sends
exactly the complete folders that are new or changed since, and the checkpoints that are new or changed.
The snapshot is taken on the machine itself, so it holds what really arrived there (tracked and untracked
files alike); a pack's manifest.json also works as --since.

Every sub-command also runs as `python -m cifar_nb.lease ...`; scripts/lease_run.sh calls `restore` and
`export` that way on the device machine (restore: data, checkpoints, snapshot and a dataset warm-up).

Speed: a finished run's steps / wall_time_s from metrics.json (a run resumed from a packed checkpoint counts
only the steps and seconds since), an unfinished run's step and elapsed_s from its checkpoint, likewise.
Seconds include evaluations; with several workers the runs share the GPU (speed.json records the number).
"""
from __future__ import annotations

import argparse
import fnmatch
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time
import uuid
import zlib
from datetime import datetime, timezone
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]
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


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


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
    import torch
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
    from . import queue
    from .data import cache_dir
    path = cache_dir() / "locks" / f"{cfg.experiment}-{cfg.hash}-seed{cfg.seed}.lock"
    try:
        pid = int(path.read_text().strip() or 0)
    except (OSError, ValueError):
        return None
    return pid if pid and pid != os.getpid() and queue._alive(pid) else None


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


def _check_pack_dir(dest: Path) -> Path | None:
    """Refuse a pack folder that git would upload (or tracks); return the repository root (or None)."""
    root = repo_root()
    if root is None:
        say("warning: not a git checkout; cannot check that the pack folder is git-ignored")
        return None
    try:
        rel = dest.resolve().relative_to(root)
    except ValueError:
        say(f"note: {dest} is outside the checkout {root}: a device call carries only folders inside it "
            f"(pack into {root / 'lease'} for a lease)")
        return root
    if str(rel) == ".":
        raise LeaseError("the pack folder cannot be the checkout itself; use lease/")
    tracked = _git("ls-files", "--", str(rel), cwd=root).stdout.strip()
    ignored = _git("check-ignore", "-q", str(rel) + "/", cwd=root).returncode == 0
    if tracked or not ignored:
        held = " (it holds tracked files)" if tracked else ""
        raise LeaseError(f"{rel}/ is inside the git tree and not git-ignored{held}: "
                         f"every device call would upload it. Pack into lease/ (git-ignored by .gitignore), or "
                         f"add {rel}/ to .gitignore or .git/info/exclude")
    return root


def _pins(names: list[str]) -> list[str]:
    import importlib.metadata as md
    out = []
    for n in names:
        try:
            out.append(f"{n}=={md.version(n)}")
        except md.PackageNotFoundError:
            out.append(n)
    return out


def download_wheels(dest: Path, specs: list[str]) -> list[Path]:
    dest.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "pip", "download", "-q", *PIP_PLATFORM, "--dest", str(dest), *specs]
    say(f"pip download {' '.join(specs)}")
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        tail = "\n".join((r.stderr or r.stdout).strip().splitlines()[-8:])
        raise LeaseError(f"pip download failed (exit {r.returncode}):\n{tail}\n(pack with --no-wheels to go without "
                         f"them: then optuna, torch-fidelity and lpips are missing on the GPU)")
    wheels = sorted(dest.glob("*.whl"))
    names: dict[str, list[str]] = {}
    for w in wheels:
        names.setdefault(w.name.split("-")[0].lower().replace("_", "-"), []).append(w.name)
    twice = {n: v for n, v in names.items() if len(v) > 1}
    if twice:
        raise LeaseError(f"two versions of one package in {dest}: {twice}; pip install would refuse them")
    return wheels


def _pack_checkpoints(dest: Path, data_root, results_dir) -> list[dict]:
    from . import queue, runs
    items = []
    for e in queue.plan(data_root, results_dir):
        if e.state != "checkpointed":
            continue
        src = runs.checkpoint_path(e.config, results_dir)
        name = f"{e.config.experiment}-{e.config.hash}.ckpt"
        try:
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, dest / name)   # checkpoints are renamed into place: a copy is a whole one
        except FileNotFoundError:
            say(f"note: {e.experiment} seed {e.seed} finished or moved while packing; not packed")
            continue
        pid = _live_lock(e.config)
        if pid:
            say(f"warning: {e.experiment} seed {e.seed} is being trained here right now (worker pid {pid}): its "
                f"packed checkpoint is a snapshot; stop that worker before the lease or the two will race")
        items.append(dict(file=name, experiment=e.config.experiment, seed=e.seed, config_hash=e.config.hash,
                          config=e.config.to_dict(), step=e.step, bytes=(dest / name).stat().st_size,
                          sha256=sha256_file(dest / name)))
    return items


def _run_weights(results_dir: Path) -> list[tuple[str, Path]]:
    """weights.pt of complete run folders: git ignores them, so without the pack they would not travel."""
    out = []
    for w in sorted(Path(results_dir).glob("*/*/weights.pt")):
        if (w.parent / "metrics.json").exists():
            out.append((f"{w.parent.parent.name}/{w.parent.name}/weights.pt", w))
    return out


def pack(dest: Path, data_root=None, results_dir=None, wheels: bool = True, data: bool = True,
         mnist: bool = True, checkpoints: bool = True, also: list[str] | None = None) -> dict:
    """Build the pack folder `dest` (see the module docstring). Returns its manifest."""
    from . import runs
    dest = Path(dest).absolute()
    results_dir = Path(results_dir or runs.DEFAULT_RESULTS)
    root = _check_pack_dir(dest)
    if dest.exists() and any(dest.iterdir()) and not (dest / "manifest.json").is_file():
        raise LeaseError(f"{dest} exists and is not a lease pack (no manifest.json): not overwriting it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.tmp-"))
    try:
        manifest = _fill_pack(tmp, root, data_root, results_dir, wheels, data, mnist, checkpoints, also or [])
        old = None
        if dest.exists():
            old = dest.parent / f".{dest.name}.old-{uuid.uuid4().hex[:8]}"
            os.rename(dest, old)
        os.rename(tmp, dest)
        os.chmod(dest, 0o755)   # mkdtemp made it 0700
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    say(f"packed {dest}: {_mib(manifest['pack_bytes'])} (+ tree {_mib(manifest['tree_bytes'])} = "
        f"{_mib(manifest['total_bytes'])} of {_mib(PACK_LIMIT_BYTES)})")
    return manifest


def _fill_pack(tmp, root, data_root, results_dir, wheels, data, mnist, checkpoints, also) -> dict:
    from . import runs
    from .data import ALIASES, MNIST_FILES, DataError
    from .data import data_root as find_data_root
    files: dict[str, Path] = {}
    notes: list[str] = []
    if wheels:
        specs = _pins(WHEELS_MISSING + WHEELS_FALLBACK) + list(also)
        for w in download_wheels(tmp / "wheels", specs):
            files[f"wheels/{w.name}"] = w
    else:
        notes.append("no wheels: optuna, torch-fidelity and lpips are missing on the GPU")
    if data:
        try:
            droot = find_data_root(data_root)
        except DataError as e:
            raise LeaseError(f"{e} (or pack with --no-data)") from None
        (tmp / "data").mkdir()
        archive = droot / ALIASES["cifar10-jpeg"]
        if not archive.is_file():
            raise LeaseError(f"{archive} is missing: the GPU trains on this stand-in; put it there or pack with "
                             f"--no-data")
        shutil.copyfile(archive, tmp / "data" / archive.name)
        files[f"data/{archive.name}"] = tmp / "data" / archive.name
        if mnist:
            raw = droot / MNIST_RAW
            missing = [f for f in MNIST_FILES if not (raw / f).is_file()]
            if missing:
                raise LeaseError(f"MNIST files {', '.join(missing)} are missing in {raw} (AddNIST is generated from "
                                 f"them); put them there or pack with --no-mnist")
            wrong = [f for f, n in MNIST_FILES.items() if (raw / f).stat().st_size != n]
            if wrong:
                say(f"warning: MNIST files {', '.join(wrong)} in {raw} have unexpected sizes; packed as they are")
            say("compressing MNIST's raw files into mnist.tar.gz")
            _tar_gz(tmp / "data" / "mnist.tar.gz", [(f"{MNIST_RAW}/{f}", raw / f) for f in MNIST_FILES])
            files["data/mnist.tar.gz"] = tmp / "data" / "mnist.tar.gz"
        else:
            notes.append("no MNIST: AddNIST runs (report E) cannot train on the GPU")
    else:
        notes.append("no data: the GPU has no dataset")
    ckpts: list[dict] = []
    if checkpoints:
        ckpts = _pack_checkpoints(tmp / "checkpoints", data_root, results_dir)
        if ckpts:
            runs.atomic_write_json(tmp / "checkpoints" / "manifest.json", ckpts)
            files["checkpoints/manifest.json"] = tmp / "checkpoints" / "manifest.json"
            for c in ckpts:
                files[f"checkpoints/{c['file']}"] = tmp / "checkpoints" / c["file"]
    weights = _run_weights(results_dir)
    if weights:
        _tar_gz(tmp / "run-weights.tar.gz", weights)
        files["run-weights.tar.gz"] = tmp / "run-weights.tar.gz"

    pack_bytes = sum(p.stat().st_size for p in files.values())
    tree_bytes, largest = tree_size(root, exclude=tmp)
    total = tree_bytes + pack_bytes + 64 * 1024   # the manifest itself
    if total > PACK_LIMIT_BYTES:
        parts = sorted(((p.stat().st_size, rel) for rel, p in files.items()), reverse=True)[:8]
        groups = {"wheels": 0, "data": 0, "checkpoints": 0}
        for rel, p in files.items():
            k = rel.split("/")[0]
            if k in groups:
                groups[k] += p.stat().st_size
        raise LeaseError(
            f"the pack does not fit: tree {_mib(tree_bytes)} + pack {_mib(pack_bytes)} = {_mib(total)} > "
            f"{_mib(PACK_LIMIT_BYTES)} (a device call uploads at most 64 MiB). Largest in the pack: "
            + ", ".join(f"{rel} {_mib(n)}" for n, rel in parts)
            + f". Groups: wheels {_mib(groups['wheels'])}, data {_mib(groups['data'])}, checkpoints "
              f"{_mib(groups['checkpoints'])}. Largest in the tree: "
            + ", ".join(f"{p} {_mib(n)}" for n, p in largest[:5])
            + ". Leave something out: an --also wheel, --no-mnist (no AddNIST runs there), --no-checkpoints "
              "(the GPU starts those runs over), --no-wheels (no optuna/torch-fidelity/lpips there), or shrink "
              "the tree (git-ignore large untracked files). Nothing was written.")
    manifest = dict(
        kind="cifar_nb lease pack", created=_now(), git_commit=runs.git_commit(),
        tree_bytes=tree_bytes, pack_bytes=pack_bytes, total_bytes=total, limit_bytes=PACK_LIMIT_BYTES,
        files={rel: dict(bytes=p.stat().st_size, sha256=sha256_file(p)) for rel, p in sorted(files.items())},
        wheels=sorted(Path(r).name for r in files if r.startswith("wheels/")),
        checkpoints=ckpts, runs=complete_runs(results_dir), notes=notes)
    runs.atomic_write_json(tmp / "manifest.json", manifest)
    for n in notes:
        say(f"note: {n}")
    return manifest


# ---------------------------------------------------------------------------------------------
# restore (on the GPU machine, before the queue starts)

def _read_pack_manifest(pack_dir: Path) -> dict:
    try:
        return json.loads((Path(pack_dir) / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        raise LeaseError(f"{pack_dir}/manifest.json cannot be read ({e}): is {pack_dir} a lease pack "
                         f"(python -m cifar_nb lease pack)?") from None


def restore(pack_dir: Path, data_root=None, results_dir=None, snapshot: Path | None = None,
            prewarm: str | None = None, verify: bool = True) -> dict:
    """Lay the pack out: data into data_root, checkpoints into the checkpoint store where runs.checkpoint_path
    expects them for results_dir, weights into results_dir; then write the snapshot export compares with."""
    from . import runs
    pack_dir = Path(pack_dir)
    results_dir = Path(results_dir or runs.DEFAULT_RESULTS)
    manifest = _read_pack_manifest(pack_dir)
    if verify:
        bad = [rel for rel, meta in manifest.get("files", {}).items()
               if not (pack_dir / rel).is_file() or sha256_file(pack_dir / rel) != meta["sha256"]]
        if bad:
            raise LeaseError(f"pack files missing or changed since packing: {', '.join(bad)}")
    droot = Path(data_root or os.environ.get("CIFAR_NB_DATA") or "data")
    droot.mkdir(parents=True, exist_ok=True)
    for rel in manifest.get("files", {}):
        if rel == "data/mnist.tar.gz":
            safe_extract(pack_dir / rel, droot)
        elif rel.startswith("data/"):
            shutil.copyfile(pack_dir / rel, droot / Path(rel).name)
    if (pack_dir / "run-weights.tar.gz").is_file():
        with tempfile.TemporaryDirectory(dir=results_dir.parent if results_dir.parent.exists() else None) as t:
            for rel in safe_extract(pack_dir / "run-weights.tar.gz", Path(t)):
                target = results_dir / rel
                if target.parent.is_dir() and not target.exists():
                    shutil.copyfile(Path(t) / rel, target)
    restored = {}
    for c in manifest.get("checkpoints", []):
        cfg = runs.RunConfig.from_dict(c["config"])
        if cfg.hash != c["config_hash"]:
            say(f"warning: checkpoint {c['file']}: its config hashes to {cfg.hash}, not {c['config_hash']} "
                f"(the code changed the config's fields?); skipped")
            continue
        if runs.load_complete(cfg, results_dir) is not None:
            say(f"note: {cfg.experiment} seed {cfg.seed} is complete here already; its checkpoint is not restored")
            continue
        dest = runs.checkpoint_path(cfg, results_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pack_dir / "checkpoints" / c["file"], dest)
        restored[c["file"]] = str(dest)
    say(f"restored: data in {droot}, {len(restored)} checkpoint(s) in {runs.checkpoint_store()}")
    snap = take_snapshot(results_dir, data_root=droot)
    snap["pack_git_commit"] = manifest.get("git_commit")
    if snapshot:
        runs.atomic_write_json(Path(snapshot), snap)
    if prewarm:
        _prewarm(prewarm, droot, results_dir)
    return snap


def take_snapshot(results_dir: Path, data_root=None) -> dict:
    """What is complete and checkpointed now: export sends what is new or changed since."""
    from . import queue, runs
    ckpts = {}
    for e in queue.plan(data_root, results_dir):
        if e.state == "checkpointed":
            p = runs.checkpoint_path(e.config, results_dir)
            if p.is_file():
                ckpts[_run_key(e.config)] = dict(sha256=sha256_file(p), **checkpoint_info(p))
    return dict(kind="cifar_nb lease snapshot", created=_now(), started_unix=time.time(),
                runs=complete_runs(results_dir), checkpoints=ckpts)


def _prewarm(device: str, data_root: Path, results_dir: Path) -> None:
    """Decode / generate the datasets the queue will train on, once, before K workers would each do it."""
    import torch
    from . import data, queue
    try:
        entries = queue.select(queue.plan(data_root, results_dir), torch.device(device), None)
    except Exception as e:   # noqa: BLE001 - a warm-up must never stop the lease
        say(f"prewarm skipped: {type(e).__name__}: {e}")
        return
    for ds in sorted({e.config.dataset for e in entries}):
        t0 = time.monotonic()
        try:
            data.load(ds, "train", data_root)
            say(f"prewarmed {ds} in {time.monotonic() - t0:.0f} s")
        except Exception as e:   # noqa: BLE001
            say(f"prewarm of {ds} failed ({type(e).__name__}: {str(e)[:200]}); the runs will say more")


# ---------------------------------------------------------------------------------------------
# export (on the GPU machine, at the end of the lease)

def _est_gz(path: Path) -> int:
    """Compressed size of one file in a .tar.gz, plus its header."""
    z = zlib.compressobj(6)
    n = 0
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            n += len(z.compress(chunk))
    return n + len(z.flush()) + 1024


def _optional(name: str) -> int | None:
    for i, pat in enumerate(OPTIONAL_RUN_FILES):
        if fnmatch.fnmatch(name, pat):
            return i
    return None


def _new_run_folders(results_dir: Path, since: dict | None) -> list[tuple[str, object, Path]]:
    from . import runs
    before = (since or {}).get("runs", {})
    out = []
    for rel, sha in complete_runs(results_dir).items():
        if before.get(rel) == sha:
            continue
        d = results_dir / rel
        try:
            cfg = runs.RunConfig.from_dict(json.loads((d / "config.json").read_text()))
        except (OSError, ValueError, TypeError) as e:
            say(f"warning: {d} is complete but its config.json is unreadable ({e}); not exported")
            continue
        if cfg.hash != d.name:
            say(f"warning: {d}: its config hashes to {cfg.hash}, not its name; not exported")
            continue
        out.append((rel, cfg, d))
    return out


def export(out_dir: Path, results_dir=None, since: Path | dict | None = None, log_file: Path | None = None,
           data_root=None, workers: int | None = None) -> dict:
    """Write what the lease produced into out_dir ($OUT): at most OUT_MAX_FILES files, each under
    OUT_FILE_LIMIT, OUT_TOTAL_LIMIT together; built elsewhere and moved in only when everything fits."""
    from . import queue, runs
    out_dir = Path(out_dir)
    results_dir = Path(results_dir or runs.DEFAULT_RESULTS)
    if isinstance(since, (str, Path)):
        try:
            since = json.loads(Path(since).read_text())
        except (OSError, ValueError) as e:
            raise LeaseError(f"--since {since} cannot be read ({e})") from None
    if since is None:
        say("warning: no --since snapshot: every complete run folder is exported")
    if out_dir.exists() and any(out_dir.iterdir()):
        raise LeaseError(f"{out_dir} is not empty: export writes up to {OUT_MAX_FILES} files into an empty folder")
    warnings: list[str] = []

    def warn(msg):
        warnings.append(msg)
        say(f"warning: {msg}")

    new = _new_run_folders(results_dir, since)
    snap_ck = (since or {}).get("checkpoints", {})
    ckpts = []
    for e in queue.plan(data_root, results_dir):
        if e.state != "checkpointed":
            continue
        p = runs.checkpoint_path(e.config, results_dir)
        try:
            sha = sha256_file(p)
        except FileNotFoundError:
            continue
        if snap_ck.get(_run_key(e.config), {}).get("sha256") == sha:
            continue   # not touched during the lease
        ckpts.append(dict(path=p, cfg=e.config, sha256=sha, bytes=p.stat().st_size, **checkpoint_info(p)))

    speed = _speed(new, ckpts, since, workers)
    tmp = Path(tempfile.mkdtemp(prefix="cifar_nb-export-"))
    try:
        files = _lay_out(tmp, new, ckpts, log_file, warn)
        runs.atomic_write_json(tmp / "speed.json", speed)
        files.append("speed.json")
        manifest = dict(
            kind="cifar_nb lease export", lease_id=(since or {}).get("created", "") + "-" + uuid.uuid4().hex[:8],
            created=_now(), git_commit=runs.git_commit(), device_name=speed["device_name"], workers=workers,
            runs=[dict(key=rel, experiment=cfg.experiment, seed=cfg.seed, config_hash=cfg.hash)
                  for rel, cfg, _ in new],
            checkpoints=[dict(file=c["file"], experiment=c["cfg"].experiment, seed=c["cfg"].seed,
                              config_hash=c["cfg"].hash, config=c["cfg"].to_dict(), step=c["step"],
                              elapsed_s=c["elapsed_s"], bytes=c["bytes"], sha256=c["sha256"], **{"in": c["in"]})
                         for c in ckpts if c.get("file")],
            dropped=[dict(experiment=c["cfg"].experiment, seed=c["cfg"].seed, config_hash=c["cfg"].hash,
                          step=c["step"], bytes=c["bytes"]) for c in ckpts if not c.get("file")],
            warnings=warnings,
            files={f: dict(bytes=(tmp / f).stat().st_size, sha256=sha256_file(tmp / f)) for f in files})
        runs.atomic_write_json(tmp / "manifest.json", manifest)
        files.append("manifest.json")
        sizes = {f: (tmp / f).stat().st_size for f in files}
        too_big = [f for f, n in sizes.items() if n > OUT_FILE_LIMIT]
        if len(files) > OUT_MAX_FILES or too_big or sum(sizes.values()) > OUT_TOTAL_LIMIT:
            raise LeaseError(f"export does not fit $OUT's limits ({len(files)} files, "
                             f"{_mib(sum(sizes.values()))}; too big: {too_big}); nothing written")
        out_dir.mkdir(parents=True, exist_ok=True)
        for f in files:
            shutil.move(str(tmp / f), str(out_dir / f))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    say(f"exported {len(new)} finished run(s), {len(manifest['checkpoints'])} checkpoint(s) into {out_dir}: "
        + ", ".join(f"{f} {_mib(n)}" for f, n in sizes.items()))
    return manifest


def _speed(new, ckpts, since, workers) -> dict:
    import torch
    snap_ck = (since or {}).get("checkpoints", {})
    rows = []
    device_name = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    for rel, cfg, d in new:
        try:
            metrics = json.loads((d / "metrics.json").read_text())
            env = json.loads((d / "env.json").read_text()) if (d / "env.json").exists() else {}
        except (OSError, ValueError):
            continue
        steps, wall = metrics.get("steps", cfg.steps), metrics.get("wall_time_s") or env.get("wall_time_s")
        start = snap_ck.get(rel, {})
        s0, t0 = start.get("step") or 0, start.get("elapsed_s") or 0.0
        if wall and wall - t0 > 0 and steps - s0 > 0:
            rows.append(dict(experiment=cfg.experiment, seed=cfg.seed, config_hash=cfg.hash, state="finished",
                             steps=steps - s0, seconds=round(wall - t0, 2),
                             steps_per_s=round((steps - s0) / (wall - t0), 3), resumed_from_step=s0 or None,
                             device_name=env.get("device_name"), runtime=env.get("runtime")))
            device_name = device_name or env.get("device_name")
    for c in ckpts:
        start = snap_ck.get(_run_key(c["cfg"]), {})
        s0, t0 = start.get("step") or 0, start.get("elapsed_s") or 0.0
        if c.get("step") and c.get("elapsed_s") and c["step"] > s0 and c["elapsed_s"] > t0:
            rows.append(dict(experiment=c["cfg"].experiment, seed=c["cfg"].seed, config_hash=c["cfg"].hash,
                             state="checkpointed", steps=c["step"] - s0, seconds=round(c["elapsed_s"] - t0, 2),
                             steps_per_s=round((c["step"] - s0) / (c["elapsed_s"] - t0), 3),
                             resumed_from_step=s0 or None, device_name=device_name, runtime=None))
    return dict(kind="cifar_nb lease speed", created=_now(), device_name=device_name or "unknown", workers=workers,
                note="steps/s over each run's wall time on this lease, evaluations included; with several "
                     "workers the runs shared the device", rows=rows)


def _lay_out(tmp: Path, new, ckpts: list[dict], log_file, warn) -> list[str]:
    """Place results, checkpoints and the log into at most OUT_MAX_FILES files (speed.json and manifest.json
    come after). Results are never dropped; checkpoints are bundled, then dropped largest first; optional run
    files (OPTIONAL_RUN_FILES) are added where room is left."""
    files: list[str] = []
    fixed = 2   # speed.json, manifest.json
    reserve = 256 * 1024   # for those two
    if log_file:
        log_file = Path(log_file)
        if log_file.is_file():
            data = log_file.read_bytes()
            if len(data) > LOG_LIMIT:
                data = b"[... the log's start was cut: only its last 2 MiB came back ...]\n" + data[-LOG_LIMIT:]
            (tmp / "queue.log").write_bytes(data)
            files.append("queue.log")
        else:
            warn(f"--log {log_file} does not exist")
    # results: essential files of every new folder, bin-packed into parts
    essential, optional = [], []
    for rel, cfg, d in new:
        items = [(f"{rel}/{p.name}", p) for p in sorted(d.iterdir()) if p.is_file() and not p.name.startswith(".")]
        ess = [(a, p) for a, p in items if _optional(p.name) is None]
        essential.append((rel, ess, sum(_est_gz(p) for _, p in ess)))
        optional += [(a, p) for a, p in items if _optional(p.name) is not None]
    parts: list[dict] = []
    for rel, ess, est in sorted(essential, key=lambda t: -t[2]):
        if est > OUT_FILE_LIMIT:
            raise LeaseError(f"run folder {rel} alone compresses to about {_mib(est)}, over the "
                             f"{_mib(OUT_FILE_LIMIT)} a file may have: export cannot bring it back; nothing written")
        for part in parts:
            if part["est"] + est <= OUT_FILE_LIMIT:
                part["members"] += ess
                part["est"] += est
                break
        else:
            parts.append(dict(members=list(ess), est=est))
    used = sum((tmp / f).stat().st_size for f in files) + sum(p["est"] for p in parts) + reserve
    slots = OUT_MAX_FILES - len(files) - len(parts) - fixed
    if slots < 0 or used > OUT_TOTAL_LIMIT:
        raise LeaseError(f"the finished runs alone need {len(parts)} files of about {_mib(used)}: over $OUT's "
                         f"limits; nothing written")
    # checkpoints: smallest first as single files, the rest bundled into the last free slot
    ckpts.sort(key=lambda c: c["bytes"])
    for c in ckpts:
        c["name"] = f"ckpt-{c['cfg'].experiment}-{c['cfg'].hash}.ckpt"
    if len(ckpts) <= slots:
        singles, rest = list(ckpts), []
    else:   # one slot fewer for single files: the last holds the bundle of the largest
        singles, rest = ckpts[:max(slots - 1, 0)], ckpts[max(slots - 1, 0):]
    if slots == 0:
        for c in rest:
            warn(f"checkpoint of {c['cfg'].experiment} seed {c['cfg'].seed} (step {c['step']}): no file left "
                 f"in $OUT for it: dropped")
        rest = []
    for c in list(singles):
        if c["bytes"] > OUT_FILE_LIMIT or used + c["bytes"] > OUT_TOTAL_LIMIT:
            warn(f"checkpoint of {c['cfg'].experiment} seed {c['cfg'].seed} (step {c['step']}, {_mib(c['bytes'])}) "
                 f"does not fit $OUT's limits: dropped (the run starts over from its last packed state)")
            singles.remove(c)
            continue
        try:
            shutil.copyfile(c["path"], tmp / c["name"])
        except FileNotFoundError:   # a straggling worker finished it meanwhile
            singles.remove(c)
            continue
        c["file"], c["in"] = c["name"], None
        used += c["bytes"]
        files.append(c["name"])
    rest = sorted((c for c in rest if c["path"].exists()), key=lambda c: c["bytes"])
    if rest:
        while rest:
            bundle = tmp / "checkpoints.tar.gz"
            n = _tar_gz(bundle, [(c["name"], c["path"]) for c in rest])
            if n <= OUT_FILE_LIMIT and used + n <= OUT_TOTAL_LIMIT:
                for c in rest:
                    c["file"], c["in"] = c["name"], "checkpoints.tar.gz"
                used += n
                files.append("checkpoints.tar.gz")
                break
            c = rest.pop()
            warn(f"checkpoint of {c['cfg'].experiment} seed {c['cfg'].seed} (step {c['step']}, {_mib(c['bytes'])}) "
                 f"does not fit $OUT's limits: dropped")
            bundle.unlink(missing_ok=True)
    for c in ckpts:
        c.pop("name", None)
    # optional run files where room is left, smallest first
    for a, p in sorted(optional, key=lambda t: (_optional(t[1].name), t[1].stat().st_size)):
        est = _est_gz(p)
        for part in parts:
            if part["est"] + est <= OUT_FILE_LIMIT and used + est <= OUT_TOTAL_LIMIT:
                part["members"].append((a, p))
                part["est"] += est
                used += est
                break
        else:
            warn(f"{a} ({_mib(p.stat().st_size)}, git-ignored) left behind: no room in $OUT")
    for i, part in enumerate(parts):
        name = "results.tar.gz" if len(parts) == 1 else f"results-{i + 1}.tar.gz"
        n = _tar_gz(tmp / name, part["members"])
        if n > OUT_FILE_LIMIT:
            raise LeaseError(f"{name} came out at {_mib(n)}, over the per-file limit; nothing written")
        files.append(name)
    return files


# ---------------------------------------------------------------------------------------------
# unpack (here, with what came back)

def _same_run(a: Path, b: Path) -> bool:
    return all((a / f).read_bytes() == (b / f).read_bytes() for f in ("config.json", "metrics.json"))


def unpack(src: Path, results_dir=None, bench: Path | None = None, data_root=None, show_plan: bool = True) -> dict:
    """Verify what a lease brought back and merge it. Returns a report {merged, skipped, refused, ...}."""
    from . import queue, runs
    from .data import cache_dir
    src = Path(src)
    results_dir = Path(results_dir or runs.DEFAULT_RESULTS)
    report = dict(merged=[], present=[], skipped=[], refused=[], conflicts=[], checkpoints=[], speed_rows=0)

    def refuse(msg):
        report["refused"].append(msg)
        say(f"refused: {msg}")

    def skip(msg):
        report["skipped"].append(msg)
        say(f"skipped: {msg}")

    if not src.is_dir():
        raise LeaseError(f"{src} is not a folder (give unpack the folder the device reply names as files_at)")
    try:
        manifest = json.loads((src / "manifest.json").read_text())
    except (OSError, ValueError) as e:
        manifest = {}
        say(f"warning: {src}/manifest.json unreadable ({e}): no sha256 checks, checkpoints cannot be placed")
    bad = set()
    for f, meta in manifest.get("files", {}).items():
        if not (src / f).is_file():
            refuse(f"{f} is listed in manifest.json but did not come back")
            bad.add(f)
        elif sha256_file(src / f) != meta["sha256"]:
            refuse(f"{f} differs from its sha256 in manifest.json (damaged in transfer)")
            bad.add(f)
    lease_id = manifest.get("lease_id") or f"unknown-{uuid.uuid4().hex[:8]}"

    results_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(dir=results_dir, prefix=".lease-unpack-"))
    try:
        for part in sorted(src.glob("results*.tar.gz")):
            if part.name in bad:
                continue
            try:
                safe_extract(part, stage / "runs")
            except LeaseError as e:
                refuse(str(e))
        for d in sorted((stage / "runs").glob("*/*")) if (stage / "runs").is_dir() else []:
            _merge_run(d, results_dir, lease_id, report, refuse, skip, cache_dir)
        _merge_checkpoints(src, stage, manifest, bad, results_dir, report, refuse, skip)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    if (src / "speed.json").is_file() and "speed.json" not in bad:
        report["speed_rows"] = merge_speed(src / "speed.json", Path(bench or BENCH_FILE), lease_id)
    say(f"unpacked {src}: {len(report['merged'])} run(s) merged, {len(report['present'])} already here, "
        f"{len(report['checkpoints'])} checkpoint(s) placed, {len(report['refused'])} refused, "
        f"{len(report['skipped'])} skipped, {len(report['conflicts'])} conflict(s)")
    if show_plan:
        queue.print_plan(queue.plan(data_root, results_dir))
    return report


def _merge_run(d: Path, results_dir: Path, lease_id: str, report, refuse, skip, cache_dir) -> None:
    from . import runs
    rel = f"{d.parent.name}/{d.name}"
    if not d.is_dir():
        return
    try:
        cfg = runs.RunConfig.from_dict(json.loads((d / "config.json").read_text()))
    except (OSError, ValueError, TypeError) as e:
        return refuse(f"{rel}: config.json missing or not a run config ({type(e).__name__}: {e})")
    if cfg.hash != d.name or cfg.experiment != d.parent.name:
        return refuse(f"{rel}: its config.json is {cfg.experiment}/{cfg.hash}, not the folder's name")
    try:
        metrics = json.loads((d / "metrics.json").read_text())
        if not isinstance(metrics, dict):
            raise ValueError("not a JSON object")
    except (OSError, ValueError) as e:
        return refuse(f"{rel}: metrics.json missing or unreadable ({e}): not a complete run")
    pid = _live_lock(cfg)
    if pid:
        return skip(f"{rel} ({cfg.experiment} seed {cfg.seed}) is being trained here by worker pid {pid}; unpack "
                    f"again after it stops")
    dest = runs.run_dir(cfg, results_dir)
    if (dest / "metrics.json").exists():
        if (dest / "config.json").exists() and _same_run(dest, d):
            report["present"].append(rel)
            for f in d.iterdir():   # the same run: add what is missing here (git-ignored weights)
                if not (dest / f.name).exists():
                    shutil.copyfile(f, dest / f.name)
            return
        keep = cache_dir() / "lease-conflicts" / re.sub(r"[^A-Za-z0-9._-]", "_", lease_id) / rel
        keep.parent.mkdir(parents=True, exist_ok=True)
        if keep.exists():
            shutil.rmtree(keep)
        shutil.copytree(d, keep)
        report["conflicts"].append(dict(run=rel, kept_in=str(keep)))
        say(f"conflict: {dest} is complete here and differs from the lease's run; left as it is, the lease's copy "
            f"kept in {keep}")
        return
    dest.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if dest.exists():   # an unfinished run's folder (config.json only): the complete one replaces it
        old = d.parent.parent.parent / f"old-{d.parent.name}-{d.name}"
        os.rename(dest, old)
    os.rename(d, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    report["merged"].append(rel)
    stale = runs.checkpoint_path(cfg, results_dir)
    if stale.exists():
        stale.unlink()
        say(f"{rel} is complete now: removed this machine's older checkpoint of it ({stale.name})")


def _merge_checkpoints(src: Path, stage: Path, manifest: dict, bad: set, results_dir: Path, report, refuse, skip):
    from . import runs
    bundle = None
    for c in manifest.get("checkpoints", []):
        where = c.get("in") or c["file"]
        if where in bad:
            continue
        if c.get("in"):
            if bundle is None:
                try:
                    safe_extract(src / c["in"], stage / "ckpts")
                    bundle = stage / "ckpts"
                except LeaseError as e:
                    refuse(str(e))
                    bundle = False
            if not bundle:
                continue
            path = bundle / c["file"]
        else:
            path = src / c["file"]
        if not path.is_file() or sha256_file(path) != c.get("sha256"):
            refuse(f"checkpoint {c['file']} is missing or differs from its sha256")
            continue
        try:
            cfg = runs.RunConfig.from_dict(c["config"])
        except (TypeError, ValueError) as e:
            refuse(f"checkpoint {c['file']}: its config is not a run config here ({e})")
            continue
        if cfg.hash != c.get("config_hash"):
            refuse(f"checkpoint {c['file']}: its config hashes to {cfg.hash} here, not {c.get('config_hash')}")
            continue
        try:
            if runs.load_complete(cfg, results_dir) is not None:
                skip(f"checkpoint of {cfg.experiment} seed {cfg.seed}: the run is complete here")
                continue
        except runs.RunCorrupt as e:
            skip(f"checkpoint of {cfg.experiment} seed {cfg.seed}: {e}")
            continue
        pid = _live_lock(cfg)
        if pid:
            skip(f"checkpoint of {cfg.experiment} seed {cfg.seed}: worker pid {pid} is training it here")
            continue
        dest = runs.checkpoint_path(cfg, results_dir)
        if dest.exists():
            here = checkpoint_info(dest).get("step") or 0
            if here >= (c.get("step") or 0):
                skip(f"checkpoint of {cfg.experiment} seed {cfg.seed}: this machine's is at step {here:,}, the "
                     f"lease's at {c.get('step') or 0:,}; kept this machine's")
                continue
        runs.atomic_write_bytes(dest, path.read_bytes())
        report["checkpoints"].append(dict(experiment=cfg.experiment, seed=cfg.seed, step=c.get("step"),
                                          path=str(dest)))
        say(f"checkpoint of {cfg.experiment} seed {cfg.seed} at step {c.get('step') or 0:,} -> {dest}")


def merge_speed(speed_file: Path, bench: Path, lease_id: str) -> int:
    """Merge a lease's speed.json into the benchmark table, keyed by experiment; a lease's rows replace the same
    lease's rows (unpacking twice adds nothing). Returns the number of rows merged."""
    from . import runs
    speed = json.loads(Path(speed_file).read_text())
    try:
        table = json.loads(bench.read_text())
    except (OSError, ValueError):
        table = {}
    table.setdefault("about", "Training speed measured on leased GPU machines (python -m cifar_nb lease unpack): "
                              "steps/s over each run's wall time there, evaluations included. steps_per_s is the "
                              "median over measurements of finished runs (else of checkpointed ones).")
    exps = table.setdefault("experiments", {})
    dev = speed.get("device_name") or "unknown"
    if "H200" not in dev:
        say(f"note: these speeds were measured on {dev}, not an H200")
    n = 0
    for r in speed.get("rows", []):
        e = exps.setdefault(r["experiment"], {"measurements": []})
        row = dict(r, lease_id=lease_id, date=speed.get("created"), workers=speed.get("workers"))
        e["measurements"] = [m for m in e["measurements"]
                             if not (m.get("lease_id") == lease_id and m.get("config_hash") == r["config_hash"])]
        e["measurements"].append(row)
        n += 1
    for e in exps.values():
        ms = [m for m in e["measurements"] if m.get("state") == "finished"] or e["measurements"]
        rates = sorted(m["steps_per_s"] for m in ms if m.get("steps_per_s"))
        e["steps_per_s"] = rates[len(rates) // 2] if rates else None
        e["n"] = len(rates)
    table["updated"] = _now()
    runs.atomic_write_json(bench, table)
    say(f"merged {n} speed row(s) into {bench}")
    return n


# ---------------------------------------------------------------------------------------------
# command line

def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m cifar_nb lease", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="action", required=True)

    q = sub.add_parser("pack", help="fill a git-ignored folder (lease/) with what the GPU machine lacks")
    q.add_argument("dir", type=Path, help="the pack folder, e.g. lease")
    q.add_argument("--no-wheels", action="store_true", help="skip pip download (no optuna/torch-fidelity/lpips there)")
    q.add_argument("--no-data", action="store_true", help="pack no datasets")
    q.add_argument("--no-mnist", action="store_true", help="leave MNIST out (no AddNIST runs there)")
    q.add_argument("--no-checkpoints", action="store_true", help="leave the queue's checkpoints out")
    q.add_argument("--also", action="append", default=[], metavar="NAME==VER",
                   help="one more wheel, e.g. scipy==1.17.1")
    q.add_argument("--data-root")
    q.add_argument("--results-dir")

    q = sub.add_parser("restore", help="(on the GPU machine) lay the pack out and snapshot the starting state")
    q.add_argument("dir", type=Path)
    q.add_argument("--snapshot", type=Path, help="write the starting state here (for export --since)")
    q.add_argument("--prewarm", metavar="DEVICE", help="decode the datasets the queue will train on DEVICE")
    q.add_argument("--data-root", help="where the data goes (default: $CIFAR_NB_DATA)")
    q.add_argument("--results-dir")

    q = sub.add_parser("export", help="(on the GPU machine) write what the lease produced into $OUT")
    q.add_argument("dir", type=Path, help="the folder whose files come back ($OUT)")
    q.add_argument("--since", type=Path, help="the snapshot from restore (or a pack's manifest.json)")
    q.add_argument("--log", type=Path, help="the queue's log, sent back as queue.log")
    q.add_argument("--workers", type=int, help="workers that shared the device (recorded with the speeds)")
    q.add_argument("--data-root")
    q.add_argument("--results-dir")

    q = sub.add_parser("unpack", help="verify and merge what a lease brought back")
    q.add_argument("dir", type=Path, help="the folder the files came back to (the reply's files_at)")
    q.add_argument("--bench", type=Path, help=f"speed table to merge into (default {BENCH_FILE})")
    q.add_argument("--data-root")
    q.add_argument("--results-dir")

    args = p.parse_args(argv)
    try:
        if args.action == "pack":
            pack(args.dir, args.data_root, args.results_dir, wheels=not args.no_wheels, data=not args.no_data,
                 mnist=not args.no_mnist, checkpoints=not args.no_checkpoints, also=args.also)
        elif args.action == "restore":
            restore(args.dir, args.data_root, args.results_dir, snapshot=args.snapshot, prewarm=args.prewarm)
        elif args.action == "export":
            export(args.dir, args.results_dir, since=args.since, log_file=args.log, data_root=args.data_root,
                   workers=args.workers)
        else:
            rep = unpack(args.dir, args.results_dir, bench=args.bench, data_root=args.data_root)
            return 1 if rep["refused"] or rep["conflicts"] else 0
    except LeaseError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
