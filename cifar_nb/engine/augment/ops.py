"""The batched augmentation ops GpuAugment composes: affine warps, AugMix and colour jitter, each on a whole
batch on its device, each checked against torchvision's per-image v2 transform (impl="reference")."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F
from torchvision.transforms import v2
from torchvision.transforms.v2 import functional as TF
from torchvision.transforms.v2.functional._color import _hsv_to_rgb, _rgb_to_hsv


def _gdev(g) -> torch.device:
    return g.device if g is not None else torch.device("cpu")


def _uniform(n, lo, hi, g, device) -> torch.Tensor:
    return (torch.rand(n, generator=g, device=_gdev(g), dtype=torch.float64) * (hi - lo) + lo).to(device)


def _coin(n, p, g, device) -> torch.Tensor:
    return (torch.rand(n, generator=g, device=_gdev(g)) < p).to(device)


def _implementation(spec, batched, reference):
    impl = spec.get("impl", "batched")
    if impl not in ("batched", "reference"):
        raise ValueError(f"augment impl must be 'batched' or 'reference' (torchvision image by image), got {impl!r}")
    return batched() if impl == "batched" else reference()


class _PerImage:
    """The reference path: a torchvision transform applied to each image on its own (with probability p), its
    global-RNG draws seeded from the caller's generator, the global RNG left as it was."""

    def __init__(self, op, p=1.0):
        self.op, self.p = op, p

    def __call__(self, x, g):
        pick = _coin(len(x), self.p, g, "cpu").tolist()
        seed = int(torch.randint(0, 2 ** 62, (1,), generator=g, device=_gdev(g)))
        with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
            torch.manual_seed(seed)
            return torch.stack([self.op(img) if k else img for img, k in zip(x, pick)])


def affine(x, angle, tx, ty, scale, shear_x, shear_y, cx=None, cy=None, mode="nearest") -> torch.Tensor:
    """Per-image v2.functional.affine(x[i], angle[i], [tx[i], ty[i]], scale[i], [shear_x[i], shear_y[i]],
    interpolation=mode, center=...) for a float batch, zero fill; one grid_sample. Angles and shears in degrees,
    all float64 [N]; the centre (cx, cy) is in pixels from the image centre, as torchvision's center_f (default:
    the centre itself)."""
    n, c, h, w = x.shape
    # torchvision's _get_inverse_affine_matrix, vectorised (float64, as its Python floats are)
    rot, sx, sy = torch.deg2rad(angle), torch.deg2rad(shear_x), torch.deg2rad(shear_y)
    a = torch.cos(rot - sy) / torch.cos(sy)
    b = -(a * torch.tan(sx) + torch.sin(rot))
    cc = torch.sin(rot - sy) / torch.cos(sy)
    d = torch.cos(rot) - cc * torch.tan(sx)
    m = torch.stack([d, -b, -cc, a], 1).view(n, 2, 2) / scale.view(n, 1, 1)
    centre = 0 if cx is None else torch.stack([cx, cy], 1).view(n, 2, 1)
    t = centre - m @ (centre + torch.stack([tx, ty], 1).view(n, 2, 1))
    theta = torch.cat([m, t], 2).to(x.dtype)                     # [n, 2, 3]
    # torchvision's _affine_grid: pixel-centre coordinates about the image centre, normalised after theta
    base = torch.empty(1, h, w, 3, dtype=x.dtype, device=x.device)
    base[..., 0].copy_(torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, steps=w, device=x.device))
    base[..., 1].copy_(torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, steps=h, device=x.device).unsqueeze_(-1))
    base[..., 2].fill_(1)
    scale_xy = torch.tensor([0.5 * w, 0.5 * h], dtype=x.dtype, device=x.device)
    grid = base.view(1, h * w, 3).expand(n, -1, -1).bmm(theta.transpose(1, 2) / scale_xy).view(n, h, w, 2)
    return F.grid_sample(x, grid, mode=mode, padding_mode="zeros", align_corners=False)


# AugMix and ColorJitter for whole batches: `sample` draws every image's parameters as tensors from the caller's
# generator, `apply` runs each op once over the images that picked it, with their own magnitudes.

AUGMIX_KEYS = ("severity", "mixture_width", "chain_depth", "alpha", "all_ops", "interpolation", "fill", "impl")
GEOMETRIC = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
BLENDS = ("Brightness", "Color", "Contrast")
AUGMIX_OPS = GEOMETRIC + BLENDS + ("Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")


def _v(t):
    return t.view(-1, 1, 1, 1)


def _on_picked(pick, x, fn, *per_image, subset):
    """fn(x, *per_image) for the images where pick is true, the others as they were. subset=True computes only
    those images (index_select; the CPU default); subset=False computes all of them and keeps the picked ones
    with torch.where, which a GPU wants: a subset whose size depends on the data makes the host wait for it."""
    if not subset:
        return torch.where(_v(pick), fn(x, *per_image), x)
    idx = pick.nonzero().squeeze(1)
    return x.index_copy(0, idx, fn(x[idx], *(t[idx] for t in per_image))) if len(idx) else x


class AugMix:
    """v2.AugMix on a uint8 batch [N,3,H,W], every image with chains, ops, magnitudes and weights of its own.

    The op set and magnitude bins are v2.AugMix's own tables, and each op computes what its v2.functional
    kernel computes (same formulas, roundings and uint8 casts), so that, given the same draws, an image comes
    out as torchvision's would: tests replay the draws through torchvision op by op."""

    subset = None   # None: by device (see _on_picked); tests set True/False to check both ways agree

    def __init__(self, **kwargs):
        self.ref = v2.AugMix(**kwargs)   # checks the arguments; its tables are the op set and magnitude bins
        space = self.ref._AUGMENTATION_SPACE if self.ref.all_ops else self.ref._PARTIAL_AUGMENTATION_SPACE
        self.ops, self.signed = list(space), torch.tensor([signed for _, signed in space.values()])
        self.magnitudes = [fn for fn, _ in space.values()]
        self.mode = str(getattr(self.ref.interpolation, "value", self.ref.interpolation))
        unknown = sorted(set(self.ops) - set(AUGMIX_OPS))
        if unknown or self.mode not in ("bilinear", "nearest") or self.ref.fill is not None:
            raise ValueError("the batched AugMix does bilinear or nearest interpolation with fill=None and the ops "
                             f"{', '.join(AUGMIX_OPS)}; use augmix {{..., 'impl': 'reference'}} for the rest")
        self.groups = [(names, fn) for names, fn in (
            (GEOMETRIC, self._geometric), (BLENDS, self._blend), (("Sharpness",), self._sharpness),
            (("Posterize",), _posterize), (("Solarize",), _solarize),
            (("AutoContrast",), lambda x, op, mag: TF.autocontrast(x)),
            (("Equalize",), lambda x, op, mag: TF.equalize(x))) if set(names) & set(self.ops)]

    def __call__(self, x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        return self.apply(x, self.sample(len(x), *x.shape[-2:], g, x.device))

    def sample(self, n, h, w, g, device) -> dict:
        """op [D, W*N] (index into self.ops, -1 once past the chain's depth), mag [D, W*N] signed float64,
        weights [N, 1+W] (original, chain 1..W). Chains are stacked chain-major: row c*N+i is image i's chain c."""
        ref, dev = self.ref, _gdev(g)
        width, depth = ref.mixture_width, ref.chain_depth if ref.chain_depth > 0 else 3
        bins = [fn(ref._PARAMETER_MAX, h, w) for fn in self.magnitudes]
        table = torch.stack([torch.zeros(ref._PARAMETER_MAX) if b is None else b.double() for b in bins]).to(dev)
        op = torch.randint(len(self.ops), (depth, width * n), generator=g, device=dev)
        if ref.chain_depth <= 0:   # v2.AugMix: depth 1..3, drawn per chain
            length = torch.randint(1, 4, (width * n,), generator=g, device=dev)
            op = op.masked_fill(torch.arange(depth, device=dev).view(-1, 1) >= length, -1)
        mag = table[op.clamp(min=0), torch.randint(ref.severity, op.shape, generator=g, device=dev)]
        flip = self.signed.to(dev)[op.clamp(min=0)] & (torch.rand(op.shape, generator=g, device=dev) <= 0.5)
        mag = torch.where(flip, -mag, mag).masked_fill_(op < 0, 0.0)
        # v2.AugMix: Beta(alpha, alpha) (a 2-way Dirichlet) for the original, Dirichlet(alpha) over the chains
        m = torch._sample_dirichlet(torch.full((n, 2), float(ref.alpha), device=dev), generator=g)
        chains = torch._sample_dirichlet(torch.full((n, width), float(ref.alpha), device=dev), generator=g)
        weights = torch.cat([m[:, :1], chains * m[:, 1:]], 1)
        return dict(op=op.to(device), mag=mag.to(device), weights=weights.to(device))

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        if x.dtype != torch.uint8 or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"AugMix wants a uint8 [N,3,H,W] batch, got {x.dtype} {tuple(x.shape)}")
        n, weights = len(x), params["weights"]
        aug = x.repeat(weights.shape[1] - 1, 1, 1, 1)   # all chains side by side: one call per op and step
        for op, mag in zip(params["op"], params["mag"]):
            aug = self.step(aug, op, mag)
        # v2.AugMix's mix: float32, truncated back to uint8 by its .to(dtype)
        mix = _v(weights[:, 0]) * x
        for c, chain in enumerate(aug.split(n)):
            mix.add_(_v(weights[:, c + 1]) * chain)
        return mix.to(torch.uint8)

    def step(self, x: torch.Tensor, op: torch.Tensor, mag: torch.Tensor) -> torch.Tensor:
        """Image i gets self.ops[op[i]] with magnitude mag[i]; op -1 leaves it as it is."""
        subset = x.device.type == "cpu" if self.subset is None else self.subset
        for names, fn in self.groups:
            pick = functools.reduce(torch.logical_or, [self._is(op, k) for k in names])
            x = _on_picked(pick, x, fn, op, mag, subset=subset)
        return x

    def _is(self, op, name):
        return op == self.ops.index(name) if name in self.ops else torch.zeros_like(op, dtype=torch.bool)

    def _geometric(self, x, op, mag):
        """All five in one resampling, as v2.AugMix calls v2.functional.affine/rotate (fill 0, rounded)."""
        h, w = x.shape[-2:]
        zero = torch.zeros_like(mag)
        shear = torch.rad2deg(torch.atan(mag))   # v2.AugMix shears by atan(magnitude), about the top-left corner
        corner = self._is(op, "ShearX") | self._is(op, "ShearY")
        out = affine(x.float(), torch.where(self._is(op, "Rotate"), -torch.remainder(mag, 360), zero),
                     torch.where(self._is(op, "TranslateX"), mag.trunc(), zero),   # int(magnitude)
                     torch.where(self._is(op, "TranslateY"), mag.trunc(), zero), torch.ones_like(mag),
                     torch.where(self._is(op, "ShearX"), shear, zero), torch.where(self._is(op, "ShearY"), shear, zero),
                     torch.where(corner, -0.5 * w, 0.0), torch.where(corner, -0.5 * h, 0.0), self.mode)
        return out.round_().to(torch.uint8)

    def _blend(self, x, op, mag):
        """adjust_brightness/saturation/contrast: v2.functional._blend with 0, the grey image or its mean."""
        ratio = 1.0 + mag
        grey = _grey(x).floor_()
        other = torch.where(_v(self._is(op, "Color")), grey,
                            torch.where(_v(self._is(op, "Contrast")), grey.mean((1, 2, 3), keepdim=True), 0.0))
        return _fma(x.mul(_v(ratio.float())), other, _v((1.0 - ratio).float())).clamp_(0, 255).to(torch.uint8)

    def _sharpness(self, x, op, mag):
        """adjust_sharpness: the inner pixels blended with their rounded 3x3 blur (weights 1, centre 5, / 13)."""
        out = x.float()
        # the blur's numerator is an integer and /13 never lands near .5, so this rounds as the conv2d does
        s = F.avg_pool2d(out, 3, stride=1, divisor_override=1)
        inner = out[..., 1:-1, 1:-1]
        blurred = s.add_(inner, alpha=4).div_(13).round_()
        inner.copy_(_fma(inner, blurred.sub_(inner), _v((1.0 - (1.0 + mag)).float())))
        return out.clamp_(0, 255).to(torch.uint8)


def _posterize(x, op, mag):
    bits = mag.long().clamp(0, 8)   # int(magnitude); keep that many high bits
    return x & _v(((255 << (8 - bits)) & 255).to(torch.uint8))


def _solarize(x, op, mag):
    return torch.where(x >= _v((255 * mag).float()), x.bitwise_not(), x)   # invert pixels >= 255 * magnitude


def _grey(x):
    """v2.functional's rgb_to_grayscale(preserve_dtype=False): the same float ops in the same order."""
    r, g, b = x.unbind(1)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).unsqueeze(1)


def _fma(a, b, c):
    """a + b * c rounded once, as torch's a.add_(b, alpha=c) (a fused multiply-add, in torchvision's blends)
    rounds it; c is per image here, which add_'s alpha cannot be. float32 in and out."""
    return a.double().add_(b.double() * c.double()).float()


class ColorJitter:
    """v2.ColorJitter with probability p on a float batch [N,3,H,W] in 0..1, every image with its own four
    factors and its own random order of the four adjustments (as v2.ColorJitter draws them for each call)."""

    subset = None

    def __init__(self, brightness=None, contrast=None, saturation=None, hue=None, p=1.0):
        self.ref = v2.ColorJitter(brightness, contrast, saturation, hue)   # checks the arguments; the ranges
        self.ranges = (self.ref.brightness, self.ref.contrast, self.ref.saturation, self.ref.hue)
        self.p = p

    def __call__(self, x: torch.Tensor, g: torch.Generator | None = None) -> torch.Tensor:
        return self.apply(x, self.sample(len(x), g, x.device))

    def sample(self, n, g, device) -> dict:
        """on [N] (jitter this image), factors [N, 4] (brightness, contrast, saturation, hue) and order [N, 4],
        a random permutation of 0..3 per image (v2.ColorJitter's fn_idx)."""
        on = _coin(n, self.p, g, device)
        order = torch.rand(n, 4, generator=g, device=_gdev(g)).argsort(1).to(device)
        factors = [_uniform(n, *r, g, device).float() if r is not None else torch.zeros(n, device=device)
                   for r in self.ranges]
        return dict(on=on, factors=torch.stack(factors, 1), order=order)

    def apply(self, x: torch.Tensor, params: dict) -> torch.Tensor:
        """v2.functional.adjust_brightness/contrast/saturation/hue on floats, each factor per image."""
        if x.dtype != torch.float32 or x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"ColorJitter wants a float32 [N,3,H,W] batch, got {x.dtype} {tuple(x.shape)}")
        subset = x.device.type == "cpu" if self.subset is None else self.subset
        ops = (lambda x, f: x.mul(_v(f)).clamp_(0, 1),
               lambda x, f: _blend(x, _grey(x).mean((1, 2, 3), keepdim=True), _v(f)),
               lambda x, f: _blend(x, _grey(x), _v(f)),
               _hue)
        for k in range(4):
            for j, fn in enumerate(ops):
                if self.ranges[j] is not None:
                    x = _on_picked(params["on"] & (params["order"][:, k] == j), x, fn, params["factors"][:, j],
                                   subset=subset)
        return x


def _blend(x, other, ratio):
    """v2.functional's _blend on floats, with a ratio per image (up to float rounding: it fuses the add)."""
    return x.mul(ratio).add_(other * (1.0 - ratio)).clamp_(0, 1)


def _hue(x, shift):
    """v2.functional.adjust_hue on floats, with a shift per image."""
    h, s, v = _rgb_to_hsv(x).unbind(1)
    return _hsv_to_rgb(torch.stack((h.add_(shift.view(-1, 1, 1)).remainder_(1.0), s, v), 1))
