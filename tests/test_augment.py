"""Batched augmentation: validation, determinism, and each op against its definition or torchvision."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torchvision.transforms.v2 import functional as TF

from cifar_nb.config import DATASET_SHAPES
from cifar_nb.engine import data
from cifar_nb.engine.augment import AugMix, ColorJitter, GpuAugment, affine, normalize

INFO = data.describe("cifar100")
ALL_OPS = {"hflip": 0.5, "vflip": 0.5, "crop": 4, "pad_mode": "reflect", "crop_p": 0.7, "noise_var": 0.015,
           "noise_p": 0.7, "augmix": True, "rotation": 10,
           "color_jitter": {"brightness": 0.2, "contrast": 0.2, "saturation": 0.2, "hue": 0.1, "p": 0.7},
           "affine": {"degrees": 15, "translate": [0.15, 0.15], "scale": [0.85, 1.15], "shear": 5, "p": 0.7}}


@pytest.fixture(scope="module")
def batch() -> torch.Tensor:
    """Real CIFAR-100 images when the sample is there (structure matters for crops and jitter), else noise."""
    sample = Path(os.environ.get("CIFAR_NB_DATA", "/nonexistent")) / "cifar100-sample.npz"
    if sample.is_file():
        with np.load(sample) as z:
            return torch.from_numpy(z["train_images_first"][:48].copy())
    return torch.randint(0, 256, (48, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


def gen(seed=0):
    return torch.Generator().manual_seed(seed)


def pixels(x: torch.Tensor) -> torch.Tensor:
    """Undo normalisation: back to 0..1."""
    mean = torch.tensor(INFO.mean).view(1, -1, 1, 1)
    std = torch.tensor(INFO.std).view(1, -1, 1, 1)
    return x * std + mean


def test_normalize_and_empty_spec(batch):
    x = normalize(batch, INFO)
    assert x.dtype == torch.float32 and x.shape == batch.shape
    expect = (batch.float() / 255 - torch.tensor(INFO.mean).view(1, 3, 1, 1)) / torch.tensor(INFO.std).view(1, 3, 1, 1)
    assert torch.allclose(x, expect, atol=1e-6)
    assert torch.equal(GpuAugment({}, INFO)(batch, gen()), x)
    assert torch.equal(GpuAugment(None, INFO)(batch, gen()), x)
    assert batch.dtype == torch.uint8   # input untouched


@pytest.mark.parametrize("spec, message", [
    ({"hflp": 0.5}, r"unknown augment spec key\(s\) hflp; valid keys: hflip, vflip, channel_shuffle, crop, pad_mode"),
    ({"affine": {"degree": 5}}, r"unknown augment affine key\(s\) degree; valid keys: degrees, translate"),
    ({"color_jitter": {"bright": 0.2}}, r"unknown augment color_jitter key\(s\) bright; valid keys: brightness"),
    ({"hflip": 1.5}, "augment hflip must be a probability in"),
    ({"crop": 2.5}, "augment crop is the padding in pixels"),
    ({"pad_mode": "wrap"}, "augment pad_mode must be 'reflect' or 'zeros'"),
    ({"noise_var": -1}, "augment noise_var must be a variance"),
    ({"affine": {"translate": [2, 0]}}, "augment affine translate must be two fractions"),
    ({"affine": {"shear": [1, 2, 3]}}, "augment affine shear must be a number, or 2 or 4 numbers"),
    ({"rotation": [10, -10]}, r"augment rotation must be a number or a \[min, max\] pair"),
    ({"augmix": "yes"}, "augment augmix must be true/false, 'reference' or a dict"),
    ({"augmix": {"width": 2}}, r"unknown augment augmix key\(s\) width; valid keys: severity"),
    ({"augmix": {"severity": 0}}, "severity must be between"),                       # v2.AugMix's own check
    ({"augmix": {"fill": 128}}, "the batched AugMix does bilinear or nearest interpolation with fill=None"),
    ({"augmix": {"impl": "fast"}}, "augment impl must be 'batched' or 'reference'"),
    ({"color_jitter": {"hue": 0.2, "impl": "loop"}}, "augment impl must be 'batched' or 'reference'"),
])
def test_bad_spec_is_one_clear_error(spec, message):
    with pytest.raises(ValueError, match=message):
        GpuAugment(spec, INFO)


def test_wants_uint8(batch):
    with pytest.raises(ValueError, match=r"uint8 \[N,C,H,W\]"):
        GpuAugment({}, INFO)(batch.float(), gen())


def test_every_experiment_spec_is_valid():
    from cifar_nb import experiments
    for name, exp in experiments.REGISTRY.items():
        cfg = exp.config
        GpuAugment(cfg.augment, data.describe(cfg.dataset) if cfg.dataset in DATASET_SHAPES else INFO)


def test_deterministic_per_generator_and_leaves_global_rng(batch):
    aug = GpuAugment(ALL_OPS, INFO)
    state = torch.get_rng_state()
    a, b, c = aug(batch, gen(1)), aug(batch, gen(1)), aug(batch, gen(2))
    assert torch.equal(torch.get_rng_state(), state)
    assert a.dtype == torch.float32 and a.shape == batch.shape and a.isfinite().all()
    assert torch.equal(a, b) and not torch.equal(a, c)
    torch.manual_seed(123)   # the global RNG does not matter either
    assert torch.equal(aug(batch, gen(1)), a)


def test_flips(batch):
    x = normalize(batch, INFO)
    assert torch.equal(GpuAugment({"hflip": 1.0}, INFO)(batch, gen()), x.flip(3))
    assert torch.equal(GpuAugment({"vflip": 1.0}, INFO)(batch, gen()), x.flip(2))
    assert torch.equal(GpuAugment({"hflip": 0.0}, INFO)(batch, gen()), x)
    y = GpuAugment({"hflip": 0.5}, INFO)(batch, gen())
    flipped = [torch.equal(y[i], x[i].flip(2)) for i in range(len(x))]
    kept = [torch.equal(y[i], x[i]) for i in range(len(x))]
    assert all(f or k for f, k in zip(flipped, kept)) and 10 < sum(flipped) < 38


@pytest.mark.parametrize("pad_mode", ["reflect", "zeros"])
def test_crop_is_a_window_of_the_padded_image(batch, pad_mode):
    assert torch.equal(GpuAugment({"crop": 4, "crop_p": 0.0, "pad_mode": pad_mode}, INFO)(batch, gen()),
                       normalize(batch, INFO))
    many = batch.repeat(4, 1, 1, 1)
    y = pixels(GpuAugment({"crop": 4, "pad_mode": pad_mode}, INFO)(many, gen()))
    padded = F.pad(many.float() / 255, (4, 4, 4, 4), mode="reflect" if pad_mode == "reflect" else "constant")
    dys, dxs = set(), set()
    for i in range(len(y)):
        windows = padded[i].unfold(1, 32, 1).unfold(2, 32, 1)                  # [C, 9, 9, 32, 32]
        match = (windows - y[i][:, None, None]).abs().amax((0, 3, 4)) < 1e-5   # [9, 9]
        assert match.any(), f"image {i} is no 32x32 window of its padded image"
        if match.sum() == 1:   # unambiguous
            dy, dx = match.nonzero()[0].tolist()
            dys.add(dy)
            dxs.add(dx)
    assert dys == dxs == set(range(9))   # offsets vary per image, over the whole range


def test_noise(batch):
    x = normalize(batch, INFO)
    y = GpuAugment({"noise_var": 0.015, "noise_p": 0.5}, INFO)(batch, gen())
    d = pixels(y) - pixels(x)
    noisy = d.flatten(1).abs().amax(1) > 1e-4
    assert 10 < noisy.sum() < 38
    assert abs(d[noisy].var().item() - 0.015) < 0.001 and abs(d[noisy].mean().item()) < 0.002
    assert d[~noisy].abs().max() < 1e-5


def test_affine_matches_torchvision_per_image(batch):
    x = batch.float() / 255
    g = gen(3)
    n = len(x)
    u = lambda lo, hi: torch.rand(n, generator=g, dtype=torch.float64) * (hi - lo) + lo
    angle, tx, ty, scale, shx, shy = u(-30, 30), u(-6, 6).round(), u(-6, 6).round(), u(0.8, 1.2), u(-8, 8), u(-4, 4)
    ours = affine(x, angle, tx, ty, scale, shx, shy)
    for i in range(n):
        ref = TF.affine(x[i], angle=float(angle[i]), translate=[float(tx[i]), float(ty[i])], scale=float(scale[i]),
                        shear=[float(shx[i]), float(shy[i])])
        assert torch.equal(ours[i], ref), i
        rot = TF.rotate(x[i], angle=float(angle[i]))
        zero = torch.zeros(1, dtype=torch.float64)
        assert torch.equal(affine(x[i:i + 1], -angle[i:i + 1], zero, zero, zero + 1, zero, zero)[0], rot), i


def test_affine_and_rotation_sample_per_image(batch):
    x = normalize(batch, INFO)
    # translation only: each image moves by whole pixels of its own
    y = GpuAugment({"affine": {"translate": [0.15, 0.15]}}, INFO)(batch, gen())
    assert not torch.equal(y, x) and len({tuple(y[i, 0, 10:20, 10].tolist()) for i in range(len(y))}) > 40
    assert torch.equal(GpuAugment({"affine": {"degrees": 30, "p": 0.0}}, INFO)(batch, gen()), x)
    r = GpuAugment({"rotation": 15}, INFO)(batch, gen())
    assert r.shape == x.shape and not torch.equal(r, x)


@pytest.mark.parametrize("impl", ["batched", "reference"])
def test_color_jitter_per_image(batch, impl):
    x = batch.float() / 255
    y = pixels(GpuAugment({"color_jitter": {"brightness": 0.4, "impl": impl}}, INFO)(batch, gen()))
    # brightness alone scales each image by its own factor in [0.6, 1.4] (then clips at 1)
    bright = x < 0.5
    factor = torch.stack([(y[i][bright[i]] / x[i][bright[i]].clamp_min(1e-3))[x[i][bright[i]] > 0.1].median()
                          for i in range(len(x))])
    assert ((factor > 0.59) & (factor < 1.41)).all() and factor.std() > 0.1
    same = GpuAugment({"color_jitter": {"brightness": 0.4, "hue": 0.2, "p": 0.0, "impl": impl}}, INFO)
    assert torch.allclose(pixels(same(batch, gen())), x, atol=1e-5)


@pytest.mark.parametrize("impl", ["batched", "reference"])
def test_augmix_per_image_on_uint8(batch, impl):
    y = pixels(GpuAugment({"augmix": {"impl": impl}}, INFO)(batch, gen()))
    levels = y * 255
    assert torch.allclose(levels, levels.round(), atol=1e-3)   # AugMix ran on uint8 pixels
    changed = (y - batch.float() / 255).flatten(1).abs().amax(1) > 0
    assert changed.sum() > 40
    z = pixels(GpuAugment({"augmix": {"severity": 1, "mixture_width": 2, "impl": impl}}, INFO)(batch, gen()))
    assert not torch.equal(z, y)


def test_reference_impls_are_deterministic_and_leave_global_rng(batch):
    aug = GpuAugment({"augmix": "reference", "color_jitter": {"hue": 0.1, "p": 0.5, "impl": "reference"}}, INFO)
    state = torch.get_rng_state()
    a, b, c = aug(batch, gen(1)), aug(batch, gen(1)), aug(batch, gen(2))
    assert torch.equal(torch.get_rng_state(), state)
    assert torch.equal(a, b) and not torch.equal(a, c)


# --- the batched AugMix against torchvision, op by op and draw by draw ---------------------------------------

def tv_op(am: AugMix, img, name, magnitude):
    """torchvision's own AugMix op dispatch (a private method of v2.AugMix: the reference we mean to match)."""
    return am.ref._apply_image_or_video_transform(img, name, magnitude, interpolation=am.ref.interpolation,
                                                  fill=am.ref._fill)


@pytest.mark.parametrize("subset", [True, False])
def test_augmix_each_op_equals_torchvision(batch, subset):
    """Every op, every magnitude bin (severity 10) and sign, per-image magnitudes in one call: bit-identical."""
    am = AugMix(severity=10)
    am.subset = subset
    n, (h, w) = len(batch), batch.shape[-2:]
    for i, name in enumerate(am.ops):
        bins = am.magnitudes[i](10, h, w)
        mags = torch.zeros(n, dtype=torch.float64) if bins is None else bins.double()[torch.arange(n) % 10]
        if am.signed[i]:
            mags = torch.where(torch.arange(n) % 20 >= 10, -mags, mags)
        out = am.step(batch, torch.full((n,), i), mags)
        assert out.dtype == torch.uint8 and out.shape == batch.shape
        for k in range(n):
            assert torch.equal(out[k], tv_op(am, batch[k], name, float(mags[k]))), (name, float(mags[k]))
        if name not in ("AutoContrast", "Equalize"):
            assert not torch.equal(out, batch), name


@pytest.mark.parametrize("args", [{}, {"severity": 10, "mixture_width": 2, "chain_depth": 2, "alpha": 0.5},
                                  {"all_ops": False, "interpolation": "nearest", "chain_depth": 1}])
def test_augmix_replays_torchvision(batch, args):
    # torchvision 0.26 (the GPU machines') accepts only the enum; newer ones also take the string
    from torchvision.transforms import InterpolationMode
    if "interpolation" in args:
        args = dict(args, interpolation=InterpolationMode(args["interpolation"]))
    """Draw with the batched sampler, then replay each image's draws through torchvision's ops and v2.AugMix's
    mixing formula (m0 * x + sum_i w_i * chain_i in float32, cast to uint8): the same bits."""
    am = AugMix(**args)
    params = am.sample(len(batch), 32, 32, gen(5), "cpu")
    ours = am.apply(batch, params)
    am.subset = not am.subset   # the torch.where path gives the same bits
    assert torch.equal(am.apply(batch, params), ours)
    n, (depth, rows), weights = len(batch), params["op"].shape, params["weights"]
    assert rows == n * (weights.shape[1] - 1)
    for i in range(n):
        mix = weights[i, 0] * batch[i]
        for c in range(weights.shape[1] - 1):
            aug = batch[i]
            for d in range(depth):
                op = int(params["op"][d, c * n + i])
                if op >= 0:
                    aug = tv_op(am, aug, am.ops[op], float(params["mag"][d, c * n + i]))
            mix.add_(weights[i, c + 1] * aug)
        assert torch.equal(ours[i], mix.to(torch.uint8)), i


def test_augmix_sampling_follows_v2():
    am = AugMix()   # severity 3, width 3, depth 1..3, alpha 1, all ops
    n = 4000
    p = am.sample(n, 32, 32, gen(0), "cpu")
    op, mag, weights = p["op"], p["mag"], p["weights"]
    assert op.shape == mag.shape == (3, 3 * n) and weights.shape == (n, 4)
    # depth uniform on 1..3: the first op always there, the second in 2/3 of the chains, the third in 1/3
    assert (op[0] >= 0).all() and ((op[1] < 0) <= (op[2] < 0)).all()
    assert abs((op[1] >= 0).float().mean() - 2 / 3) < 0.02 and abs((op[2] >= 0).float().mean() - 1 / 3) < 0.02
    counts = torch.bincount(op[op >= 0], minlength=len(am.ops)).float()
    assert len(am.ops) == 13 and (counts / counts.mean() - 1).abs().max() < 0.1
    for i, name in enumerate(am.ops):   # magnitudes from the first `severity` bins of v2's table, signed where v2 is
        m = mag[op == i]
        bins = am.magnitudes[i](10, 32, 32)
        allowed = torch.zeros(1) if bins is None else bins[:3].double()
        assert torch.isin(m.abs(), allowed).all(), name
        assert len(set(m.abs().tolist())) == len(set(allowed.tolist())), name
        negative = (m < 0).float().mean()
        assert (abs(negative - 0.5 * (1 - (allowed == 0).float().mean())) < 0.06) if am.signed[i] else negative == 0
    assert (mag[op < 0] == 0).all()
    # Beta(1, 1) for the original, Dirichlet(1, 1, 1) of the rest over the chains
    assert (weights >= 0).all() and torch.allclose(weights.sum(1), torch.ones(n), atol=1e-5)
    assert abs(weights[:, 0].mean() - 0.5) < 0.02 and abs(weights[:, 0].var() - 1 / 12) < 0.01
    assert (weights[:, 1:].mean(0) - 0.5 / 3).abs().max() < 0.02


def test_augmix_trivial_draws_and_mixing(batch):
    am = AugMix()
    n = len(batch)
    p = am.sample(n, 32, 32, gen(1), "cpu")
    # all weight on the original: the image itself, whatever the chains
    assert torch.equal(am.apply(batch, dict(p, weights=torch.eye(4)[[0] * n])), batch)
    # no ops: every chain is the image, the mix is v2's float sum truncated (so within one level)
    none = dict(p, op=torch.full_like(p["op"], -1))
    w = p["weights"].view(n, 4, 1, 1, 1)
    expect = w[:, 0] * batch
    for c in range(3):
        expect.add_(w[:, c + 1] * batch)
    out = am.apply(batch, none)
    assert torch.equal(out, expect.to(torch.uint8)) and (batch.int() - out.int()).abs().max() <= 1
    # severity 1 draws only the first bin: magnitude (+-)0 for the signed ops, which then leave images as they are
    keep = torch.tensor([i for i in range(len(am.ops)) if am.signed[i]])
    assert len(keep) == 9 and all(am.magnitudes[i](10, 32, 32)[0] == 0 for i in keep.tolist())
    zero = torch.where(torch.arange(n) % 2 == 0, 0.0, -0.0).double()
    assert torch.equal(am.step(batch, keep.repeat(n)[:n], zero), batch)


def test_augmix_batched_deterministic_and_like_reference(batch):
    am = AugMix()
    a, b, c = am(batch, gen(1)), am(batch, gen(1)), am(batch, gen(2))
    assert a.dtype == torch.uint8 and a.shape == batch.shape
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert (a != batch).flatten(1).any(1).float().mean() > 0.9   # chains differ per image
    # in distribution like v2.AugMix image by image: the mean change of a pixel, over a few seeds
    ref = GpuAugment({"augmix": "reference"}, INFO)
    ours = GpuAugment({"augmix": True}, INFO)
    change = lambda aug: torch.stack([(pixels(aug(batch, gen(s))) * 255 - batch).abs().mean() for s in range(4)])
    r, o = change(ref), change(ours)
    assert 0.75 < o.mean() / r.mean() < 1.33, (r, o)


# --- the batched ColorJitter against v2.functional.adjust_* ----------------------------------------------------

@pytest.mark.parametrize("subset", [True, False])
def test_color_jitter_equals_torchvision_per_image(batch, subset):
    cj = ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.2, p=0.8)
    cj.subset = subset
    x = batch.float() / 255
    p = cj.sample(len(x), gen(3), "cpu")
    out = cj.apply(x, p)
    adjust = (TF.adjust_brightness, TF.adjust_contrast, TF.adjust_saturation, TF.adjust_hue)
    for i in range(len(x)):
        ref = x[i]
        if p["on"][i]:
            for j in p["order"][i].tolist():   # this image's own order
                ref = adjust[j](ref, float(p["factors"][i, j]))
        assert torch.allclose(out[i], ref, atol=2e-6), i
    assert 0.6 < p["on"].float().mean() < 0.95 and not torch.equal(out, x)


def test_color_jitter_sampling():
    cj = ColorJitter(brightness=0.2, contrast=[0.5, 1.0], hue=0.1, p=0.5)
    p = cj.sample(4000, gen(0), "cpu")
    f = p["factors"]
    assert (torch.sort(p["order"], 1).values == torch.arange(4)).all()        # permutations
    assert len({tuple(o) for o in p["order"].tolist()}) == 24                  # all 24 orders occur
    assert f[:, 0].min() >= 0.8 and f[:, 0].max() <= 1.2 and abs(f[:, 0].mean() - 1) < 0.01
    assert f[:, 1].min() >= 0.5 and f[:, 1].max() <= 1.0 and (f[:, 3].abs() <= 0.1).all()
    assert abs(p["on"].float().mean() - 0.5) < 0.03
    # no saturation asked for: it is never applied
    x = torch.rand(8, 3, 8, 8, generator=gen(1))
    grey = torch.full((8, 3, 8, 8), 0.5)
    only_sat = ColorJitter(saturation=None, hue=None, brightness=None, contrast=None)
    assert torch.equal(only_sat(x, gen()), x) and torch.equal(only_sat(grey, gen()), grey)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_on_cuda(batch):
    aug = GpuAugment(ALL_OPS, INFO)
    xb = batch.cuda()
    a = aug(xb, torch.Generator("cuda").manual_seed(0))
    assert a.is_cuda and a.dtype == torch.float32 and a.shape == batch.shape
    assert torch.equal(a, aug(xb, torch.Generator("cuda").manual_seed(0)))
    assert aug(xb, gen(0)).is_cuda   # a CPU generator works too
    assert torch.equal(GpuAugment({"hflip": 1.0}, INFO)(xb, gen()).cpu(), normalize(batch, INFO).flip(3))
