"""Augmentation of whole batches on the device they live on.

    aug = GpuAugment({"crop": 4, "pad_mode": "reflect", "hflip": 0.5}, data.describe("cifar100"))
    x = aug(images_uint8, generator)        # float32, normalised with the dataset's mean/std
    x = normalize(images_uint8, info)       # the eval path

Spec keys (an empty spec only normalises):
    hflip, vflip      probability of a horizontal / vertical flip; hflip "auto" is 0.5 where a mirrored image
                      keeps its label (DatasetInfo.mirror_invariant: photographs) and 0 where not (AddNIST)
    channel_shuffle   probability of a random permutation of the channels, or "auto": 1 where the label does not
                      depend on their order (DatasetInfo.channel_order_invariant: AddNIST's sum of three digits)
                      and 0 elsewhere
    crop, pad_mode    pad by `crop` pixels ("reflect" or "zeros") and crop back at a random offset,
    crop_p            with probability crop_p (default 1)
    noise_var,        add Gaussian noise of variance noise_var to the 0..1 pixels (before normalising,
    noise_p           not clipped) with probability noise_p (default 1)
    augmix            True (the batched AugMix below), "reference" (v2.AugMix image by image), or a dict of
                      v2.AugMix arguments plus "impl": "batched" (default) or "reference"
    color_jitter      {brightness, contrast, saturation, hue, p, impl}: v2.ColorJitter with prob p; impl as above
    rotation          degrees, or [min, max]: torchvision.transforms.v2.RandomRotation
    affine            {degrees, translate, scale, shear, p}: torchvision.transforms.v2.RandomAffine with prob p

Order: augmix (uint8) -> 0..1 floats -> color_jitter -> rotation -> affine -> crop -> flips -> channel shuffle -> noise
-> normalise.
The reports give no order; this is torchvision's usual one (colour on the image, then geometry, then
tensor-level noise), and the flips and crops commute with the rest in distribution.

Everything is batched: parameters are drawn per image, as tensors, from the caller's generator (on its device),
and each op runs once over the batch with per-image magnitudes. No per-image Python; on a GPU no shapes that
depend on the data, so the host need not wait for the device (not yet measured on a GPU).
  * flips, pad+crop, noise: one op each (torch.where, a gather with per-image offsets).
  * rotation and affine: torchvision's v2 RandomAffine/RandomRotation draw ONE set of parameters per call, so a
    batch would share one angle. Here they are drawn per image with v2's distributions (angle uniform,
    translation rounded to whole pixels, scale uniform, shear on x) and resampled as v2.functional.affine does
    (its inverse matrix, its grid, zero fill) in one grid_sample; tests check it equals v2.functional.affine
    and rotate image by image.
  * augmix (AugMix): v2.AugMix, given a batch, shares its chains across the batch, and image by image it costs
    1-2 ms on a CPU core (dozens of tiny kernel launches on a GPU). Here every image gets its own depths, ops,
    magnitudes and mixing weights, drawn from v2.AugMix's own tables (severity bins, signs, Dirichlet/Beta
    weights); the chains of all images run side by side, and each step applies each op to the images that
    picked it: the five geometric ops as one affine resampling, the others with per-image factors, bit masks
    and thresholds by broadcasting, autocontrast and equalize through v2.functional (batched already). Every op
    computes what its v2.functional kernel does on uint8 (same formulas, roundings and casts), so the output
    is bit-identical to torchvision's for the same draws: tests replay the draws through torchvision.
  * color_jitter (ColorJitter): per-image factors AND a per-image random order of the four adjustments, as
    v2.ColorJitter draws them per call; the v2.functional float formulas with per-image factors (equal to
    adjust_* within float rounding: torchvision fuses one multiply-add).
"Each op to the images that picked it" is an index_select on the CPU (only those images are computed) and a
torch.where over the whole batch on a GPU, where a subset whose size depends on the data would make the host
wait for the device; both give the same bits (tested).
The same draws do not reproduce v2's own random streams: the distributions are v2's, the numbers are the
generator's. impl "reference" keeps torchvision's per-image loop (its global-RNG draws seeded from the caller's
generator, the global RNG left as it was) for comparison.

CPU timings on 2 cores, both busy with other jobs (load ~7), so rough: ms per batch of 512 CIFAR images
through GpuAugment({"augmix": ...}) etc., min of 3-7 repeats, two runs:
                                        reference (per image)    batched
    augmix, 1 thread                          742 - 757          162 - 196
    augmix, 2 threads                        5152 - 9722         274 - 952
    color_jitter b/c/s + hue 0.1, 1 thread    342 - 397           88 - 127
    color_jitter b/c/s, 1 thread              106 - 109           20 - 31
The torch.where way (the GPU path) takes ~1600 ms for augmix on one CPU thread: each of its seven op groups
runs over every image, not only over the ~1/13 that picked it.
"""
from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torchvision.transforms import v2

from cifar_nb.engine.augment.ops import (
    AUGMIX_KEYS,
    AugMix,
    ColorJitter,
    _coin,
    _gdev,
    _implementation,
    _PerImage,
    _uniform,
    affine,
)

SPEC_KEYS = ("hflip", "vflip", "channel_shuffle", "crop", "pad_mode", "crop_p", "noise_var", "noise_p", "augmix",
             "color_jitter", "rotation", "affine")
COLOR_JITTER_KEYS = ("brightness", "contrast", "saturation", "hue", "p", "impl")
AFFINE_KEYS = ("degrees", "translate", "scale", "shear", "p")


def normalize(images: torch.Tensor, info) -> torch.Tensor:
    """uint8 [N,C,H,W] -> float32 standardised with info.mean/std."""
    return _standardise(images.float().div_(255), info)


def _standardise(x: torch.Tensor, info) -> torch.Tensor:
    mean = torch.tensor(info.mean, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    std = torch.tensor(info.std, dtype=x.dtype, device=x.device).view(1, -1, 1, 1)
    return x.sub_(mean).div_(std)


def _prob(spec, key, default=0.0) -> float:
    v = spec.get(key, default)
    v = 0.5 if v is True else 0.0 if v is False else v
    if not isinstance(v, (int, float)) or not 0 <= v <= 1:
        raise ValueError(f"augment {key} must be a probability in [0, 1], got {v!r}")
    return float(v)


def flip_probability(value, info) -> float:
    """An "hflip" value as a probability: a number in [0, 1], true (0.5), or "auto": 0.5 where a mirrored image
    keeps its label (info.mirror_invariant) and 0 where it does not (AddNIST's digits). The GAN trainer reads
    its hflip through this too."""
    if value == "auto":
        return 0.5 if getattr(info, "mirror_invariant", True) else 0.0
    return _prob({"hflip": value}, "hflip")


def channel_shuffle_probability(value, info) -> float:
    """A "channel_shuffle" value as a probability: a number in [0, 1], or "auto": 1 where the label does not depend
    on the order of the channels (info.channel_order_invariant) and 0 where it does (photographs)."""
    if value == "auto":
        return 1.0 if getattr(info, "channel_order_invariant", False) else 0.0
    return _prob({"channel_shuffle": value}, "channel_shuffle")


def shuffle_channels(x: torch.Tensor, p: float, g, device) -> torch.Tensor:
    """Each image's channels in a random order (uniform over the C! orders) with probability p, else as they are."""
    n, c = x.shape[:2]
    order = torch.rand(n, c, generator=g, device=_gdev(g)).to(device).argsort(1)
    keep = ~_coin(n, p, g, device)
    order = torch.where(keep[:, None], torch.arange(c, device=device).expand(n, c), order)
    return x.gather(1, order.view(n, c, 1, 1).expand_as(x))


def tta_views(tta, info) -> list[tuple[bool, tuple[int, ...] | None]]:
    """The test-time views a classifier train["tta"] value asks for on this dataset, as (mirror?, channel order or
    None); the first view is the image itself."""
    mirror = tta == "hflip" or (tta in ("auto", "symmetries") and getattr(info, "mirror_invariant", True))
    orders = [None]
    if tta == "symmetries" and getattr(info, "channel_order_invariant", False):
        orders = list(itertools.permutations(range(info.channels)))
    return [(flip, order) for flip in ((False, True) if mirror else (False,)) for order in orders]


def _range(v, name) -> tuple[float, float]:
    """torchvision's convention: a number d means (-d, d); a pair is (min, max)."""
    if isinstance(v, (int, float)):
        if v < 0:
            raise ValueError(f"augment {name} must be >= 0 when a single number, got {v}")
        return -float(v), float(v)
    if isinstance(v, (list, tuple)) and len(v) == 2 and v[0] <= v[1]:
        return float(v[0]), float(v[1])
    raise ValueError(f"augment {name} must be a number or a [min, max] pair, got {v!r}")


def _check_keys(d, valid, where):
    if not isinstance(d, dict):
        raise ValueError(f"{where} must be a dict with keys from {', '.join(valid)}, got {d!r}")
    unknown = sorted(set(d) - set(valid))
    if unknown:
        raise ValueError(f"unknown {where} key(s) {', '.join(unknown)}; valid keys: {', '.join(valid)}")


class GpuAugment:
    """Callable (uint8 [N,C,H,W] on any device, torch.Generator) -> float32 normalised batch on that device.
    Random numbers are drawn on the generator's device (a generator on the data's device is fastest)."""

    def __init__(self, spec: dict | None, info):
        spec = dict(spec or {})
        _check_keys(spec, SPEC_KEYS, "augment spec")
        self.info = info
        self.hflip, self.vflip = flip_probability(spec.get("hflip", 0.0), info), _prob(spec, "vflip")
        self.channel_shuffle = channel_shuffle_probability(spec.get("channel_shuffle", 0.0), info)
        self.crop = spec.get("crop", 0)
        if not isinstance(self.crop, int) or isinstance(self.crop, bool) or self.crop < 0:
            raise ValueError(f"augment crop is the padding in pixels, an integer >= 0, got {self.crop!r}")
        self.pad_mode = spec.get("pad_mode", "zeros")
        if self.pad_mode not in ("reflect", "zeros"):
            raise ValueError(f"augment pad_mode must be 'reflect' or 'zeros', got {self.pad_mode!r}")
        self.crop_p = _prob(spec, "crop_p", 1.0)
        self.noise_var = spec.get("noise_var", 0.0)
        if not isinstance(self.noise_var, (int, float)) or self.noise_var < 0:
            raise ValueError(f"augment noise_var must be a variance >= 0, got {self.noise_var!r}")
        self.noise_p = _prob(spec, "noise_p", 1.0)

        augmix = spec.get("augmix") or False
        augmix = {} if augmix is True else {"impl": "reference"} if augmix == "reference" else augmix
        if not isinstance(augmix, dict) and augmix is not False:
            raise ValueError("augment augmix must be true/false, 'reference' or a dict of v2.AugMix arguments "
                             f"(+ 'impl': 'batched' or 'reference'), got {augmix!r}")
        self.augmix = None
        if augmix is not False:
            _check_keys(augmix, AUGMIX_KEYS, "augment augmix")
            args = {k: v for k, v in augmix.items() if k != "impl"}
            self.augmix = _implementation(augmix, lambda: AugMix(**args), lambda: _PerImage(v2.AugMix(**args)))

        cj = spec.get("color_jitter")
        self.color_jitter = None
        if cj:
            _check_keys(cj, COLOR_JITTER_KEYS, "augment color_jitter")
            args = {k: v for k, v in cj.items() if k not in ("p", "impl")}
            p = _prob(cj, "p", 1.0)
            self.color_jitter = _implementation(cj, lambda: ColorJitter(**args, p=p),
                                                lambda: _PerImage(v2.ColorJitter(**args), p))

        self.rotation = _range(spec["rotation"], "rotation") if spec.get("rotation") else None

        af = spec.get("affine")
        self.affine = None
        if af:
            _check_keys(af, AFFINE_KEYS, "augment affine")
            shear = af.get("shear") or 0
            if isinstance(shear, (int, float)):
                shear = [-shear, shear]
            shear = list(shear) + [0, 0] * (len(shear) == 2)   # no shear along y unless given
            if len(shear) != 4:
                raise ValueError(f"augment affine shear must be a number, or 2 or 4 numbers, got {af['shear']!r}")
            translate = af.get("translate") or (0.0, 0.0)
            scale = af.get("scale") or (1.0, 1.0)
            if len(translate) != 2 or not all(0 <= t <= 1 for t in translate):
                raise ValueError(f"augment affine translate must be two fractions in [0, 1], got {translate!r}")
            if len(scale) != 2 or not 0 < scale[0] <= scale[1]:
                raise ValueError(f"augment affine scale must be [min, max] with 0 < min <= max, got {scale!r}")
            self.affine = dict(degrees=_range(af.get("degrees", 0), "affine degrees"), translate=tuple(translate),
                               scale=tuple(scale), shear=tuple(float(s) for s in shear), p=_prob(af, "p", 1.0))

    def __call__(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"GpuAugment wants a uint8 [N,C,H,W] batch, got {images.dtype} {tuple(images.shape)}")
        g, x = generator, images
        if self.augmix is not None:
            x = self.augmix(x, g)
        x = x.float().div_(255)
        if self.color_jitter is not None:
            x = self.color_jitter(x, g)
        if self.rotation is not None:
            angle = _uniform(len(x), *self.rotation, g, x.device)
            zero = torch.zeros_like(angle)
            # v2.functional.rotate turns by -angle in affine's convention
            x = affine(x, -angle, zero, zero, torch.ones_like(angle), zero, zero)
        if self.affine is not None:
            x = self._affine(x, g)
        if self.crop:
            x = self._crop(x, g)
        if self.hflip:
            x = torch.where(_coin(len(x), self.hflip, g, x.device).view(-1, 1, 1, 1), x.flip(3), x)
        if self.vflip:
            x = torch.where(_coin(len(x), self.vflip, g, x.device).view(-1, 1, 1, 1), x.flip(2), x)
        if self.channel_shuffle:
            x = shuffle_channels(x, self.channel_shuffle, g, x.device)
        if self.noise_var:
            noise = torch.randn(x.shape, generator=g, device=_gdev(g)).to(x.device) * math.sqrt(self.noise_var)
            x = x + noise * _coin(len(x), self.noise_p, g, x.device).view(-1, 1, 1, 1)
        return _standardise(x, self.info)

    def _affine(self, x, g):
        a, n, (h, w) = self.affine, len(x), x.shape[-2:]
        angle = _uniform(n, *a["degrees"], g, x.device)
        # v2.RandomAffine: whole-pixel translations, round(uniform(-t * size, t * size))
        tx = _uniform(n, -a["translate"][0] * w, a["translate"][0] * w, g, x.device).round()
        ty = _uniform(n, -a["translate"][1] * h, a["translate"][1] * h, g, x.device).round()
        scale = _uniform(n, *a["scale"], g, x.device)
        shx = _uniform(n, *a["shear"][:2], g, x.device)
        shy = _uniform(n, *a["shear"][2:], g, x.device)
        moved = affine(x, angle, tx, ty, scale, shx, shy)
        return torch.where(_coin(n, a["p"], g, x.device).view(-1, 1, 1, 1), moved, x)

    def _crop(self, x, g):
        n, c, h, w = x.shape
        p = self.crop
        padded = F.pad(x, (p, p, p, p), mode="reflect" if self.pad_mode == "reflect" else "constant")
        keep = ~_coin(n, self.crop_p, g, x.device)
        oy = torch.randint(0, 2 * p + 1, (n,), generator=g, device=_gdev(g)).to(x.device).masked_fill(keep, p)
        ox = torch.randint(0, 2 * p + 1, (n,), generator=g, device=_gdev(g)).to(x.device).masked_fill(keep, p)
        rows = (oy[:, None] + torch.arange(h, device=x.device)).view(n, 1, h, 1)
        cols = (ox[:, None] + torch.arange(w, device=x.device)).view(n, 1, 1, w)
        at = lambda k, shape: torch.arange(k, device=x.device).view(shape)
        return padded[at(n, (n, 1, 1, 1)), at(c, (1, c, 1, 1)), rows, cols]
