"""Part I classifiers and their training loop, on tiny data.

The runs use a synthetic dataset (coloured blobs whose colour and place depend on the class), served by
patching data.load/describe, so the tests need no files and "the loss goes down" is a property of the
loop, not of luck. One test runs on the real offline stand-in when the data root is there.
"""
from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from cifar_nb import experiments
from cifar_nb.budget import BudgetError, count_params
from cifar_nb.config import dataset_shape
from cifar_nb.engine import artifacts, data, runs
from cifar_nb.engine.runtime import Runtime
from cifar_nb.engine.train.classifier import evaluate
from cifar_nb.models import build_for_config, create_model

SYN = "synthetic-blobs"
SYN20 = "synthetic-blobs-20"     # AddNIST's 20 classes
SIZE = 16                        # small images keep the runs fast; every net pools globally
CLASSIFIERS = ["A-classifier", "B-classifier", "C-classifier", "E-classifier"]

# model -> (constructor args, count we pin, count the report claims)
PINNED = {
    "resnet_bottleneck": ({}, 99_405, 99_440),
    "dsconv_resnet": ({}, 99_706, 99_703),
    "densenet": ({}, 99_735, 99_735),
    "mbconv_se": (dict(num_classes=20, image_size=28), 98_720, 98_720),
}


def blobs(name: str, split: str) -> data.ImageSet:
    """Class k: a square of colour k at place k on a noisy background. Learnable in a few dozen steps."""
    k, size = (20 if name == SYN20 else 10), SIZE
    n = {"train": 256, "test": 128, "val": 64}[split]
    g = torch.Generator().manual_seed({"train": 1, "test": 2, "val": 3}[split])
    labels = torch.arange(n) % k
    labels = labels[torch.randperm(n, generator=g)]
    palette = torch.rand(k, 3, generator=torch.Generator().manual_seed(0)) * 255
    x = torch.rand(n, 3, size, size, generator=g) * 80
    for i, c in enumerate(labels.tolist()):
        r, col = (c * 3) % (size - 6), (c * 5) % (size - 6)
        x[i, :, r:r + 6, col:col + 6] = palette[c].view(3, 1, 1)
    info = blobs_info(name)
    return data.ImageSet(x.round().clamp(0, 255).to(torch.uint8), labels, [str(i) for i in range(k)], info)


def blobs_info(name: str) -> data.DatasetInfo:
    k, size = (20 if name == SYN20 else 10), SIZE
    return data.DatasetInfo(name, f"{name} (synthetic test data)", k, size, 3, True, (0.3,) * 3, (0.3,) * 3,
                            splits=("train", "val", "test"))


@pytest.fixture
def synthetic(monkeypatch):
    real_load, real_describe = data.load, data.describe

    def load(dataset="cifar100", split="train", root=None, device="cpu", download=None):
        return blobs(dataset, split).to(device) if dataset in (SYN, SYN20) else real_load(dataset, split, root,
                                                                                          device, download)

    def describe(dataset="cifar100", root=None):
        return blobs_info(dataset) if dataset in (SYN, SYN20) else real_describe(dataset, root)

    monkeypatch.setattr(data, "load", load)
    monkeypatch.setattr(data, "describe", describe)


def tiny(name: str, steps=24, **changes):
    exp = experiments.get(name)
    dataset = SYN20 if exp.config.dataset == "addnist" else SYN
    return exp.make_config(dataset=dataset, steps=steps, batch_size=32, **{"eval_every": 12, **changes})


def go(cfg, tmp_path, **kw):
    return runs.run(cfg, device="cpu", results_dir=tmp_path, progress=False, **kw)


def same(a: dict, b: dict) -> bool:
    drop = ("wall_time_s",)
    return {k: v for k, v in a.items() if k not in drop} == {k: v for k, v in b.items() if k not in drop}


# ---------------------------------------------------------------------------------------------
# the networks

@pytest.mark.parametrize("model", sorted(PINNED))
def test_param_count_pinned_and_close_to_report(model):
    args, pinned, claimed = PINNED[model]
    n = count_params(create_model(model, **args))
    assert n == pinned
    assert n <= 100_000
    assert abs(n - claimed) <= 0.01 * claimed


@pytest.mark.parametrize("name", CLASSIFIERS)
def test_experiment_builds_the_pinned_net_on_its_report_dataset(name):
    exp = experiments.get(name)
    shape = dataset_shape(exp.config.dataset)
    n = count_params(build_for_config(exp.config, **shape))
    assert n == PINNED[exp.config.model][1]
    assert exp.claimed_params == PINNED[exp.config.model][2]


@pytest.mark.parametrize("model", sorted(PINNED))
def test_nets_take_28_and_32_pixel_images(model):
    for size, k in ((28, 20), (32, 100)):
        net = create_model(model, num_classes=k, image_size=size).eval()
        assert net(torch.randn(2, 3, size, size)).shape == (2, k)


# ---------------------------------------------------------------------------------------------
# the loop

@pytest.mark.slow
@pytest.mark.parametrize("name", CLASSIFIERS)
def test_smoke_run_learns(name, synthetic, tmp_path):
    # The training loss must fall. Eval-mode accuracy is not asserted: 24 steps are too few for batch
    # norm's running statistics to catch up with weights that move this fast.
    res = go(tiny(name), tmp_path)
    m, hist = res.metrics, res.history
    assert [r["step"] for r in hist] == [12, 24]
    assert hist[-1]["stream_loss"] < 0.95 * hist[0]["stream_loss"]
    for key in ("train_acc", "test_acc", "train_loss", "test_loss", "best_test_acc", "best_test_step"):
        assert key in m and m[key] is not None
    assert 0 <= m["train_acc"] <= 1 and m["best_test_acc"] >= m["test_acc"]
    assert json.loads((res.run_dir / "metrics.json").read_text())["test_acc"] == m["test_acc"]


def test_weights_file_is_the_final_model(synthetic, tmp_path):
    # fp32 eager on both sides: under the CPU's fast path (bf16 autocast, torch.compile) the run's own
    # evaluation and this eager re-evaluation differ in the last digits, which says nothing about the file.
    cfg = tiny("B-classifier", steps=4)
    res = go(cfg, tmp_path, runtime=Runtime())
    assert res.env["runtime"]["precision"] == "fp32" and not res.env["runtime"]["compile"]
    net = build_for_config(cfg, 10, SIZE, 3)
    net.load_state_dict(torch.load(res.run_dir / "weights.pt", weights_only=True))
    loss, acc = evaluate(net, blobs(SYN, "test"), blobs_info(SYN))
    assert acc == res.metrics["test_acc"] and loss == pytest.approx(res.metrics["test_loss"], rel=1e-6)


def test_same_seed_same_metrics_other_seed_other_metrics(synthetic, tmp_path):
    cfg = tiny("A-classifier", steps=8, eval_every=4)
    a = go(cfg, tmp_path / "a").metrics
    b = go(cfg, tmp_path / "b").metrics
    c = go(cfg.replace(seed=1), tmp_path / "c").metrics
    assert same(a, b)
    assert not same(a, c)


@pytest.mark.slow
@pytest.mark.parametrize("name,stop", [("B-ablation-2", 11), ("E-classifier", 8)])
def test_interrupted_and_resumed_equals_uninterrupted(name, stop, synthetic, tmp_path):
    # B-ablation-2 has dropout (global RNG) and stops mid-interval; E has OneCycleLR and label smoothing
    cfg = tiny(name, steps=16, eval_every=8)
    whole = go(cfg, tmp_path / "whole")
    with pytest.raises(runs.RunInterrupted):
        go(cfg, tmp_path / "cut", stop_at_step=stop)
    d = artifacts.run_dir(cfg, tmp_path / "cut")
    assert artifacts.checkpoint_path(cfg, tmp_path / "cut").exists() and not (d / "metrics.json").exists()
    resumed = go(cfg, tmp_path / "cut")
    assert same(resumed.metrics, whole.metrics)
    assert resumed.history == whole.history
    assert not artifacts.checkpoint_path(cfg, tmp_path / "cut").exists()


@pytest.mark.slow
def test_a_checkpoint_in_the_format_before_the_shared_loop_still_resumes(synthetic, tmp_path):
    # the loop skeleton (train/loop.py) keeps the interval sums as {"sums", "count"}; a checkpoint written
    # before it held them as run_loss/run_hits/run_n, and such a checkpoint (the CPU queue's) must resume
    cfg = tiny("B-ablation-2", steps=16, eval_every=8)
    whole = go(cfg, tmp_path / "whole")
    with pytest.raises(runs.RunInterrupted):
        go(cfg, tmp_path / "cut", stop_at_step=11)
    ckpt = artifacts.checkpoint_path(cfg, tmp_path / "cut")
    state = torch.load(ckpt, weights_only=False)
    sums, count = state.pop("sums"), state.pop("count")
    assert count == 3 and set(sums) == {"loss", "hits"}
    del state["step"]
    torch.save({**state, "run_loss": sums["loss"], "run_hits": sums["hits"], "run_n": count}, ckpt)
    resumed = go(cfg, tmp_path / "cut")
    assert same(resumed.metrics, whole.metrics) and resumed.history == whole.history


@pytest.mark.parametrize("change", [dict(steps=10_001), dict(model_args={"init_channels": 64})])
def test_over_budget_refused_before_writing(change, synthetic, tmp_path):
    cfg = tiny("C-classifier").replace(**change)
    with pytest.raises(BudgetError):
        go(cfg, tmp_path)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())


@pytest.mark.parametrize("i", [1, 2, 3, 4])
def test_b_ablations_run(i, synthetic, tmp_path):
    cfg = tiny(f"B-ablation-{i}", steps=2, eval_every=2)
    net = build_for_config(cfg)    # CIFAR-100 shape
    assert count_params(net) == PINNED["dsconv_resnet"][1]     # dropout adds no parameters
    assert any(isinstance(m, torch.nn.Dropout) for m in net.modules()) == (i == 2)
    m = go(cfg, tmp_path).metrics
    assert math.isfinite(m["train_loss"]) and math.isfinite(m["test_loss"])


def test_validation_split(synthetic, tmp_path):
    cfg = tiny("B-classifier", steps=4, eval_every=2).replace(train={"val_size": 64, "eval_split": "val"})
    res = go(cfg, tmp_path)
    m = res.metrics
    assert m["n_val"] == 64 and m["n_train"] == 256 - 64 and m["n_test"] == 128
    assert "val_acc" in res.history[0] and "test_acc" not in res.history[0]
    assert {"val_acc", "best_val_acc", "best_val_step", "test_acc", "test_loss"} <= set(m)


def test_a_finished_classifier_is_evaluated_again_on_a_held_out_split_as_its_training_evaluated_it(
        synthetic, tmp_path, monkeypatch, capsys):
    # our recipe: an EMA of the weights, the whitening stem and test-time views, all of which the evaluation of the
    # saved weights has to rebuild to give back the numbers training measured
    cfg = tiny("ours-classifier", steps=6, eval_every=6)
    held = cfg.replace(seed=1, train={**cfg.train, "val_size": 64, "eval_split": "val"})
    res = go(held, tmp_path)
    training_files = {f: (res.run_dir / f).read_bytes() for f in ("metrics.json", "history.csv", "weights.pt")}
    val = runs.score_classifier(held, "val", results_dir=tmp_path)
    test = runs.score_classifier(held, "test", results_dir=tmp_path)
    assert val["n_val"] == 64 and val["val_acc"] == res.metrics["val_acc"]
    assert val["val_loss"] == pytest.approx(res.metrics["val_loss"], rel=1e-6)
    assert test["test_acc"] == res.metrics["test_acc"] and test["n_test"] == 128
    assert json.loads((res.run_dir / "scored" / "val-split" / "scores.json").read_text())["val_acc"] == val["val_acc"]
    assert {f: (res.run_dir / f).read_bytes() for f in training_files} == training_files
    # trained on the whole training split: the dataset's own validation split is the held-out one
    whole = go(cfg, tmp_path)
    own = runs.score_classifier(cfg, "val", results_dir=tmp_path)
    assert own["n_val"] == 64 and 0 <= own["val_acc"] <= 1 and own["run"] == whole.config.hash
    # ... and where it has none, nothing held out exists: a clear refusal, nothing written
    described = data.describe
    monkeypatch.setattr(data, "describe", lambda d="cifar100", root=None: dataclasses.replace(
        described(d, root), splits=("train", "test")))
    (whole.run_dir / "scored").rename(tmp_path / "kept")
    with pytest.raises(ValueError, match="no validation split of its own"):
        runs.score_classifier(cfg, "val", results_dir=tmp_path)
    assert not (whole.run_dir / "scored").exists()
    with pytest.raises(ValueError, match="no finished run.*train it first"):
        runs.score_classifier(cfg.replace(seed=5), "val", results_dir=tmp_path)
    (whole.run_dir / "weights.pt").unlink()
    artifacts.kept_weights_path(cfg, "weights.pt", tmp_path).unlink(missing_ok=True)
    with pytest.raises(FileNotFoundError, match="not kept in git"):
        runs.score_classifier(cfg, "test", results_dir=tmp_path)


def test_bad_train_key_is_one_clear_error(synthetic, tmp_path):
    with pytest.raises(ValueError, match="label_smoothing"):
        go(tiny("B-classifier", steps=2).replace(train={"label_smothing": 0.1}), tmp_path)


@pytest.mark.slow
def test_runs_on_the_offline_standin(data_root, tmp_path):
    """End to end on real images: the CLI's path (experiment config, dataset override, runs.run)."""
    if not (data_root / data.ALIASES["cifar10-jpeg"]).exists():
        pytest.skip(f"{data.ALIASES['cifar10-jpeg']} is not in {data_root}")
    cfg = experiments.get("A-classifier").make_config(dataset="cifar10-jpeg", steps=4, batch_size=32, eval_every=4)
    cfg = cfg.replace(train={"train_eval_size": 256})
    res = runs.run(cfg, device="cpu", data_root=data_root, results_dir=tmp_path, progress=False)
    m = res.metrics
    assert m["params"] == PINNED["resnet_bottleneck"][1] - 90 * 161   # 10 classes instead of 100
    assert m["n_test"] == 10_000 and m["n_train_eval"] == 256
    assert 0 <= m["test_acc"] <= 1 and math.isfinite(m["train_loss"])
    assert (res.run_dir / "weights.pt").exists() and (res.run_dir / "history.csv").exists()


# ---------------------------------------------------------------------------------------------
# the speed benchmark's two loops (not timed here: only that they still run)

def _benchmark():
    import importlib.util
    from pathlib import Path
    path = Path(__file__).resolve().parent.parent / "benchmarks" / "train_speed.py"
    spec = importlib.util.spec_from_file_location("train_speed", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_benchmark_pil_pipelines_match_every_recipe():
    from PIL import Image
    bench = _benchmark()
    img = Image.fromarray(torch.randint(0, 256, (SIZE, SIZE, 3), dtype=torch.uint8).numpy())
    for name in experiments.names(kind="classifier"):
        exp = experiments.get(name)
        x = bench.pil_transform(exp.config.augment, blobs_info(SYN))(img)
        assert x.dtype == torch.float32 and x.shape == (3, SIZE, SIZE), name


def test_benchmark_loops_run(synthetic):
    bench = _benchmark()
    cfg = tiny("B-ablation-3")
    train_set = blobs(SYN, "train")
    assert bench.time_fast(cfg, train_set, torch.device("cpu"), steps=1, warmup=1, use_compile=False) > 0
    assert bench.time_naive(cfg, train_set, torch.device("cpu"), steps=1, warmup=1, workers=0) > 0
