"""Our own models (issue 16): ours-classifier and ours-generator within the budgets on every dataset, their shapes,
their cost beside the reports' networks, the trainer knobs they brought (weight EMA, flip TTA, data-dependent init,
hinge loss, DiffAugment, G's EMA), that a few steps of each learn, and that a GAN's samples come from its EMA.
Everything runs on tiny data in seconds; nothing here judges accuracy or image quality."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_classifiers import SYN, SYN20, blobs, go, synthetic  # noqa: F401  (synthetic is a fixture)
from test_gan import fake_eval, tiny_data  # noqa: F401  (fixtures)
from torch.utils.flop_counter import FlopCounterMode

from cifar_nb import ablations, budget, experiments
from cifar_nb.config import DATASET_SHAPES, dataset_shape
from cifar_nb.engine import augment, queue, runs
from cifar_nb.engine.augment import diffaug
from cifar_nb.engine.data import known_info
from cifar_nb.engine.runtime import Runtime
from cifar_nb.engine.train import classifier, gan
from cifar_nb.models import build_for_config, create_model

OURS = ("ours-classifier", "ours-generator")
# registry counts (trainable parameters, G + D for the GAN), per dataset
PARAMS = {"ours-classifier": {"cifar100": 93_828, "cifar10": 82_218, "cifar10-jpeg": 82_218, "addnist": 83_508},
          "ours-generator": dict.fromkeys(DATASET_SHAPES, 595_840)}   # report C's DCGAN


# ---------------------------------------------------------------------------------------------
# the registry and the budgets

@pytest.mark.parametrize("name", OURS)
@pytest.mark.parametrize("dataset", sorted(DATASET_SHAPES))
def test_within_budget_on_every_dataset(name, dataset):
    exp = experiments.get(name)
    cfg = exp.make_config(dataset=dataset)
    n = budget.count_params(build_for_config(cfg, **dataset_shape(dataset)))     # what runs.run counts
    assert n == PARAMS[name][dataset]
    budget.check(cfg.kind, n, cfg.steps)                                          # raises if over
    assert n <= exp.budget.max_params and cfg.steps == exp.budget.max_steps


@pytest.mark.parametrize("name", OURS)
def test_registered_as_ours_with_no_claims(name):
    exp = experiments.get(name)
    assert exp.report == experiments.OURS and exp.claims == [] and exp.claimed_params is None
    assert exp.config.dataset == "cifar100" and not exp.out_of_budget
    assert experiments.report_label(exp.report) == "ours (this book)"
    s = exp.summary()
    assert s["within_budget"] and s["report_file"] is None and s["report_title"] == "ours (this book)"
    assert name in experiments.names(report=experiments.OURS)
    if exp.kind == "gan":
        other = experiments.get("C-generator").config.train
        assert exp.config.train["feature_steps"] == other["feature_steps"] == experiments.FEATURE_STEPS
        assert exp.config.steps == 50_000 and "fid_samples" not in exp.config.train   # the default, as the others


# ---------------------------------------------------------------------------------------------
# shapes

@pytest.mark.parametrize("pool_first", [False, True])
@pytest.mark.parametrize("size,k", [(32, 100), (32, 10), (28, 20)])
def test_classifier_forward_shapes(size, k, pool_first):
    net = create_model("ours_classifier", num_classes=k, image_size=size, pool_first=pool_first).eval()
    assert net(torch.randn(3, 3, size, size)).shape == (3, k)
    assert net.features(torch.randn(3, 3, size, size)).shape == (3, net.feature_dim)


def test_pool_first_moves_the_expansion_after_the_pool_with_the_same_weights():
    torch.manual_seed(0)
    per_place = create_model("ours_classifier", num_classes=20, image_size=28).eval()
    pooled = create_model("ours_classifier", num_classes=20, image_size=28, pool_first=True).eval()
    torch.nn.init.normal_(per_place.stages[4].body[1].weight)    # the residual branch on, so the places differ
    per_place.stages[-1][1].weight.data.fill_(30.0)               # the expansion's GELU out of its linear range
    pooled.load_state_dict(per_place.state_dict())            # same parameters, same names: weights load either way
    x = torch.randn(4, 3, 28, 28)
    with torch.no_grad():
        inner = per_place.stages[:-1](per_place.stem(x))                         # [4, 64, 3, 3]
        want = per_place.fc(per_place.stages[-1](inner.mean((2, 3), keepdim=True)).flatten(1))
        assert torch.allclose(pooled(x), want, atol=1e-5)
        # GELU(BN(conv)) does not commute with the mean: the two heads are different functions of the same weights
        assert (per_place.features(x) - pooled.features(x)).abs().max() > 0.05


@pytest.mark.parametrize("size", [32, 28])
def test_generator_output_shape_and_range_and_discriminator_logits(size):
    torch.manual_seed(0)
    m = create_model("ours_gan", num_classes=20, image_size=size)
    m.generator.train()
    x = m.generator(5 * torch.randn(16, m.latent_dim))        # large latents push tanh to its ends
    assert x.shape == (16, 3, size, size) and x.min() >= -1 and x.max() <= 1 and x.std() > 0.1
    assert m.sample(4).shape == (4, 3, size, size)
    assert m.discriminator(x).shape == (16,)
    assert budget.count_params(m) == budget.count_params(m.generator) + budget.count_params(m.discriminator)
    # every layer of D is spectrally normalised
    convs = [mod for mod in m.discriminator.modules() if isinstance(mod, (torch.nn.Conv2d, torch.nn.Linear))]
    assert convs and all(hasattr(mod, "parametrizations") for mod in convs)


# ---------------------------------------------------------------------------------------------
# cost: FLOPs of convolutions and matrix products, forward + backward

def _flops(fn) -> int:
    with FlopCounterMode(display=False) as fc:
        fn()
    return fc.get_total_flops()


def _classifier_flops_per_image(name: str, dataset: str, batch: int = 8) -> float:
    net = build_for_config(experiments.get(name).config, **dataset_shape(dataset))
    shape = dataset_shape(dataset)
    x = torch.randn(batch, 3, shape["image_size"], shape["image_size"])
    y = torch.randint(shape["num_classes"], (batch,))
    return _flops(lambda: F.cross_entropy(net(x), y).backward()) / batch


def test_classifier_costs_at_most_two_and_a_half_times_report_a_per_step():
    a = _classifier_flops_per_image("A-classifier", "cifar10-jpeg")
    for dataset in ("cifar100", "cifar10-jpeg", "addnist"):
        ours = _classifier_flops_per_image("ours-classifier", dataset)
        assert ours <= 2.5 * a, (dataset, ours / a)
        assert ours <= 0.06e9                 # ~0.05 GFLOP per image, forward + backward
    assert _classifier_flops_per_image("ours-classifier", "cifar10-jpeg") / a == pytest.approx(2.12, abs=0.05)


def _gan_step_flops(name: str, batch: int = 16, changes: dict | None = None) -> float:
    """FLOPs of one training step (D update + G update) at the experiment's batch size, measured at `batch` and
    scaled (the step's FLOPs are proportional to the batch, but for the spectral norms' few matrix-vector
    products, which scaling overstates: ours is over-, not under-counted)."""
    cfg = experiments.get(name).config
    if changes:                                # an ablation variant: {label: FIELD.KEY changes}
        cfg = ablations.config(name, next(iter(changes.values())), cfg.steps, cfg.dataset)
    info = known_info("cifar10-jpeg")
    s = gan.setup(cfg, info, torch.device("cpu"))
    x = torch.randint(0, 256, (batch, 3, 32, 32), dtype=torch.uint8)
    return _flops(lambda: gan.train_step(s, x, 0, torch.Generator().manual_seed(0))) * cfg.batch_size / batch


def test_generator_step_costs_at_most_one_and_a_half_times_report_c():
    ratio = _gan_step_flops("ours-generator") / _gan_step_flops("C-generator")
    # C's network at C's batch: the same convolutions (DiffAugment's elementwise work is not counted)
    assert ratio <= 1.5 and ratio == pytest.approx(1.0, abs=0.01)
    first = _gan_step_flops("ours-generator", changes=dict(ablations.variants("ours-generator")[-1:])
                            ) / _gan_step_flops("C-generator")
    assert first <= 1.5 and first == pytest.approx(1.41, abs=0.05)           # the first design


# ---------------------------------------------------------------------------------------------
# the classifier trainer's new knobs

def test_classifier_knobs_are_checked():
    cfg = experiments.get("ours-classifier").config
    assert classifier._train_knobs(cfg) == cfg.train
    for bad in ({"ema": 1.0}, {"ema": "yes"}, {"tta": "vflip"}, {"data_init": -1}, {"data_init": 2.5}):
        with pytest.raises(ValueError):
            classifier._train_knobs(cfg.replace(train=bad))
    with pytest.raises(ValueError, match="init_from_data"):
        classifier.Loop(experiments.get("A-classifier").config.replace(dataset=SYN, batch_size=8,
                                                                       train={"data_init": 8}),
                        blobs(SYN, "train"), "cpu", runtime=Runtime())


def test_auto_flips_follow_the_dataset():
    cifar, addnist = known_info("cifar10-jpeg"), known_info("addnist")
    assert cifar.mirror_invariant and not addnist.mirror_invariant
    assert augment.GpuAugment({"hflip": "auto"}, cifar).hflip == 0.5
    assert augment.GpuAugment({"hflip": "auto"}, addnist).hflip == 0.0
    assert augment.flip_probability(0.3, addnist) == 0.3          # a number is a number, on any dataset
    with pytest.raises(ValueError):
        augment.flip_probability("sometimes", cifar)


def test_flip_tta_is_the_mean_of_the_logits_of_an_image_and_its_mirror():
    torch.manual_seed(0)
    net = create_model("ours_classifier", num_classes=10, image_size=16).eval()
    ims = blobs(SYN, "test")
    loss, acc = classifier.evaluate(net, ims, ims.info, batch_size=50, tta=True)
    x = augment.normalize(ims.images, ims.info)
    with torch.no_grad():
        logits = (net(x) + net(x.flip(3))) / 2
    assert loss == pytest.approx(F.cross_entropy(logits, ims.labels).item(), rel=1e-5)
    assert acc == (logits.argmax(1) == ims.labels).float().mean().item()


def test_channel_shuffle_follows_the_dataset_and_permutes_each_image_s_channels():
    cifar, addnist = known_info("cifar10-jpeg"), known_info("addnist")
    assert addnist.channel_order_invariant and not cifar.channel_order_invariant
    assert augment.GpuAugment({"channel_shuffle": "auto"}, addnist).channel_shuffle == 1.0
    assert augment.GpuAugment({"channel_shuffle": "auto"}, cifar).channel_shuffle == 0.0
    x = torch.tensor([10, 20, 30]).view(1, 3, 1, 1).expand(1200, 3, 2, 2).float()
    out = augment.shuffle_channels(x, 1.0, torch.Generator().manual_seed(0), x.device)
    orders = [tuple(o) for o in out[:, :, 0, 0].long().tolist()]
    assert all(sorted(o) == [10, 20, 30] for o in orders)                      # a permutation of each image's own
    assert (out == out[:, :, :1, :1]).all()                                    # whole channels move, not pixels
    counts = {o: orders.count(o) for o in set(orders)}
    assert len(counts) == 6 and min(counts.values()) > 150                     # all 3! orders, about equally
    half = augment.shuffle_channels(x, 0.5, torch.Generator().manual_seed(0), x.device)[:, :, 0, 0]
    kept = (half == torch.tensor([10., 20., 30.])).all(1).float().mean().item()
    assert 0.5 + 0.5 / 6 - 0.06 < kept < 0.5 + 0.5 / 6 + 0.06                   # p = 0.5, and 1/6 of shuffles keep it


def test_channel_shuffle_switched_off_by_the_dataset_draws_nothing():
    """So on photographs the recipe with channel_shuffle "auto" trains draw for draw as the one without it (what
    lets artifacts adopt the runs made before the key existed)."""
    cifar = known_info("cifar10-jpeg")
    x = torch.randint(0, 256, (64, 3, 8, 8), dtype=torch.uint8)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    spec = {"crop": 2, "pad_mode": "reflect", "hflip": "auto"}
    a = augment.GpuAugment({**spec, "channel_shuffle": "auto"}, cifar)(x, g1)
    b = augment.GpuAugment(spec, cifar)(x, g2)
    assert torch.equal(a, b) and torch.equal(g1.get_state(), g2.get_state())


def test_symmetries_tta_averages_the_views_the_dataset_declares():
    import dataclasses
    import itertools
    cifar, addnist = known_info("cifar10-jpeg"), known_info("addnist")
    assert augment.tta_views("symmetries", cifar) == augment.tta_views("auto", cifar) == [(False, None), (True, None)]
    assert augment.tta_views("symmetries", addnist) == [(False, o) for o in itertools.permutations(range(3))]
    assert augment.tta_views("auto", addnist) == augment.tta_views(None, cifar) == [(False, None)]
    with pytest.raises(ValueError, match="tta"):
        classifier._train_knobs(experiments.get("ours-classifier").config.replace(train={"tta": "rotations"}))
    torch.manual_seed(0)
    net = create_model("ours_classifier", num_classes=10, image_size=16).eval()
    ims = blobs(SYN, "test")
    info = dataclasses.replace(ims.info, mirror_invariant=False, channel_order_invariant=True)
    views = augment.tta_views("symmetries", info)
    loss, acc = classifier.evaluate(net, ims, info, batch_size=50, tta=views)
    x = augment.normalize(ims.images, info)
    with torch.no_grad():
        logits = sum(net(x[:, list(o)]) for o in itertools.permutations(range(3))) / 6
    assert loss == pytest.approx(F.cross_entropy(logits, ims.labels).item(), rel=1e-5)
    assert acc == (logits.argmax(1) == ims.labels).float().mean().item()


def test_a_run_from_before_the_channel_symmetries_is_adopted_only_where_they_change_nothing(synthetic, tmp_path,
                                                                                          monkeypatch):
    import dataclasses
    import json

    from cifar_nb.engine import artifacts, data
    from test_classifiers import blobs_info, same
    cfg = experiments.get("ours-classifier").make_config(dataset=SYN, steps=6, batch_size=32, eval_every=3)
    # the recipe's ablation "expansion before the pool": the first design's head, with today's channel keys
    cfg = cfg.replace(train={**cfg.train, "ema": 0.5, "train_eval_size": 64}, model_args={"pool_first": False})
    legacy = cfg.replace(augment={k: v for k, v in cfg.augment.items() if k != "channel_shuffle"},
                         train={**cfg.train, "tta": "auto"}, model_args={})
    assert cfg.augment["channel_shuffle"] == "auto" and cfg.train["tta"] == "symmetries" and legacy.hash != cfg.hash
    real = data.known_info
    symmetric = {"on": False}
    monkeypatch.setattr(data, "known_info", lambda d: dataclasses.replace(
        blobs_info(d), channel_order_invariant=symmetric["on"]) if d == SYN else real(d))
    old = go(legacy, tmp_path / "a", runtime=Runtime())
    # where the channels' order matters, the new keys change the training: nothing is adopted
    symmetric["on"] = True
    assert artifacts.load_complete(cfg, tmp_path / "a") is None and old.run_dir.exists()
    symmetric["on"] = False
    found = artifacts.load_complete(cfg, tmp_path / "a")
    assert found is not None and found.run_dir.name == cfg.hash and not old.run_dir.exists()
    assert same(found.metrics, old.metrics) and found.history == old.history
    env = json.loads((found.run_dir / "env.json").read_text())
    assert env["adopted_from"]["config_hash"] == legacy.hash and "same computation" in env["adopted_from"]["why"]
    assert "model_args.pool_first = False" in env["adopted_from"]["why"]
    assert json.loads((found.run_dir / "config.json").read_text()) == cfg.to_dict()
    # ... and it is the same computation: the new config trained from scratch gives the same numbers
    fresh = go(cfg, tmp_path / "b", runtime=Runtime())
    assert same(fresh.metrics, old.metrics)
    # a run that holds only some of the new keys (adopted once already) is found too
    partial = legacy.replace(model_args={"pool_first": False})
    go(partial, tmp_path / "c", runtime=Runtime())
    assert artifacts.load_complete(cfg, tmp_path / "c").env["adopted_from"]["config_hash"] == partial.hash
    # the recipe itself (the expansion after the pool) is another computation: nothing to adopt
    recipe = cfg.replace(model_args={"pool_first": True})
    assert artifacts.load_complete(recipe, tmp_path / "b") is None


def test_the_stem_is_initialised_to_whiten_3x3_patches():
    torch.manual_seed(0)
    net = create_model("ours_classifier", num_classes=10, image_size=16)
    x = F.avg_pool2d(torch.randn(200, 3, 18, 18), 3, stride=1)       # correlated pixels, like an image's
    x = x * torch.tensor([1.0, 2.0, 0.5]).view(1, 3, 1, 1) + 0.3
    net.init_from_data(x)
    conv = net.stem[0]
    out = F.conv2d(x, conv.weight, conv.bias)                        # interior patches, as init_from_data saw
    half = conv.out_channels // 2
    feats = out[:, :half].permute(0, 2, 3, 1).reshape(-1, half).double()
    assert feats.mean(0).abs().max() < 1e-4                          # centred by the bias
    cov = torch.cov(feats.T)
    assert torch.allclose(cov, torch.eye(half, dtype=cov.dtype), atol=0.02)   # whitened (eps aside)
    assert torch.allclose(out[:, half:], -out[:, :half], atol=1e-5)  # and the negatives


def test_a_few_steps_lower_the_classifier_loss_and_the_ema_is_what_is_evaluated():
    cfg = experiments.get("ours-classifier").make_config(dataset=SYN, steps=40, batch_size=32, eval_every=40)
    cfg = cfg.replace(train={**cfg.train, "ema": 0.8, "data_init": 64})
    train = blobs(SYN, "train")
    loop = classifier.Loop(cfg, train, "cpu", runtime=Runtime())
    x, y = augment.normalize(train.images[:128], train.info), train.labels[:128]

    def loss_of(net):
        net.eval()
        with torch.no_grad():
            out = F.cross_entropy(net(x), y).item()
        net.train()
        return out
    before = loss_of(loop.model)
    for _ in range(cfg.steps):
        loop.step()
    assert loss_of(loop.model) < 0.7 * before
    assert loop.eval_model is loop.ema.module and loop.tta == [(False, None), (True, None)]   # flip TTA
    live = dict(loop.model.named_parameters())
    assert any(not torch.equal(p, live[k]) for k, p in loop.ema.module.named_parameters())
    assert loop.evaluate(train) == classifier.evaluate(loop.ema.module, train, train.info, tta=True)


def test_ours_classifier_runs_end_to_end_and_saves_the_evaluated_weights(synthetic, tmp_path):
    cfg = experiments.get("ours-classifier").make_config(dataset=SYN20, steps=6, batch_size=32, eval_every=3)
    cfg = cfg.replace(train={**cfg.train, "ema": 0.5, "train_eval_size": 64})
    res = go(cfg, tmp_path, runtime=Runtime())
    assert [r["step"] for r in res.history] == [3, 6]
    net = build_for_config(cfg, 20, 16, 3)
    net.load_state_dict(torch.load(res.run_dir / "weights.pt", weights_only=True))
    test = blobs(SYN20, "test")
    # the saved weights are the ones scored: the EMA, with flip TTA (the synthetic set is mirror-invariant)
    assert classifier.evaluate(net, test, test.info, tta=True) == (res.metrics["test_loss"], res.metrics["test_acc"])


def test_ours_classifier_resumes_to_the_same_metrics(synthetic, tmp_path):
    cfg = experiments.get("ours-classifier").make_config(dataset=SYN, steps=6, batch_size=32, eval_every=3)
    cfg = cfg.replace(train={**cfg.train, "ema": 0.5, "train_eval_size": 64})
    full = go(cfg, tmp_path / "a", runtime=Runtime())
    with pytest.raises(runs.RunInterrupted):
        go(cfg, tmp_path / "b", runtime=Runtime(), stop_at_step=4)
    resumed = go(cfg, tmp_path / "b", runtime=Runtime())
    drop = lambda m: {k: v for k, v in m.items() if k != "wall_time_s"}   # noqa: E731
    assert drop(resumed.metrics) == drop(full.metrics) and resumed.history == full.history


# ---------------------------------------------------------------------------------------------
# DiffAugment

def test_diffaug_policies_parse():
    assert diffaug.parse_policy("color,translation,cutout") == ("color", "translation", "cutout")
    assert diffaug.parse_policy(None) == () == diffaug.parse_policy("")
    for bad in ("colour", "color,color", ",", ["flip"]):
        with pytest.raises(ValueError):
            diffaug.parse_policy(bad)


@pytest.mark.parametrize("op", diffaug.POLICIES)
def test_every_diffaug_op_is_differentiable(op):
    """Exact gradients (torch.autograd.gradcheck, float64) through each op with its random draws held fixed:
    D's gradient reaches G through the augmentation."""
    x = torch.rand(3, 3, 8, 8, dtype=torch.float64, requires_grad=True) * 2 - 1
    x = x.detach().requires_grad_()
    fn = lambda im: diffaug.OPS[op](im, torch.Generator().manual_seed(1))   # noqa: E731
    assert torch.autograd.gradcheck(fn, (x,), eps=1e-6, atol=1e-5)
    fn(x).sum().backward()
    assert x.grad.abs().sum() > 0
    # and through the whole policy, from a generator's output back to its weights
    g_net = torch.nn.Conv2d(3, 3, 1)
    out = diffaug.diff_augment(torch.tanh(g_net(x.detach().float())), diffaug.parse_policy("color,translation,cutout"),
                               torch.Generator().manual_seed(0))
    out.square().sum().backward()
    assert g_net.weight.grad.abs().sum() > 0


@pytest.mark.parametrize("op", diffaug.POLICIES)
def test_each_image_s_channels_get_one_transform_and_a_seed_repeats_it(op):
    g = torch.Generator().manual_seed(3)
    one = torch.rand(16, 1, 16, 16) * 2 - 1
    x = one.expand(16, 3, 16, 16).contiguous()                  # three equal channels
    y = diffaug.OPS[op](x, g)
    assert torch.allclose(y[:, 0], y[:, 1]) and torch.allclose(y[:, 0], y[:, 2])
    assert torch.equal(y, diffaug.OPS[op](x, torch.Generator().manual_seed(3)))
    assert not torch.equal(y, diffaug.OPS[op](x, torch.Generator().manual_seed(4)))


def test_translation_shifts_whole_images_by_at_most_an_eighth_and_fills_zeros():
    x = torch.arange(1, 1 + 2 * 3 * 16 * 16, dtype=torch.float32).view(2, 3, 16, 16)
    y = diffaug.translation(x, torch.Generator().manual_seed(0))
    for i in range(2):
        found = []
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                shifted = torch.zeros_like(x[i])
                src = x[i][:, max(0, -dy):16 - max(0, dy), max(0, -dx):16 - max(0, dx)]
                shifted[:, max(0, dy):16 - max(0, -dy), max(0, dx):16 - max(0, -dx)] = src
                found.append(torch.equal(shifted, y[i]))
        assert sum(found) == 1


def test_cutout_zeroes_one_square_of_half_the_side():
    y = diffaug.cutout(torch.ones(64, 3, 16, 16), torch.Generator().manual_seed(0))
    assert set(y.unique().tolist()) <= {0.0, 1.0}
    zero = y[:, 0] == 0
    rows, cols = zero.any(2).sum(1), zero.any(1).sum(1)
    assert (zero.sum((1, 2)) == rows * cols).all()                     # a rectangle ...
    assert (rows <= 8).all() and (cols <= 8).all() and (rows >= 4).all() and (cols >= 4).all()
    assert (rows == 8).any() and (zero.sum((1, 2)) < 64).any()          # ... of 8x8, clipped at the edges


# ---------------------------------------------------------------------------------------------
# the GAN trainer's new knobs

def test_gan_knobs_default_to_today_and_are_checked():
    for name in ("A-generator", "C-generator", "E-generator"):
        o = gan.options(experiments.get(name).config)
        assert o["loss"] == "bce" and o["diffaug"] is None and o["ema"] is None
    cfg = experiments.get("ours-generator").config
    for bad in ({"loss": "wasserstein"}, {"loss": "hinge", "real_label": 0.9}, {"diffaug": "rotate"},
                {"ema": 1.5}, {"d_lr_mult": 0}, {"d_lr_mult": "4"}):
        with pytest.raises(ValueError):
            gan.options(cfg.replace(train={**cfg.train, **bad}))


def test_the_discriminator_s_spectral_norm_can_be_switched_off_for_the_ablation():
    from cifar_nb.models.ours_gan import OursGAN
    on, off = OursGAN(10, 32), OursGAN(10, 32, d_spectral_norm=False)
    assert budget.count_params(on) == budget.count_params(off) == 951_580
    assert any(hasattr(m, "parametrizations") for m in on.discriminator.modules())
    assert not any(hasattr(m, "parametrizations") for m in off.discriminator.modules())
    assert off.discriminator(torch.randn(2, 3, 32, 32)).shape == (2,)


def test_two_time_scale_updates_give_d_its_multiple_of_g_s_learning_rate():
    cfg = experiments.get("ours-generator").make_config(dataset="cifar10-jpeg", steps=10)
    info = known_info("cifar10-jpeg")
    same = gan.setup(cfg, info, torch.device("cpu"), Runtime())
    assert same.opt_d.param_groups[0]["lr"] == same.opt_g.param_groups[0]["lr"] == cfg.optimizer["lr"]
    ttur = cfg.replace(optimizer={**cfg.optimizer, "lr": 1e-4}, train={**cfg.train, "d_lr_mult": 4.0})
    s = gan.setup(ttur, info, torch.device("cpu"), Runtime())
    assert s.opt_g.param_groups[0]["lr"] == 1e-4 and s.opt_d.param_groups[0]["lr"] == pytest.approx(4e-4)
    assert s.opt_d.param_groups[0]["betas"] == s.opt_g.param_groups[0]["betas"]


def test_the_discriminator_s_hinge_loss_falls_on_fixed_real_and_fake_batches():
    torch.manual_seed(0)
    m = create_model("ours_gan", num_classes=10, image_size=16)
    real = torch.rand(16, 3, 16, 16) * 2 - 1
    real[:, :, 4:12, 4:12] = 0.8                                        # a pattern G does not make yet
    with torch.no_grad():
        fake = m.generator(torch.randn(16, m.latent_dim))
    opt = torch.optim.Adam(m.discriminator.parameters(), lr=2e-3, betas=(0.5, 0.999))
    policy = diffaug.parse_policy("color,translation,cutout")
    losses = []
    for step in range(25):
        g = torch.Generator().manual_seed(step)
        d = m.discriminator
        loss = F.relu(1 - d(diffaug.diff_augment(real, policy, g))).mean() + \
            F.relu(1 + d(diffaug.diff_augment(fake, policy, g))).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert np.mean(losses[-5:]) < 0.8 * np.mean(losses[:5])


def _tiny_ours_gan(steps=4, **train):
    cfg = experiments.get("ours-generator").config
    return cfg.replace(experiment="ours-gan-unit", steps=steps, batch_size=8, eval_every=20,
                       train={**cfg.train, "fid_samples": 6, "log_every": 2, **train})


def test_a_gan_step_with_every_knob_updates_d_g_and_g_s_ema(tiny_data):
    cfg = _tiny_ours_gan()
    s = gan.setup(cfg, tiny_data.info, torch.device("cpu"))
    before = {k: v.clone() for k, v in s.model.state_dict().items()}
    ema_before = {k: v.clone() for k, v in s.ema.module.state_dict().items()}
    for step in range(3):
        stats = gan.train_step(s, tiny_data.images[:8], step, torch.Generator().manual_seed(step))
        assert all(torch.isfinite(v) for v in stats.values())
    after = s.model.state_dict()
    for part in ("generator.", "discriminator."):
        assert any(not torch.equal(before[k], after[k]) for k in before if k.startswith(part)), part
    ema = s.ema.module.state_dict()
    assert any(not torch.equal(ema_before[k], ema[k]) for k in ema)          # the average moved ...
    live = s.model.generator.state_dict()
    assert any(not torch.equal(live[k], ema[k]) for k in ema if ema[k].is_floating_point())   # ... behind G


def test_ours_generator_samples_and_saves_its_ema(tiny_data, fake_eval, tmp_path, monkeypatch):
    seen = {}
    real_evaluate = gan.evaluate

    def spy(ctx, handle, *a, **k):
        seen["G"] = handle.G
        return real_evaluate(ctx, handle, *a, **k)
    monkeypatch.setattr(gan, "evaluate", spy)
    cfg = _tiny_ours_gan()
    res = runs.run(cfg, results_dir=tmp_path, progress=False)
    assert [r["step"] for r in res.history] == [2, 4]
    m = res.metrics
    assert m["sample_shape"] == [6, 3, 32, 32] and -1 <= m["sample_min"] < m["sample_max"] <= 1
    saved = torch.load(res.run_dir / "generator.pt", weights_only=True)
    assert saved["ema"] == 0.999
    # what was sampled and scored is the EMA generator, which is what generator.pt holds as the generator
    sampled = seen["G"].state_dict()
    assert not seen["G"].training
    assert all(torch.equal(sampled[k], saved["state_dict"][k]) for k in sampled)
    assert any(not torch.equal(saved["state_dict"][k], saved["generator_live"][k]) for k in sampled)
    # and re-scoring from the saved weights (runs.score, the queue's train-mode scoring) samples it too
    handle = gan.load_handle(cfg, res.run_dir / "generator.pt", "cpu")
    z = torch.randn(4, handle.latent_shape[0])
    with torch.no_grad(), handle.runtime.autocast("cpu"):     # the same runtime as the handle's decode
        assert torch.equal(handle.decode(z), seen["G"](z).float().clamp(-1, 1))
    # the trained G's own weights, on request, to measure what the average adds
    live = gan.load_handle(cfg, res.run_dir / "generator.pt", "cpu", weights="live").G.state_dict()
    assert all(torch.equal(live[k], saved["generator_live"][k]) for k in live)
    with pytest.raises(ValueError, match="weights must be one of"):
        gan.load_handle(cfg, res.run_dir / "generator.pt", "cpu", weights="ema")


def test_ours_generator_resumes_to_the_same_weights(tiny_data, fake_eval, tmp_path):
    cfg = _tiny_ours_gan()
    full = runs.run(cfg, results_dir=tmp_path / "a", progress=False)
    with pytest.raises(runs.RunInterrupted):
        runs.run(cfg, results_dir=tmp_path / "b", progress=False, stop_at_step=3)
    resumed = runs.run(cfg, results_dir=tmp_path / "b", progress=False)
    assert resumed.history == full.history
    a = torch.load(full.run_dir / "generator.pt", weights_only=True)
    b = torch.load(resumed.run_dir / "generator.pt", weights_only=True)
    for part in ("state_dict", "generator_live", "discriminator"):
        assert all(torch.equal(a[part][k], b[part][k]) for k in a[part]), part


# ---------------------------------------------------------------------------------------------
# the queue

def test_the_queue_runs_ours_on_the_cpu_after_the_reports_and_everywhere_on_a_gpu(tmp_path, monkeypatch):
    monkeypatch.delenv("CIFAR_NB_DATA", raising=False)
    entries = queue.plan(results_dir=tmp_path)
    cpu = [(e.experiment, e.seed, e.config.dataset) for e in entries if e.cpu_plan]
    assert cpu[-3:] == [("ours-classifier", 0, "addnist"), ("ours-classifier", 0, "cifar10-jpeg"),
                        ("ours-generator", 0, "cifar10-jpeg")]
    assert cpu.index(("C-generator", 0, "cifar10-jpeg")) == len(cpu) - 4
    keys = [e.key for e in entries]
    assert len(keys) == len(set(keys))                                       # no run listed twice
    for name in OURS:
        runs_of = {(e.seed, e.config.dataset) for e in entries if e.experiment == name}
        # no data root here: CIFAR-100 and CIFAR-10 become the stand-in
        assert runs_of == {(s, d) for s in (0, 1, 2) for d in ("cifar10-jpeg", "addnist")}, name
    for e in entries:
        if e.experiment in OURS:
            assert e.config == experiments.get(e.experiment).make_config(dataset=e.config.dataset, seed=e.seed)
    monkeypatch.setattr(queue.entries, "_present_datasets", lambda root: {"cifar100", "cifar10", "addnist"})
    entries = queue.plan(results_dir=tmp_path)
    assert {e.config.dataset for e in entries if e.experiment == "ours-classifier"} == set(DATASET_SHAPES)
    assert len({e.key for e in entries}) == len(entries)
