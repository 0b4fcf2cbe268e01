"""Run configs, atomic artifacts, reuse and resume, with a tiny stand-in trainer.

The fake trainer follows the same contract as the real ones (cifar_nb.engine.train.*): it counts steps,
resumes from ctx.load_checkpoint(), checkpoints when ctx.should_checkpoint(step) and stops with
RunInterrupted when ctx.should_stop(step).
"""
import json
import os
from types import SimpleNamespace

import pytest
import torch
import torch.nn as nn

from cifar_nb.budget import BudgetError
from cifar_nb.config import RunConfig
from cifar_nb.engine import artifacts, runs
from cifar_nb.engine.runs import RunInterrupted


def fake_train(ctx):
    cfg = ctx.config
    g = torch.Generator().manual_seed(cfg.seed)
    torch.manual_seed(cfg.seed)     # before the layer: its bias is drawn from the global RNG too
    model = nn.Linear(4, 1)
    nn.init.normal_(model.weight)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    step = 0
    state = ctx.load_checkpoint()
    if state:
        model.load_state_dict(state["model"]); opt.load_state_dict(state["opt"])
        g.set_state(state["rng"]); step = state["step"]
    w_true = torch.tensor([[1.0, -2.0, 0.5, 3.0]])
    while step < cfg.steps:
        x = torch.randn(16, 4, generator=g)
        loss = ((model(x) - x @ w_true.T) ** 2).mean()
        opt.zero_grad(); loss.backward(); opt.step()
        step += 1
        if step % cfg.eval_every == 0:
            ctx.log(step=step, loss=loss.item())
        if ctx.should_checkpoint(step):
            ctx.save_checkpoint({"model": model.state_dict(), "opt": opt.state_dict(), "rng": g.get_state(),
                                 "step": step})
            if ctx.should_stop(step) and step < cfg.steps:
                raise RunInterrupted(f"stopped at step {step}")
    return {"final_loss": loss.item(), "w0": model.weight[0, 0].item()}


@pytest.fixture
def fake(monkeypatch):
    import cifar_nb.engine.data
    import cifar_nb.engine.train
    import cifar_nb.models
    monkeypatch.setattr(cifar_nb.engine.train, "trainer_for", lambda kind: fake_train)
    monkeypatch.setattr(cifar_nb.models, "build_for_config",
                        lambda cfg, *a, **k: nn.Linear(cfg.model_args.get("width", 4), 1))
    monkeypatch.setattr(cifar_nb.engine.data, "describe",
                        lambda name, root=None: SimpleNamespace(num_classes=10, image_size=32, channels=3))


def cfg(**kw):
    base = dict(experiment="unit", kind="classifier", model="fake", steps=40, batch_size=16, eval_every=10)
    return RunConfig(**{**base, **kw})


def test_config_roundtrip_and_hash():
    c = cfg(optimizer={"name": "adam", "lr": 1e-3})
    assert RunConfig.from_dict(json.loads(json.dumps(c.to_dict()))) == c
    assert c.hash == cfg(optimizer={"lr": 1e-3, "name": "adam"}).hash      # key order is irrelevant
    assert c.hash != c.replace(seed=1).hash


@pytest.mark.parametrize("bad", [dict(steps=-5), dict(steps=0), dict(batch_size=0), dict(kind="regressor")])
def test_bad_configs_are_refused(bad):
    with pytest.raises(ValueError):
        cfg(**bad)


def test_unknown_field_is_refused():
    with pytest.raises(ValueError, match="unknown RunConfig fields"):
        RunConfig.from_dict({**cfg().to_dict(), "stepz": 3})


def test_run_writes_complete_artifacts_and_reuses_them(fake, tmp_path):
    c = cfg()
    r = runs.run(c, results_dir=tmp_path, progress=False)
    d = tmp_path / "unit" / c.hash
    assert r.run_dir == d and not r.reused
    for f in ("config.json", "metrics.json", "history.csv", "env.json"):
        assert (d / f).exists(), f
    assert not artifacts.checkpoint_path(c, tmp_path).exists()
    env = json.loads((d / "env.json").read_text())
    assert {"device_name", "torch", "git_commit", "date", "wall_time_s"} <= set(env)
    assert [h["step"] for h in r.history] == [10, 20, 30, 40]
    again = runs.run(c, results_dir=tmp_path, progress=False)
    assert again.reused and again.metrics == r.metrics and again.history == r.history


def test_interrupted_and_resumed_equals_uninterrupted(fake, tmp_path):
    c = cfg()
    whole = runs.run(c, results_dir=tmp_path / "a", progress=False)
    with pytest.raises(RunInterrupted):
        runs.run(c, results_dir=tmp_path / "b", progress=False, stop_at_step=17)
    d = tmp_path / "b" / "unit" / c.hash
    assert artifacts.checkpoint_path(c, tmp_path / "b").exists() and not (d / "metrics.json").exists()
    resumed = runs.run(c, results_dir=tmp_path / "b", progress=False)
    assert resumed.metrics["final_loss"] == whole.metrics["final_loss"]
    assert resumed.metrics["w0"] == whole.metrics["w0"]
    assert resumed.history == whole.history


def test_budget_is_checked_before_anything_is_written(fake, tmp_path):
    with pytest.raises(BudgetError):
        runs.run(cfg(model_args={"width": 200_000}), results_dir=tmp_path, progress=False)
    assert not any(tmp_path.rglob("*"))
    runs.run(cfg(model_args={"width": 200_000}, out_of_budget=True, steps=3, eval_every=1),
             results_dir=tmp_path, progress=False)


def test_atomic_write_leaves_nothing_when_killed(tmp_path, monkeypatch):
    target = tmp_path / "x.json"
    artifacts.atomic_write_json(target, {"a": 1})

    def boom(*a, **k):
        raise KeyboardInterrupt
    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(KeyboardInterrupt):
        artifacts.atomic_write_json(target, {"a": 2})
    assert json.loads(target.read_text()) == {"a": 1}            # old content intact
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]    # no temporary left behind


def test_aggregate_uses_sample_std_over_seeds():
    mk = lambda v: artifacts.RunResult(cfg(), None, {"test_acc": v}, [], {})
    agg = artifacts.aggregate([mk(0.5), mk(0.6), mk(0.7)], "test_acc")
    assert agg["n"] == 3 and abs(agg["mean"] - 0.6) < 1e-12 and abs(agg["std"] - 0.1) < 1e-12
    assert artifacts.aggregate([mk(0.5)], "test_acc")["std"] is None


def test_a_run_that_fails_before_its_first_checkpoint_leaves_nothing(fake, tmp_path, monkeypatch):
    import cifar_nb.engine.train

    def broken(ctx):
        raise ValueError("unknown train key 'lr_warmup'")
    monkeypatch.setattr(cifar_nb.engine.train, "trainer_for", lambda kind: broken)
    with pytest.raises(ValueError, match="lr_warmup"):
        runs.run(cfg(), results_dir=tmp_path, progress=False)
    assert not any(p.is_file() for p in tmp_path.rglob("*"))


@pytest.mark.parametrize("which, text", [("metrics.json", "{not json"), ("config.json", "[1, 2"),
                                         ("env.json", "")])
def test_a_corrupt_run_folder_is_named_with_its_remedy(fake, tmp_path, which, text):
    c = cfg()
    runs.run(c, results_dir=tmp_path, progress=False)
    d = tmp_path / "unit" / c.hash
    (d / which).write_text(text)
    with pytest.raises(artifacts.RunCorrupt, match=rf"{d}.*{which} is not valid JSON.*--force"):
        runs.run(c, results_dir=tmp_path, progress=False)
    assert (d / which).read_text() == text                 # nothing was overwritten
    fresh = runs.run(c, results_dir=tmp_path, progress=False, force=True)
    assert not fresh.reused and json.loads((d / "metrics.json").read_text())


def test_a_hand_edited_run_folder_is_never_reused_or_overwritten(fake, tmp_path):
    c = cfg()
    runs.run(c, results_dir=tmp_path, progress=False)
    d = tmp_path / "unit" / c.hash
    edited = dict(json.loads((d / "config.json").read_text()), batch_size=999)
    (d / "config.json").write_text(json.dumps(edited))
    before = (d / "metrics.json").read_bytes()
    with pytest.raises(artifacts.RunCorrupt, match="edited by hand.*batch_size"):
        runs.run(c, results_dir=tmp_path, progress=False)
    assert (d / "metrics.json").read_bytes() == before


def test_a_truncated_checkpoint_is_named_with_its_remedy(fake, tmp_path):
    c = cfg()
    with pytest.raises(RunInterrupted):
        runs.run(c, results_dir=tmp_path, progress=False, stop_at_step=17)
    ck = artifacts.checkpoint_path(c, tmp_path)
    ck.write_bytes(ck.read_bytes()[:50])
    with pytest.raises(artifacts.RunCorrupt, match=r"cannot be read.*Delete it to start the run over, or pass --force"):
        runs.run(c, results_dir=tmp_path, progress=False)
    assert runs.run(c, results_dir=tmp_path, progress=False, force=True).metrics["final_loss"] is not None


def test_commit_is_dirty_for_code_changes_but_not_for_generated_outputs(tmp_path, monkeypatch):
    import subprocess
    monkeypatch.delenv("CIFAR_NB_COMMIT", raising=False)
    def git(*a):
        subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *a], cwd=tmp_path, check=True,
                       capture_output=True)
    for f in ("code.py", "results/E/1/metrics.json", "book/ch.ipynb", "book/_status.md", "book/intro.md"):
        (tmp_path / f).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f).write_text("0")
    git("init", "-q")
    git("add", "-A")
    git("commit", "-qm", "x")
    sha = artifacts.git_commit(tmp_path)
    assert len(sha) == 40
    for f in ("results/E/1/metrics.json", "book/ch.ipynb", "book/_status.md"):
        (tmp_path / f).write_text("1")
    assert artifacts.git_commit(tmp_path) == sha
    (tmp_path / "book/intro.md").write_text("1")     # prose is source, not output
    assert artifacts.git_commit(tmp_path) == sha + "+dirty"


def test_generator_configs_hash_their_feature_steps_and_adopt_older_checkpoints(tmp_path, monkeypatch):
    from cifar_nb import experiments
    monkeypatch.setenv("CIFAR_NB_CHECKPOINTS", str(tmp_path / "ckpt"))
    cfg = experiments.get("C-generator").config
    assert cfg.train["feature_steps"] == experiments.FEATURE_STEPS
    assert cfg.replace(train=dict(cfg.train, feature_steps=60)).hash != cfg.hash
    assert "feature_steps" not in experiments.get("C-classifier").config.train
    # a checkpoint written under the hash the config had before feature_steps joined it is picked up
    legacy = cfg.replace(train={k: v for k, v in cfg.train.items() if k != "feature_steps"})
    old = artifacts.checkpoint_path(legacy, tmp_path)
    old.parent.mkdir(parents=True)
    old.write_bytes(b"state")
    new = artifacts.checkpoint_path(cfg, tmp_path)
    assert new != old and new.read_bytes() == b"state" and not old.exists()


def test_every_committed_run_is_found_by_its_config_and_full_budget_ones_by_the_registry():
    """Config hashes are pinned: each committed run folder is named by the hash of the config it holds, and a
    full-budget run's config is exactly its experiment's recipe (so the code still finds, not retrains, it)."""
    from pathlib import Path

    from cifar_nb import ablations, experiments
    files = sorted((Path(__file__).resolve().parents[1] / "results").glob("*/*/config.json"))
    assert files, "no committed runs under results/"
    full = 0
    for f in files:
        cfg = RunConfig.from_dict(json.loads(f.read_text()))
        assert cfg.hash == f.parent.name, f"{f}: the config's hash is {cfg.hash}"
        exp = experiments.REGISTRY.get(cfg.experiment)
        if exp is not None and cfg.steps == exp.config.steps:
            # the recipe, or one of its ablations (ablations.py) run at full budget, or one of an earlier recipe's
            variants = [c for base in (None, *ablations.EARLIER_RECIPES.get(cfg.experiment, {}))
                        for _, c in ablations.configs(cfg.experiment, cfg.steps, cfg.dataset, cfg.seed, base=base)] \
                if cfg.experiment in ablations.ABLATIONS else []
            assert cfg == exp.make_config(seed=cfg.seed, dataset=cfg.dataset) or cfg in variants, \
                f"{f} is no longer {cfg.experiment}'s recipe nor one of its or an earlier recipe's ablations"
            full += 1
    assert full >= 4     # A-classifier x3 (on the stand-in) and E-classifier, at least


def test_a_generator_run_finished_before_feature_steps_were_hashed_is_adopted_only_if_its_features_match(tmp_path):
    from cifar_nb import experiments
    base = experiments.get("C-generator").config
    legacy = base.replace(steps=60, train={k: v for k, v in base.train.items() if k != "feature_steps"})
    feat = experiments.FEATURE_CONFIG.replace(dataset=legacy.dataset, steps=60, eval_every=60)
    artifacts.atomic_write_json(tmp_path / "fd-cls-features" / feat.hash / "config.json", feat.to_dict())
    old = artifacts.run_dir(legacy, tmp_path)
    artifacts.atomic_write_json(old / "config.json", legacy.to_dict())
    artifacts.atomic_write_json(old / "metrics.json", {"fd_cls": 1.5, "fd_cls_feature_run": feat.hash})
    # scored with a 60-step feature net: not the run of a config asking for 2,000
    assert artifacts.load_complete(legacy.replace(train=dict(legacy.train, feature_steps=2000)), tmp_path) is None
    assert (old / "metrics.json").exists()
    cfg = legacy.replace(train=dict(legacy.train, feature_steps=60))
    res = artifacts.load_complete(cfg, tmp_path)
    assert res is not None and res.metrics["fd_cls"] == 1.5 and res.run_dir.name == cfg.hash
    assert RunConfig.from_dict(json.loads((res.run_dir / "config.json").read_text())) == cfg
    assert not old.exists() and sorted(p.name for p in res.run_dir.parent.iterdir()) == [cfg.hash]


def test_a_generator_run_gets_the_feature_net_of_its_own_feature_steps(monkeypatch, tmp_path):
    """The orchestrator asks for the feature run that the generator's config names, and loads that one."""
    from cifar_nb import experiments
    from cifar_nb.engine.evaluate import features
    asked = []
    real_run = runs.run

    def fake_run(cfg, **kw):
        asked.append(cfg)
        return SimpleNamespace(config=cfg)

    monkeypatch.setattr(runs, "run", fake_run)
    monkeypatch.setattr(features, "load_feature_net", lambda res, *a, **k: ("net of", res.config.hash))
    gen = experiments.get("C-generator").config
    assert runs.feature_net_for(gen.replace(train=dict(gen.train, feature_steps=60))) == \
        ("net of", experiments.feature_config(gen.dataset, 60).hash)
    assert runs.feature_net_for(gen)[1] == experiments.feature_config(gen.dataset, experiments.FEATURE_STEPS).hash
    assert [c.steps for c in asked] == [60, experiments.FEATURE_STEPS] and real_run is not fake_run
    with pytest.raises(ValueError, match="positive whole number"):
        experiments.feature_config("cifar10-jpeg", 0)


def test_generator_recipe_hashes_are_pinned_after_their_one_change():
    """Issue 13 changed the generators' config hashes once (train.feature_steps joined them). Full-budget runs
    are queued and leased by these hashes, so any further change must be deliberate: update this table and
    say so."""
    from cifar_nb import experiments
    pinned = {"A-generator": "d36919cfeef8", "C-generator": "a55428664d7e", "E-generator": "8ea402fbf9cf",
              "B-generator": "66d530f093af", "B-generator-linear": "f861e9ff162d",
              "B-generator-sigmoid-128": "4bd7ec4c8975"}
    assert {n: experiments.get(n).config.hash for n in pinned} == pinned
    assert experiments.FEATURE_CONFIG.hash == "ecd3b19d5c4e"   # seed 1 since 2026-12-07 (experiments.py says why)
