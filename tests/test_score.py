"""Scoring a finished generator again from its weights (runs.score, `python -m cifar_nb score`), without retraining.

Tiny GAN and DDPM runs on the fake dataset of test_gan, with a fixed random conv net as the FD-cls feature
network and an empty torch hub (FID and LPIPS then say they are unavailable, as offline).
"""
from __future__ import annotations

import json

import pytest
import torch
from test_diffusion import tiny_cfg as tiny_ddpm
from test_gan import E_TRICKS, tiny_data  # noqa: F401  (tiny_data is a fixture)
from test_gan import tiny_cfg as tiny_gan

from cifar_nb import cli, experiments
from cifar_nb.engine import artifacts, runs, runtime


@pytest.fixture(autouse=True)
def own_checkpoint_store(tmp_path, monkeypatch):
    """Each test its own store: a tiny run trains to the same bytes in every test, and a kept copy with the run's
    sha256 is put back into any results folder, so a shared store would hand one test another's weights."""
    monkeypatch.setenv("CIFAR_NB_CHECKPOINTS", str(tmp_path / "store"))

TRAINING_FILES = ("config.json", "metrics.json", "history.csv", "env.json", "samples_random.png", "samples.npz")


@pytest.mark.parametrize("make", [lambda: tiny_gan(train={**E_TRICKS, "fid_samples": 16}), lambda: tiny_ddpm()],
                         ids=["gan", "ddpm"])
def test_scoring_twice_gives_the_training_scores_and_leaves_training_artifacts_alone(make, tiny_data, stub_features,
                                                                                     tmp_path):
    cfg = make()
    res = runs.run(cfg, results_dir=tmp_path, progress=False)
    before = {f: (res.run_dir / f).read_bytes() for f in TRAINING_FILES}
    a = runs.score(cfg, results_dir=tmp_path, progress=False)
    b = runs.score(cfg, results_dir=tmp_path, progress=False)
    for key in ("fd_cls", "kid_mean", "kid_std", "nn_pixel_mean"):
        assert a[key] == b[key], key
        # the same scoring code, samples and feature net as training used: the same numbers
        assert a[key] == pytest.approx(res.metrics[key], rel=1e-6), key
    assert a["fid"] is None and a["fid_status"] and a["samples"] == cfg.train["fid_samples"]
    assert a["torch_fidelity_version"] and "test split" in a["fd_cls_reference"] and len(a["generator_sha256"]) == 64
    out = res.run_dir / "scored" / f"{a['samples']}-samples"
    assert json.loads((out / "scores.json").read_text())["fd_cls"] == a["fd_cls"]
    assert (out / "samples_random.png").exists()
    assert {f: (res.run_dir / f).read_bytes() for f in TRAINING_FILES} == before
    # the score records how it sampled, as a training run's env.json records how it trained (a DDPM samples in
    # fp32 whatever it trained in)
    assert a["runtime"]["precision"] in ("fp32", "bf16-autocast") and a["runtime"]["threads"] >= 1
    assert a["runtime"]["channels_last"] == res.env["runtime"]["channels_last"]
    fp32 = runs.score(cfg, results_dir=tmp_path, progress=False, runtime=runtime.Runtime())
    assert fp32["runtime"]["precision"] == "fp32" and not fp32["runtime"]["channels_last"]


def test_scoring_refuses_clearly_without_a_run_or_its_weights(tiny_data, stub_features, tmp_path, capsys):
    cfg = tiny_gan(train={**E_TRICKS, "fid_samples": 16})
    with pytest.raises(ValueError, match="no finished run.*train it first"):
        runs.score(cfg, results_dir=tmp_path, progress=False)
    res = runs.run(cfg, results_dir=tmp_path, progress=False)
    (res.run_dir / "generator.pt").unlink()
    artifacts.kept_weights_path(cfg, "generator.pt", tmp_path).unlink()     # nor in the checkpoint store
    with pytest.raises(FileNotFoundError, match="not kept in git.*lease unpack"):
        runs.score(cfg, results_dir=tmp_path, progress=False)
    assert not (res.run_dir / "scored").exists()
    with pytest.raises(ValueError, match="not a generator"):
        runs.score(experiments.get("A-classifier").config, results_dir=tmp_path, progress=False)
    # a classifier is evaluated on a held-out split instead, and only once it has been trained
    assert cli.main(["score", "A-classifier", "--results-dir", str(tmp_path)]) == cli.EXIT_USER_ERROR
    assert "no finished run" in capsys.readouterr().err
    assert cli.main(["score", "ours-classifier", "--variant", "no such variant", "--results-dir", str(tmp_path)]) \
        == cli.EXIT_USER_ERROR
    assert "labels: full recipe" in capsys.readouterr().err


def test_a_gan_with_an_ema_is_scored_from_its_live_weights_on_request(tiny_data, stub_features, tmp_path):
    ema = tiny_gan(train={"fid_samples": 16, "ema": 0.9})
    res = runs.run(ema, results_dir=tmp_path, progress=False)
    live = runs.score(ema, results_dir=tmp_path, progress=False, weights="live")
    average = runs.score(ema, results_dir=tmp_path, progress=False)
    assert average["fd_cls"] == pytest.approx(res.metrics["fd_cls"], rel=1e-6)     # the average: as training
    assert live["fd_cls"] != average["fd_cls"] and live["weights"] == "live"
    out = res.run_dir / "scored" / "16-samples-live-weights" / "scores.json"
    assert json.loads(out.read_text())["fd_cls"] == live["fd_cls"]
    plain = tiny_gan(train={"fid_samples": 16})                   # no EMA: the live weights are the only ones
    runs.run(plain, results_dir=tmp_path, progress=False)
    with pytest.raises(ValueError, match="holds no live generator"):
        runs.score(plain, results_dir=tmp_path, progress=False, weights="live")
    with pytest.raises(ValueError, match="for a GAN trained with an EMA"):
        runs.score(tiny_ddpm(), results_dir=tmp_path, progress=False, weights="live")


def test_train_mode_sampling_uses_batch_statistics_and_leaves_the_model_alone(tiny_data, stub_features, tmp_path):
    from cifar_nb.engine.train import gan
    cfg = tiny_gan(train={**E_TRICKS, "fid_samples": 16})
    res = runs.run(cfg, results_dir=tmp_path, progress=False)
    assert res.metrics["sampling_mode"] == "eval"
    weights = res.run_dir / "generator.pt"
    ev, tr = (gan.load_handle(cfg, weights, "cpu", mode) for mode in ("eval", "train"))
    z = torch.randn(8, *ev.latent_shape, generator=torch.Generator().manual_seed(0))
    ev.batch_size = tr.batch_size = 8
    assert not torch.allclose(ev.decode(z), tr.decode(z))            # the two modes compute different images
    # eval mode: an image depends on its latent only; train mode: on the batch it is drawn in
    assert torch.allclose(ev.decode(z)[:4], ev.decode(z[:4]), atol=1e-6)
    assert not torch.allclose(tr.decode(z)[:4], tr.decode(z[:4]), atol=1e-4)
    stats = {k: v.clone() for k, v in ev.model.generator.state_dict().items() if "running" in k}
    tr.decode(z)
    assert all(torch.equal(stats[k], v) for k, v in tr.model.generator.state_dict().items() if "running" in k)
    scores = runs.score(cfg, results_dir=tmp_path, progress=False, sampling_mode="train")
    assert scores["sampling_mode"] == "train" and scores["fd_cls"] != res.metrics["fd_cls"]
    assert (res.run_dir / "scored" / "16-samples-train-mode" / "scores.json").exists()
    with pytest.raises(ValueError, match="sampling_mode"):
        gan.load_handle(cfg, weights, "cpu", "test")


def test_a_fake_weights_file_goes_through_torch_fidelitys_fid_path_to_its_weights_check(
        tiny_data, stub_features, tmp_path, monkeypatch):
    # FID needs a generator of CIFAR-100, its full test set and the Inception weights. Here the first two are
    # faked (10,000 blank images said to be CIFAR-100) and the weights are a file of junk: the score must get
    # as far as torch-fidelity building its Inception network from that file, and say what is wrong with it.
    import cifar_nb.engine.data
    from cifar_nb.engine.evaluate import fid, generator
    from test_gan import _ImageSet
    cfg = tiny_gan(train={**E_TRICKS, "fid_samples": 16})
    runs.run(cfg, results_dir=tmp_path, progress=False)
    info = type(tiny_data.info)(**{**vars(tiny_data.info), "display_name": "CIFAR-100 (faked)", "standin": False})
    test_set = _ImageSet(images=torch.zeros(10_000, 3, 32, 32, dtype=torch.uint8),
                         labels=torch.zeros(10_000, dtype=torch.long), info=info)
    monkeypatch.setattr(cifar_nb.engine.data, "load",
                        lambda name, split, *a, **k: test_set if split == "test" else tiny_data)
    monkeypatch.setattr(generator, "is_cifar100", lambda info: True)
    monkeypatch.setattr(fid, "is_cifar100", lambda info: True)
    reached = []
    real_load = torch.load
    monkeypatch.setattr(torch, "load", lambda f, *a, **k: reached.append(str(f)) or real_load(f, *a, **k))
    junk = tmp_path / fid.INCEPTION_FILE
    junk.write_bytes(b"not torch-fidelity's weights" * 64)
    s = runs.score(cfg, results_dir=tmp_path, progress=False, fid_weights=str(junk))
    assert str(junk) in reached                       # torch-fidelity itself opened the file
    assert s["fid"] is None and "could not load the Inception weights" in s["fid_status"]
    assert "UnpicklingError" in s["fid_status"] and fid.INCEPTION_URL in s["fid_status"]
    assert s["fd_cls"] is not None                    # the other scores are unaffected


def test_weights_lost_with_the_work_tree_come_back_from_the_checkpoint_store(tiny_data, stub_features, tmp_path):
    # the work tree is laid anew from git each session and weights are git-ignored; the store keeps a copy
    cfg = tiny_gan(train={**E_TRICKS, "fid_samples": 16})
    res = runs.run(cfg, results_dir=tmp_path, progress=False)
    weights = res.run_dir / "generator.pt"
    original = weights.read_bytes()
    assert res.env["weights_sha256"]["generator.pt"] == artifacts.sha256_file(weights)
    weights.unlink()
    a = runs.score(cfg, results_dir=tmp_path, progress=False)
    assert weights.read_bytes() == original and a["fd_cls"] == pytest.approx(res.metrics["fd_cls"], rel=1e-6)
    # a store copy that is not the one this run wrote is never put back
    weights.unlink()
    kept = artifacts.kept_weights_path(cfg, "generator.pt", tmp_path)
    kept.write_bytes(original[:-8] + b"tampered")
    with pytest.raises(FileNotFoundError, match="not kept in git"):
        runs.score(cfg, results_dir=tmp_path, progress=False)
    assert not weights.exists()


def test_weights_kept_for_another_clone_come_back_when_they_are_the_run_s_own(tiny_data, stub_features, tmp_path):
    """The same run committed in two clones of the project (two results folders) on one machine: the weights one
    clone trained are put back into the other's folder, because their sha256 is the one the run recorded."""
    import shutil
    cfg = tiny_gan(train={**E_TRICKS, "fid_samples": 16})
    res = runs.run(cfg, results_dir=tmp_path / "a", progress=False)
    other = tmp_path / "b" / res.run_dir.relative_to(tmp_path / "a")
    shutil.copytree(res.run_dir, other, ignore=shutil.ignore_patterns("*.pt"))     # what git carries
    b = artifacts.load_complete(cfg, tmp_path / "b")
    assert b is not None and (other / "generator.pt").read_bytes() == (res.run_dir / "generator.pt").read_bytes()
    # a copy whose sha256 is not the run's stays where it is
    (other / "generator.pt").unlink()
    env = json.loads((other / "env.json").read_text())
    env["weights_sha256"]["generator.pt"] = "0" * 64
    (other / "env.json").write_text(json.dumps(env))
    artifacts.load_complete(cfg, tmp_path / "b")
    assert not (other / "generator.pt").exists()
