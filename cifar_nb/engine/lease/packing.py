"""`lease pack`: fill a git-ignored folder with the wheels, data and checkpoints a bare GPU machine lacks."""
from __future__ import annotations

import importlib.metadata as md
import os
import shutil
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

from cifar_nb.engine import artifacts, queue
from cifar_nb.engine.data import ALIASES, MNIST_FILES, DataError
from cifar_nb.engine.data import data_root as find_data_root
from cifar_nb.engine.artifacts import sha256_file
from cifar_nb.engine.lease.common import (
    MNIST_RAW,
    PACK_LIMIT_BYTES,
    PIP_PLATFORM,
    WHEELS_FALLBACK,
    WHEELS_MISSING,
    LeaseError,
    _git,
    _live_lock,
    _mib,
    _now,
    _tar_gz,
    complete_runs,
    repo_root,
    say,
    tree_size,
)


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
    items = []
    for e in queue.plan(data_root, results_dir):
        if e.state != "checkpointed":
            continue
        src = artifacts.checkpoint_path(e.config, results_dir)
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
    dest = Path(dest).absolute()
    results_dir = Path(results_dir or artifacts.results_root())
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
            artifacts.atomic_write_json(tmp / "checkpoints" / "manifest.json", ckpts)
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
        kind="cifar_nb lease pack", created=_now(), git_commit=artifacts.git_commit(),
        tree_bytes=tree_bytes, pack_bytes=pack_bytes, total_bytes=total, limit_bytes=PACK_LIMIT_BYTES,
        files={rel: dict(bytes=p.stat().st_size, sha256=sha256_file(p)) for rel, p in sorted(files.items())},
        wheels=sorted(Path(r).name for r in files if r.startswith("wheels/")),
        checkpoints=ckpts, runs=complete_runs(results_dir), notes=notes)
    artifacts.atomic_write_json(tmp / "manifest.json", manifest)
    for n in notes:
        say(f"note: {n}")
    return manifest


