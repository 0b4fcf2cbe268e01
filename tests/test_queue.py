"""The run queue, the checkpoint store, wall-clock and signal checkpoints, and the runtime defaults."""
import json
import os
import signal

import pytest
import torch
from test_classifiers import SYN, go, same, synthetic, tiny  # noqa: F401  (synthetic is a fixture)

from cifar_nb import cli, experiments
from cifar_nb.engine import artifacts, queue, runs, runtime
from cifar_nb.engine.train import classifier


def test_queue_json_lists_every_full_budget_run(capsys, tmp_path, monkeypatch):
    monkeypatch.delenv("CIFAR_NB_DATA", raising=False)
    assert cli.main(["queue", "--json", "--results-dir", str(tmp_path)]) == 0
    rows = json.loads(capsys.readouterr().out)
    for r in rows:
        assert {"experiment", "seed", "state", "est_cpu_s", "est_h200_s", "device"} <= set(r)
        assert r["state"] in ("done", "running", "checkpointed", "pending", "held", "corrupt")
        assert r["est_h200_s"] > 0
    # every experiment of the registry is in the plan, at three seeds (the FD-cls net is trained by others)
    by_exp = {}
    for r in rows:
        by_exp.setdefault(r["experiment"], set()).add(r["seed"])
    assert set(by_exp) == set(experiments.REGISTRY)
    assert all(seeds == {0, 1, 2} for n, seeds in by_exp.items() if not n.startswith("D-search"))
    # the CPU plan comes first, in the priority order
    cpu = [(r["experiment"], r["seed"]) for r in rows if r["cpu_plan"]]
    assert cpu[:7] == [("E-classifier", 0), ("E-classifier", 1), ("E-classifier", 2),
                       ("A-classifier", 0), ("A-classifier", 1), ("A-classifier", 2), ("B-classifier", 0)]
    assert [r["priority"] for r in rows] == sorted(r["priority"] for r in rows)


def test_queue_only_refuses_unknown_names():
    with pytest.raises(ValueError, match="does not hold"):
        queue.select([], torch.device("cpu"), ["Z-classifier"])


def _tiny_plan(monkeypatch, steps=12):
    exp = experiments.get("A-classifier")
    monkeypatch.setattr(exp, "config", exp.config.replace(dataset=SYN, steps=steps, batch_size=32, eval_every=6))
    monkeypatch.setattr(queue.entries, "PLAN", [("A-classifier", (0, 1), True, None)])
    monkeypatch.setattr(queue.entries, "_dataset_for", lambda e, present: (SYN, ""))


def test_queue_worker_trains_pending_runs_then_reports_done(synthetic, tmp_path, monkeypatch):
    _tiny_plan(monkeypatch)
    assert [e.state for e in queue.plan(results_dir=tmp_path)] == ["pending", "pending"]
    before = signal.getsignal(signal.SIGTERM)
    assert queue.work(torch.device("cpu"), None, None, results_dir=tmp_path) == 0
    assert signal.getsignal(signal.SIGTERM) is before
    entries = queue.plan(results_dir=tmp_path)
    assert [e.state for e in entries] == ["done", "done"]
    assert all(e.device and "CPU" in e.device for e in entries)
    env = json.loads((artifacts.run_dir(entries[0].config, tmp_path) / "env.json").read_text())
    assert env["runtime"]["precision"] in ("fp32", "bf16-autocast") and env["runtime"]["threads"] >= 1


def test_a_run_claimed_by_another_worker_is_skipped(synthetic, tmp_path, monkeypatch):
    _tiny_plan(monkeypatch)
    first = queue.plan(results_dir=tmp_path)[0]
    lock = queue.RunLock(first.key)
    assert lock.acquire() and not queue.RunLock(first.key).acquire()
    try:
        queue.work(torch.device("cpu"), None, None, results_dir=tmp_path)
    finally:
        lock.release()
    assert [e.state for e in queue.plan(results_dir=tmp_path)] == ["pending", "done"]


def test_stale_lock_of_a_dead_worker_is_taken_over(tmp_path):
    lock = queue.RunLock("unit-stale")
    lock.path.parent.mkdir(parents=True, exist_ok=True)
    lock.path.write_text("999999999")          # no such process
    assert lock.acquire()
    lock.release()
    assert not lock.path.exists()


def test_sigterm_during_training_checkpoints_and_resumes_to_the_same_metrics(synthetic, tmp_path, monkeypatch):
    cfg = tiny("A-classifier", steps=16, eval_every=8)
    whole = go(cfg, tmp_path / "whole")
    real_step = classifier.Loop.step

    def step_then_kill(self):
        out = real_step(self)
        if self.step_count == 5:
            os.kill(os.getpid(), signal.SIGTERM)
        return out

    monkeypatch.setattr(classifier.Loop, "step", step_then_kill)
    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(runs.RunInterrupted, match="SIGTERM received at step 5") as info:
        go(cfg, tmp_path / "cut")
    assert info.value.signalled == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before    # the handler is gone again
    ck = artifacts.checkpoint_path(cfg, tmp_path / "cut")
    assert ck.exists() and not (artifacts.run_dir(cfg, tmp_path / "cut") / "metrics.json").exists()
    monkeypatch.setattr(classifier.Loop, "step", real_step)
    resumed = go(cfg, tmp_path / "cut")
    assert same(resumed.metrics, whole.metrics) and resumed.history == whole.history
    assert not ck.exists()


def test_checkpoints_are_written_by_wall_clock(tmp_path):
    cfg = tiny("A-classifier")
    ctx = runs.RunContext(cfg, torch.device("cpu"), None, tmp_path / "r", checkpoint_every_s=300)
    assert not ctx.should_checkpoint(1000)          # no step count triggers it any more
    ctx._last_checkpoint -= 301
    assert ctx.should_checkpoint(1001)
    ctx.save_checkpoint({"step": 1001})
    assert not ctx.should_checkpoint(1002)


def test_checkpoints_live_outside_the_results_folder(tmp_path, monkeypatch):
    cfg = tiny("A-classifier")
    monkeypatch.delenv("CIFAR_NB_CHECKPOINTS")
    monkeypatch.setenv("CIFAR_NB_CACHE", str(tmp_path / "cache"))
    a, b = artifacts.checkpoint_path(cfg, tmp_path / "a"), artifacts.checkpoint_path(cfg, tmp_path / "b")
    assert a.parent == tmp_path / "cache" / "checkpoints" and a != b
    assert a == artifacts.checkpoint_path(cfg, tmp_path / "a" / ".." / "a")   # the same folder, however named


def test_runtime_defaults_follow_the_cpu(monkeypatch):
    monkeypatch.delenv("CIFAR_NB_PRECISION", raising=False)
    monkeypatch.delenv("CIFAR_NB_COMPILE", raising=False)
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    assert runtime.default_runtime("mbconv_se", "cpu") == runtime.Runtime()       # emulated bf16 is slower
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    rt = runtime.default_runtime("resnet_bottleneck", "cpu")
    assert rt.amp and not rt.channels_last and rt.compile
    rt = runtime.default_runtime("mbconv_se", "cpu")                     # depthwise: fp32 channels_last won
    assert not rt.amp and rt.channels_last and not rt.compile
    monkeypatch.setenv("CIFAR_NB_PRECISION", "fp32")
    assert runtime.default_runtime("resnet_bottleneck", "cpu") == runtime.Runtime()
    assert runtime.default_runtime("resnet_bottleneck", "cpu", fp32=False).amp


def test_runtime_is_not_part_of_the_config_hash(synthetic, tmp_path):
    cfg = tiny("A-classifier", steps=4, eval_every=2)
    a = runs.run(cfg, results_dir=tmp_path, progress=False, runtime=runtime.Runtime(amp=True))
    assert a.run_dir.name == cfg.hash and a.env["runtime"]["precision"] == "bf16-autocast"
    assert runs.run(cfg, results_dir=tmp_path, progress=False, runtime=runtime.Runtime()).reused


@pytest.mark.parametrize("bad", ["gpu", "cuda:x", "tpu:0"])
def test_bad_device_strings_get_a_sentence(bad):
    with pytest.raises(ValueError, match="device"):
        runtime.resolve_device(bad)


def test_estimates_come_from_this_queue_s_own_finished_runs(synthetic, tmp_path, monkeypatch):
    _tiny_plan(monkeypatch)
    queue.work(torch.device("cpu"), None, ["A-classifier"], results_dir=tmp_path)
    entries = queue.plan(results_dir=tmp_path)
    wall = sum(e.wall_time_s for e in entries) / len(entries)
    assert entries[0].est_cpu_s == pytest.approx(wall, rel=0.5)    # the measured rate, not the benchmark's


def test_a_run_held_by_a_live_worker_is_shown_running(synthetic, tmp_path, monkeypatch):
    _tiny_plan(monkeypatch)
    import subprocess
    first = queue.plan(results_dir=tmp_path)[0]
    lock = queue.RunLock(first.key)
    assert lock.acquire()
    try:   # a worker does not count its own lock as another's ...
        assert queue.plan(results_dir=tmp_path)[0].state == "pending"
    finally:
        lock.release()
    other = subprocess.Popen(["sleep", "60"])          # ... but a live other process's lock is a running run
    try:
        lock.path.parent.mkdir(parents=True, exist_ok=True)
        lock.path.write_text(str(other.pid))
        e = queue.plan(results_dir=tmp_path)[0]
        assert e.state == "running" and str(other.pid) in e.device
        assert not queue.RunLock(first.key).acquire()
    finally:
        other.kill()
        other.wait()
    assert queue.plan(results_dir=tmp_path)[0].state == "pending"     # its worker is gone: stale
    lock.path.unlink(missing_ok=True)


def test_the_cpu_default_is_one_single_threaded_worker_per_core(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 2)
    assert queue.default_layout(torch.device("cpu"), None, None) == (2, 1)
    assert queue.default_layout(torch.device("cpu"), 1, None) == (1, 2)
    assert queue.default_layout(torch.device("cpu"), 1, 1) == (1, 1)
    assert queue.default_layout(torch.device("cuda"), None, None) == (1, None)


def test_h200_estimates_use_a_lease_s_measured_speed_where_there_is_one():
    cfg = experiments.get("A-classifier").config
    _, model = queue.estimate(cfg, {})
    assert model == pytest.approx(10_000 * queue.KERNELS_PER_STEP["resnet_bottleneck"] * queue.LAUNCH_S
                                  * (1 + queue.EVAL_OVERHEAD["classifier"]))
    _, measured = queue.estimate(cfg, {}, {"A-classifier": 50.0})
    assert measured == pytest.approx(200.0)
    _, shared = queue.estimate(experiments.get("B-ablation-2").config, {}, {"B-classifier": 25.0})
    assert shared == pytest.approx(400.0)


def test_a_generator_s_estimate_includes_its_feature_run_until_that_is_finished(tmp_path, monkeypatch):
    monkeypatch.delenv("CIFAR_NB_DATA", raising=False)
    speeds, h200 = queue.cpu_speeds(), queue.h200_speeds()
    gens = [e for e in queue.plan(results_dir=tmp_path) if e.experiment == "C-generator"]
    feature = experiments.feature_config(gens[0].config.dataset, experiments.FEATURE_STEPS)
    f_cpu, f_gpu = queue.estimate(feature, speeds, h200)
    g_cpu, g_gpu = queue.estimate(gens[0].config, speeds, h200)
    assert f_cpu > 0 and gens[0].est_cpu_s == pytest.approx(g_cpu + f_cpu)
    assert gens[0].est_h200_s == pytest.approx(g_gpu + f_gpu)
    assert gens[1].est_cpu_s == pytest.approx(g_cpu)             # one feature run per dataset, counted once
    # once the feature run is finished, no generator carries it
    d = artifacts.run_dir(feature, tmp_path)
    artifacts.atomic_write_json(d / "config.json", feature.to_dict())
    artifacts.atomic_write_json(d / "metrics.json", {"test_acc": 0.5})
    gens = [e for e in queue.plan(results_dir=tmp_path) if e.experiment == "C-generator"]
    assert gens[0].est_cpu_s == pytest.approx(g_cpu)


def test_a_finished_gan_is_scored_in_train_mode_once_and_only_with_its_weights(tmp_path, monkeypatch):
    from cifar_nb.engine.queue import entries as qe
    from cifar_nb.engine.queue import worker
    cfg = experiments.get("C-generator").config
    done = qe.Entry("C-generator", 0, 1, True, None, cfg, state="done")
    other = qe.Entry("A-classifier", 0, 2, True, None, experiments.get("A-classifier").config, state="done")
    monkeypatch.setattr(worker, "plan", lambda *a, **k: [done, other])
    calls = []

    def fake_score(c, sampling_mode, results_dir, **kw):
        calls.append((c.experiment, sampling_mode))
        out = artifacts.run_dir(c, results_dir) / "scored" / "10000-samples-train-mode"
        out.mkdir(parents=True)
        (out / "scores.json").write_text("{}")
        return {"fd_cls": 1.0, "kid_mean": 0.001}
    monkeypatch.setattr(runs, "score", fake_score)
    d = artifacts.run_dir(cfg, tmp_path)
    d.mkdir(parents=True)
    assert queue.work(torch.device("cpu"), None, None, results_dir=tmp_path) == 0
    assert calls == []                                  # no weights anywhere: nothing to score
    (d / "generator.pt").write_bytes(b"weights")
    assert queue.work(torch.device("cpu"), 10.0, None, results_dir=tmp_path) == 0
    assert calls == []                                  # too little time left before the deadline
    assert queue.work(torch.device("cpu"), None, None, results_dir=tmp_path) == 0
    assert calls == [("C-generator", "train")]
    assert queue.work(torch.device("cpu"), None, None, results_dir=tmp_path) == 0
    assert calls == [("C-generator", "train")]          # scored once
