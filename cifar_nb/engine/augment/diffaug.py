"""Differentiable augmentation for GAN training (DiffAugment: Zhao, Liu, Lin, Zhu and Han 2020, "Differentiable
Augmentation for Data-Efficient GAN Training"), written for this package's batched, generator-seeded style.

    x = diff_augment(images, parse_policy("color,translation,cutout"), generator)

The GAN trainer applies it to every batch its discriminator sees, real and generated alike, in both the
discriminator's and the generator's update, so D never sees an un-augmented image and G is not pushed to make
augmented-looking ones. That works only because every op is a differentiable function of the pixels (additions,
multiplications by masks, a gather): D's gradient flows back through the augmentation into G.

Images are float [N, C, H, W] in [-1, 1] (the tanh generator's range; nothing is clamped). Parameters are drawn
per image, as tensors, from the caller's torch.Generator (one draw per op in a fixed order, so a step seeded the
same augments the same way); within one image every channel gets the same transform.

    op            what it does to each image                                      parameter per image
    color         brightness: x + b                                               b ~ U(-0.5, 0.5)
                  saturation: m_c + (x - m_c) * s, m_c the mean over channels     s ~ U(0, 2)
                  contrast:   m + (x - m) * k, m the image's mean                 k ~ U(0.5, 1.5)
    translation   shift by whole pixels, zeros filled in                          up to 1/8 of the size each way
    cutout        one square of zeros, half the image's side, anywhere            its corner (may hang off the edge)

These are the paper's three policies with its magnitudes.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F

POLICIES = ("color", "translation", "cutout")
TRANSLATION_RATIO = 0.125
CUTOUT_RATIO = 0.5


def parse_policy(policy) -> tuple[str, ...]:
    """"color,translation,cutout" (or a list of names, or None/"" for none) -> a tuple of op names."""
    if not policy:
        return ()
    names = policy.split(",") if isinstance(policy, str) else list(policy)
    names = tuple(n.strip() for n in names if isinstance(n, str) and n.strip())
    unknown = [n for n in names if n not in POLICIES]
    if unknown or len(set(names)) != len(names) or not names:
        raise ValueError(f"diffaug policy must name ops from {', '.join(POLICIES)}, each once, e.g. "
                         f"'color,translation,cutout'; got {policy!r}")
    return names


def _rand(shape, g, device) -> torch.Tensor:
    gdev = g.device if g is not None else torch.device("cpu")
    return torch.rand(shape, generator=g, device=gdev).to(device)


def _randint(lo: int, hi: int, n: int, g, device) -> torch.Tensor:
    """n integers in [lo, hi] (both ends included)."""
    gdev = g.device if g is not None else torch.device("cpu")
    return torch.randint(lo, hi + 1, (n,), generator=g, device=gdev).to(device)


def color(x: torch.Tensor, g: torch.Generator | None) -> torch.Tensor:
    n, dt = len(x), x.dtype
    x = x + (_rand((n, 1, 1, 1), g, x.device).to(dt) - 0.5)
    mean = x.mean(dim=1, keepdim=True)
    x = (x - mean) * (_rand((n, 1, 1, 1), g, x.device).to(dt) * 2) + mean
    mean = x.mean(dim=(1, 2, 3), keepdim=True)
    return (x - mean) * (_rand((n, 1, 1, 1), g, x.device).to(dt) + 0.5) + mean


def translation(x: torch.Tensor, g: torch.Generator | None, ratio: float = TRANSLATION_RATIO) -> torch.Tensor:
    n, c, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    oy, ox = _randint(0, 2 * sy, n, g, x.device), _randint(0, 2 * sx, n, g, x.device)   # offsets into the padded
    padded = F.pad(x, (sx, sx, sy, sy))                                                 # image: shift = sy - oy
    rows = (oy[:, None] + torch.arange(h, device=x.device)).view(n, 1, h, 1)
    cols = (ox[:, None] + torch.arange(w, device=x.device)).view(n, 1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1, 1)
    chan = torch.arange(c, device=x.device).view(1, c, 1, 1)
    return padded[batch, chan, rows, cols]


def cutout(x: torch.Tensor, g: torch.Generator | None, ratio: float = CUTOUT_RATIO) -> torch.Tensor:
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    top, left = _randint(-(ch // 2), h - ch // 2 - 1, n, g, x.device), _randint(-(cw // 2), w - cw // 2 - 1, n, g,
                                                                               x.device)
    ys, xs = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (ys[None] >= top[:, None]) & (ys[None] < top[:, None] + ch)              # [n, h]
    in_cols = (xs[None] >= left[:, None]) & (xs[None] < left[:, None] + cw)            # [n, w]
    keep = ~(in_rows[:, :, None] & in_cols[:, None, :])                                # [n, h, w]
    return x * keep[:, None].to(x.dtype)


OPS = {"color": color, "translation": translation, "cutout": cutout}


def diff_augment(x: torch.Tensor, policy: tuple[str, ...], generator: torch.Generator | None = None) -> torch.Tensor:
    """Apply the ops of `policy` (from parse_policy) in its order; the identity for an empty policy."""
    for name in policy:
        x = OPS[name](x, generator)
    return x
