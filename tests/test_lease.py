"""The GPU lease kit (cifar_nb.engine.lease, scripts/lease_run.sh) on the CPU, with tiny runs on synthetic data.

The whole cycle runs in-process: train here until a simulated kill, pack, restore on "the GPU" (another
results folder, cache and checkpoint store), train there until another kill, export into an $OUT-like folder,
unpack here, finish here: the final metrics equal those of uninterrupted runs. No network (--no-wheels).
"""
from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest
import torch
from test_classifiers import same, synthetic  # noqa: F401  (synthetic is a fixture)
from test_queue import _tiny_plan

from cifar_nb.config import RunConfig
from cifar_nb.engine import artifacts, lease, queue, runs
from cifar_nb.engine.train import classifier

ROOT = Path(__file__).resolve().parents[1]
CPU = torch.device("cpu")


def fake_data_root(root: Path) -> Path:
    """What pack copies: a (tiny) cifar10-jpeg.tar.gz and four (tiny) MNIST raw files."""
    root.mkdir(parents=True)
    with tarfile.open(root / "cifar10-jpeg.tar.gz", "w:gz") as tar:
        blob = b"not a jpeg"
        ti = tarfile.TarInfo("cifar10-jpeg/train/cat/0.jpg")
        ti.size = len(blob)
        tar.addfile(ti, io.BytesIO(blob))
    raw = root / "mnist" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
                 "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(name.encode() * 10)
    return root


def machine(monkeypatch, where: Path) -> Path:
    """Point the cache (locks) and the checkpoint store at one "machine"'s folders; return its results folder."""
    monkeypatch.setenv("CIFAR_NB_CACHE", str(where / "cache"))
    monkeypatch.setenv("CIFAR_NB_CHECKPOINTS", str(where / "store"))
    return where / "results"


def kill_at(monkeypatch, seed: int | None, step: int = 5):
    """SIGTERM during training of `seed` at `step` (None: no kill), as a lease's end or a Ctrl-C would."""
    real = classifier.Loop.step if not hasattr(classifier.Loop.step, "real") else classifier.Loop.step.real

    def step_then_kill(self):
        out = real(self)
        if seed is not None and self.cfg.seed == seed and self.step_count == step:
            os.kill(os.getpid(), signal.SIGTERM)
        return out
    step_then_kill.real = real
    monkeypatch.setattr(classifier.Loop, "step", step_then_kill)


def states(results, data_root):
    return [(e.state, e.step) for e in queue.plan(data_root, results)]


def test_the_whole_lease_cycle_ends_with_the_metrics_of_uninterrupted_runs(synthetic, tmp_path, monkeypatch):
    _tiny_plan(monkeypatch, steps=12)
    droot = fake_data_root(tmp_path / "data")

    # the reference: both seeds trained without a break
    whole_dir = machine(monkeypatch, tmp_path / "whole")
    cfgs = [e.config for e in queue.plan(droot, whole_dir)]
    whole = [runs.run(c, results_dir=whole_dir, progress=False) for c in cfgs]

    # here: seed 0 is stopped at step 5
    here = machine(monkeypatch, tmp_path / "here")
    kill_at(monkeypatch, seed=0)
    assert queue.work(CPU, None, None, data_root=droot, results_dir=here) == 143
    assert states(here, droot) == [("checkpointed", 5), ("pending", 0)]

    # pack (outside the checkout: allowed, with a note)
    pack_dir = tmp_path / "lease"
    m = lease.pack(pack_dir, data_root=droot, results_dir=here, wheels=False)
    assert [c["step"] for c in m["checkpoints"]] == [5] and m["checkpoints"][0]["config"] == cfgs[0].to_dict()
    assert {"data/cifar10-jpeg.tar.gz", "data/mnist.tar.gz", "checkpoints/manifest.json"} <= set(m["files"])
    assert m["tree_bytes"] > 0 and m["total_bytes"] <= lease.packing.PACK_LIMIT_BYTES
    assert not list(tmp_path.glob(".lease.*"))

    # the GPU: restore, train until seed 1 is stopped at step 5, export
    gpu = machine(monkeypatch, tmp_path / "gpu")
    gpu_data = tmp_path / "gpu" / "data"
    lease.restore(pack_dir, data_root=gpu_data, results_dir=gpu, snapshot=tmp_path / "gpu" / "start.json")
    assert (gpu_data / "cifar10-jpeg.tar.gz").is_file()
    assert (gpu_data / "mnist" / "MNIST" / "raw" / "t10k-labels-idx1-ubyte").is_file()
    assert states(gpu, gpu_data) == [("checkpointed", 5), ("pending", 0)]
    kill_at(monkeypatch, seed=1)
    assert queue.work(CPU, None, None, data_root=gpu_data, results_dir=gpu) == 143
    assert states(gpu, gpu_data) == [("done", 12), ("checkpointed", 5)]
    log = tmp_path / "gpu" / "queue.log"
    log.write_text("the queue's log\n")
    out = tmp_path / "out"
    em = lease.export(out, results_dir=gpu, since=tmp_path / "gpu" / "start.json", log_file=log, data_root=gpu_data,
                      workers=1)
    came = sorted(p.name for p in out.iterdir())
    assert came == sorted(["results.tar.gz", f"ckpt-A-classifier-{cfgs[1].hash}.ckpt", "queue.log", "speed.json",
                           "manifest.json"])
    assert len(came) <= 8 and all((out / f).stat().st_size < 16 * lease.MiB for f in came)
    assert all(p.is_file() for p in out.iterdir())
    speed = {r["seed"]: r for r in json.loads((out / "speed.json").read_text())["rows"]}
    assert speed[0]["state"] == "finished" and speed[0]["steps"] == 7 and speed[0]["resumed_from_step"] == 5
    assert speed[1]["state"] == "checkpointed" and speed[1]["steps"] == 5 and speed[1]["steps_per_s"] > 0
    assert [r["seed"] for r in em["runs"]] == [0] and [c["seed"] for c in em["checkpoints"]] == [1]

    # here again: unpack, then finish seed 1 here
    here = machine(monkeypatch, tmp_path / "here")
    bench = tmp_path / "h200-speed.json"
    rep = lease.unpack(out, results_dir=here, bench=bench, data_root=droot)
    assert rep["merged"] == [f"A-classifier/{cfgs[0].hash}"] and not rep["refused"] and not rep["conflicts"]
    assert not artifacts.checkpoint_path(cfgs[0], here).exists()      # the stale local checkpoint went
    assert states(here, droot) == [("done", 12), ("checkpointed", 5)]
    table = json.loads(bench.read_text())
    assert len(table["experiments"]["A-classifier"]["measurements"]) == 2
    kill_at(monkeypatch, seed=None)
    assert queue.work(CPU, None, None, data_root=droot, results_dir=here) == 0
    final = [artifacts.load_complete(c, here) for c in cfgs]
    for a, b in zip(final, whole):
        assert same(a.metrics, b.metrics) and a.history == b.history

    # unpacking twice changes nothing and adds no speed rows
    rep = lease.unpack(out, results_dir=here, bench=bench, data_root=droot, show_plan=False)
    assert rep["present"] == [f"A-classifier/{cfgs[0].hash}"] and not rep["merged"] and not rep["refused"]
    assert len(json.loads(bench.read_text())["experiments"]["A-classifier"]["measurements"]) == 2


def test_an_oversize_pack_is_refused_and_leaves_nothing(synthetic, tmp_path, monkeypatch, capsys):
    _tiny_plan(monkeypatch)
    droot = fake_data_root(tmp_path / "data")
    here = machine(monkeypatch, tmp_path / "here")
    monkeypatch.setattr(lease.packing, "PACK_LIMIT_BYTES", 1 * lease.MiB)   # the tree alone is larger
    with pytest.raises(lease.LeaseError, match="does not fit.*Largest in the pack.*Leave something out"):
        lease.pack(tmp_path / "lease", data_root=droot, results_dir=here, wheels=False)
    assert not any(p.name.startswith(("lease", ".lease")) for p in tmp_path.iterdir())
    rc = lease.main(["pack", str(tmp_path / "lease"), "--no-wheels", "--data-root", str(droot),
                     "--results-dir", str(here)])
    assert rc == 2 and "does not fit" in capsys.readouterr().err
    assert not any(p.name.startswith(("lease", ".lease")) for p in tmp_path.iterdir())


@pytest.mark.skipif(lease.repo_root() is None, reason="needs the project as a git checkout")
def test_a_pack_folder_git_would_upload_is_refused():
    target = ROOT / "lease-not-ignored-test"
    with pytest.raises(lease.LeaseError, match="not git-ignored.*lease/"):
        lease.pack(target, wheels=False)
    assert not target.exists() and not list(ROOT.glob(".lease-not-ignored-test*"))


def _tar(path: Path, files: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, blob in files.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(blob)
            tar.addfile(ti, io.BytesIO(blob))


def test_unpack_refuses_a_run_whose_config_hash_is_not_its_name_and_unsafe_archives(tmp_path, monkeypatch):
    machine(monkeypatch, tmp_path / "here")
    cfg = RunConfig("A-classifier", "classifier", "resnet_bottleneck", steps=4)
    config = json.dumps(cfg.to_dict()).encode()
    metrics = b'{"test_acc": 0.5}'
    back = tmp_path / "back"
    back.mkdir()
    _tar(back / "results.tar.gz", {"A-classifier/0123456789ab/config.json": config,
                                   "A-classifier/0123456789ab/metrics.json": metrics,
                                   f"A-classifier/{cfg.hash}/config.json": config})   # no metrics: incomplete
    results = tmp_path / "results"
    rep = lease.unpack(back, results_dir=results, bench=tmp_path / "bench.json", show_plan=False)
    assert len(rep["refused"]) == 2 and not rep["merged"]
    assert any("not the folder's name" in r for r in rep["refused"])
    assert any("metrics.json missing" in r for r in rep["refused"])
    assert not (results / "A-classifier").exists() and not list(results.glob(".lease-unpack-*"))

    _tar(back / "results.tar.gz", {"../evil.txt": b"x"})
    rep = lease.unpack(back, results_dir=results, bench=tmp_path / "bench.json", show_plan=False)
    assert any("'..'" in r for r in rep["refused"]) and not (tmp_path / "evil.txt").exists()

    # a complete folder that differs is never overwritten
    _tar(back / "results.tar.gz", {f"A-classifier/{cfg.hash}/config.json": config,
                                   f"A-classifier/{cfg.hash}/metrics.json": metrics})
    mine = artifacts.run_dir(cfg, results)
    artifacts.atomic_write_json(mine / "config.json", cfg.to_dict())
    artifacts.atomic_write_json(mine / "metrics.json", {"test_acc": 0.25})
    rep = lease.unpack(back, results_dir=results, bench=tmp_path / "bench.json", show_plan=False)
    assert rep["conflicts"] and json.loads((mine / "metrics.json").read_text()) == {"test_acc": 0.25}
    assert Path(rep["conflicts"][0]["kept_in"], "metrics.json").read_bytes() == metrics


def test_export_bundles_checkpoints_beyond_eight_files_and_drops_what_does_not_fit(tmp_path, monkeypatch):
    cfg = RunConfig("A-classifier", "classifier", "resnet_bottleneck", steps=4)

    def checkpoints():
        out = []
        for s in range(9):
            p = tmp_path / f"c{s}.ckpt"
            if not p.exists():
                p.write_bytes(os.urandom(1000 * (s + 1)))    # random: gzip cannot shrink them
            out.append(dict(path=p, cfg=cfg.replace(seed=s), bytes=p.stat().st_size, step=s, elapsed_s=1.0))
        return out

    lay, warned = tmp_path / "lay", []
    lay.mkdir()
    ckpts = checkpoints()
    files = lease._lay_out(lay, [], ckpts, None, warned.append)
    # speed.json and manifest.json come after: five checkpoints alone, the four largest in one bundle
    assert len(files) == 6 and files[-1] == "checkpoints.tar.gz" and not warned
    assert [c["cfg"].seed for c in ckpts if c["in"] is None] == [0, 1, 2, 3, 4]
    with tarfile.open(lay / "checkpoints.tar.gz") as tar:
        assert len(tar.getnames()) == 4

    monkeypatch.setattr(lease.onsite, "OUT_FILE_LIMIT", 5500)
    lay2, warned = tmp_path / "lay2", []
    lay2.mkdir()
    ckpts = checkpoints()
    files = lease._lay_out(lay2, [], ckpts, None, warned.append)
    assert len(files) == 5 and len(warned) == 4 and all("dropped" in w for w in warned)
    assert all(not c.get("file") for c in ckpts[5:])


def test_export_splits_results_over_several_files_and_unpack_joins_them(tmp_path, monkeypatch):
    machine(monkeypatch, tmp_path / "gpu")
    droot = fake_data_root(tmp_path / "data")
    gpu = tmp_path / "gpu" / "results"
    cfgs = [RunConfig("A-classifier", "classifier", "resnet_bottleneck", steps=4, seed=s) for s in range(3)]
    for c in cfgs:
        d = artifacts.run_dir(c, gpu)
        artifacts.atomic_write_json(d / "config.json", c.to_dict())
        artifacts.atomic_write_json(d / "metrics.json", {"test_acc": 0.5, "steps": 4, "wall_time_s": 2.0})
        (d / "samples.npz").write_bytes(os.urandom(20_000))
        (d / "generator.pt").write_bytes(os.urandom(30_000))      # git-ignored: comes back only if room is left
    monkeypatch.setattr(lease.onsite, "OUT_FILE_LIMIT", 60_000)
    out = tmp_path / "out"
    m = lease.export(out, results_dir=gpu, since={"runs": {}}, data_root=droot)
    came = sorted(p.name for p in out.iterdir())
    assert came == ["manifest.json", "results-1.tar.gz", "results-2.tar.gz", "speed.json"]
    assert all((out / f).stat().st_size <= 60_000 for f in came)
    assert len(m["warnings"]) == 2 and all("generator.pt" in w for w in m["warnings"])
    here = machine(monkeypatch, tmp_path / "here")
    rep = lease.unpack(out, results_dir=here, bench=tmp_path / "bench.json", show_plan=False)
    assert sorted(rep["merged"]) == sorted(f"A-classifier/{c.hash}" for c in cfgs) and not rep["refused"]
    assert len(list(here.glob("A-classifier/*/generator.pt"))) == 1
    assert len(json.loads((tmp_path / "bench.json").read_text())["experiments"]["A-classifier"]["measurements"]) == 3


SITECUSTOMIZE = '''
import os, sys
if os.environ.get("CIFAR_NB_LEASE_TINY") and sys.argv[:1] != ["-c"]:
    sys.path.insert(0, {tests!r})
    from _pytest.monkeypatch import MonkeyPatch
    from cifar_nb.engine import data
    import test_classifiers as tc, test_queue as tq
    mp = MonkeyPatch()
    tq._tiny_plan(mp)
    real_load, real_describe = data.load, data.describe
    mp.setattr(data, "load", lambda dataset="cifar100", split="train", root=None, device="cpu", download=None:
               tc.blobs(dataset, split).to(device) if dataset == tc.SYN else real_load(dataset, split, root, device))
    mp.setattr(data, "describe", lambda dataset="cifar100", root=None:
               tc.blobs_info(dataset) if dataset == tc.SYN else real_describe(dataset, root))
'''


@pytest.mark.slow
def test_lease_run_sh_on_the_cpu(synthetic, tmp_path, monkeypatch):
    """The device script end to end, DEVICE=cpu, on the tiny plan (patched into its Python processes)."""
    _tiny_plan(monkeypatch)
    droot = fake_data_root(tmp_path / "data")
    here = machine(monkeypatch, tmp_path / "here")
    pack_dir = tmp_path / "lease"
    lease.pack(pack_dir, data_root=droot, results_dir=here, wheels=False)
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(SITECUSTOMIZE.format(tests=str(ROOT / "tests")))
    out = tmp_path / "out"
    env = dict(os.environ, DEVICE="cpu", PYTHON=sys.executable, LEASE_OUT=str(out), LEASE_THREADS="1",
               LEASE_RESERVE="5", CIFAR_NB_LEASE_TINY="1", TMPDIR=str(tmp_path), OMP_NUM_THREADS="1",
               PYTHONPATH=str(hook), CIFAR_NB_RESULTS=str(tmp_path / "gpu-results"))
    env.pop("OUT", None)
    r = subprocess.run(["bash", "scripts/lease_run.sh", str(pack_dir), "300", "1"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    came = sorted(p.name for p in out.iterdir())
    assert came == ["manifest.json", "queue.log", "results.tar.gz", "speed.json"], r.stdout[-3000:]
    assert "queue worker done: 2 run(s) finished" in (out / "queue.log").read_text()
    rep = lease.unpack(out, results_dir=here, bench=tmp_path / "bench.json", show_plan=False)
    assert len(rep["merged"]) == 2 and not rep["refused"]
    assert [e.state for e in queue.plan(droot, here)] == ["done", "done"]
    assert "CPU" in json.loads((out / "speed.json").read_text())["rows"][0]["device_name"]
