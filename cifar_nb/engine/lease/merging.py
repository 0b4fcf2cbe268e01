"""`lease unpack`: verify what a lease brought back and merge it into results/, the checkpoint store and the speed table."""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
import uuid
from pathlib import Path

from cifar_nb.config import RunConfig
from cifar_nb.engine import artifacts, queue
from cifar_nb.engine.data import cache_dir
from cifar_nb.engine.artifacts import sha256_file
from cifar_nb.engine.lease.common import (
    BENCH_FILE,
    LeaseError,
    _live_lock,
    _now,
    checkpoint_info,
    safe_extract,
    say,
)

# ---------------------------------------------------------------------------------------------
# unpack (here, with what came back)

def _same_run(a: Path, b: Path) -> bool:
    return all((a / f).read_bytes() == (b / f).read_bytes() for f in ("config.json", "metrics.json"))


def unpack(src: Path, results_dir=None, bench: Path | None = None, data_root=None, show_plan: bool = True) -> dict:
    """Verify what a lease brought back and merge it. Returns a report {merged, skipped, refused, ...}."""
    src = Path(src)
    results_dir = Path(results_dir or artifacts.results_root())
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
    rel = f"{d.parent.name}/{d.name}"
    if not d.is_dir():
        return
    try:
        cfg = RunConfig.from_dict(json.loads((d / "config.json").read_text()))
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
    dest = artifacts.run_dir(cfg, results_dir)
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
    stale = artifacts.checkpoint_path(cfg, results_dir)
    if stale.exists():
        stale.unlink()
        say(f"{rel} is complete now: removed this machine's older checkpoint of it ({stale.name})")


def _merge_checkpoints(src: Path, stage: Path, manifest: dict, bad: set, results_dir: Path, report, refuse, skip):
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
            cfg = RunConfig.from_dict(c["config"])
        except (TypeError, ValueError) as e:
            refuse(f"checkpoint {c['file']}: its config is not a run config here ({e})")
            continue
        if cfg.hash != c.get("config_hash"):
            refuse(f"checkpoint {c['file']}: its config hashes to {cfg.hash} here, not {c.get('config_hash')}")
            continue
        try:
            if artifacts.load_complete(cfg, results_dir) is not None:
                skip(f"checkpoint of {cfg.experiment} seed {cfg.seed}: the run is complete here")
                continue
        except artifacts.RunCorrupt as e:
            skip(f"checkpoint of {cfg.experiment} seed {cfg.seed}: {e}")
            continue
        pid = _live_lock(cfg)
        if pid:
            skip(f"checkpoint of {cfg.experiment} seed {cfg.seed}: worker pid {pid} is training it here")
            continue
        dest = artifacts.checkpoint_path(cfg, results_dir)
        if dest.exists():
            here = checkpoint_info(dest).get("step") or 0
            if here >= (c.get("step") or 0):
                skip(f"checkpoint of {cfg.experiment} seed {cfg.seed}: this machine's is at step {here:,}, the "
                     f"lease's at {c.get('step') or 0:,}; kept this machine's")
                continue
        artifacts.atomic_write_bytes(dest, path.read_bytes())
        report["checkpoints"].append(dict(experiment=cfg.experiment, seed=cfg.seed, step=c.get("step"),
                                          path=str(dest)))
        say(f"checkpoint of {cfg.experiment} seed {cfg.seed} at step {c.get('step') or 0:,} -> {dest}")


def merge_speed(speed_file: Path, bench: Path, lease_id: str) -> int:
    """Merge a lease's speed.json into the benchmark table, keyed by experiment; a lease's rows replace the same
    lease's rows (unpacking twice adds nothing). Returns the number of rows merged."""
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
    artifacts.atomic_write_json(bench, table)
    say(f"merged {n} speed row(s) into {bench}")
    return n


