"""On the GPU machine: `lease restore` lays a pack out; `lease export` writes what the lease made into $OUT."""
from __future__ import annotations

import fnmatch
import json
import os
import shutil
import tempfile
import time
import uuid
import zlib
from pathlib import Path

import torch

from cifar_nb.config import RunConfig
from cifar_nb.engine import artifacts, data, queue
from cifar_nb.engine.artifacts import sha256_file
from cifar_nb.engine.lease.common import (
    LOG_LIMIT,
    OPTIONAL_RUN_FILES,
    OUT_FILE_LIMIT,
    OUT_MAX_FILES,
    OUT_TOTAL_LIMIT,
    LeaseError,
    _mib,
    _now,
    _run_key,
    _tar_gz,
    checkpoint_info,
    complete_runs,
    safe_extract,
    say,
)

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
    """Lay the pack out: data into data_root, checkpoints into the checkpoint store where artifacts.checkpoint_path
    expects them for results_dir, weights into results_dir; then write the snapshot export compares with."""
    pack_dir = Path(pack_dir)
    results_dir = Path(results_dir or artifacts.results_root())
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
        cfg = RunConfig.from_dict(c["config"])
        if cfg.hash != c["config_hash"]:
            say(f"warning: checkpoint {c['file']}: its config hashes to {cfg.hash}, not {c['config_hash']} "
                f"(the code changed the config's fields?); skipped")
            continue
        if artifacts.load_complete(cfg, results_dir) is not None:
            say(f"note: {cfg.experiment} seed {cfg.seed} is complete here already; its checkpoint is not restored")
            continue
        dest = artifacts.checkpoint_path(cfg, results_dir)
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(pack_dir / "checkpoints" / c["file"], dest)
        restored[c["file"]] = str(dest)
    say(f"restored: data in {droot}, {len(restored)} checkpoint(s) in {artifacts.checkpoint_store()}")
    snap = take_snapshot(results_dir, data_root=droot)
    snap["pack_git_commit"] = manifest.get("git_commit")
    if snapshot:
        artifacts.atomic_write_json(Path(snapshot), snap)
    if prewarm:
        _prewarm(prewarm, droot, results_dir)
    return snap


def take_snapshot(results_dir: Path, data_root=None) -> dict:
    """What is complete and checkpointed now: export sends what is new or changed since."""
    ckpts = {}
    for e in queue.plan(data_root, results_dir):
        if e.state == "checkpointed":
            p = artifacts.checkpoint_path(e.config, results_dir)
            if p.is_file():
                ckpts[_run_key(e.config)] = dict(sha256=sha256_file(p), **checkpoint_info(p))
    return dict(kind="cifar_nb lease snapshot", created=_now(), started_unix=time.time(),
                runs=complete_runs(results_dir), checkpoints=ckpts)


def _prewarm(device: str, data_root: Path, results_dir: Path) -> None:
    """Decode / generate the datasets the queue will train on, once, before K workers would each do it."""
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
    before = (since or {}).get("runs", {})
    out = []
    for rel, sha in complete_runs(results_dir).items():
        if before.get(rel) == sha:
            continue
        d = results_dir / rel
        try:
            cfg = RunConfig.from_dict(json.loads((d / "config.json").read_text()))
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
    out_dir = Path(out_dir)
    results_dir = Path(results_dir or artifacts.results_root())
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
        p = artifacts.checkpoint_path(e.config, results_dir)
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
        artifacts.atomic_write_json(tmp / "speed.json", speed)
        files.append("speed.json")
        manifest = dict(
            kind="cifar_nb lease export", lease_id=(since or {}).get("created", "") + "-" + uuid.uuid4().hex[:8],
            created=_now(), git_commit=artifacts.git_commit(), device_name=speed["device_name"], workers=workers,
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
        artifacts.atomic_write_json(tmp / "manifest.json", manifest)
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


